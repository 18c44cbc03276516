/* The joint VAE: a 2-D Gaussian latent and N categorical variables side by
 * side; head = [mu | logvar | logits], z = [z_cont | z_disc]. */
#include "dtrain/vae.h"

const dt_vae_kind dt_vae_joint = {
    .name = "jvae",
    .title = "joint VAE",
    .nparts = 2,
    .parts = {DT_PART_GAUSS, DT_PART_CAT},
    .terms = {"kl_cont", "kl_disc"},
};
