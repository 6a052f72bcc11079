/* trainset.c — see trainset.h. */
#include "trainset.h"

#include "ops.h" // defines: op_adamw, op_sum_squares

#include <math.h>
#include <stdio.h>
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
    for (int i = 0; i < s->n; i++) acc += op_sum_squares(s->t[i].g, s->t[i].n);
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
    for (int i = 0; i < ts->n; i++) { /* the moments in the backend's memory: op_adamw updates them */
        st->m[i] = op_zalloc(ts->t[i].n * sizeof(float));
        st->v[i] = op_zalloc(ts->t[i].n * sizeof(float));
    }
}

void adam_free(AdamState *st) {
    for (int i = 0; i < st->n; i++) op_free(st->m[i]), op_free(st->v[i]);
    free(st->m), free(st->v);
    memset(st, 0, sizeof *st);
}

void adamw_step(const TrainSet *ts, AdamState *st, float lr0, int t, float gscale, double wd) {
    AdamwArgs a = {.beta1 = ADAM_B1, .beta2 = ADAM_B2, .eps = ADAM_EPS, .weight_decay = wd, .gscale = gscale,
                   .bc1 = 1.0 - pow(ADAM_B1, t), .bc2 = 1.0 - pow(ADAM_B2, t)};
    for (int i = 0; i < ts->n; i++) {
        const TrainTensor *q = &ts->t[i];
        a.lr = lr0 * q->lr_mul;
        op_adamw(q->p, q->g, st->m[i], st->v[i], q->n, &a);
    }
}

void trainset_write_state(StWriter *w, const TrainSet *ts, const AdamState *st, float *const *ema, char sep) {
    char key[700];
    op_sync(); /* the writer reads the tensors on the host */
    for (int i = 0; i < ts->n; i++) {
        const TrainTensor *t = &ts->t[i];
        int64_t sh[1] = {(int64_t)t->n};
        const float *src[4] = {t->p, st->m[i], st->v[i], ema ? ema[i] : NULL};
        static const char *const pre[4] = {"p", "m", "v", "ema"};
        for (int k = 0; k < 4 && src[k]; k++) {
            snprintf(key, sizeof key, "%s%c%s", pre[k], sep, t->name);
            st_writer_add(w, key, ST_F32, 1, sh, src[k]);
        }
    }
}
