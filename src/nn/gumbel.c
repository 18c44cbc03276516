/* Categorical latents: Gumbel-softmax relaxation and the KL to a uniform prior. */
#include <math.h>

#include "dtrain/nn.h"

void dt_gumbel_noise(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = u[i] > 1e-20f ? u[i] : 1e-20f;
        g[i] = -logf(-logf(x));
    }
}

static void softmax_row(float *y, const float *s, int K)
{
    float mx = s[0];
    for (int k = 1; k < K; k++) mx = s[k] > mx ? s[k] : mx;
    float sum = 0;
    for (int k = 0; k < K; k++) sum += (y[k] = expf(s[k] - mx));
    float inv = 1.0f / sum;
    for (int k = 0; k < K; k++) y[k] *= inv;
}

void dt_gumbel_softmax_forward(float *y, const float *logits, const float *g, int rows, int K, float tau)
{
    float s[256], inv = 1.0f / tau;
    for (int r = 0; r < rows; r++) {
        const float *l = logits + (size_t)r * K, *gr = g + (size_t)r * K;
        for (int k = 0; k < K; k++) s[k] = (l[k] + gr[k]) * inv;
        softmax_row(y + (size_t)r * K, s, K);
    }
}

void dt_gumbel_softmax_backward(float *dlogits, const float *dy, const float *y, int rows, int K, float tau)
{
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * K, *dr = dy + (size_t)r * K;
        float dot = 0;
        for (int k = 0; k < K; k++) dot += yr[k] * dr[k];
        for (int k = 0; k < K; k++) dlogits[(size_t)r * K + k] = yr[k] * (dr[k] - dot) / tau;
    }
}

void dt_onehot_argmax(float *z, const float *y, int rows, int K)
{
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (yr[k] > yr[best]) best = k;
        for (int k = 0; k < K; k++) z[(size_t)r * K + k] = k == best ? 1.0f : 0.0f;
    }
}

double dt_cat_kl_forward(double *per, float *q, const float *logits, int B, int N, int K)
{
    double total = 0;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int n = 0; n < N; n++) {
            size_t o = ((size_t)b * N + n) * K;
            softmax_row(q + o, logits + o, K);
            for (int k = 0; k < K; k++) s += q[o + k] * log((double)q[o + k] * K + 1e-20);
        }
        if (per) per[b] = s;
        total += s;
    }
    return total;
}

void dt_cat_kl_backward(float *dlogits, const float *q, int rows, int K, float scale)
{
    for (int r = 0; r < rows; r++) {
        const float *qr = q + (size_t)r * K;
        float dq[256], dot = 0;
        for (int k = 0; k < K; k++) {
            float qk = qr[k] * (float)K;
            dq[k] = logf(qk + 1e-20f) + qk / (qk + 1e-20f);
            dot += qr[k] * dq[k];
        }
        for (int k = 0; k < K; k++) dlogits[(size_t)r * K + k] += scale * qr[k] * (dq[k] - dot);
    }
}
