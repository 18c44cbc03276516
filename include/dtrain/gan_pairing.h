/* gan_pairing: which color of one CycleGAN domain goes with which color of the
 * other, found from the training images alone (no labels), and label-free
 * health figures of a translation.
 *
 * Each domain's images are grouped by their color (the foreground's mean of
 * pixel / its largest channel, as dt_image_color); each group's shapes are
 * averaged into one intensity image; the groups of the two domains are then
 * paired by a minimum-cost assignment on the distances between those mean
 * shapes. In colored MNIST each domain's colors mark its digits, so the mean
 * shapes are the ten mean digits and the pairing is the digits' recoloring. */
#ifndef DTRAIN_GAN_PAIRING_H
#define DTRAIN_GAN_PAIRING_H

#include <stddef.h>
#include <stdint.h>

#define DT_PAIR_MAXC 16     /* colors per domain at most */
#define DT_PAIR_TOL2 0.02   /* squared distance within which two colors are one */
#define DT_PAIR_MATCH2 0.05 /* squared distance within which an image has a domain's color */
#define DT_PAIR_MIN_SHARE 0.005 /* a color held by fewer images is dropped as noise */

typedef struct {
    int nc[2];                        /* colors of domain A (0) and B (1) */
    float color[2][DT_PAIR_MAXC][3];  /* each color, from the images (mean chroma) */
    double share[2][DT_PAIR_MAXC];    /* its share of the training images that have a kept color */
    int to[2][DT_PAIR_MAXC];          /* color i of domain X goes to color to[X][i] of 1 - X */
    double cost[DT_PAIR_MAXC];        /* A color i's mean-shape distance to its partner */
    int ok;                           /* 0: no pairing (nothing learned from it) */
} dt_pairing;

/* The color of an image (3,28,28) in [0,1]: the mean over its foreground
 * (largest channel above 0.3) of each pixel divided by its largest channel.
 * Returns the foreground's pixel count (0: no foreground; c is then 0). */
size_t dt_image_color(double c[3], const float *img);

/* The index of domain X's color nearest to c within DT_PAIR_MATCH2, or -1. */
int dt_pairing_nearest(const dt_pairing *p, int X, const double c[3]);

/* The index of domain X's color nearest (Euclidean) to the mean RGB of the
 * image's foreground, as the color accuracy judges a translation but among
 * the colors the pairing found; -1 without foreground. Unlike the chroma it
 * sees a translation too dim or too pale to pass for its color. */
int dt_pairing_nearest_rgb(const dt_pairing *p, int X, const float *img);

/* Accumulates one domain's images into groups: call dt_pair_groups_add for
 * every training image (floats, (3,28,28)), then dt_pairing_from_groups. */
typedef struct {
    int n;
    double color_sum[DT_PAIR_MAXC][3], count[DT_PAIR_MAXC];
    float lead[DT_PAIR_MAXC][3]; /* the first color of each group */
    double *shape_sum;           /* (DT_PAIR_MAXC, 784) */
    double images, unplaced;     /* images seen; images in no group (a 17th color) */
} dt_pair_groups;

void dt_pair_groups_init(dt_pair_groups *gr);
void dt_pair_groups_add(dt_pair_groups *gr, const float *img);
void dt_pair_groups_free(dt_pair_groups *gr);

/* The pairing of two domains' groups. Returns 0 with p->ok = 1, or -1 (p->ok
 * = 0, the reason in dt_lasterr) when the domains have different numbers of
 * colors, no color, or too many. */
int dt_pairing_from_groups(dt_pairing *p, const dt_pair_groups *a, const dt_pair_groups *b);

/* Minimum-cost assignment of an n x n cost matrix (row-major, n <= 64): to[i]
 * is row i's column. Hungarian method, O(n^3); ties go to the lower index. */
void dt_assign_min_cost(const double *cost, int n, int *to);

/* Label-free health of translations into domain T, summed over images (all
 * doubles, so ranks can add them up as one array). */
typedef struct {
    double hist[DT_PAIR_MAXC + 1];  /* translations per color of T; the last slot: none of them */
    double n, agree;                /* translations, and those whose mean RGB is nearest the partner of their
                                       source's color (dt_pairing_nearest_rgb) */
    double from_n[DT_PAIR_MAXC];    /* per color of the source domain: translations */
    double from_agree[DT_PAIR_MAXC]; /* and those in its partner color */
} dt_pair_tally;

/* Adds n translations out (3,28,28) of sources src (domain 1 - T) into t. */
void dt_pairing_tally(const dt_pairing *p, int T, const float *src, const float *out, size_t n, dt_pair_tally *t);

/* The total-variation distance between a tally's colors and the shares of T's
 * colors among its real training images: near 0 when the translations use T's
 * colors in the real proportions, 1 when they never do. */
double dt_pairing_hist_tv(const dt_pairing *p, int T, const dt_pair_tally *t);

#endif
