/* image.h — 8-bit RGB images: PNG writing (libpng) with text metadata, and reading PNG (libpng), JPEG
 * (libjpeg-turbo), BMP and TGA (stb_image), chosen by the file's content, never by its name. */
#ifndef LS_IMAGE_H
#define LS_IMAGE_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    int w, h, c;   /* c = 3 (RGB) for everything lorastyle writes */
    uint8_t *data; /* (h, w, c) interleaved */
} Image;

/* Write an RGB(A) PNG atomically (temporary file, then rename). Each (key, value) pair in text becomes a
 * tEXt chunk (iTXt when the value is not Latin-1/ASCII) — "parameters" holds A1111-style settings.
 * n_text pairs: text[2*i] = key, text[2*i+1] = value. LS_ERR + message naming path on failure. */
int image_write_png(const char *path, const Image *img, const char *const *text, int n_text);

/* Read the tEXt/iTXt chunk named key from a PNG into a malloc'd string (NULL + error if absent). */
char *image_png_get_text(const char *path, const char *key);

/* Largest image image_load decodes; the size is read from the header, before anything is decoded.
 * (datasets/dataset.h's DATASET_MAX_SIDE/PIXELS are the same numbers.) */
#define IMAGE_MAX_SIDE 16384
#define IMAGE_MAX_PIXELS ((int64_t)1 << 26) /* 67 Mpx: 256 MiB as decoded RGBA */

typedef enum {
    IMAGE_NONE,  /* not recognised (not an image, empty, unreadable) */
    IMAGE_PNG,
    IMAGE_JPEG,
    IMAGE_BMP,
    IMAGE_TGA,
    IMAGE_OTHER, /* a known format lorastyle does not read: GIF, PSD, HDR, PNM, WebP, TIFF, ... */
} ImageFormat;

typedef struct {
    ImageFormat format;
    int64_t w, h; /* from the header (PNG, JPEG, BMP, TGA) */
} ImageInfo;

/* Identify the file open as fp (read from its start; left at any position; path names it in messages)
 * by its magic bytes — TGA, which has none, by a strict header check — and read its size from the header
 * without decoding anything. LS_OK for PNG, JPEG, BMP and TGA; otherwise LS_ERR with a message naming
 * path and the problem, and info->format IMAGE_OTHER for a known format lorastyle does not read. */
int image_probe(FILE *fp, const char *path, ImageInfo *info);

/* Load an image file as 8-bit RGB: image_probe, then the size limits, then a full decode that refuses
 * corrupt or truncated data (never padded). Alpha is flattened onto white, gray is expanded, 16-bit is
 * reduced (high byte). LS_ERR + one-line message naming path on failure. image_load uses IMAGE_MAX_*. */
int image_load(Image *img, const char *path);
int image_load_max(Image *img, const char *path, int max_side, int64_t max_pixels);

void image_free(Image *img);

/* Convert a float image (C=3,H,W) in [-1,1] (VAE output) to 8-bit RGB: clamp(x/2+0.5,0,1)*255 rounded. */
void image_from_chw(Image *img, const float *x, int H, int W);

#endif
