/* What the three VAEs share: trunk, decoder, BCE, forward and backward.
 * A variant supplies only its latent layer (dt_vae_kind). */
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/step.h"
#include "dtrain/vae.h"

/* point the layers at their parts of the parameter block */
static void bind(dt_vae *m)
{
    dt_linear *ls[] = {&m->e1, &m->e2, &m->head, &m->d1, &m->d2, &m->d3};
    for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) dt_linear_bind(ls[i], &m->p);
}

/* the layers e1 e2 head d1 d2 d3, with the buffers of their inputs and of
 * their output gradients as backward leaves them */
static void layer_bufs(dt_vae *m, dt_step_layer ls[6])
{
    const dt_linear *l[] = {&m->e1, &m->e2, &m->head, &m->d1, &m->d2, &m->d3};
    float **x[] = {&m->x, &m->h1, &m->h2, &m->z, &m->g1, &m->g2};
    float **dy[] = {&m->dh1, &m->dh2, &m->dhd, &m->dg1, &m->dg2, &m->dlogits};
    for (int i = 0; i < 6; i++) ls[i] = (dt_step_layer){l[i]->w_off, l[i]->b_off, l[i]->in, l[i]->out, x[i], dy[i]};
}

void dt_vae_share(dt_vae *m)
{
    dt_step_layer ls[6];
    layer_bufs(m, ls);
    dt_step_share(&m->p, m->maxB, ls, 6);
    bind(m); /* the block may have moved */
}

dt_vae *dt_vae_create(const dt_vae_kind *kind, const dt_vae_opts *o, int max_batch)
{
    dt_vae *m = dt_alloc(sizeof *m);
    m->kind = kind;
    m->opts = *o;
    m->H = kind->head_size(o);
    m->Z = kind->latent_size(o);
    m->maxB = max_batch;
    dt_params_init(&m->p, kind->name);
    dt_linear_declare(&m->e1, &m->p, "enc.fc1", DT_IMG, 512);
    dt_linear_declare(&m->e2, &m->p, "enc.fc2", 512, 256);
    dt_linear_declare(&m->head, &m->p, "enc.head", 256, m->H);
    dt_linear_declare(&m->d1, &m->p, "dec.fc1", m->Z, 256);
    dt_linear_declare(&m->d2, &m->p, "dec.fc2", 256, 512);
    dt_linear_declare(&m->d3, &m->p, "dec.fc3", 512, DT_IMG);
    dt_params_alloc(&m->p);
    m->p.g_written = 1; /* dt_vae_backward writes every gradient */
    bind(m);

    size_t B = (size_t)max_batch;
    m->x = dt_alloc_floats(B * DT_IMG);
    m->h1 = dt_alloc_floats(B * 512);
    m->h2 = dt_alloc_floats(B * 256);
    m->hd = dt_alloc_floats(B * (size_t)m->H);
    m->z = dt_alloc_floats(B * (size_t)m->Z);
    m->g1 = dt_alloc_floats(B * 256);
    m->g2 = dt_alloc_floats(B * 512);
    m->logits = dt_alloc_floats(B * DT_IMG);
    m->xhat = dt_alloc_floats(B * DT_IMG);
    m->dh1 = dt_alloc_floats(B * 512);
    m->dh2 = dt_alloc_floats(B * 256);
    m->dhd = dt_alloc_floats(B * (size_t)m->H);
    m->dz = dt_alloc_floats(B * (size_t)m->Z);
    m->dg1 = dt_alloc_floats(B * 256);
    m->dg2 = dt_alloc_floats(B * 512);
    m->dlogits = dt_alloc_floats(B * DT_IMG);
    m->bce = dt_alloc_floats(B);
    kind->create(m);
    return m;
}

void dt_vae_free(dt_vae *m)
{
    if (!m) return;
    m->kind->destroy(m);
    if (m->p.share) { /* these live in the job's shared memory */
        dt_step_layer ls[6];
        layer_bufs(m, ls);
        for (int i = 0; i < 6; i++) *ls[i].x = *ls[i].dy = NULL;
        dt_step_unshare(&m->p);
    }
    float *bufs[] = {m->x,  m->h1,  m->h2,  m->hd,  m->z,   m->g1,  m->g2,      m->logits, m->xhat,
                     m->dh1, m->dh2, m->dhd, m->dz, m->dg1, m->dg2, m->dlogits, m->bce};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dt_free(bufs[i]);
    dt_params_free(&m->p);
    dt_free(m);
}

void dt_vae_init_params(dt_vae *m, uint64_t seed)
{
    dt_linear *ls[] = {&m->e1, &m->e2, &m->head, &m->d1, &m->d2, &m->d3};
    for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) dt_linear_init(ls[i], seed, i);
}

/* z (B,Z) -> logits (B,2352), through g1, g2 */
static void decoder_forward(dt_vae *m, const float *z, int B)
{
    dt_linear_forward(m->g1, z, m->d1.w, m->d1.b, B, m->Z, 256);
    dt_relu_forward(m->g1, m->g1, (size_t)B * 256);
    dt_linear_forward(m->g2, m->g1, m->d2.w, m->d2.b, B, 256, 512);
    dt_relu_forward(m->g2, m->g2, (size_t)B * 512);
    dt_linear_forward(m->logits, m->g2, m->d3.w, m->d3.b, B, 512, DT_IMG);
}

void dt_vae_decode(dt_vae *m, const float *z, int B)
{
    decoder_forward(m, z, B);
    dt_sigmoid_forward(m->xhat, m->logits, (size_t)B * DT_IMG);
}

void dt_vae_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *sums)
{
    if (B == 0) return;
    dt_linear_forward(m->h1, m->x, m->e1.w, m->e1.b, B, DT_IMG, 512);
    dt_relu_forward(m->h1, m->h1, (size_t)B * 512);
    dt_linear_forward(m->h2, m->h1, m->e2.w, m->e2.b, B, 512, 256);
    dt_relu_forward(m->h2, m->h2, (size_t)B * 256);
    dt_linear_forward(m->hd, m->h2, m->head.w, m->head.b, B, 256, m->H);
    m->kind->latent_forward(m, B, gidx, step, eval, sums + 1);
    decoder_forward(m, m->z, B);
    sums[0] += dt_bce_logits_forward(m->bce, m->logits, m->x, B, DT_IMG);
}

/* l and the layers after it in the block are done (backward goes from the
 * block's end to its start): a rank done with its backward may take their
 * gradients and updates while this one goes on */
static void layer_done(dt_step *s, const dt_linear *l)
{
    if (s) dt_step_ready(s, l->w_off);
}

/* l's backward: dx (NULL: none) and, unless the step computes them, dW, db */
static void back(const dt_linear *l, float *dx, const float *dy, const float *x, int B, int grads)
{
    if (grads)
        dt_linear_backward_write(dx, l->dw, l->db, dy, x, l->w, B, l->in, l->out);
    else if (dx)
        dt_linear_backward_input(dx, dy, l->w, B, l->in, l->out);
}

void dt_vae_backward(dt_vae *m, int B, float scale, dt_step *s)
{
    int grads = !s || dt_step_grads(s);
    if (s) dt_step_rows(s, B);
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
    m->kind->latent_backward(m, B, scale);
    back(&m->head, m->dh2, m->dhd, m->h2, B, grads);
    layer_done(s, &m->head);
    dt_relu_backward(m->dh2, m->dh2, m->h2, nB * 256);
    back(&m->e2, m->dh1, m->dh2, m->h1, B, grads);
    layer_done(s, &m->e2);
    dt_relu_backward(m->dh1, m->dh1, m->h1, nB * 512);
    back(&m->e1, NULL, m->dh1, m->x, B, grads); /* the input needs no gradient */
}
