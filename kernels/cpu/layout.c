/* layout.c — fast CPU data movement: nearest resize, channel concat, NCHW ↔ tokens transposes. */
#include <math.h>
#include <string.h>

#include "pool.h"     // defines: pool_alloc, pool_free (the backend's working memory)
#include "kbase.h"  // defines: mallocCheck, LS_MIN
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable), op_conv2d_out

#define TILE 32 /* transpose tile edge: a 32x32 float tile (4 KiB) stays in L1 */

/* Source index of output position dst for a nearest resize in → out, exactly as PyTorch computes it
 * (float scale, so a few non-integer ratios differ from exact floor(dst*in/out); see ref.c). */
int nearest_src(int dst, int in, int out) {
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

int *nearest_src_cols(int W, int Wo) {
    int *src_w = pool_alloc((size_t)Wo * sizeof(int));
    for (int ow = 0; ow < Wo; ow++) src_w[ow] = nearest_src(ow, W, Wo);
    return src_w;
}

/* x (B,C,H,W) → y (B,C,Ho,Wo), == F.interpolate(mode="nearest", size=(Ho,Wo)) */
void op_upsample_nearest_cpu(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo) {
    int *src_w = nearest_src_cols(W, Wo);
#pragma omp parallel for schedule(static)
    for (int p = 0; p < B * C; p++) { /* one plane per (batch, channel) */
        const float *xp = x + (size_t)p * H * W;
        float *yp = y + (size_t)p * Ho * Wo;
        for (int oh = 0; oh < Ho; oh++) {
            const float *xr = xp + (size_t)nearest_src(oh, H, Ho) * W;
            float *yr = yp + (size_t)oh * Wo;
            for (int ow = 0; ow < Wo; ow++) yr[ow] = xr[src_w[ow]];
        }
    }
    pool_free(src_w);
}

/* a (B,Ca,HW), b (B,Cb,HW) → y (B,Ca+Cb,HW): per batch, a's channels then b's. */
void op_concat_channels_cpu(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW) {
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    for (int bi = 0; bi < B; bi++) {
        memcpy(y + bi * (na + nb), a + bi * na, na * sizeof(float));
        memcpy(y + bi * (na + nb) + na, b + bi * nb, nb * sizeof(float));
    }
}

/* For each of B matrices, y (cols, rows) = x (rows, cols)ᵀ, in TILE x TILE tiles. */
static void transpose_batched(float *y, const float *x, int B, int rows, int cols) {
    int tr = (rows + TILE - 1) / TILE, tc = (cols + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * rows * cols >= ((size_t)1 << 15))
    for (int bi = 0; bi < B; bi++) {
        for (int tile = 0; tile < tr * tc; tile++) {
            const float *xb = x + (size_t)bi * rows * cols;
            float *yb = y + (size_t)bi * rows * cols;
            int r0 = (tile / tc) * TILE, c0 = (tile % tc) * TILE;
            int r1 = LS_MIN(r0 + TILE, rows), c1 = LS_MIN(c0 + TILE, cols);
            for (int r = r0; r < r1; r++) {
                for (int c = c0; c < c1; c++) yb[(size_t)c * rows + r] = xb[(size_t)r * cols + c];
            }
        }
    }
}

/* x (B,C,T) → y (B,T,C) */
void op_nchw_to_ntc_cpu(float *y, const float *x, int B, int C, int T) { transpose_batched(y, x, B, C, T); }

/* x (B,T,C) → y (B,C,T) */
void op_ntc_to_nchw_cpu(float *y, const float *x, int B, int C, int T) { transpose_batched(y, x, B, T, C); }
