/* lossplot.c — the loss curve as a PNG (train_loss_plot in train.h): raw per-step losses as light dots, a
 * centred moving average as a dark line, the validation loss (when there is one) as a red line with
 * markers, y axis from the smallest loss to the 99th percentile of the training losses (so a few early
 * spikes do not flatten the curve), tick labels in the built-in font. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h" // defines: mallocCheck, ls_set_error
#include "font.h"   // defines: font_draw_text, font_text_width
#include "image.h"  // defines: Image, image_write_png
#include "train.h"

#define PW 720
#define PH 400
#define ML 72 /* margins: left, right, top, bottom */
#define MR 20
#define MT 46
#define MB 40

static void put(Image *im, int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->data + ((size_t)y * im->w + x) * 3;
    p[0] = r, p[1] = g, p[2] = b;
}

static void line(Image *im, int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) { /* Bresenham */
        put(im, x0, y0, r, g, b);
        put(im, x0, y0 + 1, r, g, b); /* 2 px thick */
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int train_loss_plot(const char *path, const float *loss, int n, const int *vstep, const float *vloss, int nv,
                    const char *title) {
    if (n < 1) return ls_set_error("%s: no losses to plot", path);
    float *sorted = mallocCheck((size_t)n * sizeof(float)), *avg = mallocCheck((size_t)n * sizeof(float));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(loss[i])) sorted[m++] = loss[i];
    float lo = 0.0f, hi = 1.0f;
    if (m > 0) {
        qsort(sorted, (size_t)m, sizeof(float), cmp_float);
        lo = sorted[0], hi = sorted[(int)floor(0.99 * (m - 1))];
    }
    for (int i = 0; i < nv; i++) /* the validation curve always fits */
        if (isfinite(vloss[i])) lo = fminf(lo, vloss[i]), hi = fmaxf(hi, vloss[i]);
    if (!(hi > lo)) hi = lo + (lo != 0.0f ? fabsf(lo) * 0.1f : 1.0f);
    float pad = 0.05f * (hi - lo);
    lo -= pad, hi += pad;
    int win = n / 50 > 1 ? n / 50 : 1; /* moving-average half window */
    for (int i = 0; i < n; i++) {
        double s = 0;
        int c = 0;
        for (int k = i - win; k <= i + win; k++)
            if (k >= 0 && k < n && isfinite(loss[k])) s += loss[k], c++;
        avg[i] = c ? (float)(s / c) : NAN;
    }
    Image im = {PW, PH, 3, mallocCheck((size_t)PW * PH * 3)};
    memset(im.data, 255, (size_t)PW * PH * 3);
    int x0 = ML, x1 = PW - MR, y0 = MT, y1 = PH - MB;
#define X(i) (x0 + (int)lround((double)(x1 - x0) * ((n > 1) ? (double)(i) / (n - 1) : 0.5)))
#define XS(s) (x0 + (int)lround((double)(x1 - x0) * (double)(s) / n)) /* step s in 0..n (validation) */
#define Y(v) (y1 - (int)lround((double)(y1 - y0) * (((v) - lo) / (hi - lo))))
    char lab[96];
    for (int t = 0; t <= 4; t++) { /* horizontal grid lines with loss labels */
        float v = lo + (hi - lo) * (float)t / 4.0f;
        int y = Y(v);
        for (int x = x0; x <= x1; x += 2) put(&im, x, y, 220, 220, 220);
        snprintf(lab, sizeof lab, "%.4g", (double)v);
        font_draw_text(&im, x0 - 6 - font_text_width(lab, 1), y - 4, lab, 1, 60, 60, 60);
    }
    for (int t = 0; t <= 4; t++) { /* step labels */
        int i = (int)lround((double)(n - 1) * t / 4.0);
        snprintf(lab, sizeof lab, "%d", i + 1);
        int x = X(i);
        for (int y = y1; y < y1 + 4; y++) put(&im, x, y, 60, 60, 60);
        font_draw_text(&im, x - font_text_width(lab, 1) / 2, y1 + 8, lab, 1, 60, 60, 60);
    }
    font_draw_text(&im, (x0 + x1) / 2 - font_text_width("step", 1) / 2, y1 + 22, "step", 1, 60, 60, 60);
    line(&im, x0, y0, x0, y1, 0, 0, 0);
    line(&im, x0, y1, x1, y1, 0, 0, 0);
    for (int i = 0; i < n; i++) { /* raw losses: light dots (clipped to the plot) */
        if (!isfinite(loss[i])) continue;
        float v = loss[i] > hi ? hi : loss[i];
        put(&im, X(i), Y(v), 150, 180, 230);
        put(&im, X(i) + 1, Y(v), 150, 180, 230);
    }
    int px = -1, py = 0;
    for (int i = 0; i < n; i++) { /* moving average: dark line */
        if (!isfinite(avg[i])) continue;
        float v = avg[i] > hi ? hi : avg[i];
        int x = X(i), y = Y(v);
        if (px >= 0) line(&im, px, py, x, y, 20, 60, 160);
        else put(&im, x, y, 20, 60, 160);
        px = x, py = y;
    }
    px = -1;
    for (int i = 0; i < nv; i++) { /* validation loss: red line, 5×5 markers */
        if (!isfinite(vloss[i])) continue;
        int x = XS(vstep[i]), y = Y(vloss[i]);
        if (px >= 0) line(&im, px, py, x, y, 200, 30, 30);
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++) put(&im, x + dx, y + dy, 200, 30, 30);
        px = x, py = y;
    }
#undef X
#undef XS
#undef Y
    font_draw_text(&im, x0, 10, title ? title : "loss", 2, 0, 0, 0);
    snprintf(lab, sizeof lab, "dots: loss per step; line: moving average (%d steps)%s", 2 * win + 1,
             nv ? "; red: validation" : "");
    font_draw_text(&im, x1 - font_text_width(lab, 1), 32, lab, 1, 90, 90, 90);
    int rc = image_write_png(path, &im, NULL, 0);
    free(im.data), free(sorted), free(avg);
    return rc;
}
