/* What checkpoint writing (ckpt.c) and reading (ckpt_load.c) share. */
#ifndef DTRAIN_CKPT_FILE_H
#define DTRAIN_CKPT_FILE_H

#include <stdint.h>

#include "dtrain/nn.h"

#define CKPT_FORMAT 2
#define CKPT_KIND "dtrain-checkpoint"
#define CKPT_USERBLOCK 512 /* the header; HDF5's own data starts after it */

/* The user block: kind, format and the hash of what follows, then zeros. */
void dt_ckpt_header(unsigned char *ub, const char *hex);
/* the groups of a network: "params", "adam_m", "adam_v" */
extern const char *const DT_CKPT_PARTS[3];
/* p's weights (k 0), first (1) or second (2) moments */
float *dt_ckpt_part(dt_params *p, int k);
/* CRC-32 of p's three blocks */
uint32_t dt_ckpt_crc(dt_params *p);

#endif
