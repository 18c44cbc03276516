/* Parameter blocks: one allocation per network for weights, gradients and
 * Adam's moments, with named views (DESIGN principle 1). */
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/nn.h"

void dt_params_init(dt_params *p, const char *name)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
}

size_t dt_params_add(dt_params *p, const char *name, int ndim, const int *dims)
{
    DT_ASSERT(!p->w && p->nviews < DT_MAX_VIEWS && ndim >= 1 && ndim <= 4);
    dt_view *v = &p->views[p->nviews++];
    snprintf(v->name, sizeof v->name, "%s", name);
    v->ndim = ndim;
    v->n = 1;
    for (int i = 0; i < ndim; i++) {
        v->dims[i] = dims[i];
        v->n *= (size_t)dims[i];
    }
    /* keep every tensor 64-byte aligned inside the block */
    v->off = (p->n + 15) & ~(size_t)15;
    p->n = v->off + v->n;
    return v->off;
}

void dt_params_alloc(dt_params *p)
{
    DT_ASSERT(!p->w);
    p->w = dt_alloc_floats(p->n);
    p->g = dt_alloc_floats(p->n);
    p->m = dt_alloc_floats(p->n);
    p->v = dt_alloc_floats(p->n);
}

void dt_params_free(dt_params *p)
{
    dt_free(p->w);
    dt_free(p->g);
    dt_free(p->m);
    dt_free(p->v);
    p->w = p->g = p->m = p->v = NULL;
}

void dt_params_zero_grad(dt_params *p) { memset(p->g, 0, p->n * sizeof(float)); }

const dt_view *dt_params_find(const dt_params *p, const char *name)
{
    for (int i = 0; i < p->nviews; i++)
        if (strcmp(p->views[i].name, name) == 0) return &p->views[i];
    return NULL;
}
