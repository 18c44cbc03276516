/* report: what rank 0 tells the user and leaves on disk — progress, CSV, JSON. */
#ifndef DTRAIN_REPORT_H
#define DTRAIN_REPORT_H

#include <stdio.h>

/* Format seconds as "1h02m", "3m05s" or "12.3s". */
void dt_fmt_duration(char *buf, size_t len, double s);

/* A progress bar redrawn in place on a terminal (at most 5 times a second);
 * silent when stdout is not a terminal (the caller prints whole lines then). */
typedef struct {
    int tty;
    double last;
    int drawn;
} dt_progress;
void dt_progress_init(dt_progress *p);
/* done of total steps, plus a short status text after the bar */
void dt_progress_draw(dt_progress *p, long done, long total, const char *status);
/* Erase the bar so a normal line can follow. */
void dt_progress_clear(dt_progress *p);

/* CSV with a header; appends to an existing file with the same header (resume). */
FILE *dt_csv_open(const char *path, const char *header);

/* Flat JSON object writer: written to path.tmp, renamed by dt_json_close. */
typedef struct {
    FILE *f;
    char *path, *tmp;
    int n;
} dt_json;
int dt_json_open(dt_json *j, const char *path);
void dt_json_str(dt_json *j, const char *key, const char *value);
void dt_json_num(dt_json *j, const char *key, double value);
void dt_json_int(dt_json *j, const char *key, long long value);
/* A value already in JSON form (an array, an object). */
void dt_json_raw(dt_json *j, const char *key, const char *json);
int dt_json_close(dt_json *j);
/* src as the inside of a JSON string (quotes, backslashes, controls escaped), truncated to fit. */
void dt_json_escape(char *dst, size_t len, const char *src);

/* mkdir -p; -1 with the reason. Checks that the folder is writable. */
int dt_mkdirs(const char *path);
/* Join dir and name into a fresh string (caller frees). */
char *dt_path_join(const char *dir, const char *name);

#endif
