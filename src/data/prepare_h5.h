/* What dt_prepare (prepare.c) writes with: prepare_h5.c. Each returns -1 (or
 * a negative hid_t) on failure. */
#ifndef DTRAIN_PREPARE_H5_H
#define DTRAIN_PREPARE_H5_H

#include <hdf5.h>
#include <stdint.h>

/* One split to write: n images taken from the source set. */
typedef struct {
    size_t n;
    const uint8_t *grey;   /* source grey images (all of them) */
    const uint8_t *digit;  /* source labels */
    const uint32_t *src;   /* (n) source image of each split image */
    uint8_t *color;        /* (n) palette index of each split image */
    const uint32_t *index; /* (n) written as source_index */
} split_spec;

/* attributes of loc: one value, or n strings */
int dt_prep_attr_i64(hid_t loc, const char *name, int64_t v);
int dt_prep_attr_u64(hid_t loc, const char *name, uint64_t v);
int dt_prep_attr_strings(hid_t loc, const char *name, const char *const *v, size_t n);
int dt_prep_attr_string(hid_t loc, const char *name, const char *v);
/* a 1-D uint8 dataset of n values */
int dt_prep_write_u8(hid_t loc, const char *name, const uint8_t *v, size_t n);
/* the group at path, with its parents (caller closes) */
hid_t dt_prep_make_group(hid_t file, const char *path);
/* images [n,3,28,28] chunked, shuffle + deflate; digits, colors, source_index */
int dt_prep_write_split(hid_t file, const char *path, const split_spec *s);

#endif
