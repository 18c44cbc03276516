/* `dtrain vae` (and the other VAE commands): data parallel training, test
 * evaluation, checkpoints, embeddings and pictures, the same for every variant.
 *
 * One step on every rank:
 *   local shard of the global batch -> forward -> backward scaled by 1/global_n
 *   -> allreduce(sum) of the one gradient block -> identical Adam step. */
#include <cblas.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/ckpt.h"
#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"
#include "dtrain/guard.h"
#include "dtrain/h5.h"
#include "dtrain/report.h"
#include "dtrain/runctl.h"
#include "dtrain/step.h"
#include "dtrain/vae.h"
#include "dtrain/vae_run.h"

static const dt_vae_kind *const KINDS[] = {&dt_vae_continuous, &dt_vae_discrete, &dt_vae_joint};

const dt_vae_kind *dt_vae_kind_find(const char *name)
{
    for (size_t i = 0; i < sizeof KINDS / sizeof *KINDS; i++)
        if (strcmp(KINDS[i]->name, name) == 0) return KINDS[i];
    return NULL;
}

void dt_vae_opts_default(dt_vae_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 30;
    o->batch = 128;
    o->lr = 1e-3f;
    o->seed = 1;
    o->N = 2;
    o->K = 10;
    o->tau0 = 1.0f;
    o->tau_min = 0.5f;
    o->anneal_rate = 3e-4f;
    o->anneal_every = 100;
    o->sample_std = 1.0f;
    o->kl_start = 1.0f;
    o->kl_warmup = 0;
}

/* Defaults that differ by model: the discrete VAE as literally specified
 * collapses (every variable on one category within the first epoch), a KL
 * weight that starts well above 1 and falls to 1 avoids it. */
static void model_defaults(const char *model, dt_vae_opts *o)
{
    if (strcmp(model, "dvae") == 0) {
        o->kl_start = 20.0f;
        o->kl_warmup = 1000;
    }
}

void dt_vae_arch(const dt_vae *m, char *buf, size_t len)
{
    /* the batch size is part of it: the data position is counted in batches */
    if (strcmp(m->kind->name, "vae") == 0)
        snprintf(buf, len, "%s head=%d latent=%d batch=%zu", m->kind->name, m->H, m->Z, m->opts.batch);
    else
        snprintf(buf, len, "%s head=%d latent=%d N=%d K=%d batch=%zu", m->kind->name, m->H, m->Z, m->opts.N,
                 m->opts.K, m->opts.batch);
}

int dt_threads_setup(int requested)
{
    int n = requested;
    if (n <= 0) {
        const char *env = getenv("OPENBLAS_NUM_THREADS");
        if (env && atoi(env) > 0)
            n = atoi(env);
        else if (dt_size() > 1)
            n = 1; /* one thread per rank: the ranks fill the cores */
        else {
            cpu_set_t set;
            n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        }
    }
    openblas_set_num_threads(n);
    dt_gemm_set_threads(n);
    return n;
}

/* Make sure the data file exists: rank 0 prepares it from the default
 * sources if it is missing; every rank learns the outcome. */
int dt_ensure_data(const char *path)
{
    int ok = 1;
    if (dt_rank() == 0 && access(path, F_OK) != 0) {
        dt_log("dtrain: %s not found; preparing it (see `dtrain prepare --help`)\n", path);
        dt_prepare_opts po = {.out = path};
        ok = dt_prepare(&po) == 0;
    }
    dt_check_all(ok);
    return 0;
}

void dt_data_identify(const dt_dataset *ds, const dt_resume_info *info, char hex[65])
{
    const char *path = dt_dataset_path(ds);
    memcpy(hex, dt_dataset_sha256(ds), 65);
    if (!info->resumed || strcmp(hex, info->meta.data_sha256) == 0) return;
    dt_seterr("--data %s (sha256 %.12s) is not the data set this run was trained on (sha256 %.12s, checkpoint %s): "
              "give that file with --data, or start a new run in another --out",
              path, hex, info->meta.data_sha256, info->from);
    dt_check_all(0);
}

/* ---- evaluation over a contiguous block of a split -------------------------- */

/* The rank's block of n items: [n*r/P, n*(r+1)/P). */
void dt_block_range(size_t n, size_t *lo, size_t *hi)
{
    size_t P = (size_t)dt_size(), r = (size_t)dt_rank();
    *lo = n * r / P;
    *hi = n * (r + 1) / P;
}

typedef struct {
    dt_vae *m;
    dt_split *test;
    size_t N, lo, hi;
    uint8_t *bytes;    /* (maxB, 2352) staging */
    uint32_t *idx;     /* (maxB) */
    uint64_t *gidx;    /* (maxB) */
    float *stats[4];   /* (N, width) global arrays, this rank's rows filled */
    uint8_t *digits, *colors; /* (N) */
} evaluator;

static void eval_init(evaluator *e, dt_vae *m, dt_split *test)
{
    memset(e, 0, sizeof *e);
    e->m = m;
    e->test = test;
    e->N = dt_split_len(test);
    dt_block_range(e->N, &e->lo, &e->hi);
    e->bytes = dt_alloc((size_t)m->maxB * DT_IMG);
    e->idx = dt_alloc(sizeof(uint32_t) * (size_t)m->maxB);
    e->gidx = dt_alloc(sizeof(uint64_t) * (size_t)m->maxB);
    for (int k = 0; k < m->kind->nstats; k++)
        e->stats[k] = dt_alloc_floats(e->N * (size_t)m->kind->stat_width(&m->opts, k));
    e->digits = dt_alloc(e->N);
    e->colors = dt_alloc(e->N);
}

static void eval_free(evaluator *e)
{
    dt_free(e->bytes);
    dt_free(e->idx);
    dt_free(e->gidx);
    for (int k = 0; k < 4; k++) dt_free(e->stats[k]);
    dt_free(e->digits);
    dt_free(e->colors);
}

void dt_bytes_to_float(float *x, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)b[i] * (1.0f / 255.0f);
}

/* Test losses with fixed noise (sums over all images, all ranks); fills the
 * rank's rows of the statistics. -1 on a read error (collective outcome). */
static int evaluate(evaluator *e, uint64_t step, double *sums)
{
    dt_vae *m = e->m;
    int nt = 1 + m->kind->nterms, ok = 1;
    for (int k = 0; k < nt; k++) sums[k] = 0;
    for (size_t i = e->lo; i < e->hi && ok; i += (size_t)m->maxB) {
        int B = (int)(e->hi - i < (size_t)m->maxB ? e->hi - i : (size_t)m->maxB);
        for (int j = 0; j < B; j++) e->idx[j] = (uint32_t)(i + (size_t)j), e->gidx[j] = i + (size_t)j;
        if (dt_split_read(e->test, e->idx, (size_t)B, e->bytes, e->digits + i, e->colors + i) < 0) {
            ok = 0;
            break;
        }
        dt_bytes_to_float(m->x, e->bytes, (size_t)B * DT_IMG);
        dt_vae_forward(m, B, e->gidx, step, 1, sums); /* step: the temperature now */
        for (int k = 0; k < m->kind->nstats; k++) {
            size_t w = (size_t)m->kind->stat_width(&m->opts, k);
            memcpy(e->stats[k] + i * w, m->kind->stat(m, k), sizeof(float) * w * (size_t)B);
        }
    }
    if (!dt_all_ok(ok)) return -1;
    dt_allreduce_sum_d(sums, (size_t)nt);
    return 0;
}

/* Every rank's rows -> the whole arrays on every rank (rows are disjoint). */
static void eval_gather(evaluator *e)
{
    dt_vae *m = e->m;
    for (int k = 0; k < m->kind->nstats; k++)
        dt_allreduce_sum_f(e->stats[k], e->N * (size_t)m->kind->stat_width(&m->opts, k));
    /* labels as floats would lose nothing, but bytes are simpler through doubles */
    double *tmp = dt_alloc(sizeof(double) * e->N * 2);
    for (size_t i = e->lo; i < e->hi; i++) tmp[2 * i] = e->digits[i], tmp[2 * i + 1] = e->colors[i];
    dt_allreduce_sum_d(tmp, e->N * 2);
    for (size_t i = 0; i < e->N; i++) e->digits[i] = (uint8_t)tmp[2 * i], e->colors[i] = (uint8_t)tmp[2 * i + 1];
    dt_free(tmp);
}

/* ---- embeddings: one HDF5 file, every rank writes its rows collectively ------ */

static int stat_index(const dt_vae *m, const char *name)
{
    for (int k = 0; k < m->kind->nstats; k++)
        if (strcmp(m->kind->stats[k], name) == 0) return k;
    return -1;
}

/* Collective: dataset name of (n, w) float32 (bytes: uint8; w = 1: 1-D), this
 * rank writing rows [lo, lo + rows) from buf. */
static int write_rows(hid_t f, hid_t dxpl, const char *name, int bytes, size_t n, size_t w, size_t lo, size_t rows,
                      const void *buf)
{
    int nd = w > 1 ? 2 : 1;
    hsize_t dims[2] = {n, w}, start[2] = {lo, 0}, count[2] = {rows, w};
    hid_t fs = H5Screate_simple(nd, dims, NULL);
    hid_t d = H5Dcreate2(f, name, bytes ? H5T_STD_U8LE : H5T_IEEE_F32LE, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(nd, count, NULL);
    if (rows)
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    else {
        H5Sselect_none(fs);
        H5Sselect_none(ms);
    }
    int rc = d >= 0 && H5Dwrite(d, bytes ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, ms, fs, dxpl, buf) >= 0 ? 0 : -1;
    H5Sclose(ms);
    H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return rc;
}

static int write_embeddings(evaluator *e, const char *path, const char *ckpt_note)
{
    dt_vae *m = e->m;
    dt_h5_quiet();
    char *tmp = dt_tmp_path(path);
    /* the same temporary name on every rank: rank 0's */
    size_t len = strlen(tmp) + 1;
    dt_bcast(tmp, len, 0);
    hid_t fapl = (hid_t)dt_h5_fapl();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (!dt_all_ok(f >= 0)) {
        if (f >= 0) H5Fclose(f);
        dt_seterr("cannot create embeddings file %s", path);
        dt_free(tmp);
        return -1;
    }
    hid_t dxpl = (hid_t)dt_h5_dxpl(1);
    size_t rows = e->hi - e->lo;
    int rc = 0;
    for (int k = 0; k < m->kind->nstats; k++) {
        size_t w = (size_t)m->kind->stat_width(&m->opts, k);
        rc |= write_rows(f, dxpl, m->kind->stats[k], 0, e->N, w, e->lo, rows, e->stats[k] + e->lo * w);
    }
    int q = stat_index(m, "q");
    if (q >= 0) { /* the most likely category of each variable */
        size_t nv = (size_t)m->opts.N;
        uint8_t *codes = dt_alloc(rows * nv + 1);
        dt_cat_argmax(codes, e->stats[q] + e->lo * nv * (size_t)m->opts.K, rows, m->opts.N, m->opts.K);
        rc |= write_rows(f, dxpl, "argmax", 1, e->N, nv, e->lo, rows, codes);
        dt_free(codes);
    }
    rc |= write_rows(f, dxpl, "digits", 1, e->N, 1, e->lo, rows, e->digits + e->lo);
    rc |= write_rows(f, dxpl, "colors", 1, e->N, 1, e->lo, rows, e->colors + e->lo);
    rc |= dt_h5_attr_str(f, "model", m->kind->name);
    rc |= dt_h5_attr_str(f, "checkpoint", ckpt_note);
    rc |= dt_h5_attr_str(f, "split", "vae/test");
    rc |= dt_h5_attr_str(f, "version", DT_VERSION);
    H5Pclose(dxpl);
    if (H5Fclose(f) < 0) rc = -1;
    int ok = dt_all_ok(rc == 0);
    if (dt_rank() == 0) {
        if (ok)
            ok = dt_commit_file(tmp, path) == 0;
        else
            unlink(tmp);
    }
    ok = dt_all_ok(ok);
    dt_free(tmp);
    if (!ok) return dt_seterr("writing embeddings %s failed", path);
    return 0;
}

/* ---- the command ----------------------------------------------------------- */

typedef struct {
    const char *data, *out;
    dt_run_opts run; /* --resume, --stop-signal, --step-timeout */
    dt_vae_opts o;
    dt_settings settings;  /* every option's value, for the checkpoints */
    char data_sha256[65];  /* of the data file */
    int64_t epoch_steps;   /* steps in one epoch */
} run_args;

/* The options of `dtrain <model>` over a, set to their defaults; their count. */
static int vae_options(const char *model, run_args *a, dt_opt *opts)
{
    static char out_default[256];
    snprintf(out_default, sizeof out_default, "results/%s", model);
    memset(a, 0, sizeof *a);
    a->data = DT_DATA_DEFAULT_PATH;
    a->out = out_default;
    dt_run_opts_default(&a->run);
    dt_vae_opts_default(&a->o);
    model_defaults(model, &a->o);
    int discrete = strcmp(model, "vae") != 0;
    const dt_opt table[] = {
        {"data", DT_OPT_STR, &a->data, "FILE", "colored-MNIST HDF5 file (prepared if missing)", 1, 0},
        {"epochs", DT_OPT_INT, &a->o.epochs, "N", "epochs to train", 0, 100000},
        {"batch", DT_OPT_SIZE, &a->o.batch, "N", "global batch size (split over the ranks)", 1, 1 << 20},
        {"lr", DT_OPT_FLOAT, &a->o.lr, "X", "Adam learning rate", 0, 10},
        {"seed", DT_OPT_U64, &a->o.seed, "N", "seed of initialization, order and noise", 1, 0},
        {"out", DT_OPT_STR, &a->out, "DIR", "output folder", 1, 0},
        DT_RUN_OPT_RESUME(&a->run),
        DT_RUN_OPT_OVERWRITE(&a->run),
        {"checkpoint-every", DT_OPT_LONG, &a->o.checkpoint_every, "N",
         "also checkpoint every N steps (0: at each epoch's end only)", 0, 1e12},
        {"threads", DT_OPT_INT, &a->o.threads, "N", "threads per rank (0: auto)", 0, 1024},
        {"max-steps", DT_OPT_LONG, &a->o.max_steps, "N",
         "stop after N optimizer steps in all (checkpoint kept; 0: no limit)", 0, 1e15},
        DT_RUN_OPT_STOP(&a->run),
        DT_RUN_OPT_TIMEOUT(&a->run),
        /* discrete part: dvae and jvae only (they come last, see n below) */
        {"N", DT_OPT_INT, &a->o.N, "N", "categorical variables", 1, 64},
        {"K", DT_OPT_INT, &a->o.K, "K", "categories per variable", 2, 256},
        {"tau0", DT_OPT_FLOAT, &a->o.tau0, "X", "Gumbel-softmax temperature at step 0", 1e-3, 100},
        {"tau-min", DT_OPT_FLOAT, &a->o.tau_min, "X", "lowest temperature", 1e-3, 100},
        {"anneal-rate", DT_OPT_FLOAT, &a->o.anneal_rate, "X", "tau = max(tau0 exp(-rate t), tau_min)", 0, 1},
        {"anneal-every", DT_OPT_INT, &a->o.anneal_every, "N", "recompute tau every N steps", 1, 1000000},
        {"hard", DT_OPT_FLAG, &a->o.hard, NULL, "straight-through one-hot samples", 1, 0},
        {"kl-start", DT_OPT_FLOAT, &a->o.kl_start, "X",
         "weight of the discrete KL at step 0, falling linearly to 1 (1: the report's recipe)", 0, 1000},
        {"kl-warmup", DT_OPT_LONG, &a->o.kl_warmup, "N", "steps over which that weight reaches 1", 0, 1e12},
        {"sample-std", DT_OPT_FLOAT, &a->o.sample_std, "X",
         "standard deviation of the continuous part in generated pictures", 0, 100},
    };
    int n = (int)(sizeof table / sizeof *table) - (discrete ? 0 : 10);
    DT_ASSERT(n <= DT_OPTS_MAX);
    memcpy(opts, table, sizeof *opts * (size_t)n);
    return n;
}

/* Collective: the command line, then, when resuming, the checkpoint's
 * settings (info: what is resumed; it must outlive a). */
static void parse(const char *model, run_args *a, int argc, char **argv, dt_resume_info *info)
{
    dt_opt opts[DT_OPTS_MAX];
    unsigned char given[DT_OPTS_MAX];
    int n = vae_options(model, a, opts);
    char usage[320];
    snprintf(usage, sizeof usage,
             "usage: [mpirun -np N] dtrain %s [options]\n\nTrain the %s on colored MNIST, data parallel over the "
             "MPI ranks.\nWrites pictures, metrics.csv, summary.json, checkpoint.h5 and embeddings.h5 into --out.\n",
             model, dt_vae_kind_find(model)->title);
    int rc = dt_opts_parse_or_exit(opts, n, argc, argv, usage, given);
    dt_check_all(rc == 0);
    dt_run_resume(&a->run, a->out, model, info);
    if (info->resumed) {
        /* --resume auto: the folder that held the checkpoint is the run's */
        const char *const keep[] = {strcmp(a->run.resume, "auto") == 0 ? "out" : NULL, NULL};
        dt_check_all(dt_opts_resume(opts, n, given, &info->meta.settings, keep, info->from) == 0);
    }
    dt_check_all(dt_opts_settings(opts, n, &a->settings) == 0);
    if (!dt_all_ok(a->o.batch >= (size_t)dt_size())) {
        dt_seterr("--batch %zu is smaller than the number of ranks (%d): every rank needs at least one image",
                  a->o.batch, dt_size());
        dt_check_all(0);
    }
}

/* rank 0: the checkpoint at path into the model; epoch_steps: 0 unchecked */
static int load_model(const char *path, dt_vae *m, dt_adam *adam, int64_t epoch_steps, dt_ckpt_meta *meta)
{
    char arch[128];
    dt_vae_arch(m, arch, sizeof arch);
    dt_params *nets[1] = {&m->p};
    return dt_ckpt_load(path, m->kind->name, arch, epoch_steps, meta, nets, adam, 1);
}

/* what rank 0 loaded, to every rank: the same bits */
static void share_state(dt_vae *m, dt_adam *adam)
{
    dt_bcast(adam, sizeof *adam, 0);
    dt_bcast(m->p.w, m->p.n * sizeof(float), 0);
    dt_bcast(m->p.m, m->p.n * sizeof(float), 0);
    dt_bcast(m->p.v, m->p.n * sizeof(float), 0);
}

/* rank 0 loads, everyone receives the same bits */
static void resume_from(const char *path, dt_vae *m, dt_adam *adam, int64_t epoch_steps, dt_ckpt_meta *meta)
{
    int ok = dt_rank() != 0 || load_model(path, m, adam, epoch_steps, meta) == 0;
    dt_check_all(ok);
    dt_bcast(meta, sizeof *meta, 0);
    share_state(m, adam);
}

static int write_checkpoint(const char *path, const run_args *a, dt_vae *m, const dt_adam *adam,
                            int64_t step, int64_t epoch, int64_t batch, const double *sums, int nsums)
{
    dt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.model, sizeof meta.model, "%s", m->kind->name);
    dt_vae_arch(m, meta.arch, sizeof meta.arch);
    meta.step = step;
    meta.epoch = epoch;
    meta.batch = batch;
    meta.epoch_steps = a->epoch_steps;
    meta.seed = a->o.seed;
    meta.nsums = nsums;
    memcpy(meta.sums, sums, sizeof(double) * (size_t)nsums);
    memcpy(meta.data_sha256, a->data_sha256, sizeof meta.data_sha256);
    meta.settings = a->settings;
    meta.ranks = dt_size();
    meta.threads = a->o.threads;
    if (strcmp(m->kind->name, "vae") != 0) meta.tau = dt_gumbel_tau(&a->o, (uint64_t)step);
    dt_params *nets[1] = {&m->p};
    if (dt_ckpt_save(path, &meta, nets, adam, 1) == 0) return 0;
    dt_run_checkpoint_failed(path, step);
    return -1;
}

/* Collective. A checkpoint that cannot be written stops the run (status 2)
 * with the reason and the state of the previous one: going on would train
 * for hours that a preemption could then lose. */
static void save_checkpoint(const char *path, const run_args *a, dt_vae *m, const dt_adam *adam,
                            int64_t step, int64_t epoch, int64_t batch, const double *sums, int nsums)
{
    dt_watch_pause("checkpoint"); /* rank 0 writes; the others wait for it */
    dt_step_gather_moments(NULL, &m->p); /* collective */
    int ok = 1;
    if (dt_rank() == 0) ok = write_checkpoint(path, a, m, adam, step, epoch, batch, sums, nsums) == 0;
    dt_check_all(ok);
}

static void log_epoch(const dt_vae *m, int epoch, int epochs, const double *tr, const double *te, double ips,
                      double elapsed, double eta)
{
    char el[32], et[32], parts[256] = "";
    dt_fmt_duration(el, sizeof el, elapsed);
    dt_fmt_duration(et, sizeof et, eta);
    size_t off = 0;
    off += (size_t)snprintf(parts + off, sizeof parts - off, "bce %.2f", te[1]);
    for (int k = 0; k < m->kind->nterms; k++)
        off += (size_t)snprintf(parts + off, sizeof parts - off, " %s %.2f", m->kind->terms[k], te[2 + k]);
    dt_log("epoch %3d/%d  train %.2f  test %.2f (%s)  %.0f img/s  elapsed %s  ETA %s\n", epoch + 1, epochs, tr[0],
           te[0], parts, ips, el, et);
}

int dt_cmd_vae_family(const char *model, int argc, char **argv) { return dt_vae_train(model, argc, argv, NULL); }

int dt_vae_train(const char *model, int argc, char **argv, dt_vae_result *res)
{
    double t_start = dt_now();
    const dt_vae_kind *kind = dt_vae_kind_find(model);
    DT_ASSERT(kind);
    run_args a;
    dt_resume_info rinfo;
    parse(model, &a, argc, argv, &rinfo);
    a.o.threads = dt_threads_setup(a.o.threads);
    dt_run_begin(&a.run);
    int P = dt_size();

    /* output folder first: a run that cannot write its results should not start */
    dt_run_claim(&a.run, a.out);
    dt_ensure_data(a.data);
    dt_dataset *ds = dt_dataset_open(a.data);
    int ok = ds != NULL;
    if (ok && !dt_dataset_has(ds, "vae")) ok = dt_seterr("%s has no /vae group; run `dtrain prepare --out %s`", a.data, a.data) == 0;
    dt_check_all(ok);
    dt_data_identify(ds, &rinfo, a.data_sha256);
    dt_split *train = dt_split_open(ds, "vae/train");
    dt_check_all(train != NULL);
    dt_split *test = dt_split_open(ds, "vae/test");
    dt_check_all(test != NULL);
    if (a.o.batch > dt_split_len(train))
        dt_seterr("--batch %zu is larger than the %zu training images in %s", a.o.batch, dt_split_len(train), a.data);
    dt_check_all(a.o.batch <= dt_split_len(train));

    size_t maxB = (a.o.batch + (size_t)P - 1) / (size_t)P;
    if (maxB < 64) maxB = 64; /* evaluation and pictures decode in blocks of 64 */
    dt_vae *m = dt_vae_create(kind, &a.o, (int)maxB);
    dt_vae_init_params(m, a.o.seed);
    dt_adam adam;
    dt_adam_default(&adam, a.o.lr);
    dt_loader *ld = dt_loader_create(train, a.o.batch, a.o.seed, 1);
    dt_check_all(ld != NULL);
    size_t nb = dt_loader_nbatches(ld);
    a.epoch_steps = (int64_t)nb;
    int nt = 1 + kind->nterms;

    int64_t step = 0, epoch0 = 0, batch0 = 0;
    double tr_sums[DT_CKPT_MAX_SUMS] = {0}; /* [count, bce, kl...] of the epoch in progress */
    if (rinfo.resumed) {
        const dt_ckpt_meta *meta = &rinfo.meta;
        resume_from(rinfo.from, m, &adam, a.epoch_steps, &rinfo.meta);
        step = meta->step;
        epoch0 = meta->epoch;
        batch0 = meta->batch;
        memcpy(tr_sums, meta->sums, sizeof(double) * (size_t)meta->nsums);
    }
    dt_run_record_start(a.out, model, a.o.threads, &a.run, &rinfo);
    int idle = dt_run_nothing_left(&rinfo, model, a.out, a.o.epochs, a.o.max_steps);

    dt_vae_share(m); /* weights are final: from here on only the step writes them */
    char *ckpt_path = dt_path_join(a.out, "checkpoint.h5");
    char *csv_path = dt_path_join(a.out, "metrics.csv");
    FILE *csv = NULL;
    if (dt_rank() == 0 && !idle) {
        char header[512];
        size_t off = (size_t)snprintf(header, sizeof header, "epoch,step,train_loss,train_bce");
        for (int k = 0; k < kind->nterms; k++) off += (size_t)snprintf(header + off, sizeof header - off, ",train_%s", kind->terms[k]);
        off += (size_t)snprintf(header + off, sizeof header - off, ",test_loss,test_bce");
        for (int k = 0; k < kind->nterms; k++) off += (size_t)snprintf(header + off, sizeof header - off, ",test_%s", kind->terms[k]);
        snprintf(header + off, sizeof header - off, ",images_per_s,epoch_s,wall_s");
        csv = dt_csv_open(csv_path, header);
        if (!csv) dt_warn("%s", dt_lasterr());
    }
    dt_log("dtrain %s: %s, %zu train / %zu test images from %s, %d rank(s) x %d thread(s), products %s, batch %zu, "
           "%d epochs\n",
           model, kind->title, dt_split_len(train), dt_split_len(test), a.data, P, a.o.threads, dt_gemm_isa(), a.o.batch,
           a.o.epochs);

    evaluator ev;
    eval_init(&ev, m, test);
    dt_progress prog;
    dt_progress_init(&prog);
    uint64_t *gidx = dt_alloc(sizeof(uint64_t) * maxB);
    double train_time = 0, images = 0, te[DT_MAX_TERMS + 1] = {0}, tr[DT_MAX_TERMS + 1] = {0};
    long total_steps = (long)nb * a.o.epochs, start_steps = (long)step;
    double wall_before = dt_now() - t_start;
    /* a run resumed at or past --max-steps takes no step and keeps its checkpoint */
    int stopped = a.o.max_steps > 0 && step >= a.o.max_steps;
    int stop_pending = 0; /* a stop agreed on an epoch's last step: after the epoch's checkpoint */
    int64_t epoch_at = epoch0; /* the epoch of the last step taken, from 1 */
    if (a.o.max_steps > 0 && total_steps > a.o.max_steps) total_steps = a.o.max_steps;
    for (int64_t epoch = epoch0; epoch < a.o.epochs && !stopped; epoch++) {
        double te0 = dt_now(), ep_images = 0;
        if (epoch == epoch0 && batch0 > 0)
            dt_loader_seek(ld, (uint64_t)epoch, (size_t)batch0);
        else {
            dt_loader_start_epoch(ld, (uint64_t)epoch);
            memset(tr_sums, 0, sizeof tr_sums);
        }
        dt_batch b;
        int r;
        for (;;) {
            /* the phases name where a rank was when the watchdog fires */
            dt_watch_step(step);
            dt_watch("data loading");
            if ((r = dt_loader_next(ld, &b)) != 1) break;
            double t0 = dt_now();
            memcpy(m->x, b.x, sizeof(float) * b.n * DT_IMG);
            for (size_t i = 0; i < b.n; i++) gidx[i] = b.index[i];
            double s[DT_MAX_TERMS + 2] = {0};
            dt_watch("forward/backward");
            dt_vae_forward(m, (int)b.n, gidx, (uint64_t)step, 0, s + 1);
            dt_step st;
            dt_step_begin(&st, NULL, &adam, &m->p);
            dt_vae_backward(m, (int)b.n, 1.0f / (float)b.global_n, &st);
            dt_watch("gradient exchange");
            dt_step_end(&st);
            dt_watch("loss reduction");
            s[0] = (double)b.n;
            /* the stop flag rides along with the losses: no extra message per step */
            s[nt + 1] = dt_run_stop_local(step + 1) ? 1 : 0;
            dt_allreduce_sum_d(s, (size_t)nt + 2);
            for (int k = 0; k <= nt; k++) tr_sums[k] += s[k];
            step++;
            epoch_at = epoch + 1;
            double dt = dt_now() - t0;
            train_time += dt;
            images += (double)b.global_n;
            ep_images += (double)b.global_n;
            if (prog.tty) {
                char st[160], eta[32];
                double per = train_time / (double)(step - start_steps);
                dt_fmt_duration(eta, sizeof eta, per * (double)(total_steps - step));
                double loss = 0;
                for (int k = 1; k <= nt; k++) loss += s[k] / s[0];
                snprintf(st, sizeof st, "epoch %lld/%d  loss %.2f  %.0f img/s  ETA %s", (long long)epoch + 1,
                         a.o.epochs, loss, images / train_time, eta);
                dt_progress_draw(&prog, (long)(b.batch_index + 1), (long)nb, st);
            }
            int last = b.batch_index + 1 == nb;
            if (s[nt + 1] > 0) { /* some rank was asked to stop */
                if (last) {
                    stop_pending = 1; /* the epoch's end is one evaluation away: finish it */
                } else {
                    save_checkpoint(ckpt_path, &a, m, &adam, step, epoch, (int64_t)b.batch_index + 1, tr_sums,
                                    nt + 1);
                    dt_run_stop(dt_run_stop_poll(), step, epoch + 1, ckpt_path);
                }
            }
            if (!last && a.o.max_steps > 0 && step >= a.o.max_steps) {
                /* stop mid-epoch: the checkpoint holds the exact position */
                save_checkpoint(ckpt_path, &a, m, &adam, step, epoch, (int64_t)b.batch_index + 1, tr_sums, nt + 1);
                stopped = 1;
                break;
            }
            if (!last && a.o.checkpoint_every > 0 && step % a.o.checkpoint_every == 0)
                save_checkpoint(ckpt_path, &a, m, &adam, step, epoch, (int64_t)b.batch_index + 1, tr_sums, nt + 1);
        }
        dt_progress_clear(&prog);
        if (stopped) {
            dt_log("dtrain %s: stopped after %lld steps (--max-steps); resume with --resume %s\n", model,
                   (long long)step, ckpt_path);
            break;
        }
        dt_check_all(r == 0);
        double ep_train = dt_now() - te0;
        dt_watch_pause("evaluation");
        dt_check_all(evaluate(&ev, (uint64_t)step, te + 1) == 0);
        size_t Nt = ev.N;
        te[0] = 0;
        for (int k = 1; k <= nt; k++) te[k] /= (double)Nt, te[0] += te[k];
        tr[0] = 0;
        for (int k = 1; k <= nt; k++) tr[k] = tr_sums[k] / tr_sums[0], tr[0] += tr[k];
        double ips = ep_images / ep_train, elapsed = dt_now() - t_start;
        double per_epoch = (dt_now() - t_start - wall_before) / (double)(epoch - epoch0 + 1);
        log_epoch(m, (int)epoch, a.o.epochs, tr, te, ips, elapsed, per_epoch * (double)(a.o.epochs - epoch - 1));
        if (res) {
            if (!res->curve) res->curve = dt_alloc(sizeof(double) * (size_t)(a.o.epochs > 0 ? a.o.epochs : 1));
            res->curve[epoch] = te[0];
            res->epochs = (int)epoch + 1;
        }
        if (csv) {
            fprintf(csv, "%lld,%lld", (long long)epoch + 1, (long long)step);
            for (int k = 0; k <= nt; k++) fprintf(csv, ",%.6f", tr[k]);
            for (int k = 0; k <= nt; k++) fprintf(csv, ",%.6f", te[k]);
            fprintf(csv, ",%.1f,%.3f,%.3f\n", ips, dt_now() - te0, elapsed);
            fflush(csv);
        }
        save_checkpoint(ckpt_path, &a, m, &adam, step, epoch + 1, 0, tr_sums, nt + 1);
        /* a stop asked for during the evaluation or the checkpoint: this one will do */
        int sig = dt_run_stop_poll();
        if (stop_pending || sig) dt_run_stop(sig, step, epoch + 1, ckpt_path);
        if (a.o.max_steps > 0 && step >= a.o.max_steps) stopped = 1;
    }
    dt_watch_pause("final evaluation");
    dt_stop_defer(0); /* no step boundary from here on: a stop signal ends the job at once */
    if (csv) fclose(csv);
    if (stopped && tr_sums[0] > 0) { /* stopped inside an epoch: the train loss so far */
        tr[0] = 0;
        for (int k = 1; k <= nt; k++) tr[k] = tr_sums[k] / tr_sums[0], tr[0] += tr[k];
    } else if (tr_sums[0] <= 0 && tr[0] == 0) {
        for (int k = 0; k <= nt; k++) tr[k] = NAN; /* no training step in this run */
    }

    /* final evaluation, embeddings, pictures; a run that trained nothing leaves
     * them as they are (the study still gets its figures) */
    char *emb_path = dt_path_join(a.out, "embeddings.h5");
    dt_cat_analysis ca;
    uint8_t *codes = NULL;
    int q = stat_index(m, "q");
    if (idle && !res) goto finish;
    dt_check_all(evaluate(&ev, (uint64_t)step, te + 1) == 0);
    te[0] = 0;
    for (int k = 1; k <= nt; k++) te[k] /= (double)ev.N, te[0] += te[k];
    if (!idle) dt_check_all(write_embeddings(&ev, emb_path, ckpt_path) == 0);
    eval_gather(&ev);
    double rss = (double)dt_peak_rss();
    dt_allreduce_max_d(&rss, 1);
    if (q >= 0) {
        codes = dt_alloc(ev.N * (size_t)a.o.N);
        dt_cat_argmax(codes, ev.stats[q], ev.N, a.o.N, a.o.K);
        dt_cat_analyze(&ca, codes, ev.digits, ev.colors, ev.N, a.o.N, a.o.K);
    }
    if (dt_rank() == 0 && !idle) {
        if (q >= 0 && dt_cat_analysis_write(&ca, model, a.out) < 0) dt_warn("%s", dt_lasterr());
        dt_vae_pictures(m, test, ev.stats, ev.digits, ev.colors, ev.N, a.out, q >= 0 ? &ca : NULL, codes);
        double wall = dt_now() - t_start;
        char *sum_path = dt_path_join(a.out, "summary.json");
        dt_json j;
        if (dt_json_open(&j, sum_path) == 0) {
            dt_json_str(&j, "model", model);
            dt_json_str(&j, "title", kind->title);
            dt_json_int(&j, "ranks", P);
            dt_json_int(&j, "threads", a.o.threads);
            dt_json_int(&j, "epochs", a.o.epochs);
            dt_json_int(&j, "batch", (long long)a.o.batch);
            dt_json_num(&j, "lr", a.o.lr);
            dt_json_int(&j, "seed", (long long)a.o.seed);
            dt_json_int(&j, "steps", step);
            dt_json_num(&j, "train_loss", tr[0]);
            dt_json_num(&j, "train_bce", tr[1]);
            for (int k = 0; k < kind->nterms; k++) {
                char key[64];
                snprintf(key, sizeof key, "train_%s", kind->terms[k]);
                dt_json_num(&j, key, tr[2 + k]);
            }
            dt_json_num(&j, "test_loss", te[0]);
            dt_json_num(&j, "test_bce", te[1]);
            for (int k = 0; k < kind->nterms; k++) {
                char key[64];
                snprintf(key, sizeof key, "test_%s", kind->terms[k]);
                dt_json_num(&j, key, te[2 + k]);
            }
            dt_json_num(&j, "images_per_s", train_time > 0 ? images / train_time : 0);
            dt_json_num(&j, "wall_s", wall);
            dt_json_str(&j, "data", a.data);
            dt_json_int(&j, "train_images", (long long)dt_split_len(train));
            dt_json_int(&j, "test_images", (long long)ev.N);
            dt_json_str(&j, "version", DT_VERSION);
#ifdef DT_GIT_REV
            dt_json_str(&j, "revision", DT_GIT_REV);
            dt_json_str(&j, "compiler", DT_CC);
            dt_json_str(&j, "cflags", DT_CFLAGS);
#endif
            dt_json_int(&j, "peak_rss_bytes", (long long)rss); /* the largest over the ranks */
            if (q >= 0) {
                char buf[512];
                size_t off = 0;
                int min_use = a.o.K;
                off += (size_t)snprintf(buf + off, sizeof buf - off, "[");
                for (int v = 0; v < a.o.N && off < sizeof buf - 64; v++) {
                    off += (size_t)snprintf(buf + off, sizeof buf - off, "%s{\"in_use\": %d, \"nmi_digit\": %.4f, \"nmi_color\": %.4f}",
                                            v ? ", " : "", ca.in_use[v], ca.nmi_digit[v], ca.nmi_color[v]);
                    if (ca.in_use[v] < min_use) min_use = ca.in_use[v];
                }
                snprintf(buf + off, sizeof buf - off, "]");
                dt_json_raw(&j, "variables", buf);
                dt_json_int(&j, "categories_in_use_min", min_use);
                dt_json_int(&j, "all_categories_in_use", ca.all_in_use);
                dt_json_num(&j, "tau_final", dt_gumbel_tau(&a.o, (uint64_t)step));
            }
            if (rinfo.resumed) dt_json_str(&j, "resumed_from", rinfo.from);
            if (dt_json_close(&j) < 0) dt_warn("%s", dt_lasterr());
        } else
            dt_warn("%s", dt_lasterr());
        dt_free(sum_path);
        char w[32];
        dt_fmt_duration(w, sizeof w, wall);
        dt_log("dtrain %s: test loss %.2f per image (bce %.2f); results in %s/ (%s)\n", model, te[0], te[1], a.out, w);
    }
    if (res) {
        res->nterms = nt;
        memcpy(res->test, te, sizeof(double) * (size_t)(nt + 1));
        res->images_per_s = train_time > 0 ? images / train_time : 0;
        res->wall_s = dt_now() - t_start;
        res->all_in_use = q >= 0 ? ca.all_in_use : -1;
        res->kind = kind;
    }
finish:
    dt_run_finish(step, epoch_at, idle ? "nothing to train" : stopped ? "--max-steps reached" : "finished");
    if (q >= 0 && !(idle && !res)) dt_cat_analysis_free(&ca);
    dt_free(codes);
    eval_free(&ev);
    dt_free(gidx);
    dt_free(emb_path);
    dt_free(ckpt_path);
    dt_free(csv_path);
    dt_loader_free(ld);
    dt_vae_free(m);
    dt_split_close(train);
    dt_split_close(test);
    dt_dataset_close(ds);
    return 0;
}

/* `dtrain embed --checkpoint FILE`: the test set's latent statistics of a
 * trained model, written by all ranks into one HDF5 file. */
int dt_cmd_embed(int argc, char **argv)
{
    const char *ckpt = NULL, *data = DT_DATA_DEFAULT_PATH, *out = NULL;
    dt_opt opts[] = {
        {"checkpoint", DT_OPT_STR, &ckpt, "FILE", "checkpoint of a VAE run (required)", 1, 0},
        {"data", DT_OPT_STR, &data, "FILE", "colored-MNIST HDF5 file", 1, 0},
        {"out", DT_OPT_STR, &out, "FILE", "embeddings file (default: embeddings.h5 beside the checkpoint)", 1, 0},
    };
    int n = (int)(sizeof opts / sizeof *opts);
    int rc = dt_opts_parse_or_exit(opts, n, argc, argv,
                                   "usage: [mpirun -np N] dtrain embed --checkpoint FILE [--data FILE] [--out FILE]\n\n"
                                   "For every test image: the model's latent statistics (mu and logvar; q and its\n"
                                   "argmax for the discrete models), digit and color, written by all ranks in\n"
                                   "parallel into one HDF5 file.\n",
                                   NULL);
    if (rc == 0 && !ckpt) rc = dt_seterr("embed needs --checkpoint FILE");
    dt_check_all(rc == 0);
    dt_threads_setup(0);

    dt_ckpt_meta meta;
    int ok = dt_rank() != 0 || dt_ckpt_read_meta(ckpt, &meta) == 0;
    dt_check_all(ok);
    dt_bcast(&meta, sizeof meta, 0);
    const dt_vae_kind *kind = dt_vae_kind_find(meta.model);
    if (!kind) dt_seterr("checkpoint %s is of model '%s', which has no latent embeddings", ckpt, meta.model);
    dt_check_all(kind != NULL);

    dt_dataset *ds = dt_dataset_open(data);
    dt_check_all(ds != NULL);
    dt_split *test = dt_split_open(ds, "vae/test");
    dt_check_all(test != NULL);
    /* the sizes and schedule the run was made with: its settings, typed */
    run_args a;
    dt_opt table[DT_OPTS_MAX];
    int nt = vae_options(kind->name, &a, table);
    dt_check_all(dt_opts_resume(table, nt, NULL, &meta.settings, NULL, ckpt) == 0);
    dt_vae_opts o = a.o;
    dt_vae *m = dt_vae_create(kind, &o, 128);
    dt_adam adam;
    resume_from(ckpt, m, &adam, 0, &meta);

    char *dflt = NULL;
    if (!out) {
        const char *slash = strrchr(ckpt, '/');
        size_t dl = slash ? (size_t)(slash - ckpt) : 1;
        char *dir = dt_alloc(dl + 1);
        memcpy(dir, slash ? ckpt : ".", dl);
        dflt = dt_path_join(dir, "embeddings.h5");
        dt_free(dir);
        out = dflt;
    }
    evaluator ev;
    eval_init(&ev, m, test);
    double sums[DT_MAX_TERMS + 1];
    dt_check_all(evaluate(&ev, (uint64_t)meta.step, sums) == 0);
    dt_check_all(write_embeddings(&ev, out, ckpt) == 0);
    dt_log("dtrain embed: %zu test images of %s -> %s\n", ev.N, ckpt, out);
    eval_free(&ev);
    dt_free(dflt);
    dt_vae_free(m);
    dt_split_close(test);
    dt_dataset_close(ds);
    return 0;
}
