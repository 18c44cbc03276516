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
 * read whole (checkpoints). */
void dt_train_step(dt_adam *a, dt_params *p);
void dt_train_gather_moments(dt_params *p);
/* Where all ranks live on one node, move p's weights and
 * gradients into memory they share (collective; call once, after the
 * weights are initialized or loaded and before training): the step then
 * needs no messages: each rank sums its block of the gradient straight from
 * the others' memory and updates its block of the single weight copy.
 * Otherwise (one rank, several nodes, DTRAIN_EXCHANGE=messages) nothing
 * changes. Training gives the same results either way up to float rounding.
 * From then on only dt_train_step may write p->w. */
void dt_train_share(dt_params *p);
/* How the step exchanges gradients for p, for reports. */
const char *dt_train_exchange(const dt_params *p);
/* The same over a group of ranks (NULL: all), e.g. one CycleGAN domain. */
void dt_train_step_in(dt_comm *g, dt_adam *a, dt_params *p);
void dt_train_gather_moments_in(dt_comm *g, dt_params *p);

#endif
