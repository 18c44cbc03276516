/* dt_prepare: MNIST IDX files (or synthetic digits) -> the colored-MNIST HDF5
 * file. One process, serial HDF5, written to a temporary name and renamed so
 * a good file is never replaced by a half-written one. Layout: data/README.md. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dtrain/core.h"
#include "dtrain/data.h"

#include "prepare_h5.h"

/* ---- sources ----------------------------------------------------------------- */

/* dir/base(.gz) if one exists (the .gz first), else NULL. */
static char *find_file(const char *dir, const char *base)
{
    static const char *const ext[2] = {".gz", ""};
    for (int e = 0; e < 2; e++) {
        size_t n = strlen(dir) + strlen(base) + 8;
        char *p = dt_alloc(n);
        snprintf(p, n, "%s/%s%s", dir, base, ext[e]);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) return p;
        dt_free(p);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* mkdir -p of the folder part of path. */
static int make_parent(const char *path)
{
    char *d = dt_strdup(path);
    char *slash = strrchr(d, '/');
    int rc = 0;
    if (slash && slash != d) {
        *slash = '\0';
        for (char *p = d + 1; *p; p++) {
            if (*p != '/') continue;
            *p = '\0';
            if (mkdir(d, 0777) != 0 && errno != EEXIST) rc = -1;
            *p = '/';
        }
        if (mkdir(d, 0777) != 0 && errno != EEXIST) rc = -1;
        if (rc < 0 || access(d, W_OK) != 0)
            rc = dt_seterr("%s: cannot write into folder %s (%s); choose another place with --out",
                           path, d, strerror(errno));
    } else if (access(slash ? "/" : ".", W_OK) != 0) {
        rc = dt_seterr("%s: cannot write into the folder (%s); choose another place with --out", path,
                       strerror(errno));
    }
    dt_free(d);
    return rc;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- the file ------------------------------------------------------------------ */

typedef struct {
    dt_mnist train, test;   /* grey sources of the two splits */
    uint32_t *origin[2];    /* index in the source file of each train/test image */
    const char *source;     /* folder or "synthetic" */
    int synthetic;
    int nfiles;
    char *files[4];
    char sha[4][65];
} sources;

/* Write the gate block and the image to tmp with plain write + fsync, so a full disk or a
 * size limit comes back as errno and no library holds a half-written file. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : ENOSPC;
        done += (size_t)w;
    }
    return 0;
}

static int write_image(const char *tmp, const uint8_t *img, size_t n)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return dt_seterr("%s: cannot create (%s); check the folder is writable or choose another "
                         "place with --out", tmp, strerror(errno));
    uint8_t gate[DT_DATA_USERBLOCK];
    dt_dataset_gate(gate, img, n);
    int e = write_all(fd, gate, sizeof gate);
    if (!e) e = write_all(fd, img, n);
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e) return 0;
    unlink(tmp);
    return dt_seterr("%s: writing the data set failed (%s); nothing was replaced; free some space or "
                     "choose another place with --out", tmp, strerror(e));
}

/* The file is built in memory (HDF5's core driver, no backing store) and
 * written, behind its gate block, by write_image. */
/* Split t (0: train, 1: test) of m: the VAE's set (a seeded palette color
 * per image), then the CycleGAN's halves of a seeded permutation (sorted, for
 * locality), A coloring digit d with palette[d], B with palette[(d+3) mod 10]. */
static int write_splits(hid_t f, const dt_mnist *m, int t, const uint32_t *origin, uint64_t seed, int quiet)
{
    static const char *const names[2] = {"train", "test"};
    size_t n = m->n, na = n / 2, nb = n - n / 2;
    uint32_t *src_idx = dt_alloc((n ? n : 1) * sizeof(uint32_t)), *perm = dt_alloc((n ? n : 1) * sizeof(uint32_t));
    uint32_t *half = dt_alloc((nb ? nb : 1) * sizeof(uint32_t));
    uint8_t *color = dt_alloc(n ? n : 1), *ccol = dt_alloc(nb ? nb : 1);
    for (size_t i = 0; i < n; i++) {
        src_idx[i] = (uint32_t)i;
        /* uniform palette index: stream (COLOR, a = split, b = image) */
        dt_stream s = {seed, DT_RNG_COLOR, (uint64_t)t, i};
        color[i] = (uint8_t)(dt_rand_u64(s, 0) % 10);
    }
    char path[64];
    snprintf(path, sizeof path, "vae/%s", names[t]);
    if (!quiet) dt_log("prepare: writing /%s (%zu images)\n", path, n);
    split_spec sp = {n, m->images, m->labels, src_idx, color, origin};
    int rc = dt_prep_write_split(f, path, &sp);
    dt_stream ps = {seed, DT_RNG_SPLIT, 1, (uint64_t)t};
    dt_rand_permutation(perm, (uint32_t)n, ps);
    for (int dom = 0; dom < 2 && rc == 0; dom++) {
        size_t h = dom == 0 ? na : nb;
        memcpy(half, perm + (dom == 0 ? 0 : na), h * sizeof(uint32_t));
        qsort(half, h, sizeof(uint32_t), cmp_u32);
        for (size_t i = 0; i < h; i++) ccol[i] = (uint8_t)((m->labels[half[i]] + 3 * dom) % 10);
        snprintf(path, sizeof path, "cyclegan/%c/%s", dom == 0 ? 'A' : 'B', names[t]);
        if (!quiet) dt_log("prepare: writing /%s (%zu images)\n", path, h);
        split_spec cs = {h, m->images, m->labels, half, ccol, half};
        rc = dt_prep_write_split(f, path, &cs);
    }
    dt_free(src_idx);
    dt_free(color);
    dt_free(perm);
    dt_free(half);
    dt_free(ccol);
    return rc;
}

/* /cyclegan's digit -> palette mappings of A and B, and /palette */
static int write_colors(hid_t f)
{
    uint8_t map[2][10];
    for (int d = 0; d < 10; d++) {
        map[0][d] = (uint8_t)d;
        map[1][d] = (uint8_t)((d + 3) % 10);
    }
    hid_t g = H5Gopen2(f, "cyclegan", H5P_DEFAULT);
    int ok = g >= 0 && dt_prep_write_u8(g, "mapping_A", map[0], 10) == 0 && dt_prep_write_u8(g, "mapping_B", map[1], 10) == 0;
    if (g >= 0)
        ok = ok && dt_prep_attr_string(g, "mapping", "A: digit d has palette[d]; B: digit d has palette[(d+3) mod 10]") == 0;
    if (g >= 0) H5Gclose(g);
    if (!ok) return -1;
    hsize_t d[2] = {10, 3};
    hid_t sp = H5Screate_simple(2, d, NULL);
    hid_t ds = H5Dcreate2(f, "palette", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dt_palette) >= 0 &&
         dt_prep_attr_strings(ds, "names", dt_palette_names, 10) == 0;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    return ok ? 0 : -1;
}

/* the root's attributes: format, provenance, sizes */
static int write_provenance(hid_t f, const sources *src, uint64_t seed)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *files[4], *shas[4];
    for (int i = 0; i < src->nfiles; i++) {
        files[i] = src->files[i];
        shas[i] = src->sha[i];
    }
    if (dt_prep_attr_i64(f, "format_version", DT_DATA_FORMAT_VERSION) < 0 ||
        dt_prep_attr_string(f, "created_by", "dtrain " DT_VERSION) < 0 || dt_prep_attr_u64(f, "seed", seed) < 0 ||
        dt_prep_attr_i64(f, "synthetic", src->synthetic) < 0 || dt_prep_attr_string(f, "source", src->source) < 0 ||
        dt_prep_attr_strings(f, "source_files", files, (size_t)src->nfiles) < 0 ||
        dt_prep_attr_strings(f, "source_sha256", shas, (size_t)src->nfiles) < 0 ||
        dt_prep_attr_i64(f, "n_train", (int64_t)src->train.n) < 0 || dt_prep_attr_i64(f, "n_test", (int64_t)src->test.n) < 0 ||
        dt_prep_attr_string(f, "created_utc", when) < 0)
        return -1;
    return 0;
}

/* the file built in memory, as bytes (without the user block) */
static int file_image(hid_t f, uint8_t **img, size_t *nimg)
{
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) return -1;
    ssize_t n = H5Fget_file_image(f, NULL, 0);
    if (n <= 0) return -1;
    *nimg = (size_t)n;
    *img = dt_alloc(*nimg);
    return H5Fget_file_image(f, *img, *nimg) == n ? 0 : -1;
}

static int write_file(const char *tmp, const sources *src, uint64_t seed, int quiet)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fcpl < 0 || fapl < 0 || H5Pset_userblock(fcpl, DT_DATA_USERBLOCK) < 0 ||
        H5Pset_fapl_core(fapl, (size_t)1 << 22, 0) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0)
        DT_FATAL("HDF5 core driver unavailable");
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0) return dt_seterr("%s: HDF5 cannot create the file in memory", tmp);
    uint8_t *img = NULL;
    size_t nimg = 0;
    int rc = write_splits(f, &src->train, 0, src->origin[0], seed, quiet);
    if (rc == 0) rc = write_splits(f, &src->test, 1, src->origin[1], seed, quiet);
    if (rc == 0) rc = write_colors(f);
    if (rc == 0) rc = write_provenance(f, src, seed);
    if (rc == 0) rc = file_image(f, &img, &nimg);
    if (H5Fclose(f) < 0) rc = -1;
    if (rc < 0)
        dt_seterr("%s: HDF5 failed to build the data set in memory (out of memory?); nothing was replaced", tmp);
    else
        rc = write_image(tmp, img, nimg);
    dt_free(img);
    return rc;
}

/* Take images [idx[i]] of m into a new set. */
static void subset(dt_mnist *out, const dt_mnist *m, const uint32_t *idx, size_t n)
{
    out->n = n;
    out->images = dt_alloc(n * DT_PLANE);
    out->labels = dt_alloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(out->images + i * DT_PLANE, m->images + (size_t)idx[i] * DT_PLANE,
               DT_PLANE);
        out->labels[i] = m->labels[idx[i]];
    }
}

static void free_sources(sources *s)
{
    dt_mnist_free(&s->train);
    dt_mnist_free(&s->test);
    for (int i = 0; i < 4; i++) dt_free(s->files[i]);
    dt_free(s->origin[0]);
    dt_free(s->origin[1]);
}

static int load_sources(sources *s, const char *dir, int synthetic, uint64_t seed, int quiet)
{
    static const char *const base[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    char *p[4];
    for (int i = 0; i < 4; i++) p[i] = find_file(dir, base[i]);
    int full = p[0] && p[1] && p[2] && p[3], test_only = !full && p[2] && p[3];
    if (synthetic || (!full && !test_only)) {
        for (int i = 0; i < 4; i++) dt_free(p[i]);
        if (!synthetic)
            return dt_seterr("%s: no MNIST files (t10k-images-idx3-ubyte.gz and "
                             "t10k-labels-idx1-ubyte.gz, optionally train-*); run `make data` to "
                             "download them, pass their folder with --mnist DIR (or set "
                             "DTRAIN_MNIST), or use --synthetic for stand-in digits", dir);
        /* synthetic: 9,000 / 1,000 stroke digits */
        dt_warn("*** SYNTHETIC data: stroke-drawn stand-in digits, not MNIST. Results on them say "
                "nothing about MNIST; run `make data` and prepare without --synthetic for the real "
                "set. ***");
        s->synthetic = 1;
        s->source = "synthetic";
        size_t n[2] = {9000, 1000};
        dt_mnist *m[2] = {&s->train, &s->test};
        for (int t = 0; t < 2; t++) {
            m[t]->n = n[t];
            m[t]->images = dt_alloc(n[t] * DT_PLANE);
            m[t]->labels = dt_alloc(n[t]);
            /* different seeds so test digits are not train digits */
            dt_synth_digits(m[t]->images, m[t]->labels, n[t], seed * 2 + (uint64_t)t);
        }
        s->nfiles = 1;
        s->files[0] = dt_strdup("synthetic");
        snprintf(s->sha[0], 65, "-");
        return 0;
    }
    s->source = dir;
    int first = full ? 0 : 2;
    for (int i = first; i < 4; i++) {
        s->files[s->nfiles] = p[i];
        p[i] = NULL;
        if (dt_sha256_file(s->files[s->nfiles], s->sha[s->nfiles]) < 0) goto fail;
        s->nfiles++;
    }
    for (int i = 0; i < 4; i++) dt_free(p[i]);
    if (full) {
        if (dt_mnist_load(s->files[0], s->files[1], &s->train) < 0) goto fail;
        if (dt_mnist_load(s->files[2], s->files[3], &s->test) < 0) goto fail;
    } else {
        dt_mnist all;
        if (dt_mnist_load(s->files[0], s->files[1], &all) < 0) goto fail;
        if (all.n < 2) {
            dt_mnist_free(&all);
            return dt_seterr("%s: only %zu image(s); too few to split", s->files[0], all.n);
        }
        /* seeded 90/10 split of the test files (9,000 / 1,000 for MNIST) */
        size_t ntest = all.n / 10 ? all.n / 10 : 1;
        uint32_t *perm = dt_alloc(all.n * sizeof(uint32_t));
        dt_stream ps = {seed, DT_RNG_SPLIT, 0, 0};
        dt_rand_permutation(perm, (uint32_t)all.n, ps);
        qsort(perm, all.n - ntest, sizeof(uint32_t), cmp_u32);
        qsort(perm + all.n - ntest, ntest, sizeof(uint32_t), cmp_u32);
        subset(&s->train, &all, perm, all.n - ntest);
        subset(&s->test, &all, perm + all.n - ntest, ntest);
        s->origin[0] = dt_alloc((all.n - ntest) * sizeof(uint32_t));
        s->origin[1] = dt_alloc(ntest * sizeof(uint32_t));
        memcpy(s->origin[0], perm, (all.n - ntest) * sizeof(uint32_t));
        memcpy(s->origin[1], perm + all.n - ntest, ntest * sizeof(uint32_t));
        dt_free(perm);
        dt_mnist_free(&all);
        if (!quiet)
            dt_log("prepare: only the t10k files in %s: split %zu train / %zu test (seed %llu)\n",
                   dir, s->train.n, s->test.n, (unsigned long long)seed);
    }
    return 0;
fail:
    for (int i = 0; i < 4; i++) dt_free(p[i]);
    return -1;
}

int dt_prepare(const dt_prepare_opts *o)
{
    const char *dir = o->mnist_dir;
    if (!dir || !*dir) dir = getenv("DTRAIN_MNIST");
    if (!dir || !*dir) dir = "data/mnist";
    const char *out = o->out && *o->out ? o->out : DT_DATA_DEFAULT_PATH;
    uint64_t seed = o->seed ? o->seed : 1;
    double t0 = dt_now();

    /* only a missing path or a regular file may be (re)placed: never a FIFO,
     * a folder, a device or a symbolic link loop */
    struct stat lst, st;
    if (lstat(out, &lst) == 0) {
        int bad = S_ISLNK(lst.st_mode) && stat(out, &st) != 0 && errno == ENOENT
                      ? dt_seterr("data set file %s: a symbolic link to a missing file", out)
                      : dt_check_regular(out, "data set file");
        if (bad < 0) {
            char why[512];
            snprintf(why, sizeof why, "%s", dt_lasterr());
            return dt_seterr("%s; prepare replaces only a regular file: remove it or choose another "
                             "path", why);
        }
    }

    sources src;
    memset(&src, 0, sizeof src);
    if (load_sources(&src, dir, o->synthetic, seed, o->quiet) < 0) {
        free_sources(&src);
        return -1;
    }
    const dt_mnist *sets[2] = {&src.train, &src.test};
    for (int t = 0; t < 2; t++)
        if (!src.origin[t]) {
            src.origin[t] = dt_alloc((sets[t]->n ? sets[t]->n : 1) * sizeof(uint32_t));
            for (size_t i = 0; i < sets[t]->n; i++) src.origin[t][i] = (uint32_t)i;
        }
    if (make_parent(out) < 0) {
        free_sources(&src);
        return -1;
    }
    size_t n = strlen(out) + 32;
    char *tmp = dt_alloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", out, (long)getpid());
    unlink(tmp); /* a leftover of a crashed run with a recycled pid */

    /* HDF5 prints its error stack by default; our messages say it better. */
    H5E_auto2_t efunc;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efunc, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = write_file(tmp, &src, seed, o->quiet);
    H5Eset_auto2(H5E_DEFAULT, efunc, edata);

    if (rc == 0 && rename(tmp, out) != 0)
        rc = dt_seterr("%s: cannot rename the finished file to %s (%s)", tmp, out, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
    } else {
        char *d = dt_strdup(out);
        char *slash = strrchr(d, '/');
        if (slash) *slash = '\0';
        fsync_path(slash ? (*d ? d : "/") : "."); /* make the rename durable */
        dt_free(d);
        if (!o->quiet)
            dt_log("prepare: wrote %s (%zu train, %zu test%s) in %.1f s\n", out, src.train.n,
                   src.test.n, src.synthetic ? ", SYNTHETIC" : "", dt_now() - t0);
    }
    dt_free(tmp);
    free_sources(&src);
    return rc;
}
