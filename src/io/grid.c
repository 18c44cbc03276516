/* Image grids with a title and row and column labels (plot.h). */
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/plot.h"

static const uint8_t c_white[3] = {255, 255, 255};
static const uint8_t c_text[3] = {30, 30, 30};
static const uint8_t c_sep[3] = {DT_GRID_SEP_RGB, DT_GRID_SEP_RGB, DT_GRID_SEP_RGB};

/* ---- image grid --------------------------------------------------------- */

/* Line i (0-based) of s, split at '\n', into buf; its length, or -1 past the last. */
static int text_line(char *buf, size_t cap, const char *s, int i)
{
    for (; i > 0; i--) {
        s = strchr(s, '\n');
        if (!s) return -1;
        s++;
    }
    size_t n = strcspn(s, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return (int)n;
}

/* Lines of s and the width of the widest at scale. */
static int text_lines(const char *s, int scale, int *width)
{
    char buf[256];
    int n = 0;
    *width = 0;
    while (s && text_line(buf, sizeof buf, s, n) >= 0) {
        int tw = dt_text_width(buf, scale);
        if (tw > *width) *width = tw;
        n++;
    }
    return n;
}

int dt_png_grid(const char *path, const float *imgs, int n, int c, int h, int w, int cols,
                int scale, const char *title, const char *const *row_labels,
                const char *const *col_labels)
{
    if (!path) return dt_seterr("grid: no output path");
    if (!imgs || n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || cols < 1 || scale < 1)
        return dt_seterr("%s: bad grid of %d images (%d,%d,%d), %d columns, scale %d "
                         "(need n >= 1, c = 1 or 3)",
                         path, n, c, h, w, cols, scale);
    int ncol = cols < n ? cols : n, rows = (n + ncol - 1) / ncol;
    long long cw = (long long)w * scale, ch = (long long)h * scale;
    long long gw = ncol * cw + (ncol + 1) * DT_GRID_SEP;
    long long gh = rows * ch + (rows + 1) * DT_GRID_SEP;
    int ls = ch >= 24 ? 2 : 1, lw = 0;
    if (row_labels) {
        for (int r = 0; r < rows; r++) {
            int tw = row_labels[r] ? dt_text_width(row_labels[r], ls) : 0;
            if (tw > lw) lw = tw;
        }
        lw += 2 * DT_GRID_PAD;
    }
    /* column labels: at the row labels' scale if every line fits its column, else 1 */
    int cs = ls, clines = 0, chh = 0;
    if (col_labels) {
        for (int k = 0; k < ncol; k++) {
            int tw, nl = text_lines(col_labels[k], ls, &tw);
            if (tw > cw + DT_GRID_SEP - 4) cs = 1; /* 4 pixels between neighbours */
            if (nl > clines) clines = nl;
        }
        chh = clines * DT_FONT_H * cs + DT_GRID_PAD;
    }
    int th = title ? DT_GRID_TITLE_H : 0;
    long long W = 2 * DT_GRID_MARGIN + lw + gw, H = 2 * DT_GRID_MARGIN + th + chh + gh;
    long long extra = 0;
    if (title) {
        long long tw = dt_text_width(title, 2) + 2 * DT_GRID_MARGIN;
        if (tw > W) {
            extra = tw - W;
            W = tw;
        }
    }
    if (W > DT_IMAGE_MAX || H > DT_IMAGE_MAX)
        return dt_seterr("%s: grid of %lld x %lld pixels is too large (max %d)", path, W, H,
                         DT_IMAGE_MAX);
    dt_image *im = dt_image_new((int)W, (int)H, NULL);
    if (!im) return -1;
    int gx = DT_GRID_MARGIN + lw + (int)(extra / 2), gy = DT_GRID_MARGIN + th + chh;
    dt_image_fill_rect(im, gx, gy, (int)gw, (int)gh, c_sep);
    size_t per = (size_t)c * h * w;
    for (int i = 0; i < rows * ncol; i++) {
        int x = gx + DT_GRID_SEP + (i % ncol) * (int)(cw + DT_GRID_SEP);
        int y = gy + DT_GRID_SEP + (i / ncol) * (int)(ch + DT_GRID_SEP);
        if (i < n)
            dt_image_blit_chw(im, x, y, imgs + (size_t)i * per, c, h, w, scale);
        else
            dt_image_fill_rect(im, x, y, (int)cw, (int)ch, c_white); /* empty cell */
    }
    if (title)
        dt_draw_text_bold(im, ((int)W - dt_text_width(title, 2)) / 2,
                  DT_GRID_MARGIN + (DT_GRID_TITLE_H - 2 * DT_FONT_H) / 2, title, 2);
    if (row_labels)
        for (int r = 0; r < rows; r++) {
            if (!row_labels[r]) continue;
            int y = gy + DT_GRID_SEP + r * (int)(ch + DT_GRID_SEP) +
                    ((int)ch - DT_FONT_CAP * ls) / 2;
            dt_draw_text(im, gx - DT_GRID_PAD - dt_text_width(row_labels[r], ls), y,
                         row_labels[r], c_text, ls);
        }
    if (col_labels)
        for (int k = 0; k < ncol; k++) {
            char buf[256];
            int xc = gx + DT_GRID_SEP + k * (int)(cw + DT_GRID_SEP) + (int)cw / 2;
            for (int i = 0; col_labels[k] && text_line(buf, sizeof buf, col_labels[k], i) >= 0; i++)
                dt_draw_text(im, xc - dt_text_width(buf, cs) / 2,
                             gy - DT_GRID_PAD - (clines - i) * DT_FONT_H * cs, buf, c_text, cs);
        }
    int rc = dt_image_write_png(im, path);
    dt_image_free(im);
    return rc;
}
