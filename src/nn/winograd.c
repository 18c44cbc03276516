/* 3x3 stride-1 pad-1 convolution by Winograd's minimal filtering F(2x2,3x3)
 * (Lavin & Gray 2016): each 2x2 output tile costs 16 multiplications per
 * (output, input) channel pair instead of 36, with every multiplication in
 * one of 16 sgemms (one per position of the 4x4 transformed tile) over all
 * the tiles of the call's images.
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
 * The weight gradient is the forward's own adjoint, so it reuses the
 * transformed input tiles the forward left in the workspace.
 *
 * Layouts: transformed tiles (16, channels, T) with T = B (H/2) (W/2) tiles
 * numbered image by image, row by row; transformed filters (16, rows, cols)
 * as the sgemm's left operand. The workspace holds, in order,
 *   [0, 16 C T)               the input tiles V (kept for the weight gradient)
 *   [16 C T, 16 (C+O) T)      the products M, then the output-gradient tiles
 *   [16 (C+O) T, + 16 O C)    the transformed filters, then their gradient
 * and the input gradient reuses it as M' (16 C T), dy's tiles (16 O T) and
 * the rotated filters (16 C O). Every image's numbers go through the same
 * operations whatever the other images in the call. */
#include <string.h>

#include "dtrain/conv.h"
#include "dtrain/core.h"

/* The size rule. The products shrink 2.25x but each tile pays an input
 * transform per input channel (about 32 additions) and an output transform per
 * output channel (about 24), at memory speed, and the 16 products have an inner
 * dimension of C (forward) or O (input gradient): with C = 3 (the first
 * layers) the sgemms are too thin to run fast and the transforms cost as much
 * as the multiplications saved, so only layers with at least 16 channels on
 * each side take this path. H and W even make the 2x2 tiling exact. */
int dt_conv2d_winograd_fits(int C, int O, int H, int W, int k, int pad)
{
    return k == 3 && pad == 1 && H % 2 == 0 && W % 2 == 0 && C >= 16 && O >= 16;
}

size_t dt_conv2d_winograd_size(int B, int C, int O, int H, int W)
{
    size_t T = (size_t)B * (size_t)(H / 2) * (size_t)(W / 2);
    return 16 * ((size_t)C + (size_t)O) * T + 16 * (size_t)O * (size_t)C;
}

/* x (B,C,H,W) -> V (16,C,T): V[p][c][t] = (Bᵀ d B)[p] with d the 4x4 tile of
 * channel c at rows 2ty-1.., columns 2tx-1.. (0 outside the image). Each row
 * is first copied with a zero on both sides, then transformed along the row
 * (d B) for the whole tile row, then down the columns (Bᵀ ·). */
static void input_tiles(float *V, const float *x, int B, int C, int H, int W)
{
    int TH = H / 2, TW = W / 2;
    size_t T = (size_t)B * TH * TW, HW = (size_t)H * W;
    float pr[W + 2], h[4][4][TW];
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++) {
            const float *xc = x + ((size_t)i * C + c) * HW;
            for (int ty = 0; ty < TH; ty++) {
                for (int q = 0; q < 4; q++) {
                    int r = 2 * ty - 1 + q;
                    memset(pr, 0, sizeof pr);
                    if (r >= 0 && r < H) memcpy(pr + 1, xc + (size_t)r * W, (size_t)W * sizeof(float));
                    for (int tx = 0; tx < TW; tx++) {
                        const float *d = pr + 2 * tx;
                        h[q][0][tx] = d[0] - d[2];
                        h[q][1][tx] = d[1] + d[2];
                        h[q][2][tx] = d[2] - d[1];
                        h[q][3][tx] = d[1] - d[3];
                    }
                }
                size_t t0 = ((size_t)i * TH + ty) * TW;
                for (int j = 0; j < 4; j++) {
                    float *v0 = V + ((size_t)(0 + j) * C + c) * T + t0, *v1 = V + ((size_t)(4 + j) * C + c) * T + t0;
                    float *v2 = V + ((size_t)(8 + j) * C + c) * T + t0, *v3 = V + ((size_t)(12 + j) * C + c) * T + t0;
                    for (int tx = 0; tx < TW; tx++) {
                        v0[tx] = h[0][j][tx] - h[2][j][tx];
                        v1[tx] = h[1][j][tx] + h[2][j][tx];
                        v2[tx] = h[2][j][tx] - h[1][j][tx];
                        v3[tx] = h[1][j][tx] - h[3][j][tx];
                    }
                }
            }
        }
}

/* M (16,O,T) -> y (B,O,H,W): the 2x2 tile Aᵀ m A, plus b[o] (b not NULL),
 * max(., 0) (relu), or kept only where mask > 0 (mask (B,O,H,W), not NULL) */
static void output_tiles(float *y, const float *M, const float *b, int relu, const float *mask, int B, int O, int H,
                         int W)
{
    int TH = H / 2, TW = W / 2;
    size_t T = (size_t)B * TH * TW, HW = (size_t)H * W;
    float s[2][4][TW];
    for (int i = 0; i < B; i++)
        for (int o = 0; o < O; o++) {
            float *yo = y + ((size_t)i * O + o) * HW, bias = b ? b[o] : 0.0f;
            const float *mo = mask ? mask + ((size_t)i * O + o) * HW : NULL;
            for (int ty = 0; ty < TH; ty++) {
                size_t t0 = ((size_t)i * TH + ty) * TW;
                for (int j = 0; j < 4; j++) {
                    const float *m0 = M + ((size_t)(0 + j) * O + o) * T + t0;
                    const float *m1 = M + ((size_t)(4 + j) * O + o) * T + t0;
                    const float *m2 = M + ((size_t)(8 + j) * O + o) * T + t0;
                    const float *m3 = M + ((size_t)(12 + j) * O + o) * T + t0;
                    for (int tx = 0; tx < TW; tx++) {
                        s[0][j][tx] = m0[tx] + m1[tx] + m2[tx];
                        s[1][j][tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                }
                for (int r = 0; r < 2; r++) {
                    float *row = yo + (size_t)(2 * ty + r) * W;
                    for (int tx = 0; tx < TW; tx++) {
                        float a = s[r][0][tx] + s[r][1][tx] + s[r][2][tx];
                        float c = s[r][1][tx] - s[r][2][tx] - s[r][3][tx];
                        if (b) a += bias, c += bias;
                        if (relu) a = a > 0.0f ? a : 0.0f, c = c > 0.0f ? c : 0.0f;
                        row[2 * tx] = a;
                        row[2 * tx + 1] = c;
                    }
                    if (mo) {
                        const float *mr = mo + (size_t)(2 * ty + r) * W;
                        for (int w = 0; w < W; w++) row[w] = mr[w] > 0.0f ? row[w] : 0.0f;
                    }
                }
            }
        }
}

/* dy (B,O,H,W) -> E (16,O,T): E[p][o][t] = (A e Aᵀ)[p] with e the 2x2 tile of
 * dy at rows 2ty, columns 2tx */
static void gradient_tiles(float *E, const float *dy, int B, int O, int H, int W)
{
    int TH = H / 2, TW = W / 2;
    size_t T = (size_t)B * TH * TW, HW = (size_t)H * W;
    float a[2][4][TW];
    for (int i = 0; i < B; i++)
        for (int o = 0; o < O; o++)
            for (int ty = 0; ty < TH; ty++) {
                const float *dyo = dy + ((size_t)i * O + o) * HW + (size_t)(2 * ty) * W;
                for (int r = 0; r < 2; r++)
                    for (int tx = 0; tx < TW; tx++) {
                        float p = dyo[(size_t)r * W + 2 * tx], q = dyo[(size_t)r * W + 2 * tx + 1];
                        a[r][0][tx] = p;
                        a[r][1][tx] = p + q;
                        a[r][2][tx] = p - q;
                        a[r][3][tx] = -q;
                    }
                size_t t0 = ((size_t)i * TH + ty) * TW;
                for (int j = 0; j < 4; j++) {
                    float *e0 = E + ((size_t)(0 + j) * O + o) * T + t0, *e1 = E + ((size_t)(4 + j) * O + o) * T + t0;
                    float *e2 = E + ((size_t)(8 + j) * O + o) * T + t0, *e3 = E + ((size_t)(12 + j) * O + o) * T + t0;
                    for (int tx = 0; tx < TW; tx++) {
                        e0[tx] = a[0][j][tx];
                        e1[tx] = a[0][j][tx] + a[1][j][tx];
                        e2[tx] = a[0][j][tx] - a[1][j][tx];
                        e3[tx] = -a[1][j][tx];
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

/* dU (16,O,C) -> dW (O,C,3,3) += Gᵀ dU G */
static void filter_gradient(float *dW, const float *dU, int C, int O)
{
    size_t OC = (size_t)O * C;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            float X[16], a[3][4];
            for (int p = 0; p < 16; p++) X[p] = dU[(size_t)p * OC + (size_t)o * C + c];
            for (int q = 0; q < 4; q++) { /* Gᵀ X */
                a[0][q] = X[q] + 0.5f * (X[4 + q] + X[8 + q]);
                a[1][q] = 0.5f * (X[4 + q] - X[8 + q]);
                a[2][q] = 0.5f * (X[4 + q] + X[8 + q]) + X[12 + q];
            }
            float *w = dW + ((size_t)o * C + c) * 9;
            for (int k = 0; k < 3; k++) { /* (Gᵀ X) G */
                w[3 * k + 0] += a[k][0] + 0.5f * (a[k][1] + a[k][2]);
                w[3 * k + 1] += 0.5f * (a[k][1] - a[k][2]);
                w[3 * k + 2] += 0.5f * (a[k][1] + a[k][2]) + a[k][3];
            }
        }
}

/* out (16,R,T) = U (16,R,K) · V (16,K,T), one sgemm per position */
static void products(float *out, const float *U, const float *V, int R, int K, size_t T)
{
    for (int p = 0; p < 16; p++)
        dt_sgemm(0, 0, R, (int)T, K, 1.0f, U + (size_t)p * R * K, K, V + (size_t)p * K * T, (int)T, 0.0f,
                 out + (size_t)p * R * T, (int)T);
}

void dt_conv2d_winograd_forward(float *y, float *ws, const float *x, const float *W, const float *b, int B, int C,
                                int H, int Wd, int O, int relu)
{
    DT_ASSERT(H % 2 == 0 && Wd % 2 == 0);
    size_t T = (size_t)B * (H / 2) * (Wd / 2);
    float *V = ws, *M = ws + 16 * (size_t)C * T, *U = M + 16 * (size_t)O * T;
    filter_tiles(U, W, C, O, 0);
    input_tiles(V, x, B, C, H, Wd);
    products(M, U, V, O, C, T);
    output_tiles(y, M, b, relu, NULL, B, O, H, Wd);
}

void dt_conv2d_winograd_backward(float *dx, float *dW, float *ws, const float *dy, const float *x, const float *W,
                                 int B, int C, int H, int Wd, int O, int relu_x)
{
    DT_ASSERT(H % 2 == 0 && Wd % 2 == 0);
    size_t T = (size_t)B * (H / 2) * (Wd / 2);
    float *V = ws, *E = ws + 16 * (size_t)C * T, *U = E + 16 * (size_t)O * T;
    if (dW) {
        gradient_tiles(E, dy, B, O, H, Wd);
        for (int p = 0; p < 16; p++) /* dU[p] (O,C) = E[p] (O,T) · V[p]ᵀ (T,C) */
            dt_sgemm(0, 1, O, C, (int)T, 1.0f, E + (size_t)p * O * T, (int)T, V + (size_t)p * C * T, (int)T, 0.0f,
                     U + (size_t)p * O * C, C);
        filter_gradient(dW, U, C, O);
    }
    if (!dx) return;
    filter_tiles(U, W, C, O, 1);
    input_tiles(E, dy, B, O, H, Wd);
    products(V, U, E, C, O, T);
    output_tiles(dx, V, NULL, 0, relu_x ? x : NULL, B, C, H, Wd);
}
