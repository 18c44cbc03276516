/* Stop signals (parsing, flag only, default action given back) and the step
 * watchdog (fires with rank, phase and step; quiet while there is progress,
 * while paused, and across a stop of the whole process). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_run.h"
#include "dtrain/core.h"
#include "dtrain/guard.h"

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

START_TEST(parses_signal_lists)
{
    int sigs[8];
    ck_assert_int_eq(dt_stop_signals_parse("USR1,TERM", sigs, 8), 2);
    ck_assert_int_eq(sigs[0], SIGUSR1);
    ck_assert_int_eq(sigs[1], SIGTERM);
    ck_assert_int_eq(dt_stop_signals_parse("sigusr2,Hup,INT,USR2", sigs, 8), 3); /* duplicates once */
    ck_assert_int_eq(sigs[0], SIGUSR2);
    ck_assert_int_eq(sigs[1], SIGHUP);
    ck_assert_int_eq(sigs[2], SIGINT);
    ck_assert_int_eq(dt_stop_signals_parse("none", sigs, 8), 0);
    ck_assert_int_eq(dt_stop_signals_parse("KILL", sigs, 8), -1);
    ck_assert_msg(strstr(dt_lasterr(), "unknown signal 'KILL'"), "%s", dt_lasterr());
    ck_assert_int_eq(dt_stop_signals_parse("USR1,,TERM", sigs, 8), -1);
    ck_assert_int_eq(dt_stop_signals_parse("", sigs, 8), -1);
    ck_assert_str_eq(dt_signal_name(SIGUSR1), "SIGUSR1");
    ck_assert_str_eq(dt_signal_name(SIGTERM), "SIGTERM");
}
END_TEST

START_TEST(signal_sets_the_flag_only)
{
    ck_assert_int_eq(dt_stop_signals_install("USR2,TERM"), 0);
    dt_stop_defer(1);
    ck_assert_int_eq(dt_stop_signal_first(), SIGUSR2);
    ck_assert_int_eq(dt_stop_requested(), 0);
    raise(SIGTERM); /* would end the process without the handler */
    ck_assert_int_eq(dt_stop_requested(), SIGTERM);
    ck_assert_int_eq(dt_stop_signals_install("bogus"), -1);
}
END_TEST

START_TEST(default_action_given_back)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dt_stop_signals_install("USR1");
        dt_stop_signals_install("none");
        raise(SIGUSR1);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1);
}
END_TEST

/* Run body in a child with stderr into a pipe; its status and what it wrote. */
static int in_child(void (*body)(void), char *err, size_t len)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDERR_FILENO);
        body();
        _exit(0);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && (r = read(fd[0], err + n, len - 1 - n)) > 0) n += (size_t)r;
    err[n] = '\0';
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void blocked_then_signalled(void)
{
    dt_stop_signals_install("TERM");
    int fd[2];
    if (pipe(fd) != 0) _exit(1);
    if (fork() == 0) { /* the signal comes while the parent is blocked in a read no data will end */
        nap(0.2);
        kill(getppid(), SIGTERM);
        _exit(0);
    }
    char c;
    ssize_t r = read(fd[0], &c, 1); /* SA_RESTART alone would block here for ever */
    (void)r;
    _exit(1);
}

static void deferred_then_steps_end(void)
{
    dt_stop_signals_install("USR1");
    dt_stop_defer(1);
    raise(SIGUSR1); /* inside the steps: the flag only */
    if (dt_stop_requested() != SIGUSR1) _exit(1);
    dt_stop_set_speaker(0);
    dt_stop_defer(0); /* the steps end with the signal pending: ends here, quietly */
    _exit(1);
}

START_TEST(signal_outside_the_steps_ends_at_once)
{
    char err[1024];
    double t0 = dt_now();
    ck_assert_int_eq(in_child(blocked_then_signalled, err, sizeof err), DT_EXIT_REQUEUE);
    ck_assert_msg(dt_now() - t0 < 2.0, "took %.2f s", dt_now() - t0);
    ck_assert_msg(strstr(err, "dtrain: stopped by SIGTERM outside the training steps"), "%s", err);
    ck_assert_int_eq(in_child(deferred_then_steps_end, err, sizeof err), DT_EXIT_REQUEUE);
    ck_assert_str_eq(err, "");
}
END_TEST

static void stalls(void)
{
    dt_watchdog_start(0.3, 7);
    dt_watch_step(57);
    dt_watch("gradient exchange");
    nap(3); /* the watchdog ends the process long before */
}

START_TEST(watchdog_fires_naming_rank_phase_step)
{
    char err[1024];
    double t0 = dt_now();
    ck_assert_int_eq(in_child(stalls, err, sizeof err), DT_EXIT_STALLED);
    double took = dt_now() - t0;
    ck_assert_msg(took > 0.25 && took < 2.0, "fired after %.2f s", took);
    ck_assert_msg(strstr(err, "dtrain: error: rank 7 made no progress for") && strstr(err, "'gradient exchange'") &&
                      strstr(err, "at step 57"),
                  "%s", err);
}
END_TEST

static void progresses_then_pauses(void)
{
    dt_watchdog_start(0.3, 0);
    double t0 = dt_now();
    while (dt_now() - t0 < 1.2) {
        dt_watch("forward/backward");
        nap(0.05);
    }
    dt_watch_pause("evaluation"); /* long, untimed */
    nap(1.0);
    dt_watch("data loading");
    dt_watchdog_stop();
    nap(0.6); /* nothing watches any more */
}

START_TEST(watchdog_quiet_with_progress_and_paused)
{
    char err[1024];
    ck_assert_int_eq(in_child(progresses_then_pauses, err, sizeof err), 0);
    ck_assert_str_eq(err, "");
}
END_TEST

static void stopped_whole(void)
{
    dt_watchdog_start(0.5, 0);
    dt_watch("forward/backward");
    raise(SIGSTOP); /* the parent continues us 1.5 s later */
    dt_watch("forward/backward");
    dt_watchdog_stop();
}

START_TEST(watchdog_ignores_a_stop_of_the_whole_process)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        stopped_whole();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, WUNTRACED);
    ck_assert(WIFSTOPPED(st));
    nap(1.5);
    kill(pid, SIGCONT);
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("guard");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, parses_signal_lists);
    tcase_add_test(tc, signal_sets_the_flag_only);
    tcase_add_test(tc, default_action_given_back);
    tcase_add_test(tc, signal_outside_the_steps_ends_at_once);
    tcase_add_test(tc, watchdog_fires_naming_rank_phase_step);
    tcase_add_test(tc, watchdog_quiet_with_progress_and_paused);
    tcase_add_test(tc, watchdog_ignores_a_stop_of_the_whole_process);
    suite_add_tcase(s, tc);
    return dt_check_run(s) ? 1 : 0;
}
