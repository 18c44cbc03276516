/* dtrain <command> [options]: the entry point of every rank. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/comm.h"
#include "dtrain/guard.h"
#include "dtrain/runctl.h"

static void usage(FILE *f)
{
    fprintf(f,
            "dtrain %s - distributed trainer for generative models on colored MNIST\n\n"
            "usage: [mpirun -np N] dtrain <command> [options]\n\n"
            "commands:\n",
            DT_VERSION);
    for (const dt_command *c = dt_commands; c->name; c++) fprintf(f, "  %-9s %s\n", c->name, c->summary);
    fprintf(f, "\n`dtrain <command> --help` lists a command's options. Exit status: 0 done,\n"
               "2 user error (bad option, missing or corrupt file, checkpoint that cannot be\n"
               "written), 3 internal error, 4 a rank stalled (--step-timeout), 75 stopped by a\n"
               "signal with a checkpoint written (continue with --resume auto).\n");
}

/* "prepare, vae, ..., embed" */
static void names(char *buf, size_t len)
{
    size_t off = 0;
    for (const dt_command *c = dt_commands; c->name && off < len; c++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", c == dt_commands ? "" : ", ", c->name);
}

int main(int argc, char **argv)
{
    dt_comm_init(&argc, &argv);
    dt_run_set_cmdline(argc, argv);
    /* A write past a file size limit (ulimit -f) fails with EFBIG, which
     * dtrain reports with the file's name, instead of killing the rank. */
    signal(SIGXFSZ, SIG_IGN);
    int rc = 0;
    const char *cmd = argc > 1 ? argv[1] : NULL;
    /* Training commands catch the default stop signals from the start, so that
     * one arriving before the first step (preparing the data set, a blocked
     * open) ends the job at once with one line and status 75; the command's
     * --stop-signal then sets the final list. */
    dt_stop_set_speaker(dt_rank() == 0);
    const dt_command *c = cmd ? dt_command_find(cmd) : NULL;
    if (c && c->training && dt_stop_signals_install(DT_STOP_SIGNALS_DEFAULT) != 0) DT_FATAL("%s", dt_lasterr());
    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (dt_rank() == 0) usage(stdout);
        if (!cmd) rc = DT_EXIT_USAGE;
    } else if (strcmp(cmd, "--version") == 0) {
        if (dt_rank() == 0) {
#ifdef DT_GIT_REV
            printf("dtrain %s (%s; %s %s)\n", DT_VERSION, DT_GIT_REV, DT_CC, DT_CFLAGS);
#else
            printf("dtrain %s\n", DT_VERSION);
#endif
        }
    } else if (c) {
        rc = c->run(argc - 1, argv + 1);
    } else {
        char list[256];
        names(list, sizeof list);
        dt_seterr("unknown command '%s'; commands: %s (see dtrain --help)", cmd, list);
        dt_check_all(0);
    }
    dt_comm_finalize();
    return rc;
}
