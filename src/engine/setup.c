/* What the training commands share before the loop: options, threads, data. */
#include <cblas.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "dtrain/engine.h"
#include "dtrain/nn.h"

void dt_engine_parse(const char *model, dt_opt *opts, int n, int argc, char **argv, const char *usage,
                     dt_run_opts *run, const char *const *out, dt_resume_info *info, dt_settings *settings)
{
    unsigned char given[DT_OPTS_MAX];
    DT_ASSERT(n <= DT_OPTS_MAX);
    int rc = dt_opts_parse_or_exit(opts, n, argc, argv, usage, given);
    dt_check_all(rc == 0);
    dt_engine_configure(model, opts, n, given, run, out, info, settings);
}

void dt_engine_configure(const char *model, const dt_opt *opts, int n, const unsigned char *given, dt_run_opts *run,
                         const char *const *out, dt_resume_info *info, dt_settings *settings)
{
    dt_run_resume(run, *out, model, info); /* *out: as parsed */
    if (info->resumed) {
        /* --resume auto: the folder that held the checkpoint is the run's */
        const char *const keep[] = {strcmp(run->resume, "auto") == 0 ? "out" : NULL, NULL};
        dt_check_all(dt_opts_resume(opts, n, given, &info->meta.settings, keep, info->from) == 0);
    }
    dt_check_all(dt_opts_settings(opts, n, settings) == 0);
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

dt_dataset *dt_engine_data(const char *path, const char *group, const dt_resume_info *info, char hex[65])
{
    /* rank 0 prepares a missing file from the default sources */
    int ok = 1;
    if (dt_rank() == 0 && access(path, F_OK) != 0) {
        dt_log("dtrain: %s not found; preparing it (see `dtrain prepare --help`)\n", path);
        dt_prepare_opts po = {.out = path};
        ok = dt_prepare(&po) == 0;
    }
    dt_check_all(ok);
    dt_dataset *ds = dt_dataset_open(path);
    ok = ds != NULL;
    if (ok && !dt_dataset_has(ds, group))
        ok = dt_seterr("%s has no /%s group; run `dtrain prepare --out %s`", path, group, path) == 0;
    dt_check_all(ok);
    memcpy(hex, dt_dataset_sha256(ds), 65);
    if (info->resumed && strcmp(hex, info->meta.data_sha256) != 0) {
        dt_seterr("--data %s (sha256 %.12s) is not the data set this run was trained on (sha256 %.12s, "
                  "checkpoint %s): give that file with --data, or start a new run in another --out",
                  path, hex, info->meta.data_sha256, info->from);
        dt_check_all(0);
    }
    return ds;
}

/* The rank's block of n items: [n*r/P, n*(r+1)/P). */
void dt_block_range(size_t n, size_t *lo, size_t *hi)
{
    size_t P = (size_t)dt_size(), r = (size_t)dt_rank();
    *lo = n * r / P;
    *hi = n * (r + 1) / P;
}

void dt_bytes_to_float(float *x, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)b[i] * (1.0f / 255.0f);
}
