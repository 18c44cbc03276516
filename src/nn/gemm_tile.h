/* The register tiles of dt_gemm_nn and dt_gemm_nt (src/nn/gemm.c), written
 * once and included once per instruction set. The includer defines
 *   ISA        name suffix (avx512, avx2)       TGT   the target attribute
 *   VF         vector type                      VW    its float lanes
 *   MK         column-mask type                 MASK(n) the first n lanes
 *   LD(p, m)   masked load (0 outside m)        ST(p, m, v) masked store
 *   ZERO       zero vector                      SET1(x)   broadcast
 *   FMA(a, b, c)  a * b + c with one rounding     ADD(a, b)  a + b
 *   LV         vectors per 16 lanes (16 / VW)   RED16(v)  v[0..LV) -> float
 *   DR, DC     the dot tile: rows by columns
 * The product tile is up to 6 rows of C by 2 vectors of columns: 12
 * accumulators, each element a chain of fused multiply-adds over k in order
 * from 0 (DT_ACC_SET, DT_ACC_ADD: then added to C) or from C's value
 * (DT_ACC_CHAIN: the chain goes on).
 * The dot tile holds DR x DC elements of C, each as 16 lanes (lane l the
 * chain over k = l, l+16, ...) summed at the end by RED16's fixed tree. */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

/* C[0..mr) x [0..nv VW) (masks m0, m1) of C = A B, C += A B or C's chain
 * continued over A B (acc: DT_ACC_*), each element the chain over
 * k = 0..K-1; nv = 1 or 2 vectors */
static inline __attribute__((always_inline, target(TGT))) void CAT(tile, ISA)(int mr, int nv, float *C, int ldc,
                                                                             const float *A, int lda,
                                                                             const float *B, int ldb, int K,
                                                                             MK m0, MK m1, int acc)
{
    VF c0[6], c1[6];
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++)
        if (r < mr) {
            const float *o = C + (size_t)r * ldc;
            c0[r] = acc == DT_ACC_CHAIN ? LD(o, m0) : ZERO;
            if (nv == 2) c1[r] = acc == DT_ACC_CHAIN ? LD(o + VW, m1) : ZERO;
        }
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        VF b0 = LD(b, m0), b1 = nv == 2 ? LD(b + VW, m1) : ZERO;
#pragma GCC unroll 6
        for (int r = 0; r < 6; r++)
            if (r < mr) {
                VF a = SET1(A[(size_t)r * lda + k]);
                c0[r] = FMA(a, b0, c0[r]);
                if (nv == 2) c1[r] = FMA(a, b1, c1[r]);
            }
    }
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++)
        if (r < mr) {
            float *o = C + (size_t)r * ldc;
            ST(o, m0, acc == DT_ACC_ADD ? ADD(LD(o, m0), c0[r]) : c0[r]);
            if (nv == 2) ST(o + VW, m1, acc == DT_ACC_ADD ? ADD(LD(o + VW, m1), c1[r]) : c1[r]);
        }
}

/* rows i.. of one block of columns, nv vectors wide */
static inline __attribute__((always_inline, target(TGT))) void CAT(rows, ISA)(int nv, float *C, int ldc,
                                                                             const float *A, int lda,
                                                                             const float *B, int ldb, int M, int K,
                                                                             MK m0, MK m1, int acc)
{
    int i = 0;
    for (; i + 6 <= M; i += 6)
        CAT(tile, ISA)(6, nv, C + (size_t)i * ldc, ldc, A + (size_t)i * lda, lda, B, ldb, K, m0, m1, acc);
    float *Ci = C + (size_t)i * ldc;
    const float *Ai = A + (size_t)i * lda;
    switch (M - i) { /* constant row counts, so that each tile keeps its accumulators in registers */
    case 5: CAT(tile, ISA)(5, nv, Ci, ldc, Ai, lda, B, ldb, K, m0, m1, acc); break;
    case 4: CAT(tile, ISA)(4, nv, Ci, ldc, Ai, lda, B, ldb, K, m0, m1, acc); break;
    case 3: CAT(tile, ISA)(3, nv, Ci, ldc, Ai, lda, B, ldb, K, m0, m1, acc); break;
    case 2: CAT(tile, ISA)(2, nv, Ci, ldc, Ai, lda, B, ldb, K, m0, m1, acc); break;
    case 1: CAT(tile, ISA)(1, nv, Ci, ldc, Ai, lda, B, ldb, K, m0, m1, acc); break;
    default: break;
    }
}

static __attribute__((target(TGT))) void CAT(gemm, ISA)(float *C, int ldc, const float *A, int lda, const float *B,
                                                        int ldb, int M, int N, int K, int acc)
{
    for (int j = 0; j < N; j += 2 * VW) {
        int n = N - j < 2 * VW ? N - j : 2 * VW;
        MK m0 = MASK(n < VW ? n : VW), m1 = MASK(n > VW ? n - VW : 0);
        if (n > VW)
            CAT(rows, ISA)(2, C + j, ldc, A, lda, B + j, ldb, M, K, m0, m1, acc);
        else
            CAT(rows, ISA)(1, C + j, ldc, A, lda, B + j, ldb, M, K, m0, m1, acc);
    }
}

/* C[0..dr) x [0..dc) += or = A Bᵀ, B (N,K): DR x DC elements of 16 lanes */
static inline __attribute__((always_inline, target(TGT))) void CAT(dots, ISA)(int dr, int dc, float *C, int ldc,
                                                                             const float *A, int lda,
                                                                             const float *B, int ldb, int K,
                                                                             int acc)
{
    VF s[DR][DC][LV];
#pragma GCC unroll 8
    for (int r = 0; r < DR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < DC; c++)
#pragma GCC unroll 2
            for (int l = 0; l < LV; l++) s[r][c][l] = ZERO;
    for (int k = 0; k < K; k += 16) {
        int n = K - k < 16 ? K - k : 16;
        MK m[LV];
#pragma GCC unroll 2
        for (int l = 0; l < LV; l++) m[l] = MASK(n > l * VW ? (n - l * VW < VW ? n - l * VW : VW) : 0);
        VF a[DR][LV];
#pragma GCC unroll 8
        for (int r = 0; r < DR; r++)
#pragma GCC unroll 2
            for (int l = 0; l < LV; l++)
                if (r < dr) a[r][l] = LD(A + (size_t)r * lda + k + l * VW, m[l]);
#pragma GCC unroll 8
        for (int c = 0; c < DC; c++)
            if (c < dc)
#pragma GCC unroll 2
                for (int l = 0; l < LV; l++) {
                    VF b = LD(B + (size_t)c * ldb + k + l * VW, m[l]);
#pragma GCC unroll 8
                    for (int r = 0; r < DR; r++)
                        if (r < dr) s[r][c][l] = FMA(a[r][l], b, s[r][c][l]);
                }
    }
#pragma GCC unroll 8
    for (int r = 0; r < DR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < DC; c++)
            if (r < dr && c < dc) {
                float v = RED16(s[r][c]), *o = C + (size_t)r * ldc + c;
                *o = acc ? *o + v : v;
            }
}

static __attribute__((target(TGT))) void CAT(gemm_nt, ISA)(float *C, int ldc, const float *A, int lda,
                                                           const float *B, int ldb, int M, int N, int K, int acc)
{
    for (int i = 0; i < M; i += DR)
        for (int j = 0; j < N; j += DC) {
            float *Cij = C + (size_t)i * ldc + j;
            const float *Ai = A + (size_t)i * lda, *Bj = B + (size_t)j * ldb;
            if (i + DR <= M && j + DC <= N)
                CAT(dots, ISA)(DR, DC, Cij, ldc, Ai, lda, Bj, ldb, K, acc);
            else /* an edge: the same arithmetic, element by element */
                for (int r = 0; r < DR && i + r < M; r++)
                    for (int c = 0; c < DC && j + c < N; c++)
                        CAT(dots, ISA)(1, 1, Cij + (size_t)r * ldc + c, ldc, Ai + (size_t)r * lda, lda,
                                       Bj + (size_t)c * ldb, ldb, K, acc);
        }
}

#undef CAT
#undef CAT_
