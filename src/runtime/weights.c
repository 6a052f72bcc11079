/* weights.c — see weights.h. */
#include "weights.h"

#include <math.h>
#include <string.h>

#include "common.h" // defines: ls_set_error, mallocCheck
#include "ops.h"    // defines: ls_ops, op_try_alloc, op_alloc, op_free (the weights live in the backend's memory)
#include "rng.h"    // defines: rng_uniform, rng_normal

void wt_init(WeightTable *t) { memset(t, 0, sizeof *t); }

void wt_add_module(WeightTable *t, const char *name, ModKind kind, void *layer) {
    if (t->n_mods == t->cap_mods) {
        t->cap_mods = t->cap_mods ? 2 * t->cap_mods : 128;
        t->mods = realloc(t->mods, (size_t)t->cap_mods * sizeof *t->mods);
        LS_ASSERT(t->mods);
    }
    ModuleSpec *m = &t->mods[t->n_mods++];
    m->name = strdup(name);
    LS_ASSERT(m->name);
    m->kind = kind;
    m->layer = layer;
}

const ModuleSpec *wt_find_module(const WeightTable *t, const char *name) {
    for (int i = 0; i < t->n_mods; i++)
        if (!strcmp(t->mods[i].name, name)) return &t->mods[i];
    return NULL;
}

void wt_free(WeightTable *t) {
    for (int i = 0; i < t->n_mods; i++) free(t->mods[i].name);
    free(t->mods);
    for (int i = 0; i < t->n; i++) free(t->v[i].name);
    free(t->v);
    op_free(t->owned);
    op_free(t->grads); /* the layers' gradient fields may already be gone: not reset */
    memset(t, 0, sizeof *t);
}

void wt_set_grad(WeightTable *t, float **gptr) {
    LS_ASSERT(t->n > 0);
    t->v[t->n - 1].gptr = gptr;
    *gptr = NULL;
}

void wt_add(WeightTable *t, float **ptr, WInit init, int64_t fan_in, int ndim, const int64_t *shape,
            const char *prefix, const char *suffix) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->v = realloc(t->v, (size_t)t->cap * sizeof *t->v);
        LS_ASSERT(t->v);
    }
    WeightSpec *s = &t->v[t->n++];
    memset(s, 0, sizeof *s);
    size_t len = strlen(prefix) + strlen(suffix) + 2;
    s->name = mallocCheck(len);
    snprintf(s->name, len, "%s%s%s", prefix, prefix[0] ? "." : "", suffix);
    LS_ASSERT(ndim >= 1 && ndim <= 4);
    s->ndim = ndim;
    s->numel = 1;
    for (int d = 0; d < ndim; d++) {
        s->shape[d] = shape[d];
        s->numel *= shape[d];
    }
    s->ptr = ptr;
    s->init = init;
    s->fan_in = fan_in;
    t->numel += s->numel;
    *ptr = NULL;
}

/* 1 if any of the n floats is Inf/NaN (all exponent bits set). Branch-free so that it vectorises, and
 * threaded: a 3.4 GB f32 checkpoint is checked in place, value by value. */
static int any_nonfinite(const float *p, int64_t n) {
    int bad = 0;
#pragma omp parallel for simd schedule(static) reduction(| : bad) if (n >= (1 << 16))
    for (int64_t j = 0; j < n; j++) {
        uint32_t u;
        memcpy(&u, p + j, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

/* Shape equality ignoring trailing size-1 dims ([C,C,1,1] conv == [C,C] linear). */
static int shape_match(const WeightSpec *s, const StTensor *t) {
    int na = s->ndim, nb = t->ndim;
    while (na > 1 && s->shape[na - 1] == 1) na--;
    while (nb > 1 && t->shape[nb - 1] == 1) nb--;
    if (na != nb) return 0;
    for (int d = 0; d < na; d++)
        if (s->shape[d] != t->shape[d]) return 0;
    return 1;
}

static void shape_str(char *buf, int cap, const int64_t *shape, int ndim) {
    int k = snprintf(buf, (size_t)cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += snprintf(buf + k, (size_t)(cap - k), "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, (size_t)(cap - k), "]");
}

/* Can the ops read tensor st where the file's mapping holds it? Aligned float32, on a backend that reads host
 * memory (the CPU); otherwise it is converted (or copied) into the backend's memory. */
static int in_place(const StTensor *st) {
    return ls_ops->host_memory && st->dtype == ST_F32 && ((uintptr_t)st->data % sizeof(float)) == 0;
}

int wt_load(WeightTable *t, const StFile *f, KeyMapFn map, const void *map_ctx) {
    /* First pass: resolve and validate everything, count what needs conversion. */
    const StTensor **found = mallocCheck((size_t)t->n * sizeof *found);
    int64_t convert_numel = 0;
    char key[512];
    for (int i = 0; i < t->n; i++) {
        const WeightSpec *s = &t->v[i];
        const char *k = s->name;
        if (map) {
            if (map(s->name, key, sizeof key, map_ctx) < 0) {
                free(found);
                return ls_set_error("%s: no key for model tensor %s", f->path, s->name);
            }
            k = key;
        }
        const StTensor *st = st_find(f, k);
        if (!st) {
            free(found);
            return ls_set_error("%s: missing tensor %s", f->path, k);
        }
        if (!shape_match(s, st)) {
            char want[96], got[96];
            shape_str(want, sizeof want, s->shape, s->ndim);
            shape_str(got, sizeof got, st->shape, st->ndim);
            free(found);
            return ls_set_error("%s: tensor %s has shape %s, the model config needs %s", f->path, k,
                                got, want);
        }
        if (st->dtype != ST_F32 && st->dtype != ST_F16 && st->dtype != ST_BF16 && st->dtype != ST_F64) {
            free(found);
            return ls_set_error("%s: tensor %s has dtype %s, expected F32, F16, BF16 or F64",
                                f->path, k, st_dtype_name(st->dtype));
        }
        found[i] = st;
        if (!in_place(st)) convert_numel += s->numel;
    }
    op_free(t->owned);
    t->owned = convert_numel ? op_try_alloc((size_t)convert_numel * sizeof(float)) : NULL;
    t->owned_numel = t->owned ? convert_numel : 0;
    if (convert_numel && !t->owned) {
        free(found);
        return ls_set_error("%s: out of memory: %lld MiB for the weights as float32", f->path,
                            (long long)(convert_numel >> 18));
    }
    float *dst = t->owned;
    for (int i = 0; i < t->n; i++) {
        const WeightSpec *s = &t->v[i];
        const StTensor *st = found[i];
        if (in_place(st)) {
            /* Check finiteness once at load so NaN weights are a clear error, not a black image. */
            if (any_nonfinite(st->data, s->numel)) {
                free(found);
                return ls_set_error("%s: tensor %s contains NaN/Inf", f->path, st->name);
            }
            *s->ptr = (float *)st->data; /* read-only mmap: never written through */
        } else {
            if (st_to_f32(f, st, dst, 1) < 0) {
                free(found);
                return LS_ERR;
            }
            st_release_pages(st->data, st->nbytes); /* the float16 source is not read again */
            *s->ptr = dst;
            dst += s->numel;
        }
    }
    free(found);
    return LS_OK;
}

void wt_init_random(WeightTable *t, uint64_t seed) {
    op_free(t->owned);
    t->owned = op_alloc((size_t)t->numel * sizeof(float));
    t->owned_numel = t->numel;
    float *p = t->owned;
    uint64_t offset = 0;
    for (int i = 0; i < t->n; i++) {
        WeightSpec *s = &t->v[i];
        size_t n = (size_t)s->numel;
        switch (s->init) {
        case WINIT_UNIFORM_FANIN: {
            float bound = 1.0f / sqrtf((float)(s->fan_in > 0 ? s->fan_in : 1));
            rng_uniform(p, n, seed, offset);
            for (size_t j = 0; j < n; j++) p[j] = (2.0f * p[j] - 1.0f) * bound;
            break;
        }
        case WINIT_NORMAL_002:
            rng_normal(p, n, seed, offset);
            for (size_t j = 0; j < n; j++) p[j] *= 0.02f;
            break;
        case WINIT_ONES:
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
            break;
        case WINIT_ZEROS:
            memset(p, 0, n * sizeof(float));
            break;
        }
        offset += n;
        *s->ptr = p;
        p += n;
    }
}

/* ---------------- full fine-tuning ---------------- */

/* Does tensor i live in the table's own float32 storage (not in a mapped file)? */
static int is_owned(const WeightTable *t, int i) {
    const float *p = *t->v[i].ptr;
    return t->owned && p >= t->owned && p + t->v[i].numel <= t->owned + t->owned_numel;
}

int64_t wt_make_writable(WeightTable *t) {
    int all_owned = 1;
    for (int i = 0; i < t->n && all_owned; i++) all_owned = is_owned(t, i);
    if (all_owned) return 0;
    /* one new arena for every tensor (simplest; the mixed case, some F32 tensors mmapped and others
     * converted, only happens for odd files) */
    float *arena = op_try_alloc((size_t)t->numel * sizeof(float)), *dst = arena;
    if (!arena)
        return ls_set_error("out of memory: %lld MiB for a writable copy of the weights",
                            (long long)(t->numel >> 18));
    for (int i = 0; i < t->n; i++) {
        const WeightSpec *s = &t->v[i];
        const float *p = *s->ptr;
        size_t nb = (size_t)s->numel * sizeof(float);
        memcpy(dst, p, nb);
        if (!is_owned(t, i)) st_release_pages(p, nb); /* a mapped float32 tensor: the file's copy is not read again */
        *s->ptr = dst;
        dst += s->numel;
    }
    op_free(t->owned);
    t->owned = arena;
    t->owned_numel = t->numel;
    return t->numel * (int64_t)sizeof(float);
}

int64_t wt_release(WeightTable *t) {
    int64_t bytes = t->numel * (int64_t)sizeof(float);
    for (int i = 0; i < t->n; i++) {
        const float *p = *t->v[i].ptr;
        if (p && !is_owned(t, i)) st_release_pages(p, (size_t)t->v[i].numel * sizeof(float));
        *t->v[i].ptr = NULL;
    }
    wt_free(t);
    return bytes;
}

int wt_grads_alloc(WeightTable *t) {
    for (int i = 0; i < t->n; i++)
        if (!t->v[i].gptr) return ls_set_error("tensor %s has no gradient field (it cannot be trained)", t->v[i].name);
    wt_grads_free(t);
    t->grads = op_try_alloc((size_t)t->numel * sizeof(float));
    if (!t->grads)
        return ls_set_error("out of memory: %lld MiB for the gradients", (long long)(t->numel >> 18));
    memset(t->grads, 0, (size_t)t->numel * sizeof(float));
    float *g = t->grads;
    for (int i = 0; i < t->n; i++) {
        *t->v[i].gptr = g;
        g += t->v[i].numel;
    }
    return LS_OK;
}

void wt_grads_free(WeightTable *t) {
    if (!t->grads) return;
    for (int i = 0; i < t->n; i++)
        if (t->v[i].gptr) *t->v[i].gptr = NULL;
    op_free(t->grads);
    t->grads = NULL;
}

int wt_save(const WeightTable *t, const char *path, StDtype dtype) {
    StWriter w;
    st_writer_init(&w);
    st_writer_meta(&w, "format", "pt");
    for (int i = 0; i < t->n; i++) {
        const WeightSpec *s = &t->v[i];
        st_writer_add(&w, s->name, dtype, s->ndim, s->shape, *s->ptr);
    }
    int rc = st_writer_save(&w, path);
    st_writer_free(&w);
    return rc;
}
