/* Progress, CSV and JSON output of rank 0, and output folders. */
#include "dtrain/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtrain/core.h"
#include "dtrain/h5.h"

void dt_fmt_duration(char *buf, size_t len, double s)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (s >= 60)
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, len, "%.1fs", s);
}

void dt_progress_init(dt_progress *p)
{
    memset(p, 0, sizeof *p);
    /* Under mpirun, stdout is a pseudo-terminal whatever mpirun's own output
     * is, so there the launcher says (scripts/mpirun sets DTRAIN_PROGRESS). */
    const char *want = getenv("DTRAIN_PROGRESS");
    int launched = getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
    p->tty = isatty(STDOUT_FILENO) && getenv("DTRAIN_NO_PROGRESS") == NULL &&
             (want ? strcmp(want, "1") == 0 : !launched);
}

void dt_progress_draw(dt_progress *p, long done, long total, const char *status)
{
    if (!p->tty) return;
    double now = dt_now();
    if (done < total && now - p->last < 0.2) return;
    p->last = now;
    enum { W = 28 };
    int fill = total > 0 ? (int)((double)W * done / total) : 0;
    char bar[W + 1];
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
    bar[W] = '\0';
    dt_log("\r\033[K[%s] %3d%% %s", bar, total > 0 ? (int)(100.0 * done / total) : 0, status);
    p->drawn = 1;
}

void dt_progress_clear(dt_progress *p)
{
    if (p->tty && p->drawn) dt_log("\r\033[K");
    p->drawn = 0;
}

FILE *dt_csv_open(const char *path, const char *header)
{
    FILE *f = fopen(path, "r");
    if (f) {
        char line[1024] = "";
        int same = fgets(line, sizeof line, f) && strncmp(line, header, strlen(header)) == 0;
        fclose(f);
        if (same) return fopen(path, "a");
    }
    f = fopen(path, "w");
    if (!f) {
        dt_seterr("cannot write %s: %s", path, strerror(errno));
        return NULL;
    }
    fprintf(f, "%s\n", header);
    fflush(f);
    return f;
}

int dt_json_open(dt_json *j, const char *path)
{
    memset(j, 0, sizeof *j);
    j->path = dt_strdup(path);
    j->tmp = dt_tmp_path(path);
    j->f = fopen(j->tmp, "w");
    if (!j->f) {
        int e = errno;
        dt_free(j->path);
        dt_free(j->tmp);
        return dt_seterr("cannot write %s: %s", path, strerror(e));
    }
    fputs("{", j->f);
    return 0;
}

static void key(dt_json *j, const char *k) { fprintf(j->f, "%s\n  \"%s\": ", j->n++ ? "," : "", k); }

void dt_json_escape(char *dst, size_t len, const char *src)
{
    size_t o = 0;
    for (const char *c = src; *c && o + 7 < len; c++) {
        if (*c == '"' || *c == '\\')
            o += (size_t)snprintf(dst + o, len - o, "\\%c", *c);
        else if ((unsigned char)*c < 0x20)
            o += (size_t)snprintf(dst + o, len - o, "\\u%04x", *c);
        else
            dst[o++] = *c;
    }
    dst[o < len ? o : len - 1] = '\0';
}

void dt_json_str(dt_json *j, const char *k, const char *v)
{
    char buf[2048];
    dt_json_escape(buf, sizeof buf, v);
    key(j, k);
    fprintf(j->f, "\"%s\"", buf);
}

void dt_json_num(dt_json *j, const char *k, double v)
{
    key(j, k);
    if (isfinite(v))
        fprintf(j->f, "%.10g", v);
    else
        fputs("null", j->f);
}

void dt_json_int(dt_json *j, const char *k, long long v)
{
    key(j, k);
    fprintf(j->f, "%lld", v);
}

void dt_json_raw(dt_json *j, const char *k, const char *json)
{
    key(j, k);
    fputs(json, j->f);
}

int dt_json_close(dt_json *j)
{
    fputs("\n}\n", j->f);
    int bad = ferror(j->f);
    bad |= fclose(j->f) != 0;
    int rc = bad ? dt_seterr("cannot write %s (disk full?)", j->path) : dt_commit_file(j->tmp, j->path);
    if (bad) unlink(j->tmp);
    dt_free(j->path);
    dt_free(j->tmp);
    return rc;
}

int dt_mkdirs(const char *path)
{
    if (!*path) return dt_seterr("the output folder name is empty");
    char *p = dt_strdup(path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                dt_seterr("cannot create folder %s: %s", p, strerror(e));
                dt_free(p);
                return -1;
            }
            *s = c;
            if (c == '\0') break;
        }
    }
    struct stat st;
    int ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode) && access(path, W_OK | X_OK) == 0;
    dt_free(p);
    if (!ok) return dt_seterr("output folder %s is not a writable folder; choose another with --out", path);
    return 0;
}

char *dt_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = dt_alloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}
