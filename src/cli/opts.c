/* Option parsing: one table per command, strict numbers, ranges checked. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/dist.h"

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

int dt_opts_parse(const dt_opt *opts, int nopts, int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strncmp(a, "--", 2) != 0) return dt_seterr("unexpected argument '%s' (options start with --)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const dt_opt *o = NULL;
        for (int k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0) o = &opts[k];
        if (!o) return dt_seterr("unknown option '--%.*s' (see --help)", (int)len, name);
        if (o->type == DT_OPT_FLAG) {
            if (eq) return dt_seterr("--%s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return dt_seterr("--%s needs a value (%s)", o->name, o->meta ? o->meta : "value");
        if (set(o, v) < 0) return -1;
    }
    return 0;
}

void dt_opts_help(FILE *f, const dt_opt *opts, int nopts)
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

int dt_opts_parse_or_exit(const dt_opt *opts, int nopts, int argc, char **argv, const char *usage)
{
    int rc = dt_opts_parse(opts, nopts, argc, argv, 1);
    if (rc == 1) {
        if (dt_rank() == 0) {
            fputs(usage, stdout);
            printf("\noptions:\n");
            dt_opts_help(stdout, opts, nopts);
        }
        dt_dist_finalize();
        exit(0);
    }
    return rc;
}
