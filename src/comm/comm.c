/* The only file that calls MPI (and the MPI-IO parts of HDF5). */
#include "dtrain/comm.h"

#include <hdf5.h>
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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

void dt_comm_init(int *argc, char ***argv)
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

static void shared_free_all(void);

void dt_comm_finalize(void)
{
    if (!g_active) return;
    shared_free_all();
    MPI_Finalize();
    g_active = 0;
    dt_set_abort_hook(NULL);
}

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

/* A group of ranks (a sub-communicator); NULL stands for all ranks. */
struct dt_comm {
    MPI_Comm c;
    int rank, size;
};

static MPI_Comm comm_of(const dt_comm *g) { return g ? g->c : MPI_COMM_WORLD; }
static int rank_of(const dt_comm *g) { return g ? g->rank : g_rank; }
static int size_of(const dt_comm *g) { return g ? g->size : g_size; }

dt_comm *dt_comm_split(int color, int key)
{
    dt_comm *g = calloc(1, sizeof *g);
    if (!g) DT_FATAL("out of memory");
    if (!g_active) {
        g->c = MPI_COMM_NULL;
        g->size = 1;
        return g;
    }
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, key, &g->c));
    MPI_Comm_rank(g->c, &g->rank);
    MPI_Comm_size(g->c, &g->size);
    return g;
}

void dt_comm_free(dt_comm *g)
{
    if (!g) return;
    if (g->c != MPI_COMM_NULL && g_active) MPI_Comm_free(&g->c);
    free(g);
}

int dt_comm_rank(const dt_comm *g) { return rank_of(g); }
int dt_comm_size(const dt_comm *g) { return size_of(g); }

void dt_comm_shard(const dt_comm *g, size_t n, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)rank_of(g) / (size_t)size_of(g);
    *hi = n * (size_t)(rank_of(g) + 1) / (size_t)size_of(g);
}

void dt_shard(size_t n, size_t *lo, size_t *hi) { dt_comm_shard(NULL, n, lo, hi); }

/* counts and displacements of the P blocks of n floats */
static int *blocks(size_t n, int P)
{
    DT_ASSERT(n <= (size_t)INT_MAX);
    int *c = malloc(2 * sizeof(int) * (size_t)P);
    if (!c) DT_FATAL("out of memory");
    for (int r = 0; r < P; r++) {
        size_t lo = n * (size_t)r / (size_t)P, hi = n * (size_t)(r + 1) / (size_t)P;
        c[r] = (int)(hi - lo);
        c[P + r] = (int)lo;
    }
    return c;
}

void dt_comm_reduce_scatter_sum_f(dt_comm *g, float *buf, size_t n)
{
    int P = size_of(g), r = rank_of(g);
    if (!g_active || P == 1) return;
    int *c = blocks(n, P);
    /* in place, the result lands at the start of buf: move it to its block */
    MPI_CHECK(MPI_Reduce_scatter(MPI_IN_PLACE, buf, c, MPI_FLOAT, MPI_SUM, comm_of(g)));
    if (c[P + r] > 0) memmove(buf + c[P + r], buf, sizeof(float) * (size_t)c[r]);
    free(c);
}

void dt_comm_allgather_f(dt_comm *g, float *buf, size_t n)
{
    int P = size_of(g);
    if (!g_active || P == 1) return;
    int *c = blocks(n, P);
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, c, c + P, MPI_FLOAT, comm_of(g)));
    free(c);
}

void dt_comm_allreduce_sum_d(dt_comm *g, double *buf, size_t n)
{
    if (!g_active || size_of(g) == 1) return;
    DT_ASSERT(n <= (size_t)INT_MAX);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, comm_of(g)));
}

void dt_comm_allgather_int(dt_comm *g, int mine, int *all)
{
    if (!g_active || size_of(g) == 1) {
        all[0] = mine;
        return;
    }
    MPI_CHECK(MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, comm_of(g)));
}

_Static_assert(sizeof(MPI_Request) <= sizeof(dt_request), "dt_request holds an MPI_Request");

void dt_comm_iallgather_rows(dt_comm *g, const float *send, float *recv, size_t w, const int *rows, const int *at,
                             dt_request *req)
{
    int P = size_of(g), r = rank_of(g);
    MPI_Request q = MPI_REQUEST_NULL;
    if (!g_active || P == 1) {
        if (rows[0] && send != recv) memmove(recv + (size_t)at[0] * w, send, sizeof(float) * (size_t)rows[0] * w);
    } else {
        /* one row of w floats as the unit: counts stay ints for any batch */
        MPI_Datatype row;
        DT_ASSERT(w <= (size_t)INT_MAX);
        MPI_CHECK(MPI_Type_contiguous((int)w, MPI_FLOAT, &row));
        MPI_CHECK(MPI_Type_commit(&row));
        const void *from = send == recv + (size_t)at[r] * w ? MPI_IN_PLACE : send;
        MPI_CHECK(MPI_Iallgatherv(from, rows[r], row, recv, rows, at, row, comm_of(g), &q));
        MPI_CHECK(MPI_Type_free(&row)); /* freed when the gather is done */
    }
    memcpy(req->opaque, &q, sizeof q);
}

void dt_comm_wait(dt_request *req)
{
    MPI_Request q;
    memcpy(&q, req->opaque, sizeof q);
    if (q != MPI_REQUEST_NULL) MPI_CHECK(MPI_Wait(&q, MPI_STATUS_IGNORE));
    memcpy(req->opaque, &q, sizeof q);
}

void dt_comm_xsum(dt_comm *g, dt_xsum *s, size_t n)
{
    if (!g_active || size_of(g) == 1) return;
    DT_ASSERT(n <= (size_t)INT_MAX / DT_XSUM_WORDS);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, s, (int)(n * DT_XSUM_WORDS), MPI_INT64_T, MPI_SUM, comm_of(g)));
}

void dt_reduce_scatter_sum_f(float *buf, size_t n) { dt_comm_reduce_scatter_sum_f(NULL, buf, n); }

/* ---- node-shared memory (MPI-3 shared windows) ---------------------------- */

static MPI_Win *g_wins;
static int g_nwins;

static void shared_free_all(void)
{
    /* collective: every rank created the same windows in the same order */
    for (int i = g_nwins - 1; i >= 0; i--) MPI_Win_free(&g_wins[i]);
    free(g_wins);
    g_wins = NULL;
    g_nwins = 0;
}

int dt_comm_can_share(dt_comm *g, size_t bytes)
{
    int P = size_of(g);
    if (!g_active || P == 1) return 0;
    const char *e = getenv("DTRAIN_EXCHANGE");
    int want = !(e && strcmp(e, "messages") == 0);
    /* the windows are backed by files: a file size limit (ulimit -f) below
     * their size would make the allocation fail */
    struct rlimit fsize;
    if (getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY && fsize.rlim_cur < bytes) want = 0;
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(comm_of(g), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    int nsize;
    MPI_Comm_size(node, &nsize);
    MPI_Comm_free(&node);
    /* all of the group on one node, and every rank willing */
    int ok = want && nsize == P;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm_of(g)));
    return ok;
}

void dt_comm_shared_floats(dt_comm *g, size_t mine, float **part)
{
    DT_ASSERT(g_active);
    int P = size_of(g);
    mine = (mine + 15) & ~(size_t)15; /* whole cache lines */
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true"); /* each part on its own pages */
    MPI_Win *w = realloc(g_wins, sizeof(MPI_Win) * (size_t)(g_nwins + 1));
    if (!w) DT_FATAL("out of memory");
    g_wins = w;
    float *base;
    MPI_CHECK(MPI_Win_allocate_shared((MPI_Aint)(mine * sizeof(float)), (int)sizeof(float), info, comm_of(g), &base,
                                      &g_wins[g_nwins]));
    MPI_Info_free(&info);
    for (int r = 0; r < P; r++) {
        MPI_Aint size;
        int disp;
        MPI_CHECK(MPI_Win_shared_query(g_wins[g_nwins], r, &size, &disp, &part[r]));
    }
    g_nwins++;
}

void dt_comm_shared_sync(dt_comm *g)
{
    if (!g_active || size_of(g) == 1) return;
    /* Stores before the barrier are visible to loads after it on every rank
     * of the node: full fences around the process synchronization. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    MPI_CHECK(MPI_Barrier(comm_of(g)));
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
void dt_allgather_f(float *buf, size_t n) { dt_comm_allgather_f(NULL, buf, n); }

void dt_sendrecv_f(const float *send, size_t ns, int dest, float *recv, size_t nr, int src, int tag)
{
    DT_ASSERT(g_active && ns <= (size_t)INT_MAX && nr <= (size_t)INT_MAX);
    /* one combined call: neither side can wait on the other's send first */
    MPI_CHECK(MPI_Sendrecv(send, (int)ns, MPI_FLOAT, dest, tag, recv, (int)nr, MPI_FLOAT, src, tag, MPI_COMM_WORLD,
                           MPI_STATUS_IGNORE));
}

int dt_comm_all_ok(dt_comm *g, int ok)
{
    int v = ok ? 1 : 0;
    if (g_active && size_of(g) > 1) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, comm_of(g)));
    return v;
}

int dt_all_ok(int ok) { return dt_comm_all_ok(NULL, ok); }

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
    dt_comm_finalize();
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
    dt_comm_alltoallv_bytes(NULL, sendbuf, send, sdispl, recvbuf, recv, rdispl);
}

void dt_comm_alltoallv_bytes(dt_comm *g, const void *sendbuf, const size_t *send, const size_t *sdispl,
                             void *recvbuf, const size_t *recv, const size_t *rdispl)
{
    int P = size_of(g);
    if (!g_active || P == 1) {
        if (send[0]) memcpy((char *)recvbuf + rdispl[0], (const char *)sendbuf + sdispl[0], send[0]);
        return;
    }
    int *sc = malloc(4 * sizeof(int) * (size_t)P);
    if (!sc) DT_FATAL("out of memory");
    int *sd = sc + P, *rc = sd + P, *rd = rc + P;
    for (int r = 0; r < P; r++) {
        DT_ASSERT(sdispl[r] + send[r] <= (size_t)INT_MAX && rdispl[r] + recv[r] <= (size_t)INT_MAX);
        sc[r] = (int)send[r];
        sd[r] = (int)sdispl[r];
        rc[r] = (int)recv[r];
        rd[r] = (int)rdispl[r];
    }
    MPI_CHECK(MPI_Alltoallv(sendbuf, sc, sd, MPI_BYTE, recvbuf, rc, rd, MPI_BYTE, comm_of(g)));
    free(sc);
}

int64_t dt_h5_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) DT_FATAL("H5Pcreate failed");
    if (g_active && g_size > 1) {
        if (H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL) < 0)
            DT_FATAL("H5Pset_fapl_mpio failed");
        /* Metadata reads stay independent: rank 0 alone reads images for the
         * pictures, and a collective metadata read there would wait forever for
         * the other ranks. Metadata writes (file and dataset creation) are collective anyway. */
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

/* ==== cluster operation: stop agreement and host names ====================== */

#include <unistd.h> /* gethostname */

int dt_check_all_max(int ok, int value)
{
    /* one reduction, MPI_MAX on both: -(lowest failing rank), and value */
    int v[2] = {ok ? INT_MIN : -g_rank, value};
    allreduce(v, 2, MPI_INT, MPI_MAX);
    if (v[0] != INT_MIN) {
        if (g_rank == -v[0]) {
            fflush(stdout);
            fprintf(stderr, "dtrain: error: %s\n", dt_lasterr());
            fflush(stderr);
        }
        dt_comm_finalize();
        exit(DT_EXIT_USAGE);
    }
    return v[1];
}

char *dt_gather_hosts(size_t each)
{
    char *mine = calloc(1, each);
    if (!mine) DT_FATAL("out of memory");
    if (gethostname(mine, each - 1) != 0) snprintf(mine, each, "?");
    char *all = NULL;
    if (g_rank == 0) {
        all = calloc((size_t)g_size, each);
        if (!all) DT_FATAL("out of memory");
    }
    if (!g_active || g_size == 1) {
        memcpy(all, mine, each);
    } else {
        DT_ASSERT(each <= (size_t)INT_MAX);
        MPI_CHECK(MPI_Gather(mine, (int)each, MPI_CHAR, all, (int)each, MPI_CHAR, 0, MPI_COMM_WORLD));
    }
    free(mine);
    return all;
}
