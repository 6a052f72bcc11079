/* dataset.c — see dataset.h; the rules (folders, captions, buckets, resampling) are in datasets/README.md.
 *
 * Sections: options and buckets · caption text (UTF-8 repair, tags) · checking one image · the scan ·
 * resize and crop · captions per step · epoch order · report.
 */
#include "dataset.h"

#include "common.h" /* defines: ls_set_error, ls_warn, mallocCheck, ls_path_join, LS_OK/LS_ERR */
#include "image.h"  /* defines: Image, image_probe, image_load_max */
#include "pool.h"   /* defines: pool_alloc, pool_free */
#include "rng.h"    /* defines: rng_u32, rng_mix64 */
#include "sha256.h" /* defines: Sha256, sha256_* */

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CAPTION_MAX_BYTES 65536   /* only the first line of a caption file is used; longer lines are cut */
#define FILE_MAX_BYTES (1u << 30) /* an image file above 1 GiB is refused like a huge image */
#define MAX_SAMPLES (1 << 30)     /* Σ repeats per epoch */

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = mallocCheck(n);
    memcpy(p, s, n);
    return p;
}

/* Grow *v (element size sz) so that it holds at least n elements. */
static void grow(void **v, int *cap, int n, size_t sz) {
    if (n <= *cap) return;
    int c = *cap ? *cap : 8;
    while (c < n) c *= 2;
    void *p = realloc(*v, (size_t)c * sz);
    LS_ASSERT(p);
    *v = p, *cap = c;
}

/* ================================================================================================ */
/* options and buckets                                                                              */
/* ================================================================================================ */

void dataset_options_default(DatasetOptions *o) {
    memset(o, 0, sizeof *o);
    o->resolution = 512;
    o->bucket_step = 64;
    o->caption_ext = ".txt";
}

/* Bucket limits with the defaults filled in. */
static void bucket_limits(const DatasetOptions *o, int *step, int *mn, int *mx) {
    *step = o->bucket_step > 0 ? o->bucket_step : 64;
    *mn = o->min_bucket > 0 ? o->min_bucket : LS_MAX(*step, o->resolution / 2 / *step * *step);
    *mx = o->max_bucket > 0 ? o->max_bucket : 2 * o->resolution / *step * *step;
}

int dataset_check_options(const DatasetOptions *o) {
    if (o->resolution < 8 || o->resolution > 8192 || o->resolution % 8 != 0)
        return ls_set_error("--resolution %d: must be a multiple of 8 between 8 and 8192", o->resolution);
    if (o->keep_tokens < 0) return ls_set_error("--keep-tokens %d: must be 0 or more", o->keep_tokens);
    if (!(o->caption_dropout >= 0 && o->caption_dropout <= 1))
        return ls_set_error("--caption-dropout %g: must be between 0 and 1", (double)o->caption_dropout);
    if (!(o->tag_dropout >= 0 && o->tag_dropout < 1))
        return ls_set_error("--tag-dropout %g: must be at least 0 and below 1", (double)o->tag_dropout);
    if (!o->buckets) return LS_OK;
    int step, mn, mx;
    bucket_limits(o, &step, &mn, &mx);
    if (step % 8 != 0) return ls_set_error("bucket step %d: must be a positive multiple of 8", step);
    if (mn % step != 0 || mx % step != 0 || mn < step || mn > mx)
        return ls_set_error("bucket sides %d..%d: must be multiples of the step %d with min <= max", mn, mx,
                            step);
    int square = o->resolution / step * step;
    if (square < mn || square > mx)
        return ls_set_error("--resolution %d: its square bucket %d is outside the bucket sides %d..%d",
                            o->resolution, square, mn, mx);
    return LS_OK;
}

static int cmp_pair(const void *a, const void *b) {
    const int *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* kohya's make_bucket_resolutions: the square floor(√A/step)·step, then for every width from min to max
 * in steps the tallest height with w·h ≤ A (capped at max), kept with its transpose if ≥ min. */
int dataset_bucket_list(const DatasetOptions *o, int **list) {
    int step, mn, mx;
    bucket_limits(o, &step, &mn, &mx);
    int64_t area = (int64_t)o->resolution * o->resolution;
    int cap = 2 * ((mx - mn) / step + 1) + 1, n = 0;
    int *v = mallocCheck((size_t)cap * 2 * sizeof(int));
    int sq = (int)(floor(sqrt((double)area)) / step) * step;
    v[n * 2] = sq, v[n * 2 + 1] = sq, n++;
    for (int w = mn; w <= mx; w += step) {
        int h = (int)LS_MIN((int64_t)mx, area / w / step * step);
        if (h < mn) continue;
        v[n * 2] = w, v[n * 2 + 1] = h, n++;
        v[n * 2] = h, v[n * 2 + 1] = w, n++;
    }
    qsort(v, (size_t)n, 2 * sizeof(int), cmp_pair);
    int m = 0; /* drop duplicates */
    for (int i = 0; i < n; i++)
        if (m == 0 || cmp_pair(v + 2 * i, v + 2 * (m - 1)) != 0)
            v[2 * m] = v[2 * i], v[2 * m + 1] = v[2 * i + 1], m++;
    *list = v;
    return m;
}

/* Default: the predefined bucket whose aspect ratio is nearest in log space (so an image and its transpose
 * get transposed buckets; kohya compares w/h linearly), ties to the larger area; the image is then scaled
 * just enough to cover it. no_upscale: the image keeps its size (shrunk to area ≤ resolution² if larger),
 * each side floored to the step (at least one step, at most the max side) — crop, never pad. */
void dataset_bucket_for(const DatasetOptions *o, int w, int h, int *bw, int *bh) {
    if (!o->buckets) {
        *bw = *bh = o->resolution;
        return;
    }
    int step, mn, mx;
    bucket_limits(o, &step, &mn, &mx);
    if (o->bucket_no_upscale) {
        double area = (double)o->resolution * o->resolution;
        double s = LS_MIN(1.0, sqrt(area / ((double)w * h)));
        *bw = LS_MIN(mx, LS_MAX(step, (int)floor(w * s / step + 1e-6) * step));
        *bh = LS_MIN(mx, LS_MAX(step, (int)floor(h * s / step + 1e-6) * step));
        return;
    }
    int *list, n = dataset_bucket_list(o, &list), best = 0;
    double ar = log((double)w / h), best_err = INFINITY;
    for (int i = 0; i < n; i++) {
        double err = fabs(log((double)list[2 * i] / list[2 * i + 1]) - ar);
        int64_t area = (int64_t)list[2 * i] * list[2 * i + 1];
        int64_t best_area = (int64_t)list[2 * best] * list[2 * best + 1];
        if (err < best_err - 1e-12 || (fabs(err - best_err) <= 1e-12 && area > best_area))
            best = i, best_err = err;
    }
    *bw = list[2 * best], *bh = list[2 * best + 1];
    free(list);
}

/* ================================================================================================ */
/* caption text                                                                                     */
/* ================================================================================================ */

/* Valid UTF-8 copy of s[0..n): each maximal invalid subsequence becomes U+FFFD (as Python's
 * errors="replace"). *n_bad counts the replacements. malloc'd. */
static char *utf8_repair(const unsigned char *s, size_t n, int *n_bad) {
    char *out = mallocCheck(3 * n + 1), *o = out;
    *n_bad = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            *o++ = (char)c, i++;
            continue;
        }
        int need = 0;
        unsigned lo = 0x80, hi = 0xbf; /* allowed range of the first continuation byte */
        if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c == 0xe0) need = 2, lo = 0xa0; /* no overlong 3-byte forms */
        else if (c == 0xed) need = 2, hi = 0x9f; /* no surrogates */
        else if (c >= 0xe1 && c <= 0xef) need = 2;
        else if (c == 0xf0) need = 3, lo = 0x90; /* no overlong 4-byte forms */
        else if (c >= 0xf1 && c <= 0xf3) need = 3;
        else if (c == 0xf4) need = 3, hi = 0x8f; /* ≤ U+10FFFF */
        size_t j = i + 1;
        int k = 0;
        while (need && k < need && j < n) {
            unsigned b = s[j];
            if (k == 0 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) break;
            j++, k++;
        }
        if (need && k == need) {
            memcpy(o, s + i, j - i), o += j - i;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3), o += 3; /* U+FFFD for the lead byte and its valid prefix */
            (*n_bad)++;
        }
        i = j;
    }
    *o = 0;
    return out;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A tag: s[off .. off+len) of the caption. */
typedef struct {
    int off, len;
} Span;

/* The room split_tags needs for s: one Span per comma-separated piece. */
static size_t tags_room(const char *s) {
    size_t n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

/* Split on ',' and trim; empty tags are dropped. v: room for tags_room(s) Spans. Returns the count. */
static int split_tags(const char *s, Span *v) {
    int n = 0;
    for (const char *p = s;;) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && is_space(*a)) a++;
        while (b > a && is_space(b[-1])) b--;
        if (b > a) v[n].off = (int)(a - s), v[n].len = (int)(b - a), n++;
        if (!*e) break;
        p = e + 1;
    }
    return n;
}

/* The stem of an image path plus the caption extension. malloc'd. */
static char *caption_path(const char *img, const char *ext);

/* The other usual caption extension (.txt / .caption) when img has a caption under it, else NULL. */
static const char *other_caption_ext(const char *img, const char *ext) {
    static const char *const exts[] = {".txt", ".caption"};
    for (int k = 0; k < 2; k++) {
        if (!strcmp(ext, exts[k])) continue;
        char *p = caption_path(img, exts[k]);
        struct stat st;
        int found = stat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        if (found) return exts[k];
    }
    return NULL;
}

static char *caption_path(const char *img, const char *ext) {
    const char *slash = strrchr(img, '/'), *dot = strrchr(img, '.');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - img) : strlen(img);
    char *p = mallocCheck(stem + strlen(ext) + 1);
    memcpy(p, img, stem);
    strcpy(p + stem, ext);
    return p;
}

/* ================================================================================================ */
/* scan state and warnings                                                                          */
/* ================================================================================================ */

typedef struct {
    Dataset *d;
    int cap_items, cap_subsets, cap_skipped;
    int missing_warned; /* individual missing-caption warnings printed so far (5 at most) */
} Scan;

static void vwarn(const Dataset *d, const char *fmt, va_list ap, char *buf, size_t cap) {
    vsnprintf(buf, cap, fmt, ap);
    if (!d->opt.quiet) ls_warn("%s", buf);
}

static void warn(const Dataset *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const Dataset *d, const char *fmt, ...) {
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vwarn(d, fmt, ap, buf, sizeof buf);
    va_end(ap);
}

/* Record (and print) a skipped image. The message is "<path>: skipped: <problem>". */
static void skip(Scan *sc, const char *path, DatasetSkipReason r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void skip(Scan *sc, const char *path, DatasetSkipReason r, const char *fmt, ...) {
    Dataset *d = sc->d;
    char problem[1000], buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    size_t pl = strlen(path); /* messages from image_load already start with "<path>: " */
    const char *p = strncmp(problem, path, pl) == 0 && problem[pl] == ':' ? problem + pl + 2 : problem;
    snprintf(buf, sizeof buf, "%s: skipped: %s", path, p);
    if (!d->opt.quiet) ls_warn("%s", buf);
    grow((void **)&d->skipped, &sc->cap_skipped, d->n_skipped + 1, sizeof *d->skipped);
    d->skipped[d->n_skipped++] = (DatasetSkipped){xstrdup(path), r, xstrdup(buf)};
    d->skipped_by[r]++;
}

/* ================================================================================================ */
/* checking one image                                                                               */
/* ================================================================================================ */

static void size_limits(const DatasetOptions *o, int *max_side, int64_t *max_px) {
    *max_side = o->max_side > 0 ? o->max_side : DATASET_MAX_SIDE;
    *max_px = o->max_pixels > 0 ? o->max_pixels : DATASET_MAX_PIXELS;
}

/* Check one image file and fill it->path/w/h/sha256. 1: usable; 0: skipped (recorded with a warning).
 * Order: format and size from the header (image_probe, no pixel allocation) → limits → read + hash →
 * full decode (image_load_max). */
static int check_image(Scan *sc, const char *path, DatasetItem *it) {
    int max_side;
    int64_t max_px;
    size_limits(&sc->d->opt, &max_side, &max_px);
    struct stat st;
    if (stat(path, &st) != 0) {
        skip(sc, path, DS_SKIP_UNREADABLE, "cannot open: %s", strerror(errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        skip(sc, path, DS_SKIP_UNREADABLE, "not a regular file");
        return 0;
    }
    if ((uint64_t)st.st_size > FILE_MAX_BYTES) {
        skip(sc, path, DS_SKIP_HUGE, "file is %lld MiB (limit %u MiB)", (long long)(st.st_size >> 20),
             FILE_MAX_BYTES >> 20);
        return 0;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        skip(sc, path, DS_SKIP_UNREADABLE, "cannot open: %s", strerror(errno));
        return 0;
    }
    ImageInfo info; /* format and size from the header (image.c's sniffing), nothing decoded yet */
    if (image_probe(fp, path, &info) != LS_OK) {
        fclose(fp);
        DatasetSkipReason r = info.format == IMAGE_OTHER ? DS_SKIP_UNSUPPORTED : DS_SKIP_CORRUPT;
        skip(sc, path, r, "%s", ls_last_error());
        return 0;
    }
    if (info.w > max_side || info.h > max_side || info.w * info.h > max_px) {
        fclose(fp);
        skip(sc, path, DS_SKIP_HUGE, "%lldx%lld exceeds the limit of %d px per side and %lld pixels",
             (long long)info.w, (long long)info.h, max_side, (long long)max_px);
        return 0;
    }
    /* the whole file: its hash is the cache key's image part */
    rewind(fp);
    size_t n = (size_t)st.st_size, got;
    uint8_t *buf = mallocCheck(n ? n : 1);
    got = fread(buf, 1, n, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr || got != n) {
        free(buf);
        skip(sc, path, DS_SKIP_UNREADABLE, "read error");
        return 0;
    }
    Sha256 s;
    sha256_init(&s);
    sha256_update(&s, buf, n);
    uint8_t dg[32];
    sha256_final(&s, dg);
    sha256_hex(dg, it->sha256);
    free(buf);
    Image img; /* a full decode: corrupt or truncated data is refused here */
    if (image_load_max(&img, path, max_side, max_px) != LS_OK) {
        skip(sc, path, DS_SKIP_CORRUPT, "%s", ls_last_error());
        return 0;
    }
    image_free(&img);
    it->path = xstrdup(path);
    it->w = (int)info.w, it->h = (int)info.h;
    return 1;
}

/* ================================================================================================ */
/* the scan                                                                                         */
/* ================================================================================================ */

enum { EXT_OTHER, EXT_IMAGE, EXT_UNSUPPORTED };

static int classify_ext(const char *name) {
    static const char *const ok[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga"};
    static const char *const no[] = {".webp", ".gif", ".avif", ".jxl", ".tif", ".tiff", ".heic", ".heif"};
    const char *dot = strrchr(name, '.');
    if (!dot) return EXT_OTHER;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcasecmp(dot, ok[i]) == 0) return EXT_IMAGE;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcasecmp(dot, no[i]) == 0) return EXT_UNSUPPORTED;
    return EXT_OTHER;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names in dir, hidden entries left out. LS_ERR if dir cannot be opened. */
static int list_dir(const char *dir, char ***names, int *n) {
    DIR *dp = opendir(dir);
    if (!dp) return ls_set_error("%s: cannot open dataset folder: %s", dir, strerror(errno));
    int cap = 0;
    *names = NULL, *n = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (e->d_name[0] == '.') continue;
        grow((void **)names, &cap, *n + 1, sizeof **names);
        (*names)[(*n)++] = xstrdup(e->d_name);
    }
    closedir(dp);
    if (*n) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return LS_OK;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* kohya's folder rule: "N_name" → N repeats, class "name" (rest joined with '_'); "N" alone is fine.
 * Returns 1 if name has that form. */
static int parse_repeat_folder(const char *name, int *repeats, const char **cls) {
    const char *p = name;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > INT_MAX / 10) v = INT_MAX / 10; /* saturate; rejected as too many below */
        p++;
    }
    if (p == name || (*p && *p != '_')) return 0;
    *repeats = (int)v;
    *cls = *p ? p + 1 : p;
    return 1;
}

/* Caption of an image from its caption file; NULL when absent/empty/unreadable (warned as needed). */
static char *read_caption(Scan *sc, const char *img_path) {
    Dataset *d = sc->d;
    char *cp = caption_path(img_path, d->opt.caption_ext);
    struct stat st;
    FILE *fp = NULL;
    if (stat(cp, &st) != 0) {
        if (errno != ENOENT) warn(d, "%s: cannot read caption: %s", cp, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) { /* a folder or FIFO would read as nothing, or block */
        warn(d, "%s: not a regular file, ignored", cp);
    } else if (!(fp = fopen(cp, "rb"))) {
        warn(d, "%s: cannot read caption: %s", cp, strerror(errno));
    }
    if (!fp) {
        free(cp);
        return NULL;
    }
    unsigned char *buf = mallocCheck(CAPTION_MAX_BYTES + 1);
    size_t n = fread(buf, 1, CAPTION_MAX_BYTES + 1, fp);
    fclose(fp);
    size_t start = n >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0; /* UTF-8 byte order mark */
    size_t end = start;
    while (end < n && buf[end] != '\n' && buf[end] != '\r') end++; /* first line only (kohya) */
    if (end > CAPTION_MAX_BYTES) {
        end = CAPTION_MAX_BYTES;
        while (end > start && (buf[end] & 0xc0) == 0x80) end--; /* cut at a character boundary */
        warn(d, "%s: caption longer than %d bytes, cut", cp, CAPTION_MAX_BYTES);
    }
    for (size_t i = start; i < end; i++) /* control characters (tab, NUL, ...) become spaces */
        if (buf[i] < 0x20 || buf[i] == 0x7f) buf[i] = ' ';
    int bad;
    char *cap = utf8_repair(buf + start, end - start, &bad);
    free(buf);
    if (bad) {
        warn(d, "%s: invalid UTF-8 in caption (%d sequence%s replaced with U+FFFD)", cp, bad,
             bad > 1 ? "s" : "");
        d->n_bad_utf8++;
    }
    char *a = cap, *b = cap + strlen(cap);
    while (a < b && is_space(*a)) a++;
    while (b > a && is_space(b[-1])) b--;
    *b = 0;
    memmove(cap, a, (size_t)(b - a) + 1);
    if (!*cap) {
        warn(d, "%s: empty caption, treated as missing", cp);
        free(cap);
        cap = NULL;
    }
    free(cp);
    return cap;
}

/* Scan the image files of one folder into subset (name, cls, repeats), created on the first usable image. */
static int scan_folder(Scan *sc, const char *folder, const char *name, const char *cls, int repeats) {
    Dataset *d = sc->d;
    char **names;
    int n, subset = -1;
    LS_TRY(list_dir(folder, &names, &n));
    for (int k = 0; k < n; k++) {
        int kind = classify_ext(names[k]);
        if (kind == EXT_OTHER) continue; /* captions, folders and anything else */
        char *path = ls_path_join(folder, names[k]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) { /* a folder named like an image */
            free(path);
            continue;
        }
        d->n_found++;
        DatasetItem it;
        memset(&it, 0, sizeof it);
        if (kind == EXT_UNSUPPORTED) {
            skip(sc, path, DS_SKIP_UNSUPPORTED, "unsupported image format (use PNG, JPEG, BMP or TGA)");
        } else if (check_image(sc, path, &it)) {
            if (subset < 0) {
                grow((void **)&d->subsets, &sc->cap_subsets, d->n_subsets + 1, sizeof *d->subsets);
                subset = d->n_subsets++;
                d->subsets[subset] = (DatasetSubset){xstrdup(name), xstrdup(cls), repeats, 0, NULL, 0};
            }
            it.subset = subset, it.repeats = repeats;
            it.caption = read_caption(sc, path);
            it.caption_source = DS_CAPTION_FILE;
            if (!it.caption) {
                int opt = d->opt.caption != NULL;
                it.caption = xstrdup(opt ? d->opt.caption : cls);
                it.caption_source = opt ? DS_CAPTION_OPTION : DS_CAPTION_FOLDER;
                /* kohya's default extension is .caption: a caption under the other name is never
                 * silently ignored (sd-scripts #487) */
                const char *other = other_caption_ext(path, d->opt.caption_ext);
                if (other) d->n_other_ext++, d->other_ext = other;
                if (++sc->missing_warned <= 5)
                    warn(d, "%s: no %s caption file, using %s \"%s\"%s%s%s", path, d->opt.caption_ext,
                         opt ? "--caption" : "the folder name", it.caption,
                         other ? " (there is a " : "", other ? other : "",
                         other ? " file: pass --caption-ext to use it)" : "");
                d->n_missing_captions++;
            }
            d->subsets[subset].n_images++;
            grow((void **)&d->items, &sc->cap_items, d->n_items + 1, sizeof *d->items);
            d->items[d->n_items++] = it;
        }
        free(path);
    }
    free_names(names, n);
    return LS_OK;
}

static int cmp_item(const void *a, const void *b) {
    return strcmp(((const DatasetItem *)a)->path, ((const DatasetItem *)b)->path);
}

/* Tag counts per subset: every caption's comma-separated tags, trimmed and ASCII-lower-cased, counted once
 * per image (kohya's ss_tag_frequency). */
static void count_tags(Dataset *d) {
    for (int s = 0; s < d->n_subsets; s++) {
        char **all = NULL;
        int n = 0, cap = 0;
        for (int i = 0; i < d->n_items; i++) {
            if (d->items[i].subset != s) continue;
            const char *c = d->items[i].caption;
            Span *t = mallocCheck(tags_room(c) * sizeof *t);
            int nt = split_tags(c, t);
            for (int k = 0; k < nt; k++) {
                grow((void **)&all, &cap, n + 1, sizeof *all);
                char *tag = mallocCheck((size_t)t[k].len + 1);
                for (int j = 0; j < t[k].len; j++) {
                    char ch = c[t[k].off + j];
                    tag[j] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
                }
                tag[t[k].len] = 0;
                all[n++] = tag;
            }
            free(t);
        }
        if (n) qsort(all, (size_t)n, sizeof *all, cmp_str);
        DatasetSubset *ss = &d->subsets[s];
        ss->tags = callocCheck((size_t)(n ? n : 1), sizeof *ss->tags);
        for (int i = 0; i < n; i++) {
            if (ss->n_tags && strcmp(ss->tags[ss->n_tags - 1].tag, all[i]) == 0) {
                ss->tags[ss->n_tags - 1].count++;
                free(all[i]);
            } else {
                ss->tags[ss->n_tags++] = (DatasetTag){all[i], 1};
            }
        }
        free(all);
    }
}

/* Give every item its target size and collect the distinct sizes as buckets. */
static void assign_buckets(Dataset *d) {
    int *sizes = mallocCheck((size_t)d->n_items * 2 * sizeof(int)), m = 0;
    for (int i = 0; i < d->n_items; i++) {
        DatasetItem *it = &d->items[i];
        dataset_bucket_for(&d->opt, it->w, it->h, &it->tw, &it->th);
        sizes[2 * i] = it->tw, sizes[2 * i + 1] = it->th;
    }
    qsort(sizes, (size_t)d->n_items, 2 * sizeof(int), cmp_pair);
    for (int i = 0; i < d->n_items; i++)
        if (m == 0 || cmp_pair(sizes + 2 * i, sizes + 2 * (m - 1)) != 0)
            sizes[2 * m] = sizes[2 * i], sizes[2 * m + 1] = sizes[2 * i + 1], m++;
    d->buckets = callocCheck((size_t)m, sizeof *d->buckets);
    d->n_buckets = m;
    for (int b = 0; b < m; b++) d->buckets[b].w = sizes[2 * b], d->buckets[b].h = sizes[2 * b + 1];
    for (int i = 0; i < d->n_items; i++) {
        DatasetItem *it = &d->items[i];
        for (int b = 0; b < m; b++)
            if (d->buckets[b].w == it->tw && d->buckets[b].h == it->th) {
                it->bucket = b;
                d->buckets[b].n_items++;
                break;
            }
    }
    free(sizes);
}

/* The last path component of dir (resolved, so "." and "x/" give real names). malloc'd. */
static char *folder_name(const char *dir) {
    char *real = realpath(dir, NULL);
    const char *p = real ? real : dir;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t a = n;
    while (a > 0 && p[a - 1] != '/') a--;
    char *s = mallocCheck(n - a + 1);
    memcpy(s, p + a, n - a);
    s[n - a] = 0;
    free(real);
    return s;
}

/* Summary of the skip counts, e.g. "2 corrupt, 1 huge". */
static void skip_summary(const Dataset *d, char *buf, size_t cap) {
    static const char *const what[DS_SKIP_COUNT] = {"unreadable", "corrupt or truncated", "too large",
                                                    "unsupported format"};
    size_t k = 0;
    buf[0] = 0;
    for (int r = 0; r < DS_SKIP_COUNT; r++)
        if (d->skipped_by[r] && k < cap)
            k += (size_t)snprintf(buf + k, cap - k, "%s%d %s", k ? ", " : "", d->skipped_by[r], what[r]);
}

/* A folder named like "2024_photos" reads as 2024 repeats (kohya's N_name rule): say so when N is so large
 * that it is more likely a year or a count than a repeat count. */
static void warn_many_repeats(Dataset *d, const char *folder, int rep) {
    if (rep > DATASET_WARN_REPEATS)
        warn(d, "%s: read as %d repeats per epoch (N_name folder); rename it if the number is not a repeat count",
             folder, rep);
}

int dataset_scan(Dataset *d, const char *dir, const DatasetOptions *o) {
    memset(d, 0, sizeof *d);
    if (dataset_check_options(o) != LS_OK) return ls_error_context("%s", dir);
    d->dir = xstrdup(dir);
    d->opt = *o;
    const char *ext = o->caption_ext && *o->caption_ext ? o->caption_ext : ".txt";
    char *e = mallocCheck(strlen(ext) + 2);
    sprintf(e, "%s%s", ext[0] == '.' ? "" : ".", ext); /* kohya adds a missing dot too */
    d->opt.caption_ext = e;
    d->opt.caption = o->caption ? xstrdup(o->caption) : NULL;
    d->opt.trigger = NULL;
    if (o->trigger) { /* trimmed; an empty trigger means none */
        const char *a = o->trigger, *b = a + strlen(a);
        while (a < b && is_space(*a)) a++;
        while (b > a && is_space(b[-1])) b--;
        if (b > a) {
            char *t = mallocCheck((size_t)(b - a) + 1);
            memcpy(t, a, (size_t)(b - a));
            t[b - a] = 0;
            d->opt.trigger = t;
        }
    }

    Scan sc = {d, 0, 0, 0, 0};
    struct stat st;
    if (stat(dir, &st) != 0) {
        ls_set_error("%s: cannot open dataset folder: %s", dir, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        ls_set_error("%s: not a folder (give the folder that holds the images or N_name/ subfolders)", dir);
        goto fail;
    }
    /* images directly in dir: repeats from its own name when it is N_name */
    char *top = folder_name(dir);
    int rep = 1;
    const char *cls = top;
    if (!parse_repeat_folder(top, &rep, &cls) || rep < 1) rep = 1, cls = top;
    int rc = scan_folder(&sc, dir, top, cls, LS_MIN(rep, DATASET_MAX_REPEATS));
    free(top);
    if (rc != LS_OK) goto fail; /* the top folder itself cannot be listed */
    if (d->n_items > 0) warn_many_repeats(d, dir, rep);
    /* then every N_name/ subfolder */
    char **names;
    int n;
    if (list_dir(dir, &names, &n) != LS_OK) goto fail;
    for (int k = 0; k < n; k++) {
        char *sub = ls_path_join(dir, names[k]);
        if (ls_is_dir(sub)) {
            if (!parse_repeat_folder(names[k], &rep, &cls)) {
                warn(d, "%s: ignored: subfolder names must be N_name (N = repeats, e.g. 10_%s)", sub,
                     names[k]);
                d->n_ignored_dirs++;
            } else if (rep < 1 || rep > DATASET_MAX_REPEATS) {
                warn(d, "%s: ignored: repeats must be 1..%d", sub, DATASET_MAX_REPEATS);
                d->n_ignored_dirs++;
            } else if (scan_folder(&sc, sub, names[k], cls, rep) != LS_OK) { /* e.g. no permission */
                warn(d, "%s: ignored", ls_last_error());
                d->n_ignored_dirs++;
            } else {
                warn_many_repeats(d, sub, rep);
            }
        }
        free(sub);
    }
    free_names(names, n);

    if (d->n_found == 0) {
        ls_set_error(
            "%s: no images found (expected .png/.jpg/.jpeg/.bmp/.tga files with .txt captions, "
            "directly or in N_name/ subfolders)%s",
            dir, d->n_ignored_dirs ? "; subfolders were ignored, see the warnings" : "");
        goto fail;
    }
    if (d->n_items == 0) {
        char sum[256];
        skip_summary(d, sum, sizeof sum);
        ls_set_error("%s: none of the %d images can be used (%s); first: %s", dir, d->n_found, sum,
                     d->skipped[0].message);
        goto fail;
    }
    if (sc.missing_warned > 5)
        warn(d, "%s: %d more images without a caption file", dir, sc.missing_warned - 5);
    qsort(d->items, (size_t)d->n_items, sizeof *d->items, cmp_item);
    for (int i = 0; i < d->n_items; i++) d->n_samples += d->items[i].repeats;
    if (d->n_samples > MAX_SAMPLES) {
        ls_set_error("%s: %lld samples per epoch (images x repeats) is too many (limit %d)", dir,
                     (long long)d->n_samples, MAX_SAMPLES);
        goto fail;
    }
    count_tags(d);
    assign_buckets(d);
    return LS_OK;
fail:
    dataset_free(d);
    return LS_ERR;
}

void dataset_free(Dataset *d) {
    for (int i = 0; i < d->n_items; i++) free(d->items[i].path), free(d->items[i].caption);
    for (int s = 0; s < d->n_subsets; s++) {
        for (int k = 0; k < d->subsets[s].n_tags; k++) free(d->subsets[s].tags[k].tag);
        free(d->subsets[s].tags), free(d->subsets[s].name), free(d->subsets[s].class_name);
    }
    for (int i = 0; i < d->n_skipped; i++) free(d->skipped[i].path), free(d->skipped[i].message);
    free(d->items), free(d->subsets), free(d->buckets), free(d->skipped), free(d->dir);
    free((char *)d->opt.caption_ext), free((char *)d->opt.caption), free((char *)d->opt.trigger);
    memset(d, 0, sizeof *d);
}

/* ================================================================================================ */
/* resize and crop                                                                                  */
/* ================================================================================================ */

/* Resampling along one axis: output j = Σ_k w[j·kmax + k] · src[first[j] + k], k < count[j]. */
typedef struct {
    int kmax, *first, *count;
    float *w;
} Axis;

/* Output pixel j covers source [x0 + j·step, x0 + (j+1)·step) (step = source px per output px).
 * step > 1 (downscale): area average — each source pixel weighted by the length of its overlap, so every
 * source pixel counts exactly as much as it covers (no aliasing, no skipped pixels; OpenCV's INTER_AREA).
 * step ≤ 1 (upscale or 1:1): bilinear at the output pixel's centre (half-pixel centres, edges clamped). */
static void axis_init(Axis *a, int n_out, int n_src, double x0, double step) {
    int area = step > 1.0 + 1e-9;
    a->kmax = area ? (int)ceil(step) + 2 : 2;
    a->first = mallocCheck((size_t)n_out * sizeof(int));
    a->count = mallocCheck((size_t)n_out * sizeof(int));
    a->w = callocCheck((size_t)n_out * (size_t)a->kmax, sizeof(float));
    for (int j = 0; j < n_out; j++) {
        float *w = a->w + (size_t)j * (size_t)a->kmax;
        if (area) {
            double lo = x0 + j * step, hi = lo + step, sum = 0;
            int i0 = LS_MAX(0, (int)floor(lo)), i1 = LS_MIN(n_src, (int)ceil(hi));
            a->first[j] = i0, a->count[j] = LS_MAX(1, i1 - i0);
            LS_ASSERT(a->count[j] <= a->kmax);
            for (int i = i0; i < i1; i++) sum += w[i - i0] = (float)(fmin(hi, i + 1.0) - fmax(lo, (double)i));
            for (int k = 0; k < a->count[j]; k++) w[k] = sum > 0 ? (float)(w[k] / sum) : 1.0f;
        } else {
            double c = x0 + (j + 0.5) * step - 0.5;
            int i = (int)floor(c);
            double f = c - i;
            if (i < 0) i = 0, f = 0;
            if (i >= n_src - 1) i = n_src - 1, f = 0;
            a->first[j] = i;
            a->count[j] = f > 0 ? 2 : 1;
            w[0] = (float)(1 - f), w[1] = (float)f;
        }
    }
}

static void axis_free(Axis *a) { free(a->first), free(a->count), free(a->w); }

/* Scale so the image covers tw × th (the smallest such scale), centre the crop (offset floored to a whole
 * output pixel, so 1:1 crops copy pixels exactly), resample rows then columns, map [0,255] → [-1,1]. */
void dataset_resize_crop(const uint8_t *rgb, int w, int h, int tw, int th, int flip, float *chw) {
    LS_ASSERT(w > 0 && h > 0 && tw > 0 && th > 0);
    double s = fmax((double)tw / w, (double)th / h);
    double ox = floor(fmax(0.0, (w * s - tw) / 2) + 1e-9), oy = floor(fmax(0.0, (h * s - th) / 2) + 1e-9);
    Axis ax, ay;
    axis_init(&ax, tw, w, ox / s, 1 / s);
    axis_init(&ay, th, h, oy / s, 1 / s);
    int y_lo = ay.first[0], y_hi = ay.first[th - 1] + ay.count[th - 1]; /* source rows that are needed */
    float *tmp = mallocCheck((size_t)(y_hi - y_lo) * (size_t)tw * 3 * sizeof(float));
    for (int y = y_lo; y < y_hi; y++) {
        const uint8_t *row = rgb + (size_t)y * (size_t)w * 3;
        float *t = tmp + (size_t)(y - y_lo) * (size_t)tw * 3;
        for (int x = 0; x < tw; x++) {
            const float *wx = ax.w + (size_t)x * (size_t)ax.kmax;
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < ax.count[x]; k++) {
                const uint8_t *p = row + (size_t)(ax.first[x] + k) * 3;
                acc[0] += wx[k] * p[0], acc[1] += wx[k] * p[1], acc[2] += wx[k] * p[2];
            }
            t[3 * x] = acc[0], t[3 * x + 1] = acc[1], t[3 * x + 2] = acc[2];
        }
    }
    size_t plane = (size_t)tw * (size_t)th;
    for (int y = 0; y < th; y++) {
        const float *wy = ay.w + (size_t)y * (size_t)ay.kmax;
        for (int x = 0; x < tw; x++) {
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < ay.count[y]; k++) {
                const float *p = tmp + ((size_t)(ay.first[y] + k - y_lo) * (size_t)tw + (size_t)x) * 3;
                acc[0] += wy[k] * p[0], acc[1] += wy[k] * p[1], acc[2] += wy[k] * p[2];
            }
            int xo = flip ? tw - 1 - x : x;
            for (int c = 0; c < 3; c++) {
                float v = acc[c] / 127.5f - 1.0f; /* integer pixels map exactly as v / 127.5 - 1 */
                chw[(size_t)c * plane + (size_t)y * (size_t)tw + (size_t)xo] = v < -1 ? -1 : v > 1 ? 1 : v;
            }
        }
    }
    free(tmp);
    axis_free(&ax), axis_free(&ay);
}

int dataset_load_item(const Dataset *d, int i, float *chw, int flip) {
    if (i < 0 || i >= d->n_items)
        return ls_set_error("%s: item %d out of range (0..%d)", d->dir, i, d->n_items - 1);
    const DatasetItem *it = &d->items[i];
    Image img;
    int max_side;
    int64_t max_px;
    size_limits(&d->opt, &max_side, &max_px);
    LS_TRY(image_load_max(&img, it->path, max_side, max_px));
    if (img.w != it->w || img.h != it->h) {
        ls_set_error("%s: changed since the dataset was scanned (was %dx%d, now %dx%d)", it->path, it->w,
                     it->h, img.w, img.h);
        image_free(&img);
        return LS_ERR;
    }
    dataset_resize_crop(img.data, img.w, img.h, it->tw, it->th, flip, chw);
    image_free(&img);
    return LS_OK;
}

/* ================================================================================================ */
/* captions per step                                                                                */
/* ================================================================================================ */


/* A Philox stream seed for (seed, a, b) in a named role, so different uses never share numbers. */
enum { ROLE_CAPTION = 1, ROLE_BUCKET = 2, ROLE_BATCHES = 3, ROLE_FLIP = 4, ROLE_HOLDOUT = 5, ROLE_DROPOUT = 6 };
static uint64_t stream(uint64_t seed, uint64_t a, uint64_t b, int role) {
    return rng_mix64(seed ^ rng_mix64(a ^ rng_mix64(b ^ rng_mix64((uint64_t)role))));
}

/* Uniform integer in [0, n) from draw k of stream s (Lemire's multiply-shift; bias < n/2^32). */
static uint32_t draw(uint64_t s, uint64_t k, uint32_t n) {
    return (uint32_t)(((uint64_t)rng_u32(s, k) * n) >> 32);
}

static void shuffle_ints(int *v, int n, uint64_t s) {
    for (int k = n - 1; k > 0; k--) {
        int j = (int)draw(s, (uint64_t)k, (uint32_t)k + 1), t = v[k];
        v[k] = v[j], v[j] = t;
    }
}

int dataset_caption_bound(const Dataset *d, int i) {
    const char *c = d->items[i].caption;
    int commas = 0;
    for (const char *p = c; *p; p++) commas += *p == ',';
    return (int)(strlen(c) + (d->opt.trigger ? strlen(d->opt.trigger) : 0)) + 2 * (commas + 2) + 1;
}

int dataset_caption(const Dataset *d, int i, uint64_t seed, uint64_t step, char *out, int cap) {
    if (i < 0 || i >= d->n_items)
        return ls_set_error("%s: item %d out of range (0..%d)", d->dir, i, d->n_items - 1);
    if (cap < 1) return ls_set_error("%s: caption buffer of %d bytes", d->items[i].path, cap);
    const char *c = d->items[i].caption, *trig = d->opt.trigger;
    /* scratch from the backend's pool: a training step captions its batch, and allocates nothing */
    Span *t = pool_alloc(tags_room(c) * sizeof *t);
    int n = split_tags(c, t);
    int *order = pool_alloc((size_t)(n + 1) * sizeof(int)), m = 0;
    size_t tl = trig ? strlen(trig) : 0;
    for (int k = 0; k < n; k++) /* the trigger is put first below, so it is dropped where it stands */
        if (!(trig && (size_t)t[k].len == tl && memcmp(c + t[k].off, trig, tl) == 0)) order[m++] = k;
    int keep = LS_MIN(d->opt.keep_tokens, m), plain = step == DATASET_CAPTION_PLAIN;
    if (!plain && d->opt.shuffle_tags && m - keep > 1)
        shuffle_ints(order + keep, m - keep, stream(seed, step, (uint64_t)i, ROLE_CAPTION));
    /* dropout draws: u[0] for the whole caption, u[1 + k] for the k-th tag after the kept ones */
    uint64_t ds = stream(seed, step, (uint64_t)i, ROLE_DROPOUT);
#define U01(k) ((double)rng_u32(ds, (uint64_t)(k)) / 4294967296.0)
    if (!plain && d->opt.tag_dropout > 0) {
        int w = keep;
        for (int k = keep; k < m; k++)
            if (!(U01(1 + k) < d->opt.tag_dropout)) order[w++] = order[k];
        m = w;
    }
    if (!plain && d->opt.caption_dropout > 0 && U01(0) < d->opt.caption_dropout) m = 0, trig = NULL;
#undef U01
    int len = 0, rc = LS_OK;
    for (int k = -1; k < m && rc == LS_OK; k++) {
        const char *p = k < 0 ? trig : c + t[order[k]].off;
        int pl = k < 0 ? (int)tl : t[order[k]].len;
        if (k < 0 && !trig) continue;
        int sep = len > 0 ? 2 : 0;
        if (len + sep + pl + 1 > cap) {
            rc = ls_set_error("%s: caption does not fit in %d bytes", d->items[i].path, cap);
            break;
        }
        if (sep) memcpy(out + len, ", ", 2), len += 2;
        memcpy(out + len, p, (size_t)pl), len += pl;
    }
    if (rc == LS_OK) out[len] = 0;
    pool_free(t), pool_free(order);
    return rc == LS_OK ? len : LS_ERR;
}

/* ================================================================================================ */
/* epoch order                                                                                      */
/* ================================================================================================ */

int dataset_epoch(const Dataset *d, uint64_t seed, uint64_t epoch, int batch_size, DatasetEpoch *e) {
    memset(e, 0, sizeof *e);
    if (batch_size < 1) return ls_set_error("%s: batch size %d must be at least 1", d->dir, batch_size);
    int n = (int)d->n_samples, nb = 0;
    int *staged = mallocCheck((size_t)n * sizeof(int)), pos = 0;
    int max_batches = d->n_buckets + n / batch_size + 1;
    int *bstart = mallocCheck((size_t)max_batches * sizeof(int)),
        *blen = mallocCheck((size_t)max_batches * sizeof(int));
    for (int b = 0; b < d->n_buckets; b++) { /* per bucket: repeats laid out, shuffled, cut into batches */
        int start = pos;
        for (int i = 0; i < d->n_items; i++)
            if (d->items[i].bucket == b)
                for (int r = 0; r < d->items[i].repeats; r++) staged[pos++] = i;
        shuffle_ints(staged + start, pos - start, stream(seed, epoch, (uint64_t)b, ROLE_BUCKET));
        for (int k = start; k < pos; k += batch_size)
            bstart[nb] = k, blen[nb] = LS_MIN(batch_size, pos - k), nb++;
    }
    LS_ASSERT(pos == n && nb <= max_batches);
    int *perm = mallocCheck((size_t)(nb ? nb : 1) * sizeof(int)); /* then the batches in random order */
    for (int k = 0; k < nb; k++) perm[k] = k;
    shuffle_ints(perm, nb, stream(seed, epoch, 0, ROLE_BATCHES));
    e->items = mallocCheck((size_t)n * sizeof(int));
    e->flip = callocCheck((size_t)n, 1);
    e->batch_start = mallocCheck((size_t)(nb + 1) * sizeof(int));
    e->n = n, e->n_batches = nb;
    for (int k = 0, o = 0; k < nb; k++) {
        e->batch_start[k] = o;
        memcpy(e->items + o, staged + bstart[perm[k]], (size_t)blen[perm[k]] * sizeof(int));
        o += blen[perm[k]];
    }
    e->batch_start[nb] = n;
    if (d->opt.flip) {
        uint64_t s = stream(seed, epoch, 0, ROLE_FLIP);
        for (int k = 0; k < n; k++) e->flip[k] = (uint8_t)(rng_u32(s, (uint64_t)k) >> 31);
    }
    free(staged), free(bstart), free(blen), free(perm);
    return LS_OK;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int dataset_hold_out(Dataset *d, double frac, uint64_t seed, int **items, int *n) {
    *items = NULL, *n = 0;
    if (!(frac > 0.0 && frac < 1.0)) return ls_set_error("%s: validation split %g must be in (0, 1)", d->dir, frac);
    int k = (int)lround(frac * d->n_items);
    if (k < 1) k = 1;
    if (k >= d->n_items)
        return ls_set_error("%s: a validation split of %g leaves no training image (%d image%s)", d->dir, frac,
                            d->n_items, d->n_items == 1 ? "" : "s");
    int *order = mallocCheck((size_t)d->n_items * sizeof(int));
    for (int i = 0; i < d->n_items; i++) order[i] = i;
    shuffle_ints(order, d->n_items, stream(seed, 0, 0, ROLE_HOLDOUT));
    qsort(order, (size_t)k, sizeof(int), cmp_int); /* the held-out items, in path order */
    for (int j = 0; j < k; j++) {
        d->n_samples -= d->items[order[j]].repeats;
        d->items[order[j]].repeats = 0; /* never in an epoch */
    }
    *items = realloc(order, (size_t)k * sizeof(int));
    LS_ASSERT(*items);
    *n = k;
    d->n_held_out = k;
    return LS_OK;
}

void dataset_epoch_free(DatasetEpoch *e) {
    free(e->items), free(e->flip), free(e->batch_start);
    memset(e, 0, sizeof *e);
}

/* ================================================================================================ */
/* report                                                                                           */
/* ================================================================================================ */

void dataset_report(const Dataset *d, FILE *fp) {
    fprintf(fp, "dataset %s: %d image%s used (%lld samples per epoch), %d skipped\n", d->dir, d->n_items,
            d->n_items == 1 ? "" : "s", (long long)d->n_samples, d->n_skipped);
    if (d->n_held_out)
        fprintf(fp, "  %d image%s held out for the validation loss (not trained on)\n", d->n_held_out,
                d->n_held_out == 1 ? "" : "s");
    for (int s = 0; s < d->n_subsets; s++)
        fprintf(fp, "  %s: %d image%s x %d repeats, %d distinct tags\n", d->subsets[s].name,
                d->subsets[s].n_images, d->subsets[s].n_images == 1 ? "" : "s", d->subsets[s].repeats,
                d->subsets[s].n_tags);
    if (d->n_skipped) {
        char sum[256];
        skip_summary(d, sum, sizeof sum);
        fprintf(fp, "  skipped: %s\n", sum);
        for (int i = 0; i < d->n_skipped && i < 5; i++) fprintf(fp, "    %s\n", d->skipped[i].message);
        if (d->n_skipped > 5) fprintf(fp, "    ... and %d more\n", d->n_skipped - 5);
    }
    if (d->n_missing_captions || d->n_bad_utf8)
        fprintf(fp, "  captions: %d missing (used %s), %d with invalid UTF-8 (repaired)\n",
                d->n_missing_captions, d->opt.caption ? "--caption" : "the folder name", d->n_bad_utf8);
    if (d->n_other_ext)
        fprintf(fp, "  WARNING: %d image%s without a %s caption %s a %s file; pass --caption-ext %s to use them\n",
                d->n_other_ext, d->n_other_ext == 1 ? "" : "s", d->opt.caption_ext,
                d->n_other_ext == 1 ? "has" : "have", d->other_ext, d->other_ext);
    if (d->n_ignored_dirs)
        fprintf(fp, "  %d subfolder%s ignored (not N_name)\n", d->n_ignored_dirs,
                d->n_ignored_dirs == 1 ? "" : "s");
    int up = 0;
    for (int i = 0; i < d->n_items; i++)
        up += d->items[i].w < d->items[i].tw || d->items[i].h < d->items[i].th;
    fprintf(fp, "  %s:", d->opt.buckets ? "buckets" : "size");
    for (int b = 0; b < d->n_buckets; b++)
        fprintf(fp, " %dx%d (%d)", d->buckets[b].w, d->buckets[b].h, d->buckets[b].n_items);
    if (up)
        fprintf(fp, "; %d image%s upscaled to reach %s", up, up == 1 ? "" : "s",
                d->opt.buckets ? "their bucket" : "the resolution");
    fputc('\n', fp);
}

char *dataset_tag_frequency_json(const Dataset *d) {
    cJSON *root = cJSON_CreateObject();
    for (int s = 0; s < d->n_subsets; s++) {
        cJSON *o = cJSON_CreateObject();
        for (int k = 0; k < d->subsets[s].n_tags; k++)
            cJSON_AddNumberToObject(o, d->subsets[s].tags[k].tag, d->subsets[s].tags[k].count);
        cJSON_AddItemToObject(root, d->subsets[s].name, o);
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    LS_ASSERT(js);
    return js;
}
