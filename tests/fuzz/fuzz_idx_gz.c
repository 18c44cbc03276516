/* Gzip IDX files through dt_idx_read. The first byte picks the mode:
 *   0: the rest is the file itself (given the gzip magic),
 *   1: the rest is the content, gzipped here,
 *   2: the same, then a second gzip member or trailing bytes.
 * Mode 1 knows the content, so a success is checked against it. The buffer
 * may grow to twice the inflated bytes, never to what a header claims. */
#include <zlib.h>

#include "dtrain/data.h"
#include "fuzz_common.h"

static void gz_append(FILE *f, const uint8_t *p, size_t n)
{
    uLong cap = compressBound((uLong)n) + 32;
    uint8_t *out = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    fwrite(out, 1, cap - z.avail_out, f);
    deflateEnd(&z);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    const char *p = fz_path("idx.gz");
    size_t split = size;
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (mode == 0) {
        static const uint8_t magic[2] = {0x1f, 0x8b};
        fwrite(magic, 1, 2, f);
        fwrite(data, 1, size, f);
    } else {
        /* mode 2: the last quarter goes into a second member, or raw after the stream */
        if (mode == 2) split = size - size / 4;
        gz_append(f, data, split);
        if (mode == 2 && size > split) {
            if (data[split] & 1) gz_append(f, data + split, size - split);
            else fwrite(data + split, 1, size - split, f);
        }
    }
    if (fclose(f) != 0) abort();
    dt_idx x;
    if (dt_idx_read(p, &x) == 0) {
        size_t prod = 1;
        for (int d = 0; d < x.ndim; d++) prod *= x.dims[d];
        FZ_ASSERT(x.size == prod);
        if (mode == 1) {
            FZ_ASSERT(x.size + 4 + 4 * (size_t)x.ndim == size);
            FZ_ASSERT(memcmp(x.data, data + 4 + 4 * x.ndim, x.size) == 0);
        }
        dt_idx_free(&x);
    } else {
        FZ_ASSERT(x.data == NULL);
        fz_check_message();
    }
    unlink(p);
    return 0;
}
