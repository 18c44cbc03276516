/* Adam in torch.optim.Adam's formula: m and v as there, then
 * w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). The same
 * operations, not always PyTorch's roundings (it updates m with lerp and
 * divides m by the denominator before scaling). */
#include <math.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "dtrain/nn.h"

/* The element loops are built for each instruction set (DT_CLONES, nn.h):
 * the same bits on every path. */

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

#if defined(__x86_64__) && defined(__GNUC__)
#define DT_STREAM_AVX2 1
/* adam_kernel's operations, one by one on 8 lanes (so the same roundings),
 * with the new weights streamed out; w 32-byte aligned, n a multiple of 8 */
__attribute__((target("avx2"))) static void adam_kernel_stream(float *w, float *m, float *v, const float *g, size_t n,
                                                               dt_adam_k k)
{
    const __m256 b1 = _mm256_set1_ps(k.b1), c1 = _mm256_set1_ps(1.0f - k.b1), b2 = _mm256_set1_ps(k.b2),
                 c2 = _mm256_set1_ps(1.0f - k.b2), step = _mm256_set1_ps(k.step), bc2 = _mm256_set1_ps(k.bc2_sqrt),
                 eps = _mm256_set1_ps(k.eps);
    for (size_t i = 0; i < n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
        __m256 wi = _mm256_sub_ps(_mm256_load_ps(w + i), _mm256_div_ps(_mm256_mul_ps(step, mi), den));
        _mm256_stream_ps(w + i, wi);
    }
}
#endif

void dt_adam_update_stream(dt_adam_k k, float *w, float *m, float *v, const float *g, size_t n)
{
#ifdef DT_STREAM_AVX2
    static int avx2 = -1;
    if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2");
    if (avx2) {
        size_t h = ((32 - ((uintptr_t)w & 31)) & 31) / sizeof(float); /* up to a 32-byte boundary */
        if (h > n) h = n;
        size_t body = (n - h) / 8 * 8, t = h + body;
        adam_kernel(w, m, v, g, h, k);
        adam_kernel_stream(w + h, m + h, v + h, g + h, body, k);
        adam_kernel(w + t, m + t, v + t, g + t, n - t, k);
        _mm_sfence(); /* the streamed stores before anything stored after them */
        return;
    }
#endif
    adam_kernel(w, m, v, g, n, k);
}
