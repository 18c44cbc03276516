/* Checkpoints: round trip, refusal of the wrong model / sizes / damaged data,
 * atomic replacement that keeps the previous file. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    m->seed = 42;
    m->nsums = 3;
    m->sums[0] = 128, m->sums[1] = 1.5, m->sums[2] = -2.25;
    snprintf(m->settings, sizeof m->settings, "{\"x\": 1}");
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
    ck_assert_int_eq(dt_ckpt_load(path("c.h5"), "vae", m.arch, &got, nb, &ob, 1), 0);
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
    ck_assert_str_eq(got.settings, "{\"x\": 1}");
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
    ck_assert_int_eq(dt_ckpt_load(path("d.h5"), "vae", m.arch, &got, nb, &o, 1), DT_CKPT_MISMATCH);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "of model 'dvae', not 'vae'"));
    ck_assert_int_eq(dt_ckpt_load(path("d.h5"), "dvae", "dvae width=9", &got, nb, &o, 1), DT_CKPT_MISMATCH);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "was made with"));
    /* same names and arch string but another shape: refused, not misread */
    ck_assert_int_eq(dt_ckpt_load(path("d.h5"), "dvae", m.arch, &got, nc, &o, 1), DT_CKPT_DAMAGED);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "a.weight"));
    dt_params_free(&a);
    dt_params_free(&b);
    dt_params_free(&c);
}
END_TEST

/* Find the bytes of `pattern` in the file and change one of them: damage to
 * the stored parameters that HDF5 itself cannot notice. */
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

START_TEST(refuses_damaged_data)
{
    dt_params a;
    make_net(&a, 4, 3.0f);
    dt_adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1};
    dt_ckpt_meta m, got;
    meta_init(&m, "vae");
    dt_params *na[1] = {&a};
    ck_assert_int_eq(dt_ckpt_save(path("e.h5"), &m, na, &o, 1), 0);
    damage(path("e.h5"), a.w + 4, 4 * sizeof(float));
    ck_assert_int_eq(dt_ckpt_load(path("e.h5"), "vae", m.arch, &got, na, &o, 1), DT_CKPT_DAMAGED);
    ck_assert_msg(strstr(dt_lasterr(), "checksum"), "%s", dt_lasterr());
    ck_assert_int_eq(dt_ckpt_read_meta(path("missing.h5"), &got), -1);
    ck_assert_ptr_nonnull(strstr(dt_lasterr(), "missing.h5"));
    dt_params_free(&a);
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
    m.step = 1;
    ck_assert_int_eq(dt_ckpt_save(path("f.h5"), &m, na, &o, 1), 0);
    m.step = 2;
    ck_assert_int_eq(dt_ckpt_save(path("f.h5"), &m, na, &o, 1), 0);
    ck_assert_int_eq(dt_ckpt_read_meta(path("f.h5"), &got), 0);
    ck_assert_int_eq(got.step, 2);
    char *prev = dt_ckpt_prev_path(path("f.h5"));
    ck_assert_ptr_nonnull(strstr(prev, "f.prev.h5"));
    ck_assert_int_eq(dt_ckpt_read_meta(prev, &got), 0);
    ck_assert_int_eq(got.step, 1);
    /* always the last two */
    m.step = 3;
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
    tcase_add_test(tc, replacement_keeps_previous);
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return failed ? 1 : 0;
}
