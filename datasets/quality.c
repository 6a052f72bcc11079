/* quality.c — see quality.h: content scoring of one image against its scene, and a style distance
 * between two sets of images. */
#include "quality.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h" // defines: LS_OK, LS_ERR, LS_MIN, LS_MAX, LS_TRY, mallocCheck, callocCheck, ls_set_error

/* Anchors of the positions (x, y) in units of the image side, as scenes.c lays them out. */
static const float anchor[SCENE_N_POSITIONS][2] = {
    {0.25f, 0.5f}, {0.75f, 0.5f}, {0.5f, 0.25f}, {0.5f, 0.75f}, {0.5f, 0.5f}};

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* ---------------- colour ---------------- */

static float srgb_linear(float c) { return c <= 0.04045f ? c / 12.92f : powf((c + 0.055f) / 1.055f, 2.4f); }
static float lab_f(float t) { return t > 0.008856f ? cbrtf(t) : 7.787f * t + 16.0f / 116.0f; }

/* sRGB → CIELAB (D65). */
static void rgb_to_lab(const uint8_t *p, float *lab) {
    float r = srgb_linear(p[0] / 255.0f), g = srgb_linear(p[1] / 255.0f), b = srgb_linear(p[2] / 255.0f);
    float fx = lab_f((0.4124f * r + 0.3576f * g + 0.1805f * b) / 0.95047f);
    float fy = lab_f(0.2126f * r + 0.7152f * g + 0.0722f * b);
    float fz = lab_f((0.0193f * r + 0.1192f * g + 0.9505f * b) / 1.08883f);
    lab[0] = 116.0f * fy - 16.0f, lab[1] = 500.0f * (fx - fy), lab[2] = 200.0f * (fy - fz);
}

static float dist2(const float *a, const float *b) {
    float d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return d0 * d0 + d1 * d1 + d2 * d2;
}

static int nearest_lab(const float *lab) {
    int best = 0;
    float bd = 1e30f;
    for (int c = 0; c < SCENE_N_COLOURS; c++) {
        float ref[3];
        rgb_to_lab(scene_colour_rgb[c], ref);
        float d = dist2(lab, ref);
        if (d < bd) bd = d, best = c;
    }
    return best;
}

int quality_nearest_colour(const uint8_t *rgb) {
    float lab[3];
    rgb_to_lab(rgb, lab);
    return nearest_lab(lab);
}

/* HSV hue in degrees [0, 360); *chroma = max − min and *value = max (0..255). */
static float hue(const uint8_t *p, int *chroma, int *value) {
    int r = p[0], g = p[1], b = p[2];
    int mx = LS_MAX(r, LS_MAX(g, b)), mn = LS_MIN(r, LS_MIN(g, b)), c = mx - mn;
    *chroma = c, *value = mx;
    if (c == 0) return 0.0f;
    float h = mx == r ? (float)(g - b) / c : mx == g ? 2.0f + (float)(b - r) / c : 4.0f + (float)(r - g) / c;
    h *= 60.0f;
    return h < 0.0f ? h + 360.0f : h;
}

/* A pixel with a reliable hue: clearly coloured (chroma at least cmin, which the image's noise raises),
 * not near grey or near black. */
static int chromatic(int chroma, int value, int cmin) { return chroma >= cmin && chroma * 4 >= value; }

/* The chromatic named colour (not white/black) nearest in hue. */
static int nearest_hue(float h) {
    int best = -1;
    float bd = 1e30f;
    for (int c = 0; c < SCENE_N_COLOURS; c++) {
        int ch, v;
        float hc = hue(scene_colour_rgb[c], &ch, &v), d = fabsf(h - hc);
        if (!chromatic(ch, v, 16)) continue;
        d = fminf(d, 360.0f - d);
        if (d < bd) bd = d, best = c;
    }
    return best;
}

/* ---------------- background and foreground ---------------- */

static int on_border(int x, int y, int size) { return x < 2 || y < 2 || x >= size - 2 || y >= size - 2; }

/* Pixel noise (~ its standard deviation in RGB units): the median over the 2-px border of the mean
 * absolute difference between horizontal neighbours. */
static float pixel_noise(const uint8_t *rgb, int size) {
    float *d = mallocCheck((size_t)size * 8 * sizeof(float)), v;
    int n = 0;
    for (int y = 0; y < size; y++)
        for (int x = 0; x + 1 < size; x++) {
            if (!on_border(x, y, size) && !on_border(x + 1, y, size)) continue;
            const uint8_t *p = rgb + 3 * (y * size + x);
            d[n++] =
                (fabsf((float)p[0] - p[3]) + fabsf((float)p[1] - p[4]) + fabsf((float)p[2] - p[5])) / 3.0f;
        }
    qsort(d, (size_t)n, sizeof(float), cmp_float);
    v = d[n / 2];
    free(d);
    return v;
}

/* The named colour of the background's hue: the majority hue of the border when most of it is chromatic,
 * else -1. Objects never have the background's colour, so such votes are the background bleeding in. */
static int background_hue(const uint8_t *rgb, int size, int cmin) {
    int votes[SCENE_N_COLOURS] = {0}, n = 0, chrom = 0, best = 0;
    for (int i = 0; i < size * size; i++) {
        int c, v;
        if (!on_border(i % size, i / size, size)) continue;
        float h = hue(rgb + 3 * i, &c, &v);
        n++;
        if (chromatic(c, v, cmin)) votes[nearest_hue(h)]++, chrom++;
    }
    for (int c = 1; c < SCENE_N_COLOURS; c++)
        if (votes[c] > votes[best]) best = c;
    return chrom * 2 >= n ? best : -1;
}

#define BG_MODES 4
#define BG_RADIUS 12.0f /* ΔE within which border pixels belong to one background mode */
#define FG_MIN_DE 6.0f  /* a foreground pixel is at least this far from every mode */

typedef struct {
    float mode[BG_MODES][3]; /* CIELAB; mode[0] the most common */
    int n;
    float thr; /* ΔE from the nearest mode above which a pixel is foreground */
} Background;

/* ΔE from the background: to its nearest mode or mixture of two modes (the seam of a two-tone one). */
static float mode_dist(const Background *bg, const float *lab) {
    float d = 1e30f;
    for (int i = 0; i < bg->n; i++)
        for (int j = i; j < bg->n; j++) {
            const float *a = bg->mode[i], *b = bg->mode[j];
            float ab[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]}, t = 0.0f, len = dist2(a, b), q[3];
            if (len > 0.0f)
                t = ((lab[0] - a[0]) * ab[0] + (lab[1] - a[1]) * ab[1] + (lab[2] - a[2]) * ab[2]) / len;
            t = fminf(1.0f, fmaxf(0.0f, t));
            for (int k = 0; k < 3; k++) q[k] = a[k] + t * ab[k];
            d = fminf(d, dist2(lab, q));
        }
    return sqrtf(d);
}

/* The background: the densest clusters (modes) of the 2-px border's colours — one for a plain background,
 * more for two-tone ones, paper grain or mosaic grout — and a foreground threshold above their spread. */
static void estimate_background(const float *lab, int size, Background *bg) {
    int cap = 8 * size, step = LS_MAX(1, cap / 1000), nb = 0; /* at most ~1000 border samples */
    int *all = mallocCheck((size_t)cap * sizeof(int)), *idx = mallocCheck((size_t)cap * sizeof(int));
    for (int i = 0, k = 0; i < size * size; i++)
        if (on_border(i % size, i / size, size) && k++ % step == 0) all[nb++] = i;
    memcpy(idx, all, (size_t)nb * sizeof(int));
    int left = nb;
    const float r2 = BG_RADIUS * BG_RADIUS;
    bg->n = 0;
    while (bg->n < BG_MODES && left > 0) {
        int best = 0, bestc = -1;
        for (int i = 0; i < left; i++) {
            int c = 0;
            for (int j = 0; j < left; j++) c += dist2(lab + 3 * idx[i], lab + 3 * idx[j]) < r2;
            if (c > bestc) bestc = c, best = i;
        }
        if (bg->n > 0 && bestc * 10 < nb) break; /* a mode holds at least 10% of the border */
        float m[3] = {0, 0, 0};
        const float *centre = lab + 3 * idx[best];
        for (int j = 0; j < left; j++)
            if (dist2(centre, lab + 3 * idx[j]) < r2)
                for (int k = 0; k < 3; k++) m[k] += lab[3 * idx[j] + k] / (float)bestc;
        memcpy(bg->mode[bg->n++], m, sizeof m);
        int keep = 0; /* drop what this mode explains */
        for (int j = 0; j < left; j++)
            if (dist2(m, lab + 3 * idx[j]) >= 2.25f * r2) idx[keep++] = idx[j];
        left = keep;
    }
    float *d = mallocCheck((size_t)nb * sizeof(float)); /* spread: 95th percentile of the distances */
    for (int i = 0; i < nb; i++) d[i] = mode_dist(bg, lab + 3 * all[i]);
    qsort(d, (size_t)nb, sizeof(float), cmp_float);
    bg->thr = fmaxf(FG_MIN_DE, 1.5f * d[nb * 95 / 100]);
    free(d), free(idx), free(all);
}

/* 3×3 binary closing (dilate, then erode; outside the image counts as set for the erosion). */
static void close3(uint8_t *m, int size) {
    uint8_t *t = mallocCheck((size_t)size * size);
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                int v = pass; /* dilate: any neighbour set; erode: all neighbours set */
                for (int d = 0; d < 9; d++) {
                    int xx = x + d % 3 - 1, yy = y + d / 3 - 1;
                    int s = (xx < 0 || yy < 0 || xx >= size || yy >= size) ? pass : m[yy * size + xx];
                    v = pass ? v && s : v || s;
                }
                t[y * size + x] = (uint8_t)v;
            }
        memcpy(m, t, (size_t)size * size);
    }
    free(t);
}

/* 8-connected components of mask: labels 1..n (0 background); *area_out gets n + 1 pixel counts. */
static int components(const uint8_t *mask, int size, int *label, int **area_out) {
    int n = 0, *area = mallocCheck(((size_t)size * size + 1) * sizeof(int));
    int *stack = mallocCheck((size_t)size * size * sizeof(int));
    memset(label, 0, (size_t)size * size * sizeof(int));
    area[0] = 0;
    for (int i = 0; i < size * size; i++) {
        if (!mask[i] || label[i]) continue;
        int sp = 0;
        area[++n] = 0;
        stack[sp++] = i, label[i] = n;
        while (sp) {
            int p = stack[--sp], px = p % size, py = p / size;
            area[n]++;
            for (int d = 0; d < 9; d++) {
                int xx = px + d % 3 - 1, yy = py + d / 3 - 1, q = yy * size + xx;
                if (xx < 0 || yy < 0 || xx >= size || yy >= size || !mask[q] || label[q]) continue;
                label[q] = n, stack[sp++] = q;
            }
        }
    }
    free(stack);
    *area_out = area;
    return n;
}

/* ---------------- shape ---------------- */

typedef struct {
    int x0, y0, x1, y1; /* inclusive */
} Box;

static int cmp_point(const void *a, const void *b) {
    const double *p = a, *q = b;
    return p[0] != q[0] ? (p[0] > q[0]) - (p[0] < q[0]) : (p[1] > q[1]) - (p[1] < q[1]);
}

static double cross(const double *o, const double *a, const double *b) {
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}

/* Area of the convex hull of the pixel squares of mask m (w×h), from each row's extremes (Andrew's
 * monotone chain). */
static double hull_area(const uint8_t *m, int w, int h) {
    double(*pt)[2] = mallocCheck((size_t)h * 4 * sizeof *pt),
    (*hl)[2] = mallocCheck((size_t)h * 8 * sizeof *hl);
    int n = 0, k = 0;
    for (int y = 0; y < h; y++) {
        int x0 = -1, x1 = -1;
        for (int x = 0; x < w; x++)
            if (m[y * w + x]) x1 = x, x0 = x0 < 0 ? x : x0;
        if (x0 < 0) continue;
        for (int c = 0; c < 4; c++) pt[n][0] = c < 2 ? x0 : x1 + 1, pt[n++][1] = y + (c & 1);
    }
    qsort(pt, (size_t)n, sizeof *pt, cmp_point);
    for (int i = 0; i < n; i++) { /* lower hull, then upper */
        while (k >= 2 && cross(hl[k - 2], hl[k - 1], pt[i]) <= 0) k--;
        hl[k][0] = pt[i][0], hl[k++][1] = pt[i][1];
    }
    for (int i = n - 2, lo = k + 1; i >= 0; i--) {
        while (k >= lo && cross(hl[k - 2], hl[k - 1], pt[i]) <= 0) k--;
        hl[k][0] = pt[i][0], hl[k++][1] = pt[i][1];
    }
    double a = 0;
    for (int i = 0; i + 1 < k; i++) a += hl[i][0] * hl[i + 1][1] - hl[i + 1][0] * hl[i][1];
    free(pt), free(hl);
    return fabs(a) / 2;
}

/* Mark with 2 the cells of m (w×h; 0 free, 1 wall) reachable from the corner through free cells. */
static void flood_outside(uint8_t *m, int w, int h, int *stack) {
    int sp = 0;
    m[0] = 2, stack[sp++] = 0;
    while (sp) {
        int p = stack[--sp], px = p % w, py = p / w;
        const int nb[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
        for (int k = 0; k < 4; k++) {
            int xx = px + nb[k][0], yy = py + nb[k][1];
            if (xx < 0 || yy < 0 || xx >= w || yy >= h || m[yy * w + xx]) continue;
            m[yy * w + xx] = 2, stack[sp++] = yy * w + xx;
        }
    }
}

/* Shape of the part of component `id` inside box b (dbg: every pixel's distance from the background).
 * Ring: a hole of background (in the segmentation, or below a quarter of the object's median contrast
 * in the object at half contrast). Else the nearest prototype by bounding-box fill, solidity (area /
 * convex hull), cover of the box's corner cells and top-against-bottom mass, all measured on the object at
 * half contrast (pixels at least half as far from the background as its median pixel), holes filled. */
static int classify_shape(const int *label, const float *dbg, float thr, int size, int id, Box b) {
    int w = b.x1 - b.x0 + 3, h = b.y1 - b.y0 + 3, n = 0; /* the box with a 1-px frame */
    float *d = mallocCheck((size_t)w * h * sizeof(float)), cut;
    for (int y = b.y0; y <= b.y1; y++)
        for (int x = b.x0; x <= b.x1; x++)
            if (label[y * size + x] == id) d[n++] = dbg[y * size + x];
    qsort(d, (size_t)n, sizeof(float), cmp_float);
    cut = 0.5f * d[n / 2];
    uint8_t *mb = callocCheck((size_t)w * h, 1), *m = callocCheck((size_t)w * h, 1);
    int *stack = mallocCheck((size_t)w * h * sizeof(int));
    for (int y = b.y0; y <= b.y1; y++)
        for (int x = b.x0; x <= b.x1; x++)
            if (label[y * size + x] == id) {
                mb[(y - b.y0 + 1) * w + x - b.x0 + 1] = 1;
                m[(y - b.y0 + 1) * w + x - b.x0 + 1] = dbg[y * size + x] >= cut;
            }
    flood_outside(mb, w, h, stack);
    flood_outside(m, w, h, stack);
    double hole = 0, hole_d = 0, low = 0; /* holes of the segmentation (hole_d: their mean dbg / thr) */
    int bx0 = w, by0 = h, bx1 = -1, by1 = -1, nl = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = (y + b.y0 - 1) * size + x + b.x0 - 1; /* read for holes only: never in the frame */
            if (!mb[y * w + x]) hole++, hole_d += dbg[i] / thr;
            if (!m[y * w + x]) d[nl++] = dbg[i] / cut; /* holes at half contrast */
            m[y * w + x] = m[y * w + x] != 2;
            if (m[y * w + x])
                bx0 = LS_MIN(bx0, x), bx1 = LS_MAX(bx1, x), by0 = LS_MIN(by0, y), by1 = LS_MAX(by1, y);
        }
    hole_d /= fmax(hole, 1);
    if (nl) qsort(d, (size_t)nl, sizeof(float), cmp_float), low = d[nl / 2];
    int bw = bx1 - bx0 + 1, bh = by1 - by0 + 1, cw = LS_MAX(1, bw / 4), ch = LS_MAX(1, bh / 4);
    double filled = 0, corner = 0, top = 0, bottom = 0;
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) {
            int v = m[(y + by0) * w + x + bx0];
            filled += v;
            corner += v && (x < cw || x >= bw - cw) && (y < ch || y >= bh - ch);
            top += v && 2 * y + 1 < bh; /* the middle row of an odd box counts for neither half */
            bottom += v && 2 * y + 1 > bh;
        }
    const double f[4] = {filled / ((double)bw * bh), filled / hull_area(m, w, h), corner / (4.0 * cw * ch),
                         top / fmax(bottom, 1.0)};
    free(d), free(mb), free(m), free(stack);
    if ((hole >= 2 && hole >= 0.04 * filled && hole_d < 0.7) || (nl >= 2 && nl >= 0.04 * filled && low < 0.5))
        return SCENE_RING;
    /* nearest prototype (the plain renderings' mean features) in units of each feature's spread */
    static const double proto[4][5] = {/* shape, fill, solidity, corner cover, top/bottom */
                                       {SCENE_CIRCLE, 0.79, 0.94, 0.26, 1.0},
                                       {SCENE_SQUARE, 0.995, 1.0, 0.97, 1.0},
                                       {SCENE_TRIANGLE, 0.56, 0.88, 0.45, 0.37},
                                       {SCENE_STAR, 0.47, 0.64, 0.09, 0.81}};
    static const double spread[4] = {0.06, 0.05, 0.12, 0.12};
    int best = SCENE_CIRCLE;
    double bd = 1e30;
    for (int k = 0; k < 4; k++) {
        double dd = 0;
        for (int j = 0; j < 4; j++)
            dd += (f[j] - proto[k][j + 1]) * (f[j] - proto[k][j + 1]) / (spread[j] * spread[j]);
        if (dd < bd) bd = dd, best = (int)proto[k][0];
    }
    return best;
}

/* How many objects of a row or column a component holds, from its elongation: the objects of a group are
 * 2.2 radii apart, so k that touch make a blob about 1 + 1.15 (k − 1) times longer than wide. */
static int objects_in(Box b) {
    int w = b.x1 - b.x0 + 1, h = b.y1 - b.y0 + 1;
    float a = (float)LS_MAX(w, h) / (float)LS_MIN(w, h);
    return LS_MIN(3, LS_MAX(1, (int)lrintf(1.0f + (a - 1.0f) / 1.15f)));
}

/* Shape of component id in box b holding k objects: the majority over its k equal cells along its long
 * side (the first cell's on a tie). */
static int group_shape(const int *label, const float *dbg, float thr, int size, int id, Box b, int k) {
    int votes[SCENE_N_SHAPES] = {0}, first = -1, best = -1, horizontal = b.x1 - b.x0 >= b.y1 - b.y0;
    for (int c = 0; c < k; c++) {
        Box cell = b;
        int lo = horizontal ? b.x0 : b.y0, len = (horizontal ? b.x1 - b.x0 : b.y1 - b.y0) + 1;
        int a = lo + len * c / k, e = lo + len * (c + 1) / k - 1;
        if (horizontal)
            cell.x0 = a, cell.x1 = e;
        else
            cell.y0 = a, cell.y1 = e;
        int s = classify_shape(label, dbg, thr, size, id, cell);
        votes[s]++;
        if (first < 0) first = s;
    }
    for (int s = 0; s < SCENE_N_SHAPES; s++)
        if (best < 0 || votes[s] > votes[best] || (votes[s] == votes[best] && s == first)) best = s;
    return best;
}

/* ---------------- colour of the object ---------------- */

/* Majority hue of the object's chromatic pixels (its core, away from its edge, when that is large
 * enough), ignoring the background's hue; an object with under 10% chromatic pixels is white or black
 * by the lightness of its brightest few pixels (white objects have some near L* 100 in every style). */
static int classify_colour(const uint8_t *rgb, const float *lab, const uint8_t *obj, int size, int bg_hue,
                           int cmin) {
    int n = 0, votes[SCENE_N_COLOURS], chrom = 0, best = -1;
    float *light = mallocCheck((size_t)size * size * sizeof(float));
    for (int pass = 0; pass < 2 && n < 12; pass++) { /* pass 0: core pixels only; pass 1: all */
        n = 0, chrom = 0;
        memset(votes, 0, sizeof votes);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                int i = y * size + x, core = x > 0 && y > 0 && x < size - 1 && y < size - 1, c, v;
                if (!obj[i]) continue;
                for (int d = 0; d < 9 && core && pass == 0; d++)
                    core = obj[(y + d / 3 - 1) * size + x + d % 3 - 1];
                if (pass == 0 && !core) continue;
                float h = hue(rgb + 3 * i, &c, &v);
                light[n++] = lab[3 * i];
                if (chromatic(c, v, cmin) && nearest_hue(h) != bg_hue) votes[nearest_hue(h)]++, chrom++;
            }
    }
    if (n > 0 && chrom * 10 >= n) {
        for (int c = 0; c < SCENE_N_COLOURS; c++)
            if (best < 0 || votes[c] > votes[best]) best = c;
    } else if (n > 0) {
        qsort(light, (size_t)n, sizeof(float), cmp_float);
        best = light[n - 1 - n / 32] >= 75.0f ? SCENE_WHITE : SCENE_BLACK;
    }
    free(light);
    return best;
}

/* ---------------- scoring ---------------- */

/* Centre of group gi's objects as laid out in s. */
static void group_centre(const Scene *s, int gi, float *cx, float *cy) {
    int first = gi ? s->g[0].count : 0, n = 0;
    *cx = *cy = 0.0f;
    for (int i = first; i < first + s->g[gi].count && i < s->n_obj; i++)
        *cx += s->obj[i].cx, *cy += s->obj[i].cy, n++;
    if (n)
        *cx /= (float)n, *cy /= (float)n;
    else
        *cx = anchor[s->g[gi].pos][0], *cy = anchor[s->g[gi].pos][1];
}

int quality_score(const uint8_t *rgb, int size, const Scene *expect, int group, QualityResult *r) {
    memset(r, 0, sizeof *r);
    r->colour = r->shape = r->pos = -1;
    if (size < 16 || size > 4096) return ls_set_error("quality: image size %d out of range", size);
    if (expect && (group < 0 || group >= expect->n_groups))
        return ls_set_error("quality: the scene has no group %d", group);
    size_t np = (size_t)size * size;
    float *lab = mallocCheck(np * 3 * sizeof(float)), *dbg = mallocCheck(np * sizeof(float));
    uint8_t *mask = mallocCheck(np);
    int *label = mallocCheck(np * sizeof(int)), *area = NULL;
    for (size_t i = 0; i < np; i++) rgb_to_lab(rgb + 3 * i, lab + 3 * i);
    Background bg;
    estimate_background(lab, size, &bg);
    r->bg = nearest_lab(bg.mode[0]);
    for (size_t i = 0; i < np; i++) dbg[i] = mode_dist(&bg, lab + 3 * i), mask[i] = dbg[i] > bg.thr;
    close3(mask, size);
    int nc = components(mask, size, label, &area);

    /* each component's centroid and box; this group's candidates: at least 40% of the largest (and, in a
     * two-group scene, nearer this group's expected centre than the other's) */
    float ex = 0.5f, ey = 0.5f, ox = 0.0f, oy = 0.0f;
    if (expect) group_centre(expect, group, &ex, &ey);
    if (expect && expect->n_groups == 2) group_centre(expect, 1 - group, &ox, &oy);
    float *cxy = callocCheck((size_t)nc + 1, 2 * sizeof(float));
    Box *box = mallocCheck(((size_t)nc + 1) * sizeof(Box));
    for (int c = 0; c <= nc; c++) box[c] = (Box){size, size, -1, -1};
    for (size_t i = 0; i < np; i++) {
        int c = label[i], x = (int)(i % size), y = (int)(i / size);
        cxy[2 * c] += (x + 0.5f) / size, cxy[2 * c + 1] += (y + 0.5f) / size;
        box[c] =
            (Box){LS_MIN(box[c].x0, x), LS_MIN(box[c].y0, y), LS_MAX(box[c].x1, x), LS_MAX(box[c].y1, y)};
    }
    int largest = 0, pick = 0;
    uint8_t *cand = callocCheck((size_t)nc + 1, 1);
    for (int c = 1; c <= nc; c++) {
        cxy[2 * c] /= (float)area[c], cxy[2 * c + 1] /= (float)area[c];
        float dx = cxy[2 * c] - ex, dy = cxy[2 * c + 1] - ey, qx = cxy[2 * c] - ox, qy = cxy[2 * c + 1] - oy;
        int w = box[c].x1 - box[c].x0 + 1, h = box[c].y1 - box[c].y0 + 1; /* not a thin streak (a seam) */
        cand[c] = LS_MIN(w, h) * 20 >= size && LS_MAX(w, h) <= 5 * LS_MIN(w, h) &&
                  !(expect && expect->n_groups == 2 && qx * qx + qy * qy < dx * dx + dy * dy);
        if (cand[c]) largest = LS_MAX(largest, area[c]);
    }
    float pd = 1e30f; /* the object: the candidate nearest the expected centre (no expectation: largest) */
    int keep = largest >= LS_MAX(6, (int)(np / 2000)) ? (largest * 4 + 9) / 10 : INT_MAX; /* none if tiny */
    for (int c = 1; c <= nc; c++) {
        if (!(cand[c] = cand[c] && area[c] >= keep)) continue;
        float dx = cxy[2 * c] - ex, dy = cxy[2 * c + 1] - ey,
              d = expect ? dx * dx + dy * dy : -(float)area[c];
        if (d < pd) pd = d, pick = c;
        r->count += objects_in(box[c]);
    }
    if (pick) {
        /* a group (expected, or found) is all the candidates; one object is the picked component */
        int multi = expect ? expect->g[group].count > 1 : r->count > 1;
        double sx = 0, sy = 0, sa = 0;
        for (size_t i = 0; i < np; i++) {
            int c = label[i];
            if (!c || (c != pick && !(multi && cand[c]))) {
                mask[i] = 0;
                continue;
            }
            mask[i] = dbg[i] > bg.thr; /* colour: not what the closing added */
            sx += (double)(i % size) + 0.5, sy += (double)(i / size) + 0.5, sa++;
        }
        r->found = 1;
        r->cx = (float)(sx / sa / size), r->cy = (float)(sy / sa / size), r->area = (float)(sa / (double)np);
        float bd = 1e30f;
        for (int p = 0; p < SCENE_N_POSITIONS; p++) {
            float dx = r->cx - anchor[p][0], dy = r->cy - anchor[p][1], dd = dx * dx + dy * dy;
            if (dd < bd) bd = dd, r->pos = p;
        }
        r->shape = group_shape(label, dbg, bg.thr, size, pick, box[pick], objects_in(box[pick]));
        int cmin = LS_MAX(16, (int)(4.0f * pixel_noise(rgb, size)));
        r->colour = classify_colour(rgb, lab, mask, size, background_hue(rgb, size, cmin), cmin);
    }
    if (expect) {
        const SceneGroup *g = &expect->g[group];
        r->colour_ok = r->colour == g->colour, r->shape_ok = r->shape == g->shape,
        r->pos_ok = r->pos == g->pos;
        r->count_ok = r->count == g->count;
        r->bg_ok = expect->bg2 < 0 && r->bg == expect->bg;
    }
    free(lab), free(dbg), free(mask), free(label), free(area), free(cxy), free(box), free(cand);
    return LS_OK;
}

int quality_score_caption(const uint8_t *rgb, int size, const char *caption, int group, QualityResult *r) {
    Scene s;
    memset(r, 0, sizeof *r);
    r->colour = r->shape = r->pos = -1;
    LS_TRY(scene_parse(&s, caption));
    return quality_score(rgb, size, &s, group, r);
}

/* ---------------- style: sliced Wasserstein distance of patch and colour distributions ----------------
 * Every pixel becomes (L*, C*)/100 — lightness and chroma, not hue: two sets of one style differ in which
 * colours their scenes use, while the styles differ in lightness, saturation and texture. */

#define CH 2               /* channels: L*, C* */
#define PATCH_DIM (9 * CH) /* a 3×3 patch */
#define MAX_ROWS 8192      /* rows kept per feature and level (a fixed pseudo-random subset) */
#define PATCH_EPS 0.02f    /* contrast normalisation: flat patches stay near 0 */
#define PATCH_WEIGHT 2.0f  /* of the patch terms in the total */

static uint64_t splitmix(uint64_t *s) {
    uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* QUALITY_PROJ unit directions in dim dimensions, Gaussian from a fixed seed (Box–Muller). */
static void directions(int dim, uint64_t seed, float *dir) {
    uint64_t s = seed;
    for (int p = 0; p < QUALITY_PROJ; p++) {
        double norm = 0;
        for (int k = 0; k < dim; k++) {
            double u1 = ((double)(splitmix(&s) >> 11) + 0.5) / 9007199254740992.0;
            double u2 = (double)(splitmix(&s) >> 11) / 9007199254740992.0;
            dir[p * dim + k] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
            norm += (double)dir[p * dim + k] * dir[p * dim + k];
        }
        for (int k = 0; k < dim; k++) dir[p * dim + k] /= (float)sqrt(norm);
    }
}

/* Keep MAX_ROWS of n rows (dim each), in order, chosen by a fixed pseudo-random stream; returns how many. */
static size_t subsample(float *rows, size_t n, int dim) {
    size_t m = 0;
    uint64_t st = 0x5eed5a3bULL;
    /* row i is kept with probability (MAX_ROWS − m) / (n − i) */
    for (size_t i = 0; i < n && m < MAX_ROWS; i++)
        if (n <= MAX_ROWS || splitmix(&st) % (n - i) < MAX_ROWS - m)
            memmove(rows + m * dim, rows + i * dim, (size_t)dim * sizeof(float)), m++;
    return m;
}

/* Project the rows (dim each) on the QUALITY_PROJ directions; keep each projection's QUALITY_QUANT
 * quantiles. */
static void sorted_projections(const float *rows, size_t n, int dim, const float *dir,
                               float (*out)[QUALITY_QUANT]) {
    float *v = mallocCheck(n * sizeof(float));
    for (int p = 0; p < QUALITY_PROJ; p++) {
        for (size_t i = 0; i < n; i++) {
            float acc = 0.0f;
            for (int k = 0; k < dim; k++) acc += rows[i * dim + k] * dir[p * dim + k];
            v[i] = acc;
        }
        qsort(v, n, sizeof(float), cmp_float);
        for (int q = 0; q < QUALITY_QUANT; q++)
            out[p][q] = v[(size_t)(((double)q + 0.5) * (double)n / QUALITY_QUANT)];
    }
    free(v);
}

int quality_style_signature(const uint8_t *imgs, int n, int size, QualityStyleSig *sig) {
    if (n < 1 || size < 16 || size % 4 || size > 4096)
        return ls_set_error(
            "quality: bad style set: %d images of side %d (need >= 1, 16..4096, divisible by 4)", n, size);
    size_t np = (size_t)n * size * size;
    float dir[QUALITY_PROJ * PATCH_DIM];
    float *img = mallocCheck(np * CH * sizeof(float)); /* the current pyramid level, n images */
    float *rows = mallocCheck(np * PATCH_DIM * sizeof(float));
    for (size_t i = 0; i < np; i++) {
        float lab[3];
        rgb_to_lab(imgs + 3 * i, lab);
        img[CH * i] = lab[0] / 100.0f, img[CH * i + 1] = sqrtf(lab[1] * lab[1] + lab[2] * lab[2]) / 100.0f;
    }
    memcpy(rows, img, np * CH * sizeof(float));
    directions(CH, 0x5eed0c01ULL, dir);
    sorted_projections(rows, subsample(rows, np, CH), CH, dir, sig->colour);
    directions(PATCH_DIM, 0x5eedba7cULL, dir);
    for (int level = 0, s = size; level < QUALITY_LEVELS; level++, s /= 2) {
        if (level > 0) /* 2×2 average, in place (each output cell reads only cells at or after it) */
            for (int b = 0; b < n; b++)
                for (int y = 0; y < s; y++)
                    for (int x = 0; x < s; x++)
                        for (int k = 0; k < CH; k++) {
                            const float *src = img + (size_t)b * 4 * s * s * CH;
                            int w = 2 * s, i00 = ((2 * y) * w + 2 * x) * CH + k;
                            img[(((size_t)b * s + y) * s + x) * CH + k] =
                                0.25f *
                                (src[i00] + src[i00 + CH] + src[i00 + w * CH] + src[i00 + w * CH + CH]);
                        }
        size_t m = 0; /* every 3×3 patch, mean removed per channel, contrast normalised */
        for (int b = 0; b < n; b++)
            for (int y = 0; y + 3 <= s; y++)
                for (int x = 0; x + 3 <= s; x++, m++) {
                    float *row = rows + m * PATCH_DIM, mean[CH] = {0}, norm = 0.0f;
                    for (int d = 0; d < PATCH_DIM; d++) {
                        row[d] = img[(((size_t)b * s + y + d / (3 * CH)) * s + x + d / CH % 3) * CH + d % CH];
                        mean[d % CH] += row[d] / 9.0f;
                    }
                    for (int d = 0; d < PATCH_DIM; d++) row[d] -= mean[d % CH], norm += row[d] * row[d];
                    for (int d = 0; d < PATCH_DIM; d++) row[d] /= sqrtf(norm) + PATCH_EPS;
                }
        sorted_projections(rows, subsample(rows, m, PATCH_DIM), PATCH_DIM, dir, sig->patch[level]);
    }
    free(img);
    free(rows);
    return LS_OK;
}

static float w1(const float (*a)[QUALITY_QUANT], const float (*b)[QUALITY_QUANT]) {
    double acc = 0;
    for (int p = 0; p < QUALITY_PROJ; p++)
        for (int q = 0; q < QUALITY_QUANT; q++) acc += fabs((double)a[p][q] - b[p][q]);
    return (float)(acc / (QUALITY_PROJ * QUALITY_QUANT));
}

QualityStyleDist quality_style_distance(const QualityStyleSig *a, const QualityStyleSig *b) {
    QualityStyleDist d = {{0}, 0, 0};
    d.colour = d.total = w1(a->colour, b->colour);
    for (int l = 0; l < QUALITY_LEVELS; l++)
        d.patch[l] = w1(a->patch[l], b->patch[l]), d.total += PATCH_WEIGHT * d.patch[l];
    return d;
}
