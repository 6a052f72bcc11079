/* attention.cu — multi-head scaled dot-product attention, forward and backward.
 *
 * Forward, fused (Dh <= ATTN_FUSED_DMAX, the default): flash-attention style, one pass over the keys with an
 * online softmax — the (Tq, Tk) scores are never stored, not even a chunk of them. A block takes 16 query rows
 * of one (batch, head), 4 per warp; the keys stream through shared memory 32 at a time. For each row and tile,
 * lane j computes the score of key j (a dot product over Dh with q broadcast from shared memory), the warp
 * takes the tile's max and Σ exp, rescales the running output and sum by exp(old max - new max), and adds
 * P·V with lane d owning output features d, d+32, ... (the p of each key broadcast by a shuffle). The
 * running sum is kept in double; the output accumulates in float (as the CPU's sgemm does).
 *
 * Chunked (any Dh; the backward always, the forward when Dh > ATTN_FUSED_DMAX or when a test asks): the CPU's
 * scheme on cuBLAS — for a chunk of query rows of all heads at once (strided-batched GEMMs over the heads, read
 * in place from the (B, T, NH·Dh) layout through the leading dimension): S = scale·Q Kᵀ, P = softmax(S) by
 * a row kernel (sums in double), O = P V. The backward recomputes S and P per chunk (nothing is saved by the
 * forward), dP = dO Vᵀ, dS = P ∘ (dP - D) with D = Σ P·dP per row, then dV += Pᵀ dO, dK += scale·dSᵀ Q and
 * dQ = scale·dS K (kernels/cpu/attention_bwd.c derives it). The chunk holds at most ATTN_CHUNK_FLOATS scores
 * per buffer (128 MiB), so the full score matrix is never stored either; dK and dV accumulate over the chunks
 * in order, so the result is the same bits on every run.
 * Next: a fused backward (key-block parallel dK/dV and query-block parallel dQ kernels from saved row
 * log-sum-exps), and tensor cores (TF32 / bf16 mma) inside the fused kernels.
 */
#include <math.h>

#include "cuda_base.cuh" // defines: LAUNCH, cuda_op, cuda_gemm_batched, cuda_scratch, warp_sum, warp_max

#define ATTN_FUSED_DMAX 128 /* shared memory: 16 query rows + 32 keys and values of up to 128 features */
#define AQ_ROWS 4           /* query rows per warp */
#define AQ_WARPS 4
#define AQ_BLOCK (AQ_ROWS * AQ_WARPS) /* query rows per block */
#define AK 32                         /* keys per tile: one per lane */
#define ATTN_CHUNK_FLOATS ((size_t)32 << 20)

/* ---------------- fused forward ---------------- */

/* DCH = features per lane: Dh <= 32·DCH. Grid (query blocks, NH, B), AQ_WARPS·32 threads. */
template <int DCH>
__global__ void __launch_bounds__(AQ_WARPS * 32)
    attn_fwd_fused(float *out, const float *q, const float *k, const float *v, int Tq, int Tk, int NH, int Dh,
                   int causal, float scale) {
    constexpr int DP = 32 * DCH;
    __shared__ float Qs[AQ_BLOCK][DP];
    __shared__ float Ks[AK][DP + 1]; /* +1: lane j reads row j, all in different banks */
    __shared__ float Vs[AK][DP];
    int C = NH * Dh, b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * AQ_BLOCK;
    int lane = threadIdx.x % 32, wp = threadIdx.x / 32;
    const float *qh = q + (size_t)b * Tq * C + (size_t)h * Dh;
    const float *kh = k + (size_t)b * Tk * C + (size_t)h * Dh, *vh = v + (size_t)b * Tk * C + (size_t)h * Dh;
    for (int e = threadIdx.x; e < AQ_BLOCK * DP; e += blockDim.x) {
        int r = e / DP, d = e % DP;
        Qs[r][d] = i0 + r < Tq && d < Dh ? qh[(size_t)(i0 + r) * C + d] : 0.0f;
    }
    float o[AQ_ROWS][DCH], m[AQ_ROWS];
    double l[AQ_ROWS];
#pragma unroll
    for (int rr = 0; rr < AQ_ROWS; rr++) {
        m[rr] = -INFINITY, l[rr] = 0.0;
#pragma unroll
        for (int c = 0; c < DCH; c++) o[rr][c] = 0.0f;
    }
    int nk = causal ? min(Tk, i0 + AQ_BLOCK) : Tk; /* causal: later keys are masked for every row here */
    for (int j0 = 0; j0 < nk; j0 += AK) {
        __syncthreads(); /* the previous tile is consumed (and, the first time, Qs is written) */
        for (int e = threadIdx.x; e < AK * DP; e += blockDim.x) {
            int jj = e / DP, d = e % DP, ok = j0 + jj < Tk && d < Dh;
            Ks[jj][d] = ok ? kh[(size_t)(j0 + jj) * C + d] : 0.0f;
            Vs[jj][d] = ok ? vh[(size_t)(j0 + jj) * C + d] : 0.0f;
        }
        __syncthreads();
        /* unrolled, so o, m and l stay in registers (indexed by constants) */
#pragma unroll
        for (int rr = 0; rr < AQ_ROWS; rr++) {
            int r = wp * AQ_ROWS + rr, i = i0 + r, j = j0 + lane;
            if (i >= Tq) continue; /* the same for the whole warp */
            int live = j < Tk && (!causal || j <= i);
            float s = -INFINITY;
            if (live) {
                float acc = 0.0f;
                for (int d = 0; d < Dh; d++) acc += Qs[r][d] * Ks[lane][d];
                s = acc * scale;
            }
            float mnew = fmaxf(m[rr], warp_max(s));
            if (mnew == -INFINITY) continue; /* every key so far masked (the same for the whole warp) */
            float alpha = expf(m[rr] - mnew), p = live ? expf(s - mnew) : 0.0f;
            l[rr] = l[rr] * alpha + warp_sum(p);
#pragma unroll
            for (int c = 0; c < DCH; c++) o[rr][c] *= alpha;
            for (int jj = 0; jj < AK; jj++) {
                float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int c = 0; c < DCH; c++) o[rr][c] += pj * Vs[jj][c * 32 + lane];
            }
            m[rr] = mnew;
        }
    }
#pragma unroll
    for (int rr = 0; rr < AQ_ROWS; rr++) {
        int i = i0 + wp * AQ_ROWS + rr;
        if (i >= Tq) continue;
        float *oi = out + ((size_t)b * Tq + i) * C + (size_t)h * Dh;
#pragma unroll
        for (int c = 0; c < DCH; c++)
            if (c * 32 + lane < Dh) oi[c * 32 + lane] = (float)(o[rr][c] / l[rr]);
    }
}

/* ---------------- chunked (cuBLAS) ---------------- */

/* One warp per row of S (nrows rows of nk scores, row = h·n + t for query i0 + t): P = softmax over the first
 * `live` entries (causal: keys <= the query), 0 after them. */
__global__ void softmax_rows(float *S, int nrows, int n, int nk, int i0, int causal) {
    int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= nrows) return;
    int live = causal ? min(nk, i0 + row % n + 1) : nk;
    float *s = S + (size_t)row * nk, mx = -INFINITY;
    for (int j = lane; j < live; j += 32) mx = fmaxf(mx, s[j]);
    mx = warp_max(mx);
    double sum = 0.0;
    for (int j = lane; j < live; j += 32) {
        float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    float inv = (float)(1.0 / warp_sum(sum));
    for (int j = lane; j < nk; j += 32) s[j] = j < live ? s[j] * inv : 0.0f;
}

/* The same rows of S and dP: S → P = softmax(S), dP → dS = P ∘ (dP - D), D = Σ P·dP; 0 after `live`. */
__global__ void softmax_bwd_rows(float *S, float *dP, int nrows, int n, int nk, int i0, int causal) {
    int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= nrows) return;
    int live = causal ? min(nk, i0 + row % n + 1) : nk;
    float *s = S + (size_t)row * nk, *dp = dP + (size_t)row * nk, mx = -INFINITY;
    for (int j = lane; j < live; j += 32) mx = fmaxf(mx, s[j]);
    mx = warp_max(mx);
    double sum = 0.0, dsum = 0.0;
    for (int j = lane; j < live; j += 32) {
        float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
        dsum += (double)e * dp[j];
    }
    sum = warp_sum(sum), dsum = warp_sum(dsum);
    float inv = (float)(1.0 / sum), D = (float)(dsum / sum);
    for (int j = lane; j < nk; j += 32) {
        float p = j < live ? s[j] * inv : 0.0f;
        s[j] = p;
        dp[j] = j < live ? p * (dp[j] - D) : 0.0f;
    }
}

/* query rows per chunk: `bufs` buffers of (rows · NH · Tk) floats within the budget, at least 1 row */
static int chunk_rows(int Tq, int Tk, int NH) {
    size_t rows = ATTN_CHUNK_FLOATS / ((size_t)Tk * NH);
    return rows < 1 ? 1 : rows > (size_t)Tq ? Tq : (int)rows;
}

static void attention_chunked(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                              int NH, int Dh, int causal) {
    int C = NH * Dh, rows = chunk_rows(Tq, Tk, NH);
    float scale = 1.0f / sqrtf((float)Dh);
    float *S = (float *)cuda_scratch((size_t)rows * NH * Tk * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *kb = k + (size_t)b * Tk * C, *vb = v + (size_t)b * Tk * C;
        for (int i0 = 0; i0 < Tq; i0 += rows) {
            int n = LS_MIN(rows, Tq - i0), nk = causal ? i0 + n : Tk;
            size_t c0 = ((size_t)b * Tq + i0) * C; /* the chunk's first query row */
            /* per head h: S_h (n, nk) = scale · Q_h (n, Dh) · K_h (nk, Dh)ᵀ; heads Dh apart in the rows */
            cuda_gemm_batched(0, 1, n, nk, Dh, scale, q + c0, C, Dh, kb, C, Dh, 0.0f, S, nk, (long long)n * nk, NH);
            LAUNCH(softmax_rows, (NH * n + 7) / 8, 256, S, NH * n, n, nk, i0, causal);
            /* O_h (n, Dh) = P_h (n, nk) · V_h (nk, Dh) */
            cuda_gemm_batched(0, 0, n, Dh, nk, 1.0f, S, nk, (long long)n * nk, vb, C, Dh, 0.0f, out + c0, C, Dh, NH);
        }
    }
    cuda_scratch_free(S);
}

extern "C" void op_attention_cuda(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                                  int NH, int Dh, int causal) {
    cuda_op("attention", "B Tq Tk NH Dh causal", B, Tq, Tk, NH, Dh, causal);
    LS_ASSERT(!causal || Tq == Tk);
    if (B <= 0 || Tq <= 0 || NH <= 0 || Dh <= 0) return;
    if (!cuda_backend()->attn_fused || Dh > ATTN_FUSED_DMAX)
        return attention_chunked(out, q, k, v, B, Tq, Tk, NH, Dh, causal);
    dim3 grid((Tq + AQ_BLOCK - 1) / AQ_BLOCK, NH, B);
    float scale = 1.0f / sqrtf((float)Dh);
    if (Dh <= 32) LAUNCH(attn_fwd_fused<1>, grid, AQ_WARPS * 32, out, q, k, v, Tq, Tk, NH, Dh, causal, scale);
    else if (Dh <= 64) LAUNCH(attn_fwd_fused<2>, grid, AQ_WARPS * 32, out, q, k, v, Tq, Tk, NH, Dh, causal, scale);
    else if (Dh <= 96) LAUNCH(attn_fwd_fused<3>, grid, AQ_WARPS * 32, out, q, k, v, Tq, Tk, NH, Dh, causal, scale);
    else LAUNCH(attn_fwd_fused<4>, grid, AQ_WARPS * 32, out, q, k, v, Tq, Tk, NH, Dh, causal, scale);
}

extern "C" void op_attention_backward_cuda(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                           const float *k, const float *v, int B, int Tq, int Tk, int NH, int Dh,
                                           int causal) {
    cuda_op("attention_backward", "B Tq Tk NH Dh causal", B, Tq, Tk, NH, Dh, causal);
    LS_ASSERT(!causal || Tq == Tk);
    if ((!dq && !dk && !dv) || B <= 0 || Tq <= 0 || NH <= 0 || Dh <= 0) return;
    int C = NH * Dh, rows = chunk_rows(Tq, Tk, NH);
    float scale = 1.0f / sqrtf((float)Dh);
    size_t kv_bytes = (size_t)B * Tk * C * sizeof(float);
    if (dk) CU(cudaMemsetAsync(dk, 0, kv_bytes, cuda_stream()));
    if (dv) CU(cudaMemsetAsync(dv, 0, kv_bytes, cuda_stream()));
    float *S = (float *)cuda_scratch((size_t)rows * NH * Tk * sizeof(float));  /* scores, then P */
    float *dP = (float *)cuda_scratch((size_t)rows * NH * Tk * sizeof(float)); /* dO·Vᵀ, then dS */
    for (int b = 0; b < B; b++) {
        size_t kb = (size_t)b * Tk * C;
        for (int i0 = 0; i0 < Tq; i0 += rows) {
            int n = LS_MIN(rows, Tq - i0), nk = causal ? i0 + n : Tk;
            size_t c0 = ((size_t)b * Tq + i0) * C;
            long long sn = (long long)n * nk; /* one head's (n, nk) block */
            cuda_gemm_batched(0, 1, n, nk, Dh, scale, q + c0, C, Dh, k + kb, C, Dh, 0.0f, S, nk, sn, NH);
            cuda_gemm_batched(0, 1, n, nk, Dh, 1.0f, dout + c0, C, Dh, v + kb, C, Dh, 0.0f, dP, nk, sn, NH);
            LAUNCH(softmax_bwd_rows, (NH * n + 7) / 8, 256, S, dP, NH * n, n, nk, i0, causal);
            if (dv) /* dV_h (nk, Dh) += P_hᵀ · dO_h */
                cuda_gemm_batched(1, 0, nk, Dh, n, 1.0f, S, nk, sn, dout + c0, C, Dh, 1.0f, dv + kb, C, Dh, NH);
            if (dk) /* dK_h (nk, Dh) += scale · dS_hᵀ · Q_h */
                cuda_gemm_batched(1, 0, nk, Dh, n, scale, dP, nk, sn, q + c0, C, Dh, 1.0f, dk + kb, C, Dh, NH);
            if (dq) /* dQ_h (n, Dh) = scale · dS_h · K_h */
                cuda_gemm_batched(0, 0, n, Dh, nk, scale, dP, nk, sn, k + kb, C, Dh, 0.0f, dq + c0, C, Dh, NH);
        }
    }
    cuda_scratch_free(S);
    cuda_scratch_free(dP);
}
