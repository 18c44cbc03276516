/* Losses: fused sigmoid + BCE (against targets, or one label), L1, Gaussian
 * KL, reparameterization. */
#include <math.h>

#include "dtrain/nn.h"

double dt_bce_logits_forward(double *per, const float *logits, const float *t, int B, int n)
{
    double total = 0;
    for (int i = 0; i < B; i++) {
        const float *x = logits + (size_t)i * n, *y = t + (size_t)i * n;
        double s = 0;
        for (int k = 0; k < n; k++) s += fmaxf(x[k], 0.0f) - x[k] * y[k] + log1pf(expf(-fabsf(x[k])));
        if (per) per[i] = s;
        total += s;
    }
    return total;
}

void dt_bce_logits_backward(float *dlogits, const float *logits, const float *t, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) dlogits[i] = scale * (1.0f / (1.0f + expf(-logits[i])) - t[i]);
}

double dt_kl_gauss_forward(double *per, const float *mu, const float *logvar, int B, int d)
{
    double total = 0;
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) {
            float m = mu[(size_t)i * d + k], lv = logvar[(size_t)i * d + k];
            s += -0.5 * (1.0 + lv - (double)m * m - exp(lv));
        }
        if (per) per[i] = s;
        total += s;
    }
    return total;
}

void dt_kl_gauss_backward(float *dmu, float *dlogvar, const float *mu, const float *logvar, size_t n,
                          float scale)
{
    for (size_t i = 0; i < n; i++) {
        dmu[i] += scale * mu[i];
        dlogvar[i] += scale * 0.5f * (expf(logvar[i]) - 1.0f);
    }
}

void dt_reparam_forward(float *z, const float *mu, const float *logvar, const float *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) z[i] = mu[i] + expf(0.5f * logvar[i]) * eps[i];
}

void dt_reparam_backward(float *dmu, float *dlogvar, const float *dz, const float *logvar,
                         const float *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dmu[i] += dz[i];
        dlogvar[i] += dz[i] * eps[i] * 0.5f * expf(0.5f * logvar[i]);
    }
}

double dt_bce_label(float *dz, const float *z, size_t n, float t, float scale)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float zi = z[i];
        s += fmaxf(zi, 0.0f) - zi * t + log1pf(expf(-fabsf(zi)));
        if (dz) dz[i] = scale * (1.0f / (1.0f + expf(-zi)) - t);
    }
    return s;
}

double dt_l1(float *d, const float *y, const float *x, size_t n, float scale)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float e = y[i] - x[i];
        s += fabsf(e);
        d[i] = e > 0 ? scale : e < 0 ? -scale : 0.0f;
    }
    return s;
}
