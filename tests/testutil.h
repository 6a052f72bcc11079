/* testutil.h — tiny shared helpers for the C tests (header-only): pass/fail counting, tensor comparison,
 * fixture loading. Every test ends with `return test_summary();`, printing "N passed, M failed". */
#ifndef LS_TESTUTIL_H
#define LS_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "safetensors.h"

static int g_pass, g_fail;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (cond) {                                        \
            g_pass++;                                      \
        } else {                                           \
            g_fail++;                                      \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                           \
            printf("\n");                                  \
        }                                                  \
    } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

/* ||a-b|| / ||b|| in double */
static inline double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

static inline double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* Load fixture tensor `name` as float32; aborts the test (exit 1) if absent, with a clear message. */
static inline float *fixture_get(const StFile *f, const char *name, size_t *numel,
                                 const StTensor **meta) {
    const StTensor *t = st_find(f, name);
    if (!t) {
        printf("FAIL: fixture %s has no tensor %s (regenerate fixtures)\n", f->path, name);
        exit(1);
    }
    float *p = malloc((size_t)t->numel * sizeof(float) + 1);
    if (!p || st_to_f32(f, t, p, 0) < 0) {
        printf("FAIL: cannot read %s from %s: %s\n", name, f->path, ls_last_error());
        exit(1);
    }
    if (numel) *numel = (size_t)t->numel;
    if (meta) *meta = t;
    return p;
}

#endif
