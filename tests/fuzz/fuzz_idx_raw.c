/* Raw IDX files through dt_idx_read: the header must match the file's length
 * exactly before anything is allocated (-malloc_limit_mb catches a lie). */
#include "dtrain/data.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fz_path("idx");
    uint8_t *b = malloc(size + 1);
    memcpy(b, data, size);
    if (size >= 2 && b[0] == 0x1f && b[1] == 0x8b) b[0] = 0; /* stay raw: gzip has its own harness */
    fz_write(p, b, size);
    free(b);
    dt_idx x;
    if (dt_idx_read(p, &x) == 0) {
        size_t prod = 1;
        for (int d = 0; d < x.ndim; d++) prod *= x.dims[d];
        FZ_ASSERT(x.ndim == 1 || x.ndim == 3);
        FZ_ASSERT(x.size == prod && x.size + 4 + 4 * (size_t)x.ndim == size);
        FZ_ASSERT(memcmp(x.data, data + 4 + 4 * x.ndim, x.size) == 0);
        dt_idx_free(&x);
    } else {
        FZ_ASSERT(x.data == NULL);
        fz_check_message();
    }
    unlink(p);
    return 0;
}
