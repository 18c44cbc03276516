/* The CycleGAN's state and the functions its files share (src/models/gan_*.c,
 * cyclegan.c): internal to the model. */
#ifndef DTRAIN_GAN_TRAIN_H
#define DTRAIN_GAN_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/comm.h"
#include "dtrain/data.h"
#include "dtrain/gan.h"
#include "dtrain/gan_pairing.h"
#include "dtrain/runctl.h"
#include "dtrain/step.h"

#define HIST 8 /* per epoch: G_AB, G_BA, D_A, D_B, acc_ab, acc_ba, tv_ab, tv_ba */

typedef struct {
    const char *data, *out, *gen_out;
    dt_run_opts run; /* --resume, --stop-signal, --step-timeout */
    int epochs, threads, lr_decay_from;
    size_t batch;
    float lr, lr_d, beta1, lambda_cyc, lambda_id, d_noise, color_noise, swap_neg, search;
    float pair, pair_focus, adv_ramp, g_gain, ema;
    uint64_t seed;
    long checkpoint_every, max_steps, g_delay;
    dt_settings settings; /* every option's value, for the checkpoints */
    char data_sha256[65]; /* of the data file */
    int64_t epoch_steps;  /* steps in one epoch */
} gan_opts;

typedef struct {
    int X;                 /* 0: A, 1: B */
    dt_loader *ld;
    dt_gen_ctx c1, c2, c3; /* rec_x = G_X(fake_y); fake_x = G_X(y); id_x = G_X(x) (identity loss) */
    dt_disc_ctx dc;
    float *x, *y, *fake_y, *d_fake_y, *d_fake_x, *d_adv, *d_rec, *d_recv;
    float *noisy_x, *noisy_fake; /* what D_X sees with instance noise (--d-noise) */
    float *swapped;              /* real x painted with another real x's color (--swap-neg) */
    float *cand, *d_search;      /* --color-search: a repainted fake_x, and its pull's gradient */
    float *d_pair;               /* --color-pair: the pull's gradient w.r.t. fake_x */
    double *colors;              /* (gx, 3): the color of each real x of the global batch */
    size_t nx, ny, gx, gy; /* local and global counts of x and y */
    double loss[6];        /* cycle, adversarial (G), D real, D fake, identity, pair pull: the epoch's sums */
    dt_xsum step[6];       /* the same terms of this iteration's images on this rank, exactly */
} half;

typedef struct {
    double acc[2], shape[2]; /* [0]: A->B, [1]: B->A; with the test labels */
    double tv[2], agree[2];  /* label-free: color-histogram distance, agreement with the pairing */
    dt_pair_tally tally[2];
} gan_eval;

typedef struct {
    gan_opts o;
    int P, nhalves;
    dt_dataset *ds;
    dt_split *train[2], *test[2];
    gan_eval ev;           /* the last evaluation */
    float *hist;           /* (epochs, HIST): the curves' points */
    dt_comm *group;        /* the ranks of this rank's domain (NULL with one rank) */
    dt_gen G[2];           /* G[X] makes X images; every rank has all four networks */
    dt_gen E[2];           /* the moving average of G[X]'s weights (--gen-ema): what is evaluated and saved */
    dt_disc D[2];
    dt_adam aG[2], aD[2];
    dt_optim oG[2], oD[2]; /* their steps, over the ranks of the network's domain */
    half h[2];
    int maxB;
    uint8_t mapping[2][10]; /* palette index of digit d in domain A, B (to score only) */
    dt_pairing pair;        /* the colors of A and B and which goes with which, from the images */
    double msg_s;           /* time spent in the partner exchanges */
    double sums[13];        /* the epoch's loss sums over all ranks, for checkpoints (cyclegan.c) */
    int exact;              /* several ranks in a domain, gradients recorded and folded (gan_exact.c) */
    float *rec_send, *rec_recv;    /* a pass's records: the parts for each rank, and those for this one */
    float *rec_all, *fold_scratch; /* the records of the whole batch (the parts this rank needs); the fold's scratch */
    size_t *seg;                   /* (offset, length) pairs of a record's parts */
    int64_t step, total_steps;
} gan;

static const char *const DOMAIN[2] = {"A", "B"};

/* gan_step.c: one iteration (SPEC's schedule; see there) */
void dt_gan_iteration(gan *g);
/* L1 of n images over the global batch's elements, weight lambda:
 * d = lambda sign(y - x) / (gn DT_IMG); the loss, each image's term into s (NULL: not) */
double dt_gan_l1(dt_xsum *s, float *d, const float *y, const float *x, size_t n, float lambda, size_t gn);
/* BCE of n logits against label, gradient scale (dt_bce_label); each image's term into s */
void dt_gan_bce(dt_xsum *s, float *d, const float *logit, size_t n, float label, float scale);
/* a deviation s falling linearly to 0 over the run */
float dt_gan_falling(const gan *g, float s);
/* where this rank's images of a global batch of gn start */
size_t dt_gan_batch_offset(const gan *g, size_t gn);

/* gan_terms.c: the recipe's extra terms (see there). Each term of the
 * iteration takes the half it works on: void term(gan *g, half *h). */
void dt_gan_real_colors(gan *g, half *h);       /* h->colors, for the next two */
void dt_gan_color_search(gan *g, half *h);      /* --color-search: h->d_search */
void dt_gan_color_pair(gan *g, half *h);        /* --color-pair: h->d_pair, h->loss[5] */
void dt_gan_identity(gan *g, half *h);          /* --lambda-id: G_X's gradients, h->loss[4] */
void dt_gan_swapped_negatives(gan *g, half *h); /* --swap-neg: D_X's gradients, h->loss[3] */
/* --d-noise and --color-noise: what D_X sees of n images at [lo, lo + n) of
 * their global batch (role 0: real x, 1: fake x), in buf, or img itself */
const float *dt_gan_d_view(gan *g, int X, int role, float *buf, const float *img, size_t lo, size_t n);
float dt_gan_adv_weight(const gan *g);          /* --adv-ramp */
void dt_gan_paint(float *out, const float *src, size_t n, const double c[3]);
void dt_gan_color_shift(const gan *g, int X, int role, float *img, size_t lo, size_t n, float sd);

/* gan_exact.c: the same gradient sums on any rank count */
void dt_gan_exact_setup(gan *g); /* after the optimizers: records where a domain has several ranks */
void dt_gan_exact_free(gan *g);
/* after a backward pass of half h's generator (disc 0) or discriminator (1)
 * over a global batch of gn images: its terms added in the batch's order */
void dt_gan_fold_pass(gan *g, half *h, int disc, size_t gn);

/* gan_opts.c: the options */
/* Collective: the command line into o, then, when resuming, the
 * checkpoint's settings (info must outlive o); refuses a bad --gen-out, an
 * odd rank count, a batch smaller than a domain's ranks (status 2). */
void dt_gan_parse(gan_opts *o, int argc, char **argv, dt_resume_info *info);
/* --gen-out's name as DT_GEN_*, or -1 */
int dt_gan_out_kind(const char *name);
/* the learning rates' factor in epoch e (from 0): --lr-decay-from */
float dt_gan_lr_factor(const gan_opts *o, int64_t e);

/* gan_eval.c: pairing, sharing, evaluation, pictures */
void dt_gan_build_pairing(gan *g, dt_split *const *train);
void dt_gan_share_networks(gan *g, int moments);
int dt_gan_evaluate(gan *g, dt_split *const *test, gan_eval *ev);
void dt_gan_log_off_pairs(const gan *g, const gan_eval *ev);
void dt_gan_translation_grid(gan *g, dt_split *const *test, const char *dir);
void dt_gan_curves(const char *dir, const float *hist, int epochs);

#endif
