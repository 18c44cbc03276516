/* Unit tests of the picture module: canvas, font, PNG grids, scatter and line
 * plots. Every figure is read back with libpng and checked pixel by pixel. */
#include <check.h>
#include <ftw.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_run.h"
#include "dtrain/core.h"
#include "dtrain/plot.h"

static char tmpdir[256];

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A PNG read back as 8-bit RGB; format checked to be RGB without alpha. */
typedef struct {
    int w, h;
    uint8_t *px;
} rgb_file;

static rgb_file read_png(const char *path)
{
    rgb_file r = {0, 0, NULL};
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    ck_assert_msg(png_image_begin_read_from_file(&img, path), "cannot read %s: %s", path,
                  img.message);
    ck_assert_msg(img.format == PNG_FORMAT_RGB, "%s: format %u is not 8-bit RGB", path,
                  img.format);
    r.w = (int)img.width;
    r.h = (int)img.height;
    r.px = malloc(PNG_IMAGE_SIZE(img));
    ck_assert_ptr_nonnull(r.px);
    ck_assert_msg(png_image_finish_read(&img, NULL, r.px, 0, NULL), "%s: %s", path, img.message);
    return r;
}

/* Pixel (x, y); callers keep inside the image (assert_rgb checks). */
static const uint8_t *at(const rgb_file *r, int x, int y)
{
    return r->px + 3 * ((size_t)y * r->w + x);
}

static void assert_rgb(const rgb_file *r, int x, int y, int cr, int cg, int cb)
{
    ck_assert_msg(x >= 0 && y >= 0 && x < r->w && y < r->h, "pixel (%d,%d) outside %dx%d", x,
                  y, r->w, r->h);
    const uint8_t *p = at(r, x, y);
    ck_assert_msg(p[0] == cr && p[1] == cg && p[2] == cb,
                  "pixel (%d,%d) is (%d,%d,%d), expected (%d,%d,%d)", x, y, p[0], p[1], p[2],
                  cr, cg, cb);
}

/* Pixels in [x0,x1) x [y0,y1) within tol of colour c in every channel. */
static long count_near(const rgb_file *r, int x0, int y0, int x1, int y1, const uint8_t c[3],
                       int tol)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const uint8_t *p = at(r, x, y);
            if (abs(p[0] - c[0]) <= tol && abs(p[1] - c[1]) <= tol && abs(p[2] - c[2]) <= tol)
                n++;
        }
    return n;
}

/* ---- text ------------------------------------------------------------------ */

START_TEST(test_text_width)
{
    ck_assert_int_eq(dt_text_width("", 1), 0);
    ck_assert_int_eq(dt_text_width("", 3), 0);
    ck_assert_int_eq(dt_text_width("A", 1), 5);
    ck_assert_int_eq(dt_text_width("AB", 1), 11);    /* 5 + gap + 5 */
    ck_assert_int_eq(dt_text_width("1.5", 2), 28);   /* 2 * (5 + 1 + 2 + 1 + 5) */
    ck_assert_int_eq(dt_text_width(" ", 1), 3);
    /* linear in scale, additive with one gap between pieces */
    const char *s = "Loss: 0.125 (test)";
    ck_assert_int_eq(dt_text_width(s, 3), 3 * dt_text_width(s, 1));
    ck_assert_int_eq(dt_text_width("abcd", 1),
                     dt_text_width("ab", 1) + 1 + dt_text_width("cd", 1));
    /* digits share one width so numbers line up */
    for (char d = '0'; d <= '9'; d++) {
        char b[2] = {d, 0};
        ck_assert_int_eq(dt_text_width(b, 1), 5);
    }
    /* bytes outside printable ASCII measure like '?' */
    ck_assert_int_eq(dt_text_width("\x01", 1), dt_text_width("?", 1));
    ck_assert_int_eq(dt_text_width("\xff", 2), dt_text_width("?", 2));
}
END_TEST

/* Bounding box of non-background pixels of a canvas. */
static void ink_bbox(const dt_image *im, int *x0, int *y0, int *x1, int *y1)
{
    *x0 = im->w, *y0 = im->h, *x1 = -1, *y1 = -1;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            const uint8_t *p = im->px + 3 * ((size_t)y * im->w + x);
            if (p[0] == 255 && p[1] == 255 && p[2] == 255) continue;
            if (x < *x0) *x0 = x;
            if (y < *y0) *y0 = y;
            if (x > *x1) *x1 = x;
            if (y > *y1) *y1 = y;
        }
}

START_TEST(test_text_draw_extent)
{
    const uint8_t black[3] = {0, 0, 0};
    dt_image *im = dt_image_new(200, 80, NULL);
    ck_assert_ptr_nonnull(im);
    /* "Hg": H fills the cap height from the left column, g reaches the descender
     * row and the right column, so the ink fills the text box exactly */
    const char *s = "Hg";
    int w = dt_text_width(s, 2);
    dt_draw_text(im, 10, 20, s, black, 2);
    int x0, y0, x1, y1;
    ink_bbox(im, &x0, &y0, &x1, &y1);
    ck_assert_int_eq(x0, 10);
    ck_assert_int_eq(x1, 10 + w - 1);
    ck_assert_int_eq(y0, 20);
    ck_assert_int_eq(y1, 20 + DT_FONT_H * 2 - 1);
    dt_image_free(im);

    /* rotated text occupies the transposed box */
    im = dt_image_new(80, 200, NULL);
    dt_draw_text_up(im, 5, 30, s, black, 2);
    ink_bbox(im, &x0, &y0, &x1, &y1);
    ck_assert_int_eq(x0, 5);
    ck_assert_int_eq(x1, 5 + DT_FONT_H * 2 - 1);
    ck_assert_int_eq(y0, 30);
    ck_assert_int_eq(y1, 30 + w - 1);
    /* 'H' is first, so it is at the bottom: its left stem is the bottom rows */
    const uint8_t *p = im->px + 3 * ((size_t)(30 + w - 1) * im->w + 5);
    ck_assert_int_eq(p[0], 0);
    dt_image_free(im);

    /* text clipped at the border does not crash or write outside */
    im = dt_image_new(20, 10, NULL);
    dt_draw_text(im, -7, -3, "clipped text", black, 3);
    dt_draw_text_up(im, 15, -40, "clipped text", black, 3);
    dt_draw_text(im, 0, 0, NULL, black, 1);
    dt_image_free(im);
}
END_TEST

/* ---- canvas ------------------------------------------------------------------ */

START_TEST(test_canvas_roundtrip)
{
    ck_assert_ptr_null(dt_image_new(0, 10, NULL));
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "size"));
    ck_assert_ptr_null(dt_image_new(10, DT_IMAGE_MAX + 1, NULL));
    dt_image_free(NULL);

    const uint8_t bg[3] = {10, 20, 30}, red[3] = {255, 0, 0}, green[3] = {0, 200, 0};
    dt_image *im = dt_image_new(40, 30, bg);
    ck_assert_ptr_nonnull(im);
    dt_image_set(im, 3, 4, red);
    dt_image_set(im, -1, 4, red); /* ignored */
    dt_image_set(im, 40, 29, red);
    dt_image_fill_rect(im, 35, 25, 100, 100, green); /* clipped */
    dt_image_blend(im, 0, 0, red, 0.5f);
    dt_image_line(im, -50, -50, 100, 100, red, 3.0f);
    dt_image_marker(im, 39.5f, 0.5f, 5.0f, green, red, 0.5f);
    dt_image_disc(im, NAN, 3, 2, red, 1.0f);
    ck_assert_int_eq(dt_image_blit_chw(im, 38, 28, (const float[4]){1, 0, 0.5f, 1}, 1, 2, 2, 2),
                     0);
    ck_assert_int_eq(dt_image_blit_chw(im, 0, 0, (const float[4]){0}, 2, 1, 2, 1), -1);

    char path[300];
    tmp_path(path, sizeof path, "canvas.png");
    ck_assert_int_eq(dt_image_write_png(im, path), 0);
    char tmp[310];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert(!exists(tmp));
    rgb_file r = read_png(path);
    ck_assert_int_eq(r.w, 40);
    ck_assert_int_eq(r.h, 30);
    ck_assert_int_eq(memcmp(r.px, im->px, 40 * 30 * 3), 0);
    assert_rgb(&r, 3, 4, 255, 0, 0);
    assert_rgb(&r, 36, 26, 0, 200, 0);
    assert_rgb(&r, 20, 2, 10, 20, 30);
    /* the diagonal line passes through pixel (20,20) at full coverage */
    assert_rgb(&r, 20, 20, 255, 0, 0);
    free(r.px);
    dt_image_free(im);
}
END_TEST

/* ---- grid ------------------------------------------------------------------ */

START_TEST(test_grid_layout)
{
    /* 5 RGB images of 3x4 in 3 columns at scale 2: 2 rows, one empty cell */
    enum { N = 5, C = 3, H = 3, W = 4, COLS = 3, S = 2 };
    float imgs[N * C * H * W];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < C; k++)
            for (int p = 0; p < H * W; p++) imgs[(i * C + k) * H * W + p] = 0.1f * i;
    /* image 4, pixel (row 1, col 2) = orange; out-of-range values clamp */
    float *im4 = imgs + 4 * C * H * W;
    im4[0 * H * W + 1 * W + 2] = 1.0f;
    im4[1 * H * W + 1 * W + 2] = 0.5f;
    im4[2 * H * W + 1 * W + 2] = 0.0f;
    im4[0 * H * W + 0 * W + 0] = 7.0f;
    im4[1 * H * W + 0 * W + 0] = -3.0f;
    im4[2 * H * W + 0 * W + 0] = NAN;

    char path[300];
    tmp_path(path, sizeof path, "grid.png");
    ck_assert_int_eq(dt_png_grid(path, imgs, N, C, H, W, COLS, S, NULL, NULL, NULL), 0);
    rgb_file r = read_png(path);
    int cw = W * S, ch = H * S;
    ck_assert_int_eq(r.w, 2 * DT_GRID_MARGIN + COLS * cw + (COLS + 1) * DT_GRID_SEP);
    ck_assert_int_eq(r.h, 2 * DT_GRID_MARGIN + 2 * ch + 3 * DT_GRID_SEP);

    int gx = DT_GRID_MARGIN, gy = DT_GRID_MARGIN;
    /* image 4 sits in row 1, column 1 */
    int x4 = gx + DT_GRID_SEP + 1 * (cw + DT_GRID_SEP), y4 = gy + DT_GRID_SEP + 1 * (ch + DT_GRID_SEP);
    for (int dy = 0; dy < S; dy++)
        for (int dx = 0; dx < S; dx++) {
            assert_rgb(&r, x4 + 2 * S + dx, y4 + 1 * S + dy, 255, 128, 0);
            assert_rgb(&r, x4 + dx, y4 + dy, 255, 0, 0); /* clamped (7, -3, NaN) */
        }
    assert_rgb(&r, x4 + 3 * S, y4 + 2 * S, 102, 102, 102); /* 0.4 -> 102 */
    /* image 0 at the grid's first cell; separators and margins around */
    assert_rgb(&r, gx + DT_GRID_SEP, gy + DT_GRID_SEP, 0, 0, 0);
    assert_rgb(&r, gx + DT_GRID_SEP + cw + DT_GRID_SEP, gy + DT_GRID_SEP, 26, 26, 26);
    assert_rgb(&r, gx, gy, DT_GRID_SEP_RGB, DT_GRID_SEP_RGB, DT_GRID_SEP_RGB);
    assert_rgb(&r, gx + DT_GRID_SEP + cw, gy + 5, DT_GRID_SEP_RGB, DT_GRID_SEP_RGB,
               DT_GRID_SEP_RGB);
    assert_rgb(&r, 0, 0, 255, 255, 255);
    /* empty cell (row 1, column 2) is white */
    assert_rgb(&r, x4 + cw + DT_GRID_SEP + 1, y4 + 1, 255, 255, 255);
    free(r.px);

    /* grey, 1 column per image */
    float grey[2 * 2 * 2] = {0.5f, 0.5f, 0.5f, 0.5f, 1, 1, 1, 1};
    ck_assert_int_eq(dt_png_grid(path, grey, 2, 1, 2, 2, 10, 1, NULL, NULL, NULL), 0);
    r = read_png(path);
    ck_assert_int_eq(r.w, 2 * DT_GRID_MARGIN + 2 * 2 + 3 * DT_GRID_SEP); /* cols clamped to n */
    ck_assert_int_eq(r.h, 2 * DT_GRID_MARGIN + 2 + 2 * DT_GRID_SEP);
    assert_rgb(&r, DT_GRID_MARGIN + DT_GRID_SEP, DT_GRID_MARGIN + DT_GRID_SEP, 128, 128, 128);
    free(r.px);
}
END_TEST

START_TEST(test_grid_title_labels)
{
    /* 4 grey 12x12 images, 2 per row, scale 2 (ch = 24, so labels at scale 2) */
    enum { N = 4, H = 12, W = 12, S = 2 };
    float imgs[N * H * W];
    for (int i = 0; i < N * H * W; i++) imgs[i] = 1.0f;
    imgs[3 * H * W] = 0.0f; /* image 3, pixel (0,0) black */
    const char *labels[] = {"in", "out"};
    char path[300];
    tmp_path(path, sizeof path, "grid_titled.png");
    ck_assert_int_eq(dt_png_grid(path, imgs, N, 1, H, W, 2, S, "T", labels, NULL), 0);
    rgb_file r = read_png(path);
    int cw = W * S, ch = H * S;
    int lw = dt_text_width("out", 2) + 2 * DT_GRID_PAD;
    int gw = 2 * cw + 3 * DT_GRID_SEP, gh = 2 * ch + 3 * DT_GRID_SEP;
    ck_assert_int_eq(r.w, 2 * DT_GRID_MARGIN + lw + gw);
    ck_assert_int_eq(r.h, 2 * DT_GRID_MARGIN + DT_GRID_TITLE_H + gh);
    int gx = DT_GRID_MARGIN + lw, gy = DT_GRID_MARGIN + DT_GRID_TITLE_H;
    int x3 = gx + DT_GRID_SEP + cw + DT_GRID_SEP, y3 = gy + DT_GRID_SEP + ch + DT_GRID_SEP;
    assert_rgb(&r, x3, y3, 0, 0, 0);
    assert_rgb(&r, x3 + 1, y3 + 1, 0, 0, 0);
    assert_rgb(&r, x3 + 2, y3, 255, 255, 255);
    /* some dark text in the title band and in the label column */
    const uint8_t dark[3] = {30, 30, 30};
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, gy, dark, 40), 10);
    ck_assert_int_gt(count_near(&r, 0, gy, gx, r.h, dark, 40), 20);
    free(r.px);

    /* a title wider than the grid widens the picture */
    const char *title = "a title much wider than one small image";
    ck_assert_int_eq(dt_png_grid(path, imgs, 1, 1, H, W, 1, 1, title, NULL, NULL), 0);
    r = read_png(path);
    ck_assert_int_eq(r.w, dt_text_width(title, 2) + 2 * DT_GRID_MARGIN);
    free(r.px);
}
END_TEST

/* Dark-text bounding box inside [x0,x1) x [y0,y1); 0 when there is none. */
static int text_bbox(const rgb_file *r, int x0, int y0, int x1, int y1, int *bx0, int *by0, int *bx1,
                     int *by1)
{
    *bx0 = x1, *by0 = y1, *bx1 = -1, *by1 = -1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const uint8_t *p = at(r, x, y);
            if (p[0] > 70 || p[1] > 70 || p[2] > 70) continue;
            if (x < *bx0) *bx0 = x;
            if (y < *by0) *by0 = y;
            if (x > *bx1) *bx1 = x;
            if (y > *by1) *by1 = y;
        }
    return *bx1 >= 0;
}

START_TEST(test_grid_col_labels)
{
    /* 3 white 12x12 images in 3 columns at scale 2 (cw = 24: labels at scale 2 if they fit) */
    enum { N = 3, H = 12, W = 12, S = 2 };
    float imgs[N * H * W];
    for (int i = 0; i < N * H * W; i++) imgs[i] = 1.0f;
    const char *cols[N] = {"0", NULL, "1"};
    char path[300];
    tmp_path(path, sizeof path, "grid_cols.png");
    ck_assert_int_eq(dt_png_grid(path, imgs, N, 1, H, W, N, S, NULL, NULL, cols), 0);
    rgb_file r = read_png(path);
    int cw = W * S, ch = H * S, band = DT_FONT_H * 2 + DT_GRID_PAD;
    ck_assert_int_eq(r.w, 2 * DT_GRID_MARGIN + N * cw + (N + 1) * DT_GRID_SEP);
    ck_assert_int_eq(r.h, 2 * DT_GRID_MARGIN + band + ch + 2 * DT_GRID_SEP);
    int gy = DT_GRID_MARGIN + band, bx0, by0, bx1, by1;
    /* each label centred over its column, in the band, at scale 2; none over column 1 */
    for (int k = 0; k < N; k++) {
        int cx0 = DT_GRID_MARGIN + DT_GRID_SEP + k * (cw + DT_GRID_SEP);
        int found = text_bbox(&r, cx0, DT_GRID_MARGIN, cx0 + cw, gy, &bx0, &by0, &bx1, &by1);
        ck_assert_int_eq(found, k != 1);
        if (!found) continue;
        int tw = dt_text_width(cols[k], 2), tx = cx0 + cw / 2 - tw / 2; /* the text's box */
        ck_assert_int_ge(bx0, tx);
        ck_assert_int_lt(bx1, tx + tw);
        ck_assert_int_eq(by1 - by0 + 1, DT_FONT_CAP * 2);
        ck_assert_int_le(by1, gy - DT_GRID_PAD);
    }
    free(r.px);

    /* two-line labels wider than a column: two lines at scale 1, under a title, next to row labels */
    const char *wide[N] = {"z1\n-1.25", "z1\n0.00", "z1\n1.25"}, *rows[1] = {"row"};
    ck_assert_int_eq(dt_png_grid(path, imgs, N, 1, H, W, N, S, "T", rows, wide), 0);
    r = read_png(path);
    band = 2 * DT_FONT_H + DT_GRID_PAD;
    ck_assert_int_eq(r.h, 2 * DT_GRID_MARGIN + DT_GRID_TITLE_H + band + ch + 2 * DT_GRID_SEP);
    int lw = dt_text_width("row", 2) + 2 * DT_GRID_PAD, top = DT_GRID_MARGIN + DT_GRID_TITLE_H;
    gy = top + band;
    int cx0 = DT_GRID_MARGIN + lw + DT_GRID_SEP;
    ck_assert(text_bbox(&r, cx0, top, cx0 + cw, gy, &bx0, &by0, &bx1, &by1));
    ck_assert_int_le(bx1 - bx0 + 1, dt_text_width("-1.25", 1));
    ck_assert_int_gt(bx1 - bx0 + 1, dt_text_width("-1.25", 1) - 2);
    ck_assert_int_eq(by1 - by0 + 1, DT_FONT_H + DT_FONT_CAP); /* "z1" above "-1.25" */
    free(r.px);
}
END_TEST

START_TEST(test_grid_bad_args)
{
    char path[300];
    tmp_path(path, sizeof path, "bad.png");
    float img[4] = {0};
    dt_clearerr();
    ck_assert_int_eq(dt_png_grid(path, img, 0, 1, 2, 2, 1, 1, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), path));
    ck_assert_int_eq(dt_png_grid(path, img, 1, 2, 2, 2, 1, 1, NULL, NULL, NULL), -1);
    ck_assert_int_eq(dt_png_grid(path, NULL, 1, 1, 2, 2, 1, 1, NULL, NULL, NULL), -1);
    ck_assert_int_eq(dt_png_grid(path, img, 1, 1, 2, 2, 0, 1, NULL, NULL, NULL), -1);
    ck_assert_int_eq(dt_png_grid(path, img, 1, 1, 2, 2, 1, 0, NULL, NULL, NULL), -1);
    ck_assert_int_eq(dt_png_grid(path, img, 1, 1, 2, 2, 1, 100000, NULL, NULL, NULL), -1);
    ck_assert(!exists(path));
}
END_TEST

/* ---- scatter ------------------------------------------------------------------ */

START_TEST(test_scatter)
{
    enum { N = 900 };
    static float x[N], y[N];
    static uint8_t cls[N];
    float z[2 * N];
    dt_rand_normal(z, 2 * N, (dt_stream){7, DT_RNG_EVAL, 0, 0});
    for (int i = 0; i < N; i++) {
        cls[i] = (uint8_t)(i % 3);
        x[i] = 4.0f * cls[i] + 0.5f * z[2 * i];
        y[i] = (cls[i] == 1 ? 3.0f : 0.0f) + 0.5f * z[2 * i + 1];
    }
    x[10] = 1e7f; /* outlier: must not squash the plot */
    y[11] = -1e7f;
    x[12] = NAN;
    y[13] = INFINITY;
    const float rgbf[3][3] = {{1, 0, 0}, {0, 0, 1}, {1, 1, 1}}; /* white is a class colour */
    const char *names[] = {"red", "blue", "white"};
    char path[300];
    tmp_path(path, sizeof path, "scatter.png");
    ck_assert_int_eq(dt_plot_scatter(path, x, y, cls, N, 3, rgbf, names, "Latent", "z0", "z1"),
                     0);
    rgb_file r = read_png(path);
    ck_assert_int_eq(r.w, DT_PLOT_W);
    ck_assert_int_eq(r.h, DT_PLOT_H);
    /* the legend swatches hold the exact class colours */
    const uint8_t red[3] = {255, 0, 0}, blue[3] = {0, 0, 255}, white[3] = {255, 255, 255};
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, r.h, red, 0), 20);
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, r.h, blue, 0), 20);
    /* reddish and bluish marker pixels in the plot area, spread over it: an
     * outlier-driven axis would squeeze each cloud into a few pixels */
    int rx0 = r.w, rx1 = -1;
    long nred = 0, nblue = 0;
    for (int py = 0; py < r.h; py++)
        for (int px = 0; px < 600; px++) {
            const uint8_t *p = at(&r, px, py);
            if (p[0] > p[1] + 100 && p[0] > p[2] + 100) {
                nred++;
                if (px < rx0) rx0 = px;
                if (px > rx1) rx1 = px;
            }
            if (p[2] > p[0] + 100 && p[2] > p[1] + 100) nblue++;
        }
    ck_assert_int_gt(nred, 1000);
    ck_assert_int_gt(nblue, 1000);
    ck_assert_int_gt(rx1 - rx0, 60);
    /* light grey plot area (so white markers show) and white legend exist */
    const uint8_t plotbg[3] = {236, 236, 236};
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, r.h, plotbg, 0), 10000);
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, r.h, white, 0), 1000);
    free(r.px);

    /* default palette, no names, no classes at all */
    ck_assert_int_eq(dt_plot_scatter(path, x, y, cls, N, 3, NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_int_eq(dt_plot_scatter(path, x, y, NULL, N, 0, NULL, NULL, NULL, NULL, NULL), 0);
    /* classes beyond ncls draw grey rather than read past cls_rgb */
    ck_assert_int_eq(dt_plot_scatter(path, x, y, cls, N, 1, rgbf, names, "t", "x", "y"), 0);
    r = read_png(path);
    ck_assert_int_eq(r.w, DT_PLOT_W);
    free(r.px);
}
END_TEST

START_TEST(test_scatter_empty_and_bad)
{
    char path[300];
    tmp_path(path, sizeof path, "scatter_empty.png");
    /* n = 0: axes only */
    ck_assert_int_eq(dt_plot_scatter(path, NULL, NULL, NULL, 0, 1, NULL, NULL, "empty", "x",
                                     "y"),
                     0);
    rgb_file r = read_png(path);
    ck_assert_int_eq(r.w, DT_PLOT_W);
    ck_assert_int_eq(r.h, DT_PLOT_H);
    free(r.px);
    /* nothing finite, and a single repeated point */
    float nx[3] = {NAN, INFINITY, 1}, ny[3] = {0, 1, NAN};
    uint8_t c[3] = {0, 1, 2};
    ck_assert_int_eq(dt_plot_scatter(path, nx, ny, c, 3, 3, NULL, NULL, NULL, NULL, NULL), 0);
    float sx[2] = {5, 5}, sy[2] = {-2, -2};
    ck_assert_int_eq(dt_plot_scatter(path, sx, sy, c, 2, 3, NULL, NULL, NULL, NULL, NULL), 0);
    r = read_png(path);
    ck_assert_int_eq(r.w, DT_PLOT_W);
    free(r.px);
    /* bad arguments */
    ck_assert_int_eq(dt_plot_scatter(path, NULL, sy, c, 2, 3, NULL, NULL, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), path));
    ck_assert_int_eq(dt_plot_scatter(path, sx, sy, c, 2, 0, NULL, NULL, NULL, NULL, NULL), -1);
}
END_TEST

/* ---- lines ------------------------------------------------------------------ */

START_TEST(test_lines)
{
    enum { S = 3, P = 40 };
    float x[P], y[S * P];
    for (int i = 0; i < P; i++) {
        x[i] = (float)(i + 1);
        y[i] = 100.0f / (i + 1) + 50.0f;
        y[P + i] = i % 4 == 3 ? 120.0f / (i + 1) + 55.0f : NAN; /* sparse: joined over gaps */
        y[2 * P + i] = NAN;                                      /* all missing */
    }
    y[5] = INFINITY;
    const char *names[] = {"train", "test", "nothing"};
    char path[300];
    tmp_path(path, sizeof path, "lines.png");
    ck_assert_int_eq(dt_plot_lines(path, x, y, S, P, names, "Loss", "epoch", "loss", NULL), 0);
    rgb_file r = read_png(path);
    ck_assert_int_eq(r.w, DT_PLOT_W);
    ck_assert_int_eq(r.h, DT_PLOT_H);
    const uint8_t c0[3] = {31, 119, 180}, c1[3] = {255, 127, 14}, c2[3] = {44, 160, 44};
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, r.h, c0, 2), 300);
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, r.h, c1, 2), 300);
    /* the all-NaN series has only its legend swatch */
    long n2 = count_near(&r, 0, 0, r.w, r.h, c2, 2);
    ck_assert_int_gt(n2, 10);
    ck_assert_int_lt(n2, 200);
    free(r.px);

    /* x = NULL means 0..npts-1; default names */
    ck_assert_int_eq(dt_plot_lines(path, NULL, y, 2, P, NULL, NULL, NULL, NULL, NULL), 0);
    r = read_png(path);
    ck_assert_int_gt(count_near(&r, 0, 0, r.w, r.h, c0, 2), 300);
    free(r.px);
}
END_TEST

/* The plot area's frame: the first and last rows and columns of the axis box. */
static void axis_box(const rgb_file *r, int *x0, int *y0, int *x1, int *y1)
{
    const uint8_t axis[3] = {70, 70, 70};
    *y0 = *y1 = -1;
    for (int y = 0; y < r->h; y++)
        if (count_near(r, 0, y, r->w, y + 1, axis, 0) > r->w / 2) {
            if (*y0 < 0) *y0 = y;
            *y1 = y;
        }
    *x0 = *x1 = -1;
    for (int x = 0; x < r->w; x++)
        if (count_near(r, x, 0, x + 1, r->h, axis, 0) > r->h / 2) {
            if (*x0 < 0) *x0 = x;
            *x1 = x;
        }
    ck_assert_msg(*y0 >= 0 && *y1 > *y0 && *x0 >= 0 && *x1 > *x0, "no axis box");
}

/* Tick marks (axis colour) along row y from x0 to x1, or column x from y0 to y1:
 * their count and positions. */
static int ticks_along(const rgb_file *r, int x, int y, int len, int horizontal, int *pos)
{
    const uint8_t axis[3] = {70, 70, 70};
    int n = 0;
    for (int i = 0; i < len; i++) {
        int px = horizontal ? x + i : x, py = horizontal ? y : y + i;
        if (count_near(r, px, py, px + 1, py + 1, axis, 0)) pos[n++] = i;
    }
    return n;
}

START_TEST(test_lines_fixed_y_integer_x)
{
    /* two epochs of accuracies near 0: auto-scaled, ticks at half epochs and a y axis of 0.00x */
    float x[2] = {1, 2}, y[4] = {0.002f, 0.006f, 1.0f, 2.0f};
    char path[300];
    tmp_path(path, sizeof path, "lines_fixed.png");
    const dt_lines_opts fixed = {.ymin = 0, .ymax = 1, .xint = 1};
    ck_assert_int_eq(dt_plot_lines(path, x, y, 1, 2, NULL, NULL, "epoch", "accuracy", NULL), 0);
    rgb_file r = read_png(path);
    int x0, y0, x1, y1, pos[64];
    axis_box(&r, &x0, &y0, &x1, &y1);
    ck_assert_int_gt(ticks_along(&r, x0, y1 + 3, x1 - x0, 1, pos), 2);
    free(r.px);

    /* fixed: x ticks at 1 and 2 only, y ticks 0, 0.2, ..., 1 with 0 and 1 inside the area */
    ck_assert_int_eq(dt_plot_lines(path, x, y, 1, 2, NULL, NULL, "epoch", "accuracy", &fixed), 0);
    r = read_png(path);
    axis_box(&r, &x0, &y0, &x1, &y1);
    int w = x1 - x0 - 1, h = y1 - y0 - 1; /* plot area inside the box */
    ck_assert_int_eq(ticks_along(&r, x0, y1 + 3, x1 - x0, 1, pos), 2);
    ck_assert_int_le(abs((pos[1] - pos[0]) - (int)(w / 1.04)), 1); /* one epoch apart (x padded 2%) */
    ck_assert_int_eq(ticks_along(&r, x0 - 4, y0, y1 - y0, 0, pos), 6);
    double pad = 0.03 / 1.06 * h; /* 0 and 1 sit 3% of the span inside the area */
    ck_assert_int_le(abs(pos[0] - 1 - (int)lround(pad)), 1);
    ck_assert_int_le(abs((y1 - y0) - pos[5] - 1 - (int)lround(pad)), 1);
    /* the curve lies in the bottom rows: 0.006 is under 1% of the axis */
    const uint8_t c0[3] = {31, 119, 180};
    ck_assert_int_gt(count_near(&r, x0 + 1, y1 - (int)(0.06 * h), x1, y1, c0, 2), 100);
    ck_assert_int_eq(count_near(&r, x0 + 1, y0 + 60, x1, y1 - (int)(0.06 * h), c0, 2), 0); /* below the legend */
    free(r.px);

    /* values past the fixed range are clipped to the plot area */
    ck_assert_int_eq(dt_plot_lines(path, x, y + 2, 1, 2, NULL, NULL, NULL, NULL, &fixed), 0);
    r = read_png(path);
    axis_box(&r, &x0, &y0, &x1, &y1);
    ck_assert_int_gt(count_near(&r, x0 + 1, y0 + 1, x1, y1, c0, 2), 20); /* the dot at 1 */
    ck_assert_int_eq(count_near(&r, 0, 0, r.w, y0, c0, 2), 0);           /* nothing above */
    free(r.px);
}
END_TEST

START_TEST(test_lines_legend_between_top_and_bottom)
{
    /* curves along the top and the bottom of a fixed 0-1 axis: the legend goes to the
     * middle of a side, where it hides none of them */
    float x[10], y[40];
    for (int i = 0; i < 10; i++) {
        x[i] = (float)(i + 1);
        y[i] = 0.99f, y[10 + i] = 0.98f, y[20 + i] = 0.05f, y[30 + i] = 0.04f;
    }
    const char *names[4] = {"a accuracy", "b accuracy", "a distance", "b distance"};
    char path[300];
    tmp_path(path, sizeof path, "lines_legend_mid.png");
    const dt_lines_opts fixed = {.ymin = 0, .ymax = 1, .xint = 1};
    ck_assert_int_eq(dt_plot_lines(path, x, y, 4, 10, names, NULL, "epoch", NULL, &fixed), 0);
    rgb_file r = read_png(path);
    int x0, y0, x1, y1;
    axis_box(&r, &x0, &y0, &x1, &y1);
    int h = y1 - y0;
    const uint8_t c0[3] = {31, 119, 180}; /* the first series' colour: its legend swatch */
    ck_assert_int_gt(count_near(&r, x0 + 1, y0 + (int)(0.3 * h), x1, y0 + (int)(0.7 * h), c0, 2), 20);
    /* and all four curves are whole: the first one's row is not covered */
    ck_assert_int_gt(count_near(&r, x0 + 1, y0 + 1, x1, y0 + (int)(0.1 * h), c0, 2), 400);
    free(r.px);
}
END_TEST

START_TEST(test_lines_empty_and_bad)
{
    char path[300];
    tmp_path(path, sizeof path, "lines_empty.png");
    ck_assert_int_eq(dt_plot_lines(path, NULL, NULL, 0, 0, NULL, "none", "x", "y", NULL), 0);
    rgb_file r = read_png(path);
    ck_assert_int_eq(r.w, DT_PLOT_W);
    ck_assert_int_eq(r.h, DT_PLOT_H);
    free(r.px);
    float nan1[1] = {NAN}, one[1] = {3.0f};
    ck_assert_int_eq(dt_plot_lines(path, NULL, nan1, 1, 1, NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_int_eq(dt_plot_lines(path, one, one, 1, 1, NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_int_eq(dt_plot_lines(path, NULL, NULL, 2, 5, NULL, NULL, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), path));
    ck_assert_int_eq(dt_plot_lines(path, NULL, one, -1, 1, NULL, NULL, NULL, NULL, NULL), -1);
}
END_TEST

/* ---- failed writes ------------------------------------------------------------- */

START_TEST(test_unwritable)
{
    float img[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    float x[2] = {0, 1}, y[2] = {0, 1};

    const char *proc = "/proc/nonexistent/x.png";
    dt_clearerr();
    ck_assert_int_eq(dt_png_grid(proc, img, 1, 1, 2, 2, 1, 1, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), proc));
    ck_assert_int_eq(dt_plot_scatter(proc, x, y, NULL, 2, 1, NULL, NULL, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), proc));
    ck_assert_int_eq(dt_plot_lines(proc, x, y, 1, 2, NULL, NULL, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), proc));

    /* a path inside a regular file */
    char file[300], inside[320], tmp[330];
    tmp_path(file, sizeof file, "plainfile");
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
    snprintf(inside, sizeof inside, "%s/x.png", file);
    snprintf(tmp, sizeof tmp, "%s.tmp", inside);
    dt_clearerr();
    ck_assert_int_eq(dt_png_grid(inside, img, 1, 1, 2, 2, 1, 1, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), inside));
    ck_assert(!exists(tmp));

    /* the temporary file is written but the rename fails (target is a
     * non-empty directory): the temporary must be removed */
    char dir[300], dirfile[320];
    tmp_path(dir, sizeof dir, "adir.png");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(dirfile, sizeof dirfile, "%s/keep", dir);
    f = fopen(dirfile, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    dt_clearerr();
    ck_assert_int_eq(dt_png_grid(dir, img, 1, 1, 2, 2, 1, 1, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), dir));
    ck_assert(!exists(tmp));
    dt_image *im = dt_image_new(4, 4, NULL);
    ck_assert_int_eq(dt_image_write_png(im, dir), -1);
    ck_assert(!exists(tmp));
    dt_image_free(im);
}
END_TEST

/* ---- runner ------------------------------------------------------------------ */

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static Suite *plot_suite(void)
{
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_text_width);
    tcase_add_test(tc, test_text_draw_extent);
    tcase_add_test(tc, test_canvas_roundtrip);
    tcase_add_test(tc, test_grid_layout);
    tcase_add_test(tc, test_grid_title_labels);
    tcase_add_test(tc, test_grid_col_labels);
    tcase_add_test(tc, test_grid_bad_args);
    tcase_add_test(tc, test_scatter);
    tcase_add_test(tc, test_scatter_empty_and_bad);
    tcase_add_test(tc, test_lines);
    tcase_add_test(tc, test_lines_fixed_y_integer_x);
    tcase_add_test(tc, test_lines_legend_between_top_and_bottom);
    tcase_add_test(tc, test_lines_empty_and_bad);
    tcase_add_test(tc, test_unwritable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/dtrain_test_plot_XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int failed = dt_check_run(plot_suite());
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
