/* `dtrain vae` (and the other VAE commands): the VAE family as a model the
 * engine trains (engine.h): options, checkpoints, one step, the epoch's
 * evaluation, and the end of a run (embeddings, pictures, summary).
 *
 * One step on every rank:
 *   local shard of the global batch -> forward -> backward scaled by 1/global_n
 *   -> the optimizer step (step.h) -> the losses summed over the ranks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/ckpt.h"
#include "dtrain/cli.h"
#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/engine.h"
#include "dtrain/guard.h"
#include "dtrain/report.h"
#include "dtrain/step.h"
#include "dtrain/vae.h"
#include "dtrain/vae_run.h"

/* Collective: the command line, then, when resuming, the checkpoint's
 * settings (info: what is resumed; it must outlive a). */
static void check_batch(const dt_vae_args *a);

static void parse(const char *model, dt_vae_args *a, int argc, char **argv, dt_resume_info *info)
{
    dt_opt opts[DT_OPTS_MAX];
    int n = dt_vae_options(model, a, opts);
    char usage[320];
    snprintf(usage, sizeof usage,
             "usage: [mpirun -np N] dtrain %s [options]\n\nTrain the %s on colored MNIST, data parallel over the "
             "MPI ranks.\nWrites pictures, metrics.csv, summary.json, checkpoint.h5 and embeddings.h5 into --out.\n",
             model, dt_vae_kind_find(model)->title);
    dt_engine_parse(model, opts, n, argc, argv, usage, &a->run, &a->out, info, &a->settings);
    check_batch(a);
}

/* The run a configuration describes: the variant's defaults, then c's
 * values, as if given on the command line. */
static void configure(const dt_vae_kind *kind, const dt_vae_config *c, dt_vae_args *a, dt_resume_info *info)
{
    dt_opt opts[DT_OPTS_MAX];
    unsigned char given[DT_OPTS_MAX] = {0};
    int n = dt_vae_options(kind->name, a, opts);
    a->data = c->data;
    a->out = c->out;
    a->o.epochs = c->epochs;
    a->o.batch = c->batch;
    a->o.seed = c->seed;
    a->o.threads = c->threads;
    a->run = c->run;
    static const char *const set[] = {"data", "out", "epochs", "batch", "seed", "threads", "resume",
                                      "stop-signal", "step-timeout"};
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof set / sizeof *set; k++) given[i] |= strcmp(opts[i].name, set[k]) == 0;
    dt_engine_configure(kind->name, opts, n, given, &a->run, &a->out, info, &a->settings);
    check_batch(a);
}

static void check_batch(const dt_vae_args *a)
{
    if (!dt_all_ok(a->o.batch >= (size_t)dt_size())) {
        dt_seterr("--batch %zu is smaller than the number of ranks (%d): every rank needs at least one image",
                  a->o.batch, dt_size());
        dt_check_all(0);
    }
}

/* ---- checkpoints ---------------------------------------------------------------- */

int dt_vae_load(const char *path, dt_vae *m, dt_adam *adam, int64_t epoch_steps, dt_ckpt_meta *meta)
{
    char arch[128];
    dt_vae_arch(m, arch, sizeof arch);
    dt_params *nets[1] = {&m->p};
    return dt_ckpt_load(path, m->kind->name, arch, epoch_steps, meta, nets, adam, 1);
}

void dt_vae_share_loaded(dt_vae *m, dt_adam *adam)
{
    dt_bcast(adam, sizeof *adam, 0);
    dt_bcast(m->p.w, m->p.n * sizeof(float), 0);
    dt_bcast(m->p.m, m->p.n * sizeof(float), 0);
    dt_bcast(m->p.v, m->p.n * sizeof(float), 0);
}

/* ---- the model, as the engine drives it ------------------------------------------- */

typedef struct {
    dt_vae_args a;
    const dt_vae_kind *kind;
    dt_vae *m;
    dt_adam adam;
    dt_optim opt; /* the step of m->p with adam */
    dt_dataset *ds;
    dt_split *train, *test;
    dt_loader *ld;
    dt_batch b;                       /* the batch loaded */
    uint64_t *gidx;                   /* its images' indices, the noise streams */
    dt_vae_eval ev;
    int nt;                           /* 1 + KL terms */
    double last[DT_MAX_TERMS + 1];    /* the last step's [count, bce, kl...] */
    double tr[DT_MAX_TERMS + 1], te[DT_MAX_TERMS + 1]; /* per image: [loss, bce, kl...] */
    dt_cat_analysis ca; /* the categorical variables at the end (has_ca) */
    int has_ca;
    dt_vae_result *res;
} vae_run;

static int vae_load(void *r_, const char *path, int64_t epoch_steps, dt_ckpt_meta *meta)
{
    vae_run *r = r_;
    return dt_vae_load(path, r->m, &r->adam, epoch_steps, meta);
}

static void vae_share_loaded(void *r_)
{
    vae_run *r = r_;
    dt_vae_share_loaded(r->m, &r->adam);
}

static void vae_ready(void *r_)
{
    vae_run *r = r_;
    dt_vae_share(r->m, &r->opt);
}

static void vae_epoch_begin(void *r_, int64_t e, int64_t b)
{
    vae_run *r = r_;
    if (b > 0)
        dt_loader_seek(r->ld, (uint64_t)e, (size_t)b);
    else
        dt_loader_start_epoch(r->ld, (uint64_t)e);
}

static int vae_next_batch(void *r_)
{
    vae_run *r = r_;
    int got = dt_loader_next(r->ld, &r->b);
    if (got == 0) dt_seterr("the loader ran out of batches before the epoch's end");
    return got == 1;
}

static double vae_step(void *r_, int64_t step, double *sums)
{
    vae_run *r = r_;
    dt_vae *m = r->m;
    memcpy(m->x, r->b.x, sizeof(float) * r->b.n * DT_IMG);
    for (size_t i = 0; i < r->b.n; i++) r->gidx[i] = r->b.index[i];
    double s[DT_MAX_TERMS + 1] = {0};
    dt_xsum xs[DT_MAX_TERMS] = {0};
    dt_watch("forward/backward");
    dt_vae_forward(m, (int)r->b.n, r->gidx, (uint64_t)step, 0, s + 1);
    dt_vae_xsums(m, (int)r->b.n, xs);
    dt_step st;
    dt_step_begin(&st, &r->opt);
    dt_backward_hooks hooks = dt_step_hooks(&st);
    dt_vae_backward(m, (int)r->b.n, 1.0f / (float)r->b.global_n, &hooks);
    dt_watch("gradient exchange");
    dt_step_end(&st);
    dt_watch("loss reduction");
    dt_comm_xsum(NULL, xs, (size_t)r->nt); /* the same bits for any rank count */
    s[0] = (double)r->b.global_n;
    for (int k = 1; k <= r->nt; k++) s[k] = dt_xsum_value(&xs[k - 1]);
    for (int k = 0; k <= r->nt; k++) sums[k] += s[k];
    memcpy(r->last, s, sizeof s);
    return (double)r->b.global_n;
}

static void vae_status(void *r_, char *buf, size_t len)
{
    const vae_run *r = r_;
    double loss = 0;
    for (int k = 1; k <= r->nt; k++) loss += r->last[k] / r->last[0];
    snprintf(buf, len, "loss %.2f", loss);
}

/* per-image means of sums [count, bce, kl...] into out [loss, bce, kl...] */
static void per_image(double *out, const double *sums, double count, int nt)
{
    out[0] = 0;
    for (int k = 1; k <= nt; k++) out[k] = sums[k] / count, out[0] += out[k];
}

/* Collective: the test losses per image into r->te (and the statistics) */
static void test_losses(vae_run *r, int64_t step)
{
    double s[DT_MAX_TERMS + 1];
    dt_check_all(dt_vae_evaluate(&r->ev, (uint64_t)step, s + 1) == 0);
    per_image(r->te, s, (double)r->ev.N, r->nt);
}

static void log_epoch(const vae_run *r, const dt_epoch_report *e)
{
    char el[32], et[32], parts[256] = "";
    dt_fmt_duration(el, sizeof el, e->elapsed_s);
    dt_fmt_duration(et, sizeof et, e->eta_s);
    size_t off = 0;
    off += (size_t)snprintf(parts + off, sizeof parts - off, "bce %.2f", r->te[1]);
    for (int k = 0; k < r->kind->nparts; k++)
        off += (size_t)snprintf(parts + off, sizeof parts - off, " %s %.2f", r->kind->terms[k], r->te[2 + k]);
    dt_log("epoch %3d/%d  train %.2f  test %.2f (%s)  %.0f img/s  elapsed %s  ETA %s\n", (int)e->epoch + 1, e->epochs,
           r->tr[0], r->te[0], parts, e->images_per_s, el, et);
}

static int vae_epoch_end(void *r_, const dt_epoch_report *e, double *row)
{
    vae_run *r = r_;
    test_losses(r, e->step);
    per_image(r->tr, e->sums, e->sums[0], r->nt);
    log_epoch(r, e);
    if (r->res) {
        if (!r->res->curve) r->res->curve = dt_alloc(sizeof(double) * (size_t)(e->epochs > 0 ? e->epochs : 1));
        r->res->curve[e->epoch] = r->te[0];
        r->res->epochs = (int)e->epoch + 1;
    }
    memcpy(row, r->tr, sizeof(double) * (size_t)(r->nt + 1));
    memcpy(row + r->nt + 1, r->te, sizeof(double) * (size_t)(r->nt + 1));
    return 2 * (r->nt + 1);
}

static void vae_gather(void *r_) { dt_step_gather_moments(&((vae_run *)r_)->opt); }

static int vae_save(void *r_, dt_ckpt_meta *meta, const char *path)
{
    vae_run *r = r_;
    dt_vae_arch(r->m, meta->arch, sizeof meta->arch);
    if (dt_vae_kind_discrete(r->kind)) meta->tau = dt_gumbel_tau(&r->a.o, (uint64_t)meta->step);
    dt_params *nets[1] = {&r->m->p};
    return dt_ckpt_save(path, meta, nets, &r->adam, 1);
}

/* ---- the end of a run: evaluation, embeddings, pictures, summary ------------------ */

/* the categorical variables' use, as summary.json's "variables" array */
static void variables_json(char *buf, size_t len, const dt_cat_analysis *ca, int N, int *min_use)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int v = 0; v < N && off < len - 64; v++) {
        off += (size_t)snprintf(buf + off, len - off, "%s{\"in_use\": %d, \"nmi_digit\": %.4f, \"nmi_color\": %.4f}",
                                v ? ", " : "", ca->in_use[v], ca->nmi_digit[v], ca->nmi_color[v]);
        if (ca->in_use[v] < *min_use) *min_use = ca->in_use[v];
    }
    snprintf(buf + off, len - off, "]");
}

/* "train_" or "test_" and each term's name, with values v [loss, bce, kl...] */
static void losses_json(dt_json *j, const vae_run *r, const char *prefix, const double *v)
{
    char key[64];
    snprintf(key, sizeof key, "%sloss", prefix);
    dt_json_num(j, key, v[0]);
    snprintf(key, sizeof key, "%sbce", prefix);
    dt_json_num(j, key, v[1]);
    for (int k = 0; k < r->kind->nparts; k++) {
        snprintf(key, sizeof key, "%s%s", prefix, r->kind->terms[k]);
        dt_json_num(j, key, v[2 + k]);
    }
}

static void vae_summary(void *r_, const dt_engine *e, dt_json *j)
{
    const vae_run *r = r_;
    const dt_vae_opts *o = &r->a.o;
    dt_json_str(j, "title", r->kind->title);
    dt_json_num(j, "lr", o->lr);
    losses_json(j, r, "train_", r->tr);
    losses_json(j, r, "test_", r->te);
    dt_json_int(j, "train_images", (long long)dt_split_len(r->train));
    dt_json_int(j, "test_images", (long long)r->ev.N);
    if (r->has_ca) {
        char buf[512];
        int min_use = o->K;
        variables_json(buf, sizeof buf, &r->ca, o->N, &min_use);
        dt_json_raw(j, "variables", buf);
        dt_json_int(j, "categories_in_use_min", min_use);
        dt_json_int(j, "all_categories_in_use", r->ca.all_in_use);
        dt_json_num(j, "tau_final", dt_gumbel_tau(o, (uint64_t)e->step));
    }
}

/* the train loss of the run's last epoch, or of the part of it trained */
static void final_train_loss(vae_run *r, const dt_engine *e)
{
    if (e->stopped && e->sums[0] > 0) /* stopped inside an epoch: the train loss so far */
        per_image(r->tr, e->sums, e->sums[0], r->nt);
    else if (e->sums[0] <= 0 && r->tr[0] == 0)
        for (int k = 0; k <= r->nt; k++) r->tr[k] = NAN; /* no training step in this run */
}

static void vae_finish(void *r_, const dt_engine *e)
{
    vae_run *r = r_;
    final_train_loss(r, e);
    /* a run that trained nothing leaves its results as they are (the study
     * still gets its figures) */
    if (e->idle && !r->res) return;
    test_losses(r, e->step);
    if (!e->idle) {
        char *emb = dt_path_join(r->a.out, "embeddings.h5");
        dt_check_all(dt_vae_write_embeddings(&r->ev, emb, e->ckpt_path) == 0);
        dt_free(emb);
    }
    dt_vae_eval_gather(&r->ev);
    int q = dt_vae_stat_index(r->m, "q");
    uint8_t *codes = NULL;
    const dt_vae_opts *o = &r->a.o;
    if (q >= 0) {
        codes = dt_alloc(r->ev.N * (size_t)o->N);
        dt_cat_argmax(codes, r->ev.stats[q], r->ev.N, o->N, o->K);
        dt_cat_analyze(&r->ca, codes, r->ev.digits, r->ev.colors, r->ev.N, o->N, o->K);
        r->has_ca = 1;
    }
    if (dt_rank() == 0 && !e->idle) {
        if (q >= 0 && dt_cat_analysis_write(&r->ca, r->kind->name, r->a.out) < 0) dt_warn("%s", dt_lasterr());
        dt_vae_pictures(r->m, r->test, r->ev.stats, r->ev.digits, r->ev.colors, r->ev.N, r->a.out,
                        q >= 0 ? &r->ca : NULL, codes);
        char w[32];
        dt_fmt_duration(w, sizeof w, dt_now() - e->t_start);
        dt_log("dtrain %s: test loss %.2f per image (bce %.2f); results in %s/ (%s)\n", r->kind->name, r->te[0],
               r->te[1], r->a.out, w);
    }
    if (r->res) {
        r->res->nterms = r->nt;
        memcpy(r->res->test, r->te, sizeof(double) * (size_t)(r->nt + 1));
        r->res->images_per_s = e->train_s > 0 ? e->images / e->train_s : 0;
        r->res->wall_s = dt_now() - e->t_start;
        r->res->all_in_use = q >= 0 ? r->ca.all_in_use : -1;
        r->res->kind = r->kind;
    }
    dt_free(codes);
}

static const char *columns(const dt_vae_kind *kind, char *buf, size_t len)
{
    const char *part[2] = {"train", "test"};
    size_t off = 0;
    for (int s = 0; s < 2; s++) {
        off += (size_t)snprintf(buf + off, len - off, "%s%s_loss,%s_bce", s ? "," : "", part[s], part[s]);
        for (int k = 0; k < kind->nparts; k++)
            off += (size_t)snprintf(buf + off, len - off, ",%s_%s", part[s], kind->terms[k]);
    }
    return buf;
}



/* Collective: the data, the model and its loader, for r->a's options */
static void build(vae_run *r, const dt_resume_info *info)
{
    dt_vae_args *a = &r->a;
    dt_dataset *ds = dt_engine_data(a->data, "vae", info, a->data_sha256);
    r->train = dt_split_open(ds, "vae/train");
    dt_check_all(r->train != NULL);
    r->test = dt_split_open(ds, "vae/test");
    dt_check_all(r->test != NULL);
    r->ds = ds;
    if (a->o.batch > dt_split_len(r->train))
        dt_seterr("--batch %zu is larger than the %zu training images in %s", a->o.batch, dt_split_len(r->train),
                  a->data);
    dt_check_all(a->o.batch <= dt_split_len(r->train));
    size_t maxB = (a->o.batch + (size_t)dt_size() - 1) / (size_t)dt_size();
    if (maxB < 64) maxB = 64; /* evaluation and pictures decode in blocks of 64 */
    r->m = dt_vae_create(r->kind, &a->o, (int)maxB);
    dt_vae_init_params(r->m, a->o.seed);
    dt_adam_default(&r->adam, a->o.lr);
    dt_optim_init(&r->opt, NULL, &r->adam, &r->m->p, DT_VAE_WRITES_GRADS);
    r->ld = dt_loader_create(r->train, a->o.batch, a->o.seed, 1);
    dt_check_all(r->ld != NULL);
    r->gidx = dt_alloc(sizeof(uint64_t) * maxB);
    dt_vae_eval_init(&r->ev, r->m, r->test);
}

static const dt_model_ops VAE_OPS = {
    .nsums = 0, /* set per variant: 1 + its terms */
    .load = vae_load,
    .share_loaded = vae_share_loaded,
    .ready = vae_ready,
    .epoch_begin = vae_epoch_begin,
    .next_batch = vae_next_batch,
    .step = vae_step,
    .status = vae_status,
    .epoch_end = vae_epoch_end,
    .gather = vae_gather,
    .save = vae_save,
    .finish = vae_finish,
    .summary = vae_summary,
};

/* Collective: train r->kind with r->a's options (info: what is resumed) */
static int train(vae_run *r, dt_resume_info *info, double t_start)
{
    const char *model = r->kind->name;
    r->nt = 1 + r->kind->nparts;
    dt_vae_args *a = &r->a;
    a->o.threads = dt_threads_setup(a->o.threads);
    dt_run_begin(&a->run);
    /* output folder first: a run that cannot write its results should not start */
    dt_run_claim(&a->run, a->out);
    build(r, info);
    dt_model_ops ops = VAE_OPS;
    char cols[512];
    ops.name = r->kind->name;
    ops.nsums = r->nt + 1;
    ops.columns = columns(r->kind, cols, sizeof cols);
    dt_log("dtrain %s: %s, %zu train / %zu test images from %s, %d rank(s) x %d thread(s), products %s, %s sums, "
           "batch %zu, %d epochs\n",
           model, r->kind->title, dt_split_len(r->train), dt_split_len(r->test), a->data, dt_size(), a->o.threads,
           dt_gemm_isa(), dt_step_reduction(), a->o.batch, a->o.epochs);
    dt_engine e = {.ops = &ops,
                   .m = r,
                   .out = a->out,
                   .data = a->data,
                   .batch = a->o.batch,
                   .epochs = a->o.epochs,
                   .threads = a->o.threads,
                   .epoch_steps = (int64_t)dt_loader_nbatches(r->ld),
                   .max_steps = a->o.max_steps,
                   .checkpoint_every = a->o.checkpoint_every,
                   .seed = a->o.seed,
                   .run = &a->run,
                   .info = info,
                   .settings = &a->settings,
                   .data_sha256 = a->data_sha256,
                   .t_start = t_start};
    dt_engine_run(&e);
    if (r->has_ca) dt_cat_analysis_free(&r->ca);
    dt_vae_eval_free(&r->ev);
    dt_free(r->gidx);
    dt_loader_free(r->ld);
    dt_step_unshare(&r->opt);
    dt_vae_free(r->m);
    dt_split_close(r->train);
    dt_split_close(r->test);
    dt_dataset_close(r->ds);
    dt_free(r);
    return 0;
}

/* `dtrain <model> argv...` (argv[0] is the model's name) */
static int vae_train_argv(const char *model, int argc, char **argv, dt_vae_result *res)
{
    double t_start = dt_now();
    vae_run *r = dt_alloc(sizeof *r);
    r->kind = dt_vae_kind_find(model);
    DT_ASSERT(r->kind);
    r->res = res;
    dt_resume_info info;
    parse(model, &r->a, argc, argv, &info);
    return train(r, &info, t_start);
}

int dt_vae_train_config(const dt_vae_kind *kind, const dt_vae_config *c, dt_vae_result *res)
{
    double t_start = dt_now();
    vae_run *r = dt_alloc(sizeof *r);
    r->kind = kind;
    r->res = res;
    dt_resume_info info;
    configure(kind, c, &r->a, &info);
    return train(r, &info, t_start);
}

int dt_cmd_vae_family(int argc, char **argv) { return vae_train_argv(argv[0], argc, argv, NULL); }
