/* dt_gemm_nn and dt_gemm_nt: matrix products whose every element is a fixed
 * sequence of operations (include/dtrain/nn.h): for dt_gemm_nn the chain of
 * fused multiply-adds c = fma(a[k], b[k], c), k = 0..K-1, from 0, then
 * C + c when adding (DT_ACC_ADD), or from C's value (DT_ACC_CHAIN: products
 * over consecutive parts of K continue one chain). Its bits therefore depend only on that element's
 * row of A and column of B (and C): not on M, N, the other elements, the
 * tiling, the vector width or the CPU. A BLAS sgemm promises none of that
 * (OpenBLAS splits K and orders its sums by kernel and shape).
 *
 * Three implementations give the same bits: AVX-512 (6 x 32 tiles), AVX2 +
 * FMA (6 x 16) and a scalar loop over fmaf; the fastest the CPU has is used.
 * The products dtrain gives them are small in K (27 to 64, or the 49 to 196
 * tiles of a Winograd weight gradient), where the AVX-512 tile runs 1.6-1.8x
 * faster than OpenBLAS's AVX2 sgemm with its packing. $DTRAIN_GEMM picks a
 * path: avx512, avx2, scalar (each capped by the CPU; the tests run every
 * one), or blas: every product through OpenBLAS's cblas_sgemm, as SPEC.md
 * has it, with OpenBLAS's rounding and threads. */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/nn.h"

#if DT_ASAN
#include <sanitizer/asan_interface.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define DT_GEMM_X86 1

#define ISA avx512
#define TGT "avx512f"
#define VF __m512
#define VW 16
#define MK __mmask16
#define MASK(n) ((__mmask16)((n) >= 16 ? 0xffffu : (1u << (n)) - 1u))
#define LD(p, m) _mm512_maskz_loadu_ps(m, p)
#define ST(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define ZERO _mm512_setzero_ps()
#define SET1(x) _mm512_set1_ps(x)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define ADD(a, b) _mm512_add_ps(a, b)
#define LV 1
#define DR 4
#define DC 4
/* The dot tile's fixed tree over 16 lanes: i + (i+8), then i + (i+4),
 * i + (i+2), 0 + 1. red8 takes it from the first sums, h8[i] = l[i] + l[i+8]. */
__attribute__((target("avx2"))) static inline float red8(__m256 h8)
{
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
}
__attribute__((target("avx512f"))) static inline float red16_avx512(__m512 v)
{
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return red8(_mm256_add_ps(_mm512_castps512_ps256(v), hi));
}
#define RED16(v) red16_avx512((v)[0])
#include "gemm_tile.h"
#undef ISA
#undef TGT
#undef VF
#undef VW
#undef MK
#undef MASK
#undef LD
#undef ST
#undef ZERO
#undef SET1
#undef FMA
#undef ADD
#undef LV
#undef DR
#undef DC
#undef RED16

static const int lanes8[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
#define ISA avx2
#define TGT "avx2,fma"
#define VF __m256
#define VW 8
#define MK __m256i
#define MASK(n) _mm256_loadu_si256((const __m256i *)(lanes8 + 8 - (n)))
#define LD(p, m) _mm256_maskload_ps(p, m)
#define ST(p, m, v) _mm256_maskstore_ps(p, m, v)
#define ZERO _mm256_setzero_ps()
#define SET1(x) _mm256_set1_ps(x)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define ADD(a, b) _mm256_add_ps(a, b)
#define LV 2
#define DR 2
#define DC 2
#define RED16(v) red8(_mm256_add_ps((v)[0], (v)[1]))
#include "gemm_tile.h"
#endif

static void gemm_scalar(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N, int K,
                        int acc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *o = C + (size_t)i * ldc + j, c = acc == DT_ACC_CHAIN ? *o : 0.0f;
            for (int k = 0; k < K; k++) c = fmaf(A[(size_t)i * lda + k], B[(size_t)k * ldb + j], c);
            *o = acc == DT_ACC_ADD ? *o + c : c;
        }
}

/* one element of A Bᵀ as the vector paths sum it: 16 lanes, then the tree */
static float dot16(const float *a, const float *b, int K)
{
    float s[16] = {0};
    for (int k = 0; k < K; k++) s[k % 16] = fmaf(a[k], b[k], s[k % 16]);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) s[i] = s[i] + s[i + w];
    return s[0];
}

static void gemm_nt_scalar(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N, int K,
                           int acc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float v = dot16(A + (size_t)i * lda, B + (size_t)j * ldb, K), *o = C + (size_t)i * ldc + j;
            *o = acc ? *o + v : v;
        }
}

static int g_level = -1; /* DT_GEMM_* */

static int cpu_level(void)
{
#ifdef DT_GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return DT_GEMM_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return DT_GEMM_AVX2;
#endif
    return DT_GEMM_SCALAR;
}

static const char *const g_names[] = {"scalar", "avx2", "avx512", "blas"};

int dt_gemm_set_level(int level)
{
    int have = cpu_level();
    g_level = level == DT_GEMM_BLAS ? level : level < 0 ? 0 : level < have ? level : have;
    return g_level;
}

int dt_gemm_level(void)
{
    if (g_level < 0) {
        const char *want = getenv("DTRAIN_GEMM");
        int level = DT_GEMM_AVX512;
        if (want && *want) {
            int i = 0;
            while (i < 4 && strcmp(want, g_names[i]) != 0) i++;
            if (i < 4)
                level = i;
            else
                dt_warn("DTRAIN_GEMM=%s is not one of scalar, avx2, avx512, blas: using the fastest own kernels",
                        want);
        }
        dt_gemm_set_level(level);
    }
    return g_level;
}

const char *dt_gemm_isa(void)
{
    static const char *const titles[] = {"scalar", "AVX2", "AVX-512", "OpenBLAS"};
    return titles[dt_gemm_level()];
}

/* ---- the checks every call passes ---------------------------------------- */

/* One operand as stored: rows of cols floats, ld apart. */
typedef struct {
    const char *name;
    const float *p;
    int rows, cols, ld;
} operand;

/* floats from the first element to the last one read or written */
static size_t extent(const operand *o) { return (size_t)(o->rows - 1) * (size_t)o->ld + (size_t)o->cols; }

static void check_operand(const char *caller, const char *file, int line, const operand *o)
{
    if (!o->p) dt_fatal_at(file, line, "%s: product operand %s (%d x %d) is NULL", caller, o->name, o->rows, o->cols);
    if (o->ld < o->cols)
        dt_fatal_at(file, line, "%s: product operand %s (%d x %d) has leading dimension %d < %d columns", caller,
                    o->name, o->rows, o->cols, o->ld, o->cols);
#if DT_ASAN
    const char *bad = __asan_region_is_poisoned((void *)(uintptr_t)o->p, extent(o) * sizeof(float));
    if (bad)
        dt_fatal_at(file, line,
                    "%s: product operand %s (%d x %d, leading dimension %d: %zu floats) is not addressable from "
                    "float %zu on (AddressSanitizer)",
                    caller, o->name, o->rows, o->cols, o->ld, extent(o),
                    (size_t)(bad - (const char *)o->p) / sizeof(float));
#endif
}

static int overlap(const operand *a, const operand *b)
{
    uintptr_t a0 = (uintptr_t)a->p, a1 = a0 + extent(a) * sizeof(float);
    uintptr_t b0 = (uintptr_t)b->p, b1 = b0 + extent(b) * sizeof(float);
    return a0 < b1 && b0 < a1;
}

/* B is (K,N), or (N,K) when bt */
static void check(const char *caller, const char *file, int line, int bt, const float *C, int ldc, const float *A,
                  int lda, const float *B, int ldb, int M, int N, int K)
{
    if (M < 1 || N < 1 || K < 1)
        dt_fatal_at(file, line, "%s: product of (%d x %d) by (%d x %d): sizes must be at least 1", caller, M, K, K, N);
    operand op[3] = {
        {"A", A, M, K, lda},
        {"B", B, bt ? N : K, bt ? K : N, ldb},
        {"C", C, M, N, ldc},
    };
    for (int i = 0; i < 3; i++) check_operand(caller, file, line, &op[i]);
    for (int i = 0; i < 2; i++)
        if (overlap(&op[2], &op[i]))
            dt_fatal_at(file, line, "%s: product output C (%d x %d) overlaps operand %s", caller, M, N, op[i].name);
}

/* ---- the entry points ---------------------------------------------------- */

typedef void (*kernel_fn)(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N, int K,
                          int acc);

static int g_threads = 1;

void dt_gemm_set_threads(int n) { g_threads = n < 1 ? 1 : n; }

/* Threads share a large product by blocks of C: by columns (32 at a time)
 * when there are enough, else by rows. Every element is computed as alone,
 * so the bits do not depend on the split or the thread count. Products
 * under 2^20 multiply-adds (each image's convolution) stay on one thread. */
static void run(kernel_fn f, int bt, float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M,
                int N, int K, int acc)
{
    int t = g_threads;
    if (t <= 1 || (double)M * N * K < (double)(1 << 20)) {
        f(C, ldc, A, lda, B, ldb, M, N, K, acc);
        return;
    }
    int by_rows = N < 64 * t, unit = by_rows ? 12 : 32, total = by_rows ? M : N;
    int units = (total + unit - 1) / unit;
    if (units < t) t = units;
#ifdef _OPENMP
#pragma omp parallel for num_threads(t) schedule(static, 1)
#endif
    for (int q = 0; q < t; q++) {
        int a = units * q / t * unit, b = units * (q + 1) / t * unit;
        if (b > total) b = total;
        if (by_rows)
            f(C + (size_t)a * ldc, ldc, A + (size_t)a * lda, lda, B, ldb, b - a, N, K, acc);
        else
            f(C + a, ldc, A, lda, bt ? B + (size_t)a * ldb : B + a, ldb, M, b - a, K, acc);
    }
}

/* the same products through OpenBLAS (DTRAIN_GEMM=blas): its own order of
 * sums and its own threads */
static void blas(int bt, float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N, int K,
                 int acc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, bt ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb,
                acc != DT_ACC_SET ? 1.0f : 0.0f, C, ldc); /* a chain: added, in OpenBLAS's order */
}

/* B is (K,N), or (N,K) when bt: the checks, then the path in use */
static void product(const char *caller, const char *file, int line, int bt, float *C, int ldc, const float *A,
                    int lda, const float *B, int ldb, int M, int N, int K, int acc)
{
    check(caller, file, line, bt, C, ldc, A, lda, B, ldb, M, N, K);
    if (acc < DT_ACC_SET || acc > (bt ? DT_ACC_ADD : DT_ACC_CHAIN))
        dt_fatal_at(file, line, "%s: product mode %d is not one of set, add%s", caller, acc, bt ? "" : ", chain");
    int level = dt_gemm_level();
    if (level == DT_GEMM_BLAS) {
        blas(bt, C, ldc, A, lda, B, ldb, M, N, K, acc);
        return;
    }
    kernel_fn f = bt ? gemm_nt_scalar : gemm_scalar;
#ifdef DT_GEMM_X86
    if (level == DT_GEMM_AVX512) f = bt ? gemm_nt_avx512 : gemm_avx512;
    if (level == DT_GEMM_AVX2) f = bt ? gemm_nt_avx2 : gemm_avx2;
#endif
    run(f, bt, C, ldc, A, lda, B, ldb, M, N, K, acc);
}

void dt_gemm_nn_at(const char *caller, const char *file, int line, float *C, int ldc, const float *A, int lda,
                   const float *B, int ldb, int M, int N, int K, int acc)
{
    product(caller, file, line, 0, C, ldc, A, lda, B, ldb, M, N, K, acc);
}

void dt_gemm_nt_at(const char *caller, const char *file, int line, float *C, int ldc, const float *A, int lda,
                   const float *B, int ldb, int M, int N, int K, int acc)
{
    product(caller, file, line, 1, C, ldc, A, lda, B, ldb, M, N, K, acc);
}
