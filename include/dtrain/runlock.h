/* runlock: one run per output folder. The lock is OUT/.dtrain.lock, taken by
 * rank 0 for the whole life of the process; the file holds the holder's
 * record (host, pid, start time, SLURM job, command line).
 *
 * Where the file system offers flock(2), the lock is flock(LOCK_EX|LOCK_NB)
 * on that file: the kernel releases it when the process ends, however it
 * ends, and the file stays with the last holder's record. Where flock is
 * refused (ENOLCK, EOPNOTSUPP, ENOSYS: NFS without a lock daemon, Lustre
 * mounted without flock) the lock is the file itself, created with
 * O_CREAT|O_EXCL: its holder refreshes its mtime while it runs and removes it
 * at exit. A file left by a holder that died is taken over when the holder
 * was on this host and its pid is gone, or when it carries this process's
 * SLURM job id (a requeued job restarted on another node); otherwise the run
 * is refused, naming the holder and the file to remove if it is really gone.
 *
 * DTRAIN_LOCK=file uses the exclusive file even where flock works (tests);
 * DTRAIN_LOCK_REFRESH=SEC sets the refresh period (default 60 s). */
#ifndef DTRAIN_RUNLOCK_H
#define DTRAIN_RUNLOCK_H

/* The lock file's name inside the folder. */
#define DT_RUNLOCK_NAME ".dtrain.lock"

/* Take the lock of folder dir (which exists) for this process; command is
 * the command line recorded for whoever finds the folder taken. 0, or -1
 * with dt_lasterr naming the holder (host, pid, command, since when) and
 * what to do. A folder this process already holds is taken again at once. */
int dt_runlock_take(const char *dir, const char *command);

#endif
