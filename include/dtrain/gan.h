/* gan: the CycleGAN's networks (SPEC model 4), forward and backward.
 *
 * Generator (one per direction), images (B,3,28,28) -> (B,3,28,28):
 *   conv 3->32 3x3 relu, conv 32->40 3x3 relu, conv 40->3 1x1 -> o, then
 *   "sigmoid":  y = sigmoid(o)                      (the report's recipe)
 *   "residual": y = clamp(x + tanh(o), 0, 1), the last conv starting at zero,
 *               so the generator starts as the identity.
 *   "recolor":  y = clamp(x + m tanh(o), 0, m) with m = max_c x, the pixel's
 *               intensity: the change of color is proportional to the
 *               intensity, so a hue change is the same o along a whole
 *               stroke, and background stays black. Starts as the identity.
 *   The clamps of both pass a gradient that would move a value outside back
 *   in (not the true gradient there, which is 0): both outputs start on the
 *   clamps in every saturated channel, where nothing would ever move.
 * Discriminator (one per domain), images -> logit (B,1):
 *   conv 3->32 3x3 relu, maxpool 2, conv 32->64 3x3 relu, maxpool 2,
 *   linear 3136->128 relu, linear 128->1  (the sigmoid is fused into the BCE). */
#ifndef DTRAIN_GAN_H
#define DTRAIN_GAN_H

#include <stdint.h>

#include "dtrain/conv.h"
#include "dtrain/nn.h"

enum { DT_GEN_SIGMOID = 0, DT_GEN_RESIDUAL = 1, DT_GEN_RECOLOR = 2 };

/* Where a network's backward leaves its weight gradients: added into p.g
 * (rec NULL), or, for a batch that several ranks share, recorded image by
 * image at rec + i rec_n (each layer's own weight and bias terms, a linear
 * layer's input and output-gradient rows), for dt_gen_fold / dt_disc_fold to
 * add in the batch's order wherever the images were: the same bits for any
 * rank count. */
typedef struct {
    float *rec;
    size_t rec_n; /* floats per image: dt_gen_rec_size() or dt_disc_rec_size() */
} dt_grad_rec;

typedef struct {
    dt_params p;
    dt_conv2d c1, c2, c3;
    int out;        /* DT_GEN_SIGMOID, DT_GEN_RESIDUAL or DT_GEN_RECOLOR */
    int true_clamp; /* 1: the clamps' true gradient, 0 outside (finite-difference tests) */
    dt_grad_rec rec;
} dt_gen;

/* What one application of a generator keeps for its backward (maxB images). */
typedef struct {
    const float *x;            /* the input of the last forward (not owned) */
    float *cols1, *h1, *cols2, *h2, *o, *y;
    float *dh1, *dh2, *dout, *dx1; /* gradients, scratch */
} dt_gen_ctx;

typedef struct {
    dt_params p;
    dt_conv2d c1, c2;
    dt_linear f1, f2;
    dt_grad_rec rec;
} dt_disc;

typedef struct {
    float *cols1, *a1, *p1, *cols2, *a2, *p2, *f1, *logit;
    int32_t *i1, *i2;
    float *da1, *dp1, *da2, *dp2, *df1, *dlogit;
} dt_disc_ctx;

void dt_gen_create(dt_gen *g, const char *name, int out);
void dt_gen_init(dt_gen *g, uint64_t seed, uint64_t key);
/* conv1's and conv2's weights times gain (their biases and conv3 as they are):
 * after dt_gen_init, a larger start than PyTorch's default bound 1/sqrt(fan_in) */
void dt_gen_init_gain(dt_gen *g, float gain);
void dt_gen_free(dt_gen *g);
void dt_gen_ctx_create(dt_gen_ctx *c, int maxB);
void dt_gen_ctx_free(dt_gen_ctx *c);
/* x (B,3,28,28) -> c->y (B,3,28,28) */
void dt_gen_forward(dt_gen *g, dt_gen_ctx *c, const float *x, int B);
/* dy (B,3,28,28) -> parameter gradients +=, dx (B,3,28,28) overwritten (NULL: skip) */
void dt_gen_backward(dt_gen *g, dt_gen_ctx *c, const float *dy, float *dx, int B);

void dt_disc_create(dt_disc *d, const char *name);
void dt_disc_init(dt_disc *d, uint64_t seed, uint64_t key);
void dt_disc_free(dt_disc *d);
void dt_disc_ctx_create(dt_disc_ctx *c, int maxB);
void dt_disc_ctx_free(dt_disc_ctx *c);
/* x (B,3,28,28) -> c->logit (B) */
void dt_disc_forward(dt_disc *d, dt_disc_ctx *c, const float *x, int B);
/* dlogit (B) -> parameter gradients +=, dx overwritten (NULL: skip); x as in the forward */
void dt_disc_backward(dt_disc *d, dt_disc_ctx *c, const float *x, const float *dlogit, float *dx, int B);
/* The input gradient alone: dx the same bits as dt_disc_backward's, d->p.g
 * untouched and no weight gradient computed (the generator step needs only
 * the gradient into the fake images). */
void dt_disc_backward_input(dt_disc *d, dt_disc_ctx *c, const float *x, const float *dlogit, float *dx, int B);

/* Recorded weight gradients (dt_grad_rec): floats per image, and the fold of
 * n images' records (recs + i rec_n, the batch's order) into elements
 * [lo, hi) of p.g, added to what is there as backward adds; scratch holds
 * dt_gan_fold_scratch(n) floats. */
size_t dt_gen_rec_size(void);
size_t dt_disc_rec_size(void);
size_t dt_gan_fold_scratch(int n);
void dt_gen_fold(dt_gen *g, const float *recs, int n, size_t lo, size_t hi, float *scratch);
void dt_disc_fold(dt_disc *d, const float *recs, int n, size_t lo, size_t hi, float *scratch);
/* The parts of a record that the fold of [lo, hi) reads: up to max
 * (offset, length) pairs into seg, their count returned; DT_REC_SEGMENTS
 * is always enough. A rank needs only those of the other ranks' records. */
#define DT_REC_SEGMENTS 1024
int dt_gen_rec_segments(const dt_gen *g, size_t lo, size_t hi, size_t *seg, int max);
int dt_disc_rec_segments(const dt_disc *d, size_t lo, size_t hi, size_t *seg, int max);

#endif
