/* cli: option tables and parsing for `dtrain <command> [options]`. */
#ifndef DTRAIN_CLI_H
#define DTRAIN_CLI_H

#include <stdint.h>
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

#define DT_OPTS_MAX 40 /* options of one command, at most */

/* Parse argv[first..argc) into the table. Returns 0, 1 when --help was given
 * (help printed by the caller), -1 with the reason (option named). Accepts
 * "--name value" and "--name=value"; a separate value that starts with "--"
 * is taken for a forgotten value (an error) unless the option takes negative
 * numbers. given (NULL, or nopts entries): 1 for each option on the line. */
int dt_opts_parse(const dt_opt *opts, int nopts, int argc, char **argv, int first, unsigned char *given);
/* dt_opts_parse from argv[1] on; --help prints usage and the options (rank 0)
 * and ends the process with status 0. Returns 0 or -1 (the caller decides,
 * usually with dt_check_all, so that every rank ends together). */
int dt_opts_parse_or_exit(const dt_opt *opts, int nopts, int argc, char **argv, const char *usage,
                          unsigned char *given);

/* ---- settings: the option values a checkpoint keeps ---------------------------- */

typedef enum { DT_SETTING_INT, DT_SETTING_FLOAT, DT_SETTING_STR } dt_setting_kind;

/* One option's value, typed: whole numbers and flags in i (a U64 by its
 * bits), FLOAT in f (the float, exactly), STR in s. */
typedef struct {
    char name[32]; /* the option's name, without "--" */
    dt_setting_kind kind;
    int64_t i;
    double f;
    char s[1024];
} dt_setting;

typedef struct {
    int n;
    dt_setting v[DT_OPTS_MAX];
} dt_settings;

/* The table's values as settings: every option but the switches of one
 * invocation (--resume, --overwrite) and unset strings. -1 with the reason
 * if a string is too long to keep. */
int dt_opts_settings(const dt_opt *opts, int nopts, dt_settings *out);
/* The setting of that name, or NULL. */
const dt_setting *dt_settings_find(const dt_settings *s, const char *name);

/* A resumed run takes its settings from its checkpoint (named `from` in
 * messages). An option not given (given NULL: none) takes the saved value,
 * checked like a typed one; a given one must equal it, except those that may
 * change: --epochs, --max-steps, --checkpoint-every, --threads,
 * --stop-signal, --step-timeout, --sample-std, --out and --data (the data's
 * content is checked by its hash), each change logged
 * (`dtrain: --epochs changed on resume: 3 -> 4`). Options named in keep
 * (NULL-terminated, or NULL) hold their present value as if given.
 * 0, or -1 naming every refused option with its saved and its given value.
 * Strings taken point into saved, which must outlive the table's use. */
int dt_opts_resume(const dt_opt *opts, int nopts, const unsigned char *given, const dt_settings *saved,
                   const char *const *keep, const char *from);

/* Commands, each `int cmd(int argc, char **argv)` with argv[0] = command name. */
int dt_cmd_prepare(int argc, char **argv);
int dt_cmd_vae_family(int argc, char **argv);
int dt_cmd_embed(int argc, char **argv);
int dt_cmd_study(int argc, char **argv);
int dt_cmd_cyclegan(int argc, char **argv);

/* The registry of commands (src/cli/commands.c), from which main's dispatch,
 * `dtrain --help` and the list of training commands follow. A new model is
 * its files plus one line here; a new VAE variant one file (its table of
 * latent parts) plus one line. */
typedef struct {
    const char *name;
    const char *summary;          /* one line of `dtrain --help` */
    int (*run)(int argc, char **argv);
    int training;                 /* catches the stop signals from the start */
    const struct dt_vae_kind *vae;    /* a VAE variant's table, else NULL */
} dt_command;
extern const dt_command dt_commands[];
/* The command called name, or NULL. */
const dt_command *dt_command_find(const char *name);

#endif
