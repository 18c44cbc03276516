/* RGB canvas, drawing primitives and atomic PNG writing. See include/dtrain/plot.h. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/core.h"
#include "dtrain/plot.h"

static const uint8_t white[3] = {255, 255, 255};

dt_image *dt_image_new(int w, int h, const uint8_t bg[3])
{
    if (w < 1 || h < 1 || w > DT_IMAGE_MAX || h > DT_IMAGE_MAX) {
        dt_seterr("image size %d x %d out of range (1..%d)", w, h, DT_IMAGE_MAX);
        return NULL;
    }
    if (!bg) bg = white;
    dt_image *im = dt_alloc(sizeof *im);
    im->w = w;
    im->h = h;
    im->px = dt_alloc((size_t)w * (size_t)h * 3);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) memcpy(im->px + 3 * i, bg, 3);
    return im;
}

void dt_image_free(dt_image *im)
{
    if (!im) return;
    dt_free(im->px);
    dt_free(im);
}

/* ---- PNG ------------------------------------------------------------------ */

/* libpng reports errors through a callback that must not return: keep the
 * message and jump back into write_png. */
typedef struct {
    jmp_buf jmp;
    char msg[200];
} png_err_ctx;

static void png_error_fn(png_structp png, png_const_charp msg)
{
    png_err_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    longjmp(ctx->jmp, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Encode im into the open file f; 0 or -1 with ctx->msg set. */
static int encode_png(FILE *f, const dt_image *im, png_err_ctx *ctx)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, png_error_fn,
                                              png_warning_fn);
    if (!png) {
        snprintf(ctx->msg, sizeof ctx->msg, "png_create_write_struct failed");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(ctx->msg, sizeof ctx->msg, "png_create_info_struct failed");
        return -1;
    }
    if (setjmp(ctx->jmp)) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) png_write_row(png, im->px + (size_t)3 * im->w * y);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int dt_image_write_png(const dt_image *im, const char *path)
{
    if (!im || !im->px) return dt_seterr("%s: no image to write", path);
    size_t n = strlen(path);
    char *tmp = dt_alloc(n + 5);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);

    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        dt_free(tmp);
        return dt_seterr("cannot write %s: %s", path, strerror(e));
    }
    png_err_ctx ctx;
    ctx.msg[0] = '\0';
    int rc = encode_png(f, im, &ctx);
    if ((fflush(f) != 0 || ferror(f)) && rc == 0) {
        snprintf(ctx.msg, sizeof ctx.msg, "%s", strerror(errno));
        rc = -1;
    }
    if (fclose(f) != 0 && rc == 0) {
        snprintf(ctx.msg, sizeof ctx.msg, "%s", strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        snprintf(ctx.msg, sizeof ctx.msg, "rename from %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
        dt_seterr("cannot write %s: %s", path, ctx.msg);
    }
    dt_free(tmp);
    return rc;
}

/* ---- primitives ----------------------------------------------------------- */

static inline uint8_t *pix(dt_image *im, int x, int y)
{
    return im->px + 3 * ((size_t)y * (size_t)im->w + (size_t)x);
}

void dt_image_set(dt_image *im, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    memcpy(pix(im, x, y), rgb, 3);
}

void dt_image_blend(dt_image *im, int x, int y, const uint8_t rgb[3], float alpha)
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h || !(alpha > 0.0f)) return;
    if (alpha > 1.0f) alpha = 1.0f;
    uint8_t *p = pix(im, x, y);
    for (int k = 0; k < 3; k++) p[k] = (uint8_t)(p[k] + alpha * (rgb[k] - p[k]) + 0.5f);
}

void dt_image_fill_rect(dt_image *im, int x, int y, int w, int h, const uint8_t rgb[3])
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > im->w ? im->w : x + w, y1 = y + h > im->h ? im->h : y + h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++) memcpy(pix(im, i, j), rgb, 3);
}

void dt_image_rect(dt_image *im, int x, int y, int w, int h, const uint8_t rgb[3])
{
    if (w < 1 || h < 1) return;
    dt_image_fill_rect(im, x, y, w, 1, rgb);
    dt_image_fill_rect(im, x, y + h - 1, w, 1, rgb);
    dt_image_fill_rect(im, x, y, 1, h, rgb);
    dt_image_fill_rect(im, x + w - 1, y, 1, h, rgb);
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* Coverage is approximated by the signed distance of the pixel centre to the
 * shape's edge, which is exact enough for lines and discs a few pixels wide. */
void dt_image_line(dt_image *im, float x0, float y0, float x1, float y1,
                   const uint8_t rgb[3], float width)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1)) return;
    float hw = 0.5f * (width > 0.5f ? width : 0.5f);
    float pad = hw + 1.0f;
    int ia = (int)floorf(fminf(x0, x1) - pad), ib = (int)ceilf(fmaxf(x0, x1) + pad);
    int ja = (int)floorf(fminf(y0, y1) - pad), jb = (int)ceilf(fmaxf(y0, y1) + pad);
    if (ia < 0) ia = 0;
    if (ja < 0) ja = 0;
    if (ib > im->w) ib = im->w;
    if (jb > im->h) jb = im->h;
    float dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int j = ja; j < jb; j++)
        for (int i = ia; i < ib; i++) {
            float px = i + 0.5f - x0, py = j + 0.5f - y0;
            float t = len2 > 0.0f ? clamp01((px * dx + py * dy) / len2) : 0.0f;
            float ex = px - t * dx, ey = py - t * dy;
            float cov = clamp01(hw + 0.5f - sqrtf(ex * ex + ey * ey));
            if (cov > 0.0f) dt_image_blend(im, i, j, rgb, cov);
        }
}

void dt_image_marker(dt_image *im, float cx, float cy, float r, const uint8_t fill[3],
                     const uint8_t edge[3], float alpha)
{
    if (!isfinite(cx) || !isfinite(cy) || !(r > 0.0f)) return;
    float ro = edge ? r + 1.0f : r; /* outer radius */
    int ia = (int)floorf(cx - ro - 1), ib = (int)ceilf(cx + ro + 1);
    int ja = (int)floorf(cy - ro - 1), jb = (int)ceilf(cy + ro + 1);
    if (ia < 0) ia = 0;
    if (ja < 0) ja = 0;
    if (ib > im->w) ib = im->w;
    if (jb > im->h) jb = im->h;
    for (int j = ja; j < jb; j++)
        for (int i = ia; i < ib; i++) {
            float ex = i + 0.5f - cx, ey = j + 0.5f - cy;
            float d = sqrtf(ex * ex + ey * ey);
            float co = clamp01(ro + 0.5f - d);
            if (co <= 0.0f) continue;
            uint8_t c[3];
            if (edge) {
                float ci = clamp01(r + 0.5f - d); /* fill over the ring */
                for (int k = 0; k < 3; k++)
                    c[k] = (uint8_t)(edge[k] + ci * (fill[k] - edge[k]) + 0.5f);
            } else {
                memcpy(c, fill, 3);
            }
            dt_image_blend(im, i, j, c, alpha * co);
        }
}

void dt_image_disc(dt_image *im, float cx, float cy, float r, const uint8_t rgb[3],
                   float alpha)
{
    dt_image_marker(im, cx, cy, r, rgb, NULL, alpha);
}

int dt_image_blit_chw(dt_image *im, int x, int y, const float *chw, int c, int h, int w,
                      int scale)
{
    if ((c != 1 && c != 3) || h < 1 || w < 1 || scale < 1 || !chw)
        return dt_seterr("blit: bad image shape (%d,%d,%d) x%d (c must be 1 or 3)", c, h, w,
                         scale);
    size_t plane = (size_t)h * (size_t)w;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            uint8_t rgb[3];
            for (int k = 0; k < 3; k++) {
                float v = chw[(c == 3 ? (size_t)k * plane : 0) + (size_t)j * w + i];
                if (!(v > 0.0f)) v = 0.0f; /* also NaN */
                if (v > 1.0f) v = 1.0f;
                rgb[k] = (uint8_t)(v * 255.0f + 0.5f);
            }
            dt_image_fill_rect(im, x + i * scale, y + j * scale, scale, scale, rgb);
        }
    return 0;
}
