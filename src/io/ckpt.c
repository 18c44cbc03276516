/* Checkpoints, writing: the whole training state in one HDF5 file, written
 * by one process to a temporary name, fsynced, then renamed into place; a
 * SHA-256 in the HDF5 user block covers every byte after it. Reading and
 * verifying: ckpt_load.c. */
#include "dtrain/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/h5.h"

#include "ckpt_file.h"

void dt_ckpt_header(unsigned char *ub, const char *hex)
{
    memset(ub, 0, CKPT_USERBLOCK);
    snprintf((char *)ub, CKPT_USERBLOCK, CKPT_KIND "\nformat %d\nsha256 %s\n", CKPT_FORMAT, hex);
}

const char *const DT_CKPT_PARTS[3] = {"params", "adam_m", "adam_v"};

float *dt_ckpt_part(dt_params *p, int k) { return k == 0 ? p->w : k == 1 ? p->m : p->v; }

uint32_t dt_ckpt_crc(dt_params *p)
{
    uLong c = crc32(0L, Z_NULL, 0);
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < p->nviews; v++)
            c = crc32(c, (const Bytef *)(dt_ckpt_part(p, k) + p->views[v].off),
                      (uInt)(p->views[v].n * sizeof(float)));
    return (uint32_t)c;
}

char *dt_ckpt_prev_path(const char *path)
{
    size_t n = strlen(path);
    char *s = dt_alloc(n + 16);
    if (n > 3 && strcmp(path + n - 3, ".h5") == 0)
        snprintf(s, n + 16, "%.*s.prev.h5", (int)(n - 3), path);
    else
        snprintf(s, n + 16, "%s.prev", path);
    return s;
}

static int write_meta(hid_t f, const dt_ckpt_meta *m)
{
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int rc = 0;
    rc |= dt_h5_attr_i64(f, "format_version", CKPT_FORMAT);
    rc |= dt_h5_attr_str(f, "kind", CKPT_KIND);
    rc |= dt_h5_attr_str(f, "model", m->model);
    rc |= dt_h5_attr_str(f, "arch", m->arch);
    rc |= dt_h5_attr_str(f, "version", DT_VERSION);
    rc |= dt_h5_attr_i64(f, "step", m->step);
    rc |= dt_h5_attr_i64(f, "epoch", m->epoch);
    rc |= dt_h5_attr_i64(f, "batch", m->batch);
    rc |= dt_h5_attr_i64(f, "epoch_steps", m->epoch_steps);
    rc |= dt_h5_attr_i64(f, "seed", (int64_t)m->seed);
    rc |= dt_h5_attr_str(f, "data_sha256", m->data_sha256);
    rc |= dt_h5_attr_str(f, "created_utc", when);
    rc |= dt_h5_attr_i64(f, "ranks", m->ranks);
    rc |= dt_h5_attr_i64(f, "threads", m->threads);
    if (m->tau > 0) rc |= dt_h5_attr_f64(f, "tau", m->tau);
#ifdef DT_CC
    rc |= dt_h5_attr_str(f, "compiler", DT_CC " " DT_CFLAGS);
#endif
    hid_t g = H5Gcreate2(f, "settings", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    for (int k = 0; k < m->settings.n; k++) {
        const dt_setting *st = &m->settings.v[k];
        rc |= st->kind == DT_SETTING_STR     ? dt_h5_attr_str(g, st->name, st->s)
              : st->kind == DT_SETTING_FLOAT ? dt_h5_attr_f64(g, st->name, st->f)
                                             : dt_h5_attr_i64(g, st->name, st->i);
    }
    H5Gclose(g);
    g = H5Gcreate2(f, "train_state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    hsize_t n = (hsize_t)(m->nsums > 0 ? m->nsums : 1);
    rc |= dt_h5_write(g, "sums", H5T_NATIVE_DOUBLE, 1, &n, m->sums);
    H5Gclose(g);
    return rc ? -1 : 0;
}

static int write_net(hid_t f, dt_params *p, const dt_adam *a)
{
    hid_t g = H5Gcreate2(f, p->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    int rc = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        hid_t sub = H5Gcreate2(g, DT_CKPT_PARTS[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (sub < 0) {
            rc = -1;
            break;
        }
        for (int v = 0; v < p->nviews && !rc; v++) {
            const dt_view *vw = &p->views[v];
            hsize_t dims[4];
            for (int d = 0; d < vw->ndim; d++) dims[d] = (hsize_t)vw->dims[d];
            rc |= dt_h5_write(sub, vw->name, H5T_NATIVE_FLOAT, vw->ndim, dims, dt_ckpt_part(p, k) + vw->off);
        }
        H5Gclose(sub);
    }
    rc |= dt_h5_attr_i64(g, "adam_t", a->t);
    rc |= dt_h5_attr_f64(g, "lr", a->lr);
    rc |= dt_h5_attr_f64(g, "beta1", a->beta1);
    rc |= dt_h5_attr_f64(g, "beta2", a->beta2);
    rc |= dt_h5_attr_f64(g, "eps", a->eps);
    rc |= dt_h5_attr_i64(g, "crc32", dt_ckpt_crc(p));
    H5Gclose(g);
    return rc ? -1 : 0;
}

/* fsync a folder, so that renames in it are durable; best effort */
static void sync_dir(const char *p)
{
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    int rc = fsync(fd); /* some file systems refuse it for folders: nothing to do then */
    (void)rc;
    close(fd);
}

/* the folder of path ("." when it has none); caller frees */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    if (slash == path) n = 1;
    char *d = dt_alloc(n + 1);
    memcpy(d, slash ? path : ".", n);
    return d;
}

/* Write all of buf to a new file at path, fsynced; -1 with errno set. */
static int write_file(const char *path, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            errno = e;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

/* The core driver's memory, handed over at close instead of freed, so the
 * image is written from where HDF5 built it (no second copy of a checkpoint
 * in memory: it is the size of three parameter blocks). */
typedef struct {
    void *mem;
} kept_image;

static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *ud) { return malloc(size); }
static void *image_memcpy(void *dst, const void *src, size_t size, H5FD_file_image_op_t op, void *ud)
{
    return memcpy(dst, src, size);
}
static void *image_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *ud) { return realloc(ptr, size); }
static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *ud)
{
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && ud) {
        ((kept_image *)ud)->mem = ptr;
        return 0;
    }
    free(ptr);
    return 0;
}
static void *image_udata_copy(void *ud) { return ud; }
static herr_t image_udata_free(void *ud) { return 0; }

int dt_ckpt_save(const char *path, const dt_ckpt_meta *meta, dt_params *const *nets,
                 const dt_adam *opts, int nnets)
{
    dt_h5_quiet();
    /* The file is built in memory (HDF5's core driver, no backing store) and
     * written with one plain write: a full disk or a size limit then gives a
     * clean error with its errno, and HDF5 never holds a half-written file
     * open (which it would try to close again, and crash, at exit). */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    kept_image kept = {NULL};
    H5FD_file_image_callbacks_t cb = {image_malloc,     image_memcpy,     image_realloc, image_free,
                                      image_udata_copy, image_udata_free, &kept};
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 22, 0) < 0 || H5Pset_file_image_callbacks(fapl, &cb) < 0)
        DT_FATAL("HDF5 core driver unavailable");
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 || H5Pset_userblock(fcpl, CKPT_USERBLOCK) < 0) DT_FATAL("HDF5 user block unavailable");
    char *tmp = dt_tmp_path(path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0) {
        dt_free(tmp);
        return dt_seterr("cannot create checkpoint %s in memory", path);
    }
    int rc = write_meta(f, meta);
    for (int i = 0; i < nnets && rc == 0; i++) rc = write_net(f, nets[i], &opts[i]);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) rc = -1;
    /* the file's size: HDF5's image, which leaves out the user block, and the user block */
    ssize_t n = rc == 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    if (n > 0) n += CKPT_USERBLOCK;
    if (n <= 0) rc = -1;
    if (H5Fclose(f) < 0) rc = -1;
    unsigned char *image = kept.mem;
    if (!image || n <= CKPT_USERBLOCK) rc = -1;
    if (rc == 0) { /* the header: what follows it, hashed */
        char hex[65];
        dt_sha256(hex, image + CKPT_USERBLOCK, (size_t)n - CKPT_USERBLOCK);
        dt_ckpt_header(image, hex);
    }
    if (rc != 0) {
        free(image);
        dt_free(tmp);
        return dt_seterr("cannot assemble checkpoint %s (HDF5 failed in memory)", path);
    }
    rc = write_file(tmp, image, (size_t)n);
    int e = errno;
    free(image);
    if (rc != 0) {
        unlink(tmp);
        dt_free(tmp);
        return dt_seterr("writing checkpoint %s failed: %s", path, strerror(e));
    }
    /* The last good one becomes .prev. A hard link keeps checkpoint.h5 in
     * place until the rename below replaces it, so at every instant the
     * folder holds a complete checkpoint under its name; where links are
     * not supported, a rename does it (a crash between the two renames then
     * leaves only .prev, which --resume auto takes). */
    char *prev = dt_ckpt_prev_path(path);
    if (access(path, F_OK) == 0) {
        char *plink = dt_tmp_path(prev);
        unlink(plink);
        int moved = link(path, plink) == 0 && rename(plink, prev) == 0;
        if (!moved) {
            unlink(plink);
            moved = rename(path, prev) == 0;
        }
        dt_free(plink);
        if (!moved) {
            int e2 = errno;
            unlink(tmp);
            dt_free(tmp);
            rc = dt_seterr("cannot keep %s as %s: %s", path, prev, strerror(e2));
            dt_free(prev);
            return rc;
        }
    }
    dt_free(prev);
    if (rename(tmp, path) != 0) {
        int e2 = errno;
        dt_seterr("cannot rename %s to %s: %s", tmp, path, strerror(e2));
        unlink(tmp);
        dt_free(tmp);
        return -1;
    }
    dt_free(tmp);
    char *dir = dir_of(path);
    sync_dir(dir); /* the renames themselves */
    dt_free(dir);
    return 0;
}

