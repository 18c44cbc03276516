/* h5: small helpers over the HDF5 C API (attributes, whole datasets, quiet opens). */
#ifndef DTRAIN_H5_H
#define DTRAIN_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Turn off HDF5's automatic error-stack printing (dtrain reports its own). */
void dt_h5_quiet(void);

int dt_h5_attr_str(hid_t obj, const char *name, const char *value);
int dt_h5_attr_i64(hid_t obj, const char *name, int64_t value);
int dt_h5_attr_f64(hid_t obj, const char *name, double value);
/* Readers: -1 if missing or of another type (no message set). */
int dt_h5_get_str(hid_t obj, const char *name, char *buf, size_t len);
int dt_h5_get_i64(hid_t obj, const char *name, int64_t *value);
int dt_h5_get_f64(hid_t obj, const char *name, double *value);

/* Create a dataset of `type` with dims and write all of buf (serial). */
int dt_h5_write(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *dims,
                const void *buf);
/* Read a whole dataset whose element count must be n; -1 otherwise. */
int dt_h5_read(hid_t loc, const char *name, hid_t memtype, size_t n, void *buf);

/* Write to path.tmp.<pid> and rename over path: helpers for atomic files. */
char *dt_tmp_path(const char *path);             /* caller frees */
int dt_commit_file(const char *tmp, const char *path); /* fsync + rename; -1 with reason */

#endif
