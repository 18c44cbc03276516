/* `dtrain study`: the three VAEs on the same data, seed and epochs, and a
 * plain answer to the report's claim (joint < discrete < continuous in loss). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"
#include "dtrain/plot.h"
#include "dtrain/report.h"
#include "dtrain/runctl.h"
#include "dtrain/vae_run.h"

#define NM 3
static const char *const MODELS[NM] = {"vae", "dvae", "jvae"};

static void append_file(FILE *out, const char *path, int skip_header)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (!(first && skip_header)) fputs(line, out);
        first = 0;
    }
    fclose(f);
}

/* the table of test losses (study.md) and study.csv */
static void loss_table(FILE *f, FILE *c, const dt_vae_result *r)
{
    fprintf(c, "model,test_loss,test_bce,test_kl_cont,test_kl_disc,images_per_s,wall_s,all_categories_in_use\n");
    fprintf(f, "| model | test loss / image | BCE | KL continuous | KL discrete | images/s | wall time | all categories used |\n");
    fprintf(f, "|---|---:|---:|---:|---:|---:|---:|:---:|\n");
    for (int i = 0; i < NM; i++) {
        double kl[2] = {NAN, NAN}; /* continuous, discrete: each part's term */
        const dt_vae_kind *k = r[i].kind;
        for (int p = 0; p < k->nparts; p++) kl[k->parts[p] == DT_PART_CAT] = r[i].test[2 + p];
        char w[32], kcs[32] = "-", kds[32] = "-";
        dt_fmt_duration(w, sizeof w, r[i].wall_s);
        if (isfinite(kl[0])) snprintf(kcs, sizeof kcs, "%.2f", kl[0]);
        if (isfinite(kl[1])) snprintf(kds, sizeof kds, "%.2f", kl[1]);
        fprintf(f, "| %s (`%s`) | %.2f | %.2f | %s | %s | %.0f | %s | %s |\n", k->title, k->name, r[i].test[0],
                r[i].test[1], kcs, kds, r[i].images_per_s, w,
                r[i].all_in_use < 0 ? "-" : r[i].all_in_use ? "yes" : "no");
        fprintf(c, "%s,%.6f,%.6f,%s,%s,%.1f,%.3f,%d\n", k->name, r[i].test[0], r[i].test[1],
                isfinite(kl[0]) ? kcs : "", isfinite(kl[1]) ? kds : "", r[i].images_per_s, r[i].wall_s,
                r[i].all_in_use);
    }
}

/* what each categorical variable captured: study.md's table, latent_mi.csv */
static void variables_table(FILE *f, FILE *m, const char *out)
{
    fprintf(f, "## What each categorical variable captured\n\n");
    fprintf(f, "Normalized mutual information of each variable's most likely category with the digit and with "
               "the color of the test images (1: the variable determines it; 0: unrelated).\n\n");
    fprintf(f, "| model | variable | categories in use | NMI digit | NMI color |\n|---|---:|---:|---:|---:|\n");
    fprintf(m, "model,variable,categories_in_use,K,nmi_digit,nmi_color\n");
    for (int i = 1; i < NM; i++) {
        char *dir = dt_path_join(out, MODELS[i]), *p = dt_path_join(dir, "latent_mi.csv");
        append_file(m, p, 1);
        FILE *in = fopen(p, "r");
        char line[512];
        if (in) {
            if (fgets(line, sizeof line, in)) { /* header */
                char model[32];
                int v, use, K;
                double nd, nc;
                while (fgets(line, sizeof line, in))
                    if (sscanf(line, "%31[^,],%d,%d,%d,%lf,%lf", model, &v, &use, &K, &nd, &nc) == 6)
                        fprintf(f, "| %s | %d | %d of %d | %.3f | %.3f |\n", model, v, use, K, nd, nc);
            }
            fclose(in);
        }
        dt_free(p);
        dt_free(dir);
    }
}

/* the three test-loss curves */
static int curves(const char *png, const dt_vae_result *r, int epochs)
{
    float *x = dt_alloc_floats((size_t)epochs), *y = dt_alloc_floats((size_t)NM * epochs);
    for (int e = 0; e < epochs; e++) x[e] = (float)(e + 1);
    for (int i = 0; i < NM; i++)
        for (int e = 0; e < epochs; e++)
            y[i * epochs + e] = r[i].curve && e < r[i].epochs ? (float)r[i].curve[e] : NAN;
    const char *names[NM] = {"continuous (vae)", "discrete (dvae)", "joint (jvae)"};
    int rc = dt_plot_lines(png, x, y, NM, epochs, names, "test loss per image", "epoch", "BCE + KL",
                           &(dt_lines_opts){.xint = 1});
    dt_free(x);
    dt_free(y);
    return rc;
}

static int write_report(const char *out, const dt_vae_result *r, int epochs, uint64_t seed, const char *data)
{
    char *md = dt_path_join(out, "study.md"), *csv = dt_path_join(out, "study.csv");
    char *mi = dt_path_join(out, "latent_mi.csv"), *png = dt_path_join(out, "test_loss.png");
    FILE *f = fopen(md, "w"), *c = fopen(csv, "w"), *m = fopen(mi, "w");
    int rc = 0;
    double lv = r[0].test[0], ld = r[1].test[0], lj = r[2].test[0];
    int agrees = lj < ld && ld < lv;
    if (!f || !c || !m) {
        rc = dt_seterr("cannot write the study's files in %s", out);
        goto done;
    }
    fprintf(f, "# The three VAEs on colored MNIST\n\n");
    fprintf(f, "Data `%s`, seed %llu, %d epochs each, the same batches and noise keys for all three.\n\n", data,
            (unsigned long long)seed, epochs);
    loss_table(f, c, r);
    fprintf(f, "\n**The report's claim** — the joint VAE reaches the lowest loss, then the discrete, then the "
               "continuous one (joint < discrete < continuous): ");
    if (agrees)
        fprintf(f, "**this run agrees** (%.2f < %.2f < %.2f).\n\n", lj, ld, lv);
    else
        fprintf(f, "**this run does not agree**: joint %.2f, discrete %.2f, continuous %.2f.\n\n", lj, ld, lv);
    fprintf(f, "What differs from the report's recipe, and why: the discrete VAE as literally specified collapses "
               "(within the first epoch every variable settles on one category and the loss stays near 482); dtrain "
               "weights its KL term with a factor that starts at 20 and falls linearly to 1 over the first 1,000 "
               "steps (`--kl-start 20 --kl-warmup 1000`; `--kl-start 1` restores the literal recipe). The joint and "
               "continuous VAEs follow the report as read in SPEC.md. Losses are per image: BCE summed over the "
               "2352 outputs plus the KL terms (unweighted), on the test set with fixed noise.\n\n");
    variables_table(f, m, out);
    fprintf(f, "\nPer-model tables of category against digit and color: `<model>/latents.md`. Pictures: "
               "`<model>/*.png`; the three test-loss curves: `test_loss.png`.\n");
    if (curves(png, r, epochs) < 0) rc = -1;
done:
    if (f && fclose(f) != 0) rc = -1;
    if (c && fclose(c) != 0) rc = -1;
    if (m && fclose(m) != 0) rc = -1;
    if (rc == 0)
        dt_log("dtrain study: %s: joint %.2f, discrete %.2f, continuous %.2f -> the report's order %s; see %s\n", out,
               lj, ld, lv, agrees ? "holds" : "does not hold", md);
    dt_free(md);
    dt_free(csv);
    dt_free(mi);
    dt_free(png);
    return rc;
}

int dt_cmd_study(int argc, char **argv)
{
    const char *data = DT_DATA_DEFAULT_PATH, *out = "results/study";
    int epochs = 30, threads = 0;
    size_t batch = 128;
    uint64_t seed = 1;
    dt_run_opts run;
    dt_run_opts_default(&run);
    dt_opt opts[] = {
        {"data", DT_OPT_STR, &data, "FILE", "colored-MNIST HDF5 file (prepared if missing)", 1, 0},
        {"epochs", DT_OPT_INT, &epochs, "N", "epochs for each model", 1, 100000},
        {"batch", DT_OPT_SIZE, &batch, "N", "global batch size", 1, 1 << 20},
        {"seed", DT_OPT_U64, &seed, "N", "seed shared by the three runs", 1, 0},
        {"out", DT_OPT_STR, &out, "DIR", "output folder (one sub-folder per model)", 1, 0},
        {"threads", DT_OPT_INT, &threads, "N", "threads per rank (0: auto)", 0, 1024},
        {"resume", DT_OPT_STR, &run.resume, "auto",
         "continue each model from its checkpoint in OUT/<model>/ (a finished one is only evaluated)", 1, 0},
        DT_RUN_OPT_OVERWRITE(&run),
        DT_RUN_OPT_STOP(&run),
        DT_RUN_OPT_TIMEOUT(&run),
    };
    int n = (int)(sizeof opts / sizeof *opts);
    int rc = dt_opts_parse_or_exit(
        opts, n, argc, argv,
        "usage: [mpirun -np N] dtrain study [options]\n\n"
        "Train vae, dvae and jvae with the same data, seed and epochs (each with its defaults)\n"
        "and write OUT/study.md and study.csv (test losses with each term, images/s, wall time),\n"
        "OUT/test_loss.png (the three curves), OUT/latent_mi.csv, and each run in OUT/<model>/.\n",
        NULL);
    if (rc == 0 && run.resume && strcmp(run.resume, "auto") != 0)
        rc = dt_seterr("study: --resume takes only 'auto' (each model resumes from OUT/<model>/checkpoint.h5)");
    dt_check_all(rc == 0);
    /* the study's folder and each model's, refused or cleared before any model trains */
    dt_run_claim(&run, out);
    for (int i = 0; i < NM; i++) {
        char *dir = dt_path_join(out, MODELS[i]);
        dt_run_claim(&run, dir);
        dt_free(dir);
    }
    dt_vae_result r[NM];
    memset(r, 0, sizeof r);
    for (int i = 0; i < NM; i++) {
        char *dir = dt_path_join(out, MODELS[i]);
        dt_vae_config c = {.data = data, .out = dir, .epochs = epochs, .threads = threads, .batch = batch,
                           .seed = seed, .run = run};
        c.run.overwrite = 0; /* the study cleared the folders above */
        dt_log("\n== study: %s\n", MODELS[i]);
        /* a stop signal ends the whole study inside dt_vae_train_config (status 75) */
        dt_vae_train_config(dt_vae_kind_find(MODELS[i]), &c, &r[i]);
        dt_free(dir);
    }
    if (dt_rank() == 0 && write_report(out, r, epochs, seed, data) < 0) dt_warn("%s", dt_lasterr());
    for (int i = 0; i < NM; i++) dt_free(r[i].curve);
    return 0;
}
