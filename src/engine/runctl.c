/* Running unattended: --resume auto, stop signals, the watchdog's use and the
 * provenance record. See include/dtrain/runctl.h. */
#include "dtrain/runctl.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dtrain/comm.h"
#include "dtrain/guard.h"
#include "dtrain/nn.h"
#include "dtrain/report.h"
#include "dtrain/runlock.h"
#include "dtrain/step.h"

#define HOST_MAX 64

static int g_argc;
static char **g_argv;
static char *g_runs_path; /* OUT/runs.jsonl of the run in progress (rank 0) */
static double g_t0;
static int64_t g_raise_step = -1;
static int g_raise_rank = 0;

void dt_run_opts_default(dt_run_opts *r)
{
    r->resume = NULL;
    r->stop_signals = DT_STOP_SIGNALS_DEFAULT;
    r->step_timeout = DT_STEP_TIMEOUT_DEFAULT;
    r->overwrite = 0;
}

void dt_run_set_cmdline(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
}

void dt_run_begin(const dt_run_opts *r)
{
    g_t0 = dt_now();
    int ok = dt_stop_signals_install(r->stop_signals) == 0;
    dt_check_all(ok);
    const char *at = getenv("DTRAIN_RAISE_AT");
    if (at && *at) {
        char *end;
        g_raise_step = strtoll(at, &end, 10);
        g_raise_rank = *end == ':' ? atoi(end + 1) : 0;
    }
    /* DTRAIN_RAISE_AT=0: before the first step, where no step boundary reads the flag */
    if (g_raise_step == 0 && dt_rank() == g_raise_rank && dt_stop_signal_first()) raise(dt_stop_signal_first());
    dt_watchdog_start(r->step_timeout, dt_rank());
}

int dt_run_stop_local(int64_t steps)
{
    if (steps == g_raise_step && dt_rank() == g_raise_rank && dt_stop_signal_first()) {
        g_raise_step = -1;
        raise(dt_stop_signal_first());
    }
    return dt_stop_requested();
}

/* ---- the output folder ------------------------------------------------------ */

/* Every file a training command or the study writes into its folder: what
 * --overwrite removes (with the temporaries NAME.tmp.* of their writes).
 * runs.jsonl, the folder's history, stays, and so does the lock. */
static const char *const OUTPUTS[] = {
    "checkpoint.h5", "checkpoint.prev.h5", "checkpoint.damaged.h5", "metrics.csv", "summary.json",
    "embeddings.h5", "latents.md", "latent_mi.csv", "reconstructions.png", "samples.png",
    "latent_by_digit.png", "latent_by_color.png", "latent_grid.png", "categories.png", "traversal.png",
    "steering.png", "translations.png", "losses.png", "color_accuracy.png", "study.md", "study.csv",
    "test_loss.png"};
/* What makes a folder hold an earlier run: a fresh start there is refused. */
static const char *const EARLIER[] = {"checkpoint.h5", "checkpoint.prev.h5", "summary.json", "metrics.csv",
                                      "study.csv"};

/* the process's command line, space separated (cut to len) */
static void cmdline(char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < g_argc && off + 1 < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " " : "", g_argv[i]);
}

static int is_output(const char *name)
{
    for (size_t i = 0; i < sizeof OUTPUTS / sizeof *OUTPUTS; i++) {
        size_t n = strlen(OUTPUTS[i]);
        if (strncmp(name, OUTPUTS[i], n) == 0 && (name[n] == 0 || strncmp(name + n, ".tmp.", 5) == 0)) return 1;
    }
    return 0;
}

/* --overwrite: remove what dtrain wrote into out, nothing else */
static int remove_outputs(const char *out)
{
    DIR *d = opendir(out);
    if (!d) return dt_seterr("--out %s: %s", out, strerror(errno));
    int n = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) && rc == 0) {
        if (!is_output(e->d_name)) continue;
        char *p = dt_path_join(out, e->d_name);
        if (unlink(p) == 0)
            n++;
        else if (errno != ENOENT)
            rc = dt_seterr("--overwrite: cannot remove %s: %s", p, strerror(errno));
        dt_free(p);
    }
    closedir(d);
    if (rc == 0 && n) dt_log("dtrain: --overwrite: removed %d file(s) of an earlier run from %s\n", n, out);
    return rc;
}

/* a fresh start: refuse a folder that holds an earlier run */
static int refuse_earlier(const char *out)
{
    char found[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < sizeof EARLIER / sizeof *EARLIER; i++) {
        char *p = dt_path_join(out, EARLIER[i]);
        if (access(p, F_OK) == 0)
            off += (size_t)snprintf(found + off, sizeof found - off, "%s%s", off ? ", " : "", EARLIER[i]);
        dt_free(p);
    }
    if (!off) return 0;
    return dt_seterr("--out %s holds an earlier run (%s): continue it with --resume auto, or start afresh with "
                     "--overwrite (removes its checkpoints and results), or choose another --out",
                     out, found);
}

/* rank 0: create out and lock it for this process (again at once if it holds it) */
static int lock_out(const char *out)
{
    char cmd[2048];
    cmdline(cmd, sizeof cmd);
    return dt_mkdirs(out) == 0 && dt_runlock_take(out, cmd) == 0 ? 0 : -1;
}

void dt_run_claim(const dt_run_opts *r, const char *out)
{
    int ok = 1;
    if (r->overwrite && r->resume)
        ok = dt_seterr("--overwrite starts afresh and --resume continues a run: give one of them") == 0;
    if (ok && dt_rank() == 0) {
        ok = lock_out(out) == 0;
        if (ok && !r->resume) ok = (r->overwrite ? remove_outputs(out) : refuse_earlier(out)) == 0;
    }
    dt_check_all(ok);
}

int dt_run_nothing_left(const dt_resume_info *info, const char *model, const char *out, int64_t epochs,
                        int64_t max_steps)
{
    if (!info->resumed) return 0;
    const dt_ckpt_meta *m = &info->meta;
    char why[64];
    if (max_steps > 0 && m->step >= max_steps)
        snprintf(why, sizeof why, "--max-steps %lld", (long long)max_steps);
    else if (m->epoch >= epochs)
        snprintf(why, sizeof why, "--epochs %lld", (long long)epochs);
    else
        return 0;
    dt_log("dtrain %s: nothing to train: the run in %s is at step %lld (epoch %lld), at or past %s; its results "
           "are left as they are\n",
           model, out, (long long)m->step, (long long)(m->batch > 0 ? m->epoch + 1 : m->epoch), why);
    return 1;
}

/* ---- resume ---------------------------------------------------------------- */

/* <name minus .h5><suffix>, beside it */
static char *sibling(const char *path, const char *suffix)
{
    size_t n = strlen(path), len = n + strlen(suffix) + 1;
    char *s = dt_alloc(len);
    if (n > 3 && strcmp(path + n - 3, ".h5") == 0)
        snprintf(s, len, "%.*s%s", (int)(n - 3), path, suffix);
    else
        snprintf(s, len, "%s%s", path, suffix);
    return s;
}

/* Temporaries of checkpoint writes that a killed run left behind: they are
 * never complete checkpoints (those are renamed into place). */
static void remove_stale_temporaries(const char *out)
{
    DIR *d = opendir(out);
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "checkpoint.h5.tmp.", 18) != 0 && strncmp(e->d_name, "checkpoint.prev.h5.tmp.", 23) != 0)
            continue;
        char *p = dt_path_join(out, e->d_name);
        if (unlink(p) == 0) n++;
        dt_free(p);
    }
    closedir(d);
    if (n) dt_log("dtrain: removed %d unfinished checkpoint file(s) left in %s by an interrupted run\n", n, out);
}

/* rank 0: the verified metadata of the checkpoint at path, of model; 0 or DT_CKPT_* */
static int read_checked(const char *path, const char *model, dt_ckpt_meta *meta)
{
    int rc = dt_ckpt_read_meta(path, meta);
    return rc == 0 ? dt_ckpt_check_model(meta, path, model) : rc;
}

/* rank 0: the --resume auto choice; 1 found, 0 fresh start, -1 error (message set) */
static int resume_auto(const char *out, const char *model, dt_resume_info *info)
{
    remove_stale_temporaries(out);
    char *cur = dt_path_join(out, "checkpoint.h5");
    char *prev = dt_ckpt_prev_path(cur);
    const char *cand[2] = {cur, prev};
    char why[2][1024] = {"", ""};
    int exists[2] = {0, 0}, rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        exists[k] = access(cand[k], F_OK) == 0;
        if (!exists[k]) continue;
        int lr = read_checked(cand[k], model, &info->meta);
        if (lr == 0) {
            snprintf(info->from, sizeof info->from, "%s", cand[k]);
            info->fell_back = k == 1;
            rc = 1;
        } else if (lr == DT_CKPT_MISMATCH) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", dt_lasterr());
            dt_seterr("--resume auto: %s (or give this run another --out)", msg);
            rc = -1;
        } else {
            snprintf(why[k], sizeof why[k], "%s", dt_lasterr());
            if (k == 0)
                dt_warn("--resume auto: %s; trying the checkpoint before it, %s", why[0], prev);
        }
    }
    if (rc == 0 && (exists[0] || exists[1])) {
        dt_seterr("--resume auto: no usable checkpoint in %s: %s%s%s; move the damaged files away to start afresh",
                  out, exists[0] ? why[0] : "", exists[0] && exists[1] ? "; " : "", exists[1] ? why[1] : "");
        rc = -1;
    } else if (rc == 0) {
        dt_log("dtrain: --resume auto: no checkpoint in %s; starting fresh\n", out);
    } else if (rc == 1 && info->fell_back && exists[0]) {
        /* out of the way, so that the next checkpoint does not make it the .prev */
        char *bad = sibling(cur, ".damaged.h5");
        if (rename(cur, bad) == 0)
            dt_warn("--resume auto: the damaged %s is kept as %s", cur, bad);
        else
            dt_warn("--resume auto: cannot move the damaged %s aside: %s", cur, strerror(errno));
        dt_free(bad);
    }
    dt_free(cur);
    dt_free(prev);
    return rc;
}

void dt_run_resume(const dt_run_opts *r, const char *out, const char *model, dt_resume_info *info)
{
    memset(info, 0, sizeof *info);
    if (!r->resume) return;
    int found = 0, ok = 1;
    if (dt_rank() == 0) {
        if (strcmp(r->resume, "auto") == 0) {
            /* the folder is ours before its temporaries are removed or a damaged
             * checkpoint is moved aside: another run may be writing there */
            int rc = lock_out(out) == 0 ? resume_auto(out, model, info) : -1;
            ok = rc >= 0;
            found = rc == 1;
        } else {
            ok = found = read_checked(r->resume, model, &info->meta) == 0;
            snprintf(info->from, sizeof info->from, "%s", r->resume);
        }
    }
    dt_check_all(ok);
    dt_bcast(&found, sizeof found, 0);
    if (!found) return;
    info->resumed = 1;
    dt_bcast(info, sizeof *info, 0);
    dt_log("dtrain: resumed %s from %s at step %lld (epoch %lld, batch %lld), saved with %d rank(s)\n", model,
           info->from, (long long)info->meta.step, (long long)info->meta.epoch + 1, (long long)info->meta.batch,
           info->meta.ranks);
}

void dt_run_checkpoint_failed(const char *path, int64_t step)
{
    char why[1024], tail[1200];
    snprintf(why, sizeof why, "%s", dt_lasterr());
    dt_ckpt_meta m;
    if (access(path, F_OK) == 0 && dt_ckpt_read_meta(path, &m) == 0)
        snprintf(tail, sizeof tail, "the previous checkpoint %s (step %lld) is intact", path, (long long)m.step);
    else
        snprintf(tail, sizeof tail, "no earlier checkpoint of this run is in its folder");
    dt_seterr("%s (at step %lld); %s; stopping so that no progress is lost unsaved: free space or fix the folder, "
              "then continue with --resume auto",
              why, (long long)step, tail);
}

/* ---- provenance: OUT/runs.jsonl -------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
    int first;
} jline;

static void jl_add(jline *j, const char *fmt, ...) DT_PRINTF(2, 3);
static void jl_add(jline *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    if (j->n + (size_t)need + 1 > j->cap) {
        size_t cap = (j->n + (size_t)need + 1) * 2;
        char *s = dt_alloc(cap);
        if (j->s) memcpy(s, j->s, j->n + 1);
        dt_free(j->s);
        j->s = s;
        j->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(j->s + j->n, j->cap - j->n, fmt, ap);
    va_end(ap);
    j->n += (size_t)need;
}

/* "text" escaped for JSON */
static void jl_quoted(jline *j, const char *v)
{
    size_t len = strlen(v) * 6 + 8; /* dt_json_escape keeps room for one escape */
    char *e = dt_alloc(len);
    dt_json_escape(e, len, v);
    jl_add(j, "\"%s\"", e);
    dt_free(e);
}

static void jl_key(jline *j, const char *k)
{
    jl_add(j, "%s\"%s\": ", j->first ? "" : ", ", k);
    j->first = 0;
}

static void jl_str(jline *j, const char *k, const char *v)
{
    jl_key(j, k);
    if (v)
        jl_quoted(j, v);
    else
        jl_add(j, "null");
}

static void jl_begin(jline *j, const char *event)
{
    memset(j, 0, sizeof *j);
    j->first = 1;
    jl_add(j, "{");
    jl_str(j, "event", event);
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    jl_str(j, "time_utc", when);
}

/* one line, appended with a single write so that lines never interleave */
static void jl_append_to(jline *j, const char *path)
{
    jl_add(j, "}\n");
    FILE *f = fopen(path, "a");
    int ok = f && fwrite(j->s, 1, j->n, f) == j->n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) dt_warn("cannot append to %s: %s", path, strerror(errno));
    dt_free(j->s);
}

void dt_run_record_start(const char *out, const char *model, int threads, const dt_run_opts *r,
                         const dt_resume_info *info)
{
    dt_stop_defer(1); /* every rank: the training steps begin, stop signals wait for a step boundary */
    char *hosts = dt_gather_hosts(HOST_MAX);
    if (dt_rank() != 0) return;
    dt_free(g_runs_path);
    g_runs_path = dt_path_join(out, "runs.jsonl");
    jline j;
    jl_begin(&j, "start");
    jl_str(&j, "model", model);
    jl_key(&j, "command");
    jl_add(&j, "[");
    for (int i = 0; i < g_argc; i++) {
        if (i) jl_add(&j, ", ");
        jl_quoted(&j, g_argv[i]);
    }
    jl_add(&j, "]");
    char cwd[1024];
    jl_str(&j, "cwd", getcwd(cwd, sizeof cwd) ? cwd : NULL);
    jl_str(&j, "version", DT_VERSION);
#ifdef DT_GIT_REV
    jl_str(&j, "revision", DT_GIT_REV);
    jl_str(&j, "compiler", DT_CC);
    jl_str(&j, "cflags", DT_CFLAGS);
#endif
    jl_key(&j, "ranks");
    jl_add(&j, "%d", dt_size());
    jl_key(&j, "threads");
    jl_add(&j, "%d", threads);
    jl_str(&j, "products", dt_gemm_isa()); /* the kernels: OpenBLAS rounds differently */
    jl_str(&j, "reduction", dt_step_reduction()); /* plain: the bits depend on the rank count */
    jl_key(&j, "hosts"); /* rank by rank */
    jl_add(&j, "[");
    for (int k = 0; k < dt_size(); k++) {
        if (k) jl_add(&j, ", ");
        jl_quoted(&j, hosts + (size_t)k * HOST_MAX);
    }
    jl_add(&j, "]");
    jl_key(&j, "pid");
    jl_add(&j, "%ld", (long)getpid());
    const char *job = getenv("SLURM_JOB_ID"), *restarts = getenv("SLURM_RESTART_COUNT");
    if (job) jl_str(&j, "slurm_job_id", job);
    if (restarts) {
        jl_key(&j, "slurm_restart_count");
        jl_add(&j, "%ld", strtol(restarts, NULL, 10));
    }
    /* how Open MPI was told to communicate (scripts/mpirun's DTRAIN_TRANSPORT) */
    const char *pml = getenv("OMPI_MCA_pml"), *btl = getenv("OMPI_MCA_btl");
    if (pml) jl_str(&j, "ompi_mca_pml", pml);
    if (btl) jl_str(&j, "ompi_mca_btl", btl);
    jl_str(&j, "stop_signals", r->stop_signals);
    jl_key(&j, "step_timeout");
    jl_add(&j, "%g", r->step_timeout);
    jl_str(&j, "resume", r->resume);
    jl_key(&j, "overwrite");
    jl_add(&j, "%s", r->overwrite ? "true" : "false");
    jl_str(&j, "resumed_from", info->resumed ? info->from : NULL);
    if (info->resumed) {
        jl_key(&j, "resumed_step");
        jl_add(&j, "%lld", (long long)info->meta.step);
        jl_key(&j, "resumed_epoch");
        jl_add(&j, "%lld", (long long)info->meta.epoch + 1);
        jl_key(&j, "resumed_batch");
        jl_add(&j, "%lld", (long long)info->meta.batch);
        jl_key(&j, "resumed_fell_back");
        jl_add(&j, "%s", info->fell_back ? "true" : "false");
    }
    jl_append_to(&j, g_runs_path);
    free(hosts);
}

static void record_end(int status, int64_t step, int64_t epoch, const char *how)
{
    if (dt_rank() != 0 || !g_runs_path) return;
    jline j;
    jl_begin(&j, "end");
    jl_key(&j, "status");
    jl_add(&j, "%d", status);
    jl_str(&j, "how", how);
    jl_key(&j, "step");
    jl_add(&j, "%lld", (long long)step);
    jl_key(&j, "epoch");
    jl_add(&j, "%lld", (long long)epoch);
    jl_key(&j, "wall_s");
    jl_add(&j, "%.3f", dt_now() - g_t0);
    jl_append_to(&j, g_runs_path);
    dt_free(g_runs_path);
    g_runs_path = NULL;
}

void dt_run_stop(int sig, int64_t step, int64_t epoch, const char *ckpt)
{
    dt_watch_pause("stopping");
    char how[64];
    snprintf(how, sizeof how, "stopped by %s", dt_signal_name(sig));
    dt_log("dtrain: %s at step %lld (epoch %lld); checkpoint written to %s; continue with --resume auto\n", how,
           (long long)step, (long long)epoch, ckpt);
    record_end(DT_EXIT_REQUEUE, step, epoch, how);
    dt_watchdog_stop();
    fflush(stdout);
    fflush(stderr);
    dt_comm_finalize();
    exit(DT_EXIT_REQUEUE);
}

void dt_run_finish(int64_t step, int64_t epoch, const char *how)
{
    dt_watchdog_stop();
    record_end(DT_EXIT_OK, step, epoch, how);
}
