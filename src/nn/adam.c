/* Adam with PyTorch's arithmetic (torch.optim.Adam, foreach=False). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "dtrain/nn.h"

/* The element loops are built twice, for baseline x86-64 and for AVX2
 * (chosen when the program starts, by the CPU it runs on). Both do the same
 * IEEE operations in the same order (no contraction into FMA: the Makefile
 * sets -ffp-contract=off), so results are bit-identical on either path. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DT_CLONES
#endif

dt_adam_k dt_adam_next(dt_adam *a)
{
    a->t++;
    dt_adam_k k = {a->beta1, a->beta2, a->eps, 0, 0};
    const float bc1 = 1.0f - (float)pow(k.b1, (double)a->t);
    k.bc2_sqrt = sqrtf(1.0f - (float)pow(k.b2, (double)a->t));
    k.step = a->lr / bc1;
    return k;
}

/* one pass over n elements of the four blocks; g is read only */
DT_CLONES static void adam_kernel(float *restrict w, float *restrict m, float *restrict v, const float *restrict g,
                                  size_t n, dt_adam_k k)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = k.b1 * m[i] + (1.0f - k.b1) * gi;
        v[i] = k.b2 * v[i] + (1.0f - k.b2) * gi * gi;
        w[i] -= k.step * m[i] / (sqrtf(v[i]) / k.bc2_sqrt + k.eps);
    }
}

DT_CLONES static void zero(float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.0f;
}

void dt_adam_default(dt_adam *a, float lr)
{
    a->lr = lr;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->t = 0;
}

void dt_adam_step(dt_adam *a, dt_params *p) { dt_adam_step_range(a, p, 0, p->n); }

/* Blocks small enough that each one's g, w, m, v stay in L1 between the passes. */
#define ADAM_BLOCK 1024

void dt_adam_step_range(dt_adam *a, dt_params *p, size_t lo, size_t hi)
{
    dt_adam_k k = dt_adam_next(a);
    /* block by block: update, then clear the gradient while it is in cache,
     * so the next step needs no separate zeroing pass */
    for (size_t i = lo; i < hi; i += ADAM_BLOCK) {
        size_t n = hi - i < ADAM_BLOCK ? hi - i : ADAM_BLOCK;
        adam_kernel(p->w + i, p->m + i, p->v + i, p->g + i, n, k);
        zero(p->g + i, n);
    }
}

void dt_adam_update(dt_adam_k k, float *w, float *m, float *v, const float *g, size_t n)
{
    adam_kernel(w, m, v, g, n, k);
}

void dt_adam_update_stream(dt_adam_k k, float *w, float *m, float *v, const float *g, size_t n)
{
#if defined(__x86_64__)
    /* the same kernel on a copy in L1, whose 16-byte pieces then go out with
     * non-temporal stores (SSE, part of every x86-64) */
    float buf[256] __attribute__((aligned(64)));
    size_t i = ((16 - ((uintptr_t)w & 15)) & 15) / sizeof(float); /* up to the first 16-byte boundary */
    if (i > n) i = n;
    adam_kernel(w, m, v, g, i, k);
    for (; i + 256 <= n; i += 256) {
        memcpy(buf, w + i, sizeof buf);
        adam_kernel(buf, m + i, v + i, g + i, 256, k);
        for (size_t j = 0; j < 256; j += 4) _mm_stream_ps(w + i + j, _mm_load_ps(buf + j));
    }
    adam_kernel(w + i, m + i, v + i, g + i, n - i, k);
    _mm_sfence(); /* the streamed stores before anything stored after them */
#else
    adam_kernel(w, m, v, g, n, k);
#endif
}
