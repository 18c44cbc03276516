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

void dt_cat_analyze(dt_cat_analysis *a, const uint8_t *codes, const uint8_t *digits, const uint8_t *colors,
                    size_t n, int N, int K);
void dt_cat_analysis_free(dt_cat_analysis *a);
/* dir/latents.md (tables) and dir/latent_mi.csv; -1 with the reason. */
int dt_cat_analysis_write(const dt_cat_analysis *a, const char *model, const char *dir);

#endif
