/* dist_check: the group collectives and the pairwise exchange give the
 * numbers they promise, at any rank count. Exits 1 on a mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dtrain/core.h"
#include "dtrain/comm.h"

static int bad = 0;
#define EXPECT(cond, ...)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "dist_check rank %d: ", dt_rank());                          \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
            bad = 1;                                                                     \
        }                                                                                \
    } while (0)

int main(int argc, char **argv)
{
    dt_comm_init(&argc, &argv);
    int r = dt_rank(), P = dt_size();
    enum { N = 1001 }; /* not a multiple of any rank count used */

    /* world: reduce-scatter then allgather is an allreduce */
    float *x = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = (float)(r + 1) * (float)i;
    dt_reduce_scatter_sum_f(x, N);
    size_t lo, hi;
    dt_shard(N, &lo, &hi);
    float tri = (float)(P * (P + 1) / 2);
    for (size_t i = lo; i < hi; i++) EXPECT(x[i] == tri * (float)i, "reduce-scatter x[%zu] = %g", i, x[i]);
    dt_allgather_f(x, N);
    for (int i = 0; i < N; i++) EXPECT(x[i] == tri * (float)i, "allgather x[%d] = %g", i, x[i]);

    /* groups: even and odd ranks, each summing only its own members */
    dt_comm *g = dt_comm_split(r % 2, r);
    int gs = dt_comm_size(g);
    EXPECT(gs == (P + 1 - r % 2) / 2, "group size %d", gs);
    EXPECT(dt_comm_rank(g) == r / 2, "group rank %d", dt_comm_rank(g));
    for (int i = 0; i < N; i++) x[i] = (float)r;
    dt_comm_reduce_scatter_sum_f(g, x, N);
    dt_comm_allgather_f(g, x, N);
    float want = 0;
    for (int q = r % 2; q < P; q += 2) want += (float)q;
    for (int i = 0; i < N; i++) EXPECT(x[i] == want, "group sum x[%d] = %g, want %g", i, x[i], want);
    double d[2] = {1.0, (double)r};
    dt_comm_allreduce_sum_d(g, d, 2);
    EXPECT(d[0] == gs && d[1] == want, "group allreduce %g %g", d[0], d[1]);
    dt_comm_free(g);

    /* pairs (2i, 2i+1) swap vectors of different lengths in one call */
    if (P % 2 == 0) {
        int peer = r ^ 1;
        float send[7], recv[9] = {0};
        for (int i = 0; i < 7; i++) send[i] = (float)(100 * r + i);
        size_t ns = r % 2 ? 7 : 5, nr = r % 2 ? 5 : 7;
        dt_sendrecv_f(send, ns, peer, recv, nr, peer, 3);
        for (size_t i = 0; i < nr; i++) EXPECT(recv[i] == (float)(100 * peer + (int)i), "sendrecv [%zu] %g", i, recv[i]);
    }
    free(x);
    int ok = dt_all_ok(!bad);
    if (r == 0) printf("dist_check: %d rank(s) %s\n", P, ok ? "ok" : "FAILED");
    dt_comm_finalize();
    return ok ? 0 : 1;
}
