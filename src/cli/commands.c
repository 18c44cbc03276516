/* The registry of dtrain's commands: one line each (cli.h). */
#include <string.h>

#include "dtrain/cli.h"
#include "dtrain/vae.h"

const dt_command dt_commands[] = {
    {"prepare", "build the colored-MNIST HDF5 data set (data/colored_mnist.h5)", dt_cmd_prepare, 0, NULL},
    {"vae", "train the continuous VAE (2-D latent), data parallel over the ranks", dt_cmd_vae_family, 1,
     &dt_vae_continuous},
    {"dvae", "train the discrete VAE (Gumbel-softmax, N variables of K categories)", dt_cmd_vae_family, 1,
     &dt_vae_discrete},
    {"jvae", "train the joint VAE (continuous and discrete latents together)", dt_cmd_vae_family, 1, &dt_vae_joint},
    {"cyclegan", "train the CycleGAN that recolors digits between domains A and B", dt_cmd_cyclegan, 1, NULL},
    {"study", "train vae, dvae and jvae alike and compare them (table, curves, latents)", dt_cmd_study, 1, NULL},
    {"embed", "write test-set latent embeddings of a checkpoint to HDF5", dt_cmd_embed, 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

const dt_command *dt_command_find(const char *name)
{
    for (const dt_command *c = dt_commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}
