/* The data module: IDX reading (real and broken files), SHA-256 vectors,
 * coloring, synthetic digits, dt_prepare (layout, provenance, atomicity),
 * dt_dataset_open on broken files, and the loader at one rank (orders,
 * coverage, partial batches, seek). Needs the real t10k files in
 * $DTRAIN_TEST_MNIST or /work/shared/data/mnist (or data/mnist). */
#include <check.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check_run.h"
#include "dtrain/core.h"
#include "dtrain/data.h"
#include "../fuzz/mkset.h"

static char g_tmp[256];      /* per-run scratch folder */
static char g_mnist[256];    /* folder with the t10k files */
static char g_good[300];     /* a prepared data set (from t10k) */

/* ---- helpers ------------------------------------------------------------------ */

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_tmp, name); }

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *p, size_t n)
{
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, p, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* An IDX file in memory: header for dims (ndim 1 or 3), then payload. */
static size_t make_idx(uint8_t *buf, int ndim, const uint32_t *dims, uint8_t fill)
{
    buf[0] = buf[1] = 0;
    buf[2] = 8;
    buf[3] = (uint8_t)ndim;
    size_t total = 1, o = 4;
    for (int d = 0; d < ndim; d++) {
        buf[o++] = (uint8_t)(dims[d] >> 24);
        buf[o++] = (uint8_t)(dims[d] >> 16);
        buf[o++] = (uint8_t)(dims[d] >> 8);
        buf[o++] = (uint8_t)dims[d];
        total *= dims[d];
    }
    memset(buf + o, fill, total);
    return o + total;
}

static int err_has(const char *s) { return strstr(dt_lasterr(), s) != NULL; }

#define ASSERT_ERR(call, ...)                                                             \
    do {                                                                                 \
        dt_clearerr();                                                                   \
        ck_assert_int_lt((call), 0);                                                     \
        const char *want_[] = {__VA_ARGS__};                                             \
        for (size_t i_ = 0; i_ < sizeof want_ / sizeof want_[0]; i_++)                   \
            ck_assert_msg(err_has(want_[i_]), "error \"%s\" lacks \"%s\"", dt_lasterr(),  \
                          want_[i_]);                                                    \
    } while (0)

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- IDX --------------------------------------------------------------------- */

START_TEST(idx_reads_real_t10k)
{
    char im[300], lb[300];
    snprintf(im, sizeof im, "%s/t10k-images-idx3-ubyte.gz", g_mnist);
    snprintf(lb, sizeof lb, "%s/t10k-labels-idx1-ubyte.gz", g_mnist);
    dt_idx x;
    ck_assert_int_eq(dt_idx_read(im, &x), 0);
    ck_assert_int_eq(x.ndim, 3);
    ck_assert_uint_eq(x.dims[0], 10000);
    ck_assert_uint_eq(x.dims[1], 28);
    ck_assert_uint_eq(x.dims[2], 28);
    ck_assert_uint_eq(x.size, 7840000);
    dt_idx_free(&x);
    dt_mnist m;
    ck_assert_int_eq(dt_mnist_load(im, lb, &m), 0);
    ck_assert_uint_eq(m.n, 10000);
    ck_assert_uint_eq(m.labels[0], 7);
    ck_assert_uint_eq(m.labels[1], 2);
    size_t hist[10] = {0}, ink = 0;
    for (size_t i = 0; i < m.n; i++) hist[m.labels[i]]++;
    for (int d = 0; d < 10; d++) ck_assert_uint_gt(hist[d], 800);
    for (size_t i = 0; i < DT_PLANE; i++) ink += m.images[i] > 0;
    ck_assert_uint_gt(ink, 50);
    dt_mnist_free(&m);

    /* the raw (uncompressed) form reads the same */
    char raw[300];
    tmp_path(raw, sizeof raw, "labels-raw");
    dt_idx gz;
    ck_assert_int_eq(dt_idx_read(lb, &gz), 0);
    uint8_t hdr[8] = {0, 0, 8, 1, 0, 0, 0x27, 0x10};
    uint8_t *buf = malloc(8 + gz.size);
    memcpy(buf, hdr, 8);
    memcpy(buf + 8, gz.data, gz.size);
    write_bytes(raw, buf, 8 + gz.size);
    ck_assert_int_eq(dt_idx_read(raw, &x), 0);
    ck_assert_int_eq(memcmp(x.data, gz.data, gz.size), 0);
    dt_idx_free(&x);
    dt_idx_free(&gz);
    free(buf);
}
END_TEST

START_TEST(idx_bad_inputs)
{
    char p[300];
    dt_idx x;
    /* missing file: says which and what to do */
    tmp_path(p, sizeof p, "nope-idx3-ubyte.gz");
    ASSERT_ERR(dt_idx_read(p, &x), p, "make data");
    ck_assert_ptr_null(x.data);

    /* random bytes, raw and gzipped */
    uint8_t junk[1000];
    dt_stream s = {7, DT_RNG_SAMPLE, 0, 0};
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(dt_rand_u64(s, i) | 1);
    tmp_path(p, sizeof p, "junk");
    write_bytes(p, junk, sizeof junk);
    ASSERT_ERR(dt_idx_read(p, &x), p, "not an IDX file");
    tmp_path(p, sizeof p, "junk.gz");
    write_gz(p, junk, sizeof junk);
    ASSERT_ERR(dt_idx_read(p, &x), p, "not an IDX file");

    /* a PNG header */
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10, 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    tmp_path(p, sizeof p, "image.png");
    write_bytes(p, png, sizeof png);
    ASSERT_ERR(dt_idx_read(p, &x), p, "not an IDX file", "bad magic");

    /* empty file */
    tmp_path(p, sizeof p, "empty");
    write_bytes(p, "", 0);
    ASSERT_ERR(dt_idx_read(p, &x), p, "not an IDX file");

    /* wrong type (int32) and wrong ndim */
    uint8_t *buf = malloc(100000);
    uint32_t d3[3] = {10, 28, 28}, d1[1] = {10};
    size_t n = make_idx(buf, 3, d3, 1);
    buf[2] = 0x0C;
    tmp_path(p, sizeof p, "int32");
    write_bytes(p, buf, n);
    ASSERT_ERR(dt_idx_read(p, &x), p, "0x0c");
    n = make_idx(buf, 3, d3, 1);
    buf[3] = 2;
    tmp_path(p, sizeof p, "ndim2");
    write_bytes(p, buf, n);
    ASSERT_ERR(dt_idx_read(p, &x), p, "dimensions");

    /* zero dimension */
    uint32_t dz[3] = {10, 0, 28};
    n = make_idx(buf, 3, dz, 1);
    tmp_path(p, sizeof p, "zero");
    write_bytes(p, buf, n);
    ASSERT_ERR(dt_idx_read(p, &x), p, "zero");

    /* truncated payload: raw and gz */
    n = make_idx(buf, 3, d3, 1);
    tmp_path(p, sizeof p, "trunc-raw");
    write_bytes(p, buf, n - 100);
    ASSERT_ERR(dt_idx_read(p, &x), p, "truncated", "expected 7840 bytes of pixels, found 7740");
    tmp_path(p, sizeof p, "trunc.gz");
    write_gz(p, buf, n - 100);
    ASSERT_ERR(dt_idx_read(p, &x), p, "truncated", "found 7740");
    /* truncated header */
    tmp_path(p, sizeof p, "trunc-hdr");
    write_bytes(p, buf, 9);
    ASSERT_ERR(dt_idx_read(p, &x), p, "truncated");

    /* a gzip file cut in the middle of the stream */
    char lb[300];
    snprintf(lb, sizeof lb, "%s/t10k-images-idx3-ubyte.gz", g_mnist);
    size_t len;
    uint8_t *real = read_all(lb, &len);
    tmp_path(p, sizeof p, "cut.gz");
    write_bytes(p, real, len / 2);
    dt_clearerr();
    ck_assert_int_lt(dt_idx_read(p, &x), 0);
    ck_assert(err_has(p) && (err_has("truncated") || err_has("corrupt")));
    /* a gzip file with a damaged stream */
    for (size_t i = len / 3; i < len / 3 + 64; i++) real[i] ^= 0x5a;
    tmp_path(p, sizeof p, "damaged.gz");
    write_bytes(p, real, len);
    dt_clearerr();
    ck_assert_int_lt(dt_idx_read(p, &x), 0);
    ck_assert(err_has(p) && (err_has("truncated") || err_has("corrupt")));
    free(real);

    /* trailing bytes: raw and gz */
    n = make_idx(buf, 1, d1, 3);
    buf[n] = 9;
    tmp_path(p, sizeof p, "trail");
    write_bytes(p, buf, n + 1);
    ASSERT_ERR(dt_idx_read(p, &x), p, "1 unexpected bytes");
    tmp_path(p, sizeof p, "trail.gz");
    write_gz(p, buf, n + 1);
    ASSERT_ERR(dt_idx_read(p, &x), p, "unexpected bytes");
    ck_assert_ptr_null(x.data);

    /* a folder */
    ASSERT_ERR(dt_idx_read(g_tmp, &x), g_tmp, "folder");
    free(buf);
}
END_TEST

/* The header is checked against what the file really holds before anything
 * is allocated: a claim of 2^31 labels in a tiny file is refused at once. */
START_TEST(idx_header_checked_before_allocation)
{
    char p[300];
    dt_idx x;
    uint8_t huge[8 + 16] = {0, 0, 8, 1, 0x80, 0, 0, 0};
    for (int i = 8; i < 24; i++) huge[i] = 1;
    double t0 = dt_now();
    tmp_path(p, sizeof p, "huge-labels");
    write_bytes(p, huge, sizeof huge);
    ASSERT_ERR(dt_idx_read(p, &x), p, "truncated", "expected 2147483648 bytes of labels, found 16");
    tmp_path(p, sizeof p, "huge-labels.gz");
    write_gz(p, huge, sizeof huge);
    ASSERT_ERR(dt_idx_read(p, &x), p, "truncated", "expected 2147483648 bytes of labels, found 16");
    ck_assert_ptr_null(x.data);
    ck_assert_msg(dt_now() - t0 < 0.5, "took %.2f s", dt_now() - t0);
    /* images: 2,739,137 x 28 x 28, just under the 2 GiB cap */
    uint8_t him[16 + 100] = {0, 0, 8, 3, 0, 0x29, 0xcb, 0xc1, 0, 0, 0, 28, 0, 0, 0, 28};
    tmp_path(p, sizeof p, "huge-images");
    write_bytes(p, him, sizeof him);
    ASSERT_ERR(dt_idx_read(p, &x), p, "truncated", "found 100");
    /* beyond the 2 GiB cap: refused from the header alone */
    him[4] = 0xff;
    write_bytes(p, him, sizeof him);
    ASSERT_ERR(dt_idx_read(p, &x), p, "too large");
    tmp_path(p, sizeof p, "huge-images.gz");
    write_gz(p, him, sizeof him);
    ASSERT_ERR(dt_idx_read(p, &x), p, "too large");

    /* oversized raw: one byte more than the header says */
    uint8_t *buf = malloc(100000);
    uint32_t d3[3] = {10, 28, 28}, d1[1] = {10};
    size_t n = make_idx(buf, 3, d3, 7);
    buf[n] = 1;
    tmp_path(p, sizeof p, "over-images");
    write_bytes(p, buf, n + 1);
    ASSERT_ERR(dt_idx_read(p, &x), p, "1 unexpected bytes after the 7840-byte payload");

    /* wrong magic, wrong ndim, gzip of each */
    n = make_idx(buf, 1, d1, 3);
    buf[1] = 1;
    tmp_path(p, sizeof p, "magic.gz");
    write_gz(p, buf, n);
    ASSERT_ERR(dt_idx_read(p, &x), p, "bad magic 00 01 08 01");
    n = make_idx(buf, 1, d1, 3);
    buf[3] = 4;
    tmp_path(p, sizeof p, "ndim4.gz");
    write_gz(p, buf, n);
    ASSERT_ERR(dt_idx_read(p, &x), p, "4 dimensions");
    /* a gzip file with bytes after the end of the stream */
    n = make_idx(buf, 1, d1, 3);
    tmp_path(p, sizeof p, "garbage.gz");
    write_gz(p, buf, n);
    FILE *f = fopen(p, "ab");
    fputs("tail", f);
    fclose(f);
    ASSERT_ERR(dt_idx_read(p, &x), p, "after the end of the gzip data");
    /* two gzip members (as `cat a.gz b.gz` makes) are one file */
    char p2[300];
    tmp_path(p2, sizeof p2, "two-members.gz");
    write_gz(p2, buf, 6);
    size_t l1;
    uint8_t *m1 = read_all(p2, &l1);
    write_gz(p2, buf + 6, n - 6);
    size_t l2;
    uint8_t *m2 = read_all(p2, &l2);
    uint8_t *both = malloc(l1 + l2);
    memcpy(both, m1, l1);
    memcpy(both + l1, m2, l2);
    write_bytes(p2, both, l1 + l2);
    ck_assert_int_eq(dt_idx_read(p2, &x), 0);
    ck_assert_uint_eq(x.size, 10);
    ck_assert_uint_eq(x.data[9], 3);
    dt_idx_free(&x);
    free(m1);
    free(m2);
    free(both);
    /* a damaged gzip trailer (CRC) */
    write_gz(p, buf, n);
    uint8_t *g = read_all(p, &l1);
    g[l1 - 6] ^= 0xff;
    write_bytes(p, g, l1);
    ASSERT_ERR(dt_idx_read(p, &x), p, "corrupt gzip data");
    free(g);
    free(buf);

    /* not regular files: refused before open() could block */
    tmp_path(p, sizeof p, "fifo-idx");
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    ASSERT_ERR(dt_idx_read(p, &x), p, "FIFO", "--mnist");
    tmp_path(p, sizeof p, "loop-idx");
    ck_assert_int_eq(symlink(p, p), 0);
    ASSERT_ERR(dt_idx_read(p, &x), p, "loop");
}
END_TEST

START_TEST(mnist_load_checks_pairs)
{
    uint8_t *buf = malloc(100000);
    char im[300], lb[300], p[300];
    uint32_t d3[3] = {10, 28, 28}, d1[1] = {10}, d9[1] = {9}, d20[3] = {10, 20, 20};
    tmp_path(im, sizeof im, "ok-images");
    write_bytes(im, buf, make_idx(buf, 3, d3, 200));
    tmp_path(lb, sizeof lb, "ok-labels");
    write_bytes(lb, buf, make_idx(buf, 1, d1, 4));
    dt_mnist m;
    ck_assert_int_eq(dt_mnist_load(im, lb, &m), 0);
    ck_assert_uint_eq(m.n, 10);
    ck_assert_uint_eq(m.images[783], 200);
    dt_mnist_free(&m);

    /* wrong image size */
    tmp_path(p, sizeof p, "img20");
    write_bytes(p, buf, make_idx(buf, 3, d20, 1));
    ASSERT_ERR(dt_mnist_load(p, lb, &m), p, "20x20", "28x28");
    /* count mismatch */
    tmp_path(p, sizeof p, "labels9");
    write_bytes(p, buf, make_idx(buf, 1, d9, 1));
    ASSERT_ERR(dt_mnist_load(im, p, &m), p, "9 labels", "10 images");
    /* label > 9 */
    size_t n = make_idx(buf, 1, d1, 2);
    buf[n - 3] = 10;
    tmp_path(p, sizeof p, "label10");
    write_bytes(p, buf, n);
    ASSERT_ERR(dt_mnist_load(im, p, &m), p, "label 10", "item 7");
    /* swapped */
    ASSERT_ERR(dt_mnist_load(lb, im, &m), lb, "image file");
    ck_assert_ptr_null(m.images);
    free(buf);
}
END_TEST

/* ---- SHA-256 -------------------------------------------------------------------- */

START_TEST(sha256_vectors)
{
    char h[65];
    dt_sha256(h, "", 0);
    ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    dt_sha256(h, "abc", 3);
    ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    dt_sha256(h, m2, strlen(m2));
    ck_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m4 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                     "klmnopqrlmnopqrsmnopqrstnopqrstu";
    dt_sha256(h, m4, strlen(m4));
    ck_assert_str_eq(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    char p[300];
    tmp_path(p, sizeof p, "million-a");
    write_bytes(p, a, 1000000);
    ck_assert_int_eq(dt_sha256_file(p, h), 0);
    ck_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* 55, 56, 63, 64 bytes: padding edge cases, file and memory agree */
    for (size_t n = 55; n <= 65; n++) {
        char h2[65];
        write_bytes(p, a, n);
        ck_assert_int_eq(dt_sha256_file(p, h2), 0);
        dt_sha256(h, a, n);
        ck_assert_str_eq(h, h2);
    }
    write_bytes(p, "abc", 3);
    ck_assert_int_eq(dt_sha256_file(p, h), 0);
    ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(a);
    tmp_path(p, sizeof p, "no-such-file");
    ASSERT_ERR(dt_sha256_file(p, h), p);
}
END_TEST

/* ---- coloring ---------------------------------------------------------------------- */

START_TEST(colorize_rounds_halves_up)
{
    uint8_t grey[DT_PLANE], out[DT_IMG];
    for (int i = 0; i < DT_PLANE; i++) grey[i] = (uint8_t)(i % 256);
    for (int c = 0; c < 10; c++) {
        dt_colorize(out, grey, dt_palette[c]);
        int wrong = 0;
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < DT_PLANE; i++) {
                int g = grey[i], want;
                float ck = dt_palette[c][k];
                if (ck == 0) want = 0;
                else if (ck == 1) want = g;
                else want = (g + 1) / 2; /* g/2 with .5 rounded up, in integers */
                wrong += out[k * DT_PLANE + i] != want;
            }
        ck_assert_int_eq(wrong, 0);
    }
    /* the cases named in the SPEC reading: 1 * .5 -> 1, 255 * .5 -> 128, 3 * .5 -> 2 */
    const float orange[3] = {1, .5f, 0};
    grey[0] = 1;
    grey[1] = 255;
    grey[2] = 3;
    grey[3] = 0;
    dt_colorize(out, grey, orange);
    ck_assert_int_eq(out[DT_PLANE + 0], 1);
    ck_assert_int_eq(out[DT_PLANE + 1], 128);
    ck_assert_int_eq(out[DT_PLANE + 2], 2);
    ck_assert_int_eq(out[DT_PLANE + 3], 0);
    ck_assert_int_eq(out[1], 255);
    ck_assert_int_eq(out[2 * DT_PLANE + 1], 0);
    /* a general color: round(g * c) */
    const float odd[3] = {0.3f, 0.25f, 0.75f};
    grey[0] = 2; /* 0.5 (0.25*2): halves up -> 1 */
    dt_colorize(out, grey, odd);
    ck_assert_int_eq(out[DT_PLANE + 0], 1);
    ck_assert_int_eq(out[2 * DT_PLANE + 0], 2); /* 1.5 -> 2 */
    ck_assert_int_eq(out[1], 77);                    /* 76.5 (in float .3 is a hair above) */
    ck_assert_str_eq(dt_palette_names[0], "red");
    ck_assert_str_eq(dt_palette_names[7], "violet");
    ck_assert_str_eq(dt_palette_names[9], "white");
    ck_assert(dt_palette[7][0] == 0.5f && dt_palette[7][1] == 0 && dt_palette[7][2] == 1);
}
END_TEST

/* ---- synthetic digits ----------------------------------------------------------------- */

START_TEST(synth_deterministic_and_inked)
{
    enum { N = 500 };
    uint8_t *a = malloc(N * DT_PLANE), *b = malloc(N * DT_PLANE), *c = malloc(N * DT_PLANE);
    uint8_t la[N], lb[N], lc[N];
    dt_synth_digits(a, la, N, 42);
    dt_synth_digits(b, lb, N, 42);
    dt_synth_digits(c, lc, N, 43);
    ck_assert_int_eq(memcmp(a, b, N * DT_PLANE), 0);
    ck_assert_int_eq(memcmp(la, lb, N), 0);
    ck_assert_int_ne(memcmp(a, c, N * DT_PLANE), 0);
    ck_assert_int_ne(memcmp(la, lc, N), 0);
    /* image i depends on (seed, i) only */
    uint8_t one[DT_PLANE], l1;
    dt_synth_digits(one, &l1, 1, 42);
    ck_assert_int_eq(memcmp(one, a, DT_PLANE), 0);
    size_t hist[10] = {0};
    for (int i = 0; i < N; i++) {
        const uint8_t *g = a + (size_t)i * DT_PLANE;
        ck_assert_uint_le(la[i], 9);
        hist[la[i]]++;
        int ink = 0, full = 0;
        double cx = 0, cy = 0, mass = 0;
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                int v = g[y * 28 + x];
                ink += v > 0;
                full += v > 200;
                cx += v * (x + 0.5);
                cy += v * (y + 0.5);
                mass += v;
            }
        ck_assert_int_gt(ink, 40);   /* strokes, not dots */
        ck_assert_int_lt(ink, 400);  /* not a blob */
        ck_assert_int_gt(full, 10);
        /* a border of 2 pixels stays black, the ink is near the center */
        for (int k = 0; k < 28; k++) {
            ck_assert_int_eq(g[k], 0);
            ck_assert_int_eq(g[27 * 28 + k], 0);
            ck_assert_int_eq(g[k * 28], 0);
            ck_assert_int_eq(g[k * 28 + 27], 0);
        }
        ck_assert(fabs(cx / mass - 14) < 5 && fabs(cy / mass - 14) < 5);
    }
    for (int d = 0; d < 10; d++) ck_assert_uint_gt(hist[d], 25);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* ---- dt_prepare and the file ------------------------------------------------------------ */

static int64_t attr_i64(hid_t loc, const char *name)
{
    int64_t v = -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_INT64, &v), 0);
    H5Aclose(a);
    return v;
}

/* Strings of a 1-D fixed-length string attribute: n and a buffer of len each. */
static char *attr_strings(hid_t loc, const char *name, size_t *n, size_t *len)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    hssize_t np = H5Sget_simple_extent_npoints(s);
    *len = H5Tget_size(t);
    *n = (size_t)np;
    char *buf = calloc((size_t)np, *len);
    ck_assert_int_ge(H5Aread(a, t, buf), 0);
    H5Tclose(t);
    H5Sclose(s);
    H5Aclose(a);
    return buf;
}

static void read_u32(hid_t f, const char *path, uint32_t *out)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), 0);
    H5Dclose(d);
}

START_TEST(prepare_t10k_layout)
{
    dt_dataset *ds = dt_dataset_open(g_good);
    ck_assert_msg(ds != NULL, "%s", dt_lasterr());
    ck_assert(dt_dataset_has(ds, "vae"));
    ck_assert(dt_dataset_has(ds, "cyclegan"));
    ck_assert(!dt_dataset_has(ds, "other"));
    struct {
        const char *name;
        size_t n;
        int map; /* -1 uniform, 0 A, 3 B */
    } sp[6] = {{"vae/train", 9000, -1},      {"vae/test", 1000, -1},     {"cyclegan/A/train", 4500, 0},
               {"cyclegan/B/train", 4500, 3}, {"cyclegan/A/test", 500, 0}, {"cyclegan/B/test", 500, 3}};
    for (int s = 0; s < 6; s++) {
        dt_split *x = dt_split_open(ds, sp[s].name);
        ck_assert_msg(x != NULL, "%s", dt_lasterr());
        size_t n = dt_split_len(x);
        ck_assert_uint_eq(n, sp[s].n);
        ck_assert_uint_eq(dt_split_chunk(x), 64);
        uint32_t *idx = malloc(n * sizeof *idx);
        for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
        uint8_t *img = malloc(n * DT_IMG), *dg = malloc(n), *co = malloc(n);
        ck_assert_int_eq(dt_split_read(x, idx, n, img, dg, co), 0);
        size_t hist[10] = {0};
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_le(dg[i], 9);
            ck_assert_uint_le(co[i], 9);
            if (sp[s].map >= 0) ck_assert_uint_eq(co[i], (dg[i] + sp[s].map) % 10);
            hist[co[i]]++;
            /* the channels follow the color: zero where the palette has 0,
             * the grey (max channel) where it has 1 */
            const uint8_t *im = img + i * DT_IMG;
            const float *c = dt_palette[co[i]];
            int ink = 0;
            int wrong = 0;
            for (int p = 0; p < DT_PLANE; p++) {
                uint8_t g = 0;
                for (int k = 0; k < 3; k++)
                    if (im[k * DT_PLANE + p] > g) g = im[k * DT_PLANE + p];
                ink += g > 0;
                for (int k = 0; k < 3; k++) {
                    int want = c[k] == 0 ? 0 : c[k] == 1 ? g : (g + 1) / 2;
                    wrong += im[k * DT_PLANE + p] != want;
                }
            }
            ck_assert_int_eq(wrong, 0);
            ck_assert_int_gt(ink, 20);
        }
        if (sp[s].map < 0 && n >= 1000)
            for (int k = 0; k < 10; k++) ck_assert_uint_gt(hist[k], n / 20); /* uniform-ish */
        free(idx);
        free(img);
        free(dg);
        free(co);
        dt_split_close(x);
    }
    ck_assert_ptr_null(dt_split_open(ds, "vae/nothing"));
    ck_assert(err_has("vae/nothing") && err_has(g_good));
    dt_dataset_close(ds);

    /* provenance, mappings, palette, disjoint halves: plain HDF5 */
    hid_t f = H5Fopen(g_good, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    ck_assert_int_eq(attr_i64(f, "format_version"), 1);
    ck_assert_int_eq(attr_i64(f, "seed"), 1);
    ck_assert_int_eq(attr_i64(f, "synthetic"), 0);
    ck_assert_int_eq(attr_i64(f, "n_train"), 9000);
    ck_assert_int_eq(attr_i64(f, "n_test"), 1000);
    ck_assert_int_gt(H5Aexists(f, "created_utc"), 0);
    ck_assert_int_gt(H5Aexists(f, "created_by"), 0);
    ck_assert_int_gt(H5Aexists(f, "source"), 0);
    size_t nf, lf, ns, ls;
    char *files = attr_strings(f, "source_files", &nf, &lf);
    char *shas = attr_strings(f, "source_sha256", &ns, &ls);
    ck_assert_uint_eq(nf, 2);
    ck_assert_uint_eq(ns, 2);
    for (size_t i = 0; i < nf; i++) {
        char h[65];
        ck_assert_int_eq(dt_sha256_file(files + i * lf, h), 0);
        ck_assert_str_eq(shas + i * ls, h);
    }
    ck_assert_ptr_nonnull(strstr(files, "t10k-images"));
    free(files);
    free(shas);
    uint8_t ma[10], mb[10];
    hid_t d = H5Dopen2(f, "cyclegan/mapping_A", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ma);
    H5Dclose(d);
    d = H5Dopen2(f, "cyclegan/mapping_B", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, mb);
    H5Dclose(d);
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(ma[k], k);
        ck_assert_int_eq(mb[k], (k + 3) % 10);
    }
    float pal[10][3];
    d = H5Dopen2(f, "palette", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pal);
    size_t nn, ln;
    char *names = attr_strings(d, "names", &nn, &ln);
    ck_assert_uint_eq(nn, 10);
    ck_assert_str_eq(names + 6 * ln, "orange");
    free(names);
    H5Dclose(d);
    ck_assert_int_eq(memcmp(pal, dt_palette, sizeof pal), 0);
    const char *halves[2][2] = {{"cyclegan/A/train/source_index", "cyclegan/B/train/source_index"},
                                {"cyclegan/A/test/source_index", "cyclegan/B/test/source_index"}};
    size_t nsplit[2] = {9000, 1000};
    for (int t = 0; t < 2; t++) {
        uint32_t *a = malloc(nsplit[t] / 2 * 4), *b = malloc(nsplit[t] / 2 * 4);
        uint8_t *seen = calloc(nsplit[t], 1);
        read_u32(f, halves[t][0], a);
        read_u32(f, halves[t][1], b);
        for (size_t i = 0; i < nsplit[t] / 2; i++) {
            ck_assert_uint_lt(a[i], nsplit[t]);
            ck_assert_uint_lt(b[i], nsplit[t]);
            seen[a[i]]++;
            seen[b[i]]++;
        }
        for (size_t i = 0; i < nsplit[t]; i++) ck_assert_int_eq(seen[i], 1); /* A, B disjoint, cover */
        free(a);
        free(b);
        free(seen);
    }
    /* /vae source_index: train and test partition the 10,000 t10k images, and
     * every stored image is its t10k image colored as recorded */
    {
        uint32_t *tr = malloc(9000 * 4), *te = malloc(1000 * 4);
        uint8_t *seen = calloc(10000, 1);
        read_u32(f, "vae/train/source_index", tr);
        read_u32(f, "vae/test/source_index", te);
        size_t bad = 0;
        for (size_t i = 0; i < 9000; i++) bad += tr[i] >= 10000 || seen[tr[i]]++;
        for (size_t i = 0; i < 1000; i++) bad += te[i] >= 10000 || seen[te[i]]++;
        ck_assert_uint_eq(bad, 0);
        char im[300], lb[300];
        snprintf(im, sizeof im, "%s/t10k-images-idx3-ubyte.gz", g_mnist);
        snprintf(lb, sizeof lb, "%s/t10k-labels-idx1-ubyte.gz", g_mnist);
        dt_mnist m;
        ck_assert_int_eq(dt_mnist_load(im, lb, &m), 0);
        dt_dataset *ds2 = dt_dataset_open(g_good);
        dt_split *te_sp = dt_split_open(ds2, "vae/test");
        uint32_t all[1000];
        for (uint32_t i = 0; i < 1000; i++) all[i] = i;
        uint8_t *img = malloc(1000 * DT_IMG), dg[1000], co[1000], want[DT_IMG];
        ck_assert_int_eq(dt_split_read(te_sp, all, 1000, img, dg, co), 0);
        for (size_t i = 0; i < 1000; i++) {
            dt_colorize(want, m.images + (size_t)te[i] * DT_PLANE, dt_palette[co[i]]);
            bad += memcmp(want, img + i * DT_IMG, DT_IMG) != 0;
            bad += dg[i] != m.labels[te[i]];
        }
        ck_assert_uint_eq(bad, 0);
        dt_split_close(te_sp);
        dt_dataset_close(ds2);
        dt_mnist_free(&m);
        free(img);
        free(tr);
        free(te);
        free(seen);
    }
    /* chunking and filters of the images */
    d = H5Dopen2(f, "vae/train/images", H5P_DEFAULT);
    hid_t pl = H5Dget_create_plist(d);
    hsize_t cd[4];
    ck_assert_int_eq(H5Pget_chunk(pl, 4, cd), 4);
    ck_assert_uint_eq(cd[0], 64);
    ck_assert_int_eq(H5Pget_nfilters(pl), 2);
    ck_assert_int_eq(attr_i64(d, "chunk"), 64);
    H5Pclose(pl);
    H5Dclose(d);
    H5Fclose(f);
}
END_TEST

START_TEST(prepare_is_seeded)
{
    /* same seed -> same images and colors; different seed -> different colors */
    char p2[300], p3[300];
    tmp_path(p2, sizeof p2, "again.h5");
    tmp_path(p3, sizeof p3, "seed2.h5");
    dt_prepare_opts o = {.mnist_dir = g_mnist, .out = p2, .seed = 1, .quiet = 1};
    ck_assert_int_eq(dt_prepare(&o), 0);
    o.out = p3;
    o.seed = 2;
    ck_assert_int_eq(dt_prepare(&o), 0);
    const char *paths[3] = {g_good, p2, p3};
    uint8_t col[3][1000], img[3][64 * DT_IMG];
    uint32_t idx[1000];
    for (int i = 0; i < 1000; i++) idx[i] = (uint32_t)i;
    for (int k = 0; k < 3; k++) {
        dt_dataset *ds = dt_dataset_open(paths[k]);
        ck_assert_ptr_nonnull(ds);
        dt_split *s = dt_split_open(ds, "vae/test");
        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(dt_split_read(s, idx, 1000, NULL, NULL, col[k]), 0);
        ck_assert_int_eq(dt_split_read(s, idx, 64, img[k], NULL, NULL), 0);
        dt_split_close(s);
        dt_dataset_close(ds);
    }
    ck_assert_int_eq(memcmp(col[0], col[1], 1000), 0);
    ck_assert_int_eq(memcmp(img[0], img[1], sizeof img[0]), 0);
    ck_assert_int_ne(memcmp(col[0], col[2], 1000), 0);
    unlink(p2);
    unlink(p3);
}
END_TEST

START_TEST(prepare_synthetic)
{
    char p[300];
    tmp_path(p, sizeof p, "synth.h5");
    char empty[300];
    tmp_path(empty, sizeof empty, "empty-dir");
    mkdir(empty, 0755);
    dt_prepare_opts o = {.mnist_dir = empty, .out = p, .synthetic = 1, .seed = 5, .quiet = 1};
    ck_assert_int_eq(dt_prepare(&o), 0);
    dt_dataset *ds = dt_dataset_open(p);
    ck_assert_ptr_nonnull(ds);
    dt_split *s = dt_split_open(ds, "vae/train");
    ck_assert_uint_eq(dt_split_len(s), 9000);
    dt_split_close(s);
    s = dt_split_open(ds, "cyclegan/B/test");
    ck_assert_uint_eq(dt_split_len(s), 500);
    dt_split_close(s);
    dt_dataset_close(ds);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_eq(attr_i64(f, "synthetic"), 1);
    H5Fclose(f);
    unlink(p);
}
END_TEST

START_TEST(prepare_failures_leave_no_file)
{
    char empty[300], p[300], afile[300];
    tmp_path(empty, sizeof empty, "empty-dir2");
    mkdir(empty, 0755);
    tmp_path(p, sizeof p, "never.h5");
    /* no sources: says what to do */
    dt_prepare_opts o = {.mnist_dir = empty, .out = p, .quiet = 1};
    ASSERT_ERR(dt_prepare(&o), empty, "--mnist", "make data", "--synthetic");
    ck_assert(!file_exists(p));

    /* unwritable place: below a regular file */
    tmp_path(afile, sizeof afile, "a-regular-file");
    write_bytes(afile, "x", 1);
    char bad[400];
    snprintf(bad, sizeof bad, "%s/sub/out.h5", afile);
    o.mnist_dir = g_mnist;
    o.out = bad;
    ASSERT_ERR(dt_prepare(&o), bad, "--out");
    ck_assert(!file_exists(bad));
    ASSERT_ERR(dt_prepare(&(dt_prepare_opts){.mnist_dir = g_mnist, .out = "/proc/dtrain-test.h5",
                                             .quiet = 1}),
               "/proc/dtrain-test.h5");
    ck_assert(!file_exists("/proc/dtrain-test.h5"));

    /* the parent folder is created when missing */
    char deep[300];
    tmp_path(deep, sizeof deep, "x/y/z.h5");
    o.out = deep;
    o.synthetic = 1;
    ck_assert_int_eq(dt_prepare(&o), 0);
    ck_assert(file_exists(deep));

    /* an existing good file survives a failed prepare, and no temp file is left */
    char h0[65], h1[65];
    ck_assert_int_eq(dt_sha256_file(deep, h0), 0);
    o.mnist_dir = empty;
    o.synthetic = 0;
    ASSERT_ERR(dt_prepare(&o), "--mnist");
    ck_assert_int_eq(dt_sha256_file(deep, h1), 0);
    ck_assert_str_eq(h0, h1);
    /* a bad source file (truncated IDX) fails the same way */
    char broken[300], bi[400], bl[400];
    tmp_path(broken, sizeof broken, "broken-src");
    mkdir(broken, 0755);
    snprintf(bi, sizeof bi, "%s/t10k-images-idx3-ubyte", broken);
    snprintf(bl, sizeof bl, "%s/t10k-labels-idx1-ubyte", broken);
    uint8_t *buf = malloc(10000);
    uint32_t d3[3] = {10, 28, 28}, d1[1] = {10};
    write_bytes(bi, buf, make_idx(buf, 3, d3, 1) - 5);
    write_bytes(bl, buf, make_idx(buf, 1, d1, 1));
    free(buf);
    o.mnist_dir = broken;
    ASSERT_ERR(dt_prepare(&o), bi, "truncated");
    ck_assert_int_eq(dt_sha256_file(deep, h1), 0);
    ck_assert_str_eq(h0, h1);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s/x | grep -c tmp", g_tmp);
    FILE *ls = popen(cmd, "r");
    char out[16] = "";
    ck_assert_ptr_nonnull(fgets(out, sizeof out, ls));
    pclose(ls);
    ck_assert_str_eq(out, "0\n");
}
END_TEST

/* The gate: the magic, then the SHA-256 of every byte after the block. */
START_TEST(prepare_writes_the_gate)
{
    size_t len;
    uint8_t *f = read_all(g_good, &len);
    const size_t nm = strlen(DT_DATA_GATE_MAGIC);
    ck_assert_int_eq(memcmp(f, DT_DATA_GATE_MAGIC, nm), 0);
    char hex[65];
    dt_sha256(hex, f + DT_DATA_USERBLOCK, len - DT_DATA_USERBLOCK);
    ck_assert_int_eq(memcmp(f + nm, hex, 64), 0);
    ck_assert_int_eq(f[nm + 64], '\n');
    for (size_t i = nm + 65; i < DT_DATA_USERBLOCK; i++) ck_assert_int_eq(f[i], 0);
    ck_assert_int_eq(memcmp(f + DT_DATA_USERBLOCK, "\x89HDF\r\n\x1a\n", 8), 0);
    size_t size = 0;
    ck_assert_int_eq(dt_dataset_verify(g_good, &size, NULL), 0);
    ck_assert_uint_eq(size, len);
    free(f);
}
END_TEST

/* prepare never replaces what is not a regular file (a training command runs
 * it when --data is missing, so --data can name a FIFO or a symlink loop). */
START_TEST(prepare_refuses_odd_out)
{
    char p[300];
    dt_prepare_opts o = {.synthetic = 1, .seed = 1, .quiet = 1};
    struct stat st;
    tmp_path(p, sizeof p, "out-loop.h5");
    ck_assert_int_eq(symlink(p, p), 0);
    o.out = p;
    ASSERT_ERR(dt_prepare(&o), p, "loop", "remove it or choose another path");
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    tmp_path(p, sizeof p, "out-dangling.h5");
    ck_assert_int_eq(symlink("/nonexistent/dtrain-target.h5", p), 0);
    ASSERT_ERR(dt_prepare(&o), p, "symbolic link to a missing file");
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    tmp_path(p, sizeof p, "out-fifo.h5");
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    ASSERT_ERR(dt_prepare(&o), p, "FIFO");
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    tmp_path(p, sizeof p, "out-folder.h5");
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ASSERT_ERR(dt_prepare(&o), p, "folder");
}
END_TEST

/* ---- dt_dataset_open on broken files --------------------------------------------------- */

START_TEST(dataset_open_rejects_broken)
{
    char p[300];
    tmp_path(p, sizeof p, "missing.h5");
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("no such file") && err_has("dtrain prepare"));

    /* truncated copy of a good file: the gate refuses it before HDF5 sees it */
    size_t len;
    uint8_t *good = read_all(g_good, &len);
    tmp_path(p, sizeof p, "truncated.h5");
    write_bytes(p, good, len / 2);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert_msg(err_has(p) && err_has("does not match the SHA-256") && err_has("dtrain prepare --out"),
                  "%s", dt_lasterr());
    /* first 1000 bytes only (superblock intact) */
    write_bytes(p, good, 1000);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("SHA-256"));
    /* one flipped byte in the middle */
    good[len / 2] ^= 1;
    tmp_path(p, sizeof p, "flipped.h5");
    write_bytes(p, good, len);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("SHA-256"));
    good[len / 2] ^= 1;
    /* the header damaged */
    good[3] ^= 1;
    write_bytes(p, good, len);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("not a dtrain data set"));
    /* a good file without its gate block: the HDF5 file of an older dtrain */
    tmp_path(p, sizeof p, "old-format.h5");
    write_bytes(p, good + DT_DATA_USERBLOCK, len - DT_DATA_USERBLOCK);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert_msg(err_has(p) && err_has("older dtrain") && err_has("dtrain prepare --out"), "%s", dt_lasterr());
    free(good);

    /* random bytes */
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 131 + 7);
    tmp_path(p, sizeof p, "junk.h5");
    write_bytes(p, junk, sizeof junk);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("not a dtrain data set"));

    /* not regular files: refused before any open() */
    tmp_path(p, sizeof p, "fifo.h5");
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("FIFO") && err_has("--data"));
    tmp_path(p, sizeof p, "loop.h5");
    ck_assert_int_eq(symlink(p, p), 0);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("loop"));
    ck_assert_ptr_null(dt_dataset_open(g_tmp));
    ck_assert(err_has(g_tmp) && err_has("folder"));

    /* sealed HDF5 files built by hand: dtrain's own checks behind the gate */
    mk_set m;
    mk_default(&m, 5);
    tmp_path(p, sizeof p, "nogroups.h5");
    for (int k = 0; k < MK_NSPLITS; k++) m.sp[k].missing = 8;
    ck_assert_int_eq(mk_write(p, &m), 0);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("/vae"));

    mk_default(&m, 5);
    m.version = 2;
    tmp_path(p, sizeof p, "version2.h5");
    ck_assert_int_eq(mk_write(p, &m), 0);
    ck_assert_ptr_null(dt_dataset_open(p));
    ck_assert(err_has(p) && err_has("format_version 2"));
    /* no format_version at all; one that is an array or a string */
    for (int kind = 1; kind <= 3; kind++) {
        mk_default(&m, 5);
        m.version_kind = kind;
        ck_assert_int_eq(mk_write(p, &m), 0);
        ck_assert_ptr_null(dt_dataset_open(p));
        ck_assert_msg(err_has(p) && err_has("no format_version"), "%d: %s", kind, dt_lasterr());
    }
    /* a hand-made valid file opens, and its splits read */
    mk_default(&m, 5);
    tmp_path(p, sizeof p, "valid.h5");
    ck_assert_int_eq(mk_write(p, &m), 0);
    dt_dataset *ds = dt_dataset_open(p);
    ck_assert_msg(ds != NULL, "%s", dt_lasterr());
    for (int k = 0; k < MK_NSPLITS; k++) {
        dt_split *sp = dt_split_open(ds, mk_split_names[k]);
        ck_assert_msg(sp != NULL, "%s", dt_lasterr());
        ck_assert_uint_eq(dt_split_len(sp), 5);
        dt_split_close(sp);
    }
    uint8_t map[10];
    ck_assert_int_eq(dt_dataset_mapping(ds, 1, map), 0);
    dt_dataset_close(ds);
}
END_TEST

/* One broken split per case: the open fails naming the file, the split and what is wrong. */
static void split_refused(const char *name, const mk_set *m, const char *split, const char *want1,
                          const char *want2)
{
    char p[300];
    tmp_path(p, sizeof p, name);
    ck_assert_int_eq(mk_write(p, m), 0);
    dt_dataset *ds = dt_dataset_open(p);
    ck_assert_msg(ds != NULL, "%s", dt_lasterr());
    dt_clearerr();
    ck_assert_ptr_null(dt_split_open(ds, split));
    ck_assert_msg(err_has(p) && err_has(split) && err_has(want1) && err_has(want2), "%s: %s", name,
                  dt_lasterr());
    dt_dataset_close(ds);
}

START_TEST(split_open_validates)
{
    mk_set m;
    /* labels 10 and above, digits and colors, VAE and CycleGAN */
    mk_default(&m, 20);
    m.sp[0].lab_max[0] = 12;
    split_refused("digit12.h5", &m, "vae/train", "/vae/train/digits[0] is 12", "not 0-9");
    mk_default(&m, 20);
    m.sp[5].lab_max[1] = 200;
    split_refused("color200.h5", &m, "cyclegan/B/test", "/cyclegan/B/test/colors[0] is 200", "0-9");
    /* signed and wider labels */
    mk_default(&m, 20);
    m.sp[1].lab_signed[0] = 1;
    split_refused("int8.h5", &m, "vae/test", "digits is not uint8 [20]", "dtrain prepare");
    mk_default(&m, 20);
    m.sp[2].lab_size[1] = 2;
    split_refused("u16.h5", &m, "cyclegan/A/train", "colors is not uint8", "dtrain prepare");
    /* label counts unlike the image count */
    mk_default(&m, 20);
    m.sp[0].nlab[0] = 19;
    split_refused("count.h5", &m, "vae/train", "digits is not uint8 [20] like the images", "prepare");
    mk_default(&m, 20);
    m.sp[3].nlab[1] = 21;
    split_refused("count2.h5", &m, "cyclegan/B/train", "colors is not uint8 [20]", "prepare");
    /* labels missing */
    mk_default(&m, 20);
    m.sp[4].missing = 4;
    split_refused("nocolors.h5", &m, "cyclegan/A/test", "colors missing", "prepare");
    /* image shapes and types */
    mk_default(&m, 20);
    m.sp[0].channels = 1;
    split_refused("chan1.h5", &m, "vae/train", "images is not uint8 [N,3,28,28]", "prepare");
    mk_default(&m, 20);
    m.sp[1].side = 27;
    split_refused("side27.h5", &m, "vae/test", "[N,3,28,28]", "prepare");
    mk_default(&m, 20);
    m.sp[2].ndim = 3;
    split_refused("ndim3.h5", &m, "cyclegan/A/train", "[N,3,28,28]", "prepare");
    mk_default(&m, 20);
    m.sp[3].img_size = 2;
    split_refused("img16.h5", &m, "cyclegan/B/train", "[N,3,28,28]", "prepare");
    mk_default(&m, 20);
    m.sp[0].missing = 1;
    split_refused("noimages.h5", &m, "vae/train", "images missing", "prepare");
    /* an empty split: refused at open, not after training */
    mk_default(&m, 20);
    m.sp[1].n = m.sp[1].nlab[0] = m.sp[1].nlab[1] = 0;
    split_refused("empty.h5", &m, "vae/test", "holds no images", "dtrain prepare");
    mk_default(&m, 20);
    m.sp[4].n = m.sp[4].nlab[0] = m.sp[4].nlab[1] = 0;
    split_refused("empty-cyc.h5", &m, "cyclegan/A/test", "holds no images", "dtrain prepare");
    /* more images claimed than the file has bytes (chunks never written) */
    mk_default(&m, 20);
    m.sp[0].n = m.sp[0].nlab[0] = m.sp[0].nlab[1] = 4000000000u;
    split_refused("huge.h5", &m, "vae/train", "claims 4000000000 images", "corrupt");
    /* a mapping with a color above 9 */
    mk_default(&m, 20);
    m.map_max[1] = 10;
    char p[300];
    tmp_path(p, sizeof p, "map.h5");
    ck_assert_int_eq(mk_write(p, &m), 0);
    dt_dataset *ds = dt_dataset_open(p);
    ck_assert_ptr_nonnull(ds);
    uint8_t map[10];
    ck_assert_int_eq(dt_dataset_mapping(ds, 0, map), 0);
    ASSERT_ERR(dt_dataset_mapping(ds, 1, map), p, "mapping_B[0] is 10");
    dt_dataset_close(ds);
}
END_TEST

/* ---- reading and the loader ----------------------------------------------------------- */

START_TEST(split_read_any_order)
{
    dt_dataset *ds = dt_dataset_open(g_good);
    dt_split *sp = dt_split_open(ds, "vae/test");
    enum { N = 1000 };
    uint32_t all[N];
    for (int i = 0; i < N; i++) all[i] = (uint32_t)i;
    uint8_t *full = malloc((size_t)N * DT_IMG);
    ck_assert_int_eq(dt_split_read(sp, all, N, full, NULL, NULL), 0);
    uint32_t pick[300];
    for (int i = 0; i < 300; i++) pick[i] = (uint32_t)((i * 7919u + 13) % N);
    pick[5] = pick[6]; /* a repeat */
    uint8_t *img = malloc(300 * DT_IMG), dg[300], co[300], dga[N], coa[N];
    ck_assert_int_eq(dt_split_read(sp, pick, 300, img, dg, co), 0);
    ck_assert_int_eq(dt_split_read(sp, all, N, NULL, dga, coa), 0);
    for (int i = 0; i < 300; i++) {
        ck_assert_int_eq(memcmp(img + (size_t)i * DT_IMG, full + (size_t)pick[i] * DT_IMG,
                                DT_IMG), 0);
        ck_assert_int_eq(dg[i], dga[pick[i]]);
        ck_assert_int_eq(co[i], coa[pick[i]]);
    }
    uint32_t bad = N;
    ASSERT_ERR(dt_split_read(sp, &bad, 1, img, NULL, NULL), "out of range");
    ck_assert_int_eq(dt_split_read(sp, all, 0, img, dg, co), 0);
    free(full);
    free(img);
    dt_split_close(sp);
    dt_dataset_close(ds);
}
END_TEST

/* One epoch through the loader: the order, checked against the split. */
static void run_epoch(dt_loader *ld, dt_split *sp, uint64_t epoch, size_t B, uint32_t *order,
                      int check_pixels)
{
    size_t N = dt_split_len(sp), nb = dt_loader_nbatches(ld), seen = 0;
    ck_assert_uint_eq(nb, (N + B - 1) / B);
    dt_loader_start_epoch(ld, epoch);
    dt_batch b;
    uint8_t *img = malloc(B * DT_IMG), *dg = malloc(B), *co = malloc(B);
    for (size_t k = 0; k < nb; k++) {
        ck_assert_int_eq(dt_loader_next(ld, &b), 1);
        ck_assert_uint_eq(b.batch_index, k);
        size_t want = N - k * B < B ? N - k * B : B;
        ck_assert_uint_eq(b.global_n, want);
        ck_assert_uint_eq(b.n, want); /* one rank: the whole batch */
        size_t badpos = 0;
        for (size_t i = 0; i < b.n; i++) {
            badpos += b.pos[i] != k * B + i;
            order[seen++] = b.index[i];
        }
        ck_assert_uint_eq(badpos, 0);
        if (check_pixels) {
            ck_assert_int_eq(dt_split_read(sp, b.index, b.n, img, dg, co), 0);
            ck_assert_int_eq(memcmp(b.digits, dg, b.n), 0);
            ck_assert_int_eq(memcmp(b.colors, co, b.n), 0);
            size_t wrong = 0;
            for (size_t i = 0; i < b.n * DT_IMG; i++) wrong += b.x[i] != (float)img[i] / 255.0f;
            ck_assert_uint_eq(wrong, 0);
        }
    }
    ck_assert_int_eq(dt_loader_next(ld, &b), 0);
    ck_assert_uint_eq(b.n, 0);
    ck_assert_int_eq(dt_loader_next(ld, &b), 0);
    ck_assert_uint_eq(seen, N);
    free(img);
    free(dg);
    free(co);
}

static void assert_permutation(const uint32_t *o, size_t n)
{
    uint8_t *seen = calloc(n, 1);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (o[i] >= n || seen[o[i]]) bad++;
        else seen[o[i]] = 1;
    }
    ck_assert_uint_eq(bad, 0);
    free(seen);
}

START_TEST(loader_orders_and_batches)
{
    dt_dataset *ds = dt_dataset_open(g_good);
    dt_split *sp = dt_split_open(ds, "vae/train");
    size_t N = dt_split_len(sp), B = 128; /* 9000 = 70 * 128 + 40: a partial last batch */
    uint32_t *e0 = malloc(N * 4), *e1 = malloc(N * 4), *again = malloc(N * 4), *ref = malloc(N * 4);
    dt_loader *ld = dt_loader_create(sp, B, 11, 1);
    run_epoch(ld, sp, 0, B, e0, 1);
    run_epoch(ld, sp, 1, B, e1, 0);
    assert_permutation(e0, N);
    assert_permutation(e1, N);
    ck_assert_int_ne(memcmp(e0, e1, N * 4), 0);
    dt_loader_order(ld, 1, 0, N, ref);
    ck_assert_int_eq(memcmp(e1, ref, N * 4), 0);
    /* the order is shuffled (not the identity, not chunk-sorted) */
    size_t fixed = 0;
    for (size_t i = 0; i < N; i++) fixed += e0[i] == i;
    ck_assert_uint_lt(fixed, N / 20);
    /* same seed, another loader (and another batch size): same order */
    dt_loader *ld2 = dt_loader_create(sp, 100, 11, 1);
    run_epoch(ld2, sp, 1, 100, again, 1);
    ck_assert_int_eq(memcmp(e1, again, N * 4), 0);
    dt_loader_free(ld2);
    /* another seed: another order */
    ld2 = dt_loader_create(sp, B, 12, 1);
    run_epoch(ld2, sp, 1, B, again, 0);
    ck_assert_int_ne(memcmp(e1, again, N * 4), 0);
    dt_loader_free(ld2);
    /* no shuffle: the identity */
    ld2 = dt_loader_create(sp, 1000, 11, 0);
    run_epoch(ld2, sp, 3, 1000, again, 1);
    for (size_t i = 0; i < N; i++) ck_assert_uint_eq(again[i], i);
    dt_loader_free(ld2);

    /* seek: the rest of epoch 1 from batch 37 equals the uninterrupted run */
    dt_loader_seek(ld, 1, 37);
    dt_batch b;
    size_t k = 37;
    int r;
    while ((r = dt_loader_next(ld, &b)) == 1) {
        ck_assert_uint_eq(b.batch_index, k);
        for (size_t i = 0; i < b.n; i++) ck_assert_uint_eq(b.index[i], e1[k * B + i]);
        k++;
    }
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(k, 71);
    /* seek across a group boundary and to the end */
    dt_loader_seek(ld, 0, 32);
    ck_assert_int_eq(dt_loader_next(ld, &b), 1);
    ck_assert_uint_eq(b.index[0], e0[32 * B]);
    dt_loader_seek(ld, 0, 71);
    ck_assert_int_eq(dt_loader_next(ld, &b), 0);
    dt_loader_free(ld);

    /* a small split, batch larger than a group, and a batch larger than the split */
    dt_split *small = dt_split_open(ds, "cyclegan/A/test");
    size_t n2 = dt_split_len(small);
    uint32_t *o2 = malloc(n2 * 4);
    size_t bs[3] = {7, 5000, 64};
    for (int t = 0; t < 3; t++) {
        ld = dt_loader_create(small, bs[t], 3, 1);
        run_epoch(ld, small, 2, bs[t], o2, 1);
        assert_permutation(o2, n2);
        dt_loader_free(ld);
    }
    free(o2);
    dt_split_close(small);
    ck_assert_ptr_null(dt_loader_create(sp, 0, 1, 1));
    free(e0);
    free(e1);
    free(again);
    free(ref);
    dt_split_close(sp);
    dt_dataset_close(ds);
}
END_TEST

/* The windows: each holds whole chunks, shuffled inside. */
START_TEST(loader_windows_hold_whole_chunks)
{
    dt_dataset *ds = dt_dataset_open(g_good);
    dt_split *sp = dt_split_open(ds, "vae/train");
    size_t N = dt_split_len(sp), C = dt_split_chunk(sp);
    dt_loader *ld = dt_loader_create(sp, 32, 5, 1);
    uint32_t *o = malloc(N * 4);
    dt_loader_order(ld, 4, 0, N, o);
    /* each chunk's images sit inside one window: within 64 chunks of positions */
    size_t nc = (N + C - 1) / C, bad = 0;
    size_t *lo = malloc(nc * sizeof(size_t)), *hi = calloc(nc, sizeof(size_t));
    for (size_t c = 0; c < nc; c++) lo[c] = N;
    for (size_t p = 0; p < N; p++) {
        size_t c = o[p] / C;
        if (p < lo[c]) lo[c] = p;
        if (p > hi[c]) hi[c] = p;
    }
    for (size_t c = 0; c < nc; c++) bad += hi[c] - lo[c] >= DT_LOADER_WINDOW * C;
    ck_assert_uint_eq(bad, 0);
    /* with the identity chunk order impossible to tell apart from a plain
     * shuffle of everything: check the first window is not a chunk-sorted run */
    size_t runs = 0;
    for (size_t p = 1; p < 4096; p++) runs += o[p] / C == o[p - 1] / C;
    ck_assert_uint_lt(runs, 4096 / 8);
    free(lo);
    free(hi);
    /* a middle slice equals the matching part of the full order */
    uint32_t mid[500];
    dt_loader_order(ld, 4, 4000, 4500, mid);
    ck_assert_int_eq(memcmp(mid, o + 4000, sizeof mid), 0);
    free(o);
    dt_loader_free(ld);
    dt_split_close(sp);
    dt_dataset_close(ds);
}
END_TEST

/* ---- main ---------------------------------------------------------------------------- */

static int has_t10k(const char *dir)
{
    char p[300];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    return file_exists(p);
}

int main(void)
{
    const char *env = getenv("DTRAIN_TEST_MNIST");
    const char *cands[3] = {env ? env : "", "/work/shared/data/mnist", "data/mnist"};
    for (int i = 0; i < 3; i++)
        if (cands[i][0] && has_t10k(cands[i])) {
            snprintf(g_mnist, sizeof g_mnist, "%s", cands[i]);
            break;
        }
    if (!g_mnist[0]) {
        fprintf(stderr, "test_data: no t10k MNIST files; set DTRAIN_TEST_MNIST or run `make data`\n");
        return 1;
    }
    snprintf(g_tmp, sizeof g_tmp, "%s/dtrain-test-data.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    /* one data set from the t10k files, shared by the tests that read */
    snprintf(g_good, sizeof g_good, "%s/good.h5", g_tmp);
    dt_prepare_opts o = {.mnist_dir = g_mnist, .out = g_good, .seed = 1, .quiet = 1};
    if (dt_prepare(&o) < 0) {
        fprintf(stderr, "test_data: prepare failed: %s\n", dt_lasterr());
        return 1;
    }

    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, idx_reads_real_t10k);
    tcase_add_test(tc, idx_bad_inputs);
    tcase_add_test(tc, idx_header_checked_before_allocation);
    tcase_add_test(tc, mnist_load_checks_pairs);
    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, colorize_rounds_halves_up);
    tcase_add_test(tc, synth_deterministic_and_inked);
    tcase_add_test(tc, prepare_t10k_layout);
    tcase_add_test(tc, prepare_is_seeded);
    tcase_add_test(tc, prepare_synthetic);
    tcase_add_test(tc, prepare_failures_leave_no_file);
    tcase_add_test(tc, prepare_writes_the_gate);
    tcase_add_test(tc, prepare_refuses_odd_out);
    tcase_add_test(tc, dataset_open_rejects_broken);
    tcase_add_test(tc, split_open_validates);
    tcase_add_test(tc, split_read_any_order);
    tcase_add_test(tc, loader_orders_and_batches);
    tcase_add_test(tc, loader_windows_hold_whole_chunks);
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "test_data: could not remove %s\n", g_tmp);
    return failed ? 1 : 0;
}
