/* The continuous VAE's latent layer: head = [mu (2) | logvar (2)],
 * z = mu + exp(logvar / 2) * eps, KL to N(0, I). */
#include "dtrain/core.h"
#include "dtrain/vae.h"

#define ZD 2

static int head_size(const dt_vae_opts *o) { return 2 * ZD; }
static int latent_size(const dt_vae_opts *o) { return ZD; }

static void create(dt_vae *m)
{
    dt_vae_gauss *g = dt_alloc(sizeof *g);
    size_t n = (size_t)m->maxB * ZD;
    g->mu = dt_alloc_floats(n);
    g->logvar = dt_alloc_floats(n);
    g->eps = dt_alloc_floats(n);
    m->lat = g;
}

static void destroy(dt_vae *m)
{
    dt_vae_gauss *g = m->lat;
    dt_free(g->mu);
    dt_free(g->logvar);
    dt_free(g->eps);
    dt_free(g);
}

static void latent_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *kl)
{
    dt_vae_gauss *g = m->lat;
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < ZD; k++) {
            g->mu[i * ZD + k] = m->hd[i * 2 * ZD + k];
            g->logvar[i * ZD + k] = m->hd[i * 2 * ZD + ZD + k];
        }
        dt_stream s = {m->opts.seed, eval ? DT_RNG_EVAL : DT_RNG_EPS, eval ? 0 : step, gidx[i]};
        dt_rand_normal(g->eps + i * ZD, ZD, s);
    }
    size_t n = (size_t)B * ZD;
    dt_reparam_forward(m->z, g->mu, g->logvar, g->eps, n);
    kl[0] += dt_kl_gauss_forward(NULL, g->mu, g->logvar, B, ZD);
}

static void latent_backward(dt_vae *m, int B, float scale)
{
    dt_vae_gauss *g = m->lat;
    /* dmu, dlogvar are written straight into their halves of dhead */
    for (int i = 0; i < B; i++) {
        float *dmu = m->dhd + i * 2 * ZD, *dlv = dmu + ZD;
        const float *mu = g->mu + i * ZD, *lv = g->logvar + i * ZD;
        for (int k = 0; k < ZD; k++) dmu[k] = dlv[k] = 0.0f;
        dt_reparam_backward(dmu, dlv, m->dz + i * ZD, lv, g->eps + i * ZD, ZD);
        dt_kl_gauss_backward(dmu, dlv, mu, lv, ZD, scale);
    }
}

static int stat_width(const dt_vae_opts *o, int k) { return ZD; }

static const float *stat(const dt_vae *m, int k)
{
    const dt_vae_gauss *g = m->lat;
    return k == 0 ? g->mu : g->logvar;
}

const dt_vae_kind dt_vae_continuous = {
    .name = "vae",
    .title = "continuous VAE",
    .nterms = 1,
    .terms = {"kl"},
    .head_size = head_size,
    .latent_size = latent_size,
    .create = create,
    .destroy = destroy,
    .latent_forward = latent_forward,
    .latent_backward = latent_backward,
    .nstats = 2,
    .stats = {"mu", "logvar"},
    .stat_width = stat_width,
    .stat = stat,
};
