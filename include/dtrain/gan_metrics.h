/* gan_metrics: how well a translation recolors a digit and keeps its shape (SPEC model 4). */
#ifndef DTRAIN_GAN_METRICS_H
#define DTRAIN_GAN_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The palette index nearest (Euclidean) to the mean RGB of the image's
 * foreground (pixels whose largest channel exceeds 0.3), or -1 when the image
 * has no foreground. img (3,28,28) in [0,1]. */
int dt_dominant_color(const float *img);

/* Share of n translations (n,3,28,28) whose dominant color is target[i];
 * an image without foreground counts as wrong. */
double dt_color_accuracy(const float *imgs, const uint8_t *target, size_t n);

/* Pearson correlation of the intensities (largest channel) of src and dst
 * (3,28,28); 0 when either is constant. */
double dt_shape_correlation(const float *src, const float *dst);
/* Its mean over n image pairs. */
double dt_shape_score(const float *src, const float *dst, size_t n);

#endif
