/* image.h — 8-bit RGB images: PNG writing (libpng) with text metadata, and reading any image stb/libpng
 * can decode. */
#ifndef LS_IMAGE_H
#define LS_IMAGE_H

#include <stdint.h>

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

/* Load an image file (PNG, JPEG, BMP, TGA, ...) as 8-bit RGB; alpha is flattened onto white, gray is
 * expanded, 16-bit is reduced. LS_ERR + message naming path on failure. */
int image_load(Image *img, const char *path);

void image_free(Image *img);

/* Convert a float image (C=3,H,W) in [-1,1] (VAE output) to 8-bit RGB: clamp(x/2+0.5,0,1)*255 rounded. */
void image_from_chw(Image *img, const float *x, int H, int W);

#endif
