/* The continuous VAE: one Gaussian latent of 2 dimensions. */
#include "dtrain/core.h"
#include "dtrain/vae.h"

#define ZD 2

static int head_size(const dt_vae_opts *o) { return 2 * ZD; }
static int latent_size(const dt_vae_opts *o) { return ZD; }

static void create(dt_vae *m)
{
    dt_gauss_part *g = dt_alloc(sizeof *g);
    dt_gauss_part_init(g, ZD, 0, 0, m->maxB);
    m->lat = g;
}

static void destroy(dt_vae *m)
{
    dt_gauss_part_free(m->lat);
    dt_free(m->lat);
}

static void latent_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *kl)
{
    kl[0] += dt_gauss_part_forward(m->lat, m, B, gidx, step, eval);
}

static void latent_backward(dt_vae *m, int B, float scale) { dt_gauss_part_backward(m->lat, m, B, scale); }

static int stat_width(const dt_vae_opts *o, int k) { return ZD; }

static const float *stat(const dt_vae *m, int k)
{
    const dt_gauss_part *g = m->lat;
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
