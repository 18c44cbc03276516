/* One run per output folder: flock on OUT/.dtrain.lock, or an exclusively
 * created lock file where the file system has no flock. See
 * include/dtrain/runlock.h. */
#include "dtrain/runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dtrain/core.h"
#include "dtrain/report.h"

#define REC_MAX 4096
#define HELD_MAX 16

typedef struct {
    char host[256];
    long pid;
    long long since; /* unix seconds */
    char job[64];    /* SLURM_JOB_ID, "" outside SLURM */
    char mode[8];    /* flock | file */
    char command[2048];
} holder;

/* the folders this process holds */
typedef struct {
    dev_t dev;
    ino_t ino;
    int fd;
    int file_mode; /* the exclusive-file lock: refreshed, removed at exit */
    char *path;
} held_lock;

static held_lock g_held[HELD_MAX];
static int g_nheld;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_refresher;

static void my_host(char *buf, size_t len)
{
    if (gethostname(buf, len - 1) != 0) snprintf(buf, len, "?");
    buf[len - 1] = 0;
}

static const char *my_job(void)
{
    const char *j = getenv("SLURM_JOB_ID");
    return j ? j : "";
}

/* the record this process writes: one "key value" per line */
static int make_record(char *buf, size_t len, const char *mode, const char *command)
{
    char host[256];
    my_host(host, sizeof host);
    int n = snprintf(buf, len, "dtrain run lock\nhost %s\npid %ld\nsince %lld\nslurm_job_id %s\nmode %s\ncommand %s\n",
                     host, (long)getpid(), (long long)time(NULL), my_job(), mode, command);
    if (n < 0 || (size_t)n >= len) n = (int)strlen(buf);
    return n;
}

/* 1 if text is a whole record (it ends with its command line) */
static int parse_record(const char *text, holder *h)
{
    memset(h, 0, sizeof *h);
    int have_pid = 0, have_cmd = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) break; /* a line still being written */
        size_t n = (size_t)(e - p);
        const char *sp = memchr(p, ' ', n);
        if (sp) {
            size_t kl = (size_t)(sp - p), vl = n - kl - 1;
            const char *v = sp + 1;
#define VAL(dst) snprintf(dst, sizeof dst, "%.*s", (int)vl, v)
            if (kl == 4 && !strncmp(p, "host", 4)) VAL(h->host);
            else if (kl == 3 && !strncmp(p, "pid", 3)) h->pid = strtol(v, NULL, 10), have_pid = 1;
            else if (kl == 5 && !strncmp(p, "since", 5)) h->since = strtoll(v, NULL, 10);
            else if (kl == 12 && !strncmp(p, "slurm_job_id", 12)) VAL(h->job);
            else if (kl == 4 && !strncmp(p, "mode", 4)) VAL(h->mode);
            else if (kl == 7 && !strncmp(p, "command", 7)) VAL(h->command), have_cmd = 1;
#undef VAL
        }
        p = e + 1;
    }
    return have_pid && have_cmd && h->host[0];
}

/* the file's text (at most REC_MAX - 1 bytes); -1 with errno */
static int read_text(int fd, char *buf)
{
    ssize_t n = pread(fd, buf, REC_MAX - 1, 0);
    if (n < 0) return -1;
    buf[n] = 0;
    return 0;
}

static int read_path(const char *path, char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = read_text(fd, buf);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* "pid 123 on host n01, since 2024-05-01 12:00:00 UTC, command `dtrain vae ...`" */
static void describe(const holder *h, char *buf, size_t len)
{
    char when[48] = "an unknown time";
    time_t t = (time_t)h->since;
    struct tm tm;
    if (h->since > 0 && gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    snprintf(buf, len, "pid %ld on host %s%s%s%s, since %s, command `%s`", h->pid, h->host,
             h->job[0] ? " (SLURM job " : "", h->job, h->job[0] ? ")" : "", when, h->command);
}

/* A holder that cannot be asked through flock is gone when it was on this
 * host and its pid is no more, or when it belongs to this SLURM job (a
 * requeued job restarted, maybe on another node). */
static int holder_gone(const holder *h)
{
    char host[256];
    my_host(host, sizeof host);
    if (strcmp(h->host, host) == 0) return h->pid > 0 && kill((pid_t)h->pid, 0) != 0 && errno == ESRCH;
    return *my_job() && strcmp(h->job, my_job()) == 0;
}

/* ---- what this process holds ------------------------------------------------- */

static void *refresh_main(void *arg)
{
    (void)arg;
    const char *env = getenv("DTRAIN_LOCK_REFRESH");
    double period = env && atof(env) > 0 ? atof(env) : 60;
    struct timespec ts = {(time_t)period, (long)((period - (double)(time_t)period) * 1e9)};
    for (;;) {
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&g_mu);
        for (int i = 0; i < g_nheld; i++)
            if (g_held[i].file_mode) futimens(g_held[i].fd, NULL); /* mtime: the holder still runs */
        pthread_mutex_unlock(&g_mu);
    }
    return NULL;
}

/* at exit: remove the lock files that are still this process's */
static void release_files(void)
{
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_nheld; i++) {
        struct stat a, b;
        if (g_held[i].file_mode && fstat(g_held[i].fd, &a) == 0 && stat(g_held[i].path, &b) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            unlink(g_held[i].path);
    }
    pthread_mutex_unlock(&g_mu);
}

static int find_held(const struct stat *d)
{
    for (int i = 0; i < g_nheld; i++)
        if (g_held[i].dev == d->st_dev && g_held[i].ino == d->st_ino) return i;
    return -1;
}

static void add_held(const struct stat *d, int fd, int file_mode, const char *path)
{
    if (g_nheld == HELD_MAX) DT_FATAL("more than %d run folders locked by one process", HELD_MAX);
    if (file_mode && !g_refresher) {
        atexit(release_files);
        /* the thread is born with every signal blocked, so stop signals reach the main thread */
        sigset_t all, old;
        sigfillset(&all);
        pthread_t t;
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&t, NULL, refresh_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) DT_FATAL("cannot start the lock refresh thread: %s", strerror(rc));
        pthread_detach(t);
        g_refresher = 1;
    }
    pthread_mutex_lock(&g_mu);
    size_t n = strlen(path) + 1;
    char *p = malloc(n);
    if (!p) DT_FATAL("out of memory");
    memcpy(p, path, n);
    g_held[g_nheld++] = (held_lock){d->st_dev, d->st_ino, fd, file_mode, p};
    pthread_mutex_unlock(&g_mu);
}

static int write_record(int fd, const char *path, const char *mode, const char *command)
{
    char rec[REC_MAX];
    int n = make_record(rec, sizeof rec, mode, command);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, rec, (size_t)n, 0) != n || fsync(fd) != 0)
        return dt_seterr("cannot write the run lock %s: %s", path, strerror(errno));
    return 0;
}

/* ---- the exclusive file, where there is no flock -------------------------------- */

static int refuse(const char *dir, const holder *h, const char *path, int file_mode)
{
    char who[3072];
    describe(h, who, sizeof who);
    if (!file_mode)
        return dt_seterr("--out %s is in use by another dtrain run: %s; wait for it to end or give this run another "
                         "--out", dir, who);
    struct stat st;
    long age = stat(path, &st) == 0 ? (long)(time(NULL) - st.st_mtime) : -1;
    char host[256];
    my_host(host, sizeof host);
    return dt_seterr("--out %s is in use by another dtrain run: %s (lock file %s, refreshed %ld s ago%s); wait for "
                     "it to end or give this run another --out; if that run is really gone, remove %s",
                     dir, who, path, age,
                     strcmp(h->host, host) == 0 ? "" : "; with no flock here, a run on another host cannot be checked",
                     path);
}

/* fd of the lock file path, created exclusively and holding this process's
 * record; a stale one is taken over. -1: refused or failed (message set). */
static int take_file(const char *dir, const char *path, const char *command)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (write_record(fd, path, "file", command) == 0) return fd;
            close(fd);
            unlink(path);
            return -1;
        }
        if (errno != EEXIST) return dt_seterr("cannot create the run lock %s: %s", path, strerror(errno));
        char text[REC_MAX], again[REC_MAX];
        holder h;
        if (read_path(path, text) != 0) {
            if (errno == ENOENT) continue; /* released meanwhile */
            return dt_seterr("cannot read the run lock %s: %s", path, strerror(errno));
        }
        if (!parse_record(text, &h)) {
            if (attempt < 5) { /* being written right now */
                nanosleep(&(struct timespec){0, 200000000}, NULL);
                continue;
            }
            return dt_seterr("--out %s is locked by %s, which holds no readable record; if no run uses this folder, "
                             "remove %s", dir, path, path);
        }
        if (!holder_gone(&h)) return refuse(dir, &h, path, 1);
        /* Take it over: move it aside and check that what moved is the stale
         * record judged above, not the lock of a run that took it meanwhile. */
        char aside[4200];
        snprintf(aside, sizeof aside, "%s.stale.%ld", path, (long)getpid());
        if (rename(path, aside) != 0) {
            if (errno == ENOENT) continue;
            return dt_seterr("cannot take over the stale run lock %s: %s", path, strerror(errno));
        }
        int same = read_path(aside, again) == 0 && strcmp(text, again) == 0;
        if (!same && link(aside, path) != 0 && errno != EEXIST) /* put back what was not ours to move */
            dt_warn("cannot put back the run lock %s: %s", path, strerror(errno));
        unlink(aside);
        if (same) {
            char who[3072];
            describe(&h, who, sizeof who);
            dt_warn("taking over the run lock %s of a run that is gone: %s", path, who);
        }
    }
    return dt_seterr("cannot take the run lock %s: other runs keep taking it", path);
}

/* ---- the lock ----------------------------------------------------------------------- */

int dt_runlock_take(const char *dir, const char *command)
{
    struct stat d;
    if (stat(dir, &d) != 0) return dt_seterr("--out %s: %s", dir, strerror(errno));
    if (find_held(&d) >= 0) return 0;
    char *path = dt_path_join(dir, DT_RUNLOCK_NAME);
    const char *mode = getenv("DTRAIN_LOCK");
    int fd = -1, file_mode = mode && strcmp(mode, "file") == 0, rc = -1;
    if (!file_mode) {
        int created = 1;
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST) {
            created = 0;
            fd = open(path, O_RDWR | O_CLOEXEC);
        }
        if (fd < 0) {
            dt_seterr("cannot open the run lock %s: %s", path, strerror(errno));
            goto done;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            /* a run holding this file without flock (the fallback) is still a holder */
            char text[REC_MAX];
            holder h;
            if (read_text(fd, text) == 0 && parse_record(text, &h) && strcmp(h.mode, "file") == 0 &&
                !holder_gone(&h)) {
                refuse(dir, &h, path, 1);
                goto done;
            }
            rc = write_record(fd, path, "flock", command);
        } else if (errno == EWOULDBLOCK) {
            char text[REC_MAX];
            holder h;
            for (int i = 0; i < 10; i++) { /* the holder may be writing its record right now */
                if (read_text(fd, text) == 0 && parse_record(text, &h)) break;
                snprintf(h.host, sizeof h.host, "?");
                h.pid = 0, h.since = 0, h.job[0] = 0;
                snprintf(h.command, sizeof h.command, "?");
                nanosleep(&(struct timespec){0, 100000000}, NULL);
            }
            refuse(dir, &h, path, 0);
        } else if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS) {
            /* no flock here: the file itself is the lock */
            file_mode = 1;
            if (created) {
                rc = write_record(fd, path, "file", command);
            } else {
                close(fd);
                fd = -1;
            }
        } else {
            dt_seterr("cannot lock %s: %s", path, strerror(errno));
        }
    }
    if (file_mode && fd < 0) {
        fd = take_file(dir, path, command);
        rc = fd >= 0 ? 0 : -1;
    }
done:
    if (rc == 0)
        add_held(&d, fd, file_mode, path);
    else if (fd >= 0)
        close(fd);
    dt_free(path);
    return rc;
}
