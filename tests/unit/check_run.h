/* Running a Check suite the same way in every unit test program. */
#ifndef DTRAIN_CHECK_RUN_H
#define DTRAIN_CHECK_RUN_H

#include <check.h>

/* Run s with the normal report; returns the number of failed tests. */
int dt_check_run(Suite *s);

#endif
