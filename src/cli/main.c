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
            "commands:\n"
            "  prepare   build the colored-MNIST HDF5 data set (data/colored_mnist.h5)\n"
            "  vae       train the continuous VAE (2-D latent), data parallel over the ranks\n"
            "  dvae      train the discrete VAE (Gumbel-softmax, N variables of K categories)\n"
            "  jvae      train the joint VAE (continuous and discrete latents together)\n"
            "  cyclegan  train the CycleGAN that recolors digits between domains A and B\n"
            "  study     train vae, dvae and jvae alike and compare them (table, curves, latents)\n"
            "  embed     write test-set latent embeddings of a checkpoint to HDF5\n\n"
            "`dtrain <command> --help` lists a command's options. Exit status: 0 done,\n"
            "2 user error (bad option, missing or corrupt file, checkpoint that cannot be\n"
            "written), 3 internal error, 4 a rank stalled (--step-timeout), 75 stopped by a\n"
            "signal with a checkpoint written (continue with --resume auto).\n",
            DT_VERSION);
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
    const char *const training[] = {"vae", "dvae", "jvae", "cyclegan", "study"};
    for (size_t i = 0; cmd && i < sizeof training / sizeof *training; i++)
        if (strcmp(cmd, training[i]) == 0 && dt_stop_signals_install(DT_STOP_SIGNALS_DEFAULT) != 0)
            DT_FATAL("%s", dt_lasterr());
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
    } else if (strcmp(cmd, "prepare") == 0) {
        rc = dt_cmd_prepare(argc - 1, argv + 1);
    } else if (strcmp(cmd, "vae") == 0 || strcmp(cmd, "dvae") == 0 || strcmp(cmd, "jvae") == 0) {
        rc = dt_cmd_vae_family(cmd, argc - 1, argv + 1);
    } else if (strcmp(cmd, "cyclegan") == 0) {
        rc = dt_cmd_cyclegan(argc - 1, argv + 1);
    } else if (strcmp(cmd, "study") == 0) {
        rc = dt_cmd_study(argc - 1, argv + 1);
    } else if (strcmp(cmd, "embed") == 0) {
        rc = dt_cmd_embed(argc - 1, argv + 1);
    } else {
        dt_seterr("unknown command '%s'; commands: prepare, vae, dvae, jvae, cyclegan, study, embed (see dtrain --help)", cmd);
        dt_check_all(0);
    }
    dt_comm_finalize();
    return rc;
}
