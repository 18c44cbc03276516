/* Any bytes as a checkpoint: dt_ckpt_read_meta, then dt_ckpt_load into a
 * small network built here (the seeds are checkpoints of this network). */
#include "dtrain/ckpt.h"
#include "fuzz_common.h"

static dt_params g_net;
static dt_adam g_adam;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet_hdf5();
    dt_params_init(&g_net, "net");
    int w[2] = {4, 3}, bias[1] = {4};
    dt_params_add(&g_net, "fc.weight", 2, w);
    dt_params_add(&g_net, "fc.bias", 1, bias);
    dt_params_alloc(&g_net);
    dt_adam_default(&g_adam, 1e-3f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fz_path("ckpt");
    fz_write(p, data, size);
    dt_ckpt_meta meta;
    if (dt_ckpt_read_meta(p, &meta) == 0) {
        FZ_ASSERT(memchr(meta.model, 0, sizeof meta.model) && memchr(meta.arch, 0, sizeof meta.arch));
        FZ_ASSERT(meta.nsums >= 0 && meta.nsums <= DT_CKPT_MAX_SUMS);
    } else {
        fz_check_message();
    }
    dt_params *nets[1] = {&g_net};
    int rc = dt_ckpt_load(p, "fuzz", "fuzz 4x3", 10, &meta, nets, &g_adam, 1);
    if (rc != 0) {
        FZ_ASSERT(rc == DT_CKPT_DAMAGED || rc == DT_CKPT_MISMATCH);
        fz_check_message();
    }
    unlink(p);
    return 0;
}
