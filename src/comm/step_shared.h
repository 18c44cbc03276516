/* The node-shared strategy of the optimizer step: what step.c calls. */
#ifndef DTRAIN_STEP_SHARED_H
#define DTRAIN_STEP_SHARED_H

#include "dtrain/step.h"

/* dt_step_share's sharing: 1 if done, 0 where the ranks cannot share memory. */
int dt_shared_create(dt_optim *o, int max_rows, const dt_step_layer *ls, int nl);
/* dt_step_unshare's part for shared params. */
void dt_shared_free(dt_optim *o);
/* The step (dt_step_end) for params shared by dt_step_share. */
void dt_shared_step(dt_step *s);
/* This rank's batch rows this step (dt_step_rows). */
void dt_shared_rows(struct dt_share *sh, int rows);
/* The layers of [from, n) are done on this rank (dt_step_ready). */
void dt_shared_ready(struct dt_share *sh, size_t n, size_t from);
/* Every rank's rows of the moments into p->m and p->v (collective). */
void dt_shared_gather_moments(dt_optim *o);

#endif
