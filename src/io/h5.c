/* Small HDF5 helpers shared by checkpoints, embeddings and data sets. */
#include "dtrain/h5.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/core.h"

void dt_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static int attr_write(hid_t obj, const char *name, hid_t type, const void *v)
{
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, type, v) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

int dt_h5_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int rc = attr_write(obj, name, t, value);
    H5Tclose(t);
    return rc;
}

int dt_h5_attr_i64(hid_t obj, const char *name, int64_t v) { return attr_write(obj, name, H5T_NATIVE_INT64, &v); }
int dt_h5_attr_f64(hid_t obj, const char *name, double v) { return attr_write(obj, name, H5T_NATIVE_DOUBLE, &v); }

/* One value only: the readers below read into room for one. */
static hid_t attr_open(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t s = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    if (s >= 0) H5Sclose(s);
    if (a >= 0 && n != 1) {
        H5Aclose(a);
        return -1;
    }
    return a;
}

int dt_h5_get_str(hid_t obj, const char *name, char *buf, size_t len)
{
    hid_t a = attr_open(obj, name);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        size_t n = H5Tget_size(ft);
        char *tmp = dt_alloc(n + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        if (H5Aread(a, mt, tmp) >= 0) {
            tmp[n] = '\0';
            snprintf(buf, len, "%s", tmp);
            rc = 0;
        }
        H5Tclose(mt);
        dt_free(tmp);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int get_num(hid_t obj, const char *name, hid_t mt, void *v)
{
    hid_t a = attr_open(obj, name);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(ft);
    int rc = (c == H5T_INTEGER || c == H5T_FLOAT) && H5Aread(a, mt, v) >= 0 ? 0 : -1;
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int dt_h5_get_i64(hid_t obj, const char *name, int64_t *v) { return get_num(obj, name, H5T_NATIVE_INT64, v); }
int dt_h5_get_f64(hid_t obj, const char *name, double *v) { return get_num(obj, name, H5T_NATIVE_DOUBLE, v); }

int dt_h5_write(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *dims, const void *buf)
{
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (d >= 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) ? 0 : -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return rc;
}

int dt_h5_read(hid_t loc, const char *name, hid_t memtype, size_t n, void *buf)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    int rc = (cnt == (hssize_t)n && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) ? 0 : -1;
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

char *dt_tmp_path(const char *path)
{
    size_t n = strlen(path) + 32;
    char *t = dt_alloc(n);
    snprintf(t, n, "%s.tmp.%ld", path, (long)getpid());
    return t;
}

int dt_commit_file(const char *tmp, const char *path)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0) return dt_seterr("%s: cannot reopen to flush: %s", tmp, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) {
        unlink(tmp);
        return dt_seterr("%s: fsync failed: %s (is the disk full?)", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return dt_seterr("cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return 0;
}
