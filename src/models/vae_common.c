/* What the three VAEs share: trunk, decoder, BCE, forward and backward.
 * A variant supplies only its latent layer (dt_vae_kind). */
#include <stddef.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/step.h"
#include "dtrain/vae.h"

/* The six layers, once: name, where the layer and the buffers of its input
 * and of its output gradient sit in dt_vae, and its widths (HEAD, LATENT:
 * the variant's). Declaring, binding, initializing, the checkpoint's names
 * and the node-shared step's layer list all follow from this table. */
enum { HEAD = -1, LATENT = -2 };
#define AT(f) offsetof(dt_vae, f)
static const struct {
    const char *name;
    size_t layer, x, dy;
    int in, out;
} LAYERS[] = {
    {"enc.fc1", AT(e1), AT(x), AT(dh1), DT_IMG, 512}, {"enc.fc2", AT(e2), AT(h1), AT(dh2), 512, 256},
    {"enc.head", AT(head), AT(h2), AT(dhd), 256, HEAD}, {"dec.fc1", AT(d1), AT(z), AT(dg1), LATENT, 256},
    {"dec.fc2", AT(d2), AT(g1), AT(dg2), 256, 512},     {"dec.fc3", AT(d3), AT(g2), AT(dlogits), 512, DT_IMG},
};
#define NL ((int)(sizeof LAYERS / sizeof *LAYERS))
/* the other activations: (maxB, width) each */
static const struct {
    size_t at;
    int width;
} OTHER[] = {{AT(hd), HEAD}, {AT(dz), LATENT}, {AT(logits), DT_IMG}, {AT(xhat), DT_IMG}};
#undef AT

static dt_linear *layer(dt_vae *m, int i) { return (dt_linear *)(void *)((char *)m + LAYERS[i].layer); }
static float **buf(dt_vae *m, size_t at) { return (float **)(void *)((char *)m + at); }
static int width(const dt_vae *m, int w) { return w == HEAD ? m->H : w == LATENT ? m->Z : w; }

/* point the layers at their parts of the parameter block */
static void bind(dt_vae *m)
{
    for (int i = 0; i < NL; i++) dt_linear_bind(layer(m, i), &m->p);
}

/* the layers with the buffers of their inputs and of their output gradients
 * as backward leaves them */
static void layer_bufs(dt_vae *m, dt_step_layer *ls)
{
    for (int i = 0; i < NL; i++) {
        const dt_linear *l = layer(m, i);
        ls[i] = (dt_step_layer){l->w_off, l->b_off, l->in, l->out, buf(m, LAYERS[i].x), buf(m, LAYERS[i].dy)};
    }
}

void dt_vae_share(dt_vae *m, dt_optim *o)
{
    dt_step_layer ls[NL];
    layer_bufs(m, ls);
    m->shared = dt_step_share(o, m->maxB, ls, NL);
    bind(m); /* the block may have moved */
}

dt_vae *dt_vae_create(const dt_vae_kind *kind, const dt_vae_opts *o, int max_batch)
{
    dt_vae *m = dt_alloc(sizeof *m);
    m->kind = kind;
    m->opts = *o;
    m->H = dt_latent_head_size(kind, o);
    m->Z = dt_latent_size(kind, o);
    m->maxB = max_batch;
    dt_params_init(&m->p, kind->name);
    for (int i = 0; i < NL; i++)
        dt_linear_declare(layer(m, i), &m->p, LAYERS[i].name, width(m, LAYERS[i].in), width(m, LAYERS[i].out));
    dt_params_alloc(&m->p);
    bind(m);
    size_t B = (size_t)max_batch;
    for (int i = 0; i < NL; i++) {
        *buf(m, LAYERS[i].x) = dt_alloc_floats(B * (size_t)width(m, LAYERS[i].in));
        *buf(m, LAYERS[i].dy) = dt_alloc_floats(B * (size_t)width(m, LAYERS[i].out));
    }
    for (size_t k = 0; k < sizeof OTHER / sizeof *OTHER; k++)
        *buf(m, OTHER[k].at) = dt_alloc_floats(B * (size_t)width(m, OTHER[k].width));
    for (int k = 0; k <= kind->nparts; k++) m->per[k] = dt_alloc(sizeof(double) * B);
    dt_latent_create(m);
    return m;
}

void dt_vae_free(dt_vae *m)
{
    if (!m) return;
    dt_latent_free(m);
    if (m->shared) /* these live in the job's shared memory */
        for (int i = 0; i < NL; i++) *buf(m, LAYERS[i].x) = *buf(m, LAYERS[i].dy) = NULL;
    for (int i = 0; i < NL; i++) {
        dt_free(*buf(m, LAYERS[i].x));
        dt_free(*buf(m, LAYERS[i].dy));
    }
    for (size_t k = 0; k < sizeof OTHER / sizeof *OTHER; k++) dt_free(*buf(m, OTHER[k].at));
    for (int k = 0; k <= m->kind->nparts; k++) dt_free(m->per[k]);
    dt_params_free(&m->p);
    dt_free(m);
}

void dt_vae_init_params(dt_vae *m, uint64_t seed)
{
    for (int i = 0; i < NL; i++) dt_linear_init(layer(m, i), seed, (uint64_t)i);
}

/* z (B,Z) -> logits (B,2352), through g1, g2 */
static void decoder_forward(dt_vae *m, const float *z, int B)
{
    dt_linear_apply(&m->d1, m->g1, z, B);
    dt_relu_forward(m->g1, m->g1, (size_t)B * 256);
    dt_linear_apply(&m->d2, m->g2, m->g1, B);
    dt_relu_forward(m->g2, m->g2, (size_t)B * 512);
    dt_linear_apply(&m->d3, m->logits, m->g2, B);
}

void dt_vae_decode(dt_vae *m, const float *z, int B)
{
    decoder_forward(m, z, B);
    dt_sigmoid_forward(m->xhat, m->logits, (size_t)B * DT_IMG);
}

void dt_vae_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *sums)
{
    if (B == 0) return;
    dt_linear_apply(&m->e1, m->h1, m->x, B);
    dt_relu_forward(m->h1, m->h1, (size_t)B * 512);
    dt_linear_apply(&m->e2, m->h2, m->h1, B);
    dt_relu_forward(m->h2, m->h2, (size_t)B * 256);
    dt_linear_apply(&m->head, m->hd, m->h2, B);
    dt_latent_forward(m, B, gidx, step, eval, sums + 1);
    decoder_forward(m, m->z, B);
    sums[0] += dt_bce_logits_forward(m->per[0], m->logits, m->x, B, DT_IMG);
}

void dt_vae_xsums(const dt_vae *m, int B, dt_xsum *xs)
{
    for (int k = 0; k <= m->kind->nparts; k++)
        for (int i = 0; i < B; i++) dt_xsum_add(&xs[k], m->per[k][i]);
}

/* l and the layers after it in the block are done (backward goes from the
 * block's end to its start): a rank done with its backward may take their
 * gradients and updates while this one goes on */
static void layer_done(const dt_backward_hooks *h, const dt_linear *l)
{
    if (h) h->done(h->ctx, l->w_off);
}

/* l's backward: dx (NULL: none) and, unless the step computes them, dW, db */
static void back(const dt_linear *l, float *dx, const float *dy, const float *x, int B, int grads)
{
    if (grads)
        dt_linear_backward_write(dx, l->dw, l->db, dy, x, l->w, B, l->in, l->out);
    else if (dx)
        dt_linear_backward_input(dx, dy, l->w, B, l->in, l->out);
}

void dt_vae_backward(dt_vae *m, int B, float scale, const dt_backward_hooks *s)
{
    int grads = !s || s->grads;
    if (s) s->rows(s->ctx, B);
    if (B == 0) { /* a rank without images this step contributes zeros */
        if (grads) dt_params_zero_grad(&m->p);
        return;
    }
    size_t nB = (size_t)B;
    dt_bce_logits_backward(m->dlogits, m->logits, m->x, nB * DT_IMG, scale);
    back(&m->d3, m->dg2, m->dlogits, m->g2, B, grads);
    layer_done(s, &m->d3);
    dt_relu_backward(m->dg2, m->dg2, m->g2, nB * 512);
    back(&m->d2, m->dg1, m->dg2, m->g1, B, grads);
    layer_done(s, &m->d2);
    dt_relu_backward(m->dg1, m->dg1, m->g1, nB * 256);
    back(&m->d1, m->dz, m->dg1, m->z, B, grads);
    layer_done(s, &m->d1);
    dt_latent_backward(m, B, scale);
    back(&m->head, m->dh2, m->dhd, m->h2, B, grads);
    layer_done(s, &m->head);
    dt_relu_backward(m->dh2, m->dh2, m->h2, nB * 256);
    back(&m->e2, m->dh1, m->dh2, m->h1, B, grads);
    layer_done(s, &m->e2);
    dt_relu_backward(m->dh1, m->dh1, m->h1, nB * 512);
    back(&m->e1, NULL, m->dh1, m->x, B, grads); /* the input needs no gradient */
}
