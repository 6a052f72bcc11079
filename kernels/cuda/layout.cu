/* layout.cu — data movement and its backward: nearest resize, channel concat, (B,C,T) ↔ (B,T,C) transposes.
 *
 * The resize's backward gathers instead of scattering: each input pixel sums the outputs copied from it, in
 * output order (rows, then columns) — the CPU's order, so the sums are the same bits and need no atomics.
 * Concat and its backward are strided copies (cudaMemcpy2DAsync); the transposes go through 32×32 tiles in
 * shared memory so both the reads and the writes are coalesced.
 */
#include <math.h>

#include "cuda_base.cuh" // defines: LAUNCH, GRID_STRIDE, grid_for, cuda_op

/* PyTorch's nearest source index (float scale): as kernels/cpu/ref.c */
__device__ inline int nearest_src(int dst, int in, int out) {
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

__global__ void upsample_fwd(float *y, const float *x, int H, int W, int Ho, int Wo, size_t n) {
    GRID_STRIDE(i, n) {
        size_t p = i / ((size_t)Ho * Wo);
        int oh = (int)(i / Wo % Ho), ow = (int)(i % Wo);
        y[i] = x[(p * H + nearest_src(oh, H, Ho)) * W + nearest_src(ow, W, Wo)];
    }
}

extern "C" void op_upsample_nearest_cuda(float *y, const float *x, int B, int C, int H, int W, int Ho, int Wo) {
    cuda_op("upsample_nearest", "B C H W Ho Wo", B, C, H, W, Ho, Wo);
    size_t n = (size_t)B * C * Ho * Wo;
    if (n) LAUNCH(upsample_fwd, grid_for(n), BLOCK, y, x, H, W, Ho, Wo, n);
}

/* The outputs o in [0, out) with nearest_src(o) == s: a run (the index is monotone in o), found around
 * s·out/in with a margin for the float rounding. */
__device__ inline void nearest_run(int s, int in, int out, int *lo, int *hi) {
    int a = (int)floor((double)s * out / in) - 2, b = (int)ceil((double)(s + 1) * out / in) + 2;
    a = a < 0 ? 0 : a;
    b = b > out ? out : b;
    while (a < b && nearest_src(a, in, out) < s) a++;
    int e = a;
    while (e < b && nearest_src(e, in, out) == s) e++;
    *lo = a, *hi = e;
}

__global__ void upsample_bwd(float *dx, const float *dy, int H, int W, int Ho, int Wo, size_t n) {
    GRID_STRIDE(i, n) {
        size_t p = i / ((size_t)H * W);
        int ih = (int)(i / W % H), iw = (int)(i % W), h0, h1, w0, w1;
        nearest_run(ih, H, Ho, &h0, &h1);
        nearest_run(iw, W, Wo, &w0, &w1);
        float acc = 0.0f;
        for (int oh = h0; oh < h1; oh++)
            for (int ow = w0; ow < w1; ow++) acc += dy[(p * Ho + oh) * Wo + ow];
        dx[i] = acc;
    }
}

extern "C" void op_upsample_nearest_backward_cuda(float *dx, const float *dy, int B, int C, int H, int W, int Ho,
                                                  int Wo) {
    cuda_op("upsample_nearest_backward", "B C H W Ho Wo", B, C, H, W, Ho, Wo);
    size_t n = (size_t)B * C * H * W;
    if (n) LAUNCH(upsample_bwd, grid_for(n), BLOCK, dx, dy, H, W, Ho, Wo, n);
}

/* dst rows of `width` floats at stride dpitch ← src rows at stride spitch, B rows (one per image) */
static void copy_rows(float *dst, size_t dpitch, const float *src, size_t spitch, size_t width, int B) {
    if (width && B > 0)
        CU(cudaMemcpy2DAsync(dst, dpitch * sizeof(float), src, spitch * sizeof(float), width * sizeof(float), B,
                             cudaMemcpyDefault, cuda_stream()));
}

extern "C" void op_concat_channels_cuda(float *y, const float *a, const float *b, int B, int Ca, int Cb, int HW) {
    cuda_op("concat_channels", "B Ca Cb HW", B, Ca, Cb, HW);
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    copy_rows(y, na + nb, a, na, na, B);
    copy_rows(y + na, na + nb, b, nb, nb, B);
}

extern "C" void op_concat_channels_backward_cuda(float *da, float *db, const float *dy, int B, int Ca, int Cb,
                                                 int HW) {
    cuda_op("concat_channels_backward", "B Ca Cb HW", B, Ca, Cb, HW);
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    if (da) copy_rows(da, na, dy, na + nb, na, B);
    if (db) copy_rows(db, nb, dy + na, na + nb, nb, B);
}

#define TILE 32
/* For each of the gridDim.z matrices: y (cols, rows) = x (rows, cols)ᵀ, one 32×32 tile per block of 32×8
 * threads (each thread 4 rows of the tile). */
__global__ void transpose(float *y, const float *x, int rows, int cols) {
    __shared__ float t[TILE][TILE + 1]; /* +1: the column reads hit 32 different banks */
    const float *xb = x + (size_t)blockIdx.z * rows * cols;
    float *yb = y + (size_t)blockIdx.z * rows * cols;
    int r0 = blockIdx.y * TILE, c0 = blockIdx.x * TILE;
    for (int j = threadIdx.y; j < TILE; j += blockDim.y) {
        int r = r0 + j, c = c0 + threadIdx.x;
        if (r < rows && c < cols) t[j][threadIdx.x] = xb[(size_t)r * cols + c];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < TILE; j += blockDim.y) {
        int c = c0 + j, r = r0 + threadIdx.x; /* y[c][r] */
        if (r < rows && c < cols) yb[(size_t)c * rows + r] = t[threadIdx.x][j];
    }
}

static void transpose_batched(float *y, const float *x, int B, int rows, int cols) {
    if (B <= 0 || rows <= 0 || cols <= 0) return;
    dim3 grid((cols + TILE - 1) / TILE, (rows + TILE - 1) / TILE, B);
    LAUNCH(transpose, grid, dim3(TILE, 8), y, x, rows, cols);
}

extern "C" void op_nchw_to_ntc_cuda(float *y, const float *x, int B, int C, int T) {
    cuda_op("nchw_to_ntc", "B C T", B, C, T);
    transpose_batched(y, x, B, C, T);
}
extern "C" void op_ntc_to_nchw_cuda(float *y, const float *x, int B, int C, int T) {
    cuda_op("ntc_to_nchw", "B C T", B, C, T);
    transpose_batched(y, x, B, T, C);
}
extern "C" void op_nchw_to_ntc_backward_cuda(float *dx, const float *dy, int B, int C, int T) {
    cuda_op("nchw_to_ntc_backward", "B C T", B, C, T);
    transpose_batched(dx, dy, B, T, C);
}
extern "C" void op_ntc_to_nchw_backward_cuda(float *dx, const float *dy, int B, int C, int T) {
    cuda_op("ntc_to_nchw_backward", "B C T", B, C, T);
    transpose_batched(dx, dy, B, C, T);
}
