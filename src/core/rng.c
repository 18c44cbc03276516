/* Counter-based randomness: Philox4x32-10 (Salmon et al., SC'11).
 *
 * Key   = (seed low 32, seed high 32 xor purpose * golden ratio)
 * Count = (draw block, a low, a high ^ b high, b low)
 * Every draw is a pure function of (seed, purpose, a, b, draw), so a sample
 * gets the same noise on whichever rank handles it. */
#include "dtrain/core.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

void dt_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(PHILOX_M0, c0, &hi0);
        uint32_t lo1 = mulhilo(PHILOX_M1, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void block(uint32_t out[4], dt_stream s, uint64_t blk)
{
    uint32_t key[2] = {(uint32_t)s.seed, (uint32_t)(s.seed >> 32) ^ (s.purpose * 0x9E3779B9u)};
    uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)s.a ^ ((uint32_t)(blk >> 32) << 16),
                       (uint32_t)(s.a >> 32) ^ (uint32_t)(s.b >> 32) * 0x85EBCA6Bu, (uint32_t)s.b};
    dt_philox4x32(out, ctr, key);
}

static inline float u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

void dt_rand_uniform(float *out, size_t n, dt_stream s)
{
    uint32_t r[4];
    for (size_t i = 0; i < n; i += 4) {
        block(r, s, i / 4);
        for (size_t j = 0; j < 4 && i + j < n; j++) out[i + j] = u01(r[j]);
    }
}

void dt_rand_normal(float *out, size_t n, dt_stream s)
{
    uint32_t r[4];
    for (size_t i = 0; i < n; i += 4) {
        block(r, s, i / 4);
        for (size_t j = 0; j < 4; j += 2) {
            /* u1 in (0,1] so log never sees 0; double keeps the tails right */
            double u1 = ((double)(r[j] >> 8) + 1.0) / 16777216.0;
            double u2 = (double)(r[j + 1] >> 8) / 16777216.0;
            double rad = sqrt(-2.0 * log(u1));
            if (i + j < n) out[i + j] = (float)(rad * cos(2.0 * M_PI * u2));
            if (i + j + 1 < n) out[i + j + 1] = (float)(rad * sin(2.0 * M_PI * u2));
        }
    }
}

uint64_t dt_rand_u64(dt_stream s, uint64_t i)
{
    uint32_t r[4];
    block(r, s, i);
    return ((uint64_t)r[0] << 32) | r[1];
}

void dt_rand_permutation(uint32_t *perm, uint32_t n, dt_stream s)
{
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        /* Lemire-free modulo on 64 bits: bias < 2^-32 for n < 2^32 */
        uint32_t j = (uint32_t)(dt_rand_u64(s, i) % i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
