/* lycoris.c — see lycoris.h. */
#include "lycoris.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h" // defines: mallocCheck
#include "ops.h"    // defines: op_table_cpu

/* The factors and ΔW live in host memory (malloc): their GEMMs run on the CPU backend whatever the device, once
 * per adapter load; lora.c hands the finished ΔW to the backend. */
static void host_gemm(float *c, const float *a, const float *b, int M, int N, int K, int ta, int tb, float alpha,
                      float beta) {
    op_table_cpu.gemm(c, a, b, M, N, K, ta, tb, alpha, beta);
}

static int64_t numel(const LycoFactor *f) {
    int64_t n = 1;
    for (int i = 0; i < f->ndim; i++) n *= f->shape[i];
    return n;
}

/* columns of a factor seen as a matrix (shape[0], rest) */
static int64_t cols(const LycoFactor *f) { return f->shape[0] ? numel(f) / f->shape[0] : 0; }

/* m (rows, n) = a (rows, r) · b (r, n) */
static float *matmul(const LycoFactor *a, const LycoFactor *b) {
    int64_t rows = a->shape[0], r = cols(a), n = cols(b);
    float *m = mallocCheck((size_t)(rows * n) * sizeof(float));
    host_gemm(m, a->d, b->d, (int)rows, (int)n, (int)r, 0, 0, 1.0f, 0.0f);
    return m;
}

/* A CP (Tucker) rebuild as LyCORIS's rebuild_tucker: h[o, c, y, x] = Σ_ij t[i,j,y,x]·wa[i,o]·wb[j,c],
 * t (r, r, kh, kw), wa (r, out), wb (r, in); h (out, in·kk), malloc'd. */
static float *tucker(const LycoFactor *t, const LycoFactor *wa, const LycoFactor *wb) {
    int r = (int)t->shape[0], kk = (int)(t->shape[2] * t->shape[3]);
    int out = (int)wa->shape[1], in = (int)wb->shape[1];
    float *h = mallocCheck((size_t)out * in * kk * sizeof(float));
    float *tyx = mallocCheck((size_t)r * r * sizeof(float)), *tmp = mallocCheck((size_t)r * in * sizeof(float));
    float *hyx = mallocCheck((size_t)out * in * sizeof(float));
    for (int s = 0; s < kk; s++) {
        for (int i = 0; i < r * r; i++) tyx[i] = t->d[(size_t)i * kk + s];   /* t[:, :, y, x] */
        host_gemm(tmp, tyx, wb->d, r, in, r, 0, 0, 1.0f, 0.0f);                /* tmp (r, in) = T·wb */
        host_gemm(hyx, wa->d, tmp, out, in, r, 1, 0, 1.0f, 0.0f);              /* hyx (out, in) = waᵀ·tmp */
        for (int64_t i = 0; i < (int64_t)out * in; i++) h[i * kk + s] = hyx[i];
    }
    free(tyx);
    free(tmp);
    free(hyx);
    return h;
}

static int is_tucker_core(const LycoFactor *t, int r) {
    return t->ndim == 4 && t->shape[0] == r && t->shape[1] == r && t->shape[2] == t->shape[3] && t->shape[2] > 0;
}

int lyco_loha_delta(const LycoFactor *w1a, const LycoFactor *w1b, const LycoFactor *w2a, const LycoFactor *w2b,
                    const LycoFactor *t1, const LycoFactor *t2, float **delta, int64_t *out, int64_t *in, int *k,
                    char *why, int cap) {
    *delta = NULL;
    if (w1a->ndim < 2 || w1b->ndim < 2 || w2a->ndim < 2 || w2b->ndim < 2) {
        snprintf(why, (size_t)cap, "hada_w1_a/w1_b/w2_a/w2_b must be matrices");
        return -1;
    }
    int64_t r = w1b->shape[0]; /* rank, as LyCORIS and A1111 take it */
    if ((t1->ndim != 0) != (t2->ndim != 0)) {
        snprintf(why, (size_t)cap, "hada_t1 and hada_t2 come together");
        return -1;
    }
    float *h1, *h2;
    int64_t n;
    if (t1->ndim) { /* CP-decomposed conv: wa (r, out), wb (r, in) */
        int ok = is_tucker_core(t1, (int)r) && is_tucker_core(t2, (int)r) && t1->shape[2] == t2->shape[2] &&
                 w1a->ndim == 2 && w1b->ndim == 2 && w2a->ndim == 2 && w2b->ndim == 2 && w1a->shape[0] == r &&
                 w2a->shape[0] == r && w2b->shape[0] == r && w1a->shape[1] == w2a->shape[1] &&
                 w1b->shape[1] == w2b->shape[1];
        if (!ok) {
            snprintf(why, (size_t)cap, "hada_t1/t2 (r,r,k,k) and hada_w*_a (r,out) / hada_w*_b (r,in) do not fit");
            return -1;
        }
        *out = w1a->shape[1];
        *in = w1b->shape[1];
        *k = (int)t1->shape[2];
        n = *in * *k * *k;
        h1 = tucker(t1, w1a, w1b);
        h2 = tucker(t2, w2a, w2b);
    } else {
        int ok = cols(w1a) == r && w2a->shape[0] == w1a->shape[0] && cols(w2a) == r && w2b->shape[0] == r &&
                 cols(w2b) == cols(w1b) && r > 0;
        if (!ok) {
            snprintf(why, (size_t)cap, "hada_w*_a (out,r) / hada_w*_b (r,in) shapes do not fit");
            return -1;
        }
        *out = w1a->shape[0];
        n = cols(w1b);
        *k = w1b->ndim == 4 && w1b->shape[2] == w1b->shape[3] ? (int)w1b->shape[2] : 1;
        *in = n / ((int64_t)*k * *k);
        h1 = matmul(w1a, w1b);
        h2 = matmul(w2a, w2b);
    }
    for (int64_t i = 0; i < *out * n; i++) h1[i] *= h2[i];
    free(h2);
    *delta = h1;
    return 0;
}

int lyco_lokr_delta(const LycoFactor *w1, const LycoFactor *w1a, const LycoFactor *w1b, const LycoFactor *w2,
                    const LycoFactor *w2a, const LycoFactor *w2b, const LycoFactor *t2, float **delta,
                    int64_t *out, int64_t *in, int *k, char *why, int cap) {
    *delta = NULL;
    if (!w1->ndim == !(w1a->ndim && w1b->ndim) || !w2->ndim == !(w2a->ndim && w2b->ndim) ||
        (w1->ndim && (w1a->ndim || w1b->ndim)) || (w2->ndim && (w2a->ndim || w2b->ndim)) || (t2->ndim && w2->ndim)) {
        snprintf(why, (size_t)cap, "needs lokr_w1 or lokr_w1_a+lokr_w1_b, and lokr_w2 or lokr_w2_a+lokr_w2_b "
                 "(lokr_t2 only with the latter)");
        return -1;
    }
    /* W1 (a, c) */
    int64_t a, c;
    float *m1;
    if (w1->ndim) {
        if (w1->ndim != 2) {
            snprintf(why, (size_t)cap, "lokr_w1 must be a matrix");
            return -1;
        }
        a = w1->shape[0], c = w1->shape[1];
        m1 = mallocCheck((size_t)(a * c) * sizeof(float));
        memcpy(m1, w1->d, (size_t)(a * c) * sizeof(float));
    } else {
        if (w1a->ndim != 2 || w1b->ndim != 2 || w1a->shape[1] != w1b->shape[0]) {
            snprintf(why, (size_t)cap, "lokr_w1_a (a,r) / lokr_w1_b (r,c) shapes do not fit");
            return -1;
        }
        a = w1a->shape[0], c = w1b->shape[1];
        m1 = matmul(w1a, w1b);
    }
    /* W2 (b, d·kk) */
    int64_t b, dkk;
    int kk1 = 1; /* kernel side, when the shapes tell it */
    float *m2;
    if (w2->ndim) {
        b = w2->shape[0], dkk = cols(w2);
        if (w2->ndim == 4 && w2->shape[2] == w2->shape[3]) kk1 = (int)w2->shape[2];
        m2 = mallocCheck((size_t)(b * dkk) * sizeof(float));
        memcpy(m2, w2->d, (size_t)(b * dkk) * sizeof(float));
    } else if (t2->ndim) {
        int64_t r = w2a->shape[0];
        if (!is_tucker_core(t2, (int)r) || w2a->ndim != 2 || w2b->ndim != 2 || w2b->shape[0] != r) {
            snprintf(why, (size_t)cap, "lokr_t2 (r,r,k,k) / lokr_w2_a (r,b) / lokr_w2_b (r,d) shapes do not fit");
            free(m1);
            return -1;
        }
        b = w2a->shape[1];
        kk1 = (int)t2->shape[2];
        dkk = w2b->shape[1] * kk1 * kk1;
        m2 = tucker(t2, w2a, w2b);
    } else {
        if (w2a->ndim != 2 || w2b->ndim < 2 || cols(w2a) != w2b->shape[0]) {
            snprintf(why, (size_t)cap, "lokr_w2_a (b,r) / lokr_w2_b (r,d) shapes do not fit");
            free(m1);
            return -1;
        }
        b = w2a->shape[0], dkk = cols(w2b);
        if (w2b->ndim == 4 && w2b->shape[2] == w2b->shape[3]) kk1 = (int)w2b->shape[2];
        m2 = matmul(w2a, w2b);
    }
    /* ΔW[i·b + p, j·dkk + q] = W1[i,j] · W2[p,q]: in the (out, in, kh, kw) layout that is the kron of W1
     * (a, c, 1, 1) with W2 (b, d, kh, kw), as LyCORIS's make_kron */
    int64_t n = c * dkk;
    float *d = mallocCheck((size_t)(a * b * n) * sizeof(float));
    for (int64_t i = 0; i < a; i++)
        for (int64_t p = 0; p < b; p++) {
            float *row = d + (i * b + p) * n;
            for (int64_t j = 0; j < c; j++) {
                float w = m1[i * c + j];
                const float *src = m2 + p * dkk;
                for (int64_t q = 0; q < dkk; q++) row[j * dkk + q] = w * src[q];
            }
        }
    free(m1);
    free(m2);
    *out = a * b;
    *k = kk1;
    *in = n / ((int64_t)kk1 * kk1);
    *delta = d;
    return 0;
}

void lyco_dora_update(float *dw, const float *w, const float *m, int64_t out, int64_t in, int kk, int axis) {
    int64_t n = in * kk;
    if (axis == 0) {
        for (int64_t o = 0; o < out; o++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++) {
                double v = (double)w[o * n + j] + dw[o * n + j];
                s += v * v;
            }
            double g = m[o] / sqrt(s);
            for (int64_t j = 0; j < n; j++)
                dw[o * n + j] = (float)(g * ((double)w[o * n + j] + dw[o * n + j]) - w[o * n + j]);
        }
        return;
    }
    double *s = calloc((size_t)in, sizeof(double));
    LS_ASSERT(s);
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < n; j++) {
            double v = (double)w[o * n + j] + dw[o * n + j];
            s[j / kk] += v * v;
        }
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < n; j++) {
            double g = m[j / kk] / sqrt(s[j / kk]);
            dw[o * n + j] = (float)(g * ((double)w[o * n + j] + dw[o * n + j]) - w[o * n + j]);
        }
    free(s);
}
