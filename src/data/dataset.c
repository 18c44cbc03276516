/* Reading the colored-MNIST HDF5 file from every rank. The file is opened
 * through dt_h5_fapl() (MPI-IO when several ranks), so open/close and dataset
 * open/close are collective; image reads are independent (dt_split_read) or
 * collective (the loader, see loader.c). */
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"
#include "dtrain/h5.h"

struct dt_dataset {
    hid_t file;
    char *path;
    char sha256[65]; /* the verified digest of its content (the gate's) */
    int has_vae, has_cyclegan;
    size_t size; /* bytes in the file: bounds what its headers may claim */
};

struct dt_split {
    dt_dataset *ds;
    hid_t images;
    size_t n, chunk;
    char name[64];
    uint8_t *digits, *colors; /* (n) each, read at open */
};

/* Silence HDF5's own error printing around a call sequence. */
typedef struct {
    H5E_auto2_t f;
    void *d;
} quiet_t;
static quiet_t quiet_on(void)
{
    quiet_t q;
    H5Eget_auto2(H5E_DEFAULT, &q.f, &q.d);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}
static void quiet_off(quiet_t q) { H5Eset_auto2(H5E_DEFAULT, q.f, q.d); }

static int link_exists(hid_t loc, const char *path)
{
    /* H5Lexists needs each intermediate link to exist: walk the path. */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
            if (c == '\0') return 1;
            *p = c;
        }
    }
}

/* ---- the gate ------------------------------------------------------------------ */

static void gate_block(uint8_t ub[DT_DATA_USERBLOCK], const char hex[65])
{
    memset(ub, 0, DT_DATA_USERBLOCK);
    snprintf((char *)ub, DT_DATA_USERBLOCK, "%s%s\n", DT_DATA_GATE_MAGIC, hex);
}

void dt_dataset_gate(uint8_t block[DT_DATA_USERBLOCK], const void *content, size_t n)
{
    char hex[65];
    dt_sha256(hex, content, n);
    gate_block(block, hex);
}

int dt_dataset_seal(const char *path)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return dt_seterr("%s: cannot open: %s", path, strerror(errno));
    char hex[65];
    uint8_t ub[DT_DATA_USERBLOCK];
    int rc = fseek(f, DT_DATA_USERBLOCK, SEEK_SET) == 0 && dt_sha256_stream(f, hex) == 0 ? 0 : -1;
    if (rc == 0) {
        gate_block(ub, hex);
        rc = fseek(f, 0, SEEK_SET) == 0 && fwrite(ub, 1, sizeof ub, f) == sizeof ub ? 0 : -1;
    }
    if (fclose(f) != 0) rc = -1;
    return rc < 0 ? dt_seterr("%s: cannot write the checksum block: %s", path, strerror(errno)) : 0;
}

int dt_dataset_verify(const char *path, size_t *size, char sha256[65])
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return dt_seterr("%s: no such file; run `dtrain prepare` to build it (see data/README.md) or "
                         "pass the right path with --data", path);
    if (dt_check_regular(path, "data set file") < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", dt_lasterr());
        return dt_seterr("%s; pass a file built by `dtrain prepare` with --data", why);
    }
    FILE *f = fopen(path, "rb");
    if (!f) return dt_seterr("%s: cannot open: %s", path, strerror(errno));
    uint8_t ub[DT_DATA_USERBLOCK];
    size_t got = fread(ub, 1, sizeof ub, f);
    const size_t nm = sizeof DT_DATA_GATE_MAGIC - 1;
    static const uint8_t hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    int rc = 0;
    if (got >= 8 && memcmp(ub, hdf5_sig, 8) == 0) {
        rc = dt_seterr("%s: an HDF5 file without dtrain's checksum block (made by an older dtrain, "
                       "or not a dtrain data set); rebuild it with `dtrain prepare --out %s`", path, path);
    } else if (got < sizeof ub || memcmp(ub, DT_DATA_GATE_MAGIC, nm) != 0) {
        rc = dt_seterr("%s: not a dtrain data set (no dtrain header in its first %d bytes); build one "
                       "with `dtrain prepare --out %s`", path, DT_DATA_USERBLOCK, path);
    } else {
        char want[65], have[65];
        memcpy(want, ub + nm, 64);
        want[64] = '\0';
        int tail_ok = ub[nm + 64] == '\n';
        for (size_t i = nm + 65; i < sizeof ub; i++) tail_ok &= ub[i] == 0;
        int bad = !tail_ok || dt_sha256_stream(f, have) < 0;
        if (bad | !dt_sha256_same(want, have))
            rc = dt_seterr("%s: its content does not match the SHA-256 in its header (damaged, "
                           "truncated or edited file); rebuild it with `dtrain prepare --out %s`",
                           path, path);
    }
    if (rc == 0 && fstat(fileno(f), &st) != 0) rc = dt_seterr("%s: %s", path, strerror(errno));
    fclose(f);
    if (rc == 0 && size) *size = (size_t)st.st_size;
    if (rc == 0 && sha256) memcpy(sha256, ub + nm, 64), sha256[64] = '\0';
    return rc;
}

/* ---- the file ------------------------------------------------------------------ */

dt_dataset *dt_dataset_open(const char *path)
{
    /* rank 0 checks the gate; nobody hands the file to HDF5 unless it passed */
    size_t size = 0;
    int64_t verdict[2] = {0, 0};
    char sha[65] = "";
    if (dt_rank() == 0) {
        verdict[0] = dt_dataset_verify(path, &size, sha) == 0;
        verdict[1] = (int64_t)size;
    }
    dt_bcast(verdict, sizeof verdict, 0);
    dt_bcast(sha, sizeof sha, 0);
    if (!verdict[0]) {
        if (dt_rank() != 0) dt_seterr("%s: refused on rank 0", path);
        return NULL;
    }
    quiet_t q = quiet_on();
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        quiet_off(q);
        dt_seterr("%s: not an HDF5 file (or a truncated/corrupt one); run `dtrain prepare` again to "
                  "rebuild it", path);
        return NULL;
    }
    hid_t fapl = (hid_t)dt_h5_fapl();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        quiet_off(q);
        dt_seterr("%s: HDF5 cannot open it (truncated or corrupt?); run `dtrain prepare` again to "
                  "rebuild it", path);
        return NULL;
    }
    int64_t ver = -1;
    int ok = dt_h5_get_i64(f, "format_version", &ver) == 0;
    dt_dataset *ds = NULL;
    if (!ok) {
        dt_seterr("%s: no format_version attribute: not a dtrain data set; build one with `dtrain "
                  "prepare`", path);
    } else if (ver != DT_DATA_FORMAT_VERSION) {
        dt_seterr("%s: data set format_version %lld, this dtrain reads version %d; rebuild it with "
                  "`dtrain prepare`", path, (long long)ver, DT_DATA_FORMAT_VERSION);
    } else {
        int vae = link_exists(f, "vae/train") && link_exists(f, "vae/test");
        int cyc = link_exists(f, "cyclegan/A/train") && link_exists(f, "cyclegan/B/train") &&
                  link_exists(f, "cyclegan/A/test") && link_exists(f, "cyclegan/B/test");
        if (!vae && !cyc) {
            dt_seterr("%s: neither the /vae nor the /cyclegan groups are complete; rebuild the file "
                      "with `dtrain prepare`", path);
        } else {
            ds = dt_alloc(sizeof *ds);
            ds->file = f;
            ds->path = dt_strdup(path);
            ds->has_vae = vae;
            ds->has_cyclegan = cyc;
            ds->size = (size_t)verdict[1];
            memcpy(ds->sha256, sha, sizeof ds->sha256);
        }
    }
    if (!ds) H5Fclose(f);
    quiet_off(q);
    return ds;
}

void dt_dataset_close(dt_dataset *ds)
{
    if (!ds) return;
    H5Fclose(ds->file);
    dt_free(ds->path);
    dt_free(ds);
}

int dt_dataset_has(const dt_dataset *ds, const char *group)
{
    if (strcmp(group, "vae") == 0) return ds->has_vae;
    if (strcmp(group, "cyclegan") == 0) return ds->has_cyclegan;
    return 0;
}

const char *dt_dataset_sha256(const dt_dataset *ds) { return ds->sha256; }


/* A 1-D uint8 dataset of length n, read whole (collectively). */
static int read_labels(const dt_dataset *ds, hid_t g, const char *split, const char *name, size_t n,
                       uint8_t *out)
{
    hid_t d = H5Lexists(g, name, H5P_DEFAULT) > 0 ? H5Dopen2(g, name, H5P_DEFAULT) : -1;
    if (d < 0) return dt_seterr("%s: /%s/%s missing; rebuild the file with `dtrain prepare`", ds->path, split, name);
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    hsize_t dim = 0;
    int rc = 0;
    if (H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &dim, NULL) < 0 ||
        dim != n || H5Tget_class(t) != H5T_INTEGER || H5Tget_size(t) != 1 ||
        H5Tget_sign(t) != H5T_SGN_NONE)
        rc = dt_seterr("%s: /%s/%s is not uint8 [%zu] like the images; rebuild the file with "
                       "`dtrain prepare`", ds->path, split, name, n);
    if (rc == 0 && n) {
        hid_t x = (hid_t)dt_h5_dxpl(1);
        if (H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, x, out) < 0)
            rc = dt_seterr("%s: cannot read /%s/%s (corrupt file?)", ds->path, split, name);
        H5Pclose(x);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (out[i] > 9)
            rc = dt_seterr("%s: /%s/%s[%zu] is %u, not 0-9; rebuild the file with `dtrain prepare`",
                           ds->path, split, name, i, out[i]);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

int dt_dataset_mapping(dt_dataset *ds, int domain, uint8_t colors[10])
{
    quiet_t q = quiet_on();
    hid_t g = link_exists(ds->file, "cyclegan") ? H5Gopen2(ds->file, "cyclegan", H5P_DEFAULT) : -1;
    int rc = g < 0 ? dt_seterr("%s has no /cyclegan group; run `dtrain prepare`", ds->path)
                   : read_labels(ds, g, "cyclegan", domain ? "mapping_B" : "mapping_A", 10, colors);
    if (g >= 0) H5Gclose(g);
    quiet_off(q);
    return rc;
}

dt_split *dt_split_open(dt_dataset *ds, const char *name)
{
    quiet_t q = quiet_on();
    dt_split *sp = NULL;
    hid_t g = -1, img = -1;
    if (!link_exists(ds->file, name)) {
        dt_seterr("%s: no split /%s in the data set; rebuild it with `dtrain prepare`", ds->path, name);
        goto fail;
    }
    g = H5Gopen2(ds->file, name, H5P_DEFAULT);
    img = H5Lexists(g, "images", H5P_DEFAULT) > 0 ? H5Dopen2(g, "images", H5P_DEFAULT) : -1;
    if (g < 0 || img < 0) {
        dt_seterr("%s: /%s/images missing; rebuild the file with `dtrain prepare`", ds->path, name);
        goto fail;
    }
    hid_t s = H5Dget_space(img), t = H5Dget_type(img), dcpl = H5Dget_create_plist(img);
    hsize_t dims[4] = {0}, cdims[4] = {0};
    int good = H5Sget_simple_extent_ndims(s) == 4 && H5Sget_simple_extent_dims(s, dims, NULL) == 4 &&
               dims[1] == 3 && dims[2] == DT_IMG_SIDE && dims[3] == DT_IMG_SIDE &&
               H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE &&
               dims[0] < UINT32_MAX;
    size_t chunk = DT_DATA_CHUNK;
    if (good && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 4, cdims) == 4 && cdims[0] > 0)
        chunk = (size_t)cdims[0];
    if (chunk > 4096) chunk = 4096; /* a reading unit only: a crafted huge chunk must not size buffers */
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Sclose(s);
    if (!good) {
        dt_seterr("%s: /%s/images is not uint8 [N,3,28,28]; rebuild the file with `dtrain prepare`",
                  ds->path, name);
        goto fail;
    }
    if (dims[0] == 0) {
        dt_seterr("%s: /%s holds no images; rebuild the file with `dtrain prepare` from a source "
                  "with more images", ds->path, name);
        goto fail;
    }
    if (dims[0] > ds->size) { /* each image has a stored digit and color byte */
        dt_seterr("%s: /%s claims %llu images in a file of %zu bytes (corrupt file?); rebuild it "
                  "with `dtrain prepare`", ds->path, name, (unsigned long long)dims[0], ds->size);
        goto fail;
    }
    sp = dt_alloc(sizeof *sp);
    sp->ds = ds;
    sp->images = img;
    sp->n = (size_t)dims[0];
    sp->chunk = chunk;
    snprintf(sp->name, sizeof sp->name, "%s", name);
    sp->digits = dt_alloc(sp->n);
    sp->colors = dt_alloc(sp->n);
    if (read_labels(ds, g, name, "digits", sp->n, sp->digits) < 0 ||
        read_labels(ds, g, name, "colors", sp->n, sp->colors) < 0) {
        dt_free(sp->digits);
        dt_free(sp->colors);
        dt_free(sp);
        sp = NULL;
        goto fail;
    }
    H5Gclose(g);
    quiet_off(q);
    return sp;
fail:
    if (img >= 0) H5Dclose(img);
    if (g >= 0) H5Gclose(g);
    quiet_off(q);
    return NULL;
}

void dt_split_close(dt_split *sp)
{
    if (!sp) return;
    H5Dclose(sp->images);
    dt_free(sp->digits);
    dt_free(sp->colors);
    dt_free(sp);
}

size_t dt_split_len(const dt_split *sp) { return sp->n; }
size_t dt_split_chunk(const dt_split *sp) { return sp->chunk; }
const char *dt_split_name(const dt_split *sp) { return sp->name; }

int dt_split_read_runs(dt_split *sp, const size_t *start, const size_t *count, size_t nruns,
                       uint8_t *out)
{
    /* One regular hyperslab per run: HDF5 maps a regular selection to chunks
     * directly, while a union of hyperslabs is mapped element by element
     * (~30x slower for this data). */
    hid_t fs = H5Dget_space(sp->images);
    hid_t x = (hid_t)dt_h5_dxpl(0);
    quiet_t q = quiet_on();
    herr_t r = 0;
    for (size_t i = 0; i < nruns && r >= 0; i++) {
        if (count[i] == 0) continue;
        hsize_t st[4] = {start[i], 0, 0, 0}, cnt[4] = {count[i], 3, DT_IMG_SIDE, DT_IMG_SIDE};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, cnt, NULL);
        hid_t ms = H5Screate_simple(4, cnt, NULL);
        r = H5Dread(sp->images, H5T_NATIVE_UINT8, ms, fs, x, out);
        H5Sclose(ms);
        out += count[i] * DT_IMG;
    }
    quiet_off(q);
    H5Pclose(x);
    H5Sclose(fs);
    if (r < 0)
        return dt_seterr("%s: cannot read images of /%s (corrupt file?); rebuild it with `dtrain "
                         "prepare`", sp->ds->path, sp->name);
    return 0;
}

typedef struct {
    uint32_t idx;
    uint32_t at; /* position in the caller's list */
} req;

static int cmp_req(const void *a, const void *b)
{
    const req *x = a, *y = b;
    return x->idx < y->idx ? -1 : x->idx > y->idx ? 1 : (x->at > y->at) - (x->at < y->at);
}

int dt_split_read(dt_split *sp, const uint32_t *idx, size_t n, uint8_t *images, uint8_t *digits,
                  uint8_t *colors)
{
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= sp->n)
            return dt_seterr("%s: image index %u out of range (/%s has %zu images)", sp->ds->path,
                             idx[i], sp->name, sp->n);
    for (size_t i = 0; i < n; i++) {
        if (digits) digits[i] = sp->digits[idx[i]];
        if (colors) colors[i] = sp->colors[idx[i]];
    }
    if (!images || n == 0) return 0;
    /* Sort the requests, then read, per chunk, the run from its first to its
     * last requested image (one read per chunk) and scatter. */
    req *r = dt_alloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = (req){idx[i], (uint32_t)i};
    qsort(r, n, sizeof *r, cmp_req);
    uint8_t *buf = dt_alloc(sp->chunk * DT_IMG);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t c = r[i].idx / sp->chunk, j = i;
        while (j < n && r[j].idx / sp->chunk == c) j++;
        size_t lo = r[i].idx, hi = r[j - 1].idx;
        size_t cnt = hi - lo + 1;
        rc = dt_split_read_runs(sp, &lo, &cnt, 1, buf);
        for (size_t k = i; k < j && rc == 0; k++)
            memcpy(images + (size_t)r[k].at * DT_IMG, buf + (r[k].idx - lo) * DT_IMG,
                   DT_IMG);
        i = j;
    }
    dt_free(buf);
    dt_free(r);
    return rc;
}
