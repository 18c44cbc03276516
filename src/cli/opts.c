/* Option parsing: one table per command, strict numbers, ranges checked. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/comm.h"

static int set(const dt_opt *o, const char *v)
{
    char *end = NULL;
    errno = 0;
    double num = 0;
    switch (o->type) {
    case DT_OPT_STR:
        *(const char **)o->dst = v;
        return 0;
    case DT_OPT_FLAG:
        return 0;
    case DT_OPT_FLOAT:
        num = strtod(v, &end);
        break;
    default: {
        if (*v == '-') return dt_seterr("--%s: '%s' is not a whole number >= 0", o->name, v);
        unsigned long long u = strtoull(v, &end, 10);
        num = (double)u;
        if (end != v && *end == '\0' && errno == 0) {
            if (o->min <= o->max && (num < o->min || num > o->max))
                return dt_seterr("--%s: %s is out of range [%g, %g]", o->name, v, o->min, o->max);
            if (o->type == DT_OPT_INT && u <= INT32_MAX) *(int *)o->dst = (int)u;
            else if (o->type == DT_OPT_LONG && u <= INT64_MAX) *(long *)o->dst = (long)u;
            else if (o->type == DT_OPT_SIZE) *(size_t *)o->dst = (size_t)u;
            else if (o->type == DT_OPT_U64) *(uint64_t *)o->dst = (uint64_t)u;
            else return dt_seterr("--%s: %s is too large", o->name, v);
            return 0;
        }
        return dt_seterr("--%s: '%s' is not a whole number", o->name, v);
    }
    }
    if (end == v || *end != '\0' || errno != 0 || !isfinite(num))
        return dt_seterr("--%s: '%s' is not a number", o->name, v);
    if (o->min <= o->max && (num < o->min || num > o->max))
        return dt_seterr("--%s: %s is out of range [%g, %g]", o->name, v, o->min, o->max);
    *(float *)o->dst = (float)num;
    return 0;
}

/* a number that may be negative: strtod would read "-1", so "--x" may be a value */
static int takes_negative(const dt_opt *o) { return o->type == DT_OPT_FLOAT && (o->min > o->max || o->min < 0); }

int dt_opts_parse(const dt_opt *opts, int nopts, int argc, char **argv, int first, unsigned char *given)
{
    if (given) memset(given, 0, (size_t)nopts);
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strncmp(a, "--", 2) != 0) return dt_seterr("unexpected argument '%s' (options start with --)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = -1;
        for (int j = 0; j < nopts; j++)
            if (strlen(opts[j].name) == len && strncmp(opts[j].name, name, len) == 0) k = j;
        if (k < 0) return dt_seterr("unknown option '--%.*s' (see --help)", (int)len, name);
        const dt_opt *o = &opts[k];
        if (given) given[k] = 1;
        if (o->type == DT_OPT_FLAG) {
            if (eq) return dt_seterr("--%s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return dt_seterr("--%s needs a value (%s)", o->name, o->meta ? o->meta : "value");
        /* `--out --epochs 3`: the value was forgotten, not a folder named --epochs */
        if (!eq && strncmp(v, "--", 2) == 0 && !takes_negative(o))
            return dt_seterr("--%s needs a value, got '%s'", o->name, v);
        if (set(o, v) < 0) return -1;
    }
    return 0;
}

static void opts_help(FILE *f, const dt_opt *opts, int nopts)
{
    for (int k = 0; k < nopts; k++) {
        const dt_opt *o = &opts[k];
        char left[64], def[64] = "";
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->meta ? " " : "", o->meta ? o->meta : "");
        switch (o->type) {
        case DT_OPT_INT: snprintf(def, sizeof def, " (default %d)", *(int *)o->dst); break;
        case DT_OPT_LONG: snprintf(def, sizeof def, " (default %ld)", *(long *)o->dst); break;
        case DT_OPT_SIZE: snprintf(def, sizeof def, " (default %zu)", *(size_t *)o->dst); break;
        case DT_OPT_U64: snprintf(def, sizeof def, " (default %llu)", (unsigned long long)*(uint64_t *)o->dst); break;
        case DT_OPT_FLOAT: snprintf(def, sizeof def, " (default %g)", *(float *)o->dst); break;
        case DT_OPT_STR:
            if (*(const char **)o->dst) snprintf(def, sizeof def, " (default %s)", *(const char **)o->dst);
            break;
        case DT_OPT_FLAG: break;
        }
        fprintf(f, "  %-26s %s%s\n", left, o->help, def);
    }
}

int dt_opts_parse_or_exit(const dt_opt *opts, int nopts, int argc, char **argv, const char *usage,
                          unsigned char *given)
{
    int rc = dt_opts_parse(opts, nopts, argc, argv, 1, given);
    if (rc == 1) {
        if (dt_rank() == 0) {
            fputs(usage, stdout);
            printf("\noptions:\n");
            opts_help(stdout, opts, nopts);
        }
        dt_comm_finalize();
        exit(0);
    }
    return rc;
}

/* ---- settings ------------------------------------------------------------------ */

/* Switches of one invocation: neither kept in a checkpoint nor taken from one. */
static const char *const PER_RUN[] = {"resume", "overwrite", NULL};
/* What a resumed run may change: how long and how it runs, where it writes,
 * where the data lies (its content is checked apart), pictures only. */
static const char *const MAY_CHANGE[] = {"epochs",       "max-steps", "checkpoint-every", "threads", "stop-signal",
                                         "step-timeout", "sample-std", "out",             "data",    NULL};

static int listed(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

static dt_setting_kind kind_of(dt_opt_type t)
{
    return t == DT_OPT_FLOAT ? DT_SETTING_FLOAT : t == DT_OPT_STR ? DT_SETTING_STR : DT_SETTING_INT;
}

/* the option's present value; -1 (message set) for a string too long to keep */
static int get(const dt_opt *o, dt_setting *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", o->name);
    s->kind = kind_of(o->type);
    switch (o->type) {
    case DT_OPT_INT:
    case DT_OPT_FLAG: s->i = *(int *)o->dst; break;
    case DT_OPT_LONG: s->i = *(long *)o->dst; break;
    case DT_OPT_SIZE: s->i = (int64_t) * (size_t *)o->dst; break;
    case DT_OPT_U64: s->i = (int64_t) * (uint64_t *)o->dst; break;
    case DT_OPT_FLOAT: s->f = *(float *)o->dst; break;
    case DT_OPT_STR: {
        const char *v = *(const char **)o->dst;
        if (v && strlen(v) >= sizeof s->s) return dt_seterr("--%s: a value of %zu bytes is too long to keep", o->name, strlen(v));
        snprintf(s->s, sizeof s->s, "%s", v ? v : "");
        break;
    }
    }
    return 0;
}

/* the value as the command line would give it: a float in the fewest digits
 * that read back to the same float */
static void show(const dt_setting *s, dt_opt_type t, char *buf, size_t len)
{
    if (s->kind == DT_SETTING_STR)
        snprintf(buf, len, "%s", s->s);
    else if (s->kind == DT_SETTING_FLOAT) {
        for (int p = 6; p <= 9; p++) {
            snprintf(buf, len, "%.*g", p, s->f);
            if ((float)strtod(buf, NULL) == (float)s->f) break;
        }
    } else if (t == DT_OPT_U64 || t == DT_OPT_SIZE)
        snprintf(buf, len, "%llu", (unsigned long long)(uint64_t)s->i);
    else
        snprintf(buf, len, "%lld", (long long)s->i);
}

static int same(const dt_setting *a, const dt_setting *b)
{
    if (a->kind != b->kind) return 0;
    return a->kind == DT_SETTING_STR ? strcmp(a->s, b->s) == 0 : a->kind == DT_SETTING_FLOAT ? a->f == b->f : a->i == b->i;
}

int dt_opts_settings(const dt_opt *opts, int nopts, dt_settings *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < nopts && out->n < DT_OPTS_MAX; k++) {
        const dt_opt *o = &opts[k];
        if (listed(PER_RUN, o->name) || (o->type == DT_OPT_STR && !*(const char **)o->dst)) continue;
        if (get(o, &out->v[out->n++]) < 0) return -1;
    }
    return 0;
}

const dt_setting *dt_settings_find(const dt_settings *s, const char *name)
{
    for (int k = 0; k < s->n; k++)
        if (strcmp(s->v[k].name, name) == 0) return &s->v[k];
    return NULL;
}

/* the saved value into the option, checked as if it had been typed */
static int adopt(const dt_opt *o, const dt_setting *s, const char *from)
{
    if (s->kind != kind_of(o->type)) return dt_seterr("checkpoint %s: setting '%s' is of the wrong type", from, o->name);
    if (o->type == DT_OPT_STR) {
        *(const char **)o->dst = s->s;
        return 0;
    }
    if (o->type == DT_OPT_FLAG) {
        if (s->i != 0 && s->i != 1) return dt_seterr("checkpoint %s: flag '%s' = %lld", from, o->name, (long long)s->i);
        *(int *)o->dst = (int)s->i;
        return 0;
    }
    char text[64];
    show(s, o->type, text, sizeof text);
    if (set(o, text) == 0) return 0;
    char why[512];
    snprintf(why, sizeof why, "%s", dt_lasterr());
    return dt_seterr("checkpoint %s: %s", from, why);
}

int dt_opts_resume(const dt_opt *opts, int nopts, const unsigned char *given, const dt_settings *saved,
                   const char *const *keep, const char *from)
{
    char refused[1024] = "";
    size_t off = 0;
    for (int k = 0; k < nopts; k++) {
        const dt_opt *o = &opts[k];
        const dt_setting *s = dt_settings_find(saved, o->name);
        if (!s || listed(PER_RUN, o->name)) continue; /* an option the checkpoint does not know keeps its value */
        if (!(given && given[k]) && !listed(keep, o->name)) {
            if (adopt(o, s, from) < 0) return -1;
            continue;
        }
        dt_setting now;
        if (get(o, &now) < 0) return -1;
        if (same(&now, s)) continue;
        char was[1024], is[1024];
        show(s, o->type, was, sizeof was);
        show(&now, o->type, is, sizeof is);
        if (listed(MAY_CHANGE, o->name))
            dt_log("dtrain: --%s changed on resume: %s -> %s\n", o->name, was, is);
        else if (off < sizeof refused)
            off += (size_t)snprintf(refused + off, sizeof refused - off, "%s--%s %s -> %s", off ? ", " : "", o->name,
                                    was, is);
    }
    if (off)
        return dt_seterr("checkpoint %s was made with other settings (%s); a resumed run keeps its own: leave these "
                         "options out to continue it, or start a new run in another --out",
                         from, refused);
    return 0;
}
