/* vae_analysis: what categorical latent variables captured on the test set. */
#ifndef DTRAIN_VAE_ANALYSIS_H
#define DTRAIN_VAE_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

/* codes (n, N) = argmax over K of q (n, N, K) */
void dt_cat_argmax(uint8_t *codes, const float *q, size_t n, int N, int K);

typedef struct {
    int N, K;
    long *by_digit, *by_color; /* (N, K, 10) counts of argmax category against label */
    double *nmi_digit, *nmi_color; /* (N) normalized mutual information */
    int *in_use;                   /* (N) categories that are some image's argmax */
    int all_in_use;
} dt_cat_analysis;

/* codes (n, N) in 0..K-1, digits and colors (n) in 0..9; a value out of range,
 * N < 1 or K outside 1..256 is an internal fault (DT_FATAL): the data file's
 * labels are validated when it is opened. */
void dt_cat_analyze(dt_cat_analysis *a, const uint8_t *codes, const uint8_t *digits, const uint8_t *colors,
                    size_t n, int N, int K);
void dt_cat_analysis_free(dt_cat_analysis *a);
/* dir/latents.md (tables) and dir/latent_mi.csv; -1 with the reason. */
int dt_cat_analysis_write(const dt_cat_analysis *a, const char *model, const char *dir);

struct dt_vae;
/* The codes latent_grid.png decodes: z (G*G, m->Z), row r and column c of the
 * grid at z1 = lo[0] + (hi[0] - lo[0]) c / (G-1), z2 = hi[1] - (hi[1] - lo[1]) r / (G-1)
 * (z2 grows upwards); a categorical part (jvae) is one-hot at each variable's
 * most frequent category in a (a NULL: category 0). G >= 2; m has a continuous part. */
void dt_vae_plane_codes(float *z, const struct dt_vae *m, const dt_cat_analysis *a, const float lo[2],
                        const float hi[2], int G);

#endif
