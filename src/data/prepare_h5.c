/* The HDF5 writing dt_prepare does: attributes, small datasets, groups, and
 * one split's images, labels and colors (chunked, compressed). */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "prepare_h5.h"

#define WRITE_BLOCK (64 * DT_DATA_CHUNK) /* images colored and written at a time */
/* ---- small HDF5 helpers (each returns -1 on failure) ------------------------ */

static int attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a < 0 || H5Awrite(a, mtype, v) < 0) ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

int dt_prep_attr_i64(hid_t loc, const char *name, int64_t v)
{
    return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

int dt_prep_attr_u64(hid_t loc, const char *name, uint64_t v)
{
    return attr_write(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

/* A list of n fixed-length strings (one 1-D attribute). */
int dt_prep_attr_strings(hid_t loc, const char *name, const char *const *v, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i]) + 1 > len) len = strlen(v[i]) + 1;
    char *buf = dt_alloc(len * n);
    for (size_t i = 0; i < n; i++) memcpy(buf + i * len, v[i], strlen(v[i]));
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    hsize_t d = n;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a < 0 || H5Awrite(a, t, buf) < 0) ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    dt_free(buf);
    return rc;
}

int dt_prep_attr_string(hid_t loc, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int rc = attr_write(loc, name, t, t, v);
    H5Tclose(t);
    return rc;
}

int dt_prep_write_u8(hid_t loc, const char *name, const uint8_t *v, size_t n)
{
    hsize_t d = n;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(loc, name, H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (ds < 0 || H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) ? -1 : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    return rc;
}

/* Group path "a/b/c": create the missing groups along it. */
hid_t dt_prep_make_group(hid_t file, const char *path)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    return g;
}

/* images [n,3,28,28] chunked [C,3,28,28], shuffle + deflate 4; digits, colors,
 * source_index [n]. Colors block by block, so memory stays one block. */
int dt_prep_write_split(hid_t file, const char *path, const split_spec *s)
{
    hid_t g = dt_prep_make_group(file, path);
    if (g < 0) return -1;
    int rc = -1;
    hsize_t dims[4] = {s->n, 3, DT_IMG_SIDE, DT_IMG_SIDE};
    hsize_t chunk[4] = {s->n < DT_DATA_CHUNK ? (s->n ? s->n : 1) : DT_DATA_CHUNK, 3, DT_IMG_SIDE,
                        DT_IMG_SIDE};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 4);
    hid_t ds = H5Dcreate2(g, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    uint8_t *buf = dt_alloc((size_t)WRITE_BLOCK * DT_IMG);
    uint8_t *dig = dt_alloc(s->n ? s->n : 1);
    if (ds < 0) goto done;
    if (dt_prep_attr_i64(ds, "chunk", (int64_t)chunk[0]) < 0) goto done;
    for (size_t b0 = 0; b0 < s->n; b0 += WRITE_BLOCK) {
        size_t m = s->n - b0 < WRITE_BLOCK ? s->n - b0 : WRITE_BLOCK;
        for (size_t i = 0; i < m; i++) {
            uint32_t j = s->src[b0 + i];
            dt_colorize(buf + i * DT_IMG, s->grey + (size_t)j * DT_PLANE,
                        dt_palette[s->color[b0 + i]]);
        }
        hsize_t start[4] = {b0, 0, 0, 0}, count[4] = {m, 3, DT_IMG_SIDE, DT_IMG_SIDE};
        hid_t fs = H5Dget_space(ds);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(4, count, NULL);
        herr_t w = H5Dwrite(ds, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, buf);
        H5Sclose(ms);
        H5Sclose(fs);
        if (w < 0) goto done;
    }
    for (size_t i = 0; i < s->n; i++) dig[i] = s->digit[s->src[i]];
    if (dt_prep_write_u8(g, "digits", dig, s->n) < 0 || dt_prep_write_u8(g, "colors", s->color, s->n) < 0) goto done;
    {
        hsize_t d = s->n;
        hid_t isp = H5Screate_simple(1, &d, NULL);
        hid_t ids = H5Dcreate2(g, "source_index", H5T_STD_U32LE, isp, H5P_DEFAULT, H5P_DEFAULT,
                               H5P_DEFAULT);
        int ok = ids >= 0 && H5Dwrite(ids, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->index) >= 0;
        if (ids >= 0) H5Dclose(ids);
        H5Sclose(isp);
        if (!ok) goto done;
    }
    rc = 0;
done:
    dt_free(buf);
    dt_free(dig);
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Gclose(g);
    return rc;
}

