/* ckpt_diff A B [RTOL [PART]]: compare the parameters (PART params, the
 * default) or Adam's moments (adam_m, adam_v) of two checkpoints of the same
 * model. After one step adam_m is (1 - beta1) times the gradient, so adam_m
 * compares gradients. Prints the norm-wise relative difference ||a-b|| / ||a|| and the
 * largest absolute difference per network; exits 1 if the relative difference
 * exceeds RTOL (default 0: bit-identical required), 2 on unreadable input. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/h5.h"

typedef struct {
    hid_t other;
    const char *part;
    double num, den, maxabs;
    long n, bad;
} walk;

static herr_t visit(hid_t g, const char *name, const H5O_info_t *info, void *op)
{
    walk *w = op;
    if (info->type != H5O_TYPE_DATASET || !strstr(name, w->part)) return 0;
    hid_t da = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t db = H5Dopen2(w->other, name, H5P_DEFAULT);
    if (da < 0 || db < 0) {
        fprintf(stderr, "ckpt_diff: dataset %s missing in one file\n", name);
        w->bad++;
        if (da >= 0) H5Dclose(da);
        if (db >= 0) H5Dclose(db);
        return 0;
    }
    hid_t sa = H5Dget_space(da), sb = H5Dget_space(db);
    hssize_t n = H5Sget_simple_extent_npoints(sa);
    if (n != H5Sget_simple_extent_npoints(sb)) {
        fprintf(stderr, "ckpt_diff: %s differs in size\n", name);
        w->bad++;
    } else {
        float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
        if (!a || !b || H5Dread(da, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a) < 0 ||
            H5Dread(db, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) < 0) {
            fprintf(stderr, "ckpt_diff: cannot read %s\n", name);
            w->bad++;
            n = 0;
        }
        for (hssize_t i = 0; i < n; i++) {
            double d = (double)a[i] - b[i];
            w->num += d * d;
            w->den += (double)a[i] * a[i];
            if (fabs(d) > w->maxabs) w->maxabs = fabs(d);
        }
        w->n += n;
        free(a);
        free(b);
    }
    H5Sclose(sa);
    H5Sclose(sb);
    H5Dclose(da);
    H5Dclose(db);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ckpt_diff A.h5 B.h5 [RTOL [params|adam_m|adam_v]]\n");
        return 2;
    }
    double rtol = argc > 3 ? atof(argv[3]) : 0.0;
    dt_h5_quiet();
    hid_t fa = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t fb = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fa < 0 || fb < 0) {
        fprintf(stderr, "ckpt_diff: cannot open %s\n", fa < 0 ? argv[1] : argv[2]);
        return 2;
    }
    char part[64];
    snprintf(part, sizeof part, "/%s/", argc > 4 ? argv[4] : "params");
    walk w = {.other = fb, .part = part};
    H5Ovisit(fa, H5_INDEX_NAME, H5_ITER_NATIVE, visit, &w);
    H5Fclose(fa);
    H5Fclose(fb);
    if (w.n == 0 || w.bad) {
        fprintf(stderr, "ckpt_diff: no comparable parameters\n");
        return 2;
    }
    double rel = sqrt(w.num) / (sqrt(w.den) + 1e-30);
    printf("%s %ld  rel_diff %.3e  max_abs %.3e  %s\n", argc > 4 ? argv[4] : "params", w.n, rel, w.maxabs,
           rel <= rtol ? (rel == 0 ? "identical" : "within tolerance") : "DIFFERENT");
    return rel <= rtol ? 0 : 1;
}
