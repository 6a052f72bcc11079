/* train_case.h — what the `lorastyle train` tests (test_train, test_train_state, test_train_methods)
 * share: a scratch folder with a fresh tiny model, the shipped sample data, the base options every run
 * starts from (64×64, quiet, no sample grids, adapter name "style") and a byte comparison of two files
 * (SOURCE_DATE_EPOCH fixes the adapters' training timestamps). */
#ifndef LS_TRAIN_CASE_H
#define LS_TRAIN_CASE_H

#include "testutil.h"
#include "train.h"

static char g_tmp[] = "/tmp/lorastyle-train.XXXXXX";
static char g_model[512], g_data[1024];

/* main's setup: argv[1] is the fixture folder (the data is datasets/sample_style beside it). LS_ERR after
 * printing the usage or the failure. */
static inline int train_case_setup(int argc, char **argv, const char *name) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR [LORASTYLE]\n", name);
        return LS_ERR;
    }
    snprintf(g_data, sizeof g_data, "%s/../../datasets/sample_style", argv[1]);
    setenv("SOURCE_DATE_EPOCH", "1700000000", 1); /* fixed kohya timestamps: runs compare byte for byte */
    return test_tiny_model(g_tmp, g_model, sizeof g_model);
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

static inline int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = ls_read_file(a, &na), *y = ls_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

#endif
