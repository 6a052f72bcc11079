/* scenes.c — see scenes.h: the scene grammar, its sampler, captions (and their parser), and the renderer
 * with its styles. */
#include "scenes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h" // defines: LS_OK, LS_ERR, mallocCheck, ls_set_error
#include "pool.h"   // defines: pool_alloc, pool_free (rendering scratch: pretraining renders every step)
#include "rng.h"    // defines: rng_mix64

const char *const scene_shape_names[SCENE_N_SHAPES] = {"circle", "square", "triangle", "star", "ring"};
const char *const scene_colour_names[SCENE_N_COLOURS] = {"red",    "green",  "blue",  "yellow",
                                                         "purple", "orange", "white", "black"};
const char *const scene_position_names[SCENE_N_POSITIONS] = {"left", "right", "top", "bottom", "centre"};
const char *const scene_style_names[SCENE_N_STYLES] = {"plain", "ink", "neon", "mosaic", "watercolour"};
const uint8_t scene_colour_rgb[SCENE_N_COLOURS][3] = {{220, 40, 40},  {40, 170, 60},  {40, 80, 220},
                                                      {240, 210, 40}, {140, 60, 180}, {245, 140, 30},
                                                      {245, 245, 245}, {20, 20, 20}};

static const char *const pos_phrase[SCENE_N_POSITIONS] = {"on the left", "on the right", "at the top",
                                                          "at the bottom", "in the centre"};
static const char *const count_word[4] = {"", "a", "two", "three"};
/* Anchors of the positions (x, y) in units of the image side. */
static const float anchor[SCENE_N_POSITIONS][2] = {{0.25f, 0.5f}, {0.75f, 0.5f}, {0.5f, 0.25f},
                                                   {0.5f, 0.75f}, {0.5f, 0.5f}};
/* Two groups: g[0] is placed at rel_pos[r][0], g[1] at rel_pos[r][1]. */
enum { REL_ABOVE, REL_BELOW, REL_LEFT_OF, REL_RIGHT_OF, N_REL };
static const char *const rel_phrase[N_REL] = {"above", "below", "to the left of", "to the right of"};
static const int rel_pos[N_REL][2] = {{SCENE_TOP, SCENE_BOTTOM},
                                      {SCENE_BOTTOM, SCENE_TOP},
                                      {SCENE_LEFT, SCENE_RIGHT},
                                      {SCENE_RIGHT, SCENE_LEFT}};
#define R_SMALL 0.085f
#define R_LARGE 0.15f

/* The held-out combinations: every colour twice, every shape and position at least three times. */
static const int heldout[][3] = {
    {SCENE_RED, SCENE_STAR, SCENE_LEFT},          {SCENE_GREEN, SCENE_CIRCLE, SCENE_TOP},
    {SCENE_BLUE, SCENE_TRIANGLE, SCENE_RIGHT},    {SCENE_YELLOW, SCENE_SQUARE, SCENE_BOTTOM},
    {SCENE_PURPLE, SCENE_RING, SCENE_CENTRE},     {SCENE_ORANGE, SCENE_CIRCLE, SCENE_RIGHT},
    {SCENE_WHITE, SCENE_TRIANGLE, SCENE_TOP},     {SCENE_BLACK, SCENE_SQUARE, SCENE_LEFT},
    {SCENE_RED, SCENE_RING, SCENE_BOTTOM},        {SCENE_GREEN, SCENE_STAR, SCENE_CENTRE},
    {SCENE_BLUE, SCENE_SQUARE, SCENE_TOP},        {SCENE_YELLOW, SCENE_RING, SCENE_LEFT},
    {SCENE_PURPLE, SCENE_TRIANGLE, SCENE_BOTTOM}, {SCENE_ORANGE, SCENE_STAR, SCENE_TOP},
    {SCENE_WHITE, SCENE_CIRCLE, SCENE_CENTRE},    {SCENE_BLACK, SCENE_STAR, SCENE_RIGHT},
};
#define N_HELDOUT ((int)(sizeof heldout / sizeof heldout[0]))

int scene_heldout(int (*out)[3]) {
    if (out) memcpy(out, heldout, sizeof heldout);
    return N_HELDOUT;
}

int scene_is_heldout(int colour, int shape, int pos) {
    for (int i = 0; i < N_HELDOUT; i++)
        if (heldout[i][0] == colour && heldout[i][1] == shape && heldout[i][2] == pos) return 1;
    return 0;
}

int scene_style_from_name(const char *name) {
    for (int i = 0; i < SCENE_N_STYLES; i++)
        if (!strcmp(name, scene_style_names[i])) return i;
    if (!strcmp(name, "watercolor")) return SCENE_STYLE_WATERCOLOUR;
    return -1;
}

/* ---------------- random numbers: a splitmix64 stream per (seed, index, purpose) ---------------- */

typedef struct {
    uint64_t s;
} Rng;


static Rng rng_for(uint64_t seed, uint64_t index, uint64_t purpose) {
    return (Rng){rng_mix64(rng_mix64(seed) ^ rng_mix64(index * 8 + purpose))};
}

static uint64_t next64(Rng *r) { return rng_mix64(r->s += 0x9e3779b97f4a7c15ULL); }
static int rint_(Rng *r, int n) { return (int)(next64(r) % (uint64_t)n); }
static float runif(Rng *r) { return (float)(next64(r) >> 40) / (float)(1 << 24); }

/* ---------------- sampling and layout ---------------- */

static int colour_free(const Scene *s, int c, int upto) {
    for (int i = 0; i < upto; i++)
        if (s->g[i].colour == c) return 0;
    return 1;
}

void scene_layout(Scene *s, uint64_t seed, uint64_t index) {
    Rng r = rng_for(seed, index, 3);
    s->n_obj = 0;
    for (int gi = 0; gi < s->n_groups; gi++) {
        const SceneGroup *g = &s->g[gi];
        float rad = g->large ? R_LARGE : R_SMALL, gap = 2.2f * rad;
        float ax = anchor[g->pos][0], ay = anchor[g->pos][1];
        float jx = (runif(&r) - 0.5f) * 0.06f, jy = (runif(&r) - 0.5f) * 0.06f;
        if (seed == 0 && index == 0) jx = jy = 0.0f;
        int column = g->pos == SCENE_LEFT || g->pos == SCENE_RIGHT;
        for (int k = 0; k < g->count && s->n_obj < SCENE_MAX_OBJECTS; k++) {
            float off = ((float)k - 0.5f * (float)(g->count - 1)) * gap;
            SceneObject *o = &s->obj[s->n_obj++];
            o->shape = g->shape, o->colour = g->colour, o->r = rad;
            o->cx = ax + jx + (column ? 0.0f : off);
            o->cy = ay + jy + (column ? off : 0.0f);
        }
    }
}

static void sample_group(SceneGroup *g, Rng *r, int pos, int max_count, int need_train) {
    for (;;) {
        g->shape = rint_(r, SCENE_N_SHAPES);
        g->colour = rint_(r, SCENE_N_COLOURS);
        g->pos = pos >= 0 ? pos : rint_(r, SCENE_N_POSITIONS);
        g->large = rint_(r, 2);
        g->count = 1 + (max_count > 1 ? rint_(r, max_count) : 0);
        if (!need_train || !scene_is_heldout(g->colour, g->shape, g->pos)) return;
    }
}

void scene_sample(Scene *s, SceneSet set, uint64_t seed, uint64_t index) {
    memset(s, 0, sizeof *s);
    Rng r = rng_for(seed, index, 1);
    s->bg2 = -1;
    if (set == SCENE_HELDOUT) {
        const int *h = heldout[index % N_HELDOUT];
        s->n_groups = 1;
        s->g[0] = (SceneGroup){h[1], h[0], h[2], rint_(&r, 2), 1};
    } else if (set == SCENE_SINGLE) {
        s->n_groups = 1;
        sample_group(&s->g[0], &r, -1, 1, 1);
    } else {
        int kind = rint_(&r, 20); /* 9/20 one object, 5/20 one group of 2–3, 6/20 two groups */
        if (kind < 9) {
            s->n_groups = 1;
            sample_group(&s->g[0], &r, -1, 1, 1);
        } else if (kind < 14) {
            s->n_groups = 1;
            sample_group(&s->g[0], &r, -1, 3, 1);
            if (s->g[0].count == 1) s->g[0].count = 2;
        } else {
            s->n_groups = 2;
            int rel = rint_(&r, N_REL);
            sample_group(&s->g[0], &r, rel_pos[rel][0], 2, 1);
            do sample_group(&s->g[1], &r, rel_pos[rel][1], 2, 1);
            while (s->g[1].colour == s->g[0].colour && s->g[1].shape == s->g[0].shape);
        }
    }
    do s->bg = rint_(&r, SCENE_N_COLOURS);
    while (!colour_free(s, s->bg, s->n_groups));
    if (set == SCENE_TRAIN && rint_(&r, 4) == 0) {
        do s->bg2 = rint_(&r, SCENE_N_COLOURS);
        while (s->bg2 == s->bg || !colour_free(s, s->bg2, s->n_groups));
        s->bg_vertical = rint_(&r, 2);
    }
    scene_layout(s, seed, index);
}

/* ---------------- captions ---------------- */

static int group_phrase(const SceneGroup *g, char *b, size_t cap) {
    return snprintf(b, cap, "%s %s %s %s%s", count_word[g->count], g->large ? "large" : "small",
                    scene_colour_names[g->colour], scene_shape_names[g->shape], g->count > 1 ? "s" : "");
}

int scene_caption(const Scene *s, char *buf, size_t cap) {
    char a[96], b[96], bg[64];
    group_phrase(&s->g[0], a, sizeof a);
    if (s->bg2 >= 0) snprintf(bg, sizeof bg, "%s and %s", scene_colour_names[s->bg], scene_colour_names[s->bg2]);
    else snprintf(bg, sizeof bg, "%s", scene_colour_names[s->bg]);
    const char *art = s->bg == SCENE_ORANGE ? "an" : "a";
    if (s->n_groups == 1)
        return snprintf(buf, cap, "%s %s on %s %s background", a, pos_phrase[s->g[0].pos], art, bg);
    group_phrase(&s->g[1], b, sizeof b);
    int rel = 0;
    for (int i = 0; i < N_REL; i++)
        if (rel_pos[i][0] == s->g[0].pos && rel_pos[i][1] == s->g[1].pos) rel = i;
    return snprintf(buf, cap, "%s %s %s on %s %s background", a, rel_phrase[rel], b, art, bg);
}

/* ---------------- caption parser ---------------- */

typedef struct {
    char w[32][24];
    int n, i;
} Words;

static int find_word(const char *const *list, int n, const char *w) {
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], w)) return i;
    return -1;
}

static int accept(Words *t, const char *w) {
    if (t->i < t->n && !strcmp(t->w[t->i], w)) return t->i++, 1;
    return 0;
}

static int parse_group(Words *t, SceneGroup *g) {
    if (t->i >= t->n) return LS_ERR;
    g->count = find_word(count_word, 4, t->w[t->i]);
    if (!strcmp(t->w[t->i], "an") || !strcmp(t->w[t->i], "one")) g->count = 1;
    if (g->count < 1) return LS_ERR;
    t->i++;
    g->large = 0;
    if (accept(t, "large") || accept(t, "big")) g->large = 1;
    else if (!accept(t, "small")) return LS_ERR;
    if (t->i >= t->n || (g->colour = find_word(scene_colour_names, SCENE_N_COLOURS, t->w[t->i])) < 0) return LS_ERR;
    t->i++;
    if (t->i >= t->n) return LS_ERR;
    char w[24];
    snprintf(w, sizeof w, "%s", t->w[t->i]);
    size_t L = strlen(w);
    if (g->count > 1 && L > 1 && w[L - 1] == 's') w[L - 1] = 0;
    if ((g->shape = find_word(scene_shape_names, SCENE_N_SHAPES, w)) < 0) return LS_ERR;
    t->i++;
    return LS_OK;
}

int scene_parse(Scene *s, const char *caption) {
    Words t = {0};
    const char *p = caption;
    while (*p && t.n < 32) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        int k = 0;
        while (*p && *p != ' ' && *p != ',' && *p != '\t') {
            if (k < 23) t.w[t.n][k++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
            p++;
        }
        t.w[t.n++][k] = 0;
    }
    memset(s, 0, sizeof *s);
    s->bg2 = -1;
    if (parse_group(&t, &s->g[0]) < 0) goto bad;
    s->n_groups = 1;
    static const char *const pos_first[SCENE_N_POSITIONS][2] = {
        {"on", "left"}, {"on", "right"}, {"at", "top"}, {"at", "bottom"}, {"in", "centre"}};
    int found = 0;
    for (int q = 0; q < SCENE_N_POSITIONS && !found; q++) {
        int save = t.i;
        if (accept(&t, pos_first[q][0]) && accept(&t, "the") &&
            (accept(&t, pos_first[q][1]) || (q == SCENE_CENTRE && accept(&t, "center"))))
            s->g[0].pos = q, found = 1;
        else t.i = save;
    }
    if (!found) {
        int rel = -1;
        if (accept(&t, "above")) rel = REL_ABOVE;
        else if (accept(&t, "below")) rel = REL_BELOW;
        else if (accept(&t, "to") && accept(&t, "the")) {
            if (accept(&t, "left")) rel = REL_LEFT_OF;
            else if (accept(&t, "right")) rel = REL_RIGHT_OF;
            if (rel < 0 || !accept(&t, "of")) goto bad;
        }
        if (rel < 0 || parse_group(&t, &s->g[1]) < 0) goto bad;
        s->n_groups = 2;
        s->g[0].pos = rel_pos[rel][0], s->g[1].pos = rel_pos[rel][1];
    }
    if (!accept(&t, "on") || !(accept(&t, "a") || accept(&t, "an")) || t.i >= t.n) goto bad;
    if ((s->bg = find_word(scene_colour_names, SCENE_N_COLOURS, t.w[t.i])) < 0) goto bad;
    t.i++;
    if (accept(&t, "and")) {
        if (t.i >= t.n || (s->bg2 = find_word(scene_colour_names, SCENE_N_COLOURS, t.w[t.i])) < 0) goto bad;
        t.i++;
    }
    if (!accept(&t, "background") || t.i != t.n) goto bad;
    scene_layout(s, 0, 0);
    return LS_OK;
bad:
    return ls_set_error("'%s' is not a caption of the scene grammar", caption);
}

/* ---------------- rendering ---------------- */

#define SS 4 /* supersampling factor per side */

/* Is (x, y) inside the convex polygon v[n] (either winding)? */
static int in_convex(const float (*v)[2], int n, float x, float y) {
    int pos = 0, neg = 0;
    for (int i = 0; i < n; i++) {
        const float *a = v[i], *b = v[(i + 1) % n];
        float c = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
        pos += c > 0, neg += c < 0;
    }
    return !(pos && neg);
}

/* Is (x, y) (object-local, in radii; y down) inside the shape? */
static int inside(int shape, float x, float y) {
    switch (shape) {
    case SCENE_CIRCLE: return x * x + y * y < 1.0f;
    case SCENE_SQUARE: return fabsf(x) < 0.84f && fabsf(y) < 0.84f;
    case SCENE_RING: {
        float d = x * x + y * y;
        return d < 1.0f && d > 0.30f;
    }
    case SCENE_TRIANGLE: { /* pointing up, centroid at the origin, circumradius 1.2 */
        static const float v[3][2] = {{0.0f, -1.2f}, {1.0392f, 0.6f}, {-1.0392f, 0.6f}};
        return in_convex(v, 3, x, y);
    }
    case SCENE_STAR: { /* five points (radius 1.15) and five notches (0.5), one point up: the point is inside
                        * when it lies on the centre's side of the edge of its 36° sector */
        const float seg = 3.14159265f / 5.0f;
        float th = atan2f(x, -y);
        if (th < 0.0f) th += 2.0f * 3.14159265f;
        int k = (int)(th / seg);
        if (k > 9) k = 9;
        float r0 = (k & 1) ? 0.5f : 1.15f, r1 = (k & 1) ? 1.15f : 0.5f, a0 = k * seg, a1 = (k + 1) * seg;
        float tri[3][2] = {{0.0f, 0.0f}, {r0 * sinf(a0), -r0 * cosf(a0)}, {r1 * sinf(a1), -r1 * cosf(a1)}};
        return in_convex((const float(*)[2])tri, 3, x, y);
    }
    }
    return 0;
}

/* Label map at SS× resolution: -1/-2 background halves, else the index of the topmost object. */
static void label_map(const Scene *s, int *lab, int N) {
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int half = s->bg2 >= 0 && (s->bg_vertical ? x >= N / 2 : y >= N / 2);
            lab[y * N + x] = half ? -2 : -1;
        }
    for (int i = 0; i < s->n_obj; i++) {
        const SceneObject *o = &s->obj[i];
        float R = o->r * 1.2f * (float)N;
        int x0 = (int)floorf(o->cx * N - R), x1 = (int)ceilf(o->cx * N + R);
        int y0 = (int)floorf(o->cy * N - R), y1 = (int)ceilf(o->cy * N + R);
        for (int y = y0 < 0 ? 0 : y0; y < N && y <= y1; y++)
            for (int x = x0 < 0 ? 0 : x0; x < N && x <= x1; x++) {
                float px = ((float)x + 0.5f) / (float)N, py = ((float)y + 0.5f) / (float)N;
                if (inside(o->shape, (px - o->cx) / o->r, (py - o->cy) / o->r)) lab[y * N + x] = i;
            }
    }
}

/* Distance (in hi-res pixels, chamfer 3-4 / 3) from every pixel to the nearest label boundary. */
static void boundary_distance(const int *lab, float *d, int N) {
    const float BIG = 1e9f;
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int l = lab[y * N + x], edge = 0;
            if (x > 0 && lab[y * N + x - 1] != l) edge = 1;
            if (x + 1 < N && lab[y * N + x + 1] != l) edge = 1;
            if (y > 0 && lab[(y - 1) * N + x] != l) edge = 1;
            if (y + 1 < N && lab[(y + 1) * N + x] != l) edge = 1;
            d[y * N + x] = edge ? 0.0f : BIG;
        }
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            float v = d[y * N + x];
            if (x > 0) v = fminf(v, d[y * N + x - 1] + 1.0f);
            if (y > 0) v = fminf(v, d[(y - 1) * N + x] + 1.0f);
            if (x > 0 && y > 0) v = fminf(v, d[(y - 1) * N + x - 1] + 1.4142f);
            if (x + 1 < N && y > 0) v = fminf(v, d[(y - 1) * N + x + 1] + 1.4142f);
            d[y * N + x] = v;
        }
    for (int y = N - 1; y >= 0; y--)
        for (int x = N - 1; x >= 0; x--) {
            float v = d[y * N + x];
            if (x + 1 < N) v = fminf(v, d[y * N + x + 1] + 1.0f);
            if (y + 1 < N) v = fminf(v, d[(y + 1) * N + x] + 1.0f);
            if (x + 1 < N && y + 1 < N) v = fminf(v, d[(y + 1) * N + x + 1] + 1.4142f);
            if (x > 0 && y + 1 < N) v = fminf(v, d[(y + 1) * N + x - 1] + 1.4142f);
            d[y * N + x] = v;
        }
}

/* Smooth value noise in [0, 1): lattice every `cell` pixels, bilinear, from (seed, index, octave). */
static float lattice(uint64_t key, int ix, int iy) {
    return (float)(rng_mix64(key ^ rng_mix64((uint64_t)(uint32_t)ix * 0x100000001b3ULL + (uint32_t)iy)) >> 40) /
           (float)(1 << 24);
}

static float value_noise(uint64_t key, float x, float y, float cell) {
    float fx = x / cell, fy = y / cell;
    int ix = (int)floorf(fx), iy = (int)floorf(fy);
    float tx = fx - ix, ty = fy - iy;
    tx = tx * tx * (3 - 2 * tx), ty = ty * ty * (3 - 2 * ty);
    float a = lattice(key, ix, iy), b = lattice(key, ix + 1, iy), c = lattice(key, ix, iy + 1),
          d = lattice(key, ix + 1, iy + 1);
    return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

static void rgbf(int colour, float *c) {
    for (int k = 0; k < 3; k++) c[k] = scene_colour_rgb[colour][k] / 255.0f;
}

static void mixf(float *o, const float *a, const float *b, float t) {
    for (int k = 0; k < 3; k++) o[k] = a[k] + (b[k] - a[k]) * t;
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* Colour of one hi-res pixel (x, y) with label l and boundary distance dist (hi-res px), per style. */
static void shade(const Scene *s, int style, uint64_t key, int x, int y, int l, float dist, int N, float *out) {
    float base[3];
    int colour = l >= 0 ? s->obj[l].colour : l == -1 ? s->bg : s->bg2;
    rgbf(colour, base);
    float px = (float)x / SS, py = (float)y / SS; /* output-pixel units */
    float scale = (float)N / (SS * 64.0f);        /* textures are sized for 64-px images */
    switch (style) {
    case SCENE_STYLE_INK: {
        const float paper[3] = {0.96f, 0.93f, 0.85f};
        float grain = (value_noise(key, px, py, 1.5f * scale) - 0.5f) * 0.06f;
        float p[3];
        if (l < 0) {
            mixf(p, base, paper, 0.72f);
            for (int k = 0; k < 3; k++) out[k] = p[k] + grain;
        } else {
            float per = 3.0f * scale, ph = fmodf((px + py) + 100.0f * per, per) / per;
            int line = ph < 0.42f;
            float dark[3] = {base[0] * 0.55f, base[1] * 0.55f, base[2] * 0.55f};
            mixf(p, base, paper, 0.62f);
            for (int k = 0; k < 3; k++) out[k] = (line ? dark[k] : p[k]) + grain;
        }
        if (l >= 0 && dist < 1.2f * SS * scale) { /* ink outline just inside every object */
            const float ink[3] = {0.10f, 0.09f, 0.08f};
            mixf(out, out, ink, 0.92f);
        }
        break;
    }
    case SCENE_STYLE_NEON: {
        if (l < 0) { /* the background colour, almost black */
            for (int k = 0; k < 3; k++) out[k] = base[k] * 0.10f + 0.02f;
        } else {
            float glow[3];
            for (int k = 0; k < 3; k++) glow[k] = clamp01(base[k] * 1.15f + 0.12f);
            if (colour == SCENE_BLACK) glow[0] = glow[1] = glow[2] = 0.35f;
            float w = 0.9f * SS * scale;
            float t = dist < w ? 1.0f : expf(-(dist - w) / (1.2f * SS * scale));
            for (int k = 0; k < 3; k++) out[k] = base[k] * 0.18f + (glow[k] - base[k] * 0.18f) * t; /* glowing rim, dim inside */
        }
        break;
    }
    case SCENE_STYLE_WATERCOLOUR: {
        const float paper[3] = {0.98f, 0.97f, 0.94f};
        float mott = value_noise(key ^ 0x77, px, py, 5.0f * scale) - 0.5f;
        float grain = (value_noise(key, px, py, 1.0f * scale) - 0.5f) * 0.05f;
        float p[3];
        mixf(p, base, paper, (l < 0 ? 0.62f : 0.38f) + mott * 0.22f);
        if (l >= 0 && dist < 0.9f * SS * scale) /* pigment pooled at the edge */
            for (int k = 0; k < 3; k++) p[k] = p[k] * 0.82f;
        for (int k = 0; k < 3; k++) out[k] = p[k] + grain;
        break;
    }
    default:
        memcpy(out, base, sizeof base);
    }
}

static void box_blur(float *img, int n, int rad) { /* (n,n,3) in place, separable box of radius rad */
    float *tmp = pool_alloc((size_t)n * n * 3 * sizeof(float));
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                for (int k = 0; k < 3; k++) {
                    float acc = 0.0f;
                    int cnt = 0;
                    for (int d = -rad; d <= rad; d++) {
                        int xx = pass ? x : x + d, yy = pass ? y + d : y;
                        if (xx < 0 || yy < 0 || xx >= n || yy >= n) continue;
                        acc += img[((size_t)yy * n + xx) * 3 + k], cnt++;
                    }
                    tmp[((size_t)y * n + x) * 3 + k] = acc / (float)cnt;
                }
        memcpy(img, tmp, (size_t)n * n * 3 * sizeof(float));
    }
    pool_free(tmp);
}

static void render_float(const Scene *s, int style, uint64_t seed, uint64_t index, float *rgb, int size) {
    int N = size * SS;
    int *lab = pool_alloc((size_t)N * N * sizeof(int));
    float *dist = NULL;
    label_map(s, lab, N);
    if (style != SCENE_STYLE_PLAIN && style != SCENE_STYLE_MOSAIC) {
        dist = pool_alloc((size_t)N * N * sizeof(float));
        boundary_distance(lab, dist, N);
    }
    uint64_t key = rng_mix64(seed * 31 + index);
    memset(rgb, 0, (size_t)size * size * 3 * sizeof(float));
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            float c[3];
            shade(s, style, key, x, y, lab[y * N + x], dist ? dist[y * N + x] : 0.0f, N, c);
            float *o = rgb + ((size_t)(y / SS) * size + x / SS) * 3;
            for (int k = 0; k < 3; k++) o[k] += c[k] / (SS * SS);
        }
    if (style == SCENE_STYLE_WATERCOLOUR) { /* soft bleeding edges */
        float *soft = pool_alloc((size_t)size * size * 3 * sizeof(float));
        memcpy(soft, rgb, (size_t)size * size * 3 * sizeof(float));
        box_blur(soft, size, size >= 48 ? 1 : 0);
        for (size_t i = 0; i < (size_t)size * size * 3; i++) rgb[i] = 0.35f * rgb[i] + 0.65f * soft[i];
        pool_free(soft);
    }
    if (style == SCENE_STYLE_MOSAIC) { /* tiles of 4 px: the colour at the tile centre, jittered, with grout */
        int t = size >= 48 ? 4 : 2;
        float *src = pool_alloc((size_t)size * size * 3 * sizeof(float));
        memcpy(src, rgb, (size_t)size * size * 3 * sizeof(float));
        for (int ty = 0; ty < size; ty += t)
            for (int tx = 0; tx < size; tx += t) {
                int cy = ty + t / 2 < size ? ty + t / 2 : size - 1, cx = tx + t / 2 < size ? tx + t / 2 : size - 1;
                const float *c = src + ((size_t)cy * size + cx) * 3;
                float j = 1.0f + (lattice(key, tx, ty) - 0.5f) * 0.22f;
                for (int y = ty; y < ty + t && y < size; y++)
                    for (int x = tx; x < tx + t && x < size; x++) {
                        float g = (x == tx + t - 1 || y == ty + t - 1) ? 0.45f : 1.0f;
                        for (int k = 0; k < 3; k++) rgb[((size_t)y * size + x) * 3 + k] = clamp01(c[k] * j) * g + (g < 1 ? 0.05f : 0);
                    }
            }
        pool_free(src);
    }
    pool_free(lab);
    pool_free(dist);
}

void scene_render(const Scene *s, int style, uint64_t seed, uint64_t index, uint8_t *rgb, int size) {
    float *f = pool_alloc((size_t)size * size * 3 * sizeof(float));
    render_float(s, style, seed, index, f, size);
    for (size_t i = 0; i < (size_t)size * size * 3; i++) rgb[i] = (uint8_t)lrintf(clamp01(f[i]) * 255.0f);
    pool_free(f);
}

void scene_render_chw(const Scene *s, int style, uint64_t seed, uint64_t index, float *chw, int size) {
    uint8_t *rgb = pool_alloc((size_t)size * size * 3);
    scene_render(s, style, seed, index, rgb, size); /* quantised to 8 bits, as a PNG of the scene would be */
    size_t hw = (size_t)size * size;
    for (size_t i = 0; i < hw; i++)
        for (int k = 0; k < 3; k++) chw[k * hw + i] = rgb[i * 3 + k] / 127.5f - 1.0f;
    pool_free(rgb);
}

int scene_vocabulary(const char **words, int cap) {
    static const char *const extra[] = {"a", "an", "one", "two", "three", "small", "large", "on", "at", "in",
                                        "the", "to", "of", "and", "above", "below", "background", "circles",
                                        "squares", "triangles", "stars", "rings"};
    int n = 0;
#define PUT(w) \
    do { \
        if (n < cap) words[n++] = (w); \
    } while (0)
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) PUT(extra[i]);
    for (int i = 0; i < SCENE_N_SHAPES; i++) PUT(scene_shape_names[i]);
    for (int i = 0; i < SCENE_N_COLOURS; i++) PUT(scene_colour_names[i]);
    for (int i = 0; i < SCENE_N_POSITIONS; i++) PUT(scene_position_names[i]);
#undef PUT
    return n;
}
