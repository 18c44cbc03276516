/* The discrete VAE: N categorical variables of K categories (Gumbel-softmax). */
#include "dtrain/core.h"
#include "dtrain/vae.h"

static int head_size(const dt_vae_opts *o) { return o->N * o->K; }
static int latent_size(const dt_vae_opts *o) { return o->N * o->K; }

static void create(dt_vae *m)
{
    dt_cat_part *c = dt_alloc(sizeof *c);
    dt_cat_part_init(c, m->opts.N, m->opts.K, 0, 0, m->maxB);
    m->lat = c;
}

static void destroy(dt_vae *m)
{
    dt_cat_part_free(m->lat);
    dt_free(m->lat);
}

static void latent_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *kl)
{
    kl[0] += dt_cat_part_forward(m->lat, m, B, gidx, step, eval);
}

static void latent_backward(dt_vae *m, int B, float scale) { dt_cat_part_backward(m->lat, m, B, scale); }

static int stat_width(const dt_vae_opts *o, int k) { return o->N * o->K; }
static const float *stat(const dt_vae *m, int k) { return ((const dt_cat_part *)m->lat)->q; }

const dt_vae_kind dt_vae_discrete = {
    .name = "dvae",
    .title = "discrete VAE",
    .nterms = 1,
    .terms = {"kl_disc"},
    .head_size = head_size,
    .latent_size = latent_size,
    .create = create,
    .destroy = destroy,
    .latent_forward = latent_forward,
    .latent_backward = latent_backward,
    .nstats = 1,
    .stats = {"q"},
    .stat_width = stat_width,
    .stat = stat,
};
