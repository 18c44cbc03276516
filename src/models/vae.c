/* The continuous VAE: one Gaussian latent of 2 dimensions. */
#include "dtrain/vae.h"

const dt_vae_kind dt_vae_continuous = {
    .name = "vae",
    .title = "continuous VAE",
    .nparts = 1,
    .parts = {DT_PART_GAUSS},
    .terms = {"kl"},
};
