/* Structure-aware: the input chooses a data set file's parts (label values,
 * counts, shapes, types, chunking, attributes, missing datasets), the
 * harness builds it through the HDF5 API and seals it with a true gate, so
 * every file reaches dtrain's own validation behind the gate. Whatever the
 * reader accepts must then read without fault: labels 0-9, every image. */
#include "dtrain/data.h"
#include "fuzz_common.h"
#include "mkset.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} bytes;

static unsigned take(bytes *b)
{
    if (!b->n) return 0;
    b->n--;
    return *b->p++;
}

static uint64_t pick_count(bytes *b)
{
    unsigned c = take(b);
    switch (c >> 6) {
    case 0: return c & 7;              /* 0..7 */
    case 1: return 1 + (c & 63);       /* up to 64 */
    case 2: return 60 + (c & 63) * 3;  /* a few chunks */
    default: {                         /* claims without storage */
        static const uint64_t big[4] = {100000, 4294967295u, 4294967296u, (uint64_t)1 << 40};
        return big[c & 3];
    }
    }
}

static void decode(mk_set *m, bytes *b)
{
    mk_default(m, 4);
    unsigned h = take(b);
    m->version_kind = (h & 3) == 3 ? (int)(take(b) & 3) : 0;
    m->version = (h >> 2 & 7) == 7 ? (int64_t)(int8_t)take(b) : DT_DATA_FORMAT_VERSION;
    for (int s = 0; s < MK_NSPLITS; s++) {
        mk_split *sp = &m->sp[s];
        sp->n = sp->nlab[0] = sp->nlab[1] = pick_count(b);
        unsigned f = take(b);
        if (f & 1) { /* labels: lengths and values */
            unsigned l = take(b);
            sp->nlab[0] = sp->n + (l & 3) - 1;
            sp->nlab[1] = sp->n + (l >> 2 & 3) - 1;
            sp->lab_max[0] = (l & 16) ? (uint8_t)take(b) : 9;
            sp->lab_max[1] = (l & 32) ? (uint8_t)take(b) : 9;
            sp->lab_signed[l >> 6 & 1] = 1;
            sp->lab_size[l >> 7 & 1] = (uint8_t)(1u << (take(b) % 3));
        }
        if (f & 2) { /* images: shape and type */
            unsigned i = take(b);
            sp->channels = (uint8_t)(i & 1 ? 3 : i % 5);
            sp->side = (uint8_t)(i & 2 ? 28 : 26 + (i >> 2) % 4);
            sp->ndim = (uint8_t)(i & 16 ? 4 : 1 + (i >> 5) % 4);
            sp->img_size = (uint8_t)(i & 128 ? 2 : 1);
        }
        if (f & 4) sp->chunk = (uint16_t)(take(b) | take(b) << 8);
        if (f & 8) sp->missing = (uint8_t)(take(b) & 15);
    }
    unsigned mp = take(b);
    if (mp & 1) m->map_max[0] = (uint8_t)take(b);
    if (mp & 2) m->map_max[1] = (uint8_t)take(b);
    if (mp & 4) m->map_len[0] = (uint8_t)take(b) % 12;
    if (mp & 8) m->map_len[1] = (uint8_t)take(b) % 12;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet_hdf5();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bytes b = {data, size};
    mk_set m;
    decode(&m, &b);
    const char *p = fz_path("data-struct");
    if (mk_write(p, &m) < 0) { /* HDF5 refused to build it (e.g. a chunk larger than the data) */
        unlink(p);
        return 0;
    }
    dt_dataset *ds = dt_dataset_open(p);
    if (!ds) {
        fz_check_message();
        unlink(p);
        return 0;
    }
    uint8_t map[10];
    for (int d = 0; d < 2; d++)
        if (dt_dataset_mapping(ds, d, map) == 0)
            for (int k = 0; k < 10; k++) FZ_ASSERT(map[k] <= 9);
        else
            fz_check_message();
    for (int s = 0; s < MK_NSPLITS; s++) {
        dt_split *sp = dt_split_open(ds, mk_split_names[s]);
        if (!sp) {
            fz_check_message();
            continue;
        }
        size_t n = dt_split_len(sp);
        FZ_ASSERT(n > 0 && n == m.sp[s].n);
        /* a few images from the start, the middle and the end, labels of all */
        uint32_t idx[4] = {0, (uint32_t)(n / 2), (uint32_t)(n - 1), (uint32_t)(n / 3)};
        uint8_t *img = malloc(4 * DT_IMG), dg[4], co[4];
        FZ_ASSERT(dt_split_read(sp, idx, 4, img, dg, co) == 0);
        for (int k = 0; k < 4; k++) FZ_ASSERT(dg[k] <= 9 && co[k] <= 9);
        free(img);
        /* one batch through the loader */
        dt_loader *ld = dt_loader_create(sp, n < 8 ? n : 8, 1, 1);
        FZ_ASSERT(ld != NULL);
        dt_batch bt;
        dt_loader_start_epoch(ld, 0);
        FZ_ASSERT(dt_loader_next(ld, &bt) == 1);
        for (size_t k = 0; k < bt.n; k++) FZ_ASSERT(bt.digits[k] <= 9 && bt.colors[k] <= 9);
        dt_loader_free(ld);
        dt_split_close(sp);
    }
    dt_dataset_close(ds);
    unlink(p);
    return 0;
}
