/* grad_check.h — what the gradient tests share (test_unet_grad, test_unet_full_grad, test_vae_grad,
 * test_clip_grad, test_adapter): central differences of a loss and the entry each one probes, the tally of
 * those checks, the comparison of gradients with a PyTorch fixture's under a noise floor, and small
 * helpers (a LoRA module's sizes, dot products, a TrainSet's tensor by name). */
#ifndef LS_TEST_GRAD_CHECK_H
#define LS_TEST_GRAD_CHECK_H

#include "lora.h"     // defines: LoraModule
#include "rng.h"      // defines: rng_u32
#include "testutil.h" // defines: CHECK
#include "trainset.h" // defines: TrainSet, TrainTensor

/* the number of values of a LoRA module's down and up matrices */
static inline size_t numel_down(const LoraModule *m) { return (size_t)m->rank * m->in * m->k * m->k; }
static inline size_t numel_up(const LoraModule *m) { return (size_t)m->out * m->rank; }

/* Σ a·b in double */
static inline double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static inline const TrainTensor *find_tensor(const TrainSet *ts, const char *name) {
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].name, name)) return &ts->t[i];
    return NULL;
}

/* How many tensors of ts have a gradient that is exactly 0 everywhere. */
static inline int count_zero_grads(const TrainSet *ts) {
    int n = 0;
    for (int i = 0; i < ts->n; i++) n += dot(ts->t[i].g, ts->t[i].g, ts->t[i].n) == 0.0;
    return n;
}

/* Central difference of loss() with respect to *p: (loss(p + h) − loss(p − h)) over the step as float32
 * rounds it; *p is restored. */
static inline double central_diff(float *p, float h, double (*loss)(void)) {
    float v = *p;
    *p = v + h;
    double lp = loss();
    *p = v - h;
    double lm = loss();
    *p = v;
    return (lp - lm) / (2.0 * ((double)(v + h) - (double)v));
}

/* The entry of g (n values) a finite-difference check probes: the largest |g| of 1 + tries random entries,
 * so that a check does not measure float noise on a near-zero gradient. *ctr: the position in rng_u32's
 * stream of seed, advanced. */
static inline size_t fd_pick(const float *g, size_t n, int tries, uint64_t seed, uint64_t *ctr) {
    size_t best = rng_u32(seed, (*ctr)++) % n;
    for (int c = 0; c < tries; c++) {
        size_t i = rng_u32(seed, (*ctr)++) % n;
        if (fabsf(g[i]) > fabsf(g[best])) best = i;
    }
    return best;
}

/* The finite-difference checks' tally: how many, the worst |fd − g| / (rtol·|g| + atol) and where. */
typedef struct {
    int n;
    double worst;
    char where[400];
} FdTally;

/* One check: the finite difference fd against the analytic g, within rtol·|g| + atol (LS_VERBOSE=1 prints
 * every one). */
static inline void fd_check(FdTally *t, const char *what, double fd, double g, double rtol, double atol) {
    double err = fabs(fd - g), r = err / (rtol * fabs(g) + atol);
    t->n++;
    if (getenv("LS_VERBOSE")) printf("  %s: fd %.6g analytic %.6g (%.2f of tolerance)\n", what, fd, g, r);
    CHECK(r <= 1.0, "%s: finite difference %.6g vs analytic %.6g", what, fd, g);
    if (r > t->worst) {
        t->worst = r;
        snprintf(t->where, sizeof t->where, "%s: fd %.6g vs analytic %.6g (|diff| %.2g)", what, fd, g, err);
    }
}

/* Gradients against a fixture's, tensor by tensor: each ‖g − r‖ ≤ tol·‖r‖ + 1e-7·‖r_all‖, where r_all is
 * every reference gradient of the loss (all2 = ‖r_all‖², summed by the caller in a first pass). The floor
 * lets a tensor whose true gradient is 0 pass on float noise; those (‖r‖ < 1e-6·‖r_all‖) are counted apart
 * and left out of the worst. */
typedef struct {
    double all2;     /* ‖r_all‖² */
    double num, den; /* Σ‖g − r‖², Σ‖r‖² over the tensors compared */
    double worst;    /* the largest ‖g − r‖ / ‖r‖ */
    char worst_key[600];
    int n, nzero;
} GradTally;

/* One tensor, d2 = ‖g − r‖² and r2 = ‖r‖² (fixture_grad_diff); vs names the reference in the message.
 * Returns ‖g − r‖ / ‖r‖, or -1 for a zero true gradient. */
static inline double grad_tally_check(GradTally *t, const char *key, double d2, double r2, double tol,
                                      const char *vs) {
    CHECK(sqrt(d2) <= tol * sqrt(r2) + 1e-7 * sqrt(t->all2), "%s: gradient rel L2 %.3g (|ref| %.3g) vs %s", key,
          sqrt(d2) / (sqrt(r2) + 1e-30), sqrt(r2), vs);
    t->n++;
    t->num += d2, t->den += r2;
    if (sqrt(r2) < 1e-6 * sqrt(t->all2)) {
        t->nzero++;
        return -1;
    }
    double rel = sqrt(d2 / r2);
    if (rel > t->worst) t->worst = rel, snprintf(t->worst_key, sizeof t->worst_key, "%s", key);
    return rel;
}

/* ‖g − r‖ / ‖r‖ over every tensor compared */
static inline double grad_tally_overall(const GradTally *t) { return sqrt(t->num / t->den); }

#endif
