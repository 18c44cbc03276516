/* comm: everything that talks MPI. The rest of dtrain sees only this face.
 *
 * Without dt_comm_init (unit tests) every call acts as a job of one rank. */
#ifndef DTRAIN_COMM_H
#define DTRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/core.h"

/* MPI_Init_thread (funneled) and the abort hook; sets the log rank. */
void dt_comm_init(int *argc, char ***argv);
void dt_comm_finalize(void);

int dt_rank(void);
int dt_size(void);

/* In-place sums over all ranks. */
void dt_allreduce_sum_f(float *buf, size_t n);
void dt_allreduce_sum_d(double *buf, size_t n);
void dt_allreduce_sum_i64(int64_t *buf, size_t n);
void dt_allreduce_max_d(double *buf, size_t n);
/* Sharded sum: afterwards buf[lo, hi) holds the sum over all ranks of that
 * block, with [lo, hi) = this rank's block of n (dt_shard). Other entries
 * are left undefined. Together with dt_allgather_f it is an allreduce. */
void dt_reduce_scatter_sum_f(float *buf, size_t n);
/* Every rank's block [lo, hi) of buf goes to all ranks. */
void dt_allgather_f(float *buf, size_t n);
/* This rank's block of n items: [n*r/P, n*(r+1)/P). */
void dt_shard(size_t n, size_t *lo, size_t *hi);

/* Groups of ranks (sub-communicators), e.g. the ranks of one CycleGAN domain.
 * NULL in the dt_comm_* calls stands for all ranks. */
typedef struct dt_comm dt_comm;
/* Collective over all ranks: ranks with the same color form a group, ordered by key. */
dt_comm *dt_comm_split(int color, int key);
void dt_comm_free(dt_comm *g);
int dt_comm_rank(const dt_comm *g);
int dt_comm_size(const dt_comm *g);
void dt_comm_shard(const dt_comm *g, size_t n, size_t *lo, size_t *hi);
void dt_comm_reduce_scatter_sum_f(dt_comm *g, float *buf, size_t n);
void dt_comm_allgather_f(dt_comm *g, float *buf, size_t n);
void dt_comm_allreduce_sum_d(dt_comm *g, double *buf, size_t n);
int dt_comm_all_ok(dt_comm *g, int ok);
/* Every rank's int, in rank order, into all (dt_comm_size(g) entries). */
void dt_comm_allgather_int(dt_comm *g, int mine, int *all);
/* A gather of rows every rank receives, started now and finished by
 * dt_comm_wait: rank q's rows[q] rows of w floats land at row at[q] of
 * recv (this rank's from send; send may be recv's own place). The request
 * is opaque; send and recv must stay put, and send unchanged, until then. */
typedef struct {
    unsigned char opaque[16];
} dt_request;
void dt_comm_iallgather_rows(dt_comm *g, const float *send, float *recv, size_t w, const int *rows, const int *at,
                             dt_request *req);
void dt_comm_wait(dt_request *req);
/* n exact sums (dt_xsum), each the sum of every rank's: the same bits
 * however the terms were spread over the ranks */
void dt_comm_xsum(dt_comm *g, dt_xsum *s, size_t n);

/* Memory shared by the ranks of a group that live on one node (MPI-3 shared
 * windows), for exchanges by plain loads and stores instead of messages.
 * dt_comm_can_share: collective; 1 on every rank when the group has several
 * ranks, all on one node, DTRAIN_EXCHANGE is not "messages", and no file
 * size limit forbids windows of `bytes` (they are backed by files).
 * dt_comm_shared_floats: collective; each rank contributes `mine` floats
 * (0 allowed) and part[r] receives the address of group rank r's part
 * (part has dt_comm_size(g) entries). The memory lives until
 * dt_comm_finalize. dt_comm_shared_sync: a barrier over g with memory
 * fences: what any rank stored before it, every rank sees after it. */
int dt_comm_can_share(dt_comm *g, size_t bytes);
void dt_comm_shared_floats(dt_comm *g, size_t mine, float **part);
void dt_comm_shared_sync(dt_comm *g);
void dt_comm_alltoallv_bytes(dt_comm *g, const void *sendbuf, const size_t *send, const size_t *sdispl,
                             void *recvbuf, const size_t *recv, const size_t *rdispl);
/* Send ns floats to world rank dest and receive nr from src in one
 * deadlock-free exchange (MPI_Sendrecv). */
void dt_sendrecv_f(const float *send, size_t ns, int dest, float *recv, size_t nr, int src, int tag);

/* 1 on every rank if ok was nonzero on every rank. */
int dt_all_ok(int ok);
/* Collective check: each rank passes its own ok and, if failed, dt_lasterr()
 * holds the reason. If any rank failed, the lowest failing rank prints
 * `dtrain: error: <reason>` and every rank exits with status 2 together.
 * Use where every rank reaches the same point (no MPI_Abort noise). */
void dt_check_all(int ok);

void dt_bcast(void *buf, size_t bytes, int root);
void dt_barrier(void);

/* Exchange variable-size byte blocks: send[r] bytes to rank r from sendbuf at
 * sdispl[r]; receive recv[r] bytes from rank r into recvbuf at rdispl[r].
 * Counts and displacements are in bytes (converted to element counts here). */
void dt_alltoallv_bytes(const void *sendbuf, const size_t *send, const size_t *sdispl,
                        void *recvbuf, const size_t *recv, const size_t *rdispl);

/* A file-access property list (hid_t) for HDF5: the MPI-IO driver over all
 * ranks when MPI is active, the default driver otherwise. Caller closes it.
 * With MPI-IO, H5Fopen/H5Fcreate/H5Dcreate/H5Dclose/H5Fclose are collective. */
int64_t dt_h5_fapl(void);
/* A transfer property list for collective (1) or independent (0) I/O. */
int64_t dt_h5_dxpl(int collective);

/* ---- cluster operation ---- */
/* dt_check_all(ok) and, in the same single reduction, the largest value over
 * the ranks (e.g. the stop signal any rank received). */
int dt_check_all_max(int ok, int value);
/* Host names of all ranks, `each` bytes per rank in rank order, on rank 0
 * (NULL elsewhere; caller frees). Collective. */
char *dt_gather_hosts(size_t each);

#endif
