/* Adam with PyTorch's arithmetic (torch.optim.Adam, foreach=False). */
#include <math.h>

#include "dtrain/nn.h"

void dt_adam_default(dt_adam *a, float lr)
{
    a->lr = lr;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->t = 0;
}

void dt_adam_step(dt_adam *a, dt_params *p) { dt_adam_step_range(a, p, 0, p->n); }

void dt_adam_step_range(dt_adam *a, dt_params *p, size_t lo, size_t hi)
{
    a->t++;
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    const float bc1 = 1.0f - (float)pow(b1, (double)a->t);
    const float bc2_sqrt = sqrtf(1.0f - (float)pow(b2, (double)a->t));
    const float step = a->lr / bc1;
    float *restrict w = p->w, *restrict m = p->m, *restrict v = p->v;
    float *restrict g = p->g;
    /* one pass over the four blocks; the gradient is cleared on the way so
     * the next step needs no separate zeroing pass */
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= step * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
        g[i] = 0.0f;
    }
}
