/* nn: parameter blocks, layers, losses and Adam.
 *
 * Conventions (STYLE.md): outputs first, then inputs, then sizes; a shape
 * comment above each kernel; backward *accumulates* (+=) into parameter
 * gradients and *overwrites* input gradients unless said otherwise.
 * Activations are batch-major: x (B,in). Weights are (out,in) as in PyTorch. */
#ifndef DTRAIN_NN_H
#define DTRAIN_NN_H

#include <stddef.h>
#include <stdint.h>

/* Element loops built for AVX2 and for baseline x86-64, chosen when the
 * program starts by the CPU it runs on (GCC's target_clones). The copies do
 * the same IEEE operations in the same order (no contraction into FMA: the
 * Makefile sets -ffp-contract=off), so every copy gives the same bits.
 * (AVX-512 copies of the convolution's loops, short rows of 14 or 28 floats,
 * ran the CycleGAN step 5 % slower; the AVX2 ones about 1.5 % faster.) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DT_CLONES
#endif

/* ---- parameter blocks (one per network) ------------------------------------ */

#define DT_MAX_VIEWS 32
#define DT_NAME_LEN 48

typedef struct {
    char name[DT_NAME_LEN]; /* e.g. "enc.fc1.weight" */
    size_t off, n;
    int ndim;
    int dims[4];
} dt_view;

/* One network's parameters, gradients and Adam moments, each one contiguous
 * block of the same layout. Views name the tensors inside. */
typedef struct {
    char name[DT_NAME_LEN]; /* network name, e.g. "encoder" */
    size_t n;
    float *w, *g, *m, *v;
    int nviews;
    dt_view views[DT_MAX_VIEWS];
} dt_params;

void dt_params_init(dt_params *p, const char *name);
/* Reserve a tensor (before dt_params_alloc); returns its offset. */
size_t dt_params_add(dt_params *p, const char *name, int ndim, const int *dims);
/* Allocate the four blocks (zeroed). */
void dt_params_alloc(dt_params *p);
void dt_params_free(dt_params *p);
void dt_params_zero_grad(dt_params *p);
const dt_view *dt_params_find(const dt_params *p, const char *name);

/* ---- checked matrix product ----------------------------------------------- */

/* Every product in dtrain is one of two (src/nn/gemm.c), row-major with
 * leading dimensions; acc DT_ACC_SET (0) overwrites C, DT_ACC_ADD (1) adds
 * the product to it, DT_ACC_CHAIN (dt_gemm_nn only) continues each element's
 * chain from C's value, so that products over consecutive parts of K (a
 * batch split over ranks) give the bits of one product over all of K:
 *   dt_gemm_nn  C (M,N) (+)= A (M,K) · B (K,N)
 *   dt_gemm_nt  C (M,N) (+)= A (M,K) · Bᵀ, B (N,K): sums along rows, as in a
 *               layer's x Wᵀ or a weight gradient over pixels
 * Fixed arithmetic (dtrain's own kernels, the default): a dt_gemm_nn element
 * is the chain of fused multiply-adds over k = 0..K-1 in order, from 0; a
 * dt_gemm_nt element is 16 such chains (chain l over k = l, l+16, ...) added
 * by a fixed tree; with acc the result is then added to C, as BLAS's
 * beta = 1 does. So each element's bits depend on its own row of A and
 * column of B (and C) only: not on M, N, the blocking, the threads, the
 * vector width (AVX-512, AVX2 + FMA and a scalar fmaf loop agree bit for
 * bit) or the CPU. DTRAIN_GEMM=blas hands every product to cblas_sgemm
 * instead, with none of these promises.
 * Each call is checked against the shapes it is given, in every build: M, N,
 * K >= 1, operands not NULL, each leading dimension at least its stored
 * row's length, C not overlapping A or B; in AddressSanitizer builds (make
 * SANITIZE=1) also each operand's whole extent, (rows - 1) * ld + row length
 * floats, is addressable (neither vector loads nor OpenBLAS are
 * instrumented). A failed check is an internal fault: DT_FATAL naming the
 * calling function, the operand and its shape. */
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define DT_ASAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define DT_ASAN 1
#endif
#endif
#ifndef DT_ASAN
#define DT_ASAN 0 /* 1 in AddressSanitizer builds */
#endif
enum { DT_ACC_SET, DT_ACC_ADD, DT_ACC_CHAIN };
void dt_gemm_nn_at(const char *caller, const char *file, int line, float *C, int ldc, const float *A, int lda,
                   const float *B, int ldb, int M, int N, int K, int acc);
void dt_gemm_nt_at(const char *caller, const char *file, int line, float *C, int ldc, const float *A, int lda,
                   const float *B, int ldb, int M, int N, int K, int acc);
#define dt_gemm_nn(...) dt_gemm_nn_at(__func__, __FILE__, __LINE__, __VA_ARGS__)
#define dt_gemm_nt(...) dt_gemm_nt_at(__func__, __FILE__, __LINE__, __VA_ARGS__)
/* The path in use: the own kernels (the same bits on each) or OpenBLAS;
 * $DTRAIN_GEMM = avx512 (default), avx2, scalar or blas chooses, the first
 * three capped by what the CPU has. dt_gemm_isa names it. */
enum { DT_GEMM_SCALAR, DT_GEMM_AVX2, DT_GEMM_AVX512, DT_GEMM_BLAS };
int dt_gemm_level(void);
const char *dt_gemm_isa(void);
/* Use path level (own kernels: the best the CPU has up to it); returns the
 * one taken. */
int dt_gemm_set_level(int level);
/* Threads for large products (OpenMP; 1 by default): the bits stay the same. */
void dt_gemm_set_threads(int n);

/* ---- linear ------------------------------------------------------------- */

typedef struct {
    int in, out;
    size_t w_off, b_off;
    float *w, *b, *dw, *db; /* views into the block, set by dt_linear_bind */
} dt_linear;

/* Reserve W (out,in) and b (out) named "<name>.weight" / "<name>.bias". */
void dt_linear_declare(dt_linear *l, dt_params *p, const char *name, int in, int out);
void dt_linear_bind(dt_linear *l, dt_params *p);
/* PyTorch's default: W, b ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from
 * (seed, DT_RNG_INIT, a = view key, b = element). */
void dt_linear_init(dt_linear *l, uint64_t seed, uint64_t key);

/* x (B,in) W (out,in) b (out) -> y (B,out) */
void dt_linear_forward(float *y, const float *x, const float *W, const float *b, int B, int in, int out);
/* The same with l's weights and widths: y (B, l->out) from x (B, l->in) */
static inline void dt_linear_apply(const dt_linear *l, float *y, const float *x, int B)
{
    dt_linear_forward(y, x, l->w, l->b, B, l->in, l->out);
}
/* dy (B,out) x (B,in) W (out,in) -> dx (B,in) overwritten (NULL: skip), dW += , db += */
void dt_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                        const float *W, int B, int in, int out);
/* The same with dW = and db = (B = 0 gives zeros): for networks whose every
 * layer's backward runs once per step (dt_optim.g_written, step.h). */
void dt_linear_backward_write(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int B,
                              int in, int out);
/* dy (B,out) W (out,in) -> dx (B,in) overwritten: the input gradient alone */
void dt_linear_backward_input(float *dx, const float *dy, const float *W, int B, int in, int out);
/* A block of the parameter gradients, rows [r0, r1) and columns [c0, c1):
 * dW (r1-r0, c1-c0) and db (r1-r0; NULL: skip) from dy (B,out) and x (B,in),
 * acc as dt_gemm_nn's: DT_ACC_SET (=), DT_ACC_ADD (+=; each row's db summed
 * over the batch first, then added) or DT_ACC_CHAIN (dW's chains and db's
 * sums go on from their values). Blocks of consecutive parts of a batch,
 * the first SET and the others CHAIN, give the bits of the whole batch's
 * gradient (dt_linear_backward_write), however the batch is cut. */
void dt_linear_grad_block(float *dW, float *db, const float *dy, const float *x, int B, int in, int out, int r0,
                          int r1, int c0, int c1, int acc);
/* Plain-loop twins, for tests. */
void dt_linear_forward_naive(float *y, const float *x, const float *W, const float *b, int B, int in,
                             int out);
void dt_linear_backward_naive(float *dx, float *dW, float *db, const float *dy, const float *x,
                              const float *W, int B, int in, int out);

/* ---- activations ---------------------------------------------------------- */

/* y = max(x, 0); in place allowed */
void dt_relu_forward(float *y, const float *x, size_t n);
/* dx = dy * (y > 0); in place (dx == dy) allowed */
void dt_relu_backward(float *dx, const float *dy, const float *y, size_t n);
/* y = 1 / (1 + exp(-x)) */
void dt_sigmoid_forward(float *y, const float *x, size_t n);

/* What backward tells whoever takes the optimizer step (step.h:
 * dt_step_hooks), layer by layer, without knowing it. A NULL hooks pointer:
 * nobody listens, and backward writes every parameter gradient. */
typedef struct {
    void *ctx;
    int grads;                             /* 1: backward writes the parameter gradients */
    void (*rows)(void *ctx, int rows);     /* this rank's batch rows, before backward */
    void (*done)(void *ctx, size_t from);  /* the block's layers from offset `from` on are done */
} dt_backward_hooks;

/* ---- losses (sums; the caller scales) ------------------------------------ */

/* BCE of sigmoid(logits) against targets t in [0,1], fused and stable:
 *   l(x, t) = max(x,0) - x t + log(1 + exp(-|x|))
 * logits, t (B,n) -> per-sample sums in per (B) (NULL: skip); returns the total. */
double dt_bce_logits_forward(double *per, const float *logits, const float *t, int B, int n);
/* dlogits = scale * (sigmoid(logits) - t), overwritten; (B*n) elements */
void dt_bce_logits_backward(float *dlogits, const float *logits, const float *t, size_t n, float scale);
/* The same against one label t for all n logits z: returns the sum, and
 * (dz not NULL) dz = scale * (sigmoid(z) - t). */
double dt_bce_label(float *dz, const float *z, size_t n, float t, float scale);
/* sum |y - x| over n elements; d = scale * sign(y - x) (0 where equal) */
double dt_l1(float *d, const float *y, const float *x, size_t n, float scale);

/* KL(N(mu, exp(logvar)) || N(0, I)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar))
 * mu, logvar (B,d) -> per-sample in per (B) (NULL: skip); returns the total. */
double dt_kl_gauss_forward(double *per, const float *mu, const float *logvar, int B, int d);
/* dmu += scale * mu; dlogvar += scale * (exp(logvar) - 1) / 2 */
void dt_kl_gauss_backward(float *dmu, float *dlogvar, const float *mu, const float *logvar, size_t n,
                          float scale);

/* z = mu + exp(logvar / 2) * eps;  all (B,d) */
void dt_reparam_forward(float *z, const float *mu, const float *logvar, const float *eps, size_t n);
/* dmu += dz; dlogvar += dz * eps * exp(logvar / 2) / 2 */
void dt_reparam_backward(float *dmu, float *dlogvar, const float *dz, const float *logvar,
                         const float *eps, size_t n);

/* ---- categorical latents (Gumbel-softmax) ---------------------------------- */

/* Gumbel noise g = -log(-log(u)) from uniforms u in [0,1) (u = 0 is nudged). */
void dt_gumbel_noise(float *g, const float *u, size_t n);
/* Row-wise over (B*N) rows of K:  y = softmax((logits + g) / tau) */
void dt_gumbel_softmax_forward(float *y, const float *logits, const float *g, int rows, int K, float tau);
/* dlogits = (1/tau) * y * (dy - sum_k y dy), overwritten; rows of K */
void dt_gumbel_softmax_backward(float *dlogits, const float *dy, const float *y, int rows, int K, float tau);
/* z = one-hot(argmax y) per row (the straight-through forward; backward uses y) */
void dt_onehot_argmax(float *z, const float *y, int rows, int K);
/* q = softmax(logits) per row; KL(q || uniform) = sum_k q log(q K + 1e-20),
 * summed over the N rows of each sample -> per (B) (NULL: skip); returns the total. */
double dt_cat_kl_forward(double *per, float *q, const float *logits, int B, int N, int K);
/* dlogits += scale * d KL / d logits  (through q = softmax(logits)) */
void dt_cat_kl_backward(float *dlogits, const float *q, int rows, int K, float scale);

/* ---- Adam (PyTorch semantics) --------------------------------------------- */

typedef struct {
    float lr, beta1, beta2, eps;
    int64_t t; /* steps taken */
} dt_adam;

void dt_adam_default(dt_adam *a, float lr); /* betas (0.9, 0.999), eps 1e-8 */
/* One step over a whole block: t += 1, then for every i
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
void dt_adam_step(dt_adam *a, dt_params *p);
/* The same step on elements [lo, hi) only (a sharded optimizer: each rank
 * updates its block, then the blocks are gathered). Also zeroes g there. */
void dt_adam_step_range(dt_adam *a, dt_params *p, size_t lo, size_t hi);
/* A step in parts: dt_adam_next advances t once and gives the step's
 * constants; dt_adam_update then applies them to n elements of any
 * weights w, moments m, v and gradient g (read only), as many times as the
 * step has parts. Bit for bit what dt_adam_step does to the same elements. */
typedef struct {
    float b1, b2, eps, step, bc2_sqrt;
} dt_adam_k;
dt_adam_k dt_adam_next(dt_adam *a);
void dt_adam_update(dt_adam_k k, float *w, float *m, float *v, const float *g, size_t n);
/* The same bits, the weights written with non-temporal stores (past the
 * caches; on CPUs with AVX2, elsewhere it is dt_adam_update), made visible
 * before it returns. Faster where another core holds the weights' lines. */
void dt_adam_update_stream(dt_adam_k k, float *w, float *m, float *v, const float *g, size_t n);

#endif
