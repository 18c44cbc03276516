/* guard: stop signals turned into a flag, and the step watchdog.
 *
 * Stop signals. Inside the training steps (dt_stop_defer(1)) the handler
 * only records the signal in a volatile sig_atomic_t; the training loop reads
 * the flag at each step boundary, the ranks agree on it in a reduction they
 * do anyway, write a checkpoint and exit with DT_EXIT_REQUEUE (see runctl.h).
 * Anywhere else (start-up, preparing or opening data, a blocked open of a
 * FIFO, the final evaluation and pictures) no step boundary will come to read
 * it: the handler prints one line and ends the process at once with
 * DT_EXIT_REQUEUE; the launcher takes the other ranks down.
 *
 * Watchdog. A thread per process watches a progress counter that the main
 * thread bumps whenever it enters a phase of the step (dt_watch). If the
 * counter stays still for the timeout while armed, the thread prints which
 * rank, phase and step, and ends the process with DT_EXIT_STALLED; the
 * launcher then takes the rest of the job down. A rank that is stopped
 * cannot notice anything itself: its peers, blocked in a collective with it,
 * are the ones that fire. The thread makes no MPI call. Time during which the
 * whole process was stopped (SIGSTOP, a suspended job) does not count. */
#ifndef DTRAIN_GUARD_H
#define DTRAIN_GUARD_H

#include <stdint.h>

/* ---- stop signals -------------------------------------------------------- */

/* The signals a stop list may name: USR1 USR2 TERM INT HUP. */
#define DT_STOP_SIGNALS_DEFAULT "USR1,TERM"

/* Parse "USR1,TERM" (names with or without SIG, any case, comma separated;
 * "none" for no signal) into sigs[0..n). Returns n, or -1 with the reason. */
int dt_stop_signals_parse(const char *list, int *sigs, int max);
/* Catch the listed signals (flag only, SA_RESTART); signals of the candidate
 * set that an earlier call caught and this list leaves out get their default
 * action back. -1 with the reason on a bad list (nothing changed). */
int dt_stop_signals_install(const char *list);
/* The first signal of the installed list (0 if none). */
int dt_stop_signal_first(void);
/* Whether a step boundary will read the flag (1) or a stop signal ends the
 * process at once (0, the default). Turning it off with a signal already
 * received ends the process then. */
void dt_stop_defer(int on);
/* Whether this process prints the line when a signal ends it at once (rank 0
 * does, the others stay quiet; default 1). */
void dt_stop_set_speaker(int on);
/* The last stop signal received (0: none). Never cleared. */
int dt_stop_requested(void);
/* "SIGUSR1"; "signal 40" for others. */
const char *dt_signal_name(int sig);

/* ---- watchdog ------------------------------------------------------------ */

/* Start the thread (timeout_s <= 0: no thread, the calls below stay cheap
 * no-ops in effect). rank is named in the message. Disarmed until dt_watch. */
void dt_watchdog_start(double timeout_s, int rank);
/* Stop and join the thread (safe when none runs). */
void dt_watchdog_stop(void);
/* The main thread enters phase (a string that lives forever) of the step:
 * progress, and the watchdog is armed. */
void dt_watch(const char *phase);
/* The step number named in the message. */
void dt_watch_step(int64_t step);
/* An untimed phase (evaluation, checkpoint, pictures): disarmed until the
 * next dt_watch. */
void dt_watch_pause(const char *phase);

#endif
