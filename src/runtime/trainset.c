/* trainset.c — see trainset.h. */
#include "trainset.h"

#include <math.h>
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

void adam_init(AdamState *st, const TrainSet *ts) {
    st->n = ts->n;
    st->m = callocCheck((size_t)ts->n, sizeof *st->m);
    st->v = callocCheck((size_t)ts->n, sizeof *st->v);
    for (int i = 0; i < ts->n; i++) {
        st->m[i] = callocCheck(ts->t[i].n, sizeof(float));
        st->v[i] = callocCheck(ts->t[i].n, sizeof(float));
    }
}

void adam_free(AdamState *st) {
    for (int i = 0; i < st->n; i++) free(st->m[i]), free(st->v[i]);
    free(st->m), free(st->v);
    memset(st, 0, sizeof *st);
}

void adamw_step(const TrainSet *ts, AdamState *st, float lr0, int t, float gscale, double wd) {
    double bc1 = 1.0 - pow(ADAM_B1, t), bc2 = 1.0 - pow(ADAM_B2, t);
    for (int i = 0; i < ts->n; i++) {
        const TrainTensor *q = &ts->t[i];
        float lr = lr0 * q->lr_mul;
        float *mm = st->m[i], *vv = st->v[i];
#pragma omp parallel for schedule(static) if (q->n > 65536)
        for (size_t j = 0; j < q->n; j++) {
            double g = (double)q->g[j] * gscale;
            double m = ADAM_B1 * mm[j] + (1.0 - ADAM_B1) * g;
            double v = ADAM_B2 * vv[j] + (1.0 - ADAM_B2) * g * g;
            mm[j] = (float)m, vv[j] = (float)v;
            double p = (double)q->p[j] * (1.0 - (double)lr * wd); /* decoupled weight decay */
            p -= (double)lr * (m / bc1) / (sqrt(v / bc2) + ADAM_EPS);
            q->p[j] = (float)p;
        }
    }
}
