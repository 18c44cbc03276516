/* 2-D convolution on im2col + products (dt_gemm_nn / dt_gemm_nt, one per
 * image) or Winograd (src/nn/winograd.c, for the layers
 * dt_conv2d_winograd_fits picks), its direct-loop twin, and 2x2 max pooling.
 * Stride 1, output size = input size. */
#include <math.h>
#include <string.h>

#include "dtrain/conv.h"
#include "dtrain/core.h"

/* The only geometries the models use; both keep H and W. */
static void check_geometry(int k, int pad)
{
    if (!((k == 3 && pad == 1) || (k == 1 && pad == 0)))
        DT_FATAL("conv2d: unsupported kernel %d with pad %d (need 3/1 or 1/0)", k, pad);
}

void dt_conv2d_declare(dt_conv2d *l, dt_params *p, const char *name, int C, int O, int k, int pad)
{
    char buf[DT_NAME_LEN];
    check_geometry(k, pad);
    memset(l, 0, sizeof *l);
    l->C = C;
    l->O = O;
    l->k = k;
    l->pad = pad;
    snprintf(buf, sizeof buf, "%s.weight", name);
    l->w_off = dt_params_add(p, buf, 4, (int[]){O, C, k, k});
    snprintf(buf, sizeof buf, "%s.bias", name);
    l->b_off = dt_params_add(p, buf, 1, (int[]){O});
}

void dt_conv2d_bind(dt_conv2d *l, dt_params *p)
{
    l->w = p->w + l->w_off;
    l->b = p->w + l->b_off;
    l->dw = p->g + l->w_off;
    l->db = p->g + l->b_off;
}

void dt_conv2d_init(dt_conv2d *l, uint64_t seed, uint64_t key)
{
    int fan_in = l->C * l->k * l->k;
    float bound = 1.0f / sqrtf((float)fan_in);
    size_t nw = (size_t)l->O * (size_t)fan_in;
    dt_rand_uniform(l->w, nw, (dt_stream){seed, DT_RNG_INIT, key, 0});
    dt_rand_uniform(l->b, (size_t)l->O, (dt_stream){seed, DT_RNG_INIT, key, 1});
    for (size_t i = 0; i < nw; i++) l->w[i] = (2.0f * l->w[i] - 1.0f) * bound;
    for (int i = 0; i < l->O; i++) l->b[i] = (2.0f * l->b[i] - 1.0f) * bound;
}

size_t dt_conv2d_cols_size(int B, int C, int O, int H, int W, int k)
{
    if (dt_conv2d_winograd_fits(C, O, H, W, k, k == 3 ? 1 : 0)) return dt_conv2d_winograd_size(B, C, O, H, W);
    if (k == 1) return 0;
    return (size_t)B * (size_t)C * (size_t)k * (size_t)k * (size_t)H * (size_t)W;
}

/* One image. x (C,H,W) -> cols (C*k*k, H*W):
 *   cols[(c,ki,kj)][(h,w)] = x[c][h+ki-pad][w+kj-pad], 0 outside.
 * Row by row: each output row is a shifted copy of one input row with zeroed
 * ends, so the inner loop is a memcpy. */
DT_CLONES static void im2col(float *cols, const float *x, int C, int H, int W, int k, int pad)
{
    size_t HW = (size_t)H * W;
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = cols + ((size_t)(c * k + ki) * k + kj) * HW;
                int s = kj - pad;
                int w0 = s < 0 ? -s : 0, w1 = s > 0 ? W - s : W; /* valid w: [w0, w1) */
                for (int h = 0; h < H; h++) {
                    float *dst = row + (size_t)h * W;
                    int ih = h + ki - pad;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)W * sizeof(float));
                        continue;
                    }
                    const float *src = x + (size_t)c * HW + (size_t)ih * W;
                    for (int w = 0; w < w0; w++) dst[w] = 0.0f;
                    memcpy(dst + w0, src + w0 + s, (size_t)(w1 - w0) * sizeof(float));
                    for (int w = w1; w < W; w++) dst[w] = 0.0f;
                }
            }
}

/* One image. cols (C*k*k, H*W) -> x (C,H,W) overwritten: the adjoint of im2col,
 * x[c][ih][iw] = sum of the column entries that copied it. */
DT_CLONES static void col2im(float *x, const float *cols, int C, int H, int W, int k, int pad)
{
    size_t HW = (size_t)H * W;
    memset(x, 0, (size_t)C * HW * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                const float *row = cols + ((size_t)(c * k + ki) * k + kj) * HW;
                int s = kj - pad;
                int w0 = s < 0 ? -s : 0, w1 = s > 0 ? W - s : W;
                for (int h = 0; h < H; h++) {
                    int ih = h + ki - pad;
                    if (ih < 0 || ih >= H) continue;
                    const float *src = row + (size_t)h * W;
                    float *dst = x + (size_t)c * HW + (size_t)ih * W;
                    for (int w = w0; w < w1; w++) dst[w + s] += src[w];
                }
            }
}

/* x (B,C,H,Wd) W (O,C,k,k) b (O) -> y (B,O,H,Wd); cols (B,C*k*k,H*Wd) <- im2col(x)
 * Per image: y_b (O,HW) = W (O,CKK) · cols_b (CKK,HW) (beta 0), then the bias
 * (and the ReLU when relu) added in one pass while y_b is in cache. */
DT_CLONES static void conv_forward(float *y, float *cols, const float *x, const float *W, const float *b, int B,
                                   int C, int H, int Wd, int O, int k, int pad, int relu)
{
    check_geometry(k, pad);
    if (dt_conv2d_winograd_fits(C, O, H, Wd, k, pad)) {
        dt_conv2d_winograd_forward(y, cols, x, W, b, B, C, H, Wd, O, relu);
        return;
    }
    int HW = H * Wd, K = C * k * k;
    for (int i = 0; i < B; i++) {
        const float *xb = x + (size_t)i * C * HW;
        float *yb = y + (size_t)i * O * HW;
        const float *A = xb;
        if (k != 1) {
            float *cb = cols + (size_t)i * K * HW;
            im2col(cb, xb, C, H, Wd, k, pad);
            A = cb;
        }
        dt_gemm_nn(yb, HW, W, K, A, HW, O, HW, K, 0);
        for (int o = 0; o < O; o++) {
            float *r = yb + (size_t)o * HW, v = b[o];
            if (relu)
                for (int p = 0; p < HW; p++) {
                    float t = r[p] + v;
                    r[p] = t > 0.0f ? t : 0.0f;
                }
            else
                for (int p = 0; p < HW; p++) r[p] += v;
        }
    }
}

void dt_conv2d_forward(float *y, float *cols, const float *x, const float *W, const float *b, int B, int C,
                       int H, int Wd, int O, int k, int pad)
{
    conv_forward(y, cols, x, W, b, B, C, H, Wd, O, k, pad, 0);
}

void dt_conv2d_forward_relu(float *y, float *cols, const float *x, const float *W, const float *b, int B, int C,
                            int H, int Wd, int O, int k, int pad)
{
    conv_forward(y, cols, x, W, b, B, C, H, Wd, O, k, pad, 1);
}

/* sum of r[0..n): eight partial sums, so the loop vectorizes without -ffast-math */
DT_CLONES static float sum8(const float *r, int n)
{
    float a[8] = {0};
    int p = 0;
    for (; p + 8 <= n; p += 8)
        for (int q = 0; q < 8; q++) a[q] += r[p + q];
    float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    for (; p < n; p++) s += r[p];
    return s;
}

/* dy (B,O,H,Wd) cols (B,CKK,HW) from the forward, W (O,CKK) ->
 *   dW += sum_b dy_b · cols_bᵀ,  db += sum_{b,p} dy_b  (dW NULL: skip both),
 *   dx_b = col2im(Wᵀ · dy_b), times (x_b > 0) when relu_x.
 * With part > 0, image b's two terms are written at dW + b part and
 * db + b part instead of added (Winograd: its dU_b, dt_conv2d_winograd_fold).
 * cols_b is reused as the scratch for Wᵀ · dy_b once dW has read it. */
DT_CLONES static void conv_backward(float *dx, float *dW, float *db, size_t part, float *cols, const float *dy,
                                    const float *x, const float *W, int B, int C, int H, int Wd, int O, int k, int pad,
                                    int relu_x)
{
    check_geometry(k, pad);
    int HW = H * Wd, K = C * k * k;
    if (dt_conv2d_winograd_fits(C, O, H, Wd, k, pad)) {
        if (dW)
            for (int i = 0; i < B; i++)
                for (int o = 0; o < O; o++) {
                    float s = sum8(dy + ((size_t)i * O + o) * HW, HW);
                    if (part)
                        db[(size_t)i * part + (size_t)o] = s;
                    else
                        db[o] += s;
                }
        dt_conv2d_winograd_backward(dx, dW, part, cols, dy, x, W, B, C, H, Wd, O, relu_x);
        return;
    }
    float *Wt = NULL; /* Wᵀ (K,O) for the input gradient's products */
    if (dx) {
        Wt = dt_alloc_floats((size_t)K * O);
        for (int o = 0; o < O; o++)
            for (int j = 0; j < K; j++) Wt[(size_t)j * O + o] = W[(size_t)o * K + j];
    }
    for (int i = 0; i < B; i++) {
        const float *dyb = dy + (size_t)i * O * HW;
        float *cb = k == 1 ? NULL : cols + (size_t)i * K * HW;
        const float *xb = x + (size_t)i * C * HW;
        if (dW && part) { /* this image's terms alone */
            float *dWb = dW + (size_t)i * part, *dbb = db + (size_t)i * part;
            for (int o = 0; o < O; o++) dbb[o] = sum8(dyb + (size_t)o * HW, HW);
            dt_gemm_nt(dWb, K, dyb, HW, k == 1 ? xb : cb, HW, O, K, HW, DT_ACC_SET);
        } else if (dW) {
            for (int o = 0; o < O; o++) db[o] += sum8(dyb + (size_t)o * HW, HW);
            dt_gemm_nt(dW, K, dyb, HW, k == 1 ? xb : cb, HW, O, K, HW, DT_ACC_ADD);
        }
        if (!dx) continue;
        float *dxb = dx + (size_t)i * C * HW;
        if (k == 1) {
            dt_gemm_nn(dxb, HW, Wt, O, dyb, HW, C, HW, O, 0);
        } else {
            dt_gemm_nn(cb, HW, Wt, O, dyb, HW, K, HW, O, 0);
            col2im(dxb, cb, C, H, Wd, k, pad);
        }
        if (relu_x)
            for (size_t p = 0; p < (size_t)C * HW; p++) dxb[p] = xb[p] > 0.0f ? dxb[p] : 0.0f;
    }
    dt_free(Wt);
}

void dt_conv2d_backward(float *dx, float *dW, float *db, float *cols, const float *dy, const float *x,
                        const float *W, int B, int C, int H, int Wd, int O, int k, int pad)
{
    conv_backward(dx, dW, db, 0, cols, dy, x, W, B, C, H, Wd, O, k, pad, 0);
}

void dt_conv2d_backward_relu(float *dx, float *dW, float *db, float *cols, const float *dy, const float *x,
                             const float *W, int B, int C, int H, int Wd, int O, int k, int pad)
{
    conv_backward(dx, dW, db, 0, cols, dy, x, W, B, C, H, Wd, O, k, pad, 1);
}

void dt_conv2d_backward_parts(float *dx, float *dW, float *db, size_t part, float *cols, const float *dy,
                              const float *x, const float *W, int B, int C, int H, int Wd, int O, int k, int pad,
                              int relu_x)
{
    conv_backward(dx, dW, db, part, cols, dy, x, W, B, C, H, Wd, O, k, pad, relu_x);
}

/* x (B,C,H,Wd) W (O,C,k,k) b (O) -> y (B,O,H,Wd), seven plain loops */
void dt_conv2d_forward_naive(float *y, const float *x, const float *W, const float *b, int B, int C, int H,
                             int Wd, int O, int k, int pad)
{
    for (int i = 0; i < B; i++)
        for (int o = 0; o < O; o++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < Wd; w++) {
                    double s = b[o];
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int ih = h + ki - pad, iw = w + kj - pad;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= Wd) continue;
                                s += (double)W[((size_t)(o * C + c) * k + ki) * k + kj] *
                                     x[(((size_t)i * C + c) * H + ih) * Wd + iw];
                            }
                    y[(((size_t)i * O + o) * H + h) * Wd + w] = (float)s;
                }
}

/* dy (B,O,H,Wd) x (B,C,H,Wd) W (O,C,k,k) -> dW +=, db +=, dx overwritten (NULL: skip) */
void dt_conv2d_backward_naive(float *dx, float *dW, float *db, const float *dy, const float *x,
                              const float *W, int B, int C, int H, int Wd, int O, int k, int pad)
{
    for (int o = 0; o < O; o++) {
        for (int c = 0; c < C; c++)
            for (int ki = 0; ki < k; ki++)
                for (int kj = 0; kj < k; kj++) {
                    double s = 0;
                    for (int i = 0; i < B; i++)
                        for (int h = 0; h < H; h++)
                            for (int w = 0; w < Wd; w++) {
                                int ih = h + ki - pad, iw = w + kj - pad;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= Wd) continue;
                                s += (double)dy[(((size_t)i * O + o) * H + h) * Wd + w] *
                                     x[(((size_t)i * C + c) * H + ih) * Wd + iw];
                            }
                    dW[((size_t)(o * C + c) * k + ki) * k + kj] += (float)s;
                }
        double s = 0;
        for (int i = 0; i < B; i++)
            for (int p = 0; p < H * Wd; p++) s += dy[((size_t)i * O + o) * H * Wd + p];
        db[o] += (float)s;
    }
    if (!dx) return;
    /* dx[i][c][ih][iw] = sum over the outputs (h,w) = (ih-ki+pad, iw-kj+pad) that read it */
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++)
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < Wd; iw++) {
                    double s = 0;
                    for (int o = 0; o < O; o++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int h = ih - ki + pad, w = iw - kj + pad;
                                if (h < 0 || h >= H || w < 0 || w >= Wd) continue;
                                s += (double)dy[(((size_t)i * O + o) * H + h) * Wd + w] *
                                     W[((size_t)(o * C + c) * k + ki) * k + kj];
                            }
                    dx[(((size_t)i * C + c) * H + ih) * Wd + iw] = (float)s;
                }
}

/* x (B,C,H,W) -> y, argmax (B,C,H/2,W/2); first maximum in row-major order wins,
 * a NaN wins over any number (so it propagates) */
void dt_maxpool2_forward(float *y, int32_t *argmax, const float *x, int B, int C, int H, int W)
{
    DT_ASSERT(H % 2 == 0 && W % 2 == 0);
    int Ho = H / 2, Wo = W / 2;
    size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W;
        float *yp = y + pl * Ho * Wo;
        int32_t *ap = argmax + pl * Ho * Wo;
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                int32_t at[4] = {2 * i * W + 2 * j, 2 * i * W + 2 * j + 1, (2 * i + 1) * W + 2 * j,
                                 (2 * i + 1) * W + 2 * j + 1};
                int32_t best = at[0];
                float bv = xp[best];
                for (int q = 1; q < 4; q++) {
                    float v = xp[at[q]];
                    if (v > bv || (isnan(v) && !isnan(bv))) bv = v, best = at[q];
                }
                yp[i * Wo + j] = bv;
                ap[i * Wo + j] = best;
            }
    }
}

/* dy, argmax (B,C,H/2,W/2) -> dx (B,C,H,W) overwritten: dx[argmax] = dy, 0 elsewhere */
void dt_maxpool2_backward(float *dx, const float *dy, const int32_t *argmax, int B, int C, int H, int W)
{
    size_t planes = (size_t)B * C, no = (size_t)(H / 2) * (W / 2);
    memset(dx, 0, planes * H * W * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * H * W;
        for (size_t q = 0; q < no; q++) dp[argmax[pl * no + q]] = dy[pl * no + q];
    }
}

/* x (B,C,H,W) -> y, argmax (B,C,H/2,W/2) of relu(x), bit for bit what
 * dt_relu_forward then dt_maxpool2_forward give (the ReLU maps NaN to 0, so
 * no NaN reaches the pool): branch-free selects, one pass over x */
DT_CLONES void dt_relu_maxpool2_forward(float *y, int32_t *argmax, const float *x, int B, int C, int H, int W)
{
    DT_ASSERT(H % 2 == 0 && W % 2 == 0);
    int Ho = H / 2, Wo = W / 2;
    size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W;
        float *yp = y + pl * Ho * Wo;
        int32_t *ap = argmax + pl * Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            const float *r0 = xp + (size_t)(2 * i) * W, *r1 = r0 + W;
            for (int j = 0; j < Wo; j++) {
                float a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
                a = a > 0.0f ? a : 0.0f, b = b > 0.0f ? b : 0.0f;
                c = c > 0.0f ? c : 0.0f, d = d > 0.0f ? d : 0.0f;
                int32_t at = 2 * i * W + 2 * j, best = at;
                float bv = a;
                best = b > bv ? at + 1 : best, bv = b > bv ? b : bv;
                best = c > bv ? at + W : best, bv = c > bv ? c : bv;
                best = d > bv ? at + W + 1 : best, bv = d > bv ? d : bv;
                yp[i * Wo + j] = bv;
                ap[i * Wo + j] = best;
            }
        }
    }
}

/* dy, y, argmax (B,C,H/2,W/2) -> dx (B,C,H,W) overwritten, plane by plane
 * (cleared, then written while in cache): dx[argmax] = dy where y > 0, 0 elsewhere */
DT_CLONES void dt_relu_maxpool2_backward(float *dx, const float *dy, const float *y, const int32_t *argmax, int B,
                                         int C, int H, int W)
{
    size_t planes = (size_t)B * C, no = (size_t)(H / 2) * (W / 2), ni = (size_t)H * W;
    for (size_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * ni;
        const float *dq = dy + pl * no, *yq = y + pl * no;
        const int32_t *aq = argmax + pl * no;
        memset(dp, 0, ni * sizeof(float));
        for (size_t q = 0; q < no; q++) dp[aq[q]] = yq[q] > 0.0f ? dq[q] : 0.0f;
    }
}
