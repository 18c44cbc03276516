/* The CycleGAN's measures on hand-made images with known answers. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "check_run.h"
#include "dtrain/data.h"
#include "dtrain/gan_metrics.h"

#define PLANE 784

/* a bar of grey value g in rows [r0, r1), colored c */
static void bar(float *img, int r0, int r1, float g, const float c[3])
{
    memset(img, 0, sizeof(float) * 3 * PLANE);
    for (int y = r0; y < r1; y++)
        for (int x = 10; x < 18; x++)
            for (int k = 0; k < 3; k++) img[k * PLANE + y * 28 + x] = g * c[k];
}

START_TEST(dominant_color_is_nearest_palette_entry)
{
    float img[3 * PLANE];
    for (int c = 0; c < 10; c++) {
        bar(img, 4, 24, 1.0f, dt_palette[c]);
        ck_assert_int_eq(dt_dominant_color(img), c);
    }
    /* dim strokes (largest channel 0.25) are not foreground */
    bar(img, 4, 24, 0.25f, dt_palette[0]);
    ck_assert_int_eq(dt_dominant_color(img), -1);
    /* a slightly off orange is still orange */
    const float off[3] = {0.95f, 0.55f, 0.05f};
    bar(img, 4, 24, 1.0f, off);
    ck_assert_int_eq(dt_dominant_color(img), 6);
}
END_TEST

START_TEST(color_accuracy_counts_blank_as_wrong)
{
    float imgs[4 * 3 * PLANE];
    bar(imgs, 4, 24, 1, dt_palette[3]);
    bar(imgs + 3 * PLANE, 4, 24, 1, dt_palette[5]);
    bar(imgs + 6 * PLANE, 4, 24, 1, dt_palette[5]);
    memset(imgs + 9 * PLANE, 0, sizeof(float) * 3 * PLANE); /* blank */
    uint8_t target[4] = {3, 5, 2, 0};
    ck_assert_double_eq_tol(dt_color_accuracy(imgs, target, 4), 0.5, 1e-12);
}
END_TEST

START_TEST(shape_score_ignores_color_and_sees_shape)
{
    float a[3 * PLANE], b[3 * PLANE];
    bar(a, 4, 24, 1.0f, dt_palette[0]);
    bar(b, 4, 24, 0.8f, dt_palette[2]); /* same shape, other color and brightness */
    ck_assert_double_eq_tol(dt_shape_correlation(a, b), 1.0, 1e-9);
    bar(b, 14, 27, 1.0f, dt_palette[0]); /* other shape: much lower */
    ck_assert_double_lt(dt_shape_correlation(a, b), 0.6);
    memset(b, 0, sizeof b); /* constant: defined as 0 */
    ck_assert_double_eq(dt_shape_correlation(a, b), 0.0);
    float pair_a[6 * PLANE], pair_b[6 * PLANE];
    bar(pair_a, 4, 24, 1, dt_palette[1]);
    bar(pair_b, 4, 24, 1, dt_palette[4]);
    bar(pair_a + 3 * PLANE, 4, 24, 1, dt_palette[1]);
    memset(pair_b + 3 * PLANE, 0, sizeof(float) * 3 * PLANE);
    ck_assert_double_eq_tol(dt_shape_score(pair_a, pair_b, 2), 0.5, 1e-9);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gan_metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, dominant_color_is_nearest_palette_entry);
    tcase_add_test(tc, color_accuracy_counts_blank_as_wrong);
    tcase_add_test(tc, shape_score_ignores_color_and_sees_shape);
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    return failed ? 1 : 0;
}
