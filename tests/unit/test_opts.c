/* Option parsing as a resume sees it: which options were given, a forgotten
 * value, the settings a checkpoint keeps, and taking them back (adopted,
 * refused when changed, changes allowed for some). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check_run.h"
#include "dtrain/cli.h"
#include "dtrain/core.h"

typedef struct {
    int epochs, hard;
    size_t batch;
    float lr, shift;
    uint64_t seed;
    const char *out, *resume;
} cfg;

#define NOPT 8
static void table(cfg *c, dt_opt *o)
{
    *c = (cfg){.epochs = 30, .batch = 128, .lr = 1e-3f, .seed = 1, .out = "results/x"};
    const dt_opt t[NOPT] = {
        {"epochs", DT_OPT_INT, &c->epochs, "N", "epochs", 0, 100000},
        {"batch", DT_OPT_SIZE, &c->batch, "N", "batch", 1, 1 << 20},
        {"lr", DT_OPT_FLOAT, &c->lr, "X", "rate", 0, 10},
        {"shift", DT_OPT_FLOAT, &c->shift, "X", "may be negative", 1, 0},
        {"seed", DT_OPT_U64, &c->seed, "N", "seed", 1, 0},
        {"hard", DT_OPT_FLAG, &c->hard, NULL, "flag", 1, 0},
        {"out", DT_OPT_STR, &c->out, "DIR", "folder", 1, 0},
        {"resume", DT_OPT_STR, &c->resume, "FILE", "resume", 1, 0},
    };
    memcpy(o, t, sizeof t);
}

static int parse(dt_opt *o, unsigned char *given, int argc, const char **argv)
{
    return dt_opts_parse(o, NOPT, argc, (char **)argv, 0, given);
}

START_TEST(records_given_options)
{
    cfg c;
    dt_opt o[NOPT];
    unsigned char given[NOPT];
    table(&c, o);
    const char *argv[] = {"--lr", "0.002", "--hard", "--out=a/b"};
    ck_assert_int_eq(parse(o, given, 4, argv), 0);
    const unsigned char want[NOPT] = {0, 0, 1, 0, 0, 1, 1, 0};
    ck_assert_mem_eq(given, want, NOPT);
    ck_assert(c.lr == 0.002f && c.hard == 1);
    ck_assert_str_eq(c.out, "a/b");
}
END_TEST

START_TEST(refuses_a_forgotten_value)
{
    cfg c;
    dt_opt o[NOPT];
    table(&c, o);
    const char *a1[] = {"--out", "--epochs", "3"};
    ck_assert_int_eq(parse(o, NULL, 3, a1), -1);
    ck_assert_str_eq(dt_lasterr(), "--out needs a value, got '--epochs'");
    ck_assert_str_eq(c.out, "results/x");
    /* said explicitly with '=', the value is taken as written */
    const char *a2[] = {"--out=--odd"};
    ck_assert_int_eq(parse(o, NULL, 1, a2), 0);
    ck_assert_str_eq(c.out, "--odd");
    /* an option that takes negative numbers reads what follows as its value */
    const char *a3[] = {"--shift", "-1.5"};
    ck_assert_int_eq(parse(o, NULL, 2, a3), 0);
    ck_assert(c.shift == -1.5f);
}
END_TEST

START_TEST(settings_keep_every_option_but_the_switches)
{
    cfg c;
    dt_opt o[NOPT];
    table(&c, o);
    c.resume = "auto";
    c.seed = UINT64_MAX; /* kept by its bits */
    dt_settings s;
    ck_assert_int_eq(dt_opts_settings(o, NOPT, &s), 0);
    ck_assert_int_eq(s.n, NOPT - 1);
    ck_assert_ptr_null(dt_settings_find(&s, "resume"));
    const dt_setting *lr = dt_settings_find(&s, "lr"), *seed = dt_settings_find(&s, "seed");
    ck_assert(lr->kind == DT_SETTING_FLOAT && lr->f == (double)1e-3f);
    ck_assert(seed->kind == DT_SETTING_INT && (uint64_t)seed->i == UINT64_MAX);
    ck_assert_str_eq(dt_settings_find(&s, "out")->s, "results/x");
}
END_TEST

/* the settings of a run made with `--epochs 3 --lr 0.002 --seed 7 --hard --out old` */
static void saved_run(dt_settings *s)
{
    cfg c;
    dt_opt o[NOPT];
    table(&c, o);
    const char *argv[] = {"--epochs", "3", "--lr", "0.002", "--seed", "7", "--hard", "--out", "old"};
    ck_assert_int_eq(parse(o, NULL, 9, argv), 0);
    ck_assert_int_eq(dt_opts_settings(o, NOPT, s), 0);
}

START_TEST(resume_takes_what_was_not_given)
{
    dt_settings s;
    saved_run(&s);
    cfg c;
    dt_opt o[NOPT];
    unsigned char given[NOPT];
    table(&c, o);
    const char *argv[] = {"--resume", "ck.h5"};
    ck_assert_int_eq(parse(o, given, 2, argv), 0);
    ck_assert_int_eq(dt_opts_resume(o, NOPT, given, &s, NULL, "ck.h5"), 0);
    ck_assert_int_eq(c.epochs, 3);
    ck_assert(c.lr == 0.002f);
    ck_assert_uint_eq(c.seed, 7);
    ck_assert_int_eq(c.hard, 1);
    ck_assert_str_eq(c.out, "old");
    ck_assert_str_eq(c.resume, "ck.h5");
    /* kept: the present value stands */
    table(&c, o);
    const char *keep[] = {"out", NULL};
    ck_assert_int_eq(dt_opts_resume(o, NOPT, NULL, &s, keep, "ck.h5"), 0);
    ck_assert_str_eq(c.out, "results/x");
    ck_assert_int_eq(c.epochs, 3);
}
END_TEST

START_TEST(resume_refuses_changed_settings)
{
    dt_settings s;
    saved_run(&s);
    cfg c;
    dt_opt o[NOPT];
    unsigned char given[NOPT];
    table(&c, o);
    const char *argv[] = {"--lr", "0.001", "--seed", "8", "--epochs", "4", "--batch", "128"};
    ck_assert_int_eq(parse(o, given, 8, argv), 0);
    ck_assert_int_eq(dt_opts_resume(o, NOPT, given, &s, NULL, "ck.h5"), -1);
    /* both refused options with their old and new values; --epochs may change, --batch did not */
    ck_assert_msg(strstr(dt_lasterr(), "checkpoint ck.h5 was made with other settings (--lr 0.002 -> 0.001, --seed 7 -> 8)"),
                  "%s", dt_lasterr());
    /* the same value given again is no change */
    table(&c, o);
    const char *same[] = {"--lr", "2e-3", "--epochs", "4"};
    ck_assert_int_eq(parse(o, given, 4, same), 0);
    ck_assert_int_eq(dt_opts_resume(o, NOPT, given, &s, NULL, "ck.h5"), 0);
    ck_assert_int_eq(c.epochs, 4);
}
END_TEST

START_TEST(resume_checks_saved_values_like_typed_ones)
{
    dt_settings s;
    saved_run(&s);
    dt_setting *batch = (dt_setting *)dt_settings_find(&s, "batch");
    batch->i = 0; /* below the option's range */
    cfg c;
    dt_opt o[NOPT];
    table(&c, o);
    ck_assert_int_eq(dt_opts_resume(o, NOPT, NULL, &s, NULL, "ck.h5"), -1);
    ck_assert_msg(strstr(dt_lasterr(), "checkpoint ck.h5: --batch: 0 is out of range"), "%s", dt_lasterr());
    batch->i = 64;
    batch->kind = DT_SETTING_STR;
    ck_assert_int_eq(dt_opts_resume(o, NOPT, NULL, &s, NULL, "ck.h5"), -1);
    ck_assert_msg(strstr(dt_lasterr(), "setting 'batch' is of the wrong type"), "%s", dt_lasterr());
}
END_TEST

int main(void)
{
    Suite *s = suite_create("opts");
    TCase *tc = tcase_create("opts");
    tcase_add_test(tc, records_given_options);
    tcase_add_test(tc, refuses_a_forgotten_value);
    tcase_add_test(tc, settings_keep_every_option_but_the_switches);
    tcase_add_test(tc, resume_takes_what_was_not_given);
    tcase_add_test(tc, resume_refuses_changed_settings);
    tcase_add_test(tc, resume_checks_saved_values_like_typed_ones);
    suite_add_tcase(s, tc);
    return dt_check_run(s) ? 1 : 0;
}
