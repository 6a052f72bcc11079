/* quality.h — scores generated images against the scene grammar's ground truth (datasets/scenes.h), with
 * no pretrained network.
 *
 * Content: quality_score looks at one RGB image of a scene ("a large red star on the left on a white
 * background") and one of its groups: it models the background from the border pixels (its colour
 * clusters), segments what differs from it, takes the components of at least 40% of the largest one,
 * picks the one nearest the group's expected centre, and names its colour (majority hue of its chromatic
 * pixels, else white/black by its brightest pixels), its shape (a hole of background → ring, else the
 * nearest prototype by bounding-box fill, convex-hull solidity, corner cover and top/bottom balance) and
 * the position of the group (centroid → nearest of the five anchors), and counts the group's objects.
 * Works on every style of scene_render (plain, ink, neon, mosaic, watercolour); tests/test_quality.c
 * measures how well (small mosaic shapes, a few tiles each, are the weak spot).
 *
 * Style: quality_style_signature summarises a set of images as sorted 1-D projections (fixed random
 * directions from a seed: a random filter bank) of their 3×3 patches (mean removed, contrast normalised)
 * at full, half and quarter size, and of their pixels' colours, all in CIELAB lightness and chroma (not
 * hue: sets of one style differ in the colours of their scenes); quality_style_distance is the sliced
 * Wasserstein (W1) distance between two signatures: small for two sets of one style, large across
 * styles (tests/test_quality.c). Deterministic. */
#ifndef LS_QUALITY_H
#define LS_QUALITY_H

#include <stdint.h>

#include "scenes.h"

typedef struct {
    int found;              /* 0: nothing stands out of the background (then colour = shape = pos = -1) */
    int colour, shape, pos; /* SCENE_RED.., SCENE_CIRCLE.., SCENE_LEFT.. (of the object nearest the
                             * expected centre; a group's position is that of all its objects) */
    int count;              /* objects found for the group (touching ones counted from the elongation) */
    float cx, cy;           /* centroid of the object (the group), in units of the image side */
    float area;             /* its pixels / all pixels */
    int bg;                 /* nearest named colour of the background's main mode (as rendered) */
    int colour_ok, shape_ok, pos_ok, count_ok; /* agree with the expected group (0 without one) */
    int bg_ok;              /* bg is the expected scene's (one-colour) background (0 without one) */
} QualityResult;

/* Score rgb (size×size×3, interleaved, 16 ≤ size ≤ 4096) against group `group` (0 or 1) of `expect`
 * (a scene from scene_parse or scene_sample; NULL: no expectation, the largest object is taken and the
 * _ok fields stay 0). In a two-group scene only the objects nearer this group's expected centre than the
 * other's are considered. LS_OK, or LS_ERR for a bad size or group. */
int quality_score(const uint8_t *rgb, int size, const Scene *expect, int group, QualityResult *r);
/* The same with the expectation parsed from a caption of the grammar (LS_ERR when it is not one). */
int quality_score_caption(const uint8_t *rgb, int size, const char *caption, int group, QualityResult *r);

/* Nearest named colour of one RGB pixel by CIELAB ΔE (the flat colours scene_colour_rgb). */
int quality_nearest_colour(const uint8_t *rgb);

#define QUALITY_LEVELS 3 /* pyramid levels: size, size/2, size/4 */
#define QUALITY_PROJ 32  /* random projections per feature */
#define QUALITY_QUANT 64 /* quantiles kept per projection */

typedef struct {
    float patch[QUALITY_LEVELS][QUALITY_PROJ][QUALITY_QUANT]; /* sorted patch projections, per level */
    float colour[QUALITY_PROJ][QUALITY_QUANT];                /* sorted pixel (L*, C*) projections */
} QualityStyleSig;

typedef struct {
    float patch[QUALITY_LEVELS]; /* W1 of the patch projections per level (mean over projections) */
    float colour;                /* W1 of the colour projections */
    float total;                 /* colour + 2 × (sum of the patch terms) */
} QualityStyleDist;

/* Signature of n ≥ 1 images (n×size×size×3, interleaved; size 16..4096, divisible by 4): LS_OK or LS_ERR.
 * About 0.1 s for 16 images of 64 px; at most 8192 patches per level are used (a fixed random subset). */
int quality_style_signature(const uint8_t *imgs, int n, int size, QualityStyleSig *sig);
/* Sliced W1 distance between two signatures (symmetric, 0 for equal ones). */
QualityStyleDist quality_style_distance(const QualityStyleSig *a, const QualityStyleSig *b);

#endif
