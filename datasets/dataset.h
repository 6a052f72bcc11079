/* dataset.h — the training data: a folder of images with kohya-style captions and repeat folders, turned
 * into fixed-size training crops, processed captions, a deterministic epoch order and cache keys.
 *
 *   dataset_scan       walk the folder once: find images and captions, check every image (size from the
 *                      header before decoding, then a full decode), assign each a target size (one square
 *                      or an aspect-ratio bucket), count what was skipped and why, count caption tags.
 *   dataset_load_item  decode one image, resize (area average down, bilinear up) and centre-crop it to the
 *                      item's target size as 3×H×W floats in [-1, 1] (what the VAE encoder takes).
 *   dataset_caption    the caption a training step sees: trigger word, fixed first tags, shuffled rest.
 *   dataset_epoch      shuffled sample order for one epoch (repeats included), batches within one bucket.
 *   cache (cache.c)    a content key per item and a one-latent safetensors file per key.
 *
 * Everything that is random is a pure function of (seed, epoch/step, item), so a run can be resumed or
 * repeated exactly. Bad input never exits: LS_ERR with a one-line message naming the folder or file, and
 * individual bad images are skipped with a warning and counted (datasets/README.md has the full rules).
 */
#ifndef LS_DATASET_H
#define LS_DATASET_H

#include <stdint.h>
#include <stdio.h>

/* Images refused before decoding (from their header): a side above MAX_SIDE or more than MAX_PIXELS. */
#define DATASET_MAX_SIDE 16384
#define DATASET_MAX_PIXELS (1 << 26) /* 67 Mpx: 256 MiB as decoded RGBA */
#define DATASET_MAX_REPEATS 100000
#define DATASET_WARN_REPEATS 1000 /* more repeats than this in a folder name get a warning (a year?) */
/* Version of the crop/resample rule, part of every cache key: bump it when dataset_load_item changes. */
#define DATASET_CROP_VERSION 1

typedef struct {
    int resolution;          /* square side (non-bucket mode), and bucket area = resolution² (default 512) */
    int buckets;             /* 1: aspect-ratio buckets (--buckets) */
    int bucket_step;         /* bucket sides are multiples of this (default 64; must be a multiple of 8) */
    int min_bucket;          /* smallest bucket side (0: max(step, resolution/2), kohya's 256 for 512) */
    int max_bucket;          /* largest bucket side (0: 2·resolution, floored to the step) */
    int bucket_no_upscale;   /* 1: never upscale — small images get their own bucket (kohya's option) */
    const char *caption_ext; /* caption file extension (default ".txt"; a missing dot is added) */
    const char *caption;     /* --caption TEXT: used for images without a caption file (else folder name) */
    const char *trigger;     /* --trigger WORD: a tag put first in every caption (NULL: none) */
    int keep_tokens;         /* --keep-tokens N: the first N caption tags never move when shuffling */
    int shuffle_tags;        /* --shuffle-tags: shuffle the other tags every step */
    float caption_dropout;   /* --caption-dropout P: the whole caption is "" with probability P per step */
    float tag_dropout;       /* --tag-dropout P: each tag after the kept ones is left out with probability P */
    int flip;                /* --flip: random horizontal flips (dataset_epoch draws them) */
    int max_side, max_pixels; /* 0: DATASET_MAX_SIDE / DATASET_MAX_PIXELS */
    int quiet;                /* 1: no warnings on stderr (they are still counted) */
} DatasetOptions;

void dataset_options_default(DatasetOptions *o);

/* Why an image file was skipped. */
typedef enum {
    DS_SKIP_UNREADABLE,  /* cannot open/read (permissions, broken link, not a regular file) */
    DS_SKIP_CORRUPT,     /* header or data does not decode (corrupt, truncated, not an image at all) */
    DS_SKIP_HUGE,        /* dimensions above max_side/max_pixels (refused before decoding) */
    DS_SKIP_UNSUPPORTED, /* an image format stb cannot read (.webp, .gif, .avif, .jxl, .tif, ...) */
    DS_SKIP_COUNT
} DatasetSkipReason;

typedef struct {
    char *path;
    DatasetSkipReason reason;
    char *message; /* the one-line warning that was printed */
} DatasetSkipped;

typedef enum { DS_CAPTION_FILE, DS_CAPTION_OPTION, DS_CAPTION_FOLDER } DatasetCaptionSource;

typedef struct {
    char *path;    /* image file */
    char *caption; /* caption as read: first line, trimmed, valid UTF-8 (bad bytes → U+FFFD) */
    DatasetCaptionSource caption_source;
    int subset;      /* index into Dataset.subsets (the folder it came from) */
    int repeats;     /* samples per epoch (from the N_name folder) */
    int w, h;        /* original size */
    int tw, th;      /* target (crop) size = its bucket's size */
    int bucket;      /* index into Dataset.buckets */
    char sha256[65]; /* hex SHA-256 of the image file's bytes (cache key input) */
} DatasetItem;

typedef struct {
    char *tag; /* lower-cased, trimmed caption tag */
    int count; /* images (not samples) whose caption holds it */
} DatasetTag;

typedef struct {
    char *name;       /* folder name, e.g. "10_pastelshapes" (kohya's ss_tag_frequency key) */
    char *class_name; /* the part after "N_" (fallback caption), e.g. "pastelshapes" */
    int repeats;
    int n_images;
    DatasetTag *tags; /* sorted by tag */
    int n_tags;
} DatasetSubset;

typedef struct {
    int w, h;
    int n_items; /* images in this bucket (not counting repeats) */
} DatasetBucket;

typedef struct {
    char *dir;
    DatasetOptions opt; /* a copy; its strings are owned by the Dataset */
    DatasetItem *items; /* sorted by path */
    int n_items;
    DatasetSubset *subsets;
    int n_subsets;
    DatasetBucket *buckets; /* only buckets that hold items, sorted by (w, h) */
    int n_buckets;
    int n_found; /* image files seen (used + skipped) */
    int n_skipped;
    int skipped_by[DS_SKIP_COUNT];
    DatasetSkipped *skipped;
    int n_missing_captions; /* images that fell back to --caption or the folder name */
    int n_bad_utf8;         /* caption files with invalid UTF-8 (repaired) */
    int n_other_ext;        /* images without a caption_ext caption that have one under the other usual
                             * extension (.txt / .caption): named in the warning and the report */
    const char *other_ext;  /* that extension (static string) */
    int n_ignored_dirs;     /* subfolders that are not N_name (or have N < 1) */
    int64_t n_samples;      /* Σ repeats: samples per epoch */
    int n_held_out;         /* items set aside by dataset_hold_out (repeats 0: in no epoch) */
} Dataset;

/* Scan dir: image files directly in it (repeats from dir's own name if it is N_name, else 1) and in its
 * N_name/ subfolders (N repeats; other subfolders are ignored with a warning). LS_ERR + message naming
 * dir when it cannot be read, holds no images, or every image was skipped; *d is then empty. */
int dataset_scan(Dataset *d, const char *dir, const DatasetOptions *o);
void dataset_free(Dataset *d);

/* One summary paragraph: counts, skips with reasons (first few files named), buckets. */
void dataset_report(const Dataset *d, FILE *fp);

/* kohya's ss_tag_frequency as JSON: {"10_name": {"tag": count, ...}, ...}; malloc'd. */
char *dataset_tag_frequency_json(const Dataset *d);

/* The bucket (*bw × *bh) an image of w × h gets under options o (pure function; see README.md). */
void dataset_bucket_for(const DatasetOptions *o, int w, int h, int *bw, int *bh);
/* The predefined bucket list for o (kohya's make_bucket_resolutions): malloc'd pairs (w, h) in *list,
 * count returned. */
int dataset_bucket_list(const DatasetOptions *o, int **list);
/* LS_ERR + message if o's sizes are unusable (not multiples of 8, min > max, ...). */
int dataset_check_options(const DatasetOptions *o);

/* Decode item i and write its training crop, 3 × th × tw floats in [-1, 1] (channel-major RGB), mirrored
 * left-right when flip. LS_ERR + message naming the file if it no longer decodes. */
int dataset_load_item(const Dataset *d, int i, float *chw_out, int flip);
/* The same resize + centre crop on an 8-bit RGB buffer (exposed for tests and the cache). */
void dataset_resize_crop(const uint8_t *rgb, int w, int h, int tw, int th, int flip, float *chw_out);

/* The caption for item i at a training step: tags split on ',' and trimmed, empty ones dropped; the
 * trigger first (moved there if the caption already holds it), then the first keep_tokens tags, then the
 * rest — shuffled when shuffle_tags, each left out with probability tag_dropout, and the whole caption
 * empty with probability caption_dropout (kohya's order), all deterministically from (seed, step, i).
 * Joined with ", ". step = DATASET_CAPTION_PLAIN: no shuffling and no dropout (validation, samples).
 * Returns the length written (NUL excluded), or LS_ERR if it does not fit in cap bytes. */
#define DATASET_CAPTION_PLAIN UINT64_MAX
int dataset_caption(const Dataset *d, int i, uint64_t seed, uint64_t step, char *out, int cap);
/* A size for out that always suffices for item i. */
int dataset_caption_bound(const Dataset *d, int i);

/* One epoch: every item `repeats` times, shuffled within its bucket, cut into batches of batch_size
 * (the last batch of a bucket may be short), batch order shuffled — deterministic from (seed, epoch).
 * Batch b is items[batch_start[b] .. batch_start[b+1]); flip[k] is the flip draw for slot k (all 0
 * unless opt.flip). */
typedef struct {
    int *items;
    uint8_t *flip;
    int n;            /* = n_samples */
    int *batch_start; /* n_batches + 1 entries */
    int n_batches;
} DatasetEpoch;

int dataset_epoch(const Dataset *d, uint64_t seed, uint64_t epoch, int batch_size, DatasetEpoch *e);
void dataset_epoch_free(DatasetEpoch *e);

/* Set aside round(frac · n_items) items (at least 1, leaving at least 1) chosen by seed, for a validation
 * loss: their repeats become 0, so no epoch holds them (n_samples drops accordingly). *items (malloc'd,
 * ascending indices) and *n get them. LS_ERR naming the folder when frac is outside (0, 1) or nothing would
 * be left to train on. */
int dataset_hold_out(Dataset *d, double frac, uint64_t seed, int **items, int *n);

/* ---- latent cache (cache.c) ----
 * Key: hex SHA-256 of (format version, crop rule version, image file bytes' SHA-256, caption, target
 * size, flip, model hash). The image's path is not part of it, so moving a folder keeps its cache. */
int dataset_cache_key(const Dataset *d, int i, int flip, const char *model_hash, char key[65]);
/* Key of a text embedding (pipeline_encode_prompt's output) of caption `text`: SHA-256 of (format, model
 * hash, clip skip, text). Stored with dataset_cache_write as a 1 × L × D "latent", source = the text. */
int dataset_text_cache_key(const char *model_hash, int clip_skip, const char *text, char key[65]);
/* "<cache_dir>/<key>.safetensors", malloc'd. */
char *dataset_cache_path(const char *cache_dir, const char key[65]);
/* Write one latent (c × h × w floats, F32) to path atomically, with __metadata__ {"lorastyle_cache":
 * "latent-v1", "key": key, "image": source (the image path, or a text embedding's caption), "size": "WxH"}.
 * LS_ERR + message naming path. (The trainer stores VAE moments, c = 2·latent channels.) */
int dataset_cache_write(const char *path, const char *key, const char *source, const float *latent, int c,
                        int h, int w);
/* Read the latent back if path exists, is a valid cache file, holds `key` and has shape c × h × w:
 * returns 1 (hit, latent filled), 0 (miss: absent, another key or shape; a corrupt file is a miss with a
 * warning, and is then simply rewritten). */
int dataset_cache_read(const char *path, const char *key, float *latent, int c, int h, int w);

#endif
