/* `dtrain cyclegan`: the CycleGAN as a model the engine trains (engine.h):
 * options, building the halves, checkpoints, the epoch's evaluation, the end
 * of a run. The iteration is in gan_step.c, its extra terms in gan_terms.c,
 * evaluation and pictures in gan_eval.c. */
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

/* ---- checkpoints ------------------------------------------------------------------- */

static void arch_of(const gan *g, char *buf, size_t len)
{
    snprintf(buf, len, "cyclegan gen=%s batch=%zu ema", g->o.gen_out, g->o.batch);
}

/* the six networks of a checkpoint, in its order */
static void nets_of(gan *g, dt_params **nets)
{
    dt_params *all[6] = {&g->G[0].p, &g->G[1].p, &g->D[0].p, &g->D[1].p, &g->E[0].p, &g->E[1].p};
    memcpy(nets, all, sizeof all);
}

/* The epoch's loss sums in a checkpoint: sums[0] = 1, then domain X's six
 * (half.loss) at 1 + 6X: the sums over all ranks, so that an epoch resumed
 * mid-way reports the losses of all its steps. */
#define GAN_SUMS (1 + 2 * 6)
_Static_assert(sizeof ((gan *)0)->sums == GAN_SUMS * sizeof(double), "gan.sums holds GAN_SUMS");

/* every rank of a domain holds the domain's sums (summed exactly over its
 * ranks each step): the first rank of each domain gives them */
static int gives_sums(const gan *g) { return dt_comm_rank(g->group) == 0; }

/* collective: both domains' sums, whole, in g->sums */
static void gather_sums(gan *g)
{
    memset(g->sums, 0, sizeof g->sums);
    g->sums[0] = 1;
    for (int k = 0; k < g->nhalves && gives_sums(g); k++)
        memcpy(g->sums + 1 + 6 * g->h[k].X, g->h[k].loss, sizeof g->h[k].loss);
    double mine[GAN_SUMS - 1];
    memcpy(mine, g->sums + 1, sizeof mine);
    dt_allreduce_sum_d(mine, GAN_SUMS - 1);
    memcpy(g->sums + 1, mine, sizeof mine);
}

static int gan_save(void *g_, dt_ckpt_meta *meta, const char *path)
{
    gan *g = g_;
    arch_of(g, meta->arch, sizeof meta->arch);
    meta->nsums = GAN_SUMS;
    memcpy(meta->sums, g->sums, sizeof g->sums);
    dt_params *nets[6];
    nets_of(g, nets);
    dt_adam opts[6] = {g->aG[0], g->aG[1], g->aD[0], g->aD[1], g->aG[0], g->aG[1]}; /* E has no optimizer */
    return dt_ckpt_save(path, meta, nets, opts, 6);
}

/* collective: rank 0 gathers all four networks, and the epoch's sums */
static void gan_gather(void *g)
{
    dt_gan_share_networks(g, 1);
    gather_sums(g);
}

/* rank 0: the checkpoint at path into the four networks */
static int gan_load(void *g_, const char *path, int64_t epoch_steps, dt_ckpt_meta *meta)
{
    gan *g = g_;
    char arch[128];
    arch_of(g, arch, sizeof arch);
    dt_params *nets[6];
    nets_of(g, nets);
    dt_adam opts[6];
    int rc = dt_ckpt_load(path, "cyclegan", arch, epoch_steps, meta, nets, opts, 6);
    if (rc == 0) g->aG[0] = opts[0], g->aG[1] = opts[1], g->aD[0] = opts[2], g->aD[1] = opts[3];
    /* the epoch's sums (a checkpoint without them: none) */
    memset(g->sums, 0, sizeof g->sums);
    if (rc == 0 && meta->nsums == GAN_SUMS) memcpy(g->sums, meta->sums, sizeof g->sums);
    return rc;
}

/* what rank 0 loaded, to every rank */
static void gan_share_loaded(void *g_)
{
    gan *g = g_;
    dt_params *nets[6];
    nets_of(g, nets);
    dt_bcast(g->aG, sizeof g->aG, 0);
    dt_bcast(g->aD, sizeof g->aD, 0);
    dt_bcast(g->sums, sizeof g->sums, 0);
    for (int k = 0; k < 6; k++) {
        dt_bcast(nets[k]->w, nets[k]->n * sizeof(float), 0);
        dt_bcast(nets[k]->m, nets[k]->n * sizeof(float), 0);
        dt_bcast(nets[k]->v, nets[k]->n * sizeof(float), 0);
    }
}

/* ---- the model, as the engine drives it ------------------------------------------- */

static void gan_epoch_begin(void *g_, int64_t epoch, int64_t b)
{
    gan *g = g_;
    float f = dt_gan_lr_factor(&g->o, epoch);
    for (int X = 0; X < 2; X++) {
        g->aG[X].lr = g->o.lr * f;
        g->aD[X].lr = (g->o.lr_d > 0 ? g->o.lr_d : g->o.lr) * f;
    }
    for (int k = 0; k < g->nhalves; k++) {
        if (b > 0)
            dt_loader_seek(g->h[k].ld, (uint64_t)epoch, (size_t)b);
        else
            dt_loader_start_epoch(g->h[k].ld, (uint64_t)epoch);
        memset(g->h[k].loss, 0, sizeof g->h[k].loss);
        /* resuming inside the epoch: its sums so far, on every rank of the domain */
        if (b > 0) memcpy(g->h[k].loss, g->sums + 1 + 6 * g->h[k].X, sizeof g->h[k].loss);
    }
}

static int gan_next_batch(void *g_)
{
    gan *g = g_;
    int got = 1;
    for (int k = 0; k < g->nhalves; k++) {
        dt_batch bt;
        int r = dt_loader_next(g->h[k].ld, &bt);
        if (r != 1) {
            if (r == 0) dt_seterr("the loader ran out of batches before the epoch's end");
            got = 0;
            continue;
        }
        g->h[k].nx = bt.n;
        g->h[k].gx = bt.global_n;
        memcpy(g->h[k].x, bt.x, sizeof(float) * bt.n * DT_IMG);
    }
    return got;
}

static double gan_step(void *g_, int64_t step, double *sums)
{
    gan *g = g_;
    g->step = step;
    dt_gan_iteration(g);
    return (double)(g->h[0].gx + g->h[0].gy);
}

/* the epoch's losses per image, every rank: [cycle A, cycle B, adv G_AB,
 * adv G_BA, D_A, D_B, pair pull] */
static void epoch_losses(const gan *g, double *L)
{
    memset(L, 0, sizeof(double) * 7);
    for (int k = 0; k < g->nhalves && gives_sums(g); k++) {
        int X = g->h[k].X;
        L[X] = g->h[k].loss[0];
        L[2 + (1 - X)] = g->h[k].loss[1]; /* G_X's adversarial term: G_BA for X = A */
        L[4 + X] = g->h[k].loss[2] + g->h[k].loss[3];
        L[6] += g->h[k].loss[5];
    }
    dt_allreduce_sum_d(L, 7);
    double per = (double)g->o.epoch_steps * (double)g->o.batch;
    for (int k = 0; k < 7; k++) L[k] /= per;
}

static int gan_epoch_end(void *g_, const dt_epoch_report *r, double *row)
{
    gan *g = g_;
    gan_eval *ev = &g->ev;
    double L[7];
    epoch_losses(g, L);
    dt_gan_share_networks(g, 0);
    dt_check_all(dt_gan_evaluate(g, g->test, ev) == 0);
    char el[32], eta[32];
    dt_fmt_duration(el, sizeof el, r->elapsed_s);
    dt_fmt_duration(eta, sizeof eta, r->eta_s);
    dt_log("epoch %3lld/%d  color acc A->B %.3f B->A %.3f  shape %.3f %.3f  color-hist dist %.3f %.3f  cycle %.3f "
           "%.3f  D %.3f %.3f  %.0f img/s  elapsed %s  ETA %s\n",
           (long long)r->epoch + 1, r->epochs, ev->acc[0], ev->acc[1], ev->shape[0], ev->shape[1], ev->tv[0],
           ev->tv[1], L[0], L[1], L[4], L[5], r->images_per_s, el, eta);
    dt_gan_log_off_pairs(g, ev);
    float *hrow = g->hist + (size_t)r->epoch * HIST;
    const double h[HIST] = {L[1] + L[2], /* G_AB: its adversarial term and the cycle it closes on B */
                            L[0] + L[3], L[4], L[5], ev->acc[0], ev->acc[1], ev->tv[0], ev->tv[1]};
    for (int k = 0; k < HIST; k++) hrow[k] = (float)h[k];
    const double v[] = {L[0],          L[1],          L[2],      L[3],      L[4],         L[5],
                        ev->acc[0],    ev->acc[1],    ev->shape[0], ev->shape[1], ev->tv[0], ev->tv[1],
                        ev->agree[0],  ev->agree[1],  L[6]};
    memcpy(row, v, sizeof v);
    return (int)(sizeof v / sizeof *v);
}

static void gan_summary(void *g_, const dt_engine *e, dt_json *j)
{
    const gan *g = g_;
    const gan_eval *ev = &g->ev;
    dt_json_num(j, "color_acc_ab", ev->acc[0]);
    dt_json_num(j, "color_acc_ba", ev->acc[1]);
    dt_json_num(j, "shape_ab", ev->shape[0]);
    dt_json_num(j, "shape_ba", ev->shape[1]);
    dt_json_num(j, "hist_tv_ab", ev->tv[0]);
    dt_json_num(j, "hist_tv_ba", ev->tv[1]);
    dt_json_num(j, "pair_agree_ab", ev->agree[0]);
    dt_json_num(j, "pair_agree_ba", ev->agree[1]);
    /* rank 0's time in the partner exchanges (waiting for the partner included) */
    dt_json_num(j, "message_share", e->train_s > 0 ? g->msg_s / e->train_s : 0);
    dt_json_str(j, "gen_out", g->o.gen_out);
    dt_json_num(j, "lambda_cyc", g->o.lambda_cyc);
    dt_json_num(j, "lr", g->o.lr);
}

static void gan_finish(void *g_, const dt_engine *e)
{
    gan *g = g_;
    if (e->idle) return; /* a run that trained nothing leaves its results as they are */
    dt_gan_share_networks(g, 0);
    dt_check_all(dt_gan_evaluate(g, g->test, &g->ev) == 0);
    if (dt_rank() != 0) return;
    dt_gan_translation_grid(g, g->test, g->o.out);
    dt_gan_curves(g->o.out, g->hist, g->o.epochs);
    dt_log("dtrain cyclegan: color accuracy A->B %.3f, B->A %.3f; shape %.3f, %.3f; results in %s/\n", g->ev.acc[0],
           g->ev.acc[1], g->ev.shape[0], g->ev.shape[1], g->o.out);
}

static const dt_model_ops GAN_OPS = {
    .name = "cyclegan",
    .nsums = 1,
    .columns = "cycle_a,cycle_b,adv_g_ab,adv_g_ba,d_a,d_b,color_acc_ab,color_acc_ba,shape_ab,shape_ba,hist_tv_ab,"
               "hist_tv_ba,pair_agree_ab,pair_agree_ba,pair_loss",
    .load = gan_load,
    .share_loaded = gan_share_loaded,
    .epoch_begin = gan_epoch_begin,
    .next_batch = gan_next_batch,
    .step = gan_step,
    .epoch_end = gan_epoch_end,
    .gather = gan_gather,
    .save = gan_save,
    .finish = gan_finish,
    .summary = gan_summary,
};

/* ---- the command -------------------------------------------------------------------- */

/* Collective: the command line, then, when resuming, the checkpoint's
 * settings (info: what is resumed; it must outlive o). */
/* Collective: the data set's splits and the color pairing */
static void open_data(gan *g, const dt_resume_info *info)
{
    g->ds = dt_engine_data(g->o.data, "cyclegan", info, g->o.data_sha256);
    for (int X = 0; X < 2; X++) dt_check_all(dt_dataset_mapping(g->ds, X, g->mapping[X]) == 0);
    for (int X = 0; X < 2; X++) {
        char name[64];
        snprintf(name, sizeof name, "cyclegan/%s/train", DOMAIN[X]);
        g->train[X] = dt_split_open(g->ds, name);
        dt_check_all(g->train[X] != NULL);
        snprintf(name, sizeof name, "cyclegan/%s/test", DOMAIN[X]);
        g->test[X] = dt_split_open(g->ds, name);
        dt_check_all(g->test[X] != NULL);
    }
    dt_gan_build_pairing(g, g->train);
}

/* the four networks, the averaged generators and their optimizers */
static void build_networks(gan *g)
{
    int out = dt_gan_out_kind(g->o.gen_out);
    const char *gname[2] = {"G_BA", "G_AB"}, *dname[2] = {"D_A", "D_B"};
    for (int X = 0; X < 2; X++) {
        dt_gen_create(&g->G[X], gname[X], out);
        dt_gen_init(&g->G[X], g->o.seed, (uint64_t)X);
        dt_gen_init_gain(&g->G[X], g->o.g_gain);
        char ename[16];
        snprintf(ename, sizeof ename, "%s_avg", gname[X]);
        dt_gen_create(&g->E[X], ename, out);
        memcpy(g->E[X].p.w, g->G[X].p.w, sizeof(float) * g->G[X].p.n);
        dt_disc_create(&g->D[X], dname[X]);
        dt_disc_init(&g->D[X], g->o.seed, 2 + (uint64_t)X);
        dt_adam_default(&g->aG[X], g->o.lr);
        dt_adam_default(&g->aD[X], g->o.lr);
        g->aG[X].beta1 = g->aD[X].beta1 = g->o.beta1;
    }
}

/* a half's buffers, in one list for allocation and release */
#define HALF_BUFS(h)                                                                                            \
    {&(h)->x, &(h)->y, &(h)->fake_y, &(h)->d_fake_y, &(h)->d_fake_x, &(h)->d_adv, &(h)->d_rec, &(h)->d_recv, \
     &(h)->noisy_x, &(h)->noisy_fake, &(h)->swapped, &(h)->cand, &(h)->d_search, &(h)->d_pair}

/* the halves this rank holds: loaders, contexts, buffers */
static void build_halves(gan *g)
{
    if (g->P > 1) g->group = dt_comm_split(dt_rank() % 2, dt_rank());
    for (int k = 0; k < g->nhalves; k++) {
        half *h = &g->h[k];
        h->X = g->P == 1 ? k : dt_rank() % 2;
        h->ld = dt_loader_create_in(g->group, g->train[h->X], g->o.batch, g->o.seed * 2 + (uint64_t)h->X, 1);
        dt_gen_ctx_create(&h->c1, g->maxB);
        dt_gen_ctx_create(&h->c2, g->maxB);
        if (g->o.lambda_id > 0) dt_gen_ctx_create(&h->c3, g->maxB);
        dt_disc_ctx_create(&h->dc, g->maxB);
        float **bufs[] = HALF_BUFS(h);
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) *bufs[i] = dt_alloc_floats((size_t)g->maxB * DT_IMG);
        h->colors = dt_alloc(sizeof(double) * 3 * g->o.batch);
    }
    for (int X = 0; X < 2; X++) { /* each network's step over its domain's ranks */
        dt_optim_init(&g->oG[X], g->group, &g->aG[X], &g->G[X].p, 0);
        dt_optim_init(&g->oD[X], g->group, &g->aD[X], &g->D[X].p, 0);
    }
    dt_gan_exact_setup(g);
}

static void free_all(gan *g)
{
    dt_gan_exact_free(g);
    for (int k = 0; k < g->nhalves; k++) {
        half *h = &g->h[k];
        dt_loader_free(h->ld);
        dt_gen_ctx_free(&h->c1);
        dt_gen_ctx_free(&h->c2);
        if (g->o.lambda_id > 0) dt_gen_ctx_free(&h->c3);
        dt_disc_ctx_free(&h->dc);
        float **bufs[] = HALF_BUFS(h);
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dt_free(*bufs[i]);
        dt_free(h->colors);
    }
    for (int X = 0; X < 2; X++) {
        dt_gen_free(&g->G[X]);
        dt_gen_free(&g->E[X]);
        dt_disc_free(&g->D[X]);
        dt_split_close(g->train[X]);
        dt_split_close(g->test[X]);
    }
    dt_comm_free(g->group);
    dt_dataset_close(g->ds);
    dt_free(g->hist);
    dt_free(g);
}

int dt_cmd_cyclegan(int argc, char **argv)
{
    double t_start = dt_now();
    gan *g = dt_alloc(sizeof *g);
    dt_resume_info rinfo;
    dt_gan_parse(&g->o, argc, argv, &rinfo);
    g->o.threads = dt_threads_setup(g->o.threads);
    dt_run_begin(&g->o.run);
    g->P = dt_size();
    g->nhalves = g->P == 1 ? 2 : 1;
    dt_run_claim(&g->o.run, g->o.out);
    open_data(g, &rinfo);
    size_t per_domain = g->P == 1 ? 1 : (size_t)g->P / 2;
    g->maxB = (int)((g->o.batch + per_domain - 1) / per_domain);
    if (g->maxB < 16) g->maxB = 16; /* evaluation and pictures work in blocks of at least 10 */
    build_networks(g);
    build_halves(g);
    size_t nbA = (dt_split_len(g->train[0]) + g->o.batch - 1) / g->o.batch;
    size_t nbB = (dt_split_len(g->train[1]) + g->o.batch - 1) / g->o.batch;
    g->o.epoch_steps = (int64_t)(nbA < nbB ? nbA : nbB);
    g->total_steps = g->o.epoch_steps * g->o.epochs;
    size_t nhist = (size_t)(g->o.epochs > 0 ? g->o.epochs : 1) * HIST;
    g->hist = dt_alloc_floats(nhist);
    for (size_t i = 0; i < nhist; i++) g->hist[i] = NAN; /* epochs before a resume are not drawn */
    dt_log("dtrain cyclegan: %zu A / %zu B train images from %s, %d rank(s) (%s), products %s, %s sums, batch %zu, "
           "%d epochs, %s generator\n",
           dt_split_len(g->train[0]), dt_split_len(g->train[1]), g->o.data, g->P,
           g->P == 1 ? "both domains on one rank" : "A on even ranks, B on odd", dt_gemm_isa(), dt_step_reduction(),
           g->o.batch, g->o.epochs, g->o.gen_out);
    dt_engine e = {.ops = &GAN_OPS,
                   .m = g,
                   .out = g->o.out,
                   .data = g->o.data,
                   .batch = g->o.batch,
                   .epochs = g->o.epochs,
                   .threads = g->o.threads,
                   .epoch_steps = g->o.epoch_steps,
                   .max_steps = g->o.max_steps,
                   .checkpoint_every = g->o.checkpoint_every,
                   .seed = g->o.seed,
                   .run = &g->o.run,
                   .info = &rinfo,
                   .settings = &g->o.settings,
                   .data_sha256 = g->o.data_sha256,
                   .t_start = t_start};
    dt_engine_run(&e);
    free_all(g);
    return 0;
}
