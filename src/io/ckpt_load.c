/* Checkpoints, reading: the whole file verified against its user block's
 * SHA-256 before HDF5 parses it from memory, then its metadata checked for
 * range and consistency, then the networks loaded and their CRCs checked. */
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

/* The whole file into memory (caller frees); NULL with the reason. */
static unsigned char *slurp(const char *path, size_t *n)
{
    if (dt_check_regular(path, "checkpoint") < 0) return NULL;
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        dt_seterr("checkpoint %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) DT_FATAL("out of memory reading %s (%zu bytes)", path, size);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(buf);
        dt_seterr("checkpoint %s: read error after %zu of %zu bytes", path, got, size);
        return NULL;
    }
    *n = size;
    return buf;
}

/* The header against the bytes after it: 0, or DT_CKPT_* with the reason.
 * Nothing of the file has been parsed by HDF5 before this says 0. */
static int verify_image(const unsigned char *buf, size_t n, const char *path)
{
    static const unsigned char hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(buf, hdf5_sig, 8) == 0) {
        dt_seterr("checkpoint %s has no dtrain header: it is of an older dtrain (format 1) or not a checkpoint; this "
                  "dtrain reads format %d, whose every byte it verifies: start a new run in another --out",
                  path, CKPT_FORMAT);
        return DT_CKPT_MISMATCH;
    }
    const char *h = (const char *)buf;
    size_t kl = strlen(CKPT_KIND "\nformat ");
    if (n <= CKPT_USERBLOCK || memcmp(h, CKPT_KIND "\nformat ", kl) != 0 || !memchr(h, '\0', CKPT_USERBLOCK)) {
        dt_seterr("checkpoint %s is not a dtrain checkpoint (%zu bytes, no dtrain header: truncated or damaged?)", path,
                  n);
        return DT_CKPT_DAMAGED;
    }
    int fmt = 0;
    char hex[65] = "";
    int got_fields = sscanf(h + kl, "%d\nsha256 %64[0-9a-f]", &fmt, hex);
    if (got_fields >= 1 && fmt != CKPT_FORMAT) {
        dt_seterr("checkpoint %s has format %d; this dtrain reads format %d", path, fmt, CKPT_FORMAT);
        return DT_CKPT_MISMATCH;
    }
    /* byte for byte what dt_ckpt_save writes, zeros to the end: a flipped bit
     * anywhere in the header is damage too */
    unsigned char want[CKPT_USERBLOCK];
    dt_ckpt_header(want, hex);
    if (got_fields < 2 || strlen(hex) != 64 || memcmp(buf, want, CKPT_USERBLOCK) != 0) {
        dt_seterr("checkpoint %s has a damaged header", path);
        return DT_CKPT_DAMAGED;
    }
    char got[65];
    dt_sha256(got, buf + CKPT_USERBLOCK, n - CKPT_USERBLOCK);
    if (!dt_sha256_same(got, hex)) {
        dt_seterr("checkpoint %s is damaged: the SHA-256 of its contents (%.12s) is not the one it was written with "
                  "(%.12s): a changed or truncated file",
                  path, got, hex);
        return DT_CKPT_DAMAGED;
    }
    return 0;
}

/* Open a verified checkpoint from memory; the file is read once. <0: DT_CKPT_* (message set). */
static hid_t open_ckpt(const char *path)
{
    dt_h5_quiet();
    size_t n = 0;
    unsigned char *buf = slurp(path, &n);
    if (!buf) return DT_CKPT_DAMAGED;
    int rc = verify_image(buf, n, path);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 22, 0) < 0 || H5Pset_file_image(fapl, buf, n) < 0)
        DT_FATAL("HDF5 core driver unavailable");
    free(buf); /* the property list holds its own copy */
    /* the name of the image only: HDF5's core driver refuses a name that
     * exists on disk, and this one cannot */
    hid_t f = H5Fopen("/proc/self/dtrain-checkpoint-image", H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0) return dt_seterr("checkpoint %s cannot be opened by HDF5 although its checksum is right", path);
    char kind[64] = "";
    int64_t fmt = 0;
    if (dt_h5_get_str(f, "kind", kind, sizeof kind) < 0 || strcmp(kind, CKPT_KIND) != 0 ||
        dt_h5_get_i64(f, "format_version", &fmt) < 0 || fmt != CKPT_FORMAT) {
        H5Fclose(f);
        return dt_seterr("checkpoint %s: its header says format %d, its contents do not", path, CKPT_FORMAT);
    }
    return f;
}

/* H5Aiterate2 callback: one attribute of /settings into meta */
static herr_t read_setting(hid_t g, const char *name, const H5A_info_t *info, void *op)
{
    dt_settings *set = op;
    if (set->n >= DT_OPTS_MAX || strlen(name) >= sizeof set->v[0].name) return -1;
    dt_setting *st = &set->v[set->n];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", name);
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(t);
    int rc = -1;
    if (c == H5T_INTEGER) {
        st->kind = DT_SETTING_INT;
        rc = dt_h5_get_i64(g, name, &st->i);
    } else if (c == H5T_FLOAT) {
        st->kind = DT_SETTING_FLOAT;
        rc = dt_h5_get_f64(g, name, &st->f);
    } else if (c == H5T_STRING && !H5Tis_variable_str(t) && H5Tget_size(t) <= sizeof st->s) {
        st->kind = DT_SETTING_STR;
        rc = dt_h5_get_str(g, name, st->s, sizeof st->s);
    }
    H5Tclose(t);
    H5Aclose(a);
    if (rc < 0) return -1;
    set->n++;
    return 0;
}

/* Range and consistency of what a verified file says; a message naming the field. */
static int check_meta(const dt_ckpt_meta *m, int has_tau, const char *path)
{
    const char *bad = NULL;
    char why[256];
    if (!m->model[0] || !m->arch[0]) bad = "model or arch empty";
    else if (m->step < 0) snprintf(why, sizeof why, "step %lld < 0", (long long)m->step), bad = why;
    else if (m->epoch < 0) snprintf(why, sizeof why, "epoch %lld < 0", (long long)m->epoch), bad = why;
    else if (m->epoch_steps < 1) snprintf(why, sizeof why, "epoch_steps %lld < 1", (long long)m->epoch_steps), bad = why;
    else if (m->batch < 0 || m->batch >= m->epoch_steps)
        snprintf(why, sizeof why, "batch %lld outside an epoch of %lld steps", (long long)m->batch,
                 (long long)m->epoch_steps),
            bad = why;
    else if (m->epoch > (INT64_MAX - m->batch) / m->epoch_steps || m->step != m->epoch * m->epoch_steps + m->batch)
        snprintf(why, sizeof why, "step %lld is not epoch %lld x %lld steps + batch %lld", (long long)m->step,
                 (long long)m->epoch, (long long)m->epoch_steps, (long long)m->batch),
            bad = why;
    else if (m->ranks < 1) snprintf(why, sizeof why, "ranks %d < 1", m->ranks), bad = why;
    else if (m->threads < 0) snprintf(why, sizeof why, "threads %d < 0", m->threads), bad = why;
    else if (has_tau && !(m->tau > 0 && m->tau <= 100)) snprintf(why, sizeof why, "tau %g outside (0, 100]", m->tau), bad = why;
    else if (strlen(m->data_sha256) != 64 || strspn(m->data_sha256, "0123456789abcdef") != 64)
        bad = "data_sha256 is not a SHA-256";
    for (int k = 0; k < m->nsums && !bad; k++)
        if (!isfinite(m->sums[k]) || (k == 0 && m->sums[0] < 0))
            snprintf(why, sizeof why, "train_state/sums[%d] = %g", k, m->sums[k]), bad = why;
    if (!bad) return 0;
    dt_seterr("checkpoint %s: invalid metadata (%s)", path, bad);
    return DT_CKPT_DAMAGED;
}

static int read_meta(hid_t f, const char *path, dt_ckpt_meta *m)
{
    memset(m, 0, sizeof *m);
    int64_t seed = 0, ranks = 0, threads = 0;
    int rc = 0;
    rc |= dt_h5_get_str(f, "model", m->model, sizeof m->model);
    rc |= dt_h5_get_str(f, "arch", m->arch, sizeof m->arch);
    rc |= dt_h5_get_i64(f, "step", &m->step);
    rc |= dt_h5_get_i64(f, "epoch", &m->epoch);
    rc |= dt_h5_get_i64(f, "batch", &m->batch);
    rc |= dt_h5_get_i64(f, "epoch_steps", &m->epoch_steps);
    rc |= dt_h5_get_i64(f, "seed", &seed);
    rc |= dt_h5_get_str(f, "data_sha256", m->data_sha256, sizeof m->data_sha256);
    rc |= dt_h5_get_i64(f, "ranks", &ranks);
    rc |= dt_h5_get_i64(f, "threads", &threads);
    int has_tau = H5Aexists(f, "tau") > 0;
    if (has_tau) rc |= dt_h5_get_f64(f, "tau", &m->tau);
    m->seed = (uint64_t)seed;
    m->ranks = ranks < 0 || ranks > INT32_MAX ? -1 : (int)ranks;
    m->threads = threads < 0 || threads > INT32_MAX ? -1 : (int)threads;
    if (rc) return dt_seterr("checkpoint %s: attributes missing", path);
    hid_t g = H5Gopen2(f, "settings", H5P_DEFAULT);
    if (g < 0) return dt_seterr("checkpoint %s: no settings", path);
    herr_t it = H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, NULL, read_setting, &m->settings);
    H5Gclose(g);
    if (it < 0) return dt_seterr("checkpoint %s: unreadable settings", path);
    g = H5Gopen2(f, "train_state", H5P_DEFAULT);
    if (g < 0) return dt_seterr("checkpoint %s: no train_state", path);
    hid_t d = H5Dopen2(g, "sums", H5P_DEFAULT);
    hssize_t n = -1;
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        n = H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        H5Dclose(d);
    }
    if (n < 1 || n > DT_CKPT_MAX_SUMS || dt_h5_read(g, "sums", H5T_NATIVE_DOUBLE, (size_t)n, m->sums) < 0) {
        H5Gclose(g);
        return dt_seterr("checkpoint %s: unreadable train_state", path);
    }
    m->nsums = (int)n;
    H5Gclose(g);
    return check_meta(m, has_tau, path);
}

int dt_ckpt_read_meta(const char *path, dt_ckpt_meta *meta)
{
    hid_t f = open_ckpt(path);
    if (f < 0) return (int)f;
    int rc = read_meta(f, path, meta);
    H5Fclose(f);
    return rc < 0 ? DT_CKPT_DAMAGED : 0;
}

int dt_ckpt_check_model(const dt_ckpt_meta *meta, const char *path, const char *model)
{
    if (strcmp(meta->model, model) == 0) return 0;
    dt_seterr("checkpoint %s is of model '%s', not '%s'; use `dtrain %s --resume %s`", path, meta->model, model,
              meta->model, path);
    return DT_CKPT_MISMATCH;
}

static int read_net(hid_t f, const char *path, int64_t step, dt_params *p, dt_adam *a)
{
    if (H5Lexists(f, p->name, H5P_DEFAULT) <= 0)
        return dt_seterr("checkpoint %s has no network '%s'", path, p->name);
    hid_t g = H5Gopen2(f, p->name, H5P_DEFAULT);
    for (int k = 0; k < 3; k++) {
        hid_t sub = H5Lexists(g, DT_CKPT_PARTS[k], H5P_DEFAULT) > 0 ? H5Gopen2(g, DT_CKPT_PARTS[k], H5P_DEFAULT) : -1;
        for (int v = 0; v < p->nviews; v++) {
            const dt_view *vw = &p->views[v];
            if (sub < 0 || dt_h5_read(sub, vw->name, H5T_NATIVE_FLOAT, vw->n, dt_ckpt_part(p, k) + vw->off) < 0) {
                if (sub >= 0) H5Gclose(sub);
                H5Gclose(g);
                return dt_seterr("checkpoint %s: %s/%s/%s missing, of another shape or unreadable", path,
                                 p->name, DT_CKPT_PARTS[k], vw->name);
            }
        }
        H5Gclose(sub);
    }
    int64_t t = 0, crc = -1;
    double lr, b1, b2, eps;
    int rc = dt_h5_get_i64(g, "adam_t", &t) | dt_h5_get_i64(g, "crc32", &crc) |
             dt_h5_get_f64(g, "lr", &lr) | dt_h5_get_f64(g, "beta1", &b1) | dt_h5_get_f64(g, "beta2", &b2) |
             dt_h5_get_f64(g, "eps", &eps);
    H5Gclose(g);
    if (rc) return dt_seterr("checkpoint %s: optimizer state of '%s' missing or unreadable", path, p->name);
    if ((uint32_t)crc != dt_ckpt_crc(p))
        return dt_seterr("checkpoint %s: checksum of '%s' does not match (corrupt file)", path, p->name);
    if (t < 0 || t > step || !(lr >= 0 && lr <= 10) || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) ||
        !(eps > 0 && eps < 1))
        return dt_seterr("checkpoint %s: invalid optimizer state of '%s' (t %lld at step %lld, lr %g, betas %g %g, "
                         "eps %g)",
                         path, p->name, (long long)t, (long long)step, lr, b1, b2, eps);
    a->t = t;
    a->lr = (float)lr;
    a->beta1 = (float)b1;
    a->beta2 = (float)b2;
    a->eps = (float)eps;
    return 0;
}

int dt_ckpt_load(const char *path, const char *model, const char *arch, int64_t epoch_steps, dt_ckpt_meta *meta,
                 dt_params *const *nets, dt_adam *opts, int nnets)
{
    hid_t f = open_ckpt(path);
    if (f < 0) return (int)f;
    int rc = read_meta(f, path, meta) < 0 ? DT_CKPT_DAMAGED : 0;
    /* a sound checkpoint of another run: not damage, so not a reason to fall back */
    if (rc == 0) rc = dt_ckpt_check_model(meta, path, model);
    if (rc == 0 && strcmp(meta->arch, arch) != 0) {
        dt_seterr("checkpoint %s was made with '%s', this run is '%s'; resume with the same settings", path,
                  meta->arch, arch);
        rc = DT_CKPT_MISMATCH;
    }
    if (rc == 0 && epoch_steps > 0 && meta->epoch_steps != epoch_steps) {
        dt_seterr("checkpoint %s counts %lld steps per epoch, this run %lld: it was made with another data set or "
                  "batch size",
                  path, (long long)meta->epoch_steps, (long long)epoch_steps);
        rc = DT_CKPT_MISMATCH;
    }
    for (int i = 0; i < nnets && rc == 0; i++)
        if (read_net(f, path, meta->step, nets[i], &opts[i]) < 0) rc = DT_CKPT_DAMAGED;
    H5Fclose(f);
    return rc;
}
