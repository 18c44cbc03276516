/* IDX files (the MNIST format): big-endian header, unsigned bytes.
 *   bytes 0-1: 0, byte 2: type (0x08 = unsigned byte), byte 3: ndim,
 *   then ndim big-endian uint32 dims, then the payload.
 * zlib's gzread reads gzip files and passes raw files through unchanged. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dtrain/core.h"
#include "dtrain/data.h"

/* Largest payload accepted: far beyond MNIST, small enough to catch a
 * garbage header before a huge allocation. */
#define IDX_MAX_BYTES ((size_t)1 << 31)

/* Read up to n bytes; returns bytes read, -1 on a gzip stream error. */
static long long read_full(gzFile f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(f, (char *)buf + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

static int gz_fail(const char *path, gzFile f)
{
    int code;
    const char *m = gzerror(f, &code);
    return dt_seterr("%s: corrupt gzip data (%s); download the file again (make data)", path,
                     m ? m : "unknown");
}

int dt_idx_read(const char *path, dt_idx *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0)
        return dt_seterr("%s: %s; pass the folder holding the MNIST files with --mnist DIR or run "
                         "`make data`", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return dt_seterr("%s: is a folder, expected an IDX file", path);
    gzFile f = gzopen(path, "rb");
    if (!f) return dt_seterr("%s: cannot open: %s", path, strerror(errno));
    gzbuffer(f, 1 << 17);

    uint8_t h[16];
    long long r = read_full(f, h, 4);
    if (r < 0) goto gzerr;
    if (r < 4 || h[0] != 0 || h[1] != 0) {
        gzclose(f);
        return dt_seterr("%s: not an IDX file (bad magic %02x %02x %02x %02x, expected 00 00 08 "
                         "01/03); check the path", path, r > 0 ? h[0] : 0, r > 1 ? h[1] : 0,
                         r > 2 ? h[2] : 0, r > 3 ? h[3] : 0);
    }
    if (h[2] != 0x08) {
        gzclose(f);
        return dt_seterr("%s: IDX element type 0x%02x not supported (only 0x08, unsigned byte)",
                         path, h[2]);
    }
    int ndim = h[3];
    if (ndim != 1 && ndim != 3) {
        gzclose(f);
        return dt_seterr("%s: IDX file with %d dimensions; expected 1 (labels) or 3 (images)", path,
                         ndim);
    }
    r = read_full(f, h + 4, 4 * (size_t)ndim);
    if (r < 0) goto gzerr;
    if (r < 4 * ndim) {
        gzclose(f);
        return dt_seterr("%s: truncated: header ends after %lld of %d bytes; download the file again",
                         path, r + 4, 4 + 4 * ndim);
    }
    size_t total = 1;
    for (int d = 0; d < ndim; d++) {
        const uint8_t *p = h + 4 + 4 * d;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (v == 0) {
            gzclose(f);
            return dt_seterr("%s: IDX dimension %d is zero", path, d);
        }
        out->dims[d] = v;
        if (total > IDX_MAX_BYTES / v) {
            gzclose(f);
            return dt_seterr("%s: IDX dimensions too large (corrupt header?)", path);
        }
        total *= v;
    }
    out->ndim = ndim;
    out->size = total;
    out->data = dt_alloc(total);
    r = read_full(f, out->data, total);
    if (r < 0) goto gzerr;
    if ((size_t)r < total) {
        /* zlib also flags a cut gzip stream; the byte count says more. */
        gzclose(f);
        dt_idx_free(out);
        return dt_seterr("%s: truncated: expected %zu bytes of %s, found %lld; download the file "
                         "again (make data)", path, total, ndim == 3 ? "pixels" : "labels", r);
    }
    uint8_t extra[64];
    r = read_full(f, extra, sizeof extra);
    if (r < 0) goto gzerr;
    if (r > 0) {
        gzclose(f);
        dt_idx_free(out);
        return dt_seterr("%s: %s%lld unexpected bytes after the %zu-byte payload (corrupt file?); "
                         "download the file again", path, r == (long long)sizeof extra ? "at least " : "",
                         r, total);
    }
    gzclose(f);
    return 0;
gzerr:
    gz_fail(path, f);
    gzclose(f);
    dt_idx_free(out);
    return -1;
}

void dt_idx_free(dt_idx *x)
{
    if (!x) return;
    dt_free(x->data);
    memset(x, 0, sizeof *x);
}

int dt_mnist_load(const char *images, const char *labels, dt_mnist *out)
{
    memset(out, 0, sizeof *out);
    dt_idx im, lb;
    if (dt_idx_read(images, &im) < 0) return -1;
    if (im.ndim != 3) {
        dt_idx_free(&im);
        return dt_seterr("%s: expected an image file (3 dimensions), found %d dimension(s); are "
                         "images and labels swapped?", images, im.ndim);
    }
    if (im.dims[1] != DT_IMG_SIDE || im.dims[2] != DT_IMG_SIDE) {
        dt_seterr("%s: images are %ux%u, expected 28x28 (MNIST-style data only)", images, im.dims[1],
                  im.dims[2]);
        dt_idx_free(&im);
        return -1;
    }
    if (dt_idx_read(labels, &lb) < 0) {
        dt_idx_free(&im);
        return -1;
    }
    int rc = 0;
    if (lb.ndim != 1)
        rc = dt_seterr("%s: expected a label file (1 dimension), found %d dimensions", labels,
                       lb.ndim);
    else if (lb.dims[0] != im.dims[0])
        rc = dt_seterr("%s: %u labels but %s has %u images; the files do not belong together", labels,
                       lb.dims[0], images, im.dims[0]);
    else
        for (size_t i = 0; i < lb.size; i++)
            if (lb.data[i] > 9) {
                rc = dt_seterr("%s: label %u at item %zu is not a digit 0-9", labels, lb.data[i], i);
                break;
            }
    if (rc < 0) {
        dt_idx_free(&im);
        dt_idx_free(&lb);
        return -1;
    }
    out->n = im.dims[0];
    out->images = im.data;
    out->labels = lb.data;
    return 0;
}

void dt_mnist_free(dt_mnist *m)
{
    if (!m) return;
    dt_free(m->images);
    dt_free(m->labels);
    memset(m, 0, sizeof *m);
}
