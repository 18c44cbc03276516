/* The only file that calls MPI (and the MPI-IO parts of HDF5). */
#include "dtrain/dist.h"

#include <hdf5.h>
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"

static int g_active = 0;
static int g_rank = 0, g_size = 1;

#define MPI_CHECK(call)                                                                  \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        if (rc_ != MPI_SUCCESS) DT_FATAL("%s failed (%d)", #call, rc_);                  \
    } while (0)

static DT_NORETURN void abort_job(int status)
{
    if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    if (g_active) MPI_Finalize();
    exit(status);
}

void dt_dist_init(int *argc, char ***argv)
{
    int provided;
    /* Ranks that wait give their core away instead of spinning: with more
     * ranks than cores (laptops, oversubscribed tests) spinning costs ~50 ms
     * per collective. Read by Open MPI at init; an explicit setting wins. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* Errors come back as codes and end the job through DT_FATAL. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g_active = 1;
    dt_log_set_rank(g_rank);
    dt_set_abort_hook(abort_job);
}

void dt_dist_finalize(void)
{
    if (!g_active) return;
    MPI_Finalize();
    g_active = 0;
    dt_set_abort_hook(NULL);
}

int dt_dist_active(void) { return g_active; }
int dt_rank(void) { return g_rank; }
int dt_size(void) { return g_size; }

static void allreduce(void *buf, size_t n, MPI_Datatype t, MPI_Op op)
{
    if (!g_active || g_size == 1) return;
    /* MPI counts are int: split very large buffers. */
    int tsize;
    MPI_Type_size(t, &tsize);
    char *p = buf;
    while (n > 0) {
        int c = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, c, t, op, MPI_COMM_WORLD));
        p += (size_t)c * (size_t)tsize;
        n -= (size_t)c;
    }
}

void dt_allreduce_sum_f(float *buf, size_t n) { allreduce(buf, n, MPI_FLOAT, MPI_SUM); }
void dt_allreduce_sum_d(double *buf, size_t n) { allreduce(buf, n, MPI_DOUBLE, MPI_SUM); }
void dt_allreduce_sum_i64(int64_t *buf, size_t n) { allreduce(buf, n, MPI_INT64_T, MPI_SUM); }
void dt_allreduce_max_d(double *buf, size_t n) { allreduce(buf, n, MPI_DOUBLE, MPI_MAX); }

void dt_shard(size_t n, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)g_rank / (size_t)g_size;
    *hi = n * (size_t)(g_rank + 1) / (size_t)g_size;
}

/* counts and displacements of the P blocks of n floats */
static int *blocks(size_t n)
{
    DT_ASSERT(n <= (size_t)INT_MAX);
    int *c = malloc(2 * sizeof(int) * (size_t)g_size);
    if (!c) DT_FATAL("out of memory");
    for (int r = 0; r < g_size; r++) {
        size_t lo = n * (size_t)r / (size_t)g_size, hi = n * (size_t)(r + 1) / (size_t)g_size;
        c[r] = (int)(hi - lo);
        c[g_size + r] = (int)lo;
    }
    return c;
}

void dt_reduce_scatter_sum_f(float *buf, size_t n)
{
    if (!g_active || g_size == 1) return;
    int *c = blocks(n);
    /* in place, the result lands at the start of buf: move it to its block */
    MPI_CHECK(MPI_Reduce_scatter(MPI_IN_PLACE, buf, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    if (c[g_size + g_rank] > 0) memmove(buf + c[g_size + g_rank], buf, sizeof(float) * (size_t)c[g_rank]);
    free(c);
}

void dt_allgather_f(float *buf, size_t n)
{
    if (!g_active || g_size == 1) return;
    int *c = blocks(n);
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, c, c + g_size, MPI_FLOAT, MPI_COMM_WORLD));
    free(c);
}

int dt_all_ok(int ok)
{
    int v = ok ? 1 : 0;
    allreduce(&v, 1, MPI_INT, MPI_MIN);
    return v;
}

void dt_check_all(int ok)
{
    /* The lowest failing rank speaks; everyone else leaves quietly. */
    int first = ok ? INT_MAX : g_rank;
    allreduce(&first, 1, MPI_INT, MPI_MIN);
    if (first == INT_MAX) return;
    if (g_rank == first) {
        fflush(stdout);
        fprintf(stderr, "dtrain: error: %s\n", dt_lasterr());
        fflush(stderr);
    }
    dt_dist_finalize();
    exit(DT_EXIT_USAGE);
}

void dt_bcast(void *buf, size_t bytes, int root)
{
    if (!g_active || g_size == 1) return;
    DT_ASSERT(bytes <= (size_t)INT_MAX);
    MPI_CHECK(MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD));
}

void dt_barrier(void)
{
    if (g_active && g_size > 1) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

void dt_alltoallv_bytes(const void *sendbuf, const size_t *send, const size_t *sdispl,
                        void *recvbuf, const size_t *recv, const size_t *rdispl)
{
    if (!g_active || g_size == 1) {
        if (send[0]) memcpy((char *)recvbuf + rdispl[0], (const char *)sendbuf + sdispl[0], send[0]);
        return;
    }
    int *sc = malloc(4 * sizeof(int) * (size_t)g_size);
    if (!sc) DT_FATAL("out of memory");
    int *sd = sc + g_size, *rc = sd + g_size, *rd = rc + g_size;
    for (int r = 0; r < g_size; r++) {
        DT_ASSERT(sdispl[r] + send[r] <= (size_t)INT_MAX && rdispl[r] + recv[r] <= (size_t)INT_MAX);
        sc[r] = (int)send[r];
        sd[r] = (int)sdispl[r];
        rc[r] = (int)recv[r];
        rd[r] = (int)rdispl[r];
    }
    MPI_CHECK(MPI_Alltoallv(sendbuf, sc, sd, MPI_BYTE, recvbuf, rc, rd, MPI_BYTE, MPI_COMM_WORLD));
    free(sc);
}

void dt_allgather_size(size_t mine, size_t *out)
{
    if (!g_active || g_size == 1) {
        out[0] = mine;
        return;
    }
    uint64_t v = mine;
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)g_size);
    if (!all) DT_FATAL("out of memory");
    MPI_CHECK(MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD));
    for (int r = 0; r < g_size; r++) out[r] = (size_t)all[r];
    free(all);
}

int64_t dt_h5_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) DT_FATAL("H5Pcreate failed");
    if (g_active && g_size > 1) {
        if (H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL) < 0)
            DT_FATAL("H5Pset_fapl_mpio failed");
        H5Pset_all_coll_metadata_ops(fapl, 1);
        H5Pset_coll_metadata_write(fapl, 1);
    }
    return fapl;
}

int64_t dt_h5_dxpl(int collective)
{
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl < 0) DT_FATAL("H5Pcreate failed");
    if (g_active && g_size > 1)
        H5Pset_dxpl_mpio(dxpl, collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
    return dxpl;
}
