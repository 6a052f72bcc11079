/* elementwise.c — fast CPU activations, adds and the timestep embedding (OpenMP loops).
 *
 * Loops shorter than OMP_MIN run on one thread: waking the team costs more than the work.
 */
#include <malloc.h>
#include <math.h>
#include <omp.h>

#include "kbase.h"   // defines: LS_MIN
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"     // defines: the ops' semantics (OpTable), op_conv2d_out
#include "vecmath.h" // defines: v8f, v8_gelu, v8_sigmoid, LS_CLONES

#define OMP_MIN ((size_t)1 << 15)

int op_num_threads_cpu(void) { return omp_get_max_threads(); }

/* Models allocate their activations per layer (tens of MiB each at 512x512) and free them right after.
 * glibc serves blocks that large with mmap and returns them on free, so every layer faulted in and
 * zeroed fresh pages: ~2.5 M page faults and ~1/4 of the run in the kernel for one SD1.5 U-Net step
 * (BENCHMARKS.md). Keeping blocks up to 1 GiB in the heap, and not trimming it, lets freed activations
 * be reused as they are. Peak RSS is unchanged: the heap only keeps what the largest layer needed.
 * This object is linked into every program that calls an op, so the setting applies before main. */
__attribute__((constructor)) static void keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

/* Activations run in ACT_CHUNK pieces over threads; each piece goes through 8-lane code (vecmath.h) in a
 * function built for AVX2 and for the baseline. libm's scalar erff made GEGLU cost 0.16 s of an SD1.5
 * U-Net step. */
#define ACT_CHUNK ((size_t)1 << 14)

enum { ACT_SILU, ACT_GELU, ACT_QUICK_GELU };

LS_CLONES static void act_span(float *x, size_t n, int kind) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v = v8_load(x + i);
        v8f y = kind == ACT_GELU ? v8_gelu(v) : v * v8_sigmoid(kind == ACT_SILU ? v : 1.702f * v);
        v8_store(x + i, y);
    }
    if (i < n) { /* the tail through the same code (padding lanes are 0) */
        int rem = (int)(n - i);
        v8f v = v8_load_part(x + i, rem, 0.0f);
        v8f y = kind == ACT_GELU ? v8_gelu(v) : v * v8_sigmoid(kind == ACT_SILU ? v : 1.702f * v);
        v8_store_part(x + i, y, rem);
    }
}

static void act_inplace(float *x, size_t n, int kind) {
    size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t c = 0; c < nc; c++) act_span(x + c * ACT_CHUNK, LS_MIN(ACT_CHUNK, n - c * ACT_CHUNK), kind);
}

/* == F.silu: x * sigmoid(x) */
void op_silu_inplace_cpu(float *x, size_t n) { act_inplace(x, n, ACT_SILU); }

/* exact GELU, == F.gelu(approximate="none"): 0.5 x (1 + erf(x/√2)) */
void op_gelu_inplace_cpu(float *x, size_t n) { act_inplace(x, n, ACT_GELU); }

/* CLIP's quick_gelu: x * sigmoid(1.702 x) */
void op_quick_gelu_inplace_cpu(float *x, size_t n) { act_inplace(x, n, ACT_QUICK_GELU); }

/* one row: y (D) = a (D) * gelu(g (D)) */
LS_CLONES static void geglu_row(float *y, const float *a, const float *g, int D) {
    int d = 0;
    for (; d + 8 <= D; d += 8) v8_store(y + d, v8_load(a + d) * v8_gelu(v8_load(g + d)));
    if (d < D) {
        int rem = D - d;
        v8_store_part(y + d, v8_load_part(a + d, rem, 0.0f) * v8_gelu(v8_load_part(g + d, rem, 0.0f)), rem);
    }
}

/* x (N, 2D) → y (N, D): y = value * gelu(gate), value = x[:, :D], gate = x[:, D:] (diffusers GEGLU order) */
void op_geglu_cpu(float *y, const float *x, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D >= OMP_MIN)
    for (int r = 0; r < N; r++) geglu_row(y + (size_t)r * D, x + (size_t)r * 2 * D, x + (size_t)r * 2 * D + D, D);
}

void op_add_inplace_cpu(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* y (B,C,HW) += v (B,C) broadcast over HW */
void op_add_channel_bias_cpu(float *y, const float *v, int B, int C, int HW) {
#pragma omp parallel for schedule(static) if ((size_t)B * C * HW >= OMP_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        float *yc = y + (size_t)bc * HW, add = v[bc];
        for (int i = 0; i < HW; i++) yc[i] += add;
    }
}

/* emb (B,dim) = [cos(t·f_k), sin(t·f_k)], k < half = dim/2, == diffusers get_timestep_embedding with
 * flip_sin_to_cos=True, scale=1, max_period=10000. Each step is rounded to float in the source's order:
 * e = (-ln 10000)·k; e = e / (half - shift); f = exp(e); arg = t·f. */
void op_timestep_embedding_cpu(float *emb, const float *t, int B, int dim, float shift) {
    int half = dim / 2;
    const float neg_log_period = (float)(-log(10000.0));
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < half; k++) {
            float e = neg_log_period * (float)k;
            e = e / ((float)half - shift);
            float arg = t[b] * expf(e);
            emb[(size_t)b * dim + k] = cosf(arg);
            emb[(size_t)b * dim + half + k] = sinf(arg);
        }
    }
}
