/* `dtrain prepare`: build the colored-MNIST data set file (rank 0 writes). */
#include <stdio.h>
#include <stdlib.h>

#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"

int dt_cmd_prepare(int argc, char **argv)
{
    dt_prepare_opts po = {.out = DT_DATA_DEFAULT_PATH, .seed = 1};
    dt_opt opts[] = {
        {"mnist", DT_OPT_STR, &po.mnist_dir, "DIR", "folder with the MNIST IDX files (else $DTRAIN_MNIST, data/mnist)", 1, 0},
        {"synthetic", DT_OPT_FLAG, &po.synthetic, NULL, "no MNIST at hand: draw digits in code instead", 1, 0},
        {"out", DT_OPT_STR, &po.out, "FILE", "data set file to write", 1, 0},
        {"seed", DT_OPT_U64, &po.seed, "N", "seed of colors and splits", 1, 0},
        {"quiet", DT_OPT_FLAG, &po.quiet, NULL, "no progress lines", 1, 0},
    };
    int n = (int)(sizeof opts / sizeof *opts);
    int rc = dt_opts_parse_or_exit(
        opts, n, argc, argv,
        "usage: dtrain prepare [--mnist DIR | --synthetic] [--out FILE] [--seed N]\n\n"
        "Turn MNIST IDX files (gzip or raw; Fashion-MNIST works too) into the colored-MNIST\n"
        "HDF5 file: the VAE set (random palette color per digit) and the CycleGAN sets A and B.\n"
        "With only the t10k files present they are split 9,000 train / 1,000 test.\n",
        NULL);
    dt_check_all(rc == 0);
    int ok = dt_rank() != 0 || dt_prepare(&po) == 0;
    dt_check_all(ok);
    return 0;
}
