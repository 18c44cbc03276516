/* Color accuracy and shape score of translated digits. */
#include "dtrain/gan_metrics.h"

#include <math.h>

#include "dtrain/data.h"

int dt_dominant_color(const float *img)
{
    double sum[3] = {0, 0, 0};
    long n = 0;
    for (int i = 0; i < DT_PLANE; i++) {
        float r = img[i], g = img[DT_PLANE + i], b = img[2 * DT_PLANE + i];
        float mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
        if (mx > 0.3f) {
            sum[0] += r;
            sum[1] += g;
            sum[2] += b;
            n++;
        }
    }
    if (n == 0) return -1;
    int best = 0;
    double bestd = INFINITY;
    for (int c = 0; c < 10; c++) {
        double d = 0;
        for (int k = 0; k < 3; k++) {
            double e = sum[k] / (double)n - dt_palette[c][k];
            d += e * e;
        }
        if (d < bestd) bestd = d, best = c;
    }
    return best;
}

double dt_color_accuracy(const float *imgs, const uint8_t *target, size_t n)
{
    if (n == 0) return 0;
    size_t right = 0;
    for (size_t i = 0; i < n; i++) right += dt_dominant_color(imgs + i * 3 * DT_PLANE) == (int)target[i];
    return (double)right / (double)n;
}

static void intensity(double *v, const float *img)
{
    for (int i = 0; i < DT_PLANE; i++) {
        float r = img[i], g = img[DT_PLANE + i], b = img[2 * DT_PLANE + i];
        v[i] = r > g ? (r > b ? r : b) : (g > b ? g : b);
    }
}

double dt_shape_correlation(const float *src, const float *dst)
{
    double a[DT_PLANE], b[DT_PLANE], ma = 0, mb = 0;
    intensity(a, src);
    intensity(b, dst);
    for (int i = 0; i < DT_PLANE; i++) ma += a[i], mb += b[i];
    ma /= DT_PLANE;
    mb /= DT_PLANE;
    double sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < DT_PLANE; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
}

double dt_shape_score(const float *src, const float *dst, size_t n)
{
    if (n == 0) return 0;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += dt_shape_correlation(src + i * 3 * DT_PLANE, dst + i * 3 * DT_PLANE);
    return s / (double)n;
}
