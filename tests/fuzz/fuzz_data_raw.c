/* Any bytes as a data set file: dt_dataset_open must refuse them at the gate
 * (the HDF5 library never sees them) unless they carry a true checksum; the
 * seeds are sealed files, so mutations are all damaged files. */
#include "dtrain/data.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet_hdf5();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fz_path("data");
    fz_write(p, data, size);
    dt_dataset *ds = dt_dataset_open(p);
    if (ds) {
        /* only an unchanged seed gets here: read it all */
        for (int s = 0; s < 6; s++) {
            static const char *const names[6] = {"vae/train", "vae/test", "cyclegan/A/train",
                                                  "cyclegan/B/train", "cyclegan/A/test", "cyclegan/B/test"};
            dt_split *sp = dt_split_open(ds, names[s]);
            if (sp) dt_split_close(sp);
        }
        dt_dataset_close(ds);
    } else {
        fz_check_message();
    }
    unlink(p);
    return 0;
}
