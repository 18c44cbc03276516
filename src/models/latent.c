/* The latent parts VAE variants are made of, Gaussian and categorical, and a
 * variant's latent layer as the table of its parts (dt_vae_kind). */
#include <math.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/vae.h"

/* Copy columns [c0, c0+w) of a (B, ld) matrix into a (B, w) one, and back. */
static void cols_get(float *dst, const float *src, int B, int ld, int c0, int w)
{
    for (int i = 0; i < B; i++) memcpy(dst + (size_t)i * w, src + (size_t)i * ld + c0, sizeof(float) * (size_t)w);
}

static void cols_put(float *dst, const float *src, int B, int ld, int c0, int w)
{
    for (int i = 0; i < B; i++) memcpy(dst + (size_t)i * ld + c0, src + (size_t)i * w, sizeof(float) * (size_t)w);
}

/* ---- Gaussian ---------------------------------------------------------------- */

static void gauss_init(dt_gauss_part *p, int d, int h0, int z0, int maxB)
{
    p->d = d;
    p->h0 = h0;
    p->z0 = z0;
    p->mu = dt_alloc_floats((size_t)maxB * d);
    p->logvar = dt_alloc_floats((size_t)maxB * d);
    p->eps = dt_alloc_floats((size_t)maxB * d);
    p->scratch = dt_alloc_floats(3 * (size_t)maxB * d);
}

static void gauss_free(dt_gauss_part *p)
{
    dt_free(p->mu);
    dt_free(p->logvar);
    dt_free(p->eps);
    dt_free(p->scratch);
}

static double gauss_forward(dt_gauss_part *p, dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval,
                            double *per)
{
    int d = p->d;
    cols_get(p->mu, m->hd, B, m->H, p->h0, d);
    cols_get(p->logvar, m->hd, B, m->H, p->h0 + d, d);
    for (int i = 0; i < B; i++) {
        dt_stream s = {m->opts.seed, eval ? DT_RNG_EVAL : DT_RNG_EPS, eval ? 0 : step, gidx[i]};
        dt_rand_normal(p->eps + (size_t)i * d, (size_t)d, s);
    }
    size_t n = (size_t)B * d;
    float *z = p->scratch;
    dt_reparam_forward(z, p->mu, p->logvar, p->eps, n);
    cols_put(m->z, z, B, m->Z, p->z0, d);
    return dt_kl_gauss_forward(per, p->mu, p->logvar, B, d);
}

static void gauss_backward(dt_gauss_part *p, dt_vae *m, int B, float scale)
{
    int d = p->d;
    size_t n = (size_t)B * d;
    float *dz = p->scratch, *dmu = dz + n, *dlv = dmu + n;
    cols_get(dz, m->dz, B, m->Z, p->z0, d);
    memset(dmu, 0, sizeof(float) * 2 * n);
    dt_reparam_backward(dmu, dlv, dz, p->logvar, p->eps, n);
    dt_kl_gauss_backward(dmu, dlv, p->mu, p->logvar, n, scale);
    cols_put(m->dhd, dmu, B, m->H, p->h0, d);
    cols_put(m->dhd, dlv, B, m->H, p->h0 + d, d);
}

/* ---- categorical ---------------------------------------------------------------- */

float dt_gumbel_tau(const dt_vae_opts *o, uint64_t step)
{
    uint64_t every = o->anneal_every > 0 ? (uint64_t)o->anneal_every : 1;
    double t = (double)(step / every * every);
    double tau = o->tau0 * exp(-(double)o->anneal_rate * t);
    return (float)(tau > o->tau_min ? tau : o->tau_min);
}

float dt_kl_weight(const dt_vae_opts *o, uint64_t step)
{
    if (o->kl_warmup <= 0 || step >= (uint64_t)o->kl_warmup) return 1.0f;
    double f = (double)step / (double)o->kl_warmup;
    return (float)(o->kl_start + (1.0 - o->kl_start) * f);
}

static void cat_init(dt_cat_part *p, int N, int K, int h0, int z0, int maxB)
{
    memset(p, 0, sizeof *p);
    p->N = N;
    p->K = K;
    p->h0 = h0;
    p->z0 = z0;
    size_t n = (size_t)maxB * N * K;
    p->logits = dt_alloc_floats(n);
    p->g = dt_alloc_floats(n);
    p->y = dt_alloc_floats(n);
    p->q = dt_alloc_floats(n);
    p->dl = dt_alloc_floats(n);
}

static void cat_free(dt_cat_part *p)
{
    dt_free(p->logits);
    dt_free(p->g);
    dt_free(p->y);
    dt_free(p->q);
    dt_free(p->dl);
}

double dt_cat_part_forward(dt_cat_part *p, dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval,
                           double *per)
{
    int w = p->N * p->K, rows = B * p->N;
    cols_get(p->logits, m->hd, B, m->H, p->h0, w);
    for (int i = 0; i < B; i++) {
        dt_stream s = {m->opts.seed, eval ? DT_RNG_EVAL : DT_RNG_GUMBEL, eval ? 1 : step, gidx[i]};
        dt_rand_uniform(p->g + (size_t)i * w, (size_t)w, s);
    }
    dt_gumbel_noise(p->g, p->g, (size_t)B * w);
    p->tau = dt_gumbel_tau(&m->opts, step);
    p->beta = eval ? 1.0f : dt_kl_weight(&m->opts, step);
    dt_gumbel_softmax_forward(p->y, p->logits, p->g, rows, p->K, p->tau);
    if (m->opts.hard) {
        dt_onehot_argmax(p->dl, p->y, rows, p->K); /* dl as scratch: z is one-hot */
        cols_put(m->z, p->dl, B, m->Z, p->z0, w);
    } else
        cols_put(m->z, p->y, B, m->Z, p->z0, w);
    return dt_cat_kl_forward(per, p->q, p->logits, B, p->N, p->K);
}

void dt_cat_part_backward(dt_cat_part *p, dt_vae *m, int B, float scale)
{
    int w = p->N * p->K, rows = B * p->N;
    float *dz = p->g; /* the noise is no longer needed: reuse its buffer */
    cols_get(dz, m->dz, B, m->Z, p->z0, w);
    /* straight-through: the one-hot's gradient goes to the soft sample */
    dt_gumbel_softmax_backward(p->dl, dz, p->y, rows, p->K, p->tau);
    dt_cat_kl_backward(p->dl, p->q, rows, p->K, scale * p->beta);
    cols_put(m->dhd, p->dl, B, m->H, p->h0, w);
}

/* ---- a variant's parts, side by side ----------------------------------------------- */

int dt_vae_kind_discrete(const dt_vae_kind *k)
{
    for (int i = 0; i < k->nparts; i++)
        if (k->parts[i] == DT_PART_CAT) return 1;
    return 0;
}

/* a part's head and z widths */
static void part_widths(dt_part_kind kind, const dt_vae_opts *o, int *head, int *z)
{
    *z = kind == DT_PART_GAUSS ? DT_GAUSS_DIM : o->N * o->K;
    *head = kind == DT_PART_GAUSS ? 2 * DT_GAUSS_DIM : *z;
}

int dt_latent_head_size(const dt_vae_kind *k, const dt_vae_opts *o)
{
    int H = 0, h, z;
    for (int i = 0; i < k->nparts; i++) part_widths(k->parts[i], o, &h, &z), H += h;
    return H;
}

int dt_latent_size(const dt_vae_kind *k, const dt_vae_opts *o)
{
    int Z = 0, h, z;
    for (int i = 0; i < k->nparts; i++) part_widths(k->parts[i], o, &h, &z), Z += z;
    return Z;
}

static void add_stat(dt_vae *m, const char *name, int width, const float *v)
{
    DT_ASSERT(m->nstats < DT_MAX_STATS);
    m->stat_name[m->nstats] = name;
    m->stat_width[m->nstats] = width;
    m->stat[m->nstats++] = v;
}

void dt_latent_create(dt_vae *m)
{
    int h0 = 0, z0 = 0, h, z;
    for (int i = 0; i < m->kind->nparts; i++) {
        dt_latent_part *p = &m->part[i];
        p->kind = m->kind->parts[i];
        part_widths(p->kind, &m->opts, &h, &z);
        if (p->kind == DT_PART_GAUSS) {
            gauss_init(&p->gauss, DT_GAUSS_DIM, h0, z0, m->maxB);
            add_stat(m, "mu", z, p->gauss.mu);
            add_stat(m, "logvar", z, p->gauss.logvar);
        } else {
            cat_init(&p->cat, m->opts.N, m->opts.K, h0, z0, m->maxB);
            add_stat(m, "q", z, p->cat.q);
        }
        h0 += h, z0 += z;
    }
}

void dt_latent_free(dt_vae *m)
{
    for (int i = 0; i < m->kind->nparts; i++) {
        dt_latent_part *p = &m->part[i];
        if (p->kind == DT_PART_GAUSS)
            gauss_free(&p->gauss);
        else
            cat_free(&p->cat);
    }
}

void dt_latent_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *kl)
{
    for (int i = 0; i < m->kind->nparts; i++) {
        dt_latent_part *p = &m->part[i];
        double *per = m->per[1 + i];
        kl[i] += p->kind == DT_PART_GAUSS ? gauss_forward(&p->gauss, m, B, gidx, step, eval, per)
                                          : dt_cat_part_forward(&p->cat, m, B, gidx, step, eval, per);
    }
}

void dt_latent_backward(dt_vae *m, int B, float scale)
{
    for (int i = 0; i < m->kind->nparts; i++) {
        dt_latent_part *p = &m->part[i];
        if (p->kind == DT_PART_GAUSS)
            gauss_backward(&p->gauss, m, B, scale);
        else
            dt_cat_part_backward(&p->cat, m, B, scale);
    }
}
