/* cli: option tables and parsing for `dtrain <command> [options]`. */
#ifndef DTRAIN_CLI_H
#define DTRAIN_CLI_H

#include <stdio.h>

typedef enum { DT_OPT_INT, DT_OPT_LONG, DT_OPT_SIZE, DT_OPT_U64, DT_OPT_FLOAT, DT_OPT_STR, DT_OPT_FLAG } dt_opt_type;

typedef struct {
    const char *name; /* without the leading "--" */
    dt_opt_type type;
    void *dst;
    const char *meta; /* "N", "FILE" (NULL for flags) */
    const char *help; /* one line; the default is printed from *dst */
    double min, max;  /* for numbers; min > max: no range check */
} dt_opt;

/* Parse argv[first..argc) into the table. Returns 0, 1 when --help was given
 * (help printed by the caller), -1 with the reason (option named). Accepts
 * "--name value" and "--name=value". */
int dt_opts_parse(const dt_opt *opts, int nopts, int argc, char **argv, int first);
/* dt_opts_parse from argv[1] on; --help prints usage and the options (rank 0)
 * and ends the process with status 0. Returns 0 or -1 (the caller decides,
 * usually with dt_check_all, so that every rank ends together). */
int dt_opts_parse_or_exit(const dt_opt *opts, int nopts, int argc, char **argv, const char *usage);
/* Print the options with their defaults. */
void dt_opts_help(FILE *f, const dt_opt *opts, int nopts);

/* Commands, each `int cmd(int argc, char **argv)` with argv[0] = command name. */
int dt_cmd_prepare(int argc, char **argv);
int dt_cmd_vae_family(const char *model, int argc, char **argv);
int dt_cmd_embed(int argc, char **argv);
int dt_cmd_study(int argc, char **argv);
int dt_cmd_cyclegan(int argc, char **argv);

#endif
