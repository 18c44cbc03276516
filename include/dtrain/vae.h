/* The VAE family: one trunk, one decoder, one training loop; a variant
 * (continuous, discrete, joint) supplies only its latent layer.
 *
 *   x (B,2352) -> fc1 512 relu -> fc2 256 relu -> head H   (encoder)
 *   head (B,H) -> latent layer -> z (B,Z) + KL terms        (variant)
 *   z (B,Z) -> fc1 256 relu -> fc2 512 relu -> fc3 2352 -> sigmoid   (decoder)
 * Loss per image = BCE(x_hat, x) summed over 2352 outputs + the variant's KLs. */
#ifndef DTRAIN_VAE_H
#define DTRAIN_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/data.h"
#include "dtrain/nn.h"
#include "dtrain/step.h"

#define DT_MAX_TERMS 4

typedef struct {
    int epochs;
    size_t batch;
    float lr;
    uint64_t seed;
    int threads;
    long checkpoint_every; /* steps; 0: at each epoch's end only */
    long max_steps;        /* stop after this many steps in all; 0: no limit */
    /* discrete part (dvae, jvae) */
    int N, K;
    float tau0, tau_min, anneal_rate;
    int anneal_every, hard;
    float sample_std;
    float kl_start;   /* weight of the discrete KL at step 0, falling linearly ... */
    long kl_warmup;   /* ... to 1 at this step (0: weight 1 throughout) */
} dt_vae_opts;

/* The latent parts a variant is made of (latent.c). */
typedef enum { DT_PART_GAUSS, DT_PART_CAT } dt_part_kind;
#define DT_MAX_PARTS (DT_MAX_TERMS - 1)
#define DT_GAUSS_DIM 2 /* the continuous part's dimensions */

/* A variant: a table of latent parts, side by side in the head's columns and
 * in z's (head = [part 0's | part 1's ...], z likewise). A Gaussian part has
 * head columns [mu | logvar] (2 x DT_GAUSS_DIM) and DT_GAUSS_DIM z columns;
 * a categorical part N x K logits and N x K z columns. Each part adds one KL
 * term and its statistics to the embeddings file: "mu" and "logvar", or "q". */
typedef struct dt_vae_kind {
    const char *name;  /* command name: "vae" */
    const char *title; /* "continuous VAE" */
    int nparts;
    dt_part_kind parts[DT_MAX_PARTS];
    const char *terms[DT_MAX_PARTS]; /* each part's KL term: "kl" */
    float kl_start;                  /* default of --kl-start (0: 1) */
    long kl_warmup;                  /* default of --kl-warmup */
} dt_vae_kind;

extern const dt_vae_kind dt_vae_continuous;
extern const dt_vae_kind dt_vae_discrete;
extern const dt_vae_kind dt_vae_joint;
/* 1 when the variant has a categorical part (the discrete options apply) */
int dt_vae_kind_discrete(const dt_vae_kind *k);

/* ---- latent parts ------------------------------------------------------------ */

/* Gaussian: head columns [h0, h0+2d) = [mu | logvar], z columns [z0, z0+d),
 * z = mu + exp(logvar/2) eps, KL to N(0, I). */
typedef struct {
    int d, h0, z0;
    float *mu, *logvar, *eps; /* (maxB, d) */
    float *scratch;           /* (3, maxB, d) */
} dt_gauss_part;

/* Categorical: N variables of K categories; head columns [h0, h0+NK) are the
 * logits, z columns [z0, z0+NK) get Gumbel-softmax samples at temperature
 * tau (one-hot with the straight-through gradient when hard), KL(q || uniform)
 * with q = softmax(logits), weighted in training by dt_kl_weight. */
typedef struct {
    int N, K, h0, z0;
    float *logits, *g, *y, *q, *dl; /* (maxB, N*K) */
    float tau, beta;                 /* of the last forward */
} dt_cat_part;

typedef struct {
    dt_part_kind kind;
    union {
        dt_gauss_part gauss;
        dt_cat_part cat;
    };
} dt_latent_part;

#define DT_MAX_STATS (2 * DT_MAX_PARTS)

typedef struct dt_vae {
    const dt_vae_kind *kind;
    dt_vae_opts opts;
    int H, Z, maxB;
    dt_params p; /* the whole model in one block */
    dt_linear e1, e2, head, d1, d2, d3;
    /* activations, (maxB, width) */
    float *x, *h1, *h2, *hd, *z, *g1, *g2, *logits, *xhat;
    /* gradients of activations */
    float *dh1, *dh2, *dhd, *dz, *dg1, *dg2, *dlogits;
    double *per[DT_MAX_TERMS]; /* per image, of the last forward: BCE, then each part's KL */
    int shared;  /* the activations above live in the job's shared memory (dt_vae_share) */
    dt_latent_part part[DT_MAX_PARTS]; /* the variant's parts, in its order */
    /* the per-image statistics of the last forward, for the embeddings file */
    int nstats;
    const char *stat_name[DT_MAX_STATS];
    int stat_width[DT_MAX_STATS];
    const float *stat[DT_MAX_STATS]; /* (maxB, width) */
} dt_vae;

dt_vae *dt_vae_create(const dt_vae_kind *kind, const dt_vae_opts *o, int max_batch);
void dt_vae_free(dt_vae *m);
/* Before training, once the weights are initialized or loaded: on one node,
 * keep weights, moments and the layers' inputs and output gradients in
 * memory all ranks share (dt_step_share, with o the optimizer of m->p).
 * Collective. Then dt_step_unshare(o) before dt_vae_free. */
void dt_vae_share(dt_vae *m, dt_optim *o);
/* dt_vae_backward writes every gradient (dt_optim.g_written) */
#define DT_VAE_WRITES_GRADS 1
void dt_vae_init_params(dt_vae *m, uint64_t seed);

/* Forward over B images already in m->x; sums[0] += BCE, sums[1..] += KLs
 * (this rank's images; each image's terms stay in m->per). */
void dt_vae_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *sums);
/* The last forward's B images' terms, image by image, into xs[0..1+nparts):
 * exact sums, so that they can be merged over the ranks (dt_comm_xsum) with
 * the same bits for any rank count. */
void dt_vae_xsums(const dt_vae *m, int B, dt_xsum *xs);
/* Backward of (sum of losses) * scale into m->p.g (written), telling hooks
 * (NULL: none) which layers are done; with hooks->grads 0 (node-shared
 * params: the step computes them) it leaves m->p.g alone. */
void dt_vae_backward(dt_vae *m, int B, float scale, const dt_backward_hooks *hooks);
/* Decode z (B,Z) into m->xhat (B,2352) in [0,1]. */
void dt_vae_decode(dt_vae *m, const float *z, int B);

/* ---- latent parts (latent.c) -------------------------------------------------- */

/* The head and z widths of a variant with these options. */
int dt_latent_head_size(const dt_vae_kind *k, const dt_vae_opts *o);
int dt_latent_size(const dt_vae_kind *k, const dt_vae_opts *o);
/* m's parts and their statistics, after m->H, m->Z and m->maxB are set. */
void dt_latent_create(dt_vae *m);
void dt_latent_free(dt_vae *m);
/* head (B,H) -> z (B,Z); adds each part's per-image KL sum into kl[part].
 * Noise for sample i comes from stream (seed, purpose, step, gidx[i]). */
void dt_latent_forward(dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval, double *kl);
/* dz (B,Z) -> dhead (B,H), overwritten; KL gradients scaled by scale. */
void dt_latent_backward(dt_vae *m, int B, float scale);

double dt_cat_part_forward(dt_cat_part *p, dt_vae *m, int B, const uint64_t *gidx, uint64_t step, int eval,
                           double *per);
void dt_cat_part_backward(dt_cat_part *p, dt_vae *m, int B, float scale);

/* tau(t) = max(tau0 exp(-rate * t'), tau_min), t' = t rounded down to a
 * multiple of anneal_every (the schedule is a function of the step alone). */
float dt_gumbel_tau(const dt_vae_opts *o, uint64_t step);
/* kl_start + (1 - kl_start) min(t / kl_warmup, 1) */
float dt_kl_weight(const dt_vae_opts *o, uint64_t step);

#endif
