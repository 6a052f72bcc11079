/* safetensors.c — see safetensors.h.
 *
 * Reader: the whole file is mmap'd read-only; the JSON header is parsed with cJSON and every entry is
 * validated against the file size before a single tensor byte is handed out, so a corrupt or truncated
 * file is an error naming the file and the offending key, never an out-of-bounds read.
 * Writer: the header is built by hand (exact 64-bit integers, no float formatting), then the tensors are
 * converted and streamed in chunks to "<path>.tmp.<pid>", fsync'd and renamed over path.
 *
 * All data are little-endian; so is every host lorastyle targets (checked below at compile time).
 */
#include "safetensors.h"

#include "common.h" /* defines: ls_set_error, mallocCheck, LS_OK/LS_ERR */

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (safetensors data are little-endian)"
#endif

/* The reference implementation refuses headers above 100 MB; a real SD checkpoint header is ~100 KB. */
#define ST_MAX_HEADER ((uint64_t)100000000)

/* ================================================================================================ */
/* dtypes                                                                                           */
/* ================================================================================================ */

static const struct {
    const char *name;
    size_t size;
} st_dtypes[ST_DTYPE_COUNT] = {
    [ST_F32] = {"F32", 4},   [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8},   [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},     [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_U16] = {"U16", 2},   [ST_U32] = {"U32", 4},
    [ST_U64] = {"U64", 8},   [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *st_dtype_name(StDtype dt) {
    return (unsigned)dt < ST_DTYPE_COUNT ? st_dtypes[dt].name : "?";
}

size_t st_dtype_size(StDtype dt) { return (unsigned)dt < ST_DTYPE_COUNT ? st_dtypes[dt].size : 0; }

static int st_dtype_parse(const char *s, StDtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *out = (StDtype)i;
            return 1;
        }
    return 0;
}

/* ================================================================================================ */
/* half-precision conversions (bit exact, round-to-nearest-even)                                   */
/* ================================================================================================ */

uint32_t st_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float st_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    int32_t e = (h >> 10) & 0x1f;
    uint32_t m = h & 0x3ff;
    if (e == 0x1f) return st_bits_f32(sign | 0x7f800000 | (m << 13)); /* inf, or NaN keeping its payload */
    if (e == 0) {
        if (m == 0) return st_bits_f32(sign); /* ±0 */
        /* subnormal m·2^-24: shift the leading 1 up to the implicit-bit position, lowering the exponent
         * (e ends in [-9, 1], still a normal float after rebiasing) */
        e = 1;
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        m &= 0x3ff;
    }
    return st_bits_f32(sign | ((uint32_t)(e + 112) << 23) | (m << 13)); /* rebias 15 → 127 */
}

uint16_t st_f32_to_f16(float f) {
    uint32_t x = st_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff)); /* quiet NaN */
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* ≥ 65520 rounds to inf (and inf itself) */
    if (ax >= 0x38800000) {                                  /* normal half: |f| ≥ 2^-14 */
        uint32_t h = ((((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ff));
        uint32_t rem = ax & 0x1fff; /* the 13 dropped mantissa bits */
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry rolls into the exponent: correct */
        return (uint16_t)(sign | h);
    }
    if (ax <= 0x33000000) return (uint16_t)sign; /* ≤ 2^-25: rounds (ties-to-even) to ±0 */
    /* subnormal half m·2^-24 with m = significand >> (126 - exponent); shift ∈ [14, 24] */
    uint32_t mant = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - (ax >> 23);
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++; /* may become 0x400 = smallest normal: correct */
    return (uint16_t)(sign | h);
}

float st_bf16_to_f32(uint16_t h) { return st_bits_f32((uint32_t)h << 16); }

uint16_t st_f32_to_bf16(float f) {
    uint32_t x = st_f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x0040); /* keep NaN a (quiet) NaN */
    x += 0x7fff + ((x >> 16) & 1); /* round to nearest even; overflow correctly becomes inf */
    return (uint16_t)(x >> 16);
}

/* ================================================================================================ */
/* reader: validation                                                                               */
/* ================================================================================================ */

static uint64_t name_hash(const char *s) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Insert tensors[i] into the open-addressing table; returns 0 if the name is already present. */
static int hash_insert(StFile *f, int i) {
    unsigned mask = (unsigned)f->hash_cap - 1;
    for (unsigned k = (unsigned)name_hash(f->tensors[i].name) & mask;; k = (k + 1) & mask) {
        if (f->hash[k] < 0) {
            f->hash[k] = i;
            return 1;
        }
        if (strcmp(f->tensors[f->hash[k]].name, f->tensors[i].name) == 0) return 0;
    }
}

const StTensor *st_find(const StFile *f, const char *name) {
    if (!f->hash || !name) return NULL;
    unsigned mask = (unsigned)f->hash_cap - 1;
    for (unsigned k = (unsigned)name_hash(name) & mask; f->hash[k] >= 0; k = (k + 1) & mask)
        if (strcmp(f->tensors[f->hash[k]].name, name) == 0) return &f->tensors[f->hash[k]];
    return NULL;
}

const char *st_meta_get(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* A JSON number that is an exact non-negative integer ≤ 2^53 (cJSON stores numbers as doubles). */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Parse and check one tensor entry (everything but overlaps). path/name are for messages. */
static int parse_entry(StTensor *t, const cJSON *e, const char *path, size_t data_size) {
    const char *name = t->name;
    if (!cJSON_IsObject(e)) return ls_set_error("%s: tensor '%s': entry is not a JSON object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return ls_set_error("%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (!cJSON_IsArray(js)) return ls_set_error("%s: tensor '%s': missing or non-array \"shape\"", path, name);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return ls_set_error("%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", path, name);
    if (!st_dtype_parse(jd->valuestring, &t->dtype))
        return ls_set_error("%s: tensor '%s': unknown dtype '%s'", path, name, jd->valuestring);

    int nd = cJSON_GetArraySize(js);
    if (nd > ST_MAX_DIMS)
        return ls_set_error("%s: tensor '%s': %d dimensions (at most %d supported)", path, name, nd, ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON *it = js->child; it; it = it->next, d++) {
        uint64_t dim;
        if (!json_uint(it, &dim))
            return ls_set_error("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, d);
        t->shape[d] = (int64_t)dim;
        /* numel·size must fit in int64 (and size_t): guard the product before forming it */
        if (dim != 0 && numel > (uint64_t)INT64_MAX / st_dtype_size(t->dtype) / dim)
            return ls_set_error("%s: tensor '%s': shape is too large (element count overflows)", path, name);
        numel *= dim;
    }
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(numel * st_dtype_size(t->dtype));

    uint64_t begin, end;
    if (!json_uint(jo->child, &begin) || !json_uint(jo->child->next, &end))
        return ls_set_error("%s: tensor '%s': data_offsets are not non-negative integers", path, name);
    if (begin > end)
        return ls_set_error("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] has begin > end", path,
                            name, begin, end);
    if (end > data_size)
        return ls_set_error("%s: tensor '%s': data_offsets end %" PRIu64
                            " is past the data buffer (%zu bytes; file truncated?)",
                            path, name, end, data_size);
    if (end - begin != (uint64_t)t->nbytes)
        return ls_set_error("%s: tensor '%s': data_offsets span %" PRIu64 " bytes but its %s shape needs %zu", path,
                            name, end - begin, st_dtype_name(t->dtype), t->nbytes);
    t->data = (const void *)(uintptr_t)begin; /* made absolute by the caller once the base is known */
    return LS_OK;
}

static int parse_metadata(StFile *f, const cJSON *m, const char *path) {
    if (!cJSON_IsObject(m)) return ls_set_error("%s: \"__metadata__\" is not a JSON object", path);
    int n = cJSON_GetArraySize(m);
    f->meta = callocCheck((size_t)n, sizeof(StMeta));
    for (const cJSON *it = m->child; it; it = it->next) {
        if (!cJSON_IsString(it))
            return ls_set_error("%s: __metadata__ value for '%s' is not a string", path, it->string);
        if (st_meta_get(f, it->string))
            return ls_set_error("%s: __metadata__ key '%s' appears twice", path, it->string);
        f->meta[f->n_meta].key = strdup(it->string);
        f->meta[f->n_meta].value = strdup(it->valuestring);
        LS_ASSERT(f->meta[f->n_meta].key && f->meta[f->n_meta].value);
        f->n_meta++;
    }
    return LS_OK;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} Range;

static int cmp_range(const void *a, const void *b) {
    const Range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Reject overlapping byte ranges. Zero-byte tensors overlap nothing. data holds relative offsets here. */
static int check_overlaps(StFile *f, const char *path) {
    int n = 0, rc = LS_OK;
    Range *r = mallocCheck((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *r);
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (t->nbytes == 0) continue;
        r[n++] = (Range){(uintptr_t)t->data, (uintptr_t)t->data + t->nbytes, i};
    }
    qsort(r, (size_t)n, sizeof *r, cmp_range);
    for (int k = 1; k < n && rc == LS_OK; k++)
        if (r[k].begin < r[k - 1].end)
            rc = ls_set_error("%s: tensors '%s' and '%s' overlap in the data buffer", path,
                              f->tensors[r[k - 1].idx].name, f->tensors[r[k].idx].name);
    free(r);
    return rc;
}

/* Parse the header JSON (already bounds-checked) into f. */
static int parse_header(StFile *f, const char *json, size_t len, size_t data_size) {
    const char *path = f->path, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) return ls_set_error("%s: header is not valid JSON (near byte %td)", path,
                                   (cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : (ptrdiff_t)0) + 8);
    /* only padding may follow the JSON object */
    for (const char *p = end; p && p < json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return ls_set_error("%s: header has trailing bytes after the JSON object", path);
        }
    int rc = LS_OK;
    if (!cJSON_IsObject(root)) {
        rc = ls_set_error("%s: header is not a JSON object", path);
        goto done;
    }

    int n = 0;
    for (const cJSON *it = root->child; it; it = it->next) n += strcmp(it->string, "__metadata__") != 0;
    f->tensors = callocCheck((size_t)n, sizeof(StTensor));
    f->hash_cap = 16;
    while (f->hash_cap < 2 * n) f->hash_cap *= 2;
    f->hash = mallocCheck((size_t)f->hash_cap * sizeof(int));
    for (int k = 0; k < f->hash_cap; k++) f->hash[k] = -1;

    int have_meta = 0;
    for (const cJSON *it = root->child; it && rc == LS_OK; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            rc = have_meta++ ? ls_set_error("%s: \"__metadata__\" appears twice", path)
                             : parse_metadata(f, it, path);
            continue;
        }
        StTensor *t = &f->tensors[f->n_tensors];
        t->name = strdup(it->string);
        LS_ASSERT(t->name);
        f->n_tensors++; /* counted now so st_close frees the name even if the entry is bad */
        rc = parse_entry(t, it, path, data_size);
        if (rc == LS_OK && !hash_insert(f, f->n_tensors - 1))
            rc = ls_set_error("%s: tensor '%s' appears twice in the header", path, t->name);
    }
    if (rc == LS_OK) rc = check_overlaps(f, path);
done:
    cJSON_Delete(root);
    return rc;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    /* O_NONBLOCK: opening a FIFO must not block; fstat then rejects anything but a regular file */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ls_set_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ls_set_error("%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8) {
        close(fd);
        return ls_set_error("%s: file is %" PRIu64 " bytes, too short for a safetensors header", path, size);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return ls_set_error("%s: mmap failed: %s", path, strerror(errno));
    f->path = strdup(path);
    LS_ASSERT(f->path);
    f->map = map;
    f->map_size = (size_t)size;

    uint64_t n;
    memcpy(&n, map, 8); /* little-endian u64 */
    int rc;
    if (n > size - 8)
        rc = ls_set_error("%s: header length %" PRIu64 " exceeds the file size (%" PRIu64
                          " bytes; truncated or not a safetensors file)",
                          path, n, size);
    else if (n > ST_MAX_HEADER)
        rc = ls_set_error("%s: header length %" PRIu64 " is implausibly large", path, n);
    else if (n < 2 || ((const char *)map)[8] != '{')
        rc = ls_set_error("%s: header does not start with a JSON object (not a safetensors file?)", path);
    else
        rc = parse_header(f, (const char *)map + 8, (size_t)n, (size_t)(size - 8 - n));
    if (rc != LS_OK) {
        st_close(f);
        return LS_ERR;
    }
    /* offsets were validated against the data size: now turn them into pointers */
    const char *base = (const char *)map + 8 + n;
    for (int i = 0; i < f->n_tensors; i++) f->tensors[i].data = base + (uintptr_t)f->tensors[i].data;
    return LS_OK;
}

/* frees n metadata entries and their array */
static void meta_free(StMeta *meta, int n) {
    for (int i = 0; i < n; i++) free(meta[i].key), free(meta[i].value);
    free(meta);
}

void st_close(StFile *f) {
    if (f->map) munmap(f->map, f->map_size);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    meta_free(f->meta, f->n_meta);
    free(f->hash);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* ================================================================================================ */
/* reader: conversion                                                                               */
/* ================================================================================================ */

/* Bulk f16 → f32, branch-free so that it runs 8 values per step (GCC vector extensions): compiled once for
 * AVX2 (x86-64-v3) and once for the baseline, the CPU's best picked at load time (ifunc). Bit-identical to
 * st_f16_to_f32 for all 65536 inputs (NaN payloads included), using exact operations only:
 *   normal (exponent 1..30): the 15 low bits shifted into float position, exponent rebiased by +112;
 *   subnormal (exponent 0):  m·2^-24 as (float)m · 2^-24 (no denormal arithmetic: it is slow);
 *   Inf/NaN (exponent 31):   the rebiased bits with all float exponent bits set; then the sign.
 * Loading a 1.7 GB f16 SD1.5 checkpoint spent more than half its time in the scalar conversion and a
 * separate finiteness pass (BENCHMARKS.md). Returns nonzero if any input is Inf/NaN. */
typedef uint16_t st_v8h __attribute__((vector_size(16)));
typedef uint32_t st_v8u __attribute__((vector_size(32)));
typedef int32_t st_v8i __attribute__((vector_size(32)));
typedef float st_v8f __attribute__((vector_size(32)));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi" /* 32-byte vectors only live inside this function */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
static int f16_to_f32_block(float *dst, const unsigned char *src, size_t n) {
    st_v8u bad = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        st_v8h h16;
        memcpy(&h16, src + 2 * i, sizeof h16);
        st_v8u h = __builtin_convertvector(h16, st_v8u);
        st_v8u ex = h & 0x7c00;
        st_v8u infnan = (st_v8u)(ex == 0x7c00), zero_e = (st_v8u)(ex == 0); /* lanes all-ones or 0 */
        st_v8u bits = ((h & 0x7fff) << 13) + (112u << 23);
        st_v8f sub = __builtin_convertvector((st_v8i)(h & 0x3ff), st_v8f) * 0x1p-24f; /* (signed: 1 cvt) */
        bits |= infnan & 0x7f800000;
        bits = (bits & ~zero_e) | ((st_v8u)sub & zero_e);
        bits |= (h & 0x8000) << 16;
        memcpy(dst + i, &bits, sizeof bits);
        bad |= infnan;
    }
    int any = 0;
    for (int l = 0; l < 8; l++) any |= bad[l] != 0;
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = st_f16_to_f32(h);
        any |= (h & 0x7c00) == 0x7c00;
    }
    return any;
}
#pragma GCC diagnostic pop

#define ST_CONVERT_BLOCK ((size_t)1 << 16) /* values per OpenMP work item */

void st_release_pages(const void *data, size_t nbytes) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)data + page - 1) & ~(page - 1);
    uintptr_t b = ((uintptr_t)data + nbytes) & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED); /* advisory: a failure only costs memory */
}

int st_to_f32(const StFile *f, const StTensor *t, float *dst, int check_finite) {
    const char *path = f && f->path ? f->path : "(safetensors)";
    const unsigned char *src = t->data; /* may be unaligned: every load goes through memcpy */
    size_t n = (size_t)t->numel;
    int nonfinite = -1; /* -1: not known yet; 0/1 when the conversion found out on the way */
    switch (t->dtype) {
    case ST_F32: memcpy(dst, src, n * 4); break;
    case ST_F16: {
        /* blocks over threads (large conv weights hold 15 M values); the Inf/NaN flags are OR-ed */
        size_t nb = (n + ST_CONVERT_BLOCK - 1) / ST_CONVERT_BLOCK;
        int any = 0;
#pragma omp parallel for schedule(static) reduction(| : any) if (nb > 1)
        for (size_t b = 0; b < nb; b++) {
            size_t i0 = b * ST_CONVERT_BLOCK, m = LS_MIN(ST_CONVERT_BLOCK, n - i0);
            any |= f16_to_f32_block(dst + i0, src + 2 * i0, m);
        }
        nonfinite = any;
        break;
    }
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = st_bf16_to_f32(h);
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    default:
        return ls_set_error("%s: tensor '%s': dtype %s is not a floating-point type", path, t->name,
                            st_dtype_name(t->dtype));
    }
    if (check_finite && nonfinite != 0) /* the (rare) slow path also finds the first bad index */
        for (size_t i = 0; i < n; i++)
            if (!isfinite(dst[i]))
                return ls_set_error("%s: tensor '%s': non-finite value (%s) at element %zu", path, t->name,
                                    isnan(dst[i]) ? "NaN" : "Inf", i);
    return LS_OK;
}

/* ================================================================================================ */
/* writer                                                                                           */
/* ================================================================================================ */

void st_writer_init(StWriter *w) { memset(w, 0, sizeof *w); }

void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                   const float *src_f32) {
    LS_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        StWriteTensor *t = realloc(w->t, (size_t)w->cap * sizeof *t);
        LS_ASSERT(t);
        w->t = t;
    }
    StWriteTensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    LS_ASSERT(t->name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        LS_ASSERT(shape[d] >= 0);
        t->shape[d] = shape[d];
    }
    t->src_f32 = src_f32;
}

void st_writer_meta(StWriter *w, const char *key, const char *value) {
    char *v = strdup(value);
    LS_ASSERT(v);
    for (int i = 0; i < w->n_meta; i++) /* a repeated key replaces the earlier value */
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return;
        }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
        StMeta *m = realloc(w->meta, (size_t)w->cap_meta * sizeof *m);
        LS_ASSERT(m);
        w->meta = m;
    }
    w->meta[w->n_meta].key = strdup(key);
    LS_ASSERT(w->meta[w->n_meta].key);
    w->meta[w->n_meta++].value = v;
}

void st_writer_free(StWriter *w) {
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    meta_free(w->meta, w->n_meta);
    memset(w, 0, sizeof *w);
}

/* Append s as a JSON string literal escaped as serde_json (the reference writer) does, so a header has its
 * length byte for byte (kohya's sshs_legacy_hash depends on it): \" \\ \b \f \n \r \t, other control
 * characters as \u00xx, UTF-8 kept. */
static void buf_json_str(LsBuf *b, const char *s) {
    ls_buf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        char e = c == '"' ? '"' : c == '\\' ? '\\' : c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n'
               : c == '\r' ? 'r' : c == '\t' ? 't' : 0;
        if (e) {
            esc[0] = '\\', esc[1] = e;
            ls_buf_add(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            ls_buf_add(b, esc, 6);
        } else {
            ls_buf_add(b, (const char *)&c, 1);
        }
    }
    ls_buf_add(b, "\"", 1);
}

static int64_t write_numel(const StWriteTensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(StWriteTensor *const *)a)->name, (*(StWriteTensor *const *)b)->name);
}

/* Build the padded header: __metadata__ first, then tensors in the given (sorted) order. */
static void build_header(const StWriter *w, StWriteTensor **order, LsBuf *b) {
    char num[64];
    ls_buf_str(b, "{");
    if (w->n_meta > 0) {
        ls_buf_str(b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) ls_buf_str(b, ",");
            buf_json_str(b, w->meta[i].key);
            ls_buf_str(b, ":");
            buf_json_str(b, w->meta[i].value);
        }
        ls_buf_str(b, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const StWriteTensor *t = order[i];
        if (i || w->n_meta > 0) ls_buf_str(b, ",");
        buf_json_str(b, t->name);
        ls_buf_str(b, ":{\"dtype\":\"");
        ls_buf_str(b, st_dtype_name(t->dtype));
        ls_buf_str(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", t->shape[d]);
            ls_buf_str(b, num);
        }
        uint64_t nb = (uint64_t)write_numel(t) * st_dtype_size(t->dtype);
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + nb);
        ls_buf_str(b, num);
        off += nb;
    }
    ls_buf_str(b, "}");
    while (b->len % 8) ls_buf_add(b, " ", 1); /* so the data buffer starts 8-byte aligned */
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

enum { WRITE_CHUNK = 1 << 16 }; /* elements converted per write() */

/* Convert one tensor chunk by chunk into half (WRITE_CHUNK entries) and write it; -1 + errno on error. */
static int write_tensor_data(int fd, const StWriteTensor *t, uint16_t *half) {
    size_t n = (size_t)write_numel(t);
    if (t->dtype == ST_F32) return n ? write_all(fd, t->src_f32, n * 4) : 0;
    for (size_t i = 0; i < n; i += WRITE_CHUNK) {
        size_t m = LS_MIN((size_t)WRITE_CHUNK, n - i);
        for (size_t k = 0; k < m; k++)
            half[k] = t->dtype == ST_F16 ? st_f32_to_f16(t->src_f32[i + k]) : st_f32_to_bf16(t->src_f32[i + k]);
        if (write_all(fd, half, m * 2) != 0) return -1;
    }
    return 0;
}

int st_writer_save(StWriter *w, const char *path) {
    for (int i = 0; i < w->n; i++) {
        StDtype dt = w->t[i].dtype;
        if (dt != ST_F32 && dt != ST_F16 && dt != ST_BF16)
            return ls_set_error("%s: tensor '%s': cannot write dtype %s (only F32/F16/BF16)", path, w->t[i].name,
                                st_dtype_name(dt));
        if (strcmp(w->t[i].name, "__metadata__") == 0)
            return ls_set_error("%s: '__metadata__' is reserved and cannot name a tensor", path);
        if (write_numel(&w->t[i]) > 0 && !w->t[i].src_f32)
            return ls_set_error("%s: tensor '%s': no source data", path, w->t[i].name);
    }
    StWriteTensor **order = mallocCheck((size_t)(w->n ? w->n : 1) * sizeof *order);
    for (int i = 0; i < w->n; i++) order[i] = &w->t[i];
    qsort(order, (size_t)w->n, sizeof *order, cmp_by_name);
    for (int i = 1; i < w->n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            ls_set_error("%s: tensor '%s' added twice", path, order[i]->name);
            free(order);
            return LS_ERR;
        }

    LsBuf hdr = {0};
    build_header(w, order, &hdr);
    size_t tlen = strlen(path) + 32;
    char *tmp = mallocCheck(tlen);
    snprintf(tmp, tlen, "%s.tmp.%d", path, (int)getpid());

    int rc = LS_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ls_set_error("%s: cannot write: %s", path, strerror(errno));
        goto out;
    }
    uint64_t n = hdr.len; /* little-endian on disk == host order */
    int bad = write_all(fd, &n, 8) || write_all(fd, hdr.s, hdr.len);
    uint16_t *half = mallocCheck(WRITE_CHUNK * sizeof(uint16_t));
    for (int i = 0; i < w->n && !bad; i++) bad = write_tensor_data(fd, order[i], half);
    free(half);
    if (!bad) bad = fsync(fd);
    int err = errno;
    if (close(fd) != 0 && !bad) bad = 1, err = errno;
    if (bad) {
        rc = ls_set_error("%s: write failed: %s", path, strerror(err));
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        rc = ls_set_error("%s: cannot rename temporary file into place: %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    free(hdr.s);
    free(order);
    return rc;
}
