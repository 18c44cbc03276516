/* Shared by the libFuzzer harnesses: each writes its input to a file and
 * calls the real reader on that path, the code a user's file meets. */
#ifndef DTRAIN_FUZZ_COMMON_H
#define DTRAIN_FUZZ_COMMON_H

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/core.h"

/* A per-process scratch path: $TMPDIR/dtrain-fuzz-<pid>-<tag>. */
static inline const char *fz_path(const char *tag)
{
    static char p[4][256];
    static int next;
    char *o = p[next++ & 3];
    const char *d = getenv("TMPDIR");
    snprintf(o, 256, "%s/dtrain-fuzz-%ld-%s", d && *d ? d : "/tmp", (long)getpid(), tag);
    return o;
}

static inline void fz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* A broken promise of the reader: report it as a crash. */
#define FZ_ASSERT(c)                                                            \
    do {                                                                        \
        if (!(c)) {                                                             \
            fprintf(stderr, "fuzz: %s:%d: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, #c, dt_lasterr());                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* An error recorded by a reader must be one line naming something. */
static inline void fz_check_message(void)
{
    const char *m = dt_lasterr();
    FZ_ASSERT(m[0] != '\0');
    FZ_ASSERT(strchr(m, '\n') == NULL);
}

static inline void fz_quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

#endif
