/* The sharded loader under MPI: for every global batch, the union of the
 * ranks' shards must be exactly the single-rank batch (the P-independent
 * epoch order), each rank's shard the documented slice, and the pixels those
 * of a direct read. Prints a digest of everything seen so runs with
 * different rank counts can be compared; exits 1 on any mismatch.
 *
 *   loader_check --make FILE   build a small synthetic data set (rank 0)
 *   loader_check FILE          check the loader on it */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"

static int g_fail = 0;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            if (g_fail++ < 10) {                                                         \
                char m_[512];                                                            \
                snprintf(m_, sizeof m_, __VA_ARGS__);                                    \
                fprintf(stderr, "loader_check rank %d: %s\n", dt_rank(), m_);            \
            }                                                                            \
        }                                                                                \
    } while (0)

/* FNV-1a over the run, for the cross-rank-count digest. */
static uint64_t g_digest = 1469598103934665603ull;
static void mix(uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        g_digest ^= (v >> (8 * i)) & 0xff;
        g_digest *= 1099511628211ull;
    }
}

static void check_epoch(dt_loader *ld, dt_split *sp, size_t B, uint64_t epoch, size_t first_batch)
{
    size_t N = dt_split_len(sp), nb = dt_loader_nbatches(ld);
    int P = dt_size(), r = dt_rank();
    uint32_t *order = dt_alloc(N * sizeof(uint32_t));
    dt_loader_order(ld, epoch, 0, N, order);
    int64_t *glob = dt_alloc(2 * B * sizeof(int64_t)); /* index + 1, owner rank + 1 */
    uint8_t *img = dt_alloc(B * DT_IMG), *dg = dt_alloc(B), *co = dt_alloc(B);
    double *sum = dt_alloc(sizeof(double));
    if (first_batch) dt_loader_seek(ld, epoch, first_batch);
    else dt_loader_start_epoch(ld, epoch);
    dt_batch b;
    for (size_t k = first_batch; k < nb; k++) {
        int rc = dt_loader_next(ld, &b);
        CHECK(rc == 1, "%s B=%zu epoch %llu: next returned %d at batch %zu (%s)", dt_split_name(sp), B,
              (unsigned long long)epoch, rc, k, dt_lasterr());
        if (rc != 1) break;
        size_t s = k * B, bb = N - s < B ? N - s : B;
        size_t lo = s + bb * (size_t)r / (size_t)P, hi = s + bb * (size_t)(r + 1) / (size_t)P;
        CHECK(b.batch_index == k && b.global_n == bb && b.n == hi - lo,
              "batch %zu: index %zu global_n %zu n %zu, expected %zu %zu %zu", k, b.batch_index,
              b.global_n, b.n, k, bb, hi - lo);
        memset(glob, 0, 2 * B * sizeof(int64_t));
        sum[0] = 0;
        for (size_t i = 0; i < b.n; i++) {
            CHECK(b.pos[i] == lo + i, "batch %zu: local %zu at position %llu, expected %zu", k, i,
                  (unsigned long long)b.pos[i], lo + i);
            size_t o = b.pos[i] - s;
            if (o < B) {
                glob[2 * o] += (int64_t)b.index[i] + 1;
                glob[2 * o + 1] += r + 1;
            }
            for (size_t j = 0; j < DT_IMG; j++) sum[0] += (double)b.x[i * DT_IMG + j] * 255.0;
        }
        /* the pixels are those of a direct read (small batches: the first
         * 100, to keep the run short) */
        if (b.n && (B >= 64 || k < first_batch + 100)) {
            CHECK(dt_split_read(sp, b.index, b.n, img, dg, co) == 0, "read: %s", dt_lasterr());
            size_t bad = 0;
            for (size_t j = 0; j < b.n * DT_IMG; j++) bad += b.x[j] != (float)img[j] / 255.0f;
            CHECK(bad == 0 && memcmp(dg, b.digits, b.n) == 0 && memcmp(co, b.colors, b.n) == 0,
                  "batch %zu: %zu pixels differ from a direct read", k, bad);
        }
        /* the global batch is the P = 1 batch: order[s .. s + bb) */
        dt_allreduce_sum_i64(glob, 2 * B);
        dt_allreduce_sum_d(sum, 1);
        size_t bad = 0;
        for (size_t o = 0; o < bb; o++) {
            bad += glob[2 * o] != (int64_t)order[s + o] + 1;
            mix((uint64_t)glob[2 * o]);
        }
        for (size_t o = bb; o < B; o++) bad += glob[2 * o] != 0;
        mix((uint64_t)sum[0]);
        CHECK(bad == 0, "%s B=%zu epoch %llu batch %zu: %zu positions differ from the 1-rank order",
              dt_split_name(sp), B, (unsigned long long)epoch, k, bad);
    }
    CHECK(dt_loader_next(ld, &b) == 0, "no end of epoch after %zu batches", nb);
    dt_free(order);
    dt_free(glob);
    dt_free(img);
    dt_free(dg);
    dt_free(co);
    dt_free(sum);
}

int main(int argc, char **argv)
{
    dt_comm_init(&argc, &argv);
    if (argc == 3 && strcmp(argv[1], "--make") == 0) {
        int ok = 1;
        if (dt_rank() == 0) {
            dt_prepare_opts o = {.synthetic = 1, .out = argv[2], .seed = 3, .quiet = 1,
                                 .mnist_dir = "/nonexistent"};
            ok = dt_prepare(&o) == 0;
        }
        dt_check_all(ok);
        dt_comm_finalize();
        return 0;
    }
    if (argc != 2) {
        if (dt_rank() == 0) fprintf(stderr, "usage: loader_check [--make] FILE\n");
        dt_comm_finalize();
        return 2;
    }
    double t0 = dt_now();
    dt_dataset *ds = dt_dataset_open(argv[1]);
    dt_check_all(ds != NULL);
    static const char *const splits[2] = {"vae/train", "cyclegan/B/test"};
    static const size_t batches[3] = {128, 100, 7};
    for (int s = 0; s < 2; s++) {
        dt_split *sp = dt_split_open(ds, splits[s]);
        dt_check_all(sp != NULL);
        for (int bi = 0; bi < 3; bi++) {
            size_t B = batches[bi];
            dt_loader *ld = dt_loader_create(sp, B, 17, 1);
            check_epoch(ld, sp, B, 0, 0);
            check_epoch(ld, sp, B, 1, 0);
            /* resume in the middle of epoch 1 */
            check_epoch(ld, sp, B, 1, dt_loader_nbatches(ld) / 2 + 1);
            dt_loader_free(ld);
        }
        /* no shuffle */
        dt_loader *ld = dt_loader_create(sp, 64, 17, 0);
        check_epoch(ld, sp, 64, 0, 0);
        dt_loader_free(ld);
        dt_split_close(sp);
    }
    dt_dataset_close(ds);
    int64_t fails = g_fail;
    dt_allreduce_sum_i64(&fails, 1);
    if (dt_rank() == 0) {
        printf("loader_check: %d rank(s): %s, digest %016llx, %.2f s, peak RSS %zu MB (rank 0)\n",
               dt_size(), fails ? "FAILED" : "ok", (unsigned long long)g_digest, dt_now() - t0,
               dt_peak_rss() >> 20);
        fflush(stdout);
    }
    dt_comm_finalize();
    return fails ? 1 : 0;
}
