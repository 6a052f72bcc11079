/* testutil.h — tiny shared helpers for the C tests (header-only): pass/fail counting, scratch folders, tensor comparison,
 * fixture loading. Every test ends with `return test_summary();`, printing "N passed, M failed". */
#ifndef LS_TESTUTIL_H
#define LS_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>

#include "common.h"
#include "model.h" // defines: model_init_preset
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

/* A test's scratch folder: mkdtemp(tmpl) (a "/tmp/...XXXXXX" template, rewritten in place); remove it with
 * test_remove_dir. LS_OK, or LS_ERR with the failure counted. */
static inline int test_scratch_dir(char *tmpl) {
    if (mkdtemp(tmpl)) return LS_OK;
    printf("FAIL mkdtemp %s: %s\n", tmpl, strerror(errno));
    g_fail++;
    return LS_ERR;
}

/* A test's scratch folder with a fresh tiny model: test_scratch_dir(tmpl), then `lorastyle init --preset
 * tiny --seed 1` (float32) into tmpl/tiny, whose path goes to model_dir. LS_OK, or LS_ERR with the failure
 * counted. */
static inline int test_tiny_model(char *tmpl, char *model_dir, size_t cap) {
    LS_TRY(test_scratch_dir(tmpl));
    snprintf(model_dir, cap, "%s/tiny", tmpl);
    int rc = model_init_preset("tiny", model_dir, 1, ST_F32, NULL);
    if (rc == LS_OK) g_pass++;
    else g_fail++, printf("FAIL init of the tiny model in %s: %s\n", model_dir, ls_last_error());
    return rc;
}

/* A test against a PyTorch fixture begins: the model in mdir loaded into *m (one check) and the fixture
 * <fixdir>/<fixture> opened as *ref. LS_OK, or LS_ERR with the failure printed and counted. */
static inline int test_open_case(Model *m, const char *mdir, StFile *ref, const char *fixdir, const char *fixture) {
    int loaded = model_load(m, mdir, NULL) == 0;
    CHECK(loaded, "load: %s", ls_last_error());
    if (!loaded) return LS_ERR;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fixdir, fixture);
    if (st_open(ref, path) < 0) {
        printf("FAIL: %s\n", ls_last_error());
        g_fail++;
        return LS_ERR;
    }
    return LS_OK;
}

/* A test against a PyTorch fixture on a fresh tiny model: the fixtures folder, the scratch folder with the model's
 * folder in it, and the fixture file. */
typedef struct {
    const char *fixdir; /* argv[1], or tests/fixtures */
    char tmp[64];       /* /tmp/ls_test_<tag>_XXXXXX */
    char mdir[128];     /* <tmp>/tiny */
    StFile ref;         /* <fixdir>/<fixture> */
} TestCase;

/* The start of such a test: the folders (test_tiny_model), the model loaded into *m and the fixture opened
 * (test_open_case). LS_OK, or LS_ERR with the failure counted. End it with test_case_end(m, &tc->ref, tc->tmp). */
static inline int test_case_begin(TestCase *tc, int argc, char **argv, const char *tag, Model *m,
                                  const char *fixture) {
    tc->fixdir = argc > 1 ? argv[1] : "tests/fixtures";
    snprintf(tc->tmp, sizeof tc->tmp, "/tmp/ls_test_%s_XXXXXX", tag);
    LS_TRY(test_tiny_model(tc->tmp, tc->mdir, sizeof tc->mdir));
    return test_open_case(m, tc->mdir, &tc->ref, tc->fixdir, fixture);
}

/* Remove a test's scratch folder (a note, not a failure, when that does not work). */
static inline void test_remove_dir(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
}

/* How many entries of folder dir have ".tmp." in their name (the leftovers of an interrupted atomic write). */
static inline int test_count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

/* Tensor t of f read as float32 (malloc'd; the caller frees it once w is saved) and added to w as `name`. A read
 * that fails counts as a failure. */
static inline float *test_add_f32(StWriter *w, const StFile *f, const StTensor *t, const char *name) {
    float *p = mallocCheck((size_t)t->numel * sizeof(float) + 1);
    if (st_to_f32(f, t, p, 0) < 0) g_fail++, printf("FAIL read %s: %s\n", t->name, ls_last_error());
    st_writer_add(w, name, ST_F32, t->ndim, t->shape, p);
    return p;
}

/* Save w to path (one check), then free it. */
static inline void test_writer_save(StWriter *w, const char *path) {
    CHECK(st_writer_save(w, path) == 0, "write %s: %s", path, ls_last_error());
    st_writer_free(w);
}

/* Write n bytes to path (aborts when that fails: a test's own input). */
static inline void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    LS_ASSERT(f);
    LS_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

/* The end of a test against a fixture (test_case_begin, test_open_case): the fixture closed, the model freed, the
 * scratch folder removed; returns test_summary(). */
static inline int test_case_end(Model *m, StFile *ref, const char *tmpl) {
    st_close(ref);
    model_free(m);
    test_remove_dir(tmpl);
    return test_summary();
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

/* A gradient g (n values) against the fixture tensor `key`, which may hold only its leading values:
 * *d2 = ‖g − r‖², *r2 = ‖r‖² over those, *nref = how many the fixture holds. */
static inline void fixture_grad_diff(const StFile *f, const char *key, const float *g, size_t n, double *d2,
                                     double *r2, size_t *nref) {
    float *r = fixture_get(f, key, nref, NULL);
    *d2 = *r2 = 0;
    for (size_t j = 0; j < *nref && j < n; j++) {
        *d2 += ((double)g[j] - r[j]) * ((double)g[j] - r[j]);
        *r2 += (double)r[j] * r[j];
    }
    free(r);
}

#endif
