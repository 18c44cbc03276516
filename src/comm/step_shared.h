/* The node-shared strategy of the optimizer step: what step.c calls. */
#ifndef DTRAIN_STEP_SHARED_H
#define DTRAIN_STEP_SHARED_H

#include "dtrain/step.h"

/* The step (dt_step_end) for params shared by dt_step_share. */
void dt_shared_step(dt_step *s);
/* This rank's batch rows this step (dt_step_rows). */
void dt_shared_rows(struct dt_share *sh, int rows);
/* The layers of [from, n) are done on this rank (dt_step_ready). */
void dt_shared_ready(struct dt_share *sh, size_t n, size_t from);
/* Every rank's rows of the moments into p->m and p->v (collective). */
void dt_shared_gather_moments(dt_optim *o);

#endif
