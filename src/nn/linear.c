/* Fully connected layer on dt_gemm_nn / dt_gemm_nt, with its plain-loop
 * twin. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/nn.h"

void dt_linear_declare(dt_linear *l, dt_params *p, const char *name, int in, int out)
{
    char buf[DT_NAME_LEN];
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    snprintf(buf, sizeof buf, "%s.weight", name);
    l->w_off = dt_params_add(p, buf, 2, (int[]){out, in});
    snprintf(buf, sizeof buf, "%s.bias", name);
    l->b_off = dt_params_add(p, buf, 1, (int[]){out});
}

void dt_linear_bind(dt_linear *l, dt_params *p)
{
    l->w = p->w + l->w_off;
    l->b = p->w + l->b_off;
    l->dw = p->g + l->w_off;
    l->db = p->g + l->b_off;
}

void dt_linear_init(dt_linear *l, uint64_t seed, uint64_t key)
{
    float bound = 1.0f / sqrtf((float)l->in);
    size_t nw = (size_t)l->in * (size_t)l->out;
    dt_rand_uniform(l->w, nw, (dt_stream){seed, DT_RNG_INIT, key, 0});
    dt_rand_uniform(l->b, (size_t)l->out, (dt_stream){seed, DT_RNG_INIT, key, 1});
    for (size_t i = 0; i < nw; i++) l->w[i] = (2.0f * l->w[i] - 1.0f) * bound;
    for (int i = 0; i < l->out; i++) l->b[i] = (2.0f * l->b[i] - 1.0f) * bound;
}

/* x (B,in) W (out,in) b (out) -> y (B,out) */
void dt_linear_forward(float *y, const float *x, const float *W, const float *b, int B, int in, int out)
{
    if (B == 0) return;
    for (int i = 0; i < B; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
    dt_gemm_nt(y, out, x, in, W, in, B, out, in, 1);
}

/* dy (B,out) rows r0..r1 -> dyT (r1-r0, B), for the weight gradient's product */
static float *transpose_rows(const float *dy, int B, int out, int r0, int r1)
{
    float *t = dt_alloc_floats((size_t)(r1 - r0) * (size_t)B);
    for (int i = 0; i < B; i++)
        for (int o = r0; o < r1; o++) t[(size_t)(o - r0) * B + i] = dy[(size_t)i * out + o];
    return t;
}

/* dy (B,out) x (B,in) W (out,in) -> dx (B,in), dW (out,in) +=, db (out) +=
 * (with add 0: dW =, db =) */
static void backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int B, int in,
                     int out, int add)
{
    if (!add) memset(db, 0, (size_t)out * sizeof(float));
    if (B == 0) {
        if (!add) memset(dW, 0, (size_t)out * (size_t)in * sizeof(float));
        return;
    }
    float *dyT = transpose_rows(dy, B, out, 0, out);
    dt_gemm_nn(dW, in, dyT, B, x, in, out, in, B, add);
    dt_free(dyT);
    for (int i = 0; i < B; i++) {
        const float *r = dy + (size_t)i * out;
        for (int o = 0; o < out; o++) db[o] += r[o];
    }
    if (dx) dt_gemm_nn(dx, in, dy, out, W, in, B, in, out, 0);
}

void dt_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int B,
                        int in, int out)
{
    backward(dx, dW, db, dy, x, W, B, in, out, 1);
}

void dt_linear_backward_write(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int B,
                              int in, int out)
{
    backward(dx, dW, db, dy, x, W, B, in, out, 0);
}

void dt_linear_backward_input(float *dx, const float *dy, const float *W, int B, int in, int out)
{
    if (B > 0) dt_gemm_nn(dx, in, dy, out, W, in, B, in, out, 0);
}

void dt_linear_grad_block(float *dW, float *db, const float *dy, const float *x, int B, int in, int out, int r0,
                          int r1, int c0, int c1, int acc)
{
    int rows = r1 - r0, cols = c1 - c0;
    if (rows <= 0 || cols <= 0) return;
    if (B == 0) {
        if (acc == DT_ACC_SET) {
            memset(dW, 0, (size_t)rows * (size_t)cols * sizeof(float));
            if (db) memset(db, 0, (size_t)rows * sizeof(float));
        }
        return;
    }
    /* backward()'s product, on a block of dW: the same bits as there */
    float *dyT = transpose_rows(dy, B, out, r0, r1);
    dt_gemm_nn(dW, cols, dyT, B, x + c0, in, rows, cols, B, acc);
    dt_free(dyT);
    if (!db) return;
    for (int o = 0; o < rows; o++) {
        /* as backward() sums: sample by sample, from 0 or going on from db */
        float s = acc == DT_ACC_CHAIN ? db[o] : 0;
        for (int i = 0; i < B; i++) s += dy[(size_t)i * out + (size_t)(r0 + o)];
        db[o] = acc == DT_ACC_ADD ? db[o] + s : s;
    }
}

void dt_linear_forward_naive(float *y, const float *x, const float *W, const float *b, int B, int in,
                             int out)
{
    for (int i = 0; i < B; i++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int k = 0; k < in; k++) s += (double)x[(size_t)i * in + k] * W[(size_t)o * in + k];
            y[(size_t)i * out + o] = (float)s;
        }
}

void dt_linear_backward_naive(float *dx, float *dW, float *db, const float *dy, const float *x,
                              const float *W, int B, int in, int out)
{
    for (int o = 0; o < out; o++) {
        for (int k = 0; k < in; k++) {
            double s = 0;
            for (int i = 0; i < B; i++) s += (double)dy[(size_t)i * out + o] * x[(size_t)i * in + k];
            dW[(size_t)o * in + k] += (float)s;
        }
        double s = 0;
        for (int i = 0; i < B; i++) s += dy[(size_t)i * out + o];
        db[o] += (float)s;
    }
    if (dx)
        for (int i = 0; i < B; i++)
            for (int k = 0; k < in; k++) {
                double s = 0;
                for (int o = 0; o < out; o++) s += (double)dy[(size_t)i * out + o] * W[(size_t)o * in + k];
                dx[(size_t)i * in + k] = (float)s;
            }
}
