/* Checkpoints: round trip, refusal of the wrong model / sizes / damaged data
 * (a flipped byte anywhere) / metadata out of range, atomic replacement that
 * keeps the previous file. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "check_run.h"
#include "dtrain/ckpt.h"
#include "dtrain/core.h"
#include "dtrain/nn.h"

static char dir[64];

static void make_net(dt_params *p, int width, float base)
{
    dt_params_init(p, "net");
    dt_params_add(p, "a.weight", 2, (int[]){width, 3});
    dt_params_add(p, "a.bias", 1, (int[]){width});
    dt_params_alloc(p);
    for (int k = 0; k < p->nviews; k++)
        for (size_t i = p->views[k].off; i < p->views[k].off + p->views[k].n; i++) {
            p->w[i] = base + (float)i;
            p->m[i] = base * 2 + (float)i;
            p->v[i] = base * 3 + (float)i;
        }
}

static void meta_init(dt_ckpt_meta *m, const char *model)
{
    memset(m, 0, sizeof *m);
    snprintf(m->model, sizeof m->model, "%s", model);
    snprintf(m->arch, sizeof m->arch, "%s width=4", model);
    m->step = 77;
    m->epoch = 3;
    m->batch = 5;
    m->epoch_steps = 24; /* 77 = 3 * 24 + 5 */
    m->seed = 42;
    m->nsums = 3;
    m->sums[0] = 128, m->sums[1] = 1.5, m->sums[2] = -2.25;
    snprintf(m->data_sha256, sizeof m->data_sha256, "%064d", 7);
    m->settings.n = 3;
    m->settings.v[0] = (dt_setting){.name = "lr", .kind = DT_SETTING_FLOAT, .f = 1e-3f};
    m->settings.v[1] = (dt_setting){.name = "batch", .kind = DT_SETTING_INT, .i = 128};
    m->settings.v[2] = (dt_setting){.name = "data", .kind = DT_SETTING_STR, .s = "some/where.h5"};
    m->ranks = 2;
}

static char *path(const char *name)
{
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

START_TEST(round_trip_is_exact)
{
    dt_params a, b;
    make_net(&a, 4, 0.5f);
    make_net(&b, 4, 0.0f);
    dt_adam oa = {1e-3f, 0.9f, 0.999f, 1e-8f, 77}, ob;
    dt_ckpt_meta m, got;
    meta_init(&m, "vae");
    dt_params *na[1] = {&a}, *nb[1] = {&b};
    ck_assert_int_eq(dt_ckpt_save(path("c.h5"), &m, na, &oa, 1), 0);
    ck_assert_int_eq(dt_ckpt_load(path("c.h5"), "vae", m.arch, 24, &got, nb, &ob, 1), 0);
    ck_assert_mem_eq(a.w, b.w, a.n * sizeof(float));
    ck_assert_mem_eq(a.m, b.m, a.n * sizeof(float));
    ck_assert_mem_eq(a.v, b.v, a.n * sizeof(float));
    ck_assert_int_eq(ob.t, 77);
    ck_assert_int_eq(got.step, 77);
    ck_assert_int_eq(got.epoch, 3);
    ck_assert_int_eq(got.batch, 5);
    ck_assert_uint_eq(got.seed, 42);
    ck_assert_int_eq(got.nsums, 3);
    ck_assert(got.sums[2] == -2.25);
    ck_assert_int_eq(got.epoch_steps, 24);
    ck_assert_str_eq(got.data_sha256, m.data_sha256);
    ck_assert_int_eq(got.settings.n, 3);
    const dt_setting *lr = dt_settings_find(&got.settings, "lr"), *batch = dt_settings_find(&got.settings, "batch"),
                     *data = dt_settings_find(&got.settings, "data");
    ck_assert(lr && lr->kind == DT_SETTING_FLOAT && lr->f == (double)1e-3f);
    ck_assert(batch && batch->kind == DT_SETTING_INT && batch->i == 128);
    ck_assert(data && data->kind == DT_SETTING_STR);
    ck_assert_str_eq(data->s, "some/where.h5");
    /* the user block is transparent to HDF5's own readers (h5dump, ckpt_diff) */
    hid_t f = H5Fopen(path("c.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    H5Fclose(f);
    dt_params_free(&a);
    dt_params_free(&b);
}
END_TEST

START_TEST(refuses_other_model_and_sizes)
{
    dt_params a, b, c;
    make_net(&a, 4, 1.0f);
    make_net(&b, 4, 0.0f);
    make_net(&c, 5, 0.0f);
    dt_adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1};
    dt_ckpt_meta m, got;
    meta_init(&m, "dvae");
    dt_params *na[1] = {&a}, *nb[1] = {&b}, *nc[1] = {&c};
    ck_assert_int_eq(dt_ckpt_save(path("d.h5"), &m, na, &o, 1), 0);
    ck_assert_int_eq(dt_ckpt_load(path("d.h5"), "vae", m.arch, 0, &got, nb, &o, 1), DT_CKPT_MISMATCH);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "of model 'dvae', not 'vae'"));
    ck_assert_int_eq(dt_ckpt_load(path("d.h5"), "dvae", "dvae width=9", 0, &got, nb, &o, 1), DT_CKPT_MISMATCH);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "was made with"));
    /* another number of steps per epoch: another data set or batch size */
    ck_assert_int_eq(dt_ckpt_load(path("d.h5"), "dvae", m.arch, 25, &got, nb, &o, 1), DT_CKPT_MISMATCH);
    ck_assert_msg(strstr(dt_lasterr(), "24 steps per epoch, this run 25"), "%s", dt_lasterr());
    /* same names and arch string but another shape: refused, not misread */
    ck_assert_int_eq(dt_ckpt_load(path("d.h5"), "dvae", m.arch, 0, &got, nc, &o, 1), DT_CKPT_DAMAGED);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "a.weight"));
    dt_params_free(&a);
    dt_params_free(&b);
    dt_params_free(&c);
}
END_TEST

/* Find the bytes of `pattern` in the file and change one of them by one bit. */
static void damage(const char *p, const void *pattern, size_t n)
{
    FILE *f = fopen(p, "r+b");
    ck_assert_ptr_nonnull(f);
    static unsigned char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    long at = -1;
    for (size_t i = 0; i + n <= len && at < 0; i++)
        if (memcmp(buf + i, pattern, n) == 0) at = (long)i;
    ck_assert_int_ge(at, 0);
    fseek(f, at + 1, SEEK_SET);
    fputc(buf[at + 1] ^ 0x10, f);
    fclose(f);
}

/* saved, damaged at pattern, refused by both readers as damage naming the cause */
static void refused_when_damaged(const char *name, const void *pattern, size_t n, const char *why)
{
    dt_params a;
    make_net(&a, 4, 3.0f);
    dt_adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1};
    dt_ckpt_meta m, got;
    meta_init(&m, "vae");
    dt_params *na[1] = {&a};
    ck_assert_int_eq(dt_ckpt_save(path(name), &m, na, &o, 1), 0);
    ck_assert_int_eq(dt_ckpt_read_meta(path(name), &got), 0);
    damage(path(name), pattern ? pattern : (const void *)(a.w + 4), pattern ? n : 4 * sizeof(float));
    ck_assert_int_eq(dt_ckpt_read_meta(path(name), &got), DT_CKPT_DAMAGED);
    ck_assert_msg(strstr(dt_lasterr(), why), "%s", dt_lasterr());
    ck_assert_int_eq(dt_ckpt_load(path(name), "vae", m.arch, 0, &got, na, &o, 1), DT_CKPT_DAMAGED);
    ck_assert_msg(strstr(dt_lasterr(), why), "%s", dt_lasterr());
    dt_params_free(&a);
}

START_TEST(refuses_damaged_data)
{
    refused_when_damaged("e.h5", NULL, 0, "damaged: the SHA-256");
    dt_ckpt_meta got;
    ck_assert_int_eq(dt_ckpt_read_meta(path("missing.h5"), &got), DT_CKPT_DAMAGED);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "missing.h5"));
}
END_TEST

/* Attributes lie outside the per-network CRC: the file's hash covers them. */
START_TEST(refuses_flipped_attribute)
{
    refused_when_damaged("attr.h5", "some/where.h5", 13, "damaged: the SHA-256"); /* a setting */
    refused_when_damaged("arch.h5", "vae width=4", 11, "damaged: the SHA-256");   /* a root attribute */
    refused_when_damaged("head.h5", "format 2", 8, "header");                     /* the header itself */
    refused_when_damaged("hash.h5", "sha256 ", 7, "damaged header");
}
END_TEST

START_TEST(refuses_truncated_and_foreign_files)
{
    dt_params a;
    make_net(&a, 4, 3.0f);
    dt_adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1};
    dt_ckpt_meta m, got;
    meta_init(&m, "vae");
    dt_params *na[1] = {&a};
    ck_assert_int_eq(dt_ckpt_save(path("t.h5"), &m, na, &o, 1), 0);
    struct stat st;
    ck_assert_int_eq(stat(path("t.h5"), &st), 0);
    ck_assert_int_eq(truncate(path("t.h5"), st.st_size - 100), 0);
    ck_assert_int_eq(dt_ckpt_read_meta(path("t.h5"), &got), DT_CKPT_DAMAGED);
    ck_assert_msg(strstr(dt_lasterr(), "damaged"), "%s", dt_lasterr());
    ck_assert_int_eq(truncate(path("t.h5"), 100), 0);
    ck_assert_int_eq(dt_ckpt_read_meta(path("t.h5"), &got), DT_CKPT_DAMAGED);
    ck_assert_msg(strstr(dt_lasterr(), "not a dtrain checkpoint"), "%s", dt_lasterr());
    /* a plain HDF5 file, as an older dtrain wrote: sound, but not one this dtrain can verify */
    hid_t f = H5Fcreate(path("old.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    H5Fclose(f);
    ck_assert_int_eq(dt_ckpt_read_meta(path("old.h5"), &got), DT_CKPT_MISMATCH);
    ck_assert_msg(strstr(dt_lasterr(), "older dtrain (format 1)"), "%s", dt_lasterr());
    dt_params_free(&a);
}
END_TEST

/* A checkpoint written through the API, checksum right, metadata wrong:
 * refused after verification, naming the field. */
static void refused_meta(dt_ckpt_meta *m, const char *why)
{
    dt_params a;
    make_net(&a, 4, 3.0f);
    dt_adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1};
    dt_params *na[1] = {&a};
    dt_ckpt_meta got;
    ck_assert_int_eq(dt_ckpt_save(path("bad.h5"), m, na, &o, 1), 0);
    ck_assert_int_eq(dt_ckpt_read_meta(path("bad.h5"), &got), DT_CKPT_DAMAGED);
    ck_assert_msg(strstr(dt_lasterr(), why), "%s", dt_lasterr());
    ck_assert_int_eq(dt_ckpt_load(path("bad.h5"), m->model, m->arch, 0, &got, na, &o, 1), DT_CKPT_DAMAGED);
    ck_assert_msg(strstr(dt_lasterr(), why), "%s", dt_lasterr());
    dt_params_free(&a);
}

START_TEST(refuses_metadata_out_of_range)
{
    dt_ckpt_meta m;
    meta_init(&m, "vae");
    m.step = -5;
    refused_meta(&m, "step -5 < 0");
    meta_init(&m, "vae");
    m.epoch = 999;
    refused_meta(&m, "step 77 is not epoch 999 x 24 steps + batch 5");
    meta_init(&m, "vae");
    m.step = 78;
    refused_meta(&m, "step 78 is not epoch 3 x 24 steps + batch 5");
    meta_init(&m, "vae");
    m.batch = 24, m.step = 96;
    refused_meta(&m, "batch 24 outside an epoch of 24 steps");
    meta_init(&m, "vae");
    m.ranks = 0;
    refused_meta(&m, "ranks 0 < 1");
    meta_init(&m, "vae");
    m.sums[1] = 0.0 / 0.0;
    refused_meta(&m, "sums[1] = ");
    meta_init(&m, "vae");
    m.tau = 1e6;
    refused_meta(&m, "tau 1e+06 outside");
    meta_init(&m, "vae");
    m.data_sha256[3] = 'x';
    refused_meta(&m, "data_sha256 is not a SHA-256");
}
END_TEST

START_TEST(replacement_keeps_previous)
{
    dt_params a;
    make_net(&a, 4, 1.0f);
    dt_adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1};
    dt_ckpt_meta m, got;
    meta_init(&m, "vae");
    dt_params *na[1] = {&a};
    m.epoch = 0;
    m.step = m.batch = 1;
    ck_assert_int_eq(dt_ckpt_save(path("f.h5"), &m, na, &o, 1), 0);
    m.step = m.batch = 2;
    ck_assert_int_eq(dt_ckpt_save(path("f.h5"), &m, na, &o, 1), 0);
    ck_assert_int_eq(dt_ckpt_read_meta(path("f.h5"), &got), 0);
    ck_assert_int_eq(got.step, 2);
    char *prev = dt_ckpt_prev_path(path("f.h5"));
    ck_assert_ptr_nonnull(strstr(prev, "f.prev.h5"));
    ck_assert_int_eq(dt_ckpt_read_meta(prev, &got), 0);
    ck_assert_int_eq(got.step, 1);
    /* always the last two */
    m.step = m.batch = 3;
    ck_assert_int_eq(dt_ckpt_save(path("f.h5"), &m, na, &o, 1), 0);
    ck_assert_int_eq(dt_ckpt_read_meta(path("f.h5"), &got), 0);
    ck_assert_int_eq(got.step, 3);
    ck_assert_int_eq(dt_ckpt_read_meta(prev, &got), 0);
    ck_assert_int_eq(got.step, 2);
    dt_free(prev);
    /* a folder that cannot be written: error, nothing touched */
    ck_assert_int_eq(dt_ckpt_save("/proc/no/such/c.h5", &m, na, &o, 1), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "/proc/no/such/c.h5"));
    ck_assert_msg(strstr(dt_lasterr(), "No such file or directory"), "%s", dt_lasterr());
    dt_params_free(&a);
}
END_TEST

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/dtrain-ckpt-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("ckpt");
    tcase_add_test(tc, round_trip_is_exact);
    tcase_add_test(tc, refuses_other_model_and_sizes);
    tcase_add_test(tc, refuses_damaged_data);
    tcase_add_test(tc, refuses_flipped_attribute);
    tcase_add_test(tc, refuses_truncated_and_foreign_files);
    tcase_add_test(tc, refuses_metadata_out_of_range);
    tcase_add_test(tc, replacement_keeps_previous);
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return failed ? 1 : 0;
}
