/* plot: RGB pictures and the PNG figures dtrain writes (image grids, scatter
 * plots of latent codes, line plots of losses).
 *
 * Every file is an 8-bit RGB PNG written atomically: to `<path>.tmp`, then
 * renamed over `<path>`; on failure the temporary file is removed, the
 * reason (naming the path) is recorded with dt_seterr and -1 is returned.
 *
 * Coordinates: pixel (x, y) is column x, row y, origin top-left. Drawing
 * clips to the image. The anti-aliased primitives (line, disc, marker) take
 * continuous coordinates in which pixel (x, y) covers [x, x+1) x [y, y+1),
 * so its centre is (x + 0.5, y + 0.5). */
#ifndef DTRAIN_PLOT_H
#define DTRAIN_PLOT_H

#include <stddef.h>
#include <stdint.h>

/* ---- canvas ------------------------------------------------------------ */

typedef struct {
    int w, h;
    uint8_t *px; /* (h, w, 3) RGB, row-major: pixel (x, y) at px[3*(y*w + x)] */
} dt_image;

#define DT_IMAGE_MAX 16384 /* largest width or height accepted */

/* A w x h canvas filled with bg (NULL: white); NULL + dt_seterr on a bad size. */
dt_image *dt_image_new(int w, int h, const uint8_t bg[3]);
/* Free a canvas (NULL is fine). */
void dt_image_free(dt_image *im);
/* Write the canvas as an 8-bit RGB PNG, atomically; 0 or -1 (message names path). */
int dt_image_write_png(const dt_image *im, const char *path);

/* Set one pixel (ignored outside the image). */
void dt_image_set(dt_image *im, int x, int y, const uint8_t rgb[3]);
/* Blend rgb over one pixel: p = alpha*rgb + (1-alpha)*p, alpha in [0,1]. */
void dt_image_blend(dt_image *im, int x, int y, const uint8_t rgb[3], float alpha);
/* Fill the w x h rectangle with top-left corner (x, y). */
void dt_image_fill_rect(dt_image *im, int x, int y, int w, int h, const uint8_t rgb[3]);
/* 1-pixel outline of the w x h rectangle with top-left corner (x, y). */
void dt_image_rect(dt_image *im, int x, int y, int w, int h, const uint8_t rgb[3]);
/* Anti-aliased segment (x0,y0)-(x1,y1) of the given width (pixels, round caps). */
void dt_image_line(dt_image *im, float x0, float y0, float x1, float y1,
                   const uint8_t rgb[3], float width);
/* Anti-aliased filled circle of radius r at (cx, cy), blended with opacity alpha. */
void dt_image_disc(dt_image *im, float cx, float cy, float r, const uint8_t rgb[3],
                   float alpha);
/* Scatter marker: disc of radius r in fill with a 1-pixel ring in edge, the
 * whole marker blended once with opacity alpha (so dense clouds stay readable). */
void dt_image_marker(dt_image *im, float cx, float cy, float r, const uint8_t fill[3],
                     const uint8_t edge[3], float alpha);
/* chw (c,h,w) floats in [0,1] (clamped, NaN -> 0; c = 1 grey or 3 RGB) drawn with
 * top-left (x, y), each value as a scale x scale block; -1 on bad c/h/w/scale. */
int dt_image_blit_chw(dt_image *im, int x, int y, const float *chw, int c, int h, int w,
                      int scale);

/* ---- text ---------------------------------------------------------------- */

/* Embedded bitmap font for printable ASCII 32-126: proportional glyphs at most
 * 5 pixels wide (digits all 5), 7 rows above the baseline and 2 below,
 * 1 pixel between glyphs; other bytes draw as '?'. Sizes below are at scale 1. */
#define DT_FONT_H 9   /* cell height: cap height 7 + descender 2 */
#define DT_FONT_CAP 7 /* height of capitals and digits */

/* Width in pixels of s drawn at scale: scale * (sum of glyph widths + gaps); 0 for "". */
int dt_text_width(const char *s, int scale);
/* Draw s with its cell's top-left corner at (x, y); glyph pixels are scale x scale. */
void dt_draw_text(dt_image *im, int x, int y, const char *s, const uint8_t rgb[3], int scale);
/* Titles: dark text drawn twice, one pixel apart, for a heavier stroke. */
void dt_draw_text_bold(dt_image *im, int x, int y, const char *s, int scale);
/* Draw s rotated 90 degrees counter-clockwise (reads bottom to top) inside the box
 * with top-left (x, y), DT_FONT_H*scale wide and dt_text_width(s, scale) tall. */
void dt_draw_text_up(dt_image *im, int x, int y, const char *s, const uint8_t rgb[3],
                     int scale);

/* ---- figures ------------------------------------------------------------- */

/* Image grid layout (pixels). With cw = w*scale, ch = h*scale, cols' = min(cols, n),
 * rows = ceil(n / cols'), ls = 2 if ch >= 24 else 1:
 *   grid   = cols'*cw + (cols'+1)*DT_GRID_SEP  by  rows*ch + (rows+1)*DT_GRID_SEP
 *   title  band of DT_GRID_TITLE_H rows above everything if title != NULL
 *   labels column of (widest row label at scale ls) + 2*DT_GRID_PAD left of the grid,
 *          if row_labels != NULL
 *   column labels band of (most lines of a label) * DT_FONT_H * cs + DT_GRID_PAD rows
 *          between title and grid if col_labels != NULL, each line centred over its
 *          column; cs = ls if every line fits within cw + DT_GRID_SEP - 4, else 1
 *   image  = DT_GRID_MARGIN + labels + grid + DT_GRID_MARGIN wide (widened, grid
 *            centred in the extra space, if the title needs more), and
 *            DT_GRID_MARGIN + title + column labels + grid + DT_GRID_MARGIN tall.
 * Image i (row i / cols', column i % cols') has its top-left pixel at
 *   (gx + DT_GRID_SEP + col*(cw + DT_GRID_SEP), gy + DT_GRID_SEP + row*(ch + DT_GRID_SEP))
 * where (gx, gy) is the grid's top-left corner. Separators are DT_GRID_SEP_RGB grey,
 * the rest white. */
#define DT_GRID_MARGIN 6
#define DT_GRID_SEP 2
#define DT_GRID_PAD 6
#define DT_GRID_TITLE_H (2 * DT_FONT_H + 8) /* title drawn at scale 2 */
#define DT_GRID_SEP_RGB 170

/* imgs (n, c, h, w) in [0,1], row-major grid order -> PNG grid of cols columns,
 * each pixel scale x scale. title, row_labels (one per grid row) and col_labels
 * (one per grid column; '\n' breaks a label into lines) may be NULL, and so may
 * any one label. 0, or -1 on bad sizes (n < 1, c not 1 or 3, ...) or a failed write. */
int dt_png_grid(const char *path, const float *imgs, int n, int c, int h, int w, int cols,
                int scale, const char *title, const char *const *row_labels,
                const char *const *col_labels);

#define DT_PLOT_W 800 /* size of scatter and line plots */
#define DT_PLOT_H 700

/* 2-D scatter of n points (x[i], y[i]) coloured by class cls[i] in [0, ncls), on an
 * 800 x 700 figure: nice ticks, axes clipped to the 0.5-99.5 percentile of the finite
 * data plus a margin (points outside are not drawn), semi-transparent outlined
 * markers on a light grey plot area, legend of class colours and names at the right.
 * cls_rgb (ncls, 3) in [0,1] (NULL: a built-in 10-colour palette); cls_names (ncls)
 * may be NULL ("0", "1", ...); cls may be NULL (one class, no legend); classes
 * >= ncls draw grey. Points with a NaN/inf coordinate are skipped. n = 0 (or no
 * finite point) writes the axes alone over [0, 1]. title/xlabel/ylabel may be NULL.
 * 0, or -1 on bad arguments or a failed write. */
int dt_plot_scatter(const char *path, const float *x, const float *y, const uint8_t *cls,
                    size_t n, int ncls, const float (*cls_rgb)[3],
                    const char *const *cls_names, const char *title, const char *xlabel,
                    const char *ylabel);

/* What a line plot fixes instead of deriving it from the data (NULL: nothing). */
typedef struct {
    double ymin, ymax; /* when ymin < ymax: the y axis spans [ymin, ymax] (plus 3% each side,
                          so points on the limits show whole); curves outside are clipped */
    int xint;          /* x ticks at whole numbers only (epochs): steps of 1, 2, 5, 10, ... */
} dt_lines_opts;

/* Line plot of nseries curves on an 800 x 700 figure: x (npts) shared (NULL: 0..npts-1),
 * y (nseries, npts) one row per series. Non-finite points are skipped and the line
 * joins the neighbouring finite points (points are also dotted when npts <= 60).
 * Distinct colours, nice ticks, y range from the finite data plus a margin unless
 * opts fixes it, legend with names (NULL: "series 0", ...) in the emptiest corner of
 * the plot area. nseries = 0 or npts = 0 writes the axes alone. 0, or -1 on bad
 * arguments or a failed write. */
int dt_plot_lines(const char *path, const float *x, const float *y, int nseries, int npts,
                  const char *const *names, const char *title, const char *xlabel,
                  const char *ylabel, const dt_lines_opts *opts);

#endif
