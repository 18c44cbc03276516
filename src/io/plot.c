/* Figures: scatter plots and line plots on shared axes (image grids:
 * grid.c). See include/dtrain/plot.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/plot.h"

static const uint8_t c_white[3] = {255, 255, 255};
static const uint8_t c_text[3] = {30, 30, 30};
static const uint8_t c_axis[3] = {70, 70, 70};
static const uint8_t c_tick_text[3] = {60, 60, 60};

/* Tableau 10: distinct hues that survive colour-blindness and grey printing. */
static const uint8_t palette[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},   {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

/* Largest scale (2 or 1) at which s fits in avail pixels. */
static int fit_scale(const char *s, int avail) { return dt_text_width(s, 2) <= avail ? 2 : 1; }

/* ---- axes --------------------------------------------------------------- */

/* Ticks at multiples of step = {1, 2, 5} x 10^k inside [lo, hi]. */
typedef struct {
    double first, step;
    int n;
} ticks;

static ticks nice_ticks(double lo, double hi, int target)
{
    ticks t;
    double raw = (hi - lo) / target;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    t.step = (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
    t.first = ceil(lo / t.step - 1e-9) * t.step;
    t.n = (int)floor((hi - t.first) / t.step + 1e-9) + 1;
    if (t.n < 0) t.n = 0;
    return t;
}

/* Label for tick value v: just enough decimals for the step, %g when huge or tiny. */
static void tick_label(char *buf, size_t cap, double v, const ticks *t)
{
    if (fabs(v) < t->step * 1e-6) v = 0.0; /* no "-0" or "1e-17" */
    double big = fmax(fabs(t->first), fabs(t->first + (t->n - 1) * t->step));
    if (big >= 1e6 || t->step < 1e-4) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int dec = (int)ceil(-log10(t->step) - 1e-9);
    snprintf(buf, cap, "%.*f", dec > 0 ? dec : 0, v);
}

/* Data range [lo, hi] widened by frac of its span on each side (degenerate
 * spans get a unit-ish width). */
static void pad_range(double *lo, double *hi, double frac)
{
    if (!(*hi > *lo)) {
        double d = fmax(0.5, 0.1 * fabs(*lo));
        *lo -= d;
        *hi += d;
        return;
    }
    double d = (*hi - *lo) * frac;
    *lo -= d;
    *hi += d;
}

/* A plot area [px0, px1) x [py0, py1) showing data [xlo, xhi] x [ylo, yhi]. */
typedef struct {
    dt_image *im;
    int px0, py0, px1, py1;
    double xlo, xhi, ylo, yhi;
    ticks xt, yt;
    int ts;   /* tick label scale */
    int xint; /* x ticks at whole numbers only */
    const char *title, *xlabel, *ylabel;
} frame;

static float map_x(const frame *f, double x)
{
    return (float)(f->px0 + (x - f->xlo) / (f->xhi - f->xlo) * (f->px1 - f->px0));
}

static float map_y(const frame *f, double y)
{
    return (float)(f->py1 - (y - f->ylo) / (f->yhi - f->ylo) * (f->py1 - f->py0));
}

/* x ticks of frame f: nice ones, at whole numbers only if f->xint */
static ticks x_ticks(const frame *f, int target)
{
    ticks t = nice_ticks(f->xlo, f->xhi, target);
    if (f->xint && t.step < 1.0) {
        t.step = 1.0;
        t.first = ceil(f->xlo - 1e-9);
        t.n = (int)floor(f->xhi - t.first + 1e-9) + 1;
        if (t.n < 0) t.n = 0;
    }
    return t;
}

/* Lay out the figure around the plot area; right = pixels kept free at the right. */
static void frame_layout(frame *f, int right)
{
    f->ts = 2;
    f->xt = x_ticks(f, 7);
    f->yt = nice_ticks(f->ylo, f->yhi, 7);
    int wmax = 0;
    char buf[64];
    for (int i = 0; i < f->yt.n; i++) {
        tick_label(buf, sizeof buf, f->yt.first + i * f->yt.step, &f->yt);
        int tw = dt_text_width(buf, f->ts);
        if (tw > wmax) wmax = tw;
    }
    int W = f->im->w, H = f->im->h, fh = DT_FONT_H * 2;
    f->py0 = f->title ? 16 + fh + 14 : 24;
    f->py1 = H - (10 + fh + (f->xlabel ? 10 + fh : 0) + 14);
    f->px0 = 14 + (f->ylabel ? fh + 12 : 0) + wmax + 12;
    f->px1 = W - right - 24;
    /* Fewer x ticks while their labels would crowd each other. */
    for (int target = 6; target >= 2; target--) {
        int xw = 0;
        for (int i = 0; i < f->xt.n; i++) {
            tick_label(buf, sizeof buf, f->xt.first + i * f->xt.step, &f->xt);
            int tw = dt_text_width(buf, f->ts);
            if (tw > xw) xw = tw;
        }
        double gap = f->xt.step / (f->xhi - f->xlo) * (f->px1 - f->px0);
        if (gap >= xw + 16) break;
        f->xt = x_ticks(f, target);
    }
}

/* Plot-area background and grid lines (under the data). */
static void frame_begin(frame *f, const uint8_t bg[3], const uint8_t grid[3])
{
    dt_image_fill_rect(f->im, f->px0, f->py0, f->px1 - f->px0, f->py1 - f->py0, bg);
    for (int i = 0; i < f->xt.n; i++) {
        int x = (int)floorf(map_x(f, f->xt.first + i * f->xt.step));
        if (x > f->px0 && x < f->px1 - 1)
            dt_image_fill_rect(f->im, x, f->py0, 1, f->py1 - f->py0, grid);
    }
    for (int i = 0; i < f->yt.n; i++) {
        int y = (int)floorf(map_y(f, f->yt.first + i * f->yt.step));
        if (y > f->py0 && y < f->py1 - 1)
            dt_image_fill_rect(f->im, f->px0, y, f->px1 - f->px0, 1, grid);
    }
}

/* Axes box, ticks, tick labels, title and axis labels (over the data). */
static void frame_end(frame *f)
{
    dt_image *im = f->im;
    int W = im->w, fh = DT_FONT_H * 2;
    char buf[64];
    dt_image_rect(im, f->px0 - 1, f->py0 - 1, f->px1 - f->px0 + 2, f->py1 - f->py0 + 2,
                  c_axis);
    for (int i = 0; i < f->xt.n; i++) {
        double v = f->xt.first + i * f->xt.step;
        int x = (int)floorf(map_x(f, v));
        if (x < f->px0 - 1 || x > f->px1) continue;
        dt_image_fill_rect(im, x, f->py1 + 1, 1, 6, c_axis);
        tick_label(buf, sizeof buf, v, &f->xt);
        int tw = dt_text_width(buf, f->ts), lx = x - tw / 2;
        if (lx + tw > W - 2) lx = W - 2 - tw; /* keep the last label inside */
        dt_draw_text(im, lx, f->py1 + 11, buf, c_tick_text, f->ts);
    }
    for (int i = 0; i < f->yt.n; i++) {
        double v = f->yt.first + i * f->yt.step;
        int y = (int)floorf(map_y(f, v));
        if (y < f->py0 - 1 || y > f->py1) continue;
        dt_image_fill_rect(im, f->px0 - 7, y, 6, 1, c_axis);
        tick_label(buf, sizeof buf, v, &f->yt);
        dt_draw_text(im, f->px0 - 12 - dt_text_width(buf, f->ts), y - DT_FONT_CAP * f->ts / 2,
                     buf, c_tick_text, f->ts);
    }
    int cx = (f->px0 + f->px1) / 2;
    if (f->title) {
        int s = fit_scale(f->title, W - 20);
        dt_draw_text_bold(im, cx - dt_text_width(f->title, s) / 2, 16, f->title, s);
    }
    if (f->xlabel) {
        int s = fit_scale(f->xlabel, W - 20);
        dt_draw_text(im, cx - dt_text_width(f->xlabel, s) / 2, f->py1 + 11 + fh + 10,
                     f->xlabel, c_text, s);
    }
    if (f->ylabel) {
        int s = fit_scale(f->ylabel, im->h - 20);
        int cy = (f->py0 + f->py1) / 2;
        dt_draw_text_up(im, 14, cy - dt_text_width(f->ylabel, s) / 2, f->ylabel, c_text, s);
    }
}

/* ---- scatter ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p-quantile of sorted v (m values), linear interpolation. */
static double quantile(const double *v, size_t m, double p)
{
    double pos = p * (double)(m - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= m) return v[m - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static void to_rgb8(uint8_t out[3], const float in[3])
{
    for (int k = 0; k < 3; k++) {
        float v = in[k];
        if (!(v > 0.0f)) v = 0.0f;
        if (v > 1.0f) v = 1.0f;
        out[k] = (uint8_t)(v * 255.0f + 0.5f);
    }
}

int dt_plot_scatter(const char *path, const float *x, const float *y, const uint8_t *cls,
                    size_t n, int ncls, const float (*cls_rgb)[3],
                    const char *const *cls_names, const char *title, const char *xlabel,
                    const char *ylabel)
{
    if (!path) return dt_seterr("scatter: no output path");
    if (n > 0 && (!x || !y)) return dt_seterr("%s: scatter of %zu points without data", path, n);
    if (cls && (ncls < 1 || ncls > 256))
        return dt_seterr("%s: scatter with %d classes (need 1..256)", path, ncls);
    if (!cls) ncls = 1;

    /* Robust range: 0.5-99.5 percentiles of the finite points. */
    size_t m = 0;
    double *xs = dt_alloc((n ? n : 1) * sizeof(double));
    double *ys = dt_alloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            xs[m] = x[i];
            ys[m] = y[i];
            m++;
        }
    frame f = {0};
    f.xlo = 0.0, f.xhi = 1.0, f.ylo = 0.0, f.yhi = 1.0;
    if (m > 0) {
        qsort(xs, m, sizeof(double), cmp_double);
        qsort(ys, m, sizeof(double), cmp_double);
        f.xlo = quantile(xs, m, 0.005), f.xhi = quantile(xs, m, 0.995);
        f.ylo = quantile(ys, m, 0.005), f.yhi = quantile(ys, m, 0.995);
    }
    pad_range(&f.xlo, &f.xhi, 0.05);
    pad_range(&f.ylo, &f.yhi, 0.05);
    dt_free(xs);
    dt_free(ys);

    uint8_t(*rgb)[3] = dt_alloc((size_t)ncls * 3);
    char(*names)[48] = dt_alloc((size_t)ncls * 48);
    int namew = 0;
    for (int k = 0; k < ncls; k++) {
        if (cls_rgb)
            to_rgb8(rgb[k], cls_rgb[k]);
        else
            memcpy(rgb[k], palette[k % 10], 3);
        if (cls_names && cls_names[k])
            snprintf(names[k], 48, "%s", cls_names[k]);
        else
            snprintf(names[k], 48, "%d", k);
        int tw = dt_text_width(names[k], 2);
        if (tw > namew) namew = tw;
    }
    int legend = cls != NULL;
    int legw = legend ? 32 + namew + 12 : 0;
    if (legw > 260) legw = 260;

    f.im = dt_image_new(DT_PLOT_W, DT_PLOT_H, NULL);
    f.title = title, f.xlabel = xlabel, f.ylabel = ylabel;
    frame_layout(&f, legend ? legw + 20 : 0);
    const uint8_t bg[3] = {236, 236, 236}, grid[3] = {250, 250, 250};
    frame_begin(&f, bg, grid);

    /* Smaller, fainter markers as the cloud gets denser. */
    float r = m <= 300 ? 4.0f : m <= 3000 ? 3.0f : m <= 30000 ? 2.3f : 1.7f;
    float alpha = m <= 300 ? 0.9f : m <= 3000 ? 0.75f : m <= 30000 ? 0.55f : 0.4f;
    const uint8_t grey[3] = {128, 128, 128};
    for (size_t i = 0; i < n; i++) {
        double xv = x[i], yv = y[i];
        if (!isfinite(xv) || !isfinite(yv) || xv < f.xlo || xv > f.xhi || yv < f.ylo ||
            yv > f.yhi)
            continue;
        const uint8_t *fill = (cls ? (cls[i] < ncls ? rgb[cls[i]] : grey) : rgb[0]);
        uint8_t edge[3];
        for (int k = 0; k < 3; k++) edge[k] = (uint8_t)(fill[k] * 0.55f);
        dt_image_marker(f.im, map_x(&f, xv), map_y(&f, yv), r, fill, edge, alpha);
    }
    frame_end(&f);

    if (legend) {
        int row = 24, bx = f.px1 + 20, by = f.py0;
        int shown = ncls, maxrows = (f.py1 - f.py0 - 12) / row;
        if (shown > maxrows) shown = maxrows;
        int bh = shown * row + 10;
        dt_image_fill_rect(f.im, bx, by, legw, bh, c_white);
        dt_image_rect(f.im, bx, by, legw, bh, (const uint8_t[3]){190, 190, 190});
        for (int k = 0; k < shown; k++) {
            int ry = by + 5 + k * row;
            uint8_t edge[3];
            for (int j = 0; j < 3; j++) edge[j] = (uint8_t)(rgb[k][j] * 0.55f);
            dt_image_marker(f.im, bx + 15.0f, ry + row / 2.0f, 6.0f, rgb[k], edge, 1.0f);
            dt_draw_text(f.im, bx + 30, ry + (row - DT_FONT_CAP * 2) / 2, names[k], c_text, 2);
        }
    }
    dt_free(rgb);
    dt_free(names);
    int rc = dt_image_write_png(f.im, path);
    dt_image_free(f.im);
    return rc;
}

/* ---- lines -------------------------------------------------------------- */

/* Number of line samples (every few pixels along each drawn segment) inside a
 * rectangle: used to put the legend where it hides the least. */
static int ink_in_rect(const frame *f, const float *x, const float *y, int nseries, int npts,
                       int rx, int ry, int rw, int rh)
{
    int hits = 0;
    for (int s = 0; s < nseries; s++) {
        const float *ys = y + (size_t)s * npts;
        float lx = 0, ly = 0;
        int have = 0;
        for (int i = 0; i < npts; i++) {
            double xv = x ? x[i] : i, yv = ys[i];
            if (!isfinite(xv) || !isfinite(yv)) continue;
            float px = map_x(f, xv), py = map_y(f, yv);
            float ax = have ? lx : px, ay = have ? ly : py;
            int steps = 1 + (int)(hypotf(px - ax, py - ay) / 4.0f);
            for (int k = 0; k <= steps; k++) {
                float qx = ax + (px - ax) * k / steps, qy = ay + (py - ay) * k / steps;
                if (qx >= rx && qx < rx + rw && qy >= ry && qy < ry + rh) hits++;
            }
            lx = px, ly = py, have = 1;
        }
    }
    return hits;
}

/* A curve's segment, the part of it inside the plot area's rows [py0, py1] only
 * (a fixed y range may leave points outside). */
static void clipped_line(const frame *f, float x0, float y0, float x1, float y1, const uint8_t col[3])
{
    float t0 = 0.0f, t1 = 1.0f, dy = y1 - y0;
    const float lim[2] = {(float)f->py0, (float)f->py1};
    if (dy == 0.0f) {
        if (y0 < lim[0] || y0 > lim[1]) return;
    } else {
        float ta = (lim[0] - y0) / dy, tb = (lim[1] - y0) / dy;
        t0 = fmaxf(t0, fminf(ta, tb));
        t1 = fminf(t1, fmaxf(ta, tb));
        if (t0 > t1) return;
    }
    float dx = x1 - x0;
    dt_image_line(f->im, x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy, col, 2.5f);
}

int dt_plot_lines(const char *path, const float *x, const float *y, int nseries, int npts,
                  const char *const *names, const char *title, const char *xlabel,
                  const char *ylabel, const dt_lines_opts *opts)
{
    if (!path) return dt_seterr("lines: no output path");
    if (nseries < 0 || npts < 0)
        return dt_seterr("%s: line plot of %d series x %d points", path, nseries, npts);
    if (nseries > 0 && npts > 0 && !y)
        return dt_seterr("%s: line plot of %d series without data", path, nseries);
    if (nseries == 0 || npts == 0) nseries = 0, npts = 0;

    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (int i = 0; i < npts; i++) {
            double xv = x ? x[i] : i, yv = y[(size_t)s * npts + i];
            if (!isfinite(xv) || !isfinite(yv)) continue;
            xlo = fmin(xlo, xv), xhi = fmax(xhi, xv);
            ylo = fmin(ylo, yv), yhi = fmax(yhi, yv);
        }
    frame f = {0};
    f.xlo = 0.0, f.xhi = 1.0, f.ylo = 0.0, f.yhi = 1.0;
    if (xlo <= xhi) {
        f.xlo = xlo, f.xhi = xhi, f.ylo = ylo, f.yhi = yhi;
    }
    pad_range(&f.xlo, &f.xhi, 0.02);
    if (opts && opts->ymin < opts->ymax) {
        f.ylo = opts->ymin, f.yhi = opts->ymax;
        pad_range(&f.ylo, &f.yhi, 0.03);
    } else {
        pad_range(&f.ylo, &f.yhi, 0.06);
    }
    f.im = dt_image_new(DT_PLOT_W, DT_PLOT_H, NULL);
    f.title = title, f.xlabel = xlabel, f.ylabel = ylabel;
    f.xint = opts && opts->xint;
    frame_layout(&f, 0);
    const uint8_t grid[3] = {228, 228, 228};
    frame_begin(&f, c_white, grid);

    for (int s = 0; s < nseries; s++) {
        const float *ys = y + (size_t)s * npts;
        const uint8_t *col = palette[s % 10];
        float lx = 0, ly = 0;
        int have = 0;
        for (int i = 0; i < npts; i++) {
            double xv = x ? x[i] : i, yv = ys[i];
            if (!isfinite(xv) || !isfinite(yv)) continue;
            float px = map_x(&f, xv), py = map_y(&f, yv);
            if (have) clipped_line(&f, lx, ly, px, py, col);
            if (npts <= 60 && py >= f.py0 && py <= f.py1) dt_image_disc(f.im, px, py, 3.2f, col, 1.0f);
            lx = px, ly = py, have = 1;
        }
    }
    frame_end(&f);

    if (nseries > 0) {
        char(*nm)[48] = dt_alloc((size_t)nseries * 48);
        int namew = 0, row = 24;
        for (int s = 0; s < nseries; s++) {
            if (names && names[s])
                snprintf(nm[s], 48, "%s", names[s]);
            else
                snprintf(nm[s], 48, "series %d", s);
            int tw = dt_text_width(nm[s], 2);
            if (tw > namew) namew = tw;
        }
        int shown = nseries, maxrows = (f.py1 - f.py0 - 40) / row;
        if (shown > maxrows) shown = maxrows;
        int lw = 44 + namew + 12, lh = shown * row + 10;
        /* corners: top-right, bottom-right, top-left, bottom-left; then the
         * middles of the right and left sides (curves that hug both the top and
         * the bottom, as accuracies and distances do, leave those empty) */
        int ymid = (f.py0 + f.py1 - lh) / 2;
        int cxs[6] = {f.px1 - 12 - lw, f.px1 - 12 - lw, f.px0 + 12, f.px0 + 12, f.px1 - 12 - lw, f.px0 + 12};
        int cys[6] = {f.py0 + 12, f.py1 - 12 - lh, f.py0 + 12, f.py1 - 12 - lh, ymid, ymid};
        int best = 0, besth = -1;
        for (int k = 0; k < 6; k++) {
            int hits = ink_in_rect(&f, x, y, nseries, npts, cxs[k], cys[k], lw, lh);
            if (besth < 0 || hits < besth) best = k, besth = hits;
        }
        int bx = cxs[best], by = cys[best];
        dt_image_fill_rect(f.im, bx, by, lw, lh, c_white);
        dt_image_rect(f.im, bx, by, lw, lh, (const uint8_t[3]){190, 190, 190});
        for (int s = 0; s < shown; s++) {
            int ry = by + 5 + s * row;
            const uint8_t *col = palette[s % 10];
            float cy = ry + row / 2.0f;
            dt_image_line(f.im, bx + 10.0f, cy, bx + 36.0f, cy, col, 3.0f);
            dt_draw_text(f.im, bx + 44, ry + (row - DT_FONT_CAP * 2) / 2, nm[s], c_text, 2);
        }
        dt_free(nm);
    }
    int rc = dt_image_write_png(f.im, path);
    dt_image_free(f.im);
    return rc;
}
