/* h5_hash FILE [PART]: one 64-bit FNV-1a hash over every dataset of an HDF5
 * file whose path contains PART (default: all), visited in name order: each
 * dataset's path, then its values in their native layout. Attributes (times,
 * hosts, paths) are left out, so two runs that computed the same numbers give
 * the same hash. Prints the hash in hex; exits 2 on unreadable input. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/h5.h"

typedef struct {
    const char *part;
    uint64_t h;
    long n, bad;
} walk;

static void fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static herr_t visit(hid_t g, const char *name, const H5O_info_t *info, void *op)
{
    walk *w = op;
    if (info->type != H5O_TYPE_DATASET || (w->part && !strstr(name, w->part))) return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t ft = d >= 0 ? H5Dget_type(d) : -1;
    hid_t mt = ft >= 0 ? H5Tget_native_type(ft, H5T_DIR_ASCEND) : -1;
    hid_t s = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    size_t bytes = mt >= 0 && n >= 0 ? (size_t)n * H5Tget_size(mt) : 0;
    void *buf = malloc(bytes + 1);
    if (mt < 0 || n < 0 || !buf || (bytes && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)) {
        fprintf(stderr, "h5_hash: cannot read %s\n", name);
        w->bad++;
    } else {
        fnv(&w->h, name, strlen(name) + 1);
        fnv(&w->h, buf, bytes);
        w->n++;
    }
    free(buf);
    if (s >= 0) H5Sclose(s);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (d >= 0) H5Dclose(d);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: h5_hash FILE.h5 [PART]\n");
        return 2;
    }
    dt_h5_quiet();
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "h5_hash: cannot open %s\n", argv[1]);
        return 2;
    }
    walk w = {.part = argc > 2 ? argv[2] : NULL, .h = 0xcbf29ce484222325ull};
    H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, visit, &w);
    H5Fclose(f);
    if (w.n == 0 || w.bad) {
        fprintf(stderr, "h5_hash: no readable datasets in %s\n", argv[1]);
        return 2;
    }
    printf("%016llx\n", (unsigned long long)w.h);
    return 0;
}
