/* trainset.c — see trainset.h. */
#include "trainset.h"

#include <string.h>

#include "common.h" // defines: LS_ASSERT

void trainset_add(TrainSet *s, const char *name, float *p, float *g, size_t n) {
    LS_ASSERT(p && g && n > 0);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->t = realloc(s->t, (size_t)s->cap * sizeof *s->t);
        LS_ASSERT(s->t);
    }
    s->t[s->n++] = (TrainTensor){strdupCheck(name), p, g, n, 1.0f};
    s->n_params += (int64_t)n;
}

void trainset_zero_grads(const TrainSet *s) {
    for (int i = 0; i < s->n; i++) memset(s->t[i].g, 0, s->t[i].n * sizeof(float));
}

double trainset_grad_sumsq(const TrainSet *s) {
    double acc = 0.0;
    for (int i = 0; i < s->n; i++) {
        const float *g = s->t[i].g;
        size_t n = s->t[i].n;
        double a = 0.0;
#pragma omp parallel for reduction(+ : a) schedule(static) if (n > 65536)
        for (size_t j = 0; j < n; j++) a += (double)g[j] * g[j];
        acc += a;
    }
    return acc;
}

void trainset_free(TrainSet *s) {
    for (int i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->t);
    memset(s, 0, sizeof *s);
}
