/* adam_bits: five Adam steps on 100,003 parameters (one of them streamed, in
 * two unaligned pieces), then a 64-bit FNV-1a hash of the weights and both
 * moments. The same hash on every x86-64 CPU is what "bit for bit on any
 * CPU" means for Adam: t_dist.sh compares this machine's hash with the one a
 * CPU without AVX2 gives (qemu-x86_64 -cpu Nehalem), when qemu is at hand. */
#include <stdint.h>
#include <stdio.h>

#include "dtrain/core.h"
#include "dtrain/nn.h"

int main(void)
{
    size_t n = 100003;
    dt_params p;
    dt_params_init(&p, "x");
    dt_params_add(&p, "w", 1, (int[]){(int)n});
    dt_params_alloc(&p);
    dt_rand_uniform(p.w, n, (dt_stream){7, DT_RNG_SAMPLE, 1, 0});
    dt_adam a;
    dt_adam_default(&a, 1e-2f);
    float *g = dt_alloc_floats(n);
    for (int s = 0; s < 5; s++) {
        dt_rand_uniform(p.g, n, (dt_stream){7, DT_RNG_SAMPLE, 2, (uint64_t)s});
        for (size_t i = 0; i < n; i++) p.g[i] = (p.g[i] - 0.5f) * 1e-3f * (float)(1 + i % 7);
        if (s == 3) { /* a streamed step in pieces */
            for (size_t i = 0; i < n; i++) g[i] = p.g[i];
            dt_adam_k k = dt_adam_next(&a);
            dt_adam_update_stream(k, p.w + 3, p.m + 3, p.v + 3, g + 3, n - 3);
            dt_adam_update(k, p.w, p.m, p.v, g, 3);
        } else {
            dt_adam_step(&a, &p);
        }
    }
    uint64_t h = 1469598103934665603ull;
    const float *bl[3] = {p.w, p.m, p.v};
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < n; i++) {
            union {
                float f;
                uint32_t u;
            } c = {bl[b][i]};
            h = (h ^ c.u) * 1099511628211ull;
        }
    printf("%016llx\n", (unsigned long long)h);
    dt_free(g);
    dt_params_free(&p);
    return 0;
}
