/* Build small data set files through the HDF5 API, with every part the
 * reader checks under the caller's control, then seal them with the gate
 * (dt_dataset_seal): what dtrain's own validation sees behind the gate.
 * Used by tests/unit/test_data.c and the structure-aware fuzz harness. */
#ifndef DTRAIN_TESTS_MKSET_H
#define DTRAIN_TESTS_MKSET_H

#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/data.h"

enum { MK_NSPLITS = 6 };
static const char *const mk_split_names[MK_NSPLITS] = {"vae/train",        "vae/test",
                                                       "cyclegan/A/train", "cyclegan/B/train",
                                                       "cyclegan/A/test",  "cyclegan/B/test"};

typedef struct {
    uint64_t n;            /* images */
    uint64_t nlab[2];      /* lengths of digits, colors */
    uint8_t lab_max[2];    /* digits/colors: lab_max, lab_max-1, ..., 0, lab_max, ... */
    uint8_t lab_signed[2]; /* stored as int8 */
    uint8_t lab_size[2];   /* bytes per label (1 = uint8) */
    uint8_t channels, side; /* 3, 28 */
    uint8_t ndim;           /* 4 */
    uint8_t img_size;       /* bytes per pixel (1) */
    uint16_t chunk;         /* images per chunk (0: contiguous) */
    uint8_t missing;        /* bit 0 images, 1 digits, 2 colors, 3 the whole split */
} mk_split;

typedef struct {
    int version_kind;   /* 0 int64 scalar, 1 missing, 2 int64[64], 3 a string */
    int64_t version;
    mk_split sp[MK_NSPLITS];
    uint8_t map_max[2]; /* mapping_A/B values, as lab_max */
    uint8_t map_len[2]; /* 10 */
} mk_set;

/* A valid set: n images in every split. */
static inline void mk_default(mk_set *m, uint64_t n)
{
    memset(m, 0, sizeof *m);
    m->version = DT_DATA_FORMAT_VERSION;
    for (int s = 0; s < MK_NSPLITS; s++) {
        mk_split *p = &m->sp[s];
        p->n = p->nlab[0] = p->nlab[1] = n;
        p->lab_max[0] = p->lab_max[1] = 9;
        p->lab_size[0] = p->lab_size[1] = 1;
        p->channels = 3;
        p->side = DT_IMG_SIDE;
        p->ndim = 4;
        p->img_size = 1;
        p->chunk = 64;
    }
    m->map_max[0] = m->map_max[1] = 9;
    m->map_len[0] = m->map_len[1] = 10;
}

static inline hid_t mk_int_type(int size, int is_signed)
{
    switch (size) {
    case 2: return is_signed ? H5T_STD_I16LE : H5T_STD_U16LE;
    case 4: return is_signed ? H5T_STD_I32LE : H5T_STD_U32LE;
    default: return is_signed ? H5T_STD_I8LE : H5T_STD_U8LE;
    }
}

/* A 1-D integer dataset of n values max, max-1, ..., 0, max, ... (written when small). */
static inline int mk_labels(hid_t g, const char *name, uint64_t n, int max, int size, int is_signed)
{
    hsize_t d = n;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(g, name, mk_int_type(size, is_signed), sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds < 0 ? -1 : 0;
    if (rc == 0 && n > 0 && n <= 4096) {
        uint8_t *v = malloc(n);
        for (uint64_t i = 0; i < n; i++) v[i] = (uint8_t)(max - i % ((unsigned)max + 1));
        if (H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) rc = -1;
        free(v);
    }
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    return rc;
}

static inline int mk_split_write(hid_t f, const char *name, const mk_split *p)
{
    if (p->missing & 8) return 0;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(f, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return -1;
    int rc = 0;
    if (!(p->missing & 1)) {
        hsize_t dims[4] = {p->n, p->channels, p->side, p->side}, cd[4];
        int nd = p->ndim < 1 ? 1 : p->ndim > 4 ? 4 : p->ndim;
        hid_t sp = H5Screate_simple(nd, dims, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        int zero = 0;
        for (int k = 0; k < nd; k++) zero |= dims[k] == 0;
        if (p->chunk && !zero) {
            memcpy(cd, dims, sizeof cd);
            cd[0] = p->chunk < p->n ? p->chunk : p->n;
            H5Pset_chunk(dcpl, nd, cd);
        }
        hid_t ds = H5Dcreate2(g, "images", mk_int_type(p->img_size, 0), sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        rc |= ds < 0 ? -1 : 0;
        hssize_t np = H5Sget_simple_extent_npoints(sp);
        if (ds >= 0 && np > 0 && np <= 64 * 2352) { /* small: real pixels */
            uint8_t *px = malloc((size_t)np);
            for (hssize_t i = 0; i < np; i++) px[i] = (uint8_t)(i * 7);
            rc |= H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px) < 0 ? -1 : 0;
            free(px);
        }
        if (ds >= 0) H5Dclose(ds);
        H5Pclose(dcpl);
        H5Sclose(sp);
    }
    static const char *const lab[2] = {"digits", "colors"};
    for (int k = 0; k < 2; k++)
        if (!(p->missing & (2 << k)))
            rc |= mk_labels(g, lab[k], p->nlab[k], p->lab_max[k], p->lab_size[k], p->lab_signed[k]);
    H5Gclose(g);
    return rc;
}

/* Write m to path (replacing it) and seal it; 0 or -1. */
static inline int mk_write(const char *path, const mk_set *m)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, DT_DATA_USERBLOCK);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (f < 0) return -1;
    int rc = 0;
    if (m->version_kind != 1) {
        hsize_t many = 64;
        hid_t s = m->version_kind == 2 ? H5Screate_simple(1, &many, NULL) : H5Screate(H5S_SCALAR);
        hid_t t = H5Tcopy(m->version_kind == 3 ? H5T_C_S1 : H5T_STD_I64LE);
        if (m->version_kind == 3) H5Tset_size(t, 8);
        hid_t a = H5Acreate2(f, "format_version", t, s, H5P_DEFAULT, H5P_DEFAULT);
        int64_t v[64];
        for (int i = 0; i < 64; i++) v[i] = m->version;
        rc |= a < 0 || H5Awrite(a, m->version_kind == 3 ? t : H5T_NATIVE_INT64,
                                m->version_kind == 3 ? (const void *)"1\0\0\0\0\0\0" : (const void *)v) < 0;
        if (a >= 0) H5Aclose(a);
        H5Tclose(t);
        H5Sclose(s);
    }
    for (int s = 0; s < MK_NSPLITS; s++) rc |= mk_split_write(f, mk_split_names[s], &m->sp[s]) < 0;
    hid_t g = H5Lexists(f, "cyclegan", H5P_DEFAULT) > 0 ? H5Gopen2(f, "cyclegan", H5P_DEFAULT) : -1;
    for (int d = 0; g >= 0 && d < 2; d++)
        rc |= mk_labels(g, d ? "mapping_B" : "mapping_A", m->map_len[d], m->map_max[d], 1, 0) < 0;
    if (g >= 0) H5Gclose(g);
    rc |= H5Fclose(f) < 0;
    if (rc) return -1;
    return dt_dataset_seal(path);
}

#endif
