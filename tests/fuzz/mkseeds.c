/* Writes the seed corpora of the harnesses into DIR/<harness>/ (run by hand:
 * `make build/fuzz/mkseeds && build/fuzz/mkseeds tests/fuzz/corpus`). */
#include <sys/stat.h>
#include <zlib.h>

#include "dtrain/ckpt.h"
#include "dtrain/data.h"
#include "fuzz_common.h"
#include "mkset.h"

static char g_dir[512];

static const char *seed(const char *harness, const char *name)
{
    static char p[700];
    snprintf(p, sizeof p, "%s/%s", g_dir, harness);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", g_dir, harness, name);
    return p;
}

static size_t idx(uint8_t *b, int ndim, const uint32_t *dims)
{
    b[0] = b[1] = 0;
    b[2] = 8;
    b[3] = (uint8_t)ndim;
    size_t o = 4, n = 1;
    for (int d = 0; d < ndim; d++, o += 4) {
        b[o] = (uint8_t)(dims[d] >> 24), b[o + 1] = (uint8_t)(dims[d] >> 16);
        b[o + 2] = (uint8_t)(dims[d] >> 8), b[o + 3] = (uint8_t)dims[d];
        n *= dims[d];
    }
    for (size_t i = 0; i < n; i++) b[o + i] = (uint8_t)(i % 10);
    return o + n;
}

static void gz_file(const char *path, uint8_t mode, const uint8_t *p, size_t n)
{
    /* mode 0 seeds are the gzip file without its 2-byte magic */
    uLong cap = compressBound((uLong)n) + 64;
    uint8_t *out = malloc(cap + 1);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = out + 1;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    out[2] = mode; /* overwrites the magic's second byte: [mode][rest of the gzip file] */
    fz_write(path, out + 2, len - 1);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds DIR\n");
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
    mkdir(g_dir, 0755);
    fz_quiet_hdf5();
    uint8_t b[8192], c[8200];
    uint32_t l10[1] = {10}, i1[3] = {1, 28, 28}, i2[3] = {2, 28, 28};
    size_t n;

    n = idx(b, 1, l10);
    fz_write(seed("idx_raw", "labels-10"), b, n);
    n = idx(b, 3, i1);
    fz_write(seed("idx_raw", "images-1"), b, n);
    n = idx(b, 3, i2);
    fz_write(seed("idx_raw", "images-2"), b, n);

    /* idx_gz: [mode][...] */
    n = idx(b, 1, l10);
    c[0] = 1;
    memcpy(c + 1, b, n);
    fz_write(seed("idx_gz", "content-labels-10"), c, n + 1);
    n = idx(b, 3, i1);
    memcpy(c + 1, b, n);
    fz_write(seed("idx_gz", "content-images-1"), c, n + 1);
    c[0] = 2;
    fz_write(seed("idx_gz", "content-images-1-split"), c, n + 1);
    n = idx(b, 1, l10);
    gz_file(seed("idx_gz", "file-labels-10"), 0, b, n);
    n = idx(b, 3, i1);
    gz_file(seed("idx_gz", "file-images-1"), 0, b, n);

    /* data_raw: small sealed data sets */
    mk_set m;
    mk_default(&m, 1);
    for (int s = 0; s < MK_NSPLITS; s++) m.sp[s].chunk = 1;
    if (mk_write(seed("data_raw", "set-1"), &m) < 0) return 1;
    mk_default(&m, 2);
    for (int s = 2; s < MK_NSPLITS; s++) m.sp[s].missing = 8;
    if (mk_write(seed("data_raw", "set-2-vae-only"), &m) < 0) return 1;

    /* data_struct: [head] 6 x [count][flags] [mapping flags] */
    uint8_t st[16] = {0};
    for (int s = 0; s < 6; s++) st[1 + 2 * s] = 0x44; /* 5 images each, all default */
    fz_write(seed("data_struct", "valid-5"), st, 14);
    st[1] = 0x80; /* vae/train: 60 images, several chunks */
    st[2] = 4;    /* ... with a chunk length taken from the next bytes */
    uint8_t st2[18];
    memcpy(st2, st, 3);
    st2[3] = 7, st2[4] = 0;
    memcpy(st2 + 5, st + 3, 11);
    fz_write(seed("data_struct", "chunked-60"), st2, 16);

    /* ckpt: a checkpoint of the harness's network */
    dt_params net;
    dt_params_init(&net, "net");
    int w[2] = {4, 3}, bias[1] = {4};
    dt_params_add(&net, "fc.weight", 2, w);
    dt_params_add(&net, "fc.bias", 1, bias);
    dt_params_alloc(&net);
    for (size_t i = 0; i < net.n; i++) net.w[i] = (float)i / 7;
    dt_adam a;
    dt_adam_default(&a, 1e-3f);
    dt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.model, sizeof meta.model, "fuzz");
    snprintf(meta.arch, sizeof meta.arch, "fuzz 4x3");
    meta.step = 13; /* epoch 1 of 10 steps, 3 batches in */
    meta.epoch = 1;
    meta.batch = 3;
    meta.epoch_steps = 10;
    memset(meta.data_sha256, 'a', 64);
    meta.nsums = 2;
    meta.ranks = meta.threads = 1;
    dt_params *nets[1] = {&net};
    if (dt_ckpt_save(seed("ckpt", "net-4x3"), &meta, nets, &a, 1) < 0) {
        fprintf(stderr, "mkseeds: %s\n", dt_lasterr());
        return 1;
    }
    char *prev = dt_ckpt_prev_path(seed("ckpt", "net-4x3"));
    unlink(prev);
    dt_free(prev);
    dt_params_free(&net);
    return 0;
}
