/* The CycleGAN's generator and discriminator (see include/dtrain/gan.h). */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/gan.h"


/* ---- generator ------------------------------------------------------------- */

/* A network's layers, once: convolutions (k > 0: kernel k, padding pad, on
 * side x side images) or linear layers (k = 0), where each sits in its
 * struct, its widths. Declaring, binding, initializing, the checkpoint's
 * names and the recorded gradients' layout follow from the table. */
typedef struct {
    const char *name;
    size_t at;
    int in, out, k, pad, side;
} layer_spec;

static const layer_spec GEN[] = {
    {"conv1", offsetof(dt_gen, c1), 3, 32, 3, 1, DT_IMG_SIDE},
    {"conv2", offsetof(dt_gen, c2), 32, 40, 3, 1, DT_IMG_SIDE},
    {"conv3", offsetof(dt_gen, c3), 40, 3, 1, 0, DT_IMG_SIDE},
};
static const layer_spec DISC[] = {
    {"conv1", offsetof(dt_disc, c1), 3, 32, 3, 1, DT_IMG_SIDE},
    {"conv2", offsetof(dt_disc, c2), 32, 64, 3, 1, DT_IMG_SIDE / 2},
    {"fc1", offsetof(dt_disc, f1), 64 * 7 * 7, 128, 0, 0, 0},
    {"fc2", offsetof(dt_disc, f2), 128, 1, 0, 0, 0},
};

/* declare the n layers of net (the struct holding them) in p, allocate, bind */
static void build(void *net, dt_params *p, const char *name, const layer_spec *ls, int n)
{
    dt_params_init(p, name);
    for (int i = 0; i < n; i++) {
        void *l = (char *)net + ls[i].at;
        if (ls[i].k)
            dt_conv2d_declare(l, p, ls[i].name, ls[i].in, ls[i].out, ls[i].k, ls[i].pad);
        else
            dt_linear_declare(l, p, ls[i].name, ls[i].in, ls[i].out);
    }
    dt_params_alloc(p);
    for (int i = 0; i < n; i++) {
        void *l = (char *)net + ls[i].at;
        if (ls[i].k)
            dt_conv2d_bind(l, p);
        else
            dt_linear_bind(l, p);
    }
}

/* PyTorch's default initialization of each layer, keys first, first + 1, ... */
static void init(void *net, const layer_spec *ls, int n, uint64_t seed, uint64_t first)
{
    for (int i = 0; i < n; i++) {
        void *l = (char *)net + ls[i].at;
        if (ls[i].k)
            dt_conv2d_init(l, seed, first + (uint64_t)i);
        else
            dt_linear_init(l, seed, first + (uint64_t)i);
    }
}

#define NGEN ((int)(sizeof GEN / sizeof *GEN))
#define NDISC ((int)(sizeof DISC / sizeof *DISC))

/* ---- recorded gradients (dt_grad_rec): one image's part of each layer -------- */

static int winograd(const layer_spec *l) { return l->k && dt_conv2d_winograd_fits(l->in, l->out, l->side, l->side, l->k, l->pad); }

/* floats of a layer's record: its weight term (Winograd: transformed) and
 * bias term, or a linear layer's input row and output-gradient row */
static size_t rec_weights(const layer_spec *l)
{
    size_t io = (size_t)l->in * (size_t)l->out;
    return !l->k ? (size_t)l->in : winograd(l) ? 16 * io : io * (size_t)l->k * (size_t)l->k;
}

static size_t rec_size(const layer_spec *ls, int n, int upto)
{
    size_t s = 0;
    for (int i = 0; i < n && i < upto; i++) s += rec_weights(&ls[i]) + (size_t)ls[i].out;
    return s;
}

size_t dt_gen_rec_size(void) { return rec_size(GEN, NGEN, NGEN); }
size_t dt_disc_rec_size(void) { return rec_size(DISC, NDISC, NDISC); }

size_t dt_gan_fold_scratch(int n)
{
    size_t most = 0;
    for (int i = 0; i < NDISC; i++) { /* a linear layer's rows, or a Winograd layer's dU and dW */
        const layer_spec *l = &DISC[i];
        size_t s = l->k ? 25 * (size_t)l->in * (size_t)l->out : (size_t)n * (size_t)(l->in + l->out);
        most = s > most ? s : most;
    }
    for (int i = 0; i < NGEN; i++) most = 25 * (size_t)GEN[i].in * (size_t)GEN[i].out > most ? 25 * (size_t)GEN[i].in * (size_t)GEN[i].out : most;
    return most;
}

/* g[a, b) (offsets in the layer's part of the block from `off`) += each
 * image's term at rec + at, in the images' order */
static void fold_terms(float *g, size_t off, size_t a, size_t b, const float *recs, size_t rec_n, size_t at, int n)
{
    for (int i = 0; i < n; i++) {
        const float *t = recs + (size_t)i * rec_n + at - off;
        for (size_t e = a; e < b; e++) g[e] = g[e] + t[e];
    }
}

/* [lo, hi) ∩ [x, x + n) as [*a, *b); 0 when empty */
static int clip(size_t lo, size_t hi, size_t x, size_t n, size_t *a, size_t *b)
{
    *a = lo > x ? lo : x;
    *b = hi < x + n ? hi : x + n;
    return *a < *b;
}

/* layer l (parameters at w_off, b_off) of n records: its elements in [lo, hi) of g */
static void fold_layer(const layer_spec *l, size_t w_off, size_t b_off, const float *recs, size_t rec_n, size_t at,
                       int n, float *g, size_t lo, size_t hi, float *scratch)
{
    size_t nw = (size_t)l->out * (size_t)l->in * (size_t)(l->k ? l->k * l->k : 1), a, b;
    size_t at_b = at + rec_weights(l), out = (size_t)l->out;
    if (clip(lo, hi, w_off, nw, &a, &b)) {
        if (!l->k) { /* linear: one chain over the batch's rows, then added (dt_linear_backward) */
            float *x = scratch, *dy = scratch + (size_t)n * (size_t)l->in;
            for (int i = 0; i < n; i++) {
                memcpy(x + (size_t)i * l->in, recs + (size_t)i * rec_n + at, sizeof(float) * (size_t)l->in);
                memcpy(dy + (size_t)i * out, recs + (size_t)i * rec_n + at_b, sizeof(float) * out);
            }
            size_t in = (size_t)l->in;
            for (size_t e = a; e < b;) { /* whole rows of W, or a part of one */
                int r = (int)((e - w_off) / in), c0 = (int)((e - w_off) % in), r1 = r + 1, c1 = l->in;
                if (c0 == 0 && b - e >= in)
                    r1 = r + (int)((b - e) / in);
                else if (b - e < in - (size_t)c0)
                    c1 = c0 + (int)(b - e);
                dt_linear_grad_block(g + e, NULL, dy, x, n, l->in, l->out, r, r1, c0, c1, DT_ACC_ADD);
                e += (size_t)(r1 - r) * (size_t)(c1 - c0);
            }
        } else if (winograd(l)) { /* dU summed in order, transformed, added: the output channels of [a, b) */
            float *dU = scratch, *dW = scratch + 16 * (size_t)l->in * out;
            size_t per = (size_t)l->in * 9; /* floats of one output channel's filters */
            dt_conv2d_winograd_fold(dW, dU, recs + at, rec_n, n, l->in, l->out, (int)((a - w_off) / per),
                                    (int)((b - 1 - w_off) / per) + 1);
            for (size_t e = a; e < b; e++) g[e] = g[e] + dW[e - w_off];
        } else
            fold_terms(g, w_off, a, b, recs, rec_n, at, n);
    }
    if (!clip(lo, hi, b_off, out, &a, &b)) return;
    if (l->k) {
        fold_terms(g, b_off, a, b, recs, rec_n, at_b, n);
        return;
    }
    for (size_t e = a; e < b; e++) { /* a linear bias: image by image, going on from g */
        float s = g[e];
        for (int i = 0; i < n; i++) s += recs[(size_t)i * rec_n + at_b + (e - b_off)];
        g[e] = s;
    }
}

/* layer i's place in the parameter block */
static void offsets(const void *net, const layer_spec *ls, int i, size_t *w_off, size_t *b_off)
{
    const void *l = (const char *)net + ls[i].at;
    *w_off = ls[i].k ? ((const dt_conv2d *)l)->w_off : ((const dt_linear *)l)->w_off;
    *b_off = ls[i].k ? ((const dt_conv2d *)l)->b_off : ((const dt_linear *)l)->b_off;
}

static void fold(const void *net, const layer_spec *ls, int nl, const float *recs, size_t rec_n, int n, float *g,
                 size_t lo, size_t hi, float *scratch)
{
    for (int i = 0; i < nl; i++) {
        size_t w_off, b_off;
        offsets(net, ls, i, &w_off, &b_off);
        fold_layer(&ls[i], w_off, b_off, recs, rec_n, rec_size(ls, nl, i), n, g, lo, hi, scratch);
    }
}

/* the parts of a record that fold_layer reads for [lo, hi): (offset, length) pairs */
static int segments(const void *net, const layer_spec *ls, int nl, size_t lo, size_t hi, size_t *seg, int max)
{
    int n = 0;
#define SEG(o, l)                                                                                       \
    do {                                                                                                \
        DT_ASSERT(n < max);                                                                             \
        seg[2 * n] = (o), seg[2 * n + 1] = (l), n++;                                                    \
    } while (0)
    for (int i = 0; i < nl; i++) {
        const layer_spec *l = &ls[i];
        size_t w_off, b_off, wa, wb, ba, bb, at = rec_size(ls, nl, i), at_b = at + rec_weights(l);
        size_t nw = (size_t)l->out * (size_t)l->in * (size_t)(l->k ? l->k * l->k : 1), out = (size_t)l->out;
        offsets(net, ls, i, &w_off, &b_off);
        int w = clip(lo, hi, w_off, nw, &wa, &wb), b = clip(lo, hi, b_off, out, &ba, &bb);
        if (!l->k) { /* a linear layer: its input and output-gradient rows */
            if (w || b) SEG(at, (size_t)l->in + out);
            continue;
        }
        if (w && winograd(l)) { /* dU's entries of the output channels [o0, o1) */
            size_t per = (size_t)l->in * 9, o0 = (wa - w_off) / per, o1 = (wb - 1 - w_off) / per + 1;
            for (size_t r = 0; r < 16 * (size_t)l->in; r++) SEG(at + r * out + o0, o1 - o0);
        } else if (w)
            SEG(at + (wa - w_off), wb - wa);
        if (b) SEG(at_b + (ba - b_off), bb - ba);
    }
#undef SEG
    return n;
}

int dt_gen_rec_segments(const dt_gen *g, size_t lo, size_t hi, size_t *seg, int max)
{
    return segments(g, GEN, NGEN, lo, hi, seg, max);
}

int dt_disc_rec_segments(const dt_disc *d, size_t lo, size_t hi, size_t *seg, int max)
{
    return segments(d, DISC, NDISC, lo, hi, seg, max);
}

void dt_gen_fold(dt_gen *g, const float *recs, int n, size_t lo, size_t hi, float *scratch)
{
    fold(g, GEN, NGEN, recs, dt_gen_rec_size(), n, g->p.g, lo, hi, scratch);
}

void dt_disc_fold(dt_disc *d, const float *recs, int n, size_t lo, size_t hi, float *scratch)
{
    fold(d, DISC, NDISC, recs, dt_disc_rec_size(), n, d->p.g, lo, hi, scratch);
}

/* layer i of ls's convolution backward: added into the block, or recorded */
static void conv_back(const dt_grad_rec *r, const layer_spec *ls, int i, const dt_conv2d *l, float *dx, float *cols,
                      const float *dy, const float *x, int B, int relu_x)
{
    int s = ls[i].side;
    if (r->rec) {
        float *w = r->rec + rec_size(ls, i + 1, i);
        dt_conv2d_backward_parts(dx, w, w + rec_weights(&ls[i]), r->rec_n, cols, dy, x, l->w, B, l->C, s, s, l->O,
                                 l->k, l->pad, relu_x);
    } else if (relu_x)
        dt_conv2d_backward_relu(dx, l->dw, l->db, cols, dy, x, l->w, B, l->C, s, s, l->O, l->k, l->pad);
    else
        dt_conv2d_backward(dx, l->dw, l->db, cols, dy, x, l->w, B, l->C, s, s, l->O, l->k, l->pad);
}

/* linear layer i of ls's backward: the input gradient, and its weight
 * gradient added into the block or its rows recorded */
static void linear_back(const dt_grad_rec *r, const layer_spec *ls, int i, const dt_linear *l, float *dx,
                        const float *dy, const float *x, int B)
{
    if (!r->rec) {
        dt_linear_backward(dx, l->dw, l->db, dy, x, l->w, B, l->in, l->out);
        return;
    }
    size_t at = rec_size(ls, i + 1, i);
    for (int b = 0; b < B; b++) {
        float *o = r->rec + (size_t)b * r->rec_n + at;
        memcpy(o, x + (size_t)b * l->in, sizeof(float) * (size_t)l->in);
        memcpy(o + l->in, dy + (size_t)b * l->out, sizeof(float) * (size_t)l->out);
    }
    dt_linear_backward_input(dx, dy, l->w, B, l->in, l->out);
}

void dt_gen_create(dt_gen *g, const char *name, int out)
{
    build(g, &g->p, name, GEN, NGEN);
    g->out = out;
    g->true_clamp = 0;
    g->rec = (dt_grad_rec){0};
}

void dt_gen_init(dt_gen *g, uint64_t seed, uint64_t key)
{
    init(g, GEN, NGEN, seed, NGEN * key);
    if (g->out != DT_GEN_SIGMOID) { /* start as the identity: the change is zero */
        memset(g->c3.w, 0, sizeof(float) * 3 * 40);
        memset(g->c3.b, 0, sizeof(float) * 3);
    }
}

void dt_gen_init_gain(dt_gen *g, float gain)
{
    for (size_t i = 0; i < (size_t)32 * 27; i++) g->c1.w[i] *= gain;
    for (size_t i = 0; i < (size_t)40 * 288; i++) g->c2.w[i] *= gain;
}

void dt_gen_free(dt_gen *g) { dt_params_free(&g->p); }

void dt_gen_ctx_create(dt_gen_ctx *c, int maxB)
{
    size_t B = (size_t)maxB;
    c->cols1 = dt_alloc_floats(dt_conv2d_cols_size(maxB, 3, 32, DT_IMG_SIDE, DT_IMG_SIDE, 3));
    c->cols2 = dt_alloc_floats(dt_conv2d_cols_size(maxB, 32, 40, DT_IMG_SIDE, DT_IMG_SIDE, 3));
    c->h1 = dt_alloc_floats(B * 32 * DT_PLANE);
    c->h2 = dt_alloc_floats(B * 40 * DT_PLANE);
    c->o = dt_alloc_floats(B * DT_IMG);
    c->y = dt_alloc_floats(B * DT_IMG);
    c->dh1 = dt_alloc_floats(B * 32 * DT_PLANE);
    c->dh2 = dt_alloc_floats(B * 40 * DT_PLANE);
    c->dout = dt_alloc_floats(B * DT_IMG);
    c->dx1 = dt_alloc_floats(B * DT_IMG);
}

void dt_gen_ctx_free(dt_gen_ctx *c)
{
    float *b[] = {c->cols1, c->cols2, c->h1, c->h2, c->o, c->y, c->dh1, c->dh2, c->dout, c->dx1};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) dt_free(b[i]);
}

/* the brightest channel of pixel i of an image (B,3,28,28), and its value */
static int brightest(const float *x, size_t i)
{
    int k = 0;
    for (int ch = 1; ch < 3; ch++)
        if (x[i + (size_t)ch * DT_PLANE] > x[i + (size_t)k * DT_PLANE]) k = ch;
    return k;
}

static float intensity(const float *x, size_t i) { return x[i + (size_t)brightest(x, i) * DT_PLANE]; }

void dt_gen_forward(dt_gen *g, dt_gen_ctx *c, const float *x, int B)
{
    size_t n = (size_t)B * DT_IMG;
    c->x = x;
    dt_conv2d_forward_relu(c->h1, c->cols1, x, g->c1.w, g->c1.b, B, 3, DT_IMG_SIDE, DT_IMG_SIDE, 32, 3, 1);
    dt_conv2d_forward_relu(c->h2, c->cols2, c->h1, g->c2.w, g->c2.b, B, 32, DT_IMG_SIDE, DT_IMG_SIDE, 40, 3, 1);
    dt_conv2d_forward(c->o, NULL, c->h2, g->c3.w, g->c3.b, B, 40, DT_IMG_SIDE, DT_IMG_SIDE, 3, 1, 0);
    if (g->out == DT_GEN_SIGMOID)
        dt_sigmoid_forward(c->y, c->o, n);
    else if (g->out == DT_GEN_RECOLOR)
        for (int b = 0; b < B; b++)
            for (int q = 0; q < DT_PLANE; q++) {
                size_t i = (size_t)b * DT_IMG + (size_t)q;
                float m = intensity(x, i);
                for (int ch = 0; ch < 3; ch++) {
                    size_t j = i + (size_t)ch * DT_PLANE;
                    float t = tanhf(c->o[j]), v = x[j] + m * t;
                    c->dx1[j] = t; /* kept for the backward */
                    c->y[j] = v < 0.0f ? 0.0f : v > m ? m : v;
                }
            }
    else
        for (size_t i = 0; i < n; i++) {
            float v = x[i] + tanhf(c->o[i]);
            c->y[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
}

/* The clamps' gradient: dy where v is inside (lo, hi), and also outside when
 * a step against dy would bring v back in (to the network and to the input
 * alike). The true gradient is 0 outside; but the residual and recolor
 * outputs start exactly on the clamps for every saturated channel (x = 0 or
 * 1 in the palette colors), and a channel pushed past a clamp would never
 * come back: a green digit's red and blue channels could never rise, and
 * green could never become magenta. Outside, the inward gradient also skips
 * the tanh's derivative (straight through to its input): a channel pushed far
 * past a clamp has a saturated tanh, whose derivative would leave it there. */
static float clamp_grad(const dt_gen *g, float v, float lo, float hi, float dy)
{
    if (v > lo && v < hi) return dy;
    if (g->true_clamp) return 0.0f;
    return (v <= lo && dy < 0.0f) || (v >= hi && dy > 0.0f) ? dy : 0.0f;
}

void dt_gen_backward(dt_gen *g, dt_gen_ctx *c, const float *dy, float *dx, int B)
{
    size_t n = (size_t)B * DT_IMG;
    if (g->out == DT_GEN_SIGMOID)
        for (size_t i = 0; i < n; i++) c->dout[i] = dy[i] * c->y[i] * (1.0f - c->y[i]);
    else if (g->out == DT_GEN_RECOLOR)
        for (int b = 0; b < B; b++)
            for (int q = 0; q < DT_PLANE; q++) {
                size_t i = (size_t)b * DT_IMG + (size_t)q;
                float m = intensity(c->x, i), through_m = 0.0f;
                int k = brightest(c->x, i);
                for (int ch = 0; ch < 3; ch++) {
                    size_t j = i + (size_t)ch * DT_PLANE;
                    float t = c->dx1[j], v = c->x[j] + m * t, d = clamp_grad(g, v, 0.0f, m, dy[j]);
                    int inside = v > 0.0f && v < m;
                    c->dout[j] = inside ? d * m * (1.0f - t * t) : d * m;
                    /* y = x + m t inside, m above, 0 below */
                    through_m += inside ? dy[j] * t : v >= m ? dy[j] : 0.0f;
                    c->dx1[j] = d; /* the identity path */
                }
                /* the intensity's gradient goes to the channel that gave it */
                c->dx1[i + (size_t)k * DT_PLANE] += through_m;
            }
    else
        for (size_t i = 0; i < n; i++) {
            float t = tanhf(c->o[i]), v = c->x[i] + t;
            float d = clamp_grad(g, v, 0.0f, 1.0f, dy[i]);
            c->dout[i] = v > 0.0f && v < 1.0f ? d * (1.0f - t * t) : d;
            c->dx1[i] = d; /* the identity path */
        }
    conv_back(&g->rec, GEN, 2, &g->c3, c->dh2, NULL, c->dout, c->h2, B, 1);
    conv_back(&g->rec, GEN, 1, &g->c2, c->dh1, c->cols2, c->dh2, c->h1, B, 1);
    conv_back(&g->rec, GEN, 0, &g->c1, dx, c->cols1, c->dh1, c->x, B, 0);
    if (dx && g->out != DT_GEN_SIGMOID)
        for (size_t i = 0; i < n; i++) dx[i] += c->dx1[i];
}

/* ---- discriminator ---------------------------------------------------------- */

void dt_disc_create(dt_disc *d, const char *name)
{
    build(d, &d->p, name, DISC, NDISC);
    d->rec = (dt_grad_rec){0};
}

void dt_disc_init(dt_disc *d, uint64_t seed, uint64_t key) { init(d, DISC, NDISC, seed, NDISC * key); }

void dt_disc_free(dt_disc *d) { dt_params_free(&d->p); }

void dt_disc_ctx_create(dt_disc_ctx *c, int maxB)
{
    size_t B = (size_t)maxB;
    c->cols1 = dt_alloc_floats(dt_conv2d_cols_size(maxB, 3, 32, DT_IMG_SIDE, DT_IMG_SIDE, 3));
    c->cols2 = dt_alloc_floats(dt_conv2d_cols_size(maxB, 32, 64, 14, 14, 3));
    c->a1 = dt_alloc_floats(B * 32 * DT_PLANE);
    c->p1 = dt_alloc_floats(B * 32 * 196);
    c->a2 = dt_alloc_floats(B * 64 * 196);
    c->p2 = dt_alloc_floats(B * 64 * 49);
    c->f1 = dt_alloc_floats(B * 128);
    c->logit = dt_alloc_floats(B);
    c->i1 = dt_alloc(sizeof(int32_t) * B * 32 * 196);
    c->i2 = dt_alloc(sizeof(int32_t) * B * 64 * 49);
    c->da1 = dt_alloc_floats(B * 32 * DT_PLANE);
    c->dp1 = dt_alloc_floats(B * 32 * 196);
    c->da2 = dt_alloc_floats(B * 64 * 196);
    c->dp2 = dt_alloc_floats(B * 64 * 49);
    c->df1 = dt_alloc_floats(B * 128);
    c->dlogit = dt_alloc_floats(B);
}

void dt_disc_ctx_free(dt_disc_ctx *c)
{
    void *b[] = {c->cols1, c->cols2, c->a1, c->p1, c->a2, c->p2, c->f1, c->logit, c->i1,
                 c->i2,    c->da1,   c->dp1, c->da2, c->dp2, c->df1, c->dlogit};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) dt_free(b[i]);
}

/* a1 and a2 keep the convolutions' outputs before the ReLU, which is fused
 * into the pooling (and its backward into the pooling's backward) */
void dt_disc_forward(dt_disc *d, dt_disc_ctx *c, const float *x, int B)
{
    dt_conv2d_forward(c->a1, c->cols1, x, d->c1.w, d->c1.b, B, 3, DT_IMG_SIDE, DT_IMG_SIDE, 32, 3, 1);
    dt_relu_maxpool2_forward(c->p1, c->i1, c->a1, B, 32, DT_IMG_SIDE, DT_IMG_SIDE);
    dt_conv2d_forward(c->a2, c->cols2, c->p1, d->c2.w, d->c2.b, B, 32, 14, 14, 64, 3, 1);
    dt_relu_maxpool2_forward(c->p2, c->i2, c->a2, B, 64, 14, 14);
    dt_linear_apply(&d->f1, c->f1, c->p2, B);
    dt_relu_forward(c->f1, c->f1, (size_t)B * 128);
    dt_linear_apply(&d->f2, c->logit, c->f1, B);
}

/* weights 1: the parameter gradients (+=); 0: none (d->p.g untouched) */
static void disc_backward(dt_disc *d, dt_disc_ctx *c, const float *x, const float *dlogit, float *dx, int B,
                          int weights)
{
    if (weights) {
        linear_back(&d->rec, DISC, 3, &d->f2, c->df1, dlogit, c->f1, B);
        dt_relu_backward(c->df1, c->df1, c->f1, (size_t)B * 128);
        linear_back(&d->rec, DISC, 2, &d->f1, c->dp2, c->df1, c->p2, B);
    } else {
        dt_linear_backward_input(c->df1, dlogit, d->f2.w, B, 128, 1);
        dt_relu_backward(c->df1, c->df1, c->f1, (size_t)B * 128);
        dt_linear_backward_input(c->dp2, c->df1, d->f1.w, B, 3136, 128);
    }
    dt_relu_maxpool2_backward(c->da2, c->dp2, c->p2, c->i2, B, 64, 14, 14);
    if (weights)
        conv_back(&d->rec, DISC, 1, &d->c2, c->dp1, c->cols2, c->da2, c->p1, B, 0);
    else
        dt_conv2d_backward(c->dp1, NULL, NULL, c->cols2, c->da2, c->p1, d->c2.w, B, 32, 14, 14, 64, 3, 1);
    if (!weights && !dx) return;
    dt_relu_maxpool2_backward(c->da1, c->dp1, c->p1, c->i1, B, 32, DT_IMG_SIDE, DT_IMG_SIDE);
    if (weights)
        conv_back(&d->rec, DISC, 0, &d->c1, dx, c->cols1, c->da1, x, B, 0);
    else
        dt_conv2d_backward(dx, NULL, NULL, c->cols1, c->da1, x, d->c1.w, B, 3, DT_IMG_SIDE, DT_IMG_SIDE, 32, 3, 1);
}

void dt_disc_backward(dt_disc *d, dt_disc_ctx *c, const float *x, const float *dlogit, float *dx, int B)
{
    disc_backward(d, c, x, dlogit, dx, B, 1);
}

void dt_disc_backward_input(dt_disc *d, dt_disc_ctx *c, const float *x, const float *dlogit, float *dx, int B)
{
    disc_backward(d, c, x, dlogit, dx, B, 0);
}
