/* Exact sums of doubles on a fixed grid (include/dtrain/core.h, dt_xsum):
 * integers add in any order with the same result, so a sum over a batch or a
 * test set cut among any number of ranks has the same bits. */
#include <math.h>

#include "dtrain/core.h"

#define GRID 40 /* bits below the unit: values are rounded to multiples of 2^-40 */
#define HALF ((int64_t)1 << 32)

void dt_xsum_add(dt_xsum *s, double v)
{
    if (isnan(v)) {
        s->w[2]++;
        return;
    }
    if (!(fabs(v) < DT_XSUM_MAX)) {
        s->w[v > 0 ? 3 : 4]++;
        return;
    }
    __int128 q = (__int128)nearbyint(ldexp(v, GRID)); /* exact: an integer under 2^80 */
    int64_t lo = (int64_t)(q & (HALF - 1));          /* [0, 2^32) */
    s->w[0] += (int64_t)((q - lo) / HALF);
    s->w[1] += lo;
}

void dt_xsum_merge(dt_xsum *s, const dt_xsum *t)
{
    for (int k = 0; k < DT_XSUM_WORDS; k++) s->w[k] += t->w[k];
}

double dt_xsum_value(const dt_xsum *s)
{
    if (s->w[2] || (s->w[3] && s->w[4])) return NAN;
    if (s->w[3]) return INFINITY;
    if (s->w[4]) return -INFINITY;
    __int128 q = (__int128)s->w[0] * HALF + s->w[1];
    return ldexp((double)q, -GRID); /* one rounding */
}
