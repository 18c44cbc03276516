/* step: the data-parallel optimizer step every model takes (src/comm/step.c). */
#ifndef DTRAIN_STEP_H
#define DTRAIN_STEP_H

#include "dtrain/comm.h"
#include "dtrain/nn.h"

/* One optimizer step, the same on every rank, after backward on every rank
 * (gradients already divided by the global batch), through one interface:
 *   dt_step_begin(&s, o);                  o: the network's optimizer (dt_optim)
 *   dt_step_rows(&s, B);                   this rank's batch rows
 *   ... backward, telling the step which layers are done (dt_step_ready) ...
 *   dt_step_end(&s);
 * The strategies behind it, chosen by dt_step_share (below), all give each
 * weight-gradient element one rank's bits, whatever the rank count:
 *   node-shared: see dt_step_share;
 *   messages (step_gather.c): every rank gathers each layer's input and
 *   output-gradient rows of the global batch, computes the gradient of its
 *   block of the parameters as one chain over the batch, updates the block
 *   (Adam's work split P ways), and an allgather shares the new weights;
 *   plain messages (step.c; DTRAIN_REDUCE=plain, or a network that did not
 *   call dt_step_share): a reduce-scatter leaves each rank the summed
 *   gradient of its block (skipped when it is already there, o->summed),
 *   whose bits depend on the rank count; the same Adam and allgather.
 * Adam's moments stay sharded in the messages strategies:
 * dt_step_gather_moments makes them whole before they are read (checkpoints). */
/* A network's optimizer: Adam's settings and step count (a) over the ranks
 * that hold the network (g; NULL: all), and the strategy of its step. The
 * network's dt_params holds what is element by element (weights, gradients,
 * Adam's moments); what the step needs beyond that lives here. */
typedef struct {
    dt_comm *g;
    dt_adam *a;
    dt_params *p;
    /* 1 when the network's backward writes (=) every gradient once per step
     * instead of adding to it: the step then need not clear them */
    int g_written;
    /* the node-shared strategy's state (step_shared.c), set by dt_step_share;
     * NULL: messages */
    struct dt_share *share;
    /* the exact messages strategy's state (step_gather.c), set by
     * dt_step_share where memory cannot be shared; NULL: plain messages */
    struct dt_gather *gather;
    /* 1 when each rank's block of p->g already holds the whole batch's
     * gradient when the step begins (the CycleGAN's recorded terms,
     * gan_exact.c): the messages step then skips its reduce-scatter */
    int summed;
    /* DTRAIN_REDUCE=plain: sum the ranks' gradients as blocks (reduce-scatter,
     * or each rank's product added), an order that depends on the rank
     * count, instead of one chain over the global batch; for measuring what
     * exactness costs, and for showing that the tests catch another order */
    int plain;
} dt_optim;
void dt_optim_init(dt_optim *o, dt_comm *g, dt_adam *a, dt_params *p, int g_written);
/* "exact" (the same bits on any rank count) or "plain" (DTRAIN_REDUCE=plain) */
const char *dt_step_reduction(void);

/* Where all ranks live on one node, the step can run in memory they share
 * (dt_step_share; collective, once, after the weights and moments are
 * initialized or loaded, the same on every rank, before training). Then:
 *   - one copy of the weights serves every rank;
 *   - the activations each layer's weight gradient needs, its input x (B,in)
 *     and output gradient dy (B,out), live there too, every rank's rows;
 *   - backward computes input gradients only, and the step computes the
 *     weight gradients: each rank takes a fixed part of every layer's rows,
 *     sums dy_q^T x_q over the ranks q in rank order (the bits of the
 *     gradient blocks summed in that order, as the messages path does) in
 *     tiles that stay in cache, and updates those rows with Adam at once,
 *     its moments of them in its own memory (dt_step_gather_moments puts
 *     every rank's in p->m and p->v, for checkpoints).
 * No gradient block crosses memory between ranks, and no rank touches
 * another's moments. Otherwise (one rank, several nodes,
 * DTRAIN_EXCHANGE=messages) nothing moves and dt_step_share returns 0;
 * on several ranks it sets up the messages strategy over the same layers
 * (not with DTRAIN_REDUCE=plain).
 * ls names the layers (all of p's parameters) and the model's buffers of
 * their x and dy, each max_rows rows: dt_step_share moves the buffers and
 * updates the pointers, so views of p must be bound again. */
typedef struct {
    size_t w_off, b_off;
    int in, out;
    float **x, **dy;
} dt_step_layer;
int dt_step_share(dt_optim *o, int max_rows, const dt_step_layer *ls, int nl);
/* Before dt_params_free of shared params: this rank's part of the sharing
 * (p's blocks then point nowhere: they live in the job's shared memory). */
void dt_step_unshare(dt_optim *o);
/* How shared params' Adam stores weights (DTRAIN_ADAM_STORES: "auto",
 * "cache" or "stream"; NULL: not shared), with the smoothed ms per step of
 * each way on this rank, for reports. */
const char *dt_step_stores(const dt_optim *o, double ms[2]);
/* How the step exchanges gradients, for reports. */
const char *dt_step_exchange(const dt_optim *o);
/* The step as backward runs:
 *   dt_step_begin(&s, o);
 *   dt_step_rows(&s, B);                  (this rank's batch)
 *   ... backward of the layers from `from` to the block's end ...
 *                                          dt_step_ready(&s, from);
 *   ... the rest of backward ...           dt_step_end(&s);
 * dt_step_hooks(&s).grads says whether backward must write p->g (1), or leave the
 * parameter gradients to dt_step_end (0: node-shared params; backward then
 * writes only input gradients). dt_step_ready says that on this rank the
 * layers of [from, n) are done: their dy are final and their weights will
 * not be read again before the next forward; a rank that reaches dt_step_end
 * while others are still in backward starts on the layers all have done.
 * Without shared params dt_step_end takes the messages step. The same bits
 * either way.
 * secs: time in dt_step_end exchanging, waiting and in Adam; grad_secs: the
 * part of it spent computing weight gradients (shared params), which is
 * backward's arithmetic done elsewhere; wait_secs: the part spent waiting for
 * other ranks (shared params). */
typedef struct {
    dt_optim *o;
    dt_adam_k k;
    double secs, grad_secs, wait_secs;
} dt_step;
void dt_step_begin(dt_step *s, dt_optim *o);
void dt_step_rows(dt_step *s, int rows);
void dt_step_ready(dt_step *s, size_t from);
void dt_step_end(dt_step *s);
/* The hooks a model's backward calls (nn.h): rows, ready and grads of s. */
dt_backward_hooks dt_step_hooks(dt_step *s);
/* Adam's moments whole in p->m and p->v on every rank of o->g (collective). */
void dt_step_gather_moments(dt_optim *o);

#endif
