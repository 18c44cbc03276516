/* Errors, allocation, time and logging. See include/dtrain/core.h. */
#define _POSIX_C_SOURCE 200809L
#include "dtrain/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static char g_err[1024];
static int g_log_rank = 0;
static DT_NORETURN void (*g_abort_hook)(int status);

int dt_seterr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return -1;
}

const char *dt_lasterr(void) { return g_err; }
void dt_clearerr(void) { g_err[0] = '\0'; }

void dt_set_abort_hook(DT_NORETURN void (*hook)(int status)) { g_abort_hook = hook; }

static DT_NORETURN void exit_job(int status)
{
    fflush(stdout);
    fflush(stderr);
    if (g_abort_hook) g_abort_hook(status);
    exit(status);
}

void dt_fatal_at(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "dtrain: internal error (%s:%d): %s\n", file, line, msg);
    exit_job(DT_EXIT_INTERNAL);
}

int dt_check_regular(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ELOOP) return dt_seterr("%s %s: a loop of symbolic links", what, path);
        return dt_seterr("%s %s: %s", what, path, strerror(errno));
    }
    if (S_ISREG(st.st_mode)) return 0;
    const char *kind = S_ISDIR(st.st_mode)    ? "a folder"
                       : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                      : "not a regular file";
    return dt_seterr("%s %s: %s, not a regular file", what, path, kind);
}

void *dt_alloc_at(size_t bytes, const char *file, int line)
{
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    if (posix_memalign(&p, 64, n) != 0 || !p)
        dt_fatal_at(file, line, "out of memory allocating %zu bytes", bytes);
    memset(p, 0, n);
    return p;
}

void dt_free(void *p) { free(p); }

char *dt_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = dt_alloc(n);
    memcpy(d, s, n);
    return d;
}

double dt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dt_log_set_rank(int rank) { g_log_rank = rank; }

void dt_log(const char *fmt, ...)
{
    if (g_log_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void dt_warn(const char *fmt, ...)
{
    if (g_log_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dtrain: warning: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

size_t dt_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024;
}
