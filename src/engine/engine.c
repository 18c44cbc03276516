/* engine: the training loop of every model (see include/dtrain/engine.h). */
#include "dtrain/engine.h"

#include <stdio.h>
#include <string.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "dtrain/guard.h"
#include "dtrain/report.h"

/* Collective. A checkpoint that cannot be written stops the run (status 2)
 * with the reason and the state of the previous one: going on would train
 * for hours that a preemption could then lose. */
static void checkpoint(dt_engine *e, int64_t epoch, int64_t batch)
{
    dt_watch_pause("checkpoint"); /* rank 0 writes; the others wait for it */
    e->ops->gather(e->m);
    int ok = 1;
    if (dt_rank() == 0) {
        dt_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        snprintf(meta.model, sizeof meta.model, "%s", e->ops->name);
        meta.step = e->step;
        meta.epoch = epoch;
        meta.batch = batch;
        meta.epoch_steps = e->epoch_steps;
        meta.seed = e->seed;
        meta.nsums = e->ops->nsums;
        memcpy(meta.sums, e->sums, sizeof(double) * (size_t)e->ops->nsums);
        memcpy(meta.data_sha256, e->data_sha256, sizeof meta.data_sha256);
        meta.settings = *e->settings;
        meta.ranks = dt_size();
        meta.threads = e->threads;
        ok = e->ops->save(e->m, &meta, e->ckpt_path) == 0;
        if (!ok) dt_run_checkpoint_failed(e->ckpt_path, e->step);
    }
    dt_check_all(ok);
}

/* rank 0 loads the checkpoint, every rank receives the same bits */
static void resume(dt_engine *e)
{
    dt_resume_info *info = e->info;
    int ok = dt_rank() != 0 || e->ops->load(e->m, info->from, e->epoch_steps, &info->meta) == 0;
    dt_check_all(ok);
    dt_bcast(&info->meta, sizeof info->meta, 0);
    e->ops->share_loaded(e->m);
    e->step = info->meta.step;
    e->epoch0 = info->meta.epoch;
    e->batch0 = info->meta.batch;
    memcpy(e->sums, info->meta.sums, sizeof(double) * (size_t)info->meta.nsums);
}

static FILE *open_metrics(const dt_engine *e)
{
    if (dt_rank() != 0 || e->idle) return NULL;
    char header[1024];
    snprintf(header, sizeof header, "epoch,step,%s,images_per_s,epoch_s,wall_s", e->ops->columns);
    char *path = dt_path_join(e->out, "metrics.csv");
    FILE *csv = dt_csv_open(path, header);
    if (!csv) dt_warn("%s", dt_lasterr());
    dt_free(path);
    return csv;
}

static void progress(dt_engine *e, dt_progress *prog, int64_t epoch, int64_t b)
{
    if (!prog->tty) return;
    char st[200], eta[32], model[96] = "";
    int64_t total = e->epoch_steps * e->epochs;
    if (e->max_steps > 0 && total > e->max_steps) total = e->max_steps;
    double per = e->train_s / (double)(e->step - e->run_step0); /* seconds per step, this run */
    dt_fmt_duration(eta, sizeof eta, per * (double)(total - e->step));
    if (e->ops->status) e->ops->status(e->m, model, sizeof model);
    snprintf(st, sizeof st, "epoch %lld/%d  %s%s%.0f img/s  ETA %s", (long long)epoch + 1, e->epochs, model,
             model[0] ? "  " : "", e->images / e->train_s, eta);
    dt_progress_draw(prog, (long)b + 1, (long)e->epoch_steps, st);
}

/* One epoch's steps from batch b0; 1 when --max-steps stopped it inside. */
static int train_epoch(dt_engine *e, int64_t epoch, int64_t b0, dt_progress *prog, double *images)
{
    for (int64_t b = b0; b < e->epoch_steps; b++) {
        /* the phases name where a rank was when the watchdog fires */
        dt_watch_step(e->step);
        dt_watch("data loading");
        int got = e->ops->next_batch(e->m);
        /* one reduction per step agrees on the batches and on a stop */
        int sig = dt_check_all_max(got == 1, dt_run_stop_local(e->step));
        if (sig) {
            checkpoint(e, epoch, b);
            dt_run_stop(sig, e->step, epoch + 1, e->ckpt_path);
        }
        double t0 = dt_now(); /* images/s: per second of step time, the loader's excluded */
        double n = e->ops->step(e->m, e->step, e->sums);
        e->step++;
        e->epoch_at = epoch + 1;
        e->train_s += dt_now() - t0;
        e->images += n;
        *images += n;
        progress(e, prog, epoch, b);
        int last = b + 1 == e->epoch_steps;
        if (!last && e->max_steps > 0 && e->step >= e->max_steps) {
            /* stop mid-epoch: the checkpoint holds the exact position */
            checkpoint(e, epoch, b + 1);
            return 1;
        }
        if (!last && e->checkpoint_every > 0 && e->step % e->checkpoint_every == 0) checkpoint(e, epoch, b + 1);
    }
    return 0;
}

/* The epoch's evaluation, log line and metrics row, then its checkpoint. */
static void end_epoch(dt_engine *e, int64_t epoch, double t_epoch, double images, double t_loop, FILE *csv)
{
    dt_epoch_report r = {.epoch = epoch, .step = e->step, .epochs = e->epochs, .sums = e->sums};
    double now = dt_now();
    r.images_per_s = images / (now - t_epoch);
    r.elapsed_s = now - e->t_start;
    r.eta_s = (now - t_loop) / (double)(epoch - e->epoch0 + 1) * (double)(e->epochs - epoch - 1);
    dt_watch_pause("evaluation");
    double row[DT_ROW_MAX];
    int n = e->ops->epoch_end(e->m, &r, row);
    DT_ASSERT(n <= DT_ROW_MAX);
    if (csv) {
        fprintf(csv, "%lld,%lld", (long long)epoch + 1, (long long)e->step);
        for (int k = 0; k < n; k++) fprintf(csv, ",%.6f", row[k]);
        fprintf(csv, ",%.1f,%.3f,%.3f\n", r.images_per_s, dt_now() - t_epoch, dt_now() - e->t_start);
        fflush(csv);
    }
    checkpoint(e, epoch + 1, 0);
    /* a stop asked for during the evaluation or the checkpoint, or after the
     * epoch's last step: this checkpoint will do */
    int sig = dt_check_all_max(1, dt_run_stop_local(e->step));
    if (sig) dt_run_stop(sig, e->step, epoch + 1, e->ckpt_path);
}

static void train(dt_engine *e, FILE *csv)
{
    dt_progress prog;
    dt_progress_init(&prog);
    double t_loop = dt_now();
    e->run_step0 = e->step;
    e->stopped = e->max_steps > 0 && e->step >= e->max_steps; /* resumed at or past it: no step */
    for (int64_t epoch = e->epoch0; epoch < e->epochs && !e->stopped; epoch++) {
        double t_epoch = dt_now(), images = 0;
        int64_t b0 = epoch == e->epoch0 ? e->batch0 : 0;
        if (b0 == 0) memset(e->sums, 0, sizeof e->sums);
        e->ops->epoch_begin(e->m, epoch, b0);
        e->stopped = train_epoch(e, epoch, b0, &prog, &images);
        dt_progress_clear(&prog);
        if (e->stopped) {
            dt_log("dtrain %s: stopped after %lld steps (--max-steps); resume with --resume %s\n", e->ops->name,
                   (long long)e->step, e->ckpt_path);
            break;
        }
        end_epoch(e, epoch, t_epoch, images, t_loop, csv);
        if (e->max_steps > 0 && e->step >= e->max_steps) e->stopped = 1;
    }
}

/* Collective: summary.json, the model's fields between the engine's (rank 0
 * writes; peak_rss_bytes is the largest over the ranks) */
static void write_summary(const dt_engine *e)
{
    double rss = (double)dt_peak_rss();
    dt_allreduce_max_d(&rss, 1);
    if (dt_rank() != 0) return;
    char *path = dt_path_join(e->out, "summary.json");
    dt_json j;
    if (dt_json_open(&j, path) == 0) {
        dt_json_str(&j, "model", e->ops->name);
        e->ops->summary(e->m, e, &j);
        dt_json_int(&j, "ranks", dt_size());
        dt_json_int(&j, "threads", e->threads);
        dt_json_int(&j, "epochs", e->epochs);
        dt_json_int(&j, "batch", (long long)e->batch);
        dt_json_int(&j, "seed", (long long)e->seed);
        dt_json_int(&j, "steps", e->step);
        dt_json_num(&j, "images_per_s", e->train_s > 0 ? e->images / e->train_s : 0);
        dt_json_num(&j, "wall_s", dt_now() - e->t_start);
        dt_json_str(&j, "data", e->data);
        dt_json_str(&j, "version", DT_VERSION);
#ifdef DT_GIT_REV
        dt_json_str(&j, "revision", DT_GIT_REV);
        dt_json_str(&j, "compiler", DT_CC);
        dt_json_str(&j, "cflags", DT_CFLAGS);
#endif
        dt_json_int(&j, "peak_rss_bytes", (long long)rss);
        if (e->info->resumed) dt_json_str(&j, "resumed_from", e->info->from);
        if (dt_json_close(&j) < 0) dt_warn("%s", dt_lasterr());
    } else
        dt_warn("%s", dt_lasterr());
    dt_free(path);
}

void dt_engine_run(dt_engine *e)
{
    e->ckpt_path = dt_path_join(e->out, "checkpoint.h5");
    e->epoch_at = 0;
    if (e->info->resumed) resume(e);
    e->epoch_at = e->epoch0;
    dt_run_record_start(e->out, e->ops->name, e->threads, e->run, e->info);
    e->idle = dt_run_nothing_left(e->info, e->ops->name, e->out, e->epochs, e->max_steps);
    if (e->ops->ready) e->ops->ready(e->m); /* weights are final: from here on only the step writes them */
    FILE *csv = open_metrics(e);
    train(e, csv);
    dt_watch_pause("final evaluation");
    dt_stop_defer(0); /* no step boundary from here on: a stop signal ends the job at once */
    if (csv) fclose(csv);
    e->ops->finish(e->m, e);
    if (!e->idle) write_summary(e); /* a run that trained nothing leaves its results as they are */
    dt_run_finish(e->step, e->epoch_at, e->idle ? "nothing to train" : e->stopped ? "--max-steps reached" : "finished");
    dt_free(e->ckpt_path);
    e->ckpt_path = NULL;
}
