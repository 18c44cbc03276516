/* The exact messages strategy of the optimizer step (step_gather.c): what
 * step.c calls. */
#ifndef DTRAIN_STEP_GATHER_H
#define DTRAIN_STEP_GATHER_H

#include "dtrain/step.h"

/* For o's layers ls (all of o->p's parameters) and their buffers of x and
 * dy, max_rows rows each, on P > 1 ranks. */
struct dt_gather *dt_gather_create(dt_optim *o, int max_rows, const dt_step_layer *ls, int nl);
void dt_gather_free(struct dt_gather *gt);
/* This rank's batch rows this step (dt_step_rows: collective). */
void dt_gather_rows(dt_optim *o, int rows);
/* The layers of [from, n) are done: their gathers start. */
void dt_gather_ready(dt_optim *o, size_t from);
/* The step (dt_step_end). */
void dt_gather_step(dt_step *s);

#endif
