/* train: the data-parallel optimizer step shared by every model. */
#ifndef DTRAIN_TRAIN_H
#define DTRAIN_TRAIN_H

#include "dtrain/dist.h"
#include "dtrain/nn.h"

/* After backward on every rank (gradients already divided by the global
 * batch): sum the gradients over the ranks and take one Adam step, the same
 * on every rank. Sharded: a reduce-scatter leaves each rank the summed
 * gradient of its block of the parameters, each rank updates its block
 * (Adam's work split P ways), and an allgather shares the new weights.
 * The gradient block is left zeroed for the next step.
 * Adam's moments stay sharded: call dt_train_gather_moments before they are
 * read whole (checkpoints; nothing to do for shared params). */
void dt_train_step(dt_adam *a, dt_params *p);
void dt_train_gather_moments(dt_params *p);
/* Where all ranks live on one node, move p's weights, moments and gradients
 * into memory they share (collective; call once, after the weights and
 * moments are initialized or loaded, the same on every rank, and before
 * training): the step then needs no messages: ranks sum parts of the
 * gradient straight from each other's memory and update those parts of the
 * single copy of weights and moments. Otherwise (one rank, several nodes,
 * DTRAIN_EXCHANGE=messages) nothing changes. Training gives the same
 * results either way up to float rounding. From then on only the step may
 * write p->w, p->m and p->v. */
void dt_train_share(dt_params *p);
/* How the step exchanges gradients for p, for reports. */
const char *dt_train_exchange(const dt_params *p);
/* The same over a group of ranks (NULL: all), e.g. one CycleGAN domain. */
void dt_train_step_in(dt_comm *g, dt_adam *a, dt_params *p);

/* The same step, told while backward runs which gradients are final:
 *   dt_step_begin(&s, g, a, p);
 *   ... backward writes the gradients of [from, n) ...  dt_step_ready(&s, from);
 *   ... the rest of backward ...                         dt_step_end(&s);
 * dt_step_ready says that on this rank the gradients of [from, n) are final
 * and the weights there will not be read again before the next forward.
 * Where the weights are node-shared, a rank that reaches dt_step_end while
 * others are still in backward starts updating what all ranks have made
 * final, and takes a larger part of the updates (src/models/train.c);
 * otherwise dt_step_end is dt_train_step_in. The same bits either way.
 * secs: time spent in dt_step_end (exchange, updates and waits). */
typedef struct {
    dt_comm *g;
    dt_adam *a;
    dt_params *p;
    dt_adam_k k;
    double secs;
} dt_step;
void dt_step_begin(dt_step *s, dt_comm *g, dt_adam *a, dt_params *p);
void dt_step_ready(dt_step *s, size_t from);
void dt_step_end(dt_step *s);
void dt_train_gather_moments_in(dt_comm *g, dt_params *p);

#endif
