/* test_quality.c — the quality tool (datasets/quality.h) against the renderer's ground truth: content scoring
 * of single objects (SCENE_SINGLE and SCENE_HELDOUT scenes, every style, scored against their parsed
 * captions as a generated image would be), noisy and 128-px images, multi-object groups and two-group
 * scenes, what is reported when nothing or something else was drawn, bad input; then the style
 * distance: each style's set nearer another set of the same style than any other style's, determinism.
 * Prints the measured accuracies and the distance table.
 *
 * Usage: test_quality <fixtures_dir> [lorastyle_binary]   (prints "N passed, M failed")
 */
#include "common.h"  /* defines: LS_OK, LS_ERR, mallocCheck */
#include "quality.h" /* defines: quality_*, QualityResult, QualityStyleSig, QualityStyleDist */
#include "scenes.h"  /* defines: scene_*, Scene, SCENE_* */

#include <string.h>

#include "testutil.h" // defines: CHECK, test_summary

#define S 64

typedef struct {
    int n, colour, shape, pos, count, found;
} Acc;

static void acc_add(Acc *a, const QualityResult *r) {
    a->n++, a->colour += r->colour_ok, a->shape += r->shape_ok, a->pos += r->pos_ok;
    a->count += r->count_ok, a->found += r->found;
}

static double frac(int k, int n) { return n ? (double)k / n : 0.0; }

static uint64_t mix(uint64_t *s) {
    uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Gaussian pixel noise of standard deviation sigma (fixed seed), clamped to 0..255. */
static void add_noise(uint8_t *img, size_t n, double sigma, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(mix(&seed) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(mix(&seed) >> 11) / 9007199254740992.0;
        double v = img[i] + sigma * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        img[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrint(v));
    }
}

/* Render scene s in style at size, score it against its own caption (parsed back, as for a generated
 * image), add to a. */
static void score_scene(const Scene *s, int style, uint64_t seed, uint64_t index, int size, double sigma,
                        Acc *a) {
    uint8_t *img = mallocCheck((size_t)size * size * 3);
    char cap[256];
    Scene e;
    scene_render(s, style, seed, index, img, size);
    if (sigma > 0) add_noise(img, (size_t)size * size * 3, sigma, seed * 1000003 + index);
    scene_caption(s, cap, sizeof cap);
    if (scene_parse(&e, cap) != LS_OK) {
        CHECK(0, "caption '%s' does not parse back", cap);
        free(img);
        return;
    }
    for (int g = 0; g < e.n_groups; g++) {
        QualityResult r;
        CHECK(quality_score(img, size, &e, g, &r) == LS_OK, "%s", cap);
        acc_add(a, &r);
    }
    free(img);
}

/* Single objects: per seed, n_single SCENE_SINGLE scenes and n_held SCENE_HELDOUT ones (16 combinations). */
static Acc single_objects(int style, int seeds, int n_single, int n_held, int size, double sigma) {
    Acc a = {0};
    for (int k = 0; k < seeds; k++)
        for (int set = 0; set < 2; set++)
            for (int i = 0; i < (set ? n_held : n_single); i++) {
                Scene s;
                uint64_t seed = 11 + (uint64_t)k;
                scene_sample(&s, set ? SCENE_HELDOUT : SCENE_SINGLE, seed, (uint64_t)i);
                score_scene(&s, style, seed, (uint64_t)i, size, sigma, &a);
            }
    return a;
}

static void report(const char *what, const Acc *a) {
    printf("  %-28s n=%3d  colour %.3f  shape %.3f  position %.3f  count %.3f\n", what, a->n,
           frac(a->colour, a->n), frac(a->shape, a->n), frac(a->pos, a->n), frac(a->count, a->n));
}

static void test_single_objects(void) {
    /* floors: colour, shape, position (measured: see README's test table and the printout) */
    static const double floor_[SCENE_N_STYLES][3] = {
        {0.95, 0.90, 0.95}, /* plain */
        {0.80, 0.90, 0.95}, /* ink: a small ring or star is mostly its black outline */
        {0.90, 0.90, 0.95}, /* neon */
        {0.90, 0.50, 0.95}, /* mosaic: a small shape is a few 4-px tiles */
        {0.90, 0.90, 0.95}, /* watercolour */
    };
    printf("single objects (SCENE_SINGLE + SCENE_HELDOUT, %d px):\n", S);
    for (int st = 0; st < SCENE_N_STYLES; st++) {
        Acc a = st == SCENE_STYLE_PLAIN ? single_objects(st, 3, 40, 32, S, 0)
                                        : single_objects(st, 2, 24, 16, S, 0);
        report(scene_style_names[st], &a);
        CHECK(a.found == a.n, "%s: an object found in every image (%d of %d)", scene_style_names[st], a.found,
              a.n);
        CHECK(frac(a.colour, a.n) >= floor_[st][0], "%s colour %.3f", scene_style_names[st],
              frac(a.colour, a.n));
        CHECK(frac(a.shape, a.n) >= floor_[st][1], "%s shape %.3f", scene_style_names[st],
              frac(a.shape, a.n));
        CHECK(frac(a.pos, a.n) >= floor_[st][2], "%s position %.3f", scene_style_names[st], frac(a.pos, a.n));
    }
    Acc noisy = single_objects(SCENE_STYLE_PLAIN, 1, 40, 32, S, 8.0),
        big = single_objects(SCENE_STYLE_PLAIN, 1, 12, 16, 128, 0);
    report("plain + noise sigma 8", &noisy);
    report("plain at 128 px", &big);
    CHECK(frac(noisy.colour, noisy.n) >= 0.95 && frac(noisy.shape, noisy.n) >= 0.9 &&
              frac(noisy.pos, noisy.n) >= 0.95,
          "noisy plain images");
    CHECK(frac(big.colour, big.n) >= 0.95 && frac(big.shape, big.n) >= 0.9 && frac(big.pos, big.n) >= 0.95,
          "128-px plain images");
}

/* Groups of 2–3 objects (one group) and two-group scenes from SCENE_TRAIN, plain style. */
static void test_groups(void) {
    Acc multi = {0}, two = {0};
    for (uint64_t i = 0; (multi.n < 60 || two.n < 80) && i < 5000; i++) {
        Scene s;
        scene_sample(&s, SCENE_TRAIN, 21, i);
        if (s.n_groups == 1 && s.g[0].count > 1 && multi.n < 60)
            score_scene(&s, SCENE_STYLE_PLAIN, 21, i, S, 0, &multi);
        if (s.n_groups == 2 && two.n < 80) score_scene(&s, SCENE_STYLE_PLAIN, 21, i, S, 0, &two);
    }
    CHECK(multi.n >= 60 && two.n >= 80, "SCENE_TRAIN gives groups (%d) and two-group scenes (%d)", multi.n,
          two.n);
    report("plain, groups of 2-3", &multi);
    report("plain, two-group scenes", &two);
    for (int k = 0; k < 2; k++) {
        const Acc *a = k ? &two : &multi;
        CHECK(frac(a->colour, a->n) >= 0.95 && frac(a->shape, a->n) >= 0.9 && frac(a->pos, a->n) >= 0.95 &&
                  frac(a->count, a->n) >= 0.9,
              "%s", k ? "two-group scenes" : "groups of 2-3");
    }
}

/* Exact cases: one known scene, the wrong expectation, no expectation, an empty image, bad input. */
static void test_cases(void) {
    uint8_t img[S * S * 3];
    Scene s;
    QualityResult r;
    const char *cap = "a large red star on the left on a white background";
    CHECK(scene_parse(&s, cap) == LS_OK, "parse");
    scene_render(&s, SCENE_STYLE_PLAIN, 0, 0, img, S);
    CHECK(quality_score_caption(img, S, cap, 0, &r) == LS_OK, "score");
    CHECK(r.found && r.colour == SCENE_RED && r.shape == SCENE_STAR && r.pos == SCENE_LEFT && r.count == 1,
          "red star left: got colour %d shape %d pos %d count %d", r.colour, r.shape, r.pos, r.count);
    CHECK(r.colour_ok && r.shape_ok && r.pos_ok && r.count_ok && r.bg == SCENE_WHITE && r.bg_ok, "all agree");
    CHECK(fabsf(r.cx - 0.25f) < 0.03f && fabsf(r.cy - 0.5f) < 0.03f && r.area > 0.02f && r.area < 0.1f,
          "centroid (%.3f, %.3f), area %.3f", r.cx, r.cy, r.area);
    CHECK(quality_score_caption(img, S, "two small blue squares at the top on a white background", 0, &r) ==
                  LS_OK &&
              r.found && !r.colour_ok && !r.shape_ok && !r.pos_ok && !r.count_ok && r.colour == SCENE_RED,
          "the wrong caption is scored as wrong");
    CHECK(quality_score(img, S, NULL, 0, &r) == LS_OK && r.shape == SCENE_STAR && !r.colour_ok,
          "no expectation");

    memset(img, 200, sizeof img); /* nothing drawn */
    CHECK(quality_score_caption(img, S, cap, 0, &r) == LS_OK && !r.found && r.colour == -1 && r.shape == -1 &&
              r.pos == -1 && r.count == 0 && !r.colour_ok && !r.shape_ok && !r.pos_ok,
          "an empty image: nothing found");

    CHECK(quality_score_caption(img, S, "a purple elephant", 0, &r) == LS_ERR && r.colour == -1,
          "not a caption");
    CHECK(quality_score(img, 8, &s, 0, &r) == LS_ERR, "too small");
    CHECK(quality_score(img, S, &s, 1, &r) == LS_ERR, "no group 1 in a one-group scene");
    for (int c = 0; c < SCENE_N_COLOURS; c++)
        CHECK(quality_nearest_colour(scene_colour_rgb[c]) == c, "nearest colour of %s",
              scene_colour_names[c]);
}

/* Style distance: two sets (other seeds, other scenes) of 16 images per style. */
static void test_style_distance(void) {
    enum { N = 16 };
    QualityStyleSig *sig = mallocCheck(2 * SCENE_N_STYLES * sizeof *sig), *again = mallocCheck(sizeof *again);
    uint8_t *imgs = mallocCheck((size_t)N * S * S * 3);
    for (int set = 0; set < 2; set++)
        for (int st = 0; st < SCENE_N_STYLES; st++) {
            for (int i = 0; i < N; i++) {
                Scene s;
                scene_sample(&s, SCENE_TRAIN, 31 + set, (uint64_t)i);
                scene_render(&s, st, 31 + set, (uint64_t)i, imgs + (size_t)i * S * S * 3, S);
            }
            CHECK(quality_style_signature(imgs, N, S, &sig[set * SCENE_N_STYLES + st]) == LS_OK, "signature");
        }
    CHECK(quality_style_signature(imgs, N, S, again) == LS_OK &&
              !memcmp(again, &sig[2 * SCENE_N_STYLES - 1], sizeof *again),
          "the same images give the same signature");
    QualityStyleDist d[SCENE_N_STYLES][SCENE_N_STYLES];
    printf("style distance (total = colour + 2 x patches), rows: set A (seed 31), columns: set B (seed 32), "
           "%d images each:\n%-12s",
           N, "");
    for (int b = 0; b < SCENE_N_STYLES; b++) printf(" %22s", scene_style_names[b]);
    printf("\n");
    for (int a = 0; a < SCENE_N_STYLES; a++) {
        printf("%-12s", scene_style_names[a]);
        for (int b = 0; b < SCENE_N_STYLES; b++) {
            d[a][b] = quality_style_distance(&sig[a], &sig[SCENE_N_STYLES + b]);
            printf(" %6.3f (%5.3f+%5.3f)", d[a][b].total, d[a][b].colour, d[a][b].total - d[a][b].colour);
        }
        printf("\n");
    }
    double worst = 1e9;
    for (int a = 0; a < SCENE_N_STYLES; a++)
        for (int b = 0; b < SCENE_N_STYLES; b++) {
            if (a == b) continue;
            double self = d[a][a].total, cross = fmin(d[a][b].total, d[b][a].total);
            worst = fmin(worst, cross / self);
            CHECK(cross > self, "%s is nearer %s (%.3f) than itself (%.3f)", scene_style_names[a],
                  scene_style_names[b], cross, self);
            if (a == SCENE_STYLE_PLAIN)
                CHECK(cross >= 2.0 * self, "plain vs %s: %.3f, not well above plain vs plain %.3f",
                      scene_style_names[b], cross, self);
        }
    printf("  smallest (other style) / (same style) ratio: %.2f\n", worst);
    CHECK(worst >= 1.5, "styles separate by a margin: ratio %.2f", worst);
    QualityStyleDist zero = quality_style_distance(&sig[0], &sig[0]),
                     ab = quality_style_distance(&sig[1], &sig[7]),
                     ba = quality_style_distance(&sig[7], &sig[1]);
    CHECK(zero.total == 0.0f && ab.total == ba.total && ab.total > 0.0f, "a metric: d(a,a) = 0, symmetric");
    CHECK(quality_style_signature(imgs, 0, S, again) == LS_ERR &&
              quality_style_signature(imgs, 1, 30, again) == LS_ERR,
          "bad set sizes are refused");
    free(sig), free(again), free(imgs);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv; /* every image is rendered here */
    double t0 = ls_time();
    test_cases();
    test_single_objects();
    test_groups();
    test_style_distance();
    printf("(%.1f s)\n", ls_time() - t0);
    return test_summary();
}
