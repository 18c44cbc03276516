/* The palette and coloring of grey digits (SPEC, "Data: colored MNIST"). */
#include <math.h>

#include "dtrain/data.h"

const float dt_palette[10][3] = {
    {1, 0, 0},    /* 0 red */
    {0, 1, 0},    /* 1 green */
    {0, 0, 1},    /* 2 blue */
    {1, 1, 0},    /* 3 yellow */
    {1, 0, 1},    /* 4 magenta */
    {0, 1, 1},    /* 5 cyan */
    {1, .5f, 0},  /* 6 orange */
    {.5f, 0, 1},  /* 7 violet */
    {.5f, 1, 0},  /* 8 lime */
    {1, 1, 1},    /* 9 white */
};

const char *const dt_palette_names[10] = {"red",    "green",  "blue",   "yellow", "magenta",
                                          "cyan",   "orange", "violet", "lime",   "white"};

/* grey (784) -> out (3,28,28). round(g*c*255) with g = grey/255 is
 * round(grey*c); grey*c is exact in double for c in {0, .5, 1}, so halves
 * (odd grey times .5) round up exactly. */
void dt_colorize(uint8_t *out, const uint8_t *grey, const float c[3])
{
    for (int k = 0; k < 3; k++) {
        double ck = c[k] < 0 ? 0 : c[k] > 1 ? 1 : c[k];
        uint8_t lut[256];
        for (int v = 0; v < 256; v++) lut[v] = (uint8_t)floor((double)v * ck + 0.5);
        uint8_t *o = out + (size_t)k * DT_PLANE;
        for (int i = 0; i < DT_PLANE; i++) o[i] = lut[grey[i]];
    }
}
