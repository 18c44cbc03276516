/* The CycleGAN's options: the table with the recipe's defaults, parsing with
 * resume, the generator output kinds, the rate schedule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/ckpt.h"
#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"
#include "dtrain/gan.h"
#include "dtrain/gan_metrics.h"
#include "dtrain/gan_pairing.h"
#include "dtrain/guard.h"
#include "dtrain/plot.h"
#include "dtrain/report.h"
#include "dtrain/runctl.h"
#include "dtrain/step.h"
#include "dtrain/engine.h"
#include "gan_train.h"

/* --gen-out's names, indexed by DT_GEN_*; -1 for an unknown name */
int dt_gan_out_kind(const char *name)
{
    static const char *const names[] = {[DT_GEN_SIGMOID] = "sigmoid", [DT_GEN_RESIDUAL] = "residual",
                                        [DT_GEN_RECOLOR] = "recolor"};
    for (int k = 0; k < (int)(sizeof names / sizeof *names); k++)
        if (!strcmp(name, names[k])) return k;
    return -1;
}

/* The rate's factor in epoch e (from 0): 1 before --lr-decay-from E (counted
 * from 1), then falling linearly so that the last epoch still learns a little:
 * 1 - (e - E + 2) / (epochs - E + 2). */
float dt_gan_lr_factor(const gan_opts *o, int64_t e)
{
    int E = o->lr_decay_from;
    if (E <= 0 || e + 1 < E) return 1.0f;
    return 1.0f - (float)(e - E + 2) / (float)(o->epochs - E + 2);
}

/* The options of `dtrain cyclegan` over o, set to their defaults; their count. */
static int gan_options(gan_opts *o, dt_opt *opts)
{
    *o = (gan_opts){.data = DT_DATA_DEFAULT_PATH,
                    .out = "results/cyclegan",
                    .gen_out = "residual",
                    .epochs = 10,
                    .lr_decay_from = 4,
                    .batch = 64,
                    .lr = 3e-3f,
                    .beta1 = 0.5f,
                    .pair = 50,
                    .pair_focus = 4,
                    .g_gain = 3,
                    .ema = 0.97f,
                    .lambda_cyc = 10.0f,
                    .seed = 1};
    dt_run_opts_default(&o->run);
    const dt_opt table[] = {
        {"data", DT_OPT_STR, &o->data, "FILE", "colored-MNIST HDF5 file (prepared if missing)", 1, 0},
        {"epochs", DT_OPT_INT, &o->epochs, "N", "epochs (over the smaller of the two training sets)", 0, 100000},
        {"batch", DT_OPT_SIZE, &o->batch, "N", "global batch size of each domain", 1, 4096},
        {"lr", DT_OPT_FLOAT, &o->lr, "X", "Adam learning rate of all four networks", 0, 10},
        {"beta1", DT_OPT_FLOAT, &o->beta1, "X", "Adam beta1", 0, 0.9999},
        {"lr-d", DT_OPT_FLOAT, &o->lr_d, "X", "learning rate of the discriminators (0: --lr)", 0, 10},
        {"lr-decay-from", DT_OPT_INT, &o->lr_decay_from, "E",
         "from epoch E on, lower the rates linearly towards 0 at the end (0: constant)", 0, 100000},
        {"swap-neg", DT_OPT_FLOAT, &o->swap_neg, "W",
         "also train each discriminator to call real images repainted with another real image's color fake, "
         "weight W (0: off)",
         0, 100},
        {"d-noise", DT_OPT_FLOAT, &o->d_noise, "S",
         "instance noise: Gaussian noise of deviation S on what the discriminators see, falling linearly to 0", 0, 10},
        {"color-noise", DT_OPT_FLOAT, &o->color_noise, "S",
         "color noise: each image the discriminators see repainted by a random color shift of deviation S, "
         "falling linearly to 0",
         0, 10},
        {"color-search", DT_OPT_FLOAT, &o->search, "W",
         "also pull each translation (L1, weight W) toward its source's shape painted in the real color the "
         "discriminator finds most real (0: off)",
         0, 1000},
        {"color-pair", DT_OPT_FLOAT, &o->pair, "W",
         "also pull each translation (squared error, weight W) toward its source's shape painted in the color "
         "paired with the source's color: each domain's training images are grouped by color, and the groups of A "
         "and B are paired by their mean shapes (no labels; 0: off)",
         0, 1000},
        {"color-pair-focus", DT_OPT_FLOAT, &o->pair_focus, "K",
         "a translation not yet nearest its paired color gets 1 + K times the pull", 0, 1000},
        {"adv-ramp", DT_OPT_FLOAT, &o->adv_ramp, "E",
         "raise the adversarial term's weight in the generators' loss linearly from 0 to 1 over the first E "
         "epochs (0: full weight from the start)",
         0, 100000},
        {"g-delay", DT_OPT_LONG, &o->g_delay, "N",
         "leave the generators as they are for the first N iterations while the discriminators learn", 0, 1e12},
        {"lambda-cyc", DT_OPT_FLOAT, &o->lambda_cyc, "X", "weight of the L1 cycle-consistency loss", 0, 1000},
        {"lambda-id", DT_OPT_FLOAT, &o->lambda_id, "X", "weight of the identity loss (0: off)", 0, 1000},
        {"gen-ema", DT_OPT_FLOAT, &o->ema, "D",
         "evaluate, draw and keep the generators' weights averaged over the steps, E = D E + (1 - D) w after each "
         "step (0: the last weights)",
         0, 0.9999},
        {"gen-init-gain", DT_OPT_FLOAT, &o->g_gain, "X",
         "the generators' first two convolutions start with X times PyTorch's default initial weights", 0, 100},
        {"gen-out", DT_OPT_STR, &o->gen_out, "KIND",
         "generator output: residual (x + tanh, starts as the identity), recolor (the source's intensity times a "
         "color per pixel) or sigmoid (the report's)",
         1, 0},
        {"seed", DT_OPT_U64, &o->seed, "N", "seed of initialization and data order", 1, 0},
        {"out", DT_OPT_STR, &o->out, "DIR", "output folder", 1, 0},
        DT_RUN_OPT_RESUME(&o->run),
        DT_RUN_OPT_OVERWRITE(&o->run),
        {"checkpoint-every", DT_OPT_LONG, &o->checkpoint_every, "N", "also checkpoint every N steps", 0, 1e12},
        {"max-steps", DT_OPT_LONG, &o->max_steps, "N", "stop after N iterations in all (0: no limit)", 0, 1e15},
        {"threads", DT_OPT_INT, &o->threads, "N", "threads per rank (0: auto)", 0, 1024},
        DT_RUN_OPT_STOP(&o->run),
        DT_RUN_OPT_TIMEOUT(&o->run),
    };
    int n = (int)(sizeof table / sizeof *table);
    DT_ASSERT(n <= DT_OPTS_MAX);
    memcpy(opts, table, sizeof table);
    return n;
}

void dt_gan_parse(gan_opts *o, int argc, char **argv, dt_resume_info *info)
{
    dt_opt opts[DT_OPTS_MAX];
    int n = gan_options(o, opts);
    dt_engine_parse("cyclegan", opts, n, argc, argv,
                    "usage: [mpirun -np N] dtrain cyclegan [options]    (N = 1 or even)\n\n"
                    "Train the CycleGAN that recolors digits between domain A (digit d in palette[d]) and\n"
                    "domain B (palette[(d+3) mod 10]). With 2k ranks, even ranks hold A's generator and\n"
                    "discriminator, odd ranks B's; images and gradients cross between partner ranks.\n",
                    &o->run, &o->out, info, &o->settings);
    int rc = 0;
    if (dt_gan_out_kind(o->gen_out) < 0)
        rc = dt_seterr("--gen-out: '%s' is not one of residual, recolor, sigmoid", o->gen_out);
    if (rc == 0 && dt_size() > 1 && dt_size() % 2)
        rc = dt_seterr("cyclegan runs on 1 rank or an even number of ranks (pairs of an A and a B rank), not %d",
                       dt_size());
    dt_check_all(rc == 0);
    if (dt_size() > 1 && o->batch < (size_t)dt_size() / 2) {
        dt_seterr("--batch %zu is smaller than the %d ranks of each domain", o->batch, dt_size() / 2);
        dt_check_all(0);
    }
}
