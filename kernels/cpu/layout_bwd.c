/* layout_bwd.c — backward of the data-movement ops: each is the adjoint of a copy.
 *
 *   nearest resize: y[oh,ow] = x[src(oh), src(ow)]  ⇒  dx[ih,iw] = Σ dy over the outputs that copied it
 *   channel concat: y = [a, b]                        ⇒  da, db = the two channel slices of dy
 *   (B,C,T) ↔ (B,T,C): a transpose                    ⇒  the inverse transpose
 */
#include <math.h>
#include <string.h>

#include "pool.h"     // defines: pool_alloc, pool_free (the backend's working memory)
#include "kbase.h"  // defines: mallocCheck
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable), op_conv2d_out

/* the source indices are the forward's (layout.c: nearest_src, nearest_src_cols) */
void op_upsample_nearest_backward_cpu(float *dx, const float *dy, int B, int C, int H, int W, int Ho, int Wo) {
    int *src_w = nearest_src_cols(W, Wo);
    /* threads over planes: a plane's sums stay in one thread, in output order */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < B * C; p++) {
        float *dxp = dx + (size_t)p * H * W;
        const float *dyp = dy + (size_t)p * Ho * Wo;
        memset(dxp, 0, (size_t)H * W * sizeof(float));
        for (int oh = 0; oh < Ho; oh++) {
            float *dxr = dxp + (size_t)nearest_src(oh, H, Ho) * W;
            const float *dyr = dyp + (size_t)oh * Wo;
            for (int ow = 0; ow < Wo; ow++) dxr[src_w[ow]] += dyr[ow];
        }
    }
    pool_free(src_w);
}

void op_concat_channels_backward_cpu(float *da, float *db, const float *dy, int B, int Ca, int Cb, int HW) {
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    for (int bi = 0; bi < B; bi++) {
        if (da) memcpy(da + bi * na, dy + bi * (na + nb), na * sizeof(float));
        if (db) memcpy(db + bi * nb, dy + bi * (na + nb) + na, nb * sizeof(float));
    }
}

/* forward (B,C,T) → (B,T,C); the gradient goes back (B,T,C) → (B,C,T) */
void op_nchw_to_ntc_backward_cpu(float *dx, const float *dy, int B, int C, int T) {
    op_ntc_to_nchw_cpu(dx, dy, B, C, T);
}

/* forward (B,T,C) → (B,C,T); the gradient goes back (B,C,T) → (B,T,C) */
void op_ntc_to_nchw_backward_cpu(float *dx, const float *dy, int B, int C, int T) {
    op_nchw_to_ntc_cpu(dx, dy, B, C, T);
}
