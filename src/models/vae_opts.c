/* The VAE commands' options: the variants by name, defaults, the option
 * table (the discrete options only for variants with a categorical part), and
 * what a checkpoint must match to be resumed. */
#include <stdio.h>
#include <string.h>

#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/vae_run.h"

const dt_vae_kind *dt_vae_kind_find(const char *name)
{
    const dt_command *c = dt_command_find(name);
    return c ? c->vae : NULL;
}

void dt_vae_opts_default(dt_vae_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 30;
    o->batch = 128;
    o->lr = 1e-3f;
    o->seed = 1;
    o->N = 2;
    o->K = 10;
    o->tau0 = 1.0f;
    o->tau_min = 0.5f;
    o->anneal_rate = 3e-4f;
    o->anneal_every = 100;
    o->sample_std = 1.0f;
    o->kl_start = 1.0f;
    o->kl_warmup = 0;
}

void dt_vae_arch(const dt_vae *m, char *buf, size_t len)
{
    /* the batch size is part of it: the data position is counted in batches */
    if (!dt_vae_kind_discrete(m->kind))
        snprintf(buf, len, "%s head=%d latent=%d batch=%zu", m->kind->name, m->H, m->Z, m->opts.batch);
    else
        snprintf(buf, len, "%s head=%d latent=%d N=%d K=%d batch=%zu", m->kind->name, m->H, m->Z, m->opts.N,
                 m->opts.K, m->opts.batch);
}

/* ---- options ------------------------------------------------------------------ */

int dt_vae_options(const char *model, dt_vae_args *a, dt_opt *opts)
{
    static char out_default[256];
    snprintf(out_default, sizeof out_default, "results/%s", model);
    memset(a, 0, sizeof *a);
    a->data = DT_DATA_DEFAULT_PATH;
    a->out = out_default;
    dt_run_opts_default(&a->run);
    dt_vae_opts_default(&a->o);
    const dt_vae_kind *kind = dt_vae_kind_find(model);
    if (kind->kl_start > 0) a->o.kl_start = kind->kl_start;
    a->o.kl_warmup = kind->kl_warmup;
    const dt_opt common[] = {
        {"data", DT_OPT_STR, &a->data, "FILE", "colored-MNIST HDF5 file (prepared if missing)", 1, 0},
        {"epochs", DT_OPT_INT, &a->o.epochs, "N", "epochs to train", 0, 100000},
        {"batch", DT_OPT_SIZE, &a->o.batch, "N", "global batch size (split over the ranks)", 1, 1 << 20},
        {"lr", DT_OPT_FLOAT, &a->o.lr, "X", "Adam learning rate", 0, 10},
        {"seed", DT_OPT_U64, &a->o.seed, "N", "seed of initialization, order and noise", 1, 0},
        {"out", DT_OPT_STR, &a->out, "DIR", "output folder", 1, 0},
        DT_RUN_OPT_RESUME(&a->run),
        DT_RUN_OPT_OVERWRITE(&a->run),
        {"checkpoint-every", DT_OPT_LONG, &a->o.checkpoint_every, "N",
         "also checkpoint every N steps (0: at each epoch's end only)", 0, 1e12},
        {"threads", DT_OPT_INT, &a->o.threads, "N", "threads per rank (0: auto)", 0, 1024},
        {"max-steps", DT_OPT_LONG, &a->o.max_steps, "N",
         "stop after N optimizer steps in all (checkpoint kept; 0: no limit)", 0, 1e15},
        DT_RUN_OPT_STOP(&a->run),
        DT_RUN_OPT_TIMEOUT(&a->run),
    };
    /* variants with a categorical part only */
    const dt_opt discrete[] = {
        {"N", DT_OPT_INT, &a->o.N, "N", "categorical variables", 1, 64},
        {"K", DT_OPT_INT, &a->o.K, "K", "categories per variable", 2, 256},
        {"tau0", DT_OPT_FLOAT, &a->o.tau0, "X", "Gumbel-softmax temperature at step 0", 1e-3, 100},
        {"tau-min", DT_OPT_FLOAT, &a->o.tau_min, "X", "lowest temperature", 1e-3, 100},
        {"anneal-rate", DT_OPT_FLOAT, &a->o.anneal_rate, "X", "tau = max(tau0 exp(-rate t), tau_min)", 0, 1},
        {"anneal-every", DT_OPT_INT, &a->o.anneal_every, "N", "recompute tau every N steps", 1, 1000000},
        {"hard", DT_OPT_FLAG, &a->o.hard, NULL, "straight-through one-hot samples", 1, 0},
        {"kl-start", DT_OPT_FLOAT, &a->o.kl_start, "X",
         "weight of the discrete KL at step 0, falling linearly to 1 (1: the report's recipe)", 0, 1000},
        {"kl-warmup", DT_OPT_LONG, &a->o.kl_warmup, "N", "steps over which that weight reaches 1", 0, 1e12},
        {"sample-std", DT_OPT_FLOAT, &a->o.sample_std, "X",
         "standard deviation of the continuous part in generated pictures", 0, 100},
    };
    int nc = (int)(sizeof common / sizeof *common), nd = (int)(sizeof discrete / sizeof *discrete);
    if (!dt_vae_kind_discrete(kind)) nd = 0;
    DT_ASSERT(nc + nd <= DT_OPTS_MAX);
    memcpy(opts, common, sizeof *opts * (size_t)nc);
    memcpy(opts + nc, discrete, sizeof *opts * (size_t)nd);
    return nc + nd;
}
