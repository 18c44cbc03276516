/* The CycleGAN's generator and discriminator (see include/dtrain/gan.h). */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/gan.h"


/* ---- generator ------------------------------------------------------------- */

/* A network's layers, once: convolutions (k > 0: kernel k, padding pad) or
 * linear layers (k = 0), where each sits in its struct, its widths. Declaring,
 * binding, initializing and the checkpoint's names follow from the table. */
typedef struct {
    const char *name;
    size_t at;
    int in, out, k, pad;
} layer_spec;

static const layer_spec GEN[] = {
    {"conv1", offsetof(dt_gen, c1), 3, 32, 3, 1},
    {"conv2", offsetof(dt_gen, c2), 32, 40, 3, 1},
    {"conv3", offsetof(dt_gen, c3), 40, 3, 1, 0},
};
static const layer_spec DISC[] = {
    {"conv1", offsetof(dt_disc, c1), 3, 32, 3, 1},
    {"conv2", offsetof(dt_disc, c2), 32, 64, 3, 1},
    {"fc1", offsetof(dt_disc, f1), 64 * 7 * 7, 128, 0, 0},
    {"fc2", offsetof(dt_disc, f2), 128, 1, 0, 0},
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

void dt_gen_create(dt_gen *g, const char *name, int out)
{
    build(g, &g->p, name, GEN, NGEN);
    g->out = out;
    g->true_clamp = 0;
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
    dt_conv2d_backward_relu(c->dh2, g->c3.dw, g->c3.db, NULL, c->dout, c->h2, g->c3.w, B, 40, DT_IMG_SIDE, DT_IMG_SIDE, 3, 1, 0);
    dt_conv2d_backward_relu(c->dh1, g->c2.dw, g->c2.db, c->cols2, c->dh2, c->h1, g->c2.w, B, 32, DT_IMG_SIDE, DT_IMG_SIDE, 40, 3, 1);
    dt_conv2d_backward(dx, g->c1.dw, g->c1.db, c->cols1, c->dh1, c->x, g->c1.w, B, 3, DT_IMG_SIDE, DT_IMG_SIDE, 32, 3, 1);
    if (dx && g->out != DT_GEN_SIGMOID)
        for (size_t i = 0; i < n; i++) dx[i] += c->dx1[i];
}

/* ---- discriminator ---------------------------------------------------------- */

void dt_disc_create(dt_disc *d, const char *name) { build(d, &d->p, name, DISC, NDISC); }

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
        dt_linear_backward(c->df1, d->f2.dw, d->f2.db, dlogit, c->f1, d->f2.w, B, 128, 1);
        dt_relu_backward(c->df1, c->df1, c->f1, (size_t)B * 128);
        dt_linear_backward(c->dp2, d->f1.dw, d->f1.db, c->df1, c->p2, d->f1.w, B, 3136, 128);
    } else {
        dt_linear_backward_input(c->df1, dlogit, d->f2.w, B, 128, 1);
        dt_relu_backward(c->df1, c->df1, c->f1, (size_t)B * 128);
        dt_linear_backward_input(c->dp2, c->df1, d->f1.w, B, 3136, 128);
    }
    dt_relu_maxpool2_backward(c->da2, c->dp2, c->p2, c->i2, B, 64, 14, 14);
    dt_conv2d_backward(c->dp1, weights ? d->c2.dw : NULL, d->c2.db, c->cols2, c->da2, c->p1, d->c2.w, B, 32, 14, 14,
                       64, 3, 1);
    if (!weights && !dx) return;
    dt_relu_maxpool2_backward(c->da1, c->dp1, c->p1, c->i1, B, 32, DT_IMG_SIDE, DT_IMG_SIDE);
    dt_conv2d_backward(dx, weights ? d->c1.dw : NULL, d->c1.db, c->cols1, c->da1, x, d->c1.w, B, 3, DT_IMG_SIDE, DT_IMG_SIDE, 32, 3, 1);
}

void dt_disc_backward(dt_disc *d, dt_disc_ctx *c, const float *x, const float *dlogit, float *dx, int B)
{
    disc_backward(d, c, x, dlogit, dx, B, 1);
}

void dt_disc_backward_input(dt_disc *d, dt_disc_ctx *c, const float *x, const float *dlogit, float *dx, int B)
{
    disc_backward(d, c, x, dlogit, dx, B, 0);
}
