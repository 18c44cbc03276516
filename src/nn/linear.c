/* Fully connected layer on sgemm, with its plain-loop twin; the
 * checked sgemm every product goes through. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/nn.h"

#if DT_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* One sgemm operand as stored: rows of cols floats, ld apart. */
typedef struct {
    const char *name;
    const float *p;
    int rows, cols, ld;
} operand;

/* floats from the first element to the last one BLAS touches */
static size_t extent(const operand *o) { return (size_t)(o->rows - 1) * (size_t)o->ld + (size_t)o->cols; }

static void check_operand(const char *caller, const char *file, int line, const operand *o)
{
    if (!o->p) dt_fatal_at(file, line, "%s: sgemm operand %s (%d x %d) is NULL", caller, o->name, o->rows, o->cols);
    if (o->ld < o->cols)
        dt_fatal_at(file, line, "%s: sgemm operand %s (%d x %d) has leading dimension %d < %d columns", caller,
                    o->name, o->rows, o->cols, o->ld, o->cols);
#if DT_ASAN
    const char *bad = __asan_region_is_poisoned((void *)(uintptr_t)o->p, extent(o) * sizeof(float));
    if (bad)
        dt_fatal_at(file, line,
                    "%s: sgemm operand %s (%d x %d, leading dimension %d: %zu floats) is not addressable from "
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

void dt_sgemm_at(const char *caller, const char *file, int line, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M < 1 || N < 1 || K < 1)
        dt_fatal_at(file, line, "%s: sgemm of (%d x %d) by (%d x %d): sizes must be at least 1", caller, M, K, K, N);
    operand op[3] = {
        {"A", A, ta ? K : M, ta ? M : K, lda},
        {"B", B, tb ? N : K, tb ? K : N, ldb},
        {"C", C, M, N, ldc},
    };
    for (int i = 0; i < 3; i++) check_operand(caller, file, line, &op[i]);
    for (int i = 0; i < 2; i++)
        if (overlap(&op[2], &op[i]))
            dt_fatal_at(file, line, "%s: sgemm output C (%d x %d) overlaps operand %s", caller, M, N, op[i].name);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

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
    dt_sgemm(0, 1, B, out, in, 1.0f, x, in, W, in, 1.0f, y, out);
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
    dt_sgemm(1, 0, out, in, B, 1.0f, dy, out, x, in, add ? 1.0f : 0.0f, dW, in);
    for (int i = 0; i < B; i++) {
        const float *r = dy + (size_t)i * out;
        for (int o = 0; o < out; o++) db[o] += r[o];
    }
    if (dx)
        dt_sgemm(0, 0, B, in, out, 1.0f, dy, out, W, in, 0.0f, dx, in);
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
    if (B > 0)
        dt_sgemm(0, 0, B, in, out, 1.0f, dy, out, W, in, 0.0f, dx, in);
}

void dt_linear_grad_block(float *dW, float *db, const float *dy, const float *x, int B, int in, int out, int r0,
                          int r1, int c0, int c1, int add)
{
    int rows = r1 - r0, cols = c1 - c0;
    if (rows <= 0 || cols <= 0) return;
    if (B == 0) {
        if (!add) {
            memset(dW, 0, (size_t)rows * (size_t)cols * sizeof(float));
            if (db) memset(db, 0, (size_t)rows * sizeof(float));
        }
        return;
    }
    /* backward()'s product, on a block of dW */
    dt_sgemm(1, 0, rows, cols, B, 1.0f, dy + r0, out, x + c0, in, add ? 1.0f : 0.0f, dW, cols);
    if (!db) return;
    for (int o = 0; o < rows; o++) {
        float s = 0; /* as backward() sums: from 0, sample by sample */
        for (int i = 0; i < B; i++) s += dy[(size_t)i * out + (size_t)(r0 + o)];
        db[o] = add ? db[o] + s : s;
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
