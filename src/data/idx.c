/* IDX files (the MNIST format): big-endian header, unsigned bytes.
 *   bytes 0-1: 0, byte 2: type (0x08 = unsigned byte), byte 3: ndim,
 *   then ndim big-endian uint32 dims, then the payload.
 * A file starting with the gzip magic (1f 8b) is inflated as it is read;
 * anything else is read as a raw IDX file.
 *
 * Nothing is allocated on the header's word alone: a raw file's header must
 * match the file's length exactly before the payload is allocated, and a gzip
 * file's buffer grows with the bytes actually inflated (at most twice them). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dtrain/core.h"
#include "dtrain/data.h"

/* Largest payload accepted: far beyond MNIST, small enough to catch a
 * garbage header before a huge allocation. */
#define IDX_MAX_BYTES ((size_t)1 << 31)
/* First buffer for a gzip payload; it doubles as bytes arrive. */
#define IDX_GZ_FIRST ((size_t)1 << 16)

/* The bytes of an IDX file: raw, or inflated from gzip members. */
typedef struct {
    const char *path;
    FILE *f;
    int gz;
    int done;       /* gzip: the last member ended and nothing follows */
    z_stream z;
    unsigned char in[1 << 16];
} idx_src;

static int refill(idx_src *s)
{
    if (s->z.avail_in > 0) return 0;
    size_t r = fread(s->in, 1, sizeof s->in, s->f);
    if (r == 0 && ferror(s->f))
        return dt_seterr("%s: read error: %s", s->path, strerror(errno));
    s->z.next_in = s->in;
    s->z.avail_in = (uInt)r;
    return 0;
}

/* Up to n bytes of content into buf; the count, or -1 (message set). */
static long long src_read(idx_src *s, void *buf, size_t n)
{
    if (!s->gz) {
        size_t r = fread(buf, 1, n, s->f);
        if (r < n && ferror(s->f)) return dt_seterr("%s: read error: %s", s->path, strerror(errno));
        return (long long)r;
    }
    size_t got = 0;
    while (got < n && !s->done) {
        if (refill(s) < 0) return -1;
        if (s->z.avail_in == 0)
            return dt_seterr("%s: truncated gzip data (the stream ends early); download the file "
                             "again (make data)", s->path);
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        s->z.next_out = (unsigned char *)buf + got;
        s->z.avail_out = (uInt)want;
        int r = inflate(&s->z, Z_NO_FLUSH);
        got += want - s->z.avail_out;
        if (r == Z_STREAM_END) {
            /* another gzip member may follow; anything else is garbage */
            if (refill(s) < 0) return -1;
            if (s->z.avail_in == 0) {
                s->done = 1;
            } else if (s->z.next_in[0] == 0x1f) {
                inflateReset(&s->z);
            } else {
                return dt_seterr("%s: unexpected bytes after the end of the gzip data (corrupt "
                                 "file?); download the file again (make data)", s->path);
            }
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            return dt_seterr("%s: corrupt gzip data (%s); download the file again (make data)",
                             s->path, s->z.msg ? s->z.msg : "unknown");
        }
    }
    return (long long)got;
}

static void src_close(idx_src *s)
{
    if (s->gz) inflateEnd(&s->z);
    if (s->f) fclose(s->f);
}

/* The payload of `total` bytes from a gzip stream: the buffer grows with the
 * inflated bytes, so a header claiming more than the stream holds costs no
 * more memory than the stream itself. */
static long long read_gz_payload(idx_src *s, size_t total, uint8_t **out)
{
    size_t cap = total < IDX_GZ_FIRST ? total : IDX_GZ_FIRST, got = 0;
    uint8_t *buf = dt_alloc(cap);
    for (;;) {
        long long r = src_read(s, buf + got, cap - got);
        if (r < 0) {
            dt_free(buf);
            return -1;
        }
        got += (size_t)r;
        if (got < cap || cap == total) break;
        size_t ncap = cap * 2 < total ? cap * 2 : total;
        uint8_t *nb = dt_alloc(ncap);
        memcpy(nb, buf, got);
        dt_free(buf);
        buf = nb;
        cap = ncap;
    }
    *out = buf;
    return (long long)got;
}

/* the header: magic, element type, dimensions into out->dims; *total: the
 * payload's bytes. -1 with the reason. */
static int read_header(idx_src *s, const char *path, dt_idx *out, int *ndim_out, size_t *total)
{
    uint8_t h[16];
    long long r = src_read(s, h, 4);
    if (r < 0) return -1;
    if (r < 4 || h[0] != 0 || h[1] != 0)
        return dt_seterr("%s: not an IDX file (bad magic %02x %02x %02x %02x, expected 00 00 08 "
                         "01/03); check the path", path, r > 0 ? h[0] : 0, r > 1 ? h[1] : 0,
                         r > 2 ? h[2] : 0, r > 3 ? h[3] : 0);
    if (h[2] != 0x08) return dt_seterr("%s: IDX element type 0x%02x not supported (only 0x08, unsigned byte)", path, h[2]);
    int ndim = h[3];
    if (ndim != 1 && ndim != 3)
        return dt_seterr("%s: IDX file with %d dimensions; expected 1 (labels) or 3 (images)", path, ndim);
    r = src_read(s, h + 4, 4 * (size_t)ndim);
    if (r < 0) return -1;
    if (r < 4 * ndim)
        return dt_seterr("%s: truncated: header ends after %lld of %d bytes; download the file again", path, r + 4,
                         4 + 4 * ndim);
    *total = 1;
    for (int d = 0; d < ndim; d++) {
        const uint8_t *p = h + 4 + 4 * d;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (v == 0) return dt_seterr("%s: IDX dimension %d is zero", path, d);
        out->dims[d] = v;
        if (*total > IDX_MAX_BYTES / v) return dt_seterr("%s: IDX dimensions too large (corrupt header?)", path);
        *total *= v;
    }
    *ndim_out = ndim;
    return 0;
}

/* a raw file's payload: the header must account for the file's length
 * exactly, before any allocation */
static int read_raw(idx_src *s, const char *path, size_t have, size_t total, const char *what, dt_idx *out)
{
    if (have < total)
        return dt_seterr("%s: truncated: expected %zu bytes of %s, found %zu; download the file "
                         "again (make data)", path, total, what, have);
    if (have > total)
        return dt_seterr("%s: %zu unexpected bytes after the %zu-byte payload (corrupt file?); "
                         "download the file again", path, have - total, total);
    out->data = dt_alloc(total);
    long long r = src_read(s, out->data, total);
    if (r < 0) return -1;
    if ((size_t)r != total) /* the file shrank while it was read */
        return dt_seterr("%s: truncated: expected %zu bytes of %s, found %lld", path, total, what, r);
    return 0;
}

/* a gzip file's payload, and nothing after it */
static int read_gz(idx_src *s, const char *path, size_t total, const char *what, dt_idx *out)
{
    long long r = read_gz_payload(s, total, &out->data);
    if (r < 0) return -1;
    if ((size_t)r < total)
        return dt_seterr("%s: truncated: expected %zu bytes of %s, found %lld; download the file "
                         "again (make data)", path, total, what, r);
    uint8_t extra[64];
    r = src_read(s, extra, sizeof extra);
    if (r < 0) return -1;
    if (r > 0)
        return dt_seterr("%s: %s%lld unexpected bytes after the %zu-byte payload (corrupt file?); "
                         "download the file again", path, r == (long long)sizeof extra ? "at least " : "", r,
                         total);
    return 0;
}

int dt_idx_read(const char *path, dt_idx *out)
{
    memset(out, 0, sizeof *out);
    if (dt_check_regular(path, "IDX file") < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", dt_lasterr());
        return dt_seterr("%s; pass the folder holding the MNIST files with --mnist DIR or run "
                         "`make data`", why);
    }
    idx_src *s = dt_alloc(sizeof *s);
    s->path = path;
    s->f = fopen(path, "rb");
    struct stat st;
    if (!s->f || fstat(fileno(s->f), &st) != 0) {
        int e = errno;
        src_close(s);
        dt_free(s);
        return dt_seterr("%s: cannot open: %s", path, strerror(e));
    }
    unsigned char magic[2] = {0, 0};
    size_t nm = fread(magic, 1, 2, s->f);
    rewind(s->f);
    if (nm == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        s->gz = 1;
        if (inflateInit2(&s->z, 15 + 16) != Z_OK) DT_FATAL("inflateInit2 failed");
    }
    int ndim = 0;
    size_t total = 0;
    int rc = read_header(s, path, out, &ndim, &total);
    if (rc == 0) {
        const char *what = ndim == 3 ? "pixels" : "labels";
        size_t hdr = 4 + 4 * (size_t)ndim;
        rc = s->gz ? read_gz(s, path, total, what, out) : read_raw(s, path, (size_t)st.st_size - hdr, total, what, out);
    }
    if (rc == 0) {
        out->ndim = ndim;
        out->size = total;
    }
    src_close(s);
    dt_free(s);
    if (rc < 0) dt_idx_free(out);
    return rc;
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
