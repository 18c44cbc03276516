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

#include "dtrain/dist.h"
#include "dtrain/guard.h"
#include "dtrain/report.h"

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

int dt_run_stop_poll(void) { return dt_check_all_max(1, dt_stop_requested()); }

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
            int rc = resume_auto(out, model, info);
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
    dt_stop_defer(1); /* the training steps begin: stop signals wait for a step boundary */
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
    dt_dist_finalize();
    exit(DT_EXIT_REQUEUE);
}

void dt_run_finish(int64_t step, int64_t epoch, const char *how)
{
    dt_watchdog_stop();
    record_end(DT_EXIT_OK, step, epoch, how);
}
