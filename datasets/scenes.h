/* scenes.h — the synthetic captioned scenes the built-in base model learns from, and its style sets.
 *
 * A scene is one or two groups of shapes on a plain or two-tone background; a group is one to three
 * objects of one shape, colour and size at one of five positions. Its caption follows a fixed grammar:
 *     "a large red circle on the left on a white background"
 *     "two small blue stars at the top on a yellow and black background"
 *     "two small red circles above a blue square on a white background"
 * Every scene is a pure function of (seed, index): the pre-training set is streamed, never stored.
 * Held out: a fixed list of (colour, shape, position) combinations that scenes_sample never puts in a
 * training scene (SCENE_TRAIN); quality is measured on them (SCENE_HELDOUT: one object of a held-out
 * combination). The renderer knows each object's centre and radius: the ground truth the quality tool
 * scores generated images against.
 *
 * Styles (scene_render's `style`): the same scene drawn flat (SCENE_STYLE_PLAIN, the base model's data) or
 * as ink hatching on paper, neon outlines on black, a pixel mosaic, or watercolour bleed: the shipped style
 * sets (datasets/styles/, written by `lorastyle scenes --style NAME`). */
#ifndef LS_SCENES_H
#define LS_SCENES_H

#include <stddef.h>
#include <stdint.h>

enum { SCENE_CIRCLE, SCENE_SQUARE, SCENE_TRIANGLE, SCENE_STAR, SCENE_RING, SCENE_N_SHAPES };
enum { SCENE_RED, SCENE_GREEN, SCENE_BLUE, SCENE_YELLOW, SCENE_PURPLE, SCENE_ORANGE, SCENE_WHITE, SCENE_BLACK,
       SCENE_N_COLOURS };
enum { SCENE_LEFT, SCENE_RIGHT, SCENE_TOP, SCENE_BOTTOM, SCENE_CENTRE, SCENE_N_POSITIONS };
enum { SCENE_STYLE_PLAIN, SCENE_STYLE_INK, SCENE_STYLE_NEON, SCENE_STYLE_MOSAIC, SCENE_STYLE_WATERCOLOUR,
       SCENE_N_STYLES };

#define SCENE_MAX_OBJECTS 6

typedef struct {
    int shape, colour, pos;
    int large;   /* 0 small, 1 large */
    int count;   /* 1..3 objects in a row (top/bottom/centre) or a column (left/right) */
} SceneGroup;

typedef struct {
    int shape, colour;
    float cx, cy, r; /* centre and radius in units of the image side (0..1) */
} SceneObject;

typedef struct {
    int n_groups;          /* 1 or 2 */
    SceneGroup g[2];       /* two groups: g[0] relation g[1] ("above", "below", "to the left of", ...) */
    int bg, bg2;           /* background colour; bg2 >= 0: two-tone (bg first half, bg2 second) */
    int bg_vertical;       /* two-tone split: 0 top/bottom halves, 1 left/right halves */
    int n_obj;
    SceneObject obj[SCENE_MAX_OBJECTS]; /* where the objects are drawn (filled by scene_sample/scene_layout) */
} Scene;

/* Which scenes scene_sample draws. */
typedef enum {
    SCENE_TRAIN,   /* the full grammar without the held-out combinations (pre-training, style sets) */
    SCENE_HELDOUT, /* one object of a held-out combination on a plain background (quality measurement) */
    SCENE_SINGLE,  /* one object, any training combination, plain background (quality on seen prompts) */
} SceneSet;

extern const char *const scene_shape_names[SCENE_N_SHAPES];   /* "circle", ... */
extern const char *const scene_colour_names[SCENE_N_COLOURS]; /* "red", ... */
extern const char *const scene_position_names[SCENE_N_POSITIONS]; /* "left", "right", "top", "bottom", "centre" */
extern const char *const scene_style_names[SCENE_N_STYLES];   /* "plain", "ink", "neon", "mosaic", "watercolour" */
extern const uint8_t scene_colour_rgb[SCENE_N_COLOURS][3];    /* the flat colours the plain style draws */

/* The held-out (colour, shape, position) combinations: n of them (returned), out[i][0..2] when out != NULL. */
int scene_heldout(int (*out)[3]);
int scene_is_heldout(int colour, int shape, int pos);

/* Scene number `index` of stream `seed` from `set`: deterministic; positions get a small jitter. */
void scene_sample(Scene *s, SceneSet set, uint64_t seed, uint64_t index);
/* Place the objects of s's groups (their anchors, rows/columns, jitter from (seed, index)). */
void scene_layout(Scene *s, uint64_t seed, uint64_t index);
/* The caption of s into buf (cap bytes, always terminated); returns its length. */
int scene_caption(const Scene *s, char *buf, size_t cap);
/* Parse a caption of the grammar back into a scene (groups and background; objects laid out with jitter
 * 0): LS_OK, or LS_ERR when the text is not a caption of the grammar. */
int scene_parse(Scene *s, const char *caption);

/* Draw s as RGB (size×size×3, interleaved) in style; the style's own randomness (paper grain, jitter) comes
 * from (seed, index). Anti-aliased by 4×4 supersampling. */
void scene_render(const Scene *s, int style, uint64_t seed, uint64_t index, uint8_t *rgb, int size);
/* The same image as 3×size×size floats in [-1, 1] (what the VAE takes). */
void scene_render_chw(const Scene *s, int style, uint64_t seed, uint64_t index, float *chw, int size);

int scene_style_from_name(const char *name); /* -1 if unknown */
/* Every word the grammar uses (the corpus of the base model's tokenizer): n written to words[0..cap). */
int scene_vocabulary(const char **words, int cap);

#endif
