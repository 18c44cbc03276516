/* 3x3 stride-1 pad-1 convolution by Winograd's minimal filtering F(2x2,3x3)
 * (Lavin & Gray 2016): each 2x2 output tile costs 16 multiplications per
 * (output, input) channel pair instead of 36, all of them in 16 products per
 * image (one per position of the 4x4 transformed tile, over the image's
 * tiles).
 *
 * With d a 4x4 input tile, g a 3x3 filter and e a 2x2 output-gradient tile:
 *   y tile  = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
 *   dg      = Gᵀ [ sum over tiles (A e Aᵀ) ⊙ (Bᵀ d B) ] G
 *   dx      = the forward of dy with the filters rotated 180 degrees and
 *             input and output channels exchanged
 * where
 *   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G  = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   Aᵀ = [1 1 1 0; 0 1 -1 -1]
 * The weight gradient is the forward's own adjoint (F(3x3,2x2) in effect):
 * 16 multiplications per tile and channel pair instead of im2col's 36.
 *
 * Layouts: transformed tiles (16, channels, T), T = (H/2) (W/2) tiles
 * numbered row by row; transformed filters (16, rows, cols) as the product's
 * left operand. The workspace (dt_conv2d_winograd_size) holds
 *   V (16,C,T)   the input tiles; the input gradient's products
 *   M (16,O,T)   the products; the output-gradient tiles (16,T,O); dy's
 *                input tiles
 *   U (16,O,C)   the filters; the weight gradient's sum dU (16,C,O)
 *   U' (16,C,O)  the rotated filters (backward)
 * The filters are transformed once per call (O C 3x3 filters: next to
 * nothing against the B O C T products). */
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "dtrain/conv.h"
#include "dtrain/core.h"

/* The size rule. The products shrink 2.25x, but each tile pays an input
 * transform per input channel (about 32 additions) and an output transform
 * per output channel (about 24), and the 16 products have an inner dimension
 * of C (forward) or O (input gradient). With few channels the transforms cost
 * more than the multiplications saved and the products are too thin to run
 * fast. Forward + backward at B = 64, 28x28, one core (Winograd against
 * im2col): 3->32 7.7 against 4.3 ms, 8->32 8.6 against 9.0, 8->16 4.8
 * against 5.6, 16->8 5.1 against 8.0, 32->8 9.3 against 15.6. So at least 8
 * channels on each side: the CycleGAN's second convolutions (32->40,
 * 32->64) take this path, the first (3->32) and the 1x1 keep im2col. H and W
 * even make the 2x2 tiling exact. */
int dt_conv2d_winograd_fits(int C, int O, int H, int W, int k, int pad)
{
    return k == 3 && pad == 1 && H % 2 == 0 && W % 2 == 0 && C >= 8 && O >= 8;
}

/* x (B,C,H,W) -> V (16,C,T): V[p][c][t] = (Bᵀ d B)[p] with d the 4x4 tile of
 * channel c at rows 2ty-1.., columns 2tx-1.. (0 outside the image).
 * Per plane: each row once along the row (d B, from its even and odd
 * columns), kept by row parity so that each of the 16 outputs is then one
 * contiguous loop over the plane's tiles down the columns (Bᵀ ·). */
DT_CLONES static void input_tiles(float *V, const float *x, int B, int C, int H, int W)
{
    int TH = H / 2, TW = W / 2, n = TH * TW;
    size_t T = (size_t)B * n, HW = (size_t)H * W;
    /* h[j][R % 2][R / 2][tx] for the padded rows R = 0..H+1 (x's rows -1..H) */
    float h[4][2][TH + 1][TW], ev[TW + 1], ov[TW + 1];
    memset(h, 0, sizeof h); /* rows -1 and H stay 0 */
    ev[TW] = 0.0f, ov[0] = 0.0f;
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++) {
            const float *xc = x + ((size_t)i * C + c) * HW;
            for (int r = 0; r < H; r++) {
                const float *row = xc + (size_t)r * W;
                int R = r + 1;
                for (int tx = 0; tx < TW; tx++) ev[tx] = row[2 * tx], ov[tx + 1] = row[2 * tx + 1];
                float *h0 = h[0][R & 1][R >> 1], *h1 = h[1][R & 1][R >> 1];
                float *h2 = h[2][R & 1][R >> 1], *h3 = h[3][R & 1][R >> 1];
                for (int tx = 0; tx < TW; tx++) { /* d = (ov[tx], ev[tx], ov[tx+1], ev[tx+1]) */
                    h0[tx] = ov[tx] - ov[tx + 1];
                    h1[tx] = ev[tx] + ov[tx + 1];
                    h2[tx] = ov[tx + 1] - ev[tx];
                    h3[tx] = ev[tx] - ev[tx + 1];
                }
            }
            size_t t0 = (size_t)i * n;
            for (int j = 0; j < 4; j++) {
                /* tile row ty reads the padded rows 2ty .. 2ty+3 */
                const float *q0 = h[j][0][0], *q1 = h[j][1][0], *q2 = h[j][0][1], *q3 = h[j][1][1];
                float *v0 = V + ((size_t)(0 + j) * C + c) * T + t0, *v1 = V + ((size_t)(4 + j) * C + c) * T + t0;
                float *v2 = V + ((size_t)(8 + j) * C + c) * T + t0, *v3 = V + ((size_t)(12 + j) * C + c) * T + t0;
                for (int t = 0; t < n; t++) {
                    v0[t] = q0[t] - q2[t];
                    v1[t] = q1[t] + q2[t];
                    v2[t] = q2[t] - q1[t];
                    v3[t] = q1[t] - q3[t];
                }
            }
        }
}

/* M (16,O,T) -> y (B,O,H,W): the 2x2 tile Aᵀ m A, plus b[o] (b not NULL),
 * max(., 0) (relu), or kept only where mask > 0 (mask (B,O,H,W), not NULL).
 * Per plane: down the columns over all its tiles, then along the rows into
 * the image, then the bias and the activation over the plane. */
DT_CLONES static void output_tiles(float *y, const float *M, const float *b, int relu, const float *mask, int B,
                                   int O, int H, int W)
{
    int TH = H / 2, TW = W / 2, n = TH * TW, HW = H * W;
    size_t T = (size_t)B * n;
    float s[2][4][n], l[n], rt[n];
    for (int i = 0; i < B; i++)
        for (int o = 0; o < O; o++) {
            float *yo = y + ((size_t)i * O + o) * HW;
            size_t t0 = (size_t)i * n;
            for (int j = 0; j < 4; j++) {
                const float *m0 = M + ((size_t)(0 + j) * O + o) * T + t0;
                const float *m1 = M + ((size_t)(4 + j) * O + o) * T + t0;
                const float *m2 = M + ((size_t)(8 + j) * O + o) * T + t0;
                const float *m3 = M + ((size_t)(12 + j) * O + o) * T + t0;
                for (int t = 0; t < n; t++) {
                    s[0][j][t] = m0[t] + m1[t] + m2[t];
                    s[1][j][t] = m1[t] - m2[t] - m3[t];
                }
            }
            for (int r = 0; r < 2; r++) {
                for (int t = 0; t < n; t++) {
                    l[t] = s[r][0][t] + s[r][1][t] + s[r][2][t];
                    rt[t] = s[r][1][t] - s[r][2][t] - s[r][3][t];
                }
                for (int ty = 0; ty < TH; ty++) {
                    float *row = yo + (size_t)(2 * ty + r) * W;
                    for (int tx = 0; tx < TW; tx++) row[2 * tx] = l[ty * TW + tx], row[2 * tx + 1] = rt[ty * TW + tx];
                }
            }
            if (b) {
                float v = b[o];
                if (relu)
                    for (int p = 0; p < HW; p++) {
                        float t = yo[p] + v;
                        yo[p] = t > 0.0f ? t : 0.0f;
                    }
                else
                    for (int p = 0; p < HW; p++) yo[p] += v;
            } else if (relu) {
                for (int p = 0; p < HW; p++) yo[p] = yo[p] > 0.0f ? yo[p] : 0.0f;
            }
            if (mask) {
                const float *mo = mask + ((size_t)i * O + o) * HW;
                for (int p = 0; p < HW; p++) yo[p] = mo[p] > 0.0f ? yo[p] : 0.0f;
            }
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define DT_TILES_AVX512 1

/* gradient_tiles' inner loop over the channels, 16 at a time: each of the 4
 * values of a channel's 2x2 tile gathered from its plane (HW apart), the 16
 * outputs stored as runs of channels. The same additions as the scalar loop. */
__attribute__((target("avx512f"))) static void gradient_tile_avx512(float *e, const float *d, int O, int W,
                                                                      size_t HW, size_t PT)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int o = 0; o < O; o += 16) {
        __mmask16 m = (__mmask16)(O - o >= 16 ? 0xffffu : (1u << (O - o)) - 1u);
        __m512i at = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(o)), _mm512_set1_epi32((int)HW));
        __m512 z = _mm512_setzero_ps();
        __m512 p = _mm512_mask_i32gather_ps(z, m, at, d, 4), q = _mm512_mask_i32gather_ps(z, m, at, d + 1, 4);
        __m512 P = _mm512_mask_i32gather_ps(z, m, at, d + W, 4), Q = _mm512_mask_i32gather_ps(z, m, at, d + W + 1, 4);
        /* -v flips the sign bit, as the scalar loop's negation (0 - v would turn -0 into +0) */
        const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
#define NEG(v) _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign))
        __m512 u[4] = {p, _mm512_add_ps(p, q), _mm512_sub_ps(p, q), NEG(q)};
        __m512 w[4] = {P, _mm512_add_ps(P, Q), _mm512_sub_ps(P, Q), NEG(Q)};
        for (int j = 0; j < 4; j++) {
            _mm512_mask_storeu_ps(e + (size_t)j * PT + o, m, u[j]);
            _mm512_mask_storeu_ps(e + (size_t)(4 + j) * PT + o, m, _mm512_add_ps(u[j], w[j]));
            _mm512_mask_storeu_ps(e + (size_t)(8 + j) * PT + o, m, _mm512_sub_ps(u[j], w[j]));
            _mm512_mask_storeu_ps(e + (size_t)(12 + j) * PT + o, m, NEG(w[j]));
        }
#undef NEG
    }
}

/* whether the CPU has AVX-512 and the products use it (dt_gemm_level:
 * DTRAIN_GEMM=avx2 or =scalar turn this off too) */
static int tiles_avx512(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") != 0;
    }
    int level = dt_gemm_level();
    return have && (level == DT_GEMM_AVX512 || level == DT_GEMM_BLAS);
}
#endif

/* dy (B,O,H,W) -> E (16,T,O): E[p][t][o] = (A e Aᵀ)[p] with e the 2x2 tile of
 * dy at rows 2ty, columns 2tx. Tiles by rows, so that the weight gradient is
 * a plain product (V · E): tile by tile, all channels of one tile together
 * (each of the 16 outputs a contiguous run of O floats; a tile row's reads,
 * 2 rows of every channel, stay in cache). */
DT_CLONES static void gradient_tiles(float *E, const float *dy, int B, int O, int H, int W)
{
    int TH = H / 2, TW = W / 2, n = TH * TW;
    size_t T = (size_t)B * n, HW = (size_t)H * W, PT = T * (size_t)O;
#ifdef DT_TILES_AVX512
    int wide = tiles_avx512();
#endif
    for (int i = 0; i < B; i++)
        for (int ty = 0; ty < TH; ty++)
            for (int tx = 0; tx < TW; tx++) {
                const float *d = dy + (size_t)i * O * HW + (size_t)(2 * ty) * W + 2 * tx;
                float *e = E + ((size_t)i * n + (size_t)ty * TW + tx) * O;
#ifdef DT_TILES_AVX512
                if (wide) {
                    gradient_tile_avx512(e, d, O, W, HW, PT);
                    continue;
                }
#endif
                for (int o = 0; o < O; o++, d += HW) {
                    /* along the rows: u (row 2ty), w (row 2ty+1), each (p, p+q, p-q, -q) */
                    float p = d[0], q = d[1], P = d[W], Q = d[W + 1];
                    float u[4] = {p, p + q, p - q, -q}, w[4] = {P, P + Q, P - Q, -Q};
                    for (int j = 0; j < 4; j++) {
                        e[(size_t)j * PT + o] = u[j];
                        e[(size_t)(4 + j) * PT + o] = u[j] + w[j];
                        e[(size_t)(8 + j) * PT + o] = u[j] - w[j];
                        e[(size_t)(12 + j) * PT + o] = -w[j];
                    }
                }
            }
}

/* W (O,C,3,3) -> U (16,O,C) = G g Gᵀ of each filter; rot: U (16,C,O) of
 * each filter turned 180 degrees (the input gradient's filters) */
static void filter_tiles(float *U, const float *W, int C, int O, int rot)
{
    size_t OC = (size_t)O * C;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            const float *w = W + ((size_t)o * C + c) * 9;
            float g[9], a[4][3];
            for (int k = 0; k < 9; k++) g[k] = rot ? w[8 - k] : w[k];
            for (int j = 0; j < 3; j++) { /* G g */
                a[0][j] = g[j];
                a[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                a[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                a[3][j] = g[6 + j];
            }
            size_t at = rot ? (size_t)c * O + o : (size_t)o * C + c;
            for (int p = 0; p < 4; p++) { /* (G g) Gᵀ */
                float u[4] = {a[p][0], 0.5f * (a[p][0] + a[p][1] + a[p][2]), 0.5f * (a[p][0] - a[p][1] + a[p][2]),
                              a[p][2]};
                for (int q = 0; q < 4; q++) U[(size_t)(4 * p + q) * OC + at] = u[q];
            }
        }
}

/* dU (16,C,O) -> dW (O,C,3,3) += Gᵀ dU G (set: =), output channels [o0, o1) */
static void filter_gradient(float *dW, const float *dU, int C, int O, int o0, int o1, int set)
{
    size_t OC = (size_t)O * C;
    for (int o = o0; o < o1; o++)
        for (int c = 0; c < C; c++) {
            float X[16], a[3][4];
            for (int p = 0; p < 16; p++) X[p] = dU[(size_t)p * OC + (size_t)c * O + o];
            for (int q = 0; q < 4; q++) { /* Gᵀ X */
                a[0][q] = X[q] + 0.5f * (X[4 + q] + X[8 + q]);
                a[1][q] = 0.5f * (X[4 + q] - X[8 + q]);
                a[2][q] = 0.5f * (X[4 + q] + X[8 + q]) + X[12 + q];
            }
            float *w = dW + ((size_t)o * C + c) * 9, t[9];
            for (int k = 0; k < 3; k++) { /* (Gᵀ X) G */
                t[3 * k + 0] = a[k][0] + 0.5f * (a[k][1] + a[k][2]);
                t[3 * k + 1] = 0.5f * (a[k][1] - a[k][2]);
                t[3 * k + 2] = 0.5f * (a[k][1] + a[k][2]) + a[k][3];
            }
            for (int j = 0; j < 9; j++) w[j] = set ? t[j] : w[j] + t[j];
        }
}

/* out (16,R,T) = U (16,R,K) · V (16,K,T), one product per position */
static void products(float *out, const float *U, const float *V, int R, int K, size_t T)
{
    for (int p = 0; p < 16; p++)
        dt_gemm_nn(out + (size_t)p * R * T, (int)T, U + (size_t)p * R * K, K, V + (size_t)p * K * T, (int)T, R, (int)T,
                   K, 0);
}

size_t dt_conv2d_winograd_size(int B, int C, int O, int H, int W)
{
    size_t tiles = (size_t)(H / 2) * (size_t)(W / 2);
    return B < 1 ? 0 : 16 * ((size_t)C + (size_t)O) * tiles + 32 * (size_t)O * (size_t)C;
}

/* One image at a time: its tiles (16 (C+O) floats each, under 1 MiB for the
 * CycleGAN's layers) are transformed, multiplied and transformed back while
 * in cache; the whole batch's tiles at once went through memory and ran
 * 1.8x slower. Several images per product would be about 3% faster for the
 * discriminator's layer, but OpenBLAS's sums for one column then depend on
 * how many columns there are, so an image's numbers would depend on the
 * others in the call. */
void dt_conv2d_winograd_forward(float *y, float *ws, const float *x, const float *W, const float *b, int B, int C,
                                int H, int Wd, int O, int relu)
{
    DT_ASSERT(H % 2 == 0 && Wd % 2 == 0);
    size_t HW = (size_t)H * Wd, T = HW / 4;
    float *V = ws, *M = ws + 16 * (size_t)C * T, *U = M + 16 * (size_t)O * T;
    filter_tiles(U, W, C, O, 0);
    for (int i = 0; i < B; i++) {
        input_tiles(V, x + (size_t)i * C * HW, 1, C, H, Wd);
        products(M, U, V, O, C, T);
        output_tiles(y + (size_t)i * O * HW, M, b, relu, NULL, 1, O, H, Wd);
    }
}

void dt_conv2d_winograd_fold(float *dW, float *dU, const float *parts, size_t part, int B, int C, int O, int o0,
                             int o1)
{
    size_t rows = (size_t)16 * C; /* rows of O: (p, c) */
    for (int i = 0; i < B; i++) {
        const float *u = parts + (size_t)i * part;
        for (size_t r = 0; r < rows; r++) {
            const float *s = u + r * (size_t)O;
            float *d = dU + r * (size_t)O;
            for (int o = o0; o < o1; o++) d[o] = i == 0 ? s[o] : d[o] + s[o];
        }
    }
    if (B > 0) filter_gradient(dW, dU, C, O, o0, o1, 1);
}

/* The weight gradient recomputes each image's input tiles (cheaper than
 * keeping the batch's from the forward, out of cache) and sums over the
 * images in order, in dU (16,C,O), transformed back once; with part, each
 * image's dU is left at dW + i part instead. */
void dt_conv2d_winograd_backward(float *dx, float *dW, size_t part, float *ws, const float *dy, const float *x,
                                 const float *W, int B, int C, int H, int Wd, int O, int relu_x)
{
    DT_ASSERT(H % 2 == 0 && Wd % 2 == 0);
    size_t HW = (size_t)H * Wd, T = HW / 4;
    float *V = ws, *E = ws + 16 * (size_t)C * T, *dU = E + 16 * (size_t)O * T, *U = dU + 16 * (size_t)O * C;
    if (dx) filter_tiles(U, W, C, O, 1);
    for (int i = 0; i < B; i++) {
        const float *dyi = dy + (size_t)i * O * HW, *xi = x + (size_t)i * C * HW;
        if (dW) {
            float *u = part ? dW + (size_t)i * part : dU;
            input_tiles(V, xi, 1, C, H, Wd);
            gradient_tiles(E, dyi, 1, O, H, Wd);
            for (int p = 0; p < 16; p++) /* dU[p] (C,O) += V[p] (C,T) · E[p] (T,O) */
                dt_gemm_nn(u + (size_t)p * O * C, O, V + (size_t)p * C * T, (int)T, E + (size_t)p * O * T, O, C, O,
                           (int)T, i > 0 && !part ? DT_ACC_ADD : DT_ACC_SET);
        }
        if (!dx) continue;
        input_tiles(E, dyi, 1, O, H, Wd);
        products(V, U, E, C, O, T);
        output_tiles(dx + (size_t)i * C * HW, V, NULL, 0, relu_x ? xi : NULL, 1, C, H, Wd);
    }
    if (dW && B > 0 && !part) filter_gradient(dW, dU, C, O, 0, O, 0);
}
