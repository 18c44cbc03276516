/* The joint VAE: a 2-D Gaussian latent and N categorical variables side by
 * side; head = [mu | logvar | logits], z = [z_cont | z_disc]. */
#include "dtrain/core.h"
#include "dtrain/vae.h"

#define ZD 2

typedef struct {
    dt_gauss_part g;
    dt_cat_part c;
} joint;

static int head_size(const dt_vae_opts *o) { return 2 * ZD + o->N * o->K; }
static int latent_size(const dt_vae_opts *o) { return ZD + o->N * o->K; }

static void create(dt_vae *m)
{
    joint *j = dt_alloc(sizeof *j);
    dt_gauss_part_init(&j->g, ZD, 0, 0, m->maxB);
    dt_cat_part_init(&j->c, m->opts.N, m->opts.K, 2 * ZD, ZD, m->maxB);
    m->lat = j;
}

static void destroy(dt_vae *m)
{
    joint *j = m->lat;
    dt_gauss_part_free(&j->g);
    dt_cat_part_free(&j->c);
    dt_free(j);
}

static void latent_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *kl)
{
    joint *j = m->lat;
    kl[0] += dt_gauss_part_forward(&j->g, m, B, gidx, step, eval);
    kl[1] += dt_cat_part_forward(&j->c, m, B, gidx, step, eval);
}

static void latent_backward(dt_vae *m, int B, float scale)
{
    joint *j = m->lat;
    dt_gauss_part_backward(&j->g, m, B, scale);
    dt_cat_part_backward(&j->c, m, B, scale);
}

static int stat_width(const dt_vae_opts *o, int k) { return k < 2 ? ZD : o->N * o->K; }

static const float *stat(const dt_vae *m, int k)
{
    const joint *j = m->lat;
    return k == 0 ? j->g.mu : k == 1 ? j->g.logvar : j->c.q;
}

const dt_vae_kind dt_vae_joint = {
    .name = "jvae",
    .title = "joint VAE",
    .nterms = 2,
    .terms = {"kl_cont", "kl_disc"},
    .head_size = head_size,
    .latent_size = latent_size,
    .create = create,
    .destroy = destroy,
    .latent_forward = latent_forward,
    .latent_backward = latent_backward,
    .nstats = 3,
    .stats = {"mu", "logvar", "q"},
    .stat_width = stat_width,
    .stat = stat,
};
