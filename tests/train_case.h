/* train_case.h — what the `lorastyle train` tests (test_train, test_train_state, test_train_methods)
 * share: a scratch folder with a fresh tiny model, the shipped sample data, the base options every run
 * starts from (64×64, quiet, no sample grids, adapter name "style"), a byte comparison of two files
 * (SOURCE_DATE_EPOCH fixes the adapters' training timestamps) and main, which runs a list of test steps. */
#ifndef LS_TRAIN_CASE_H
#define LS_TRAIN_CASE_H

#include <stdarg.h>

#include "testutil.h"
#include "train.h"

static char g_tmp[] = "/tmp/lorastyle-train.XXXXXX";
static char g_model[512], g_data[1024];
static const char *g_exe; /* the lorastyle executable (argv[2]), or NULL */

/* One step of a test's main: a test function and the name printed with the time so far after it runs
 * (NULL: nothing printed). */
typedef struct {
    void (*run)(void);
    const char *name;
} TrainCaseStep;

/* A test's main: argv[1] is the fixture folder (the data is datasets/sample_style beside it), argv[2] the
 * optional lorastyle executable. The setup, then each step in order; the scratch folder is removed at the
 * end. Exit status 2 for bad usage. */
static inline int train_case_main(int argc, char **argv, const TrainCaseStep *steps, int n) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR [LORASTYLE]\n", argv[0]);
        return 2;
    }
    snprintf(g_data, sizeof g_data, "%s/../../datasets/sample_style", argv[1]);
    g_exe = argc > 2 ? argv[2] : NULL;
    setenv("SOURCE_DATE_EPOCH", "1700000000", 1); /* fixed kohya timestamps: runs compare byte for byte */
    if (test_tiny_model(g_tmp, g_model, sizeof g_model) < 0) return test_summary();
    double t0 = ls_time();
    for (int i = 0; i < n; i++) {
        steps[i].run();
        if (steps[i].name) printf("[%.1f s] %s\n", ls_time() - t0, steps[i].name);
    }
    test_remove_dir(g_tmp);
    return test_summary();
}

static inline void base_opts(TrainOptions *o, const char *out) {
    train_options_default(o);
    o->data_dir = g_data;
    o->model = g_model;
    o->out = out;
    o->name = "style";
    o->resolution = 64;
    o->quiet = 1;
    o->samples = 0; /* sample grids: tests/test_train_state.c */
}

/* base_opts with the output folder g_tmp/<name>, name formatted from fmt as printf does; the path goes to out. */
static inline void base_opts_at(TrainOptions *o, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void base_opts_at(TrainOptions *o, char *out, size_t cap, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(out, cap, "%s/%s", g_tmp, name);
    base_opts(o, out);
}

/* A data folder g_tmp/one with one image of the sample data (fish.png and its caption), for the
 * overfitting checks (a check that the copy worked); its path goes to dir. */
static inline void one_image_data(char *dir, size_t cap) {
    char cmd[4096];
    snprintf(dir, cap, "%s/one", g_tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/10_pastelshapes/fish.png' '%s/10_pastelshapes/fish.txt' '%s/'",
             dir, g_data, g_data, dir);
    CHECK(system(cmd) == 0, "%s", cmd);
}

static inline int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = ls_read_file(a, &na), *y = ls_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

#endif
