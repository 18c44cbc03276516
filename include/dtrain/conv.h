/* conv: 2-D convolution (stride 1, "same" padding) and 2x2 max pooling.
 *
 * Conventions as in nn.h: outputs first, then inputs, then sizes; backward
 * *accumulates* (+=) into dW and db (dW NULL: skip both) and *overwrites* dx
 * (NULL: skip).
 * Activations are NCHW, batch-major: x (B,C,H,W). Weights are (O,C,k,k) as
 * in PyTorch. Only stride 1 with k = 3, pad = 1 or k = 1, pad = 0 is
 * supported (the output has the input's H and W).
 *
 * 3x3 layers with even H and W and at least 8 channels in and out (the
 * CycleGAN's second convolutions) run Winograd F(2x2,3x3), see below; the
 * others lower each image with im2col into a (C*k*k, H*W) column matrix and
 * multiply by W viewed as (O, C*k*k), one product per image (measured faster
 * here than one product over the whole batch followed by a transpose into
 * NCHW). For k = 1 the image itself is the column matrix and no columns are
 * built. The bias (and a following ReLU, in the _relu
 * variants) is applied per image while its output is still in cache, and
 * the backward of a ReLU that produced a layer's input is applied to dx
 * the same way, so no separate pass over the activations is needed. */
#ifndef DTRAIN_CONV_H
#define DTRAIN_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/nn.h"

/* ---- convolution layer ---------------------------------------------------- */

typedef struct {
    int C, O, k, pad;
    size_t w_off, b_off;
    float *w, *b, *dw, *db; /* views into the block, set by dt_conv2d_bind */
} dt_conv2d;

/* Reserve W (O,C,k,k) and b (O) named "<name>.weight" / "<name>.bias".
 * k = 3 with pad = 1, or k = 1 with pad = 0 (fatal otherwise). */
void dt_conv2d_declare(dt_conv2d *l, dt_params *p, const char *name, int C, int O, int k, int pad);
void dt_conv2d_bind(dt_conv2d *l, dt_params *p);
/* PyTorch's default: W, b ~ U(-1/sqrt(C k k), 1/sqrt(C k k)), drawn from
 * (seed, DT_RNG_INIT, a = view key, b = 0 for W, 1 for b). */
void dt_conv2d_init(dt_conv2d *l, uint64_t seed, uint64_t key);

/* Floats of the forward's cache ("cols") for a batch of B (the forward fills
 * it, the backward reads and then clobbers it): the columns, C*k*k*H*W per
 * image; for the Winograd layers dt_conv2d_winograd_size (no columns);
 * 0 for k = 1, where no columns are built and cols may be NULL. */
size_t dt_conv2d_cols_size(int B, int C, int O, int H, int W, int k);

/* x (B,C,H,Wd) W (O,C,k,k) b (O) -> y (B,O,H,Wd);
 * cols (B, C*k*k, H*Wd) <- im2col(x), kept for the backward (Winograd:
 * scratch, the backward needs nothing from it). */
void dt_conv2d_forward(float *y, float *cols, const float *x, const float *W, const float *b, int B, int C,
                       int H, int Wd, int O, int k, int pad);
/* The same with y = max(conv, 0): bit for bit dt_conv2d_forward then dt_relu_forward. */
void dt_conv2d_forward_relu(float *y, float *cols, const float *x, const float *W, const float *b, int B, int C,
                            int H, int Wd, int O, int k, int pad);
/* dy (B,O,H,Wd) x (B,C,H,Wd) W (O,C,k,k) -> dW (O,C,k,k) +=, db (O) +=
 * (dW NULL: neither; the input gradient alone), dx (B,C,H,Wd) overwritten
 * (NULL: skip).
 * cols must still hold what dt_conv2d_forward wrote for this x (the columns
 * are reused, not rebuilt; x is read only for k = 1). They are clobbered:
 * each image's columns are overwritten with its column gradient. */
void dt_conv2d_backward(float *dx, float *dW, float *db, float *cols, const float *dy, const float *x,
                        const float *W, int B, int C, int H, int Wd, int O, int k, int pad);
/* The same for an input x = max(z, 0) made by a ReLU: dx is the gradient
 * w.r.t. z, dx * (x > 0); bit for bit dt_conv2d_backward then
 * dt_relu_backward(dx, dx, x). x is read for the mask whatever k. */
void dt_conv2d_backward_relu(float *dx, float *dW, float *db, float *cols, const float *dy, const float *x,
                             const float *W, int B, int C, int H, int Wd, int O, int k, int pad);

/* The same (relu_x: as dt_conv2d_backward_relu) with each image's weight
 * and bias gradient written apart, image b's at dW + b part and db + b part:
 * (O,C,k,k) and (O) where im2col serves, (16,C,O) transformed and (O) where
 * Winograd does (dt_conv2d_winograd_fits; dt_conv2d_winograd_fold). Added to
 * a gradient one after another, in order, they give dt_conv2d_backward's bits:
 * how the ranks of a CycleGAN domain sum a batch they share. */
void dt_conv2d_backward_parts(float *dx, float *dW, float *db, size_t part, float *cols, const float *dy,
                              const float *x, const float *W, int B, int C, int H, int Wd, int O, int k, int pad,
                              int relu_x);

/* Direct-loop twins (double accumulation), for tests; no cache. */
void dt_conv2d_forward_naive(float *y, const float *x, const float *W, const float *b, int B, int C, int H,
                             int Wd, int O, int k, int pad);
void dt_conv2d_backward_naive(float *dx, float *dW, float *db, const float *dy, const float *x,
                              const float *W, int B, int C, int H, int Wd, int O, int k, int pad);

/* ---- Winograd F(2x2,3x3) (src/nn/winograd.c) -------------------------------- */

/* 1 where dt_conv2d_forward/backward take the Winograd path: k = 3, pad = 1,
 * H and W even, C >= 8 and O >= 8. */
int dt_conv2d_winograd_fits(int C, int O, int H, int W, int k, int pad);
/* Floats of the workspace (images go one at a time): 16 (C+O) H W / 4 + 32 O C
 * (0 for B = 0). */
size_t dt_conv2d_winograd_size(int B, int C, int O, int H, int W);
/* 3x3, pad 1, H and Wd even (any C, O): y (B,O,H,Wd) = conv(x) + b, then
 * max(., 0) when relu; ws is scratch. Each image's numbers are the same
 * whatever the other images in the call. */
void dt_conv2d_winograd_forward(float *y, float *ws, const float *x, const float *W, const float *b, int B, int C,
                                int H, int Wd, int O, int relu);
/* dW += (NULL: skip), dx overwritten (NULL: skip), times (x > 0) when
 * relu_x; ws is scratch (nothing of the forward's is needed). No bias
 * gradient (dt_conv2d_backward adds it). With part > 0, image i's
 * transformed weight gradient dU_i (16,C,O) is written at dW + i part
 * instead: dt_conv2d_winograd_fold then makes dW of any run of images. */
void dt_conv2d_winograd_backward(float *dx, float *dW, size_t part, float *ws, const float *dy, const float *x,
                                 const float *W, int B, int C, int H, int Wd, int O, int relu_x);
/* dW (O,C,3,3) = the weight gradient of B images from their dU_i at parts +
 * i part, summed in order as dt_conv2d_winograd_backward sums them (dW is
 * set, not added to; dU (16,C,O) is scratch): the bits that backward adds.
 * Only output channels [o0, o1) are summed and written. */
void dt_conv2d_winograd_fold(float *dW, float *dU, const float *parts, size_t part, int B, int C, int O, int o0,
                             int o1);

/* ---- 2x2 max pooling, stride 2 ----------------------------------------------- */

/* x (B,C,H,W), H and W even -> y (B,C,H/2,W/2) = max over each 2x2 window;
 * argmax (B,C,H/2,W/2) = index of the winner inside its (H,W) plane.
 * Ties go to the first maximum in row-major order (top-left, top-right,
 * bottom-left, bottom-right). A NaN wins its window (the first NaN), so a
 * diverging GAN shows NaN downstream instead of having it pooled away. */
void dt_maxpool2_forward(float *y, int32_t *argmax, const float *x, int B, int C, int H, int W);
/* dy (B,C,H/2,W/2) argmax -> dx (B,C,H,W) overwritten: zero except
 * dx[argmax] = dy for each window. */
void dt_maxpool2_backward(float *dx, const float *dy, const int32_t *argmax, int B, int C, int H, int W);
/* ReLU then pooling in one pass: x (B,C,H,W) -> y, argmax of max(x, 0), bit
 * for bit dt_relu_forward then dt_maxpool2_forward (x itself is left as is). */
void dt_relu_maxpool2_forward(float *y, int32_t *argmax, const float *x, int B, int C, int H, int W);
/* Its backward: dy, y, argmax (B,C,H/2,W/2) -> dx (B,C,H,W) overwritten with
 * the gradient w.r.t. x: dx[argmax] = dy where y > 0, 0 elsewhere (bit for
 * bit dt_maxpool2_backward then dt_relu_backward). */
void dt_relu_maxpool2_backward(float *dx, const float *dy, const float *y, const int32_t *argmax, int B, int C, int H,
                               int W);

#endif
