/* image.c — see image.h.
 *
 * Writing uses libpng directly (text chunks need its full API). Every libpng error longjmps back to the
 * setjmp in the function that created the png struct; the error callback records libpng's message so the
 * caller can report it.
 *
 * Reading goes by content, never by name: the magic bytes pick the decoder and the header gives the size,
 * which is checked against the limits before anything is allocated. PNG is decoded by libpng and JPEG by
 * libjpeg-turbo, both with their errors (and libjpeg's corrupt-data warnings) turned into one-line
 * messages. stb_image is kept for BMP and TGA only, and reached only after checks that the file's data
 * covers the whole image and that palette indices are in range — stb would pad short data with zeros or
 * read palette entries the file never set. Every other format (GIF, PSD, HDR, PNM, ...) is refused, even
 * when named .png or .jpg: stb_image would decode several of them.
 *
 * PNG text: tEXt is Latin-1 by definition, iTXt is UTF-8. Our strings are UTF-8, so a value whose code
 * points all fit in Latin-1 is transcoded into a tEXt chunk (what PIL, and therefore A1111, does) and any
 * other value goes into an iTXt chunk. Reading converts tEXt/zTXt back from Latin-1 to UTF-8.
 */
#include "image.h"

#include "common.h" /* defines: ls_set_error, mallocCheck, LS_OK/LS_ERR */

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stb_image.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h> /* after stdio.h (common.h): libjpeg's headers need FILE and size_t */
#include <jerror.h>  /* defines: JWRN_* message codes */

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
/* identifying a file: magic bytes and header sizes                                                 */
/* ================================================================================================ */

static uint32_t rd_le16(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd_le32(const uint8_t *p) { return rd_le16(p) | rd_le16(p + 2) << 16; }
static uint32_t rd_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The name of a format recognised by its magic bytes only to be refused (stb_image would decode several
 * of them, whatever the file is called), or NULL. */
static const char *other_format(const uint8_t *b, size_t n) {
    static const struct {
        const char *magic;
        size_t at, len;
        const char *name;
    } known[] = {{"GIF8", 0, 4, "GIF"},         {"8BPS", 0, 4, "PSD"},        {"#?RADIANCE", 0, 10, "HDR"},
                 {"#?RGBE", 0, 6, "HDR"},       {"WEBP", 8, 4, "WebP"},       {"II*\0", 0, 4, "TIFF"},
                 {"MM\0*", 0, 4, "TIFF"},       {"ftyp", 4, 4, "HEIF/AVIF"},  {"\xff\x0a", 0, 2, "JPEG XL"},
                 {"\0\0\0\x0cJXL ", 0, 8, "JPEG XL"}, {"\x53\x80\xf6\x34", 0, 4, "Softimage PIC"},
                 {"qoif", 0, 4, "QOI"}};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (n >= known[i].at + known[i].len && memcmp(b + known[i].at, known[i].magic, known[i].len) == 0)
            return known[i].name;
    if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && strchr(" \t\r\n", b[2]))
        return "PNM (PPM/PGM/PBM)";
    return NULL;
}

/* TGA has no magic bytes: accept only a header stb_image's TGA reader handles (its own test), with no
 * interleaving and, when color-mapped, a first palette index of 0 (stb would skip that many bytes). */
static int tga_header(const uint8_t *b, size_t n, int64_t *w, int64_t *h) {
    if (n < 18 || b[1] > 1 || (b[17] & 0xc0)) return 0;
    int type = b[2], bits = b[16];
    if (b[1] == 1) { /* color-mapped: 8- or 16-bit indices into a palette of 8/15/16/24/32-bit entries */
        if ((type != 1 && type != 9) || rd_le16(b + 3) != 0 || rd_le16(b + 5) == 0) return 0;
        if (b[7] != 8 && b[7] != 15 && b[7] != 16 && b[7] != 24 && b[7] != 32) return 0;
        if (bits != 8 && bits != 16) return 0;
    } else { /* true color or gray, raw or RLE */
        if (type != 2 && type != 3 && type != 10 && type != 11) return 0;
        if (bits != 8 && bits != 15 && bits != 16 && bits != 24 && bits != 32) return 0;
    }
    *w = rd_le16(b + 12), *h = rd_le16(b + 14);
    return 1;
}

/* A JPEG's size from its frame header (SOFn): walk the marker segments from fp's start. 1 if found. */
static int jpeg_frame_size(FILE *fp, int64_t *w, int64_t *h) {
    if (fseek(fp, 2, SEEK_SET) != 0) return 0;
    for (;;) {
        int m = getc(fp);
        if (m != 0xff) return 0;
        while (m == 0xff) m = getc(fp); /* fill bytes */
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; /* TEM, RSTn: no length */
        uint8_t s[7];
        if (m == EOF || m == 0xd9 || m == 0xda || fread(s, 1, 2, fp) != 2) return 0; /* EOI/SOS: no frame */
        unsigned len = (unsigned)s[0] << 8 | s[1];
        if (len < 2) return 0;
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) { /* SOFn, not DHT/JPG/DAC */
            if (len < 7 || fread(s + 2, 1, 5, fp) != 5) return 0;
            *h = s[3] << 8 | s[4], *w = s[5] << 8 | s[6];
            return 1;
        }
        if (fseek(fp, (long)len - 2, SEEK_CUR) != 0) return 0;
    }
}

/* Identify the file open as fp (see image_probe); fp is left anywhere. */
static int sniff(FILE *fp, const char *path, ImageInfo *info) {
    uint8_t b[64];
    memset(info, 0, sizeof *info);
    rewind(fp);
    size_t n = fread(b, 1, sizeof b, fp);
    if (n == 0) return ls_set_error("%s: %s", path, ferror(fp) ? strerror(errno) : "empty file");
    const char *other;
    if (n >= 8 && png_sig_cmp(b, 0, 8) == 0) {
        info->format = IMAGE_PNG;
        if (n < 24 || memcmp(b + 12, "IHDR", 4) != 0)
            return ls_set_error("%s: corrupt PNG: no IHDR chunk", path);
        info->w = rd_be32(b + 16), info->h = rd_be32(b + 20);
    } else if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) {
        info->format = IMAGE_JPEG;
        if (!jpeg_frame_size(fp, &info->w, &info->h))
            return ls_set_error("%s: corrupt JPEG: no frame header", path);
    } else if (n >= 2 && b[0] == 'B' && b[1] == 'M') {
        info->format = IMAGE_BMP;
        uint32_t hsz = n >= 18 ? rd_le32(b + 14) : 0;
        if (n < 26 || (hsz != 12 && hsz != 40 && hsz != 56 && hsz != 108 && hsz != 124))
            return ls_set_error("%s: corrupt BMP: unknown header", path);
        info->w = hsz == 12 ? (int64_t)rd_le16(b + 18) : (int32_t)rd_le32(b + 18);
        info->h = hsz == 12 ? (int64_t)rd_le16(b + 20) : llabs((int32_t)rd_le32(b + 22)); /* < 0: top-down */
    } else if ((other = other_format(b, n))) {
        info->format = IMAGE_OTHER;
        return ls_set_error("%s: %s data: unsupported image format (use PNG, JPEG, BMP or TGA)", path, other);
    } else if (tga_header(b, n, &info->w, &info->h)) {
        info->format = IMAGE_TGA;
    } else {
        return ls_set_error("%s: not a PNG, JPEG, BMP or TGA image", path);
    }
    if (info->w < 1 || info->h < 1)
        return ls_set_error("%s: the header gives an empty %lldx%lld image", path, (long long)info->w,
                            (long long)info->h);
    return LS_OK;
}

int image_probe(FILE *fp, const char *path, ImageInfo *info) { return sniff(fp, path, info); }

/* ================================================================================================ */
/* decoding                                                                                         */
/* ================================================================================================ */

/* 8-bit RGBA (w, h) → img as RGB, composited over white: v·a + 255·(1-a), rounded. */
static void flatten_rgba(Image *img, const uint8_t *rgba, int w, int h) {
    size_t np = (size_t)w * (size_t)h;
    img->data = mallocCheck(np * 3);
    img->w = w, img->h = h, img->c = 3;
    for (size_t i = 0; i < np; i++) {
        const uint8_t *s = rgba + 4 * i;
        unsigned a = s[3];
        for (int k = 0; k < 3; k++)
            img->data[3 * i + k] = (uint8_t)((s[k] * a + 255u * (255u - a) + 127u) / 255u);
    }
}

/* ---- PNG (libpng: it checks every CRC and the zlib stream; each error longjmps to png_decode) ---- */

static void png_read_fp(png_structp png, png_bytep out, size_t n) {
    FILE *fp = png_get_io_ptr(png);
    if (fread(out, 1, n, fp) != n) png_error(png, ferror(fp) ? "read error" : "truncated");
}

static int png_decode(FILE *fp, const char *path, const ImageInfo *info, Image *img) {
    PngErr e = {{0}, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &e, on_png_error, on_png_warning);
    png_infop pi = png ? png_create_info_struct(png) : NULL;
    if (!pi) {
        png_destroy_read_struct(&png, NULL, NULL);
        return ls_set_error("%s: cannot initialise libpng", path);
    }
    uint8_t *volatile rgba = NULL; /* volatile: assigned after setjmp, freed after a longjmp */
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rgba), free(rows);
        png_destroy_read_struct(&png, &pi, NULL);
        return ls_set_error("%s: corrupt PNG: %s", path, e.msg);
    }
    png_set_read_fn(png, fp, png_read_fp);
    png_read_info(png, pi);
    png_uint_32 w = png_get_image_width(png, pi), h = png_get_image_height(png, pi);
    if (w != info->w || h != info->h) png_error(png, "IHDR changed while reading");
    png_set_expand(png);    /* palette → RGB, gray below 8 bits → 8, tRNS → alpha */
    png_set_strip_16(png);  /* 16 → 8 bits: the high byte */
    png_set_gray_to_rgb(png);
    png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER); /* opaque alpha where the file has none */
    png_set_interlace_handling(png);
    png_read_update_info(png, pi);
    if (png_get_rowbytes(png, pi) != 4 * (size_t)w) png_error(png, "unexpected row size");
    rgba = malloc(4 * (size_t)w * h);
    rows = malloc(h * sizeof *rows);
    if (!rgba || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = rgba + 4 * (size_t)w * y;
    png_read_image(png, rows); /* every pass of an interlaced file: all pixels are written */
    png_read_end(png, NULL);   /* the chunks after the image data, up to IEND */
    png_destroy_read_struct(&png, &pi, NULL);
    flatten_rgba(img, rgba, (int)w, (int)h);
    free(rgba), free(rows);
    return LS_OK;
}

/* ---- JPEG (libjpeg-turbo, as Pillow decodes it: islow IDCT, fancy upsampling) ---- */

#define JPEG_MAX_SCANS 1000 /* a progressive file can make decoding take forever with millions of scans */

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg hands back cinfo->err */
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 32];
} JpegErr;

static void on_jpeg_error(j_common_ptr ci) {
    JpegErr *e = (JpegErr *)ci->err;
    char m[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, m);
    if (ci->err->msg_code == JWRN_JPEG_EOF)
        snprintf(e->msg, sizeof e->msg, "truncated JPEG (premature end of data)");
    else /* libjpeg's warnings already say "Corrupt JPEG data: ..." */
        snprintf(e->msg, sizeof e->msg, "corrupt JPEG: %s", strncmp(m, "Corrupt JPEG data: ", 19) ? m : m + 19);
    longjmp(e->jb, 1);
}

/* Warnings (level -1) are corrupt data libjpeg would paper over (a grey fill after a premature end,
 * skipped garbage, a bad Huffman code): all but the harmless ones are errors. Traces are ignored. */
static void on_jpeg_message(j_common_ptr ci, int level) {
    int code = ci->err->msg_code;
    if (level < 0 && code != JWRN_ADOBE_XFORM && code != JWRN_JFIF_MAJOR && code != JWRN_BOGUS_ICC)
        on_jpeg_error(ci);
}

static void on_jpeg_progress(j_common_ptr ci) {
    JpegErr *e = (JpegErr *)ci->err;
    if (((j_decompress_ptr)ci)->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(e->msg, sizeof e->msg, "corrupt JPEG: more than %d scans", JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

static int jpeg_decode(FILE *fp, const char *path, const ImageInfo *info, Image *img) {
    struct jpeg_decompress_struct ci;
    JpegErr e;
    uint8_t *volatile rgba = NULL;
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_jpeg_error;
    e.pub.emit_message = on_jpeg_message;
    e.progress.progress_monitor = on_jpeg_progress;
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&ci);
        free(rgba);
        return ls_set_error("%s: %s", path, e.msg);
    }
    jpeg_create_decompress(&ci);
    ci.progress = &e.progress;
    jpeg_stdio_src(&ci, fp);
    jpeg_read_header(&ci, TRUE);
    /* CMYK/YCCK (Adobe's inverted CMYK, as stb and Pillow read it) comes out as CMYK, converted below */
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    ci.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_RGBA;
    jpeg_start_decompress(&ci);
    size_t w = ci.output_width, h = ci.output_height;
    if ((int64_t)w != info->w || (int64_t)h != info->h || ci.output_components != 4) {
        snprintf(e.msg, sizeof e.msg, "corrupt JPEG: frame header changed while reading");
        longjmp(e.jb, 1);
    }
    rgba = malloc(4 * w * h);
    if (!rgba) {
        snprintf(e.msg, sizeof e.msg, "out of memory for a %zux%zu image", w, h);
        longjmp(e.jb, 1);
    }
    while (ci.output_scanline < h) {
        JSAMPROW row = rgba + 4 * w * ci.output_scanline;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci); /* reads up to the end-of-image marker */
    jpeg_destroy_decompress(&ci);
    for (size_t i = 0; cmyk && i < w * h; i++) {
        uint8_t *p = rgba + 4 * i;
        for (int k = 0; k < 3; k++) p[k] = (uint8_t)((p[k] * p[3] + 127) / 255);
        p[3] = 255;
    }
    flatten_rgba(img, rgba, (int)w, (int)h);
    free(rgba);
    return LS_OK;
}

/* ---- BMP and TGA (stb_image, after checking what it would silently get wrong) ---- */

/* stb pads short data with zeros and reads palette entries the file never set: NULL if the file's data
 * covers the image and every palette index is in range, else the problem. b, n: the whole file; w, h
 * from sniff. stb reads only uncompressed BMPs with 1/4/8/16/24/32 bits per pixel. */
static const char *bmp_check(const uint8_t *b, size_t n, int64_t w, int64_t h) {
    uint32_t off = rd_le32(b + 10), hsz = rd_le32(b + 14);
    if (n < 14 + (uint64_t)hsz) return "truncated BMP (header is short)";
    int bits = hsz == 12 ? rd_le16(b + 24) : rd_le16(b + 28);
    uint32_t comp = hsz == 12 ? 0 : rd_le32(b + 30);
    if (comp == 1 || comp == 2) return "run-length compressed BMP (unsupported: use PNG)";
    if (comp != 0 && comp != 3) return "corrupt BMP: unknown compression";
    if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
        return "corrupt BMP: bad bits per pixel";
    if (off < 14 + (uint64_t)hsz + (comp == 3 && hsz <= 56 ? 12 : 0)) return "corrupt BMP: bad data offset";
    uint64_t stride = ((uint64_t)w * bits + 31) / 32 * 4;
    if (off + stride * (uint64_t)h > n) return "truncated BMP (pixel data is short)";
    if (bits > 8) return NULL;
    /* the palette size stb reads: (off - 14 - hsz) / 4 entries, (off - 38) / 3 for an OS/2 header */
    int64_t pal = hsz == 12 ? ((int64_t)off - 38) / 3 : ((int64_t)off - 14 - hsz) / 4;
    if (pal < 1 || pal > 256) return "corrupt BMP: bad palette size";
    if (pal >= 1 << bits) return NULL;
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *row = b + off + y * stride;
        for (int64_t x = 0; x < w; x++) {
            int64_t bit = x * bits;
            int v = (row[bit / 8] >> (8 - bits - bit % 8)) & ((1 << bits) - 1);
            if (v >= pal) return "corrupt BMP: a pixel's palette index is outside the palette";
        }
    }
    return NULL;
}

static const char *tga_check(const uint8_t *b, size_t n, int64_t w, int64_t h) {
    int rle = b[2] >= 9, bpp = (b[16] + 7) / 8;
    uint64_t pos = 18 + b[0] + (b[1] ? (uint64_t)rd_le16(b + 5) * ((b[7] + 7) / 8) : 0);
    uint64_t px = (uint64_t)w * (uint64_t)h;
    if (!rle) return pos + px * bpp <= n ? NULL : "truncated TGA (pixel data is short)";
    for (uint64_t got = 0; got < px;) { /* packets: a byte (repeat flag, count-1), then 1 or count pixels */
        if (pos >= n) return "truncated TGA (run-length data is short)";
        unsigned head = b[pos], k = (head & 0x7f) + 1;
        pos += 1 + (uint64_t)(head & 0x80 ? 1 : k) * bpp;
        got += k;
    }
    return pos <= n ? NULL : "truncated TGA (run-length data is short)";
}

static int stb_decode(FILE *fp, const char *path, const ImageInfo *info, Image *img) {
    const char *what = info->format == IMAGE_BMP ? "BMP" : "TGA";
    long len = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    if (len < 0 || len > INT_MAX)
        return ls_set_error("%s: cannot read the %s file (%ld bytes)", path, what, len);
    uint8_t *b = malloc((size_t)len);
    rewind(fp);
    if (!b || fread(b, 1, (size_t)len, fp) != (size_t)len) {
        free(b);
        return ls_set_error("%s: read error", path);
    }
    const char *bad = info->format == IMAGE_BMP ? bmp_check(b, (size_t)len, info->w, info->h)
                                                : tga_check(b, (size_t)len, info->w, info->h);
    if (bad) {
        free(b);
        return ls_set_error("%s: %s", path, bad);
    }
    int w, h, n;
    uint8_t *rgba = stbi_load_from_memory(b, (int)len, &w, &h, &n, 4);
    free(b);
    if (!rgba) return ls_set_error("%s: corrupt %s: %s", path, what, stbi_failure_reason());
    int ok = w == info->w && h == info->h;
    if (ok) flatten_rgba(img, rgba, w, h);
    stbi_image_free(rgba);
    return ok ? LS_OK : ls_set_error("%s: corrupt %s: size changed while reading", path, what);
}

int image_load_max(Image *img, const char *path, int max_side, int64_t max_pixels) {
    memset(img, 0, sizeof *img);
    FILE *fp = fopen(path, "rbe"); /* opened here so a missing file reports errno */
    if (!fp) return ls_set_error("%s: cannot open: %s", path, strerror(errno));
    ImageInfo info;
    int rc = sniff(fp, path, &info);
    if (rc == LS_OK && (info.w > max_side || info.h > max_side || info.w * info.h > max_pixels))
        rc = ls_set_error("%s: %lldx%lld exceeds the limit of %d px per side and %lld pixels", path,
                          (long long)info.w, (long long)info.h, max_side, (long long)max_pixels);
    if (rc == LS_OK) {
        rewind(fp);
        rc = info.format == IMAGE_PNG    ? png_decode(fp, path, &info, img)
             : info.format == IMAGE_JPEG ? jpeg_decode(fp, path, &info, img)
                                         : stb_decode(fp, path, &info, img);
    }
    fclose(fp);
    return rc;
}

int image_load(Image *img, const char *path) {
    return image_load_max(img, path, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
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
