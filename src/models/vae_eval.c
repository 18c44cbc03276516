/* The VAE family's evaluation: test losses and per-image latent statistics
 * over every rank's block of the test split, the embeddings file all ranks
 * write together, and `dtrain embed`. */
#include <hdf5.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/ckpt.h"
#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "dtrain/engine.h"
#include "dtrain/h5.h"
#include "dtrain/report.h"
#include "dtrain/vae_run.h"

void dt_vae_eval_init(dt_vae_eval *e, dt_vae *m, dt_split *test)
{
    memset(e, 0, sizeof *e);
    e->m = m;
    e->test = test;
    e->N = dt_split_len(test);
    dt_block_range(e->N, &e->lo, &e->hi);
    e->bytes = dt_alloc((size_t)m->maxB * DT_IMG);
    e->idx = dt_alloc(sizeof(uint32_t) * (size_t)m->maxB);
    e->gidx = dt_alloc(sizeof(uint64_t) * (size_t)m->maxB);
    for (int k = 0; k < m->nstats; k++)
        e->stats[k] = dt_alloc_floats(e->N * (size_t)m->stat_width[k]);
    e->digits = dt_alloc(e->N);
    e->colors = dt_alloc(e->N);
}

void dt_vae_eval_free(dt_vae_eval *e)
{
    dt_free(e->bytes);
    dt_free(e->idx);
    dt_free(e->gidx);
    for (int k = 0; k < 4; k++) dt_free(e->stats[k]);
    dt_free(e->digits);
    dt_free(e->colors);
}


/* Test losses with fixed noise (exact sums over all images, all ranks); fills the
 * rank's rows of the statistics. -1 on a read error (collective outcome). */
int dt_vae_evaluate(dt_vae_eval *e, uint64_t step, double *sums)
{
    dt_vae *m = e->m;
    int nt = 1 + m->kind->nparts, ok = 1;
    dt_xsum xs[DT_MAX_TERMS] = {0};
    double rank_sums[DT_MAX_TERMS] = {0};
    for (size_t i = e->lo; i < e->hi && ok; i += (size_t)m->maxB) {
        int B = (int)(e->hi - i < (size_t)m->maxB ? e->hi - i : (size_t)m->maxB);
        for (int j = 0; j < B; j++) e->idx[j] = (uint32_t)(i + (size_t)j), e->gidx[j] = i + (size_t)j;
        if (dt_split_read(e->test, e->idx, (size_t)B, e->bytes, e->digits + i, e->colors + i) < 0) {
            ok = 0;
            break;
        }
        dt_bytes_to_float(m->x, e->bytes, (size_t)B * DT_IMG);
        dt_vae_forward(m, B, e->gidx, step, 1, rank_sums); /* step: the temperature now */
        dt_vae_xsums(m, B, xs);
        for (int k = 0; k < m->nstats; k++) {
            size_t w = (size_t)m->stat_width[k];
            memcpy(e->stats[k] + i * w, m->stat[k], sizeof(float) * w * (size_t)B);
        }
    }
    if (!dt_all_ok(ok)) return -1;
    dt_comm_xsum(NULL, xs, (size_t)nt); /* the same bits for any rank count */
    for (int k = 0; k < nt; k++) sums[k] = dt_xsum_value(&xs[k]);
    return 0;
}

/* Every rank's rows -> the whole arrays on every rank (rows are disjoint). */
void dt_vae_eval_gather(dt_vae_eval *e)
{
    dt_vae *m = e->m;
    for (int k = 0; k < m->nstats; k++)
        dt_allreduce_sum_f(e->stats[k], e->N * (size_t)m->stat_width[k]);
    /* labels as floats would lose nothing, but bytes are simpler through doubles */
    double *tmp = dt_alloc(sizeof(double) * e->N * 2);
    for (size_t i = e->lo; i < e->hi; i++) tmp[2 * i] = e->digits[i], tmp[2 * i + 1] = e->colors[i];
    dt_allreduce_sum_d(tmp, e->N * 2);
    for (size_t i = 0; i < e->N; i++) e->digits[i] = (uint8_t)tmp[2 * i], e->colors[i] = (uint8_t)tmp[2 * i + 1];
    dt_free(tmp);
}

/* ---- embeddings: one HDF5 file, every rank writes its rows collectively ------ */

int dt_vae_stat_index(const dt_vae *m, const char *name)
{
    for (int k = 0; k < m->nstats; k++)
        if (strcmp(m->stat_name[k], name) == 0) return k;
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

int dt_vae_write_embeddings(dt_vae_eval *e, const char *path, const char *ckpt_note)
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
    for (int k = 0; k < m->nstats; k++) {
        size_t w = (size_t)m->stat_width[k];
        rc |= write_rows(f, dxpl, m->stat_name[k], 0, e->N, w, e->lo, rows, e->stats[k] + e->lo * w);
    }
    int q = dt_vae_stat_index(m, "q");
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
    dt_vae_args a;
    dt_opt table[DT_OPTS_MAX];
    int nt = dt_vae_options(kind->name, &a, table);
    dt_check_all(dt_opts_resume(table, nt, NULL, &meta.settings, NULL, ckpt) == 0);
    dt_vae_opts o = a.o;
    dt_vae *m = dt_vae_create(kind, &o, 128);
    dt_adam adam;
    dt_check_all(dt_rank() != 0 || dt_vae_load(ckpt, m, &adam, 0, &meta) == 0);
    dt_bcast(&meta, sizeof meta, 0);
    dt_vae_share_loaded(m, &adam);

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
    dt_vae_eval ev;
    dt_vae_eval_init(&ev, m, test);
    double sums[DT_MAX_TERMS + 1];
    dt_check_all(dt_vae_evaluate(&ev, (uint64_t)meta.step, sums) == 0);
    dt_check_all(dt_vae_write_embeddings(&ev, out, ckpt) == 0);
    dt_log("dtrain embed: %zu test images of %s -> %s\n", ev.N, ckpt, out);
    dt_vae_eval_free(&ev);
    dt_free(dflt);
    dt_vae_free(m);
    dt_split_close(test);
    dt_dataset_close(ds);
    return 0;
}
