/* optim.c — the CPU backend's ops for what a training or sampling step does between layers: the token
 * embedding gather, the classifier-free-guidance combine, axpy (LoRA merge), the sum of squares (gradient
 * norm) and the AdamW update. The MSE loss runs ref.c's plain serial loop: its sum, and so every logged loss,
 * stays the same at any thread count. Loops shorter than OMP_MIN run on one thread. */
#include <math.h>

#include "cpu.h" // defines: the op_*_cpu prototypes
#include "ops.h" // defines: the ops' semantics (OpTable), AdamwArgs

#define OMP_MIN ((size_t)1 << 16)

void op_embedding_cpu(float *y, const float *tok, const float *pos, const int *ids, int B, int L, int D) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            const float *te = tok + (size_t)ids[b * L + i] * D, *pe = pos + (size_t)i * D;
            float *dst = y + ((size_t)b * L + i) * D;
            for (int d = 0; d < D; d++) dst[d] = te[d] + pe[d];
        }
}

void op_cfg_combine_cpu(float *eps, const float *cond, float g, size_t n) {
#pragma omp parallel for schedule(static) if (n > OMP_MIN)
    for (size_t j = 0; j < n; j++) eps[j] = eps[j] + g * (cond[j] - eps[j]);
}

void op_axpy_cpu(float *y, float a, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > OMP_MIN)
    for (size_t j = 0; j < n; j++) y[j] += a * x[j];
}

double op_sum_squares_cpu(const float *x, size_t n) {
    double a = 0.0;
#pragma omp parallel for reduction(+ : a) schedule(static) if (n > OMP_MIN)
    for (size_t j = 0; j < n; j++) a += (double)x[j] * x[j];
    return a;
}

void op_adamw_cpu(float *p, const float *g, float *m, float *v, size_t n, const AdamwArgs *a) {
    double b1 = a->beta1, b2 = a->beta2, lr = a->lr, gs = a->gscale, bc1 = a->bc1, bc2 = a->bc2;
#pragma omp parallel for schedule(static) if (n > OMP_MIN)
    for (size_t j = 0; j < n; j++) {
        double gj = (double)g[j] * gs;
        double mj = b1 * m[j] + (1.0 - b1) * gj;
        double vj = b2 * v[j] + (1.0 - b2) * gj * gj;
        m[j] = (float)mj, v[j] = (float)vj;
        double pj = (double)p[j] * (1.0 - lr * a->weight_decay); /* decoupled weight decay */
        pj -= lr * (mj / bc1) / (sqrt(vj / bc2) + a->eps);
        p[j] = (float)pj;
    }
}
