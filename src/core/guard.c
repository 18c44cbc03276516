/* Stop signals and the step watchdog. See include/dtrain/guard.h. */
#include "dtrain/guard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dtrain/core.h"

/* ---- stop signals -------------------------------------------------------- */

static const struct {
    const char *name;
    int sig;
} CANDIDATES[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}};
#define NCAND ((int)(sizeof CANDIDATES / sizeof *CANDIDATES))

static volatile sig_atomic_t g_stop_sig = 0;
static volatile sig_atomic_t g_defer = 0; /* 1: a step boundary will come and read the flag */
static volatile sig_atomic_t g_speaker = 1; /* this process prints the line when it ends at once */
static int g_caught[NCAND]; /* 1 where our handler is installed */
static int g_first = 0;

/* Async-signal-safe: stores, and outside the training steps write + _exit. */
static void on_stop_signal(int sig)
{
    g_stop_sig = sig;
    if (g_defer) return;
    if (g_speaker) {
        const char *name = "a stop signal";
        for (int k = 0; k < NCAND; k++)
            if (CANDIDATES[k].sig == sig) name = CANDIDATES[k].name;
        static const char a[] = "dtrain: stopped by SIG", b[] = " outside the training steps (start-up, data, "
                                "final outputs): no checkpoint written now; continue with --resume auto\n";
        ssize_t w = write(STDERR_FILENO, a, sizeof a - 1);
        w = write(STDERR_FILENO, name, strlen(name));
        w = write(STDERR_FILENO, b, sizeof b - 1);
        (void)w;
    }
    _exit(DT_EXIT_REQUEUE);
}

void dt_stop_defer(int on)
{
    g_defer = on ? 1 : 0;
    if (!on && g_stop_sig) on_stop_signal(g_stop_sig); /* one that came as the steps ended */
}

void dt_stop_set_speaker(int on) { g_speaker = on ? 1 : 0; }

int dt_stop_signals_parse(const char *list, int *sigs, int max)
{
    if (!list || !*list) return dt_seterr("--stop-signal: empty list (use 'none' for no signal)");
    if (strcasecmp(list, "none") == 0) return 0;
    int n = 0;
    const char *p = list;
    while (1) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[16];
        if (len == 0 || len >= sizeof name)
            return dt_seterr("--stop-signal: '%s' is not a list of signal names (e.g. USR1,TERM)", list);
        memcpy(name, p, len);
        name[len] = '\0';
        const char *bare = strncasecmp(name, "SIG", 3) == 0 ? name + 3 : name;
        int sig = 0;
        for (int k = 0; k < NCAND; k++)
            if (strcasecmp(bare, CANDIDATES[k].name) == 0) sig = CANDIDATES[k].sig;
        if (!sig)
            return dt_seterr("--stop-signal: unknown signal '%s' (choose among USR1, USR2, TERM, INT, HUP, or none)",
                             name);
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= sigs[k] == sig;
        if (!dup) {
            if (n >= max) return dt_seterr("--stop-signal: too many signals in '%s'", list);
            sigs[n++] = sig;
        }
        if (!end) break;
        p = end + 1;
    }
    return n;
}

int dt_stop_signals_install(const char *list)
{
    int sigs[NCAND];
    int n = dt_stop_signals_parse(list, sigs, NCAND);
    if (n < 0) return -1;
    g_first = n > 0 ? sigs[0] : 0;
    for (int k = 0; k < NCAND; k++) {
        int want = 0;
        for (int i = 0; i < n; i++) want |= sigs[i] == CANDIDATES[k].sig;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        if (want) {
            sa.sa_handler = on_stop_signal;
            sa.sa_flags = SA_RESTART; /* a read or write that the signal interrupts goes on */
        } else if (g_caught[k]) {
            sa.sa_handler = SIG_DFL;
        } else {
            continue;
        }
        if (sigaction(CANDIDATES[k].sig, &sa, NULL) != 0)
            return dt_seterr("cannot install a handler for SIG%s: %s", CANDIDATES[k].name, strerror(errno));
        g_caught[k] = want;
    }
    return 0;
}

int dt_stop_signal_first(void) { return g_first; }
int dt_stop_requested(void) { return g_stop_sig; }

const char *dt_signal_name(int sig)
{
    static char other[32];
    for (int k = 0; k < NCAND; k++)
        if (CANDIDATES[k].sig == sig) {
            static char name[NCAND][8];
            snprintf(name[k], sizeof name[k], "SIG%s", CANDIDATES[k].name);
            return name[k];
        }
    snprintf(other, sizeof other, "signal %d", sig);
    return other;
}

/* ---- watchdog ------------------------------------------------------------ */

static struct {
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    double timeout;
    int rank;
    char host[64];
    atomic_uint_fast64_t progress;
    _Atomic(const char *) phase;
    atomic_int armed;
    atomic_int_fast64_t step;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .phase = "start-up"};

void dt_watch(const char *phase)
{
    atomic_store_explicit(&W.phase, phase, memory_order_relaxed);
    atomic_fetch_add_explicit(&W.progress, 1, memory_order_relaxed);
    atomic_store_explicit(&W.armed, 1, memory_order_release);
}

void dt_watch_step(int64_t step) { atomic_store_explicit(&W.step, step, memory_order_relaxed); }

void dt_watch_pause(const char *phase)
{
    atomic_store_explicit(&W.phase, phase, memory_order_relaxed);
    atomic_store_explicit(&W.armed, 0, memory_order_release);
    atomic_fetch_add_explicit(&W.progress, 1, memory_order_relaxed);
}

static DT_NORETURN void fire(double stalled)
{
    char msg[512];
    const char *phase = atomic_load(&W.phase);
    int n = snprintf(msg, sizeof msg,
                     "dtrain: error: rank %d made no progress for %.0f s in phase '%s' at step %lld (host %s, "
                     "--step-timeout %g); a rank it waits for is stopped, stuck or gone; ending the job (status %d)\n",
                     W.rank, stalled, phase, (long long)atomic_load(&W.step), W.host, W.timeout, DT_EXIT_STALLED);
    /* write(2), not stdio: the main thread may hold stdio's locks */
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    /* Ends every thread of this process at once. MPI_Abort is not allowed from
     * this thread (MPI_THREAD_FUNNELED); the launcher notices a rank that ends
     * without MPI_Finalize and ends the others. */
    _exit(DT_EXIT_STALLED);
}

static void *watch_main(void *arg)
{
    (void)arg;
    double period = W.timeout / 10;
    if (period > 1.0) period = 1.0;
    if (period < 0.05) period = 0.05;
    uint_fast64_t seen = atomic_load(&W.progress);
    double stalled = 0, last = dt_now();
    pthread_mutex_lock(&W.mu);
    while (!W.quit) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double when = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + period;
        ts.tv_sec = (time_t)when;
        ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&W.cv, &W.mu, &ts);
        if (W.quit) break;
        double t = dt_now(), dt = t - last;
        last = t;
        /* a much later wake-up means this whole process was stopped (SIGSTOP,
         * a suspended job) or starved: that time is not the peers' fault */
        if (dt > 2 * period) dt = period;
        uint_fast64_t p = atomic_load(&W.progress);
        if (p != seen || !atomic_load_explicit(&W.armed, memory_order_acquire)) {
            seen = p;
            stalled = 0;
            continue;
        }
        stalled += dt;
        if (stalled >= W.timeout) fire(stalled);
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

void dt_watchdog_start(double timeout_s, int rank)
{
    if (W.running || timeout_s <= 0) return;
    W.timeout = timeout_s;
    W.rank = rank;
    W.quit = 0;
    if (gethostname(W.host, sizeof W.host) != 0) snprintf(W.host, sizeof W.host, "?");
    W.host[sizeof W.host - 1] = '\0';
    atomic_store(&W.armed, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&W.cv, &ca);
    pthread_condattr_destroy(&ca);
    /* the thread is born with every signal blocked, so stop signals reach the main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&W.thread, NULL, watch_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) DT_FATAL("cannot start the watchdog thread: %s", strerror(rc));
    W.running = 1;
}

void dt_watchdog_stop(void)
{
    if (!W.running) return;
    pthread_mutex_lock(&W.mu);
    W.quit = 1;
    pthread_cond_signal(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(W.thread, NULL);
    pthread_cond_destroy(&W.cv);
    W.running = 0;
}
