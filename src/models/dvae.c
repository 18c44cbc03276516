/* The discrete VAE: N categorical variables of K categories (Gumbel-softmax).
 * As literally specified it collapses (every variable on one category within
 * the first epoch); a KL weight that starts well above 1 and falls to 1 over
 * the first 1000 steps avoids it, so that is its default. */
#include "dtrain/vae.h"

const dt_vae_kind dt_vae_discrete = {
    .name = "dvae",
    .title = "discrete VAE",
    .nparts = 1,
    .parts = {DT_PART_CAT},
    .terms = {"kl_disc"},
    .kl_start = 20.0f,
    .kl_warmup = 1000,
};
