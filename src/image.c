/* image.c — see image.h.
 *
 * Writing uses libpng directly (text chunks need its full API); decoding uses stb_image, which reads PNG,
 * JPEG, BMP, TGA, ... Every libpng error longjmps back to the setjmp in the function that created the
 * png struct; the error callback records libpng's message so the caller can report it.
 *
 * PNG text: tEXt is Latin-1 by definition, iTXt is UTF-8. Our strings are UTF-8, so a value whose code
 * points all fit in Latin-1 is transcoded into a tEXt chunk (what PIL, and therefore A1111, does) and any
 * other value goes into an iTXt chunk. Reading converts tEXt/zTXt back from Latin-1 to UTF-8.
 */
#include "image.h"

#include "common.h" /* defines: ls_set_error, mallocCheck, LS_OK/LS_ERR */

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stb_image.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ================================================================================================ */
/* libpng error plumbing                                                                            */
/* ================================================================================================ */

typedef struct {
    char msg[256];
    int err_no; /* errno when libpng gave up (e.g. ENOSPC behind a "Write Error") */
} PngErr;

static void on_png_error(png_structp png, png_const_charp msg) {
    PngErr *e = png_get_error_ptr(png);
    e->err_no = errno;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png, (void)msg; /* benign (e.g. a bad ancillary CRC); the data we need is checked elsewhere */
}

/* ================================================================================================ */
/* UTF-8 / Latin-1                                                                                  */
/* ================================================================================================ */

/* Decode s as UTF-8. Returns 1 if valid, and sets *max_cp to its largest code point. */
static int utf8_scan(const char *s, uint32_t *max_cp) {
    const unsigned char *p = (const unsigned char *)s;
    *max_cp = 0;
    while (*p) {
        uint32_t cp;
        int extra;
        if (*p < 0x80) cp = *p, extra = 0;
        else if ((*p & 0xe0) == 0xc0) cp = *p & 0x1f, extra = 1;
        else if ((*p & 0xf0) == 0xe0) cp = *p & 0x0f, extra = 2;
        else if ((*p & 0xf8) == 0xf0) cp = *p & 0x07, extra = 3;
        else return 0;
        p++;
        for (int k = 0; k < extra; k++, p++) {
            if ((*p & 0xc0) != 0x80) return 0; /* also stops at the NUL */
            cp = (cp << 6) | (*p & 0x3f);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000}; /* reject overlong encodings */
        if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        if (cp > *max_cp) *max_cp = cp;
    }
    return 1;
}

/* UTF-8 whose code points are all ≤ 0xFF (checked by utf8_scan) → Latin-1, malloc'd. */
static char *utf8_to_latin1(const char *s) {
    char *out = mallocCheck(strlen(s) + 1), *o = out;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x80) {
            *o++ = (char)*p++;
        } else { /* a two-byte sequence 110000xx 10xxxxxx */
            *o++ = (char)(((p[0] & 0x03) << 6) | (p[1] & 0x3f));
            p += 2;
        }
    }
    *o = 0;
    return out;
}

static char *latin1_to_utf8(const char *s) {
    char *out = mallocCheck(2 * strlen(s) + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) {
            *o++ = (char)*p;
        } else {
            *o++ = (char)(0xc0 | (*p >> 6));
            *o++ = (char)(0x80 | (*p & 0x3f));
        }
    }
    *o = 0;
    return out;
}

/* PNG keywords: 1-79 printable characters without leading/trailing spaces (we allow ASCII only). */
static int valid_png_key(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x20 || k[i] > 0x7e) return 0;
    return 1;
}

/* ================================================================================================ */
/* writing                                                                                          */
/* ================================================================================================ */

/* Encode img with its text chunks to fp. LS_ERR with e->msg set on a libpng error. */
static int png_encode(FILE *fp, const Image *img, png_text *texts, int n_text, PngErr *e) {
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                       PNG_COLOR_TYPE_RGB_ALPHA};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(e->msg, sizeof e->msg, "cannot initialise libpng");
        return LS_ERR;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return LS_ERR;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, color_types[img->c],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text > 0) png_set_text(png, info, texts, n_text); /* written before IDAT, as PIL does */
    png_write_info(png, info);
    size_t stride = (size_t)img->w * (size_t)img->c;
    for (int y = 0; y < img->h; y++) png_write_row(png, img->data + (size_t)y * stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return LS_OK;
}

int image_write_png(const char *path, const Image *img, const char *const *text, int n_text) {
    if (!img->data || img->w <= 0 || img->h <= 0 || img->c < 1 || img->c > 4)
        return ls_set_error("%s: cannot write a %dx%dx%d image as PNG", path, img->w, img->h, img->c);
    for (int i = 0; i < n_text; i++)
        if (!valid_png_key(text[2 * i]))
            return ls_set_error("%s: invalid PNG text key '%s'", path, text[2 * i]);

    /* texts[i].text may be a Latin-1 copy (owned[i]) of the caller's UTF-8 value */
    png_text *texts = callocCheck((size_t)(n_text > 0 ? n_text : 1), sizeof(png_text));
    char **owned = callocCheck((size_t)(n_text > 0 ? n_text : 1), sizeof(char *));
    for (int i = 0; i < n_text; i++) {
        const char *v = text[2 * i + 1];
        uint32_t max_cp;
        texts[i].key = (png_charp)text[2 * i];
        if (!utf8_scan(v, &max_cp) || max_cp < 0x80) { /* ASCII, or not UTF-8: take the bytes as Latin-1 */
            texts[i].compression = PNG_TEXT_COMPRESSION_NONE;
            texts[i].text = (png_charp)v;
        } else if (max_cp <= 0xff) {
            texts[i].compression = PNG_TEXT_COMPRESSION_NONE;
            texts[i].text = owned[i] = utf8_to_latin1(v);
        } else {
            texts[i].compression = PNG_ITXT_COMPRESSION_NONE;
            texts[i].text = (png_charp)v;
            texts[i].lang = "";
            texts[i].lang_key = "";
        }
        texts[i].text_length = strlen(texts[i].text);
    }

    size_t tlen = strlen(path) + 32;
    char *tmp = mallocCheck(tlen);
    snprintf(tmp, tlen, "%s.tmp.%d", path, (int)getpid());
    int rc = LS_OK;
    FILE *fp = fopen(tmp, "wbe");
    if (!fp) {
        rc = ls_set_error("%s: cannot write: %s", path, strerror(errno));
    } else {
        PngErr e = {{0}, 0};
        if (png_encode(fp, img, texts, n_text, &e) != LS_OK) {
            rc = ls_set_error("%s: PNG write failed: %s%s%s", path, e.msg, e.err_no ? ": " : "",
                              e.err_no ? strerror(e.err_no) : "");
            fclose(fp);
        } else if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
            rc = ls_set_error("%s: write failed: %s", path, strerror(errno));
            fclose(fp);
        } else if (fclose(fp) != 0) {
            rc = ls_set_error("%s: write failed: %s", path, strerror(errno));
        } else if (rename(tmp, path) != 0) {
            rc = ls_set_error("%s: cannot rename temporary file into place: %s", path, strerror(errno));
        }
        if (rc != LS_OK) unlink(tmp);
    }
    for (int i = 0; i < n_text; i++) free(owned[i]);
    free(owned);
    free(texts);
    free(tmp);
    return rc;
}

/* ================================================================================================ */
/* reading text chunks                                                                              */
/* ================================================================================================ */

/* The value of key among info's text chunks as malloc'd UTF-8, or NULL. */
static char *find_text(png_structp png, png_infop info, const char *key) {
    png_textp t;
    int n = 0;
    png_get_text(png, info, &t, &n);
    for (int i = 0; i < n; i++) {
        if (strcmp(t[i].key, key) != 0) continue;
        int is_itxt = t[i].compression >= PNG_ITXT_COMPRESSION_NONE;
        char *s = is_itxt ? strdup(t[i].text ? t[i].text : "") : latin1_to_utf8(t[i].text ? t[i].text : "");
        LS_ASSERT(s);
        return s;
    }
    return NULL;
}

char *image_png_get_text(const char *path, const char *key) {
    FILE *fp = fopen(path, "rbe");
    if (!fp) {
        ls_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(fp);
        ls_set_error("%s: not a PNG file", path);
        return NULL;
    }
    PngErr e = {{0}, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &e, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_infop end_info = info ? png_create_info_struct(png) : NULL;
    if (!end_info) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        ls_set_error("%s: cannot initialise libpng", path);
        return NULL;
    }
    unsigned char *volatile row = NULL; /* volatile: assigned after setjmp, freed after a longjmp */
    if (setjmp(png_jmpbuf(png))) {
        free(row);
        png_destroy_read_struct(&png, &info, &end_info);
        fclose(fp);
        ls_set_error("%s: corrupt PNG: %s", path, e.msg);
        return NULL;
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info); /* everything up to the first IDAT, where text chunks normally are */
    char *out = find_text(png, info, key);
    if (!out) {
        /* text may also follow the image data: decode the rows (one at a time) to reach png_read_end */
        int passes = png_set_interlace_handling(png);
        png_read_update_info(png, info);
        row = mallocCheck(png_get_rowbytes(png, info));
        png_uint_32 h = png_get_image_height(png, info);
        for (int p = 0; p < passes; p++)
            for (png_uint_32 y = 0; y < h; y++) png_read_row(png, row, NULL);
        png_read_end(png, end_info);
        out = find_text(png, end_info, key);
        free(row);
        row = NULL;
    }
    png_destroy_read_struct(&png, &info, &end_info);
    fclose(fp);
    if (!out) ls_set_error("%s: no text chunk '%s'", path, key);
    return out;
}

/* ================================================================================================ */
/* loading any image                                                                                */
/* ================================================================================================ */

/* stb_image checks neither chunk CRCs nor the zlib Adler-32, so a PNG with flipped bytes can decode to
 * garbage. Walk the chunks first and verify the CRC of every critical chunk (upper-case first letter),
 * as libpng does; ancillary chunks with bad CRCs are ignored, also as libpng does. fp is left at 0. */
static int png_check_crcs(FILE *fp, const char *path) {
    unsigned char b[8], buf[16384];
    int rc = LS_OK, seen_iend = 0;
    if (fseek(fp, 8, SEEK_SET) != 0) rc = ls_set_error("%s: cannot seek", path);
    while (rc == LS_OK && !seen_iend) {
        if (fread(b, 1, 8, fp) != 8) {
            rc = ls_set_error("%s: corrupt PNG: truncated (no IEND chunk)", path);
            break;
        }
        uint32_t len = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        char type[5] = {(char)b[4], (char)b[5], (char)b[6], (char)b[7], 0};
        if (len > 0x7fffffffu) {
            rc = ls_set_error("%s: corrupt PNG: chunk length %u too large", path, len);
            break;
        }
        uLong crc = crc32(crc32(0, NULL, 0), b + 4, 4);
        for (uint32_t left = len; left > 0;) {
            size_t k = fread(buf, 1, LS_MIN(left, (uint32_t)sizeof buf), fp);
            if (k == 0) break;
            crc = crc32(crc, buf, (uInt)k);
            left -= (uint32_t)k;
        }
        if (fread(b, 1, 4, fp) != 4) {
            rc = ls_set_error("%s: corrupt PNG: truncated in chunk %s", path, type);
            break;
        }
        uint32_t stored = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (stored != (uint32_t)crc && !(type[0] & 0x20))
            rc = ls_set_error("%s: corrupt PNG: chunk %s fails its CRC check", path, type);
        seen_iend = strcmp(type, "IEND") == 0;
    }
    rewind(fp);
    return rc;
}

int image_load(Image *img, const char *path) {
    memset(img, 0, sizeof *img);
    FILE *fp = fopen(path, "rbe"); /* opened here so a missing file reports errno, not "can't fopen" */
    if (!fp) return ls_set_error("%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, fp) == 8 && png_sig_cmp(sig, 0, 8) == 0 && png_check_crcs(fp, path) != LS_OK) {
        fclose(fp);
        return LS_ERR;
    }
    rewind(fp);
    int w, h, n;
    unsigned char *rgba = stbi_load_from_file(fp, &w, &h, &n, 4); /* 16-bit is reduced to 8 by stb */
    fclose(fp);
    if (!rgba) return ls_set_error("%s: cannot decode image: %s", path, stbi_failure_reason());
    size_t np = (size_t)w * (size_t)h;
    img->data = mallocCheck(np * 3);
    img->w = w, img->h = h, img->c = 3;
    for (size_t i = 0; i < np; i++) {
        const unsigned char *s = rgba + 4 * i;
        unsigned a = s[3];
        for (int k = 0; k < 3; k++) /* composite over white: v·a + 255·(1-a), rounded */
            img->data[3 * i + k] = (uint8_t)((s[k] * a + 255u * (255u - a) + 127u) / 255u);
    }
    stbi_image_free(rgba);
    return LS_OK;
}

void image_free(Image *img) {
    free(img->data);
    memset(img, 0, sizeof *img);
}

void image_from_chw(Image *img, const float *x, int H, int W) {
    size_t hw = (size_t)H * (size_t)W;
    img->w = W, img->h = H, img->c = 3;
    img->data = mallocCheck(hw * 3);
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) {
            float v = x[(size_t)c * hw + i] * 0.5f + 0.5f;
            if (!(v > 0.0f)) v = 0.0f; /* also maps NaN to 0 */
            if (v > 1.0f) v = 1.0f;
            img->data[3 * i + c] = (uint8_t)lrintf(v * 255.0f); /* round half to even, as numpy's round */
        }
}
