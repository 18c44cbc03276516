/* Synthetic digits: stroke glyphs in a unit box, a random affine distortion
 * and stroke width per image, anti-aliased onto 28x28 like MNIST (digit in a
 * ~20x20 box, centered, black background). For running without MNIST; they
 * are digits a person reads easily, not a substitute for MNIST's variety. */
#include <math.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"

/* Glyph space: x right, y down, the digit in [0,1] x [0,1]; angles in degrees
 * with y down (-90 is the top of an ellipse). */
typedef struct {
    char kind;           /* 'L' polyline, 'A' elliptic arc */
    float v[8];          /* L: up to 4 points; A: cx cy rx ry t0 t1 */
    int npts;            /* L: number of points */
} stroke;

typedef struct {
    int n;
    stroke s[4];
} glyph;

#define L2(a, b, c, d) {'L', {a, b, c, d}, 2}
#define L3(a, b, c, d, e, f) {'L', {a, b, c, d, e, f}, 3}
#define ARC(cx, cy, rx, ry, t0, t1) {'A', {cx, cy, rx, ry, t0, t1}, 0}

static const glyph GLYPHS[10] = {
    {1, {ARC(.5f, .5f, .3f, .45f, 0, 360)}},
    {2, {L2(.55f, .05f, .5f, .95f), L2(.33f, .25f, .55f, .05f)}},
    {2, {ARC(.5f, .3f, .27f, .25f, -190, 35), L3(.72f, .44f, .2f, .95f, .82f, .95f)}},
    {2, {ARC(.48f, .28f, .26f, .23f, -160, 90), ARC(.48f, .72f, .3f, .23f, -90, 165)}},
    {2, {L2(.66f, .05f, .66f, .95f), L3(.66f, .05f, .18f, .66f, .86f, .66f)}},
    {2, {L3(.78f, .05f, .32f, .05f, .27f, .45f), ARC(.5f, .67f, .3f, .28f, -130, 155)}},
    {2, {ARC(.66f, .6f, .44f, .56f, -95, -180), ARC(.5f, .72f, .28f, .23f, 0, 360)}},
    {1, {L3(.18f, .06f, .82f, .06f, .42f, .95f)}},
    {2, {ARC(.5f, .27f, .22f, .22f, 0, 360), ARC(.5f, .72f, .28f, .23f, 0, 360)}},
    {2, {ARC(.5f, .3f, .27f, .25f, 0, 360), ARC(.2f, .3f, .57f, .65f, 0, 85)}},
};

/* Per-image random numbers (stream draws 0..15). */
enum { U_LABEL, U_WIDTH, U_ROT, U_SCALE, U_ASPECT, U_SHEAR, U_DX, U_DY, U_WOB_A, U_WOB_PH,
       U_WOB_F, U_SLANT, U_NOISE, U_COUNT };

typedef struct {
    float m[2][2], t[2];                   /* glyph -> pixel affine */
    float wob_a, wob_ph, wob_f;            /* a smooth wobble of the strokes */
} warp;

static void apply(const warp *w, float gx, float gy, float *px, float *py)
{
    /* wobble in glyph space: a small sinusoidal displacement, like a hand */
    float ox = w->wob_a * sinf(w->wob_f * gy * 6.2831853f + w->wob_ph);
    float oy = w->wob_a * sinf(w->wob_f * gx * 6.2831853f + 1.7f * w->wob_ph);
    gx += ox - 0.5f;
    gy += oy - 0.5f;
    *px = w->m[0][0] * gx + w->m[0][1] * gy + w->t[0];
    *py = w->m[1][0] * gx + w->m[1][1] * gy + w->t[1];
}

/* Minimum distance from pixel centers to segment (ax,ay)-(bx,by), over the
 * segment's bounding box widened by r. */
static void segment(float *dist, float ax, float ay, float bx, float by, float r)
{
    int x0 = (int)floorf(fminf(ax, bx) - r), x1 = (int)ceilf(fmaxf(ax, bx) + r);
    int y0 = (int)floorf(fminf(ay, by) - r), y1 = (int)ceilf(fmaxf(ay, by) + r);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > DT_IMG_SIDE - 1) x1 = DT_IMG_SIDE - 1;
    if (y1 > DT_IMG_SIDE - 1) y1 = DT_IMG_SIDE - 1;
    float dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float px = (float)x + 0.5f - ax, py = (float)y + 0.5f - ay;
            float t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            float ex = px - t * dx, ey = py - t * dy;
            float d = sqrtf(ex * ex + ey * ey);
            if (d < dist[y * DT_IMG_SIDE + x]) dist[y * DT_IMG_SIDE + x] = d;
        }
}

static void draw_glyph(float *dist, const glyph *g, const warp *w, float r)
{
    for (int k = 0; k < g->n; k++) {
        const stroke *s = &g->s[k];
        float px[65], py[65];
        int np;
        if (s->kind == 'L') {
            /* split each leg so the wobble bends it */
            np = 0;
            for (int i = 0; i + 1 < s->npts; i++)
                for (int j = 0; j < 8; j++) {
                    float t = (float)j / 8;
                    float gx = s->v[2 * i] + t * (s->v[2 * i + 2] - s->v[2 * i]);
                    float gy = s->v[2 * i + 1] + t * (s->v[2 * i + 3] - s->v[2 * i + 1]);
                    apply(w, gx, gy, &px[np], &py[np]);
                    np++;
                }
            apply(w, s->v[2 * (s->npts - 1)], s->v[2 * (s->npts - 1) + 1], &px[np], &py[np]);
            np++;
        } else {
            np = 41;
            for (int i = 0; i < np; i++) {
                float t = (s->v[4] + (s->v[5] - s->v[4]) * (float)i / (float)(np - 1)) *
                          (3.14159265f / 180);
                apply(w, s->v[0] + s->v[2] * cosf(t), s->v[1] + s->v[3] * sinf(t), &px[i], &py[i]);
            }
        }
        for (int i = 0; i + 1 < np; i++) segment(dist, px[i], py[i], px[i + 1], py[i + 1], r + 1);
    }
}

void dt_synth_digits(uint8_t *grey, uint8_t *labels, size_t n, uint64_t seed)
{
    float dist[DT_PLANE], noise[DT_PLANE], u[U_COUNT];
    for (size_t i = 0; i < n; i++) {
        dt_stream s = {seed, DT_RNG_SYNTH, 0, i};
        dt_rand_uniform(u, U_COUNT, s);
        int d = (int)(u[U_LABEL] * 10);
        if (d > 9) d = 9;
        labels[i] = (uint8_t)d;

        /* distortion: height ~ 17..21 px, width from the glyph's own aspect */
        float h = 17.0f + 4.0f * u[U_SCALE];
        float wsc = h * (0.85f + 0.3f * u[U_ASPECT]);
        float rot = (u[U_ROT] - 0.5f) * 0.4f;      /* +-11 degrees */
        float shear = (u[U_SHEAR] - 0.5f) * 0.5f + (u[U_SLANT] - 0.5f) * 0.2f;
        float c = cosf(rot), sn = sinf(rot);
        /* M = R * [wsc, shear*h; 0, h] */
        warp w;
        w.m[0][0] = c * wsc;
        w.m[0][1] = c * shear * h - sn * h;
        w.m[1][0] = sn * wsc;
        w.m[1][1] = sn * shear * h + c * h;
        w.t[0] = 14.0f + (u[U_DX] - 0.5f) * 2.0f;
        w.t[1] = 14.0f + (u[U_DY] - 0.5f) * 2.0f;
        w.wob_a = 0.03f * u[U_WOB_A];
        w.wob_ph = 6.2831853f * u[U_WOB_PH];
        w.wob_f = 0.5f + u[U_WOB_F];

        float width = 1.6f + 1.8f * u[U_WIDTH]; /* stroke width in pixels */
        float r = width / 2;
        for (int p = 0; p < DT_PLANE; p++) dist[p] = 1e9f;
        draw_glyph(dist, &GLYPHS[d], &w, r);

        /* anti-aliased coverage, a soft core like MNIST's pen, and a little
         * noise on the strokes (the background stays exactly 0) */
        dt_stream sn2 = {seed, DT_RNG_SYNTH, 1, i};
        dt_rand_uniform(noise, DT_PLANE, sn2);
        float namp = 0.05f + 0.1f * u[U_NOISE];
        uint8_t *g = grey + i * DT_PLANE;
        for (int p = 0; p < DT_PLANE; p++) {
            float v = r + 0.5f - dist[p];
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            if (v > 0) v = v * (1 - namp * noise[p]);
            g[p] = (uint8_t)lrintf(v * 255.0f);
        }
    }
}
