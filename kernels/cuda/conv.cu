/* conv.cu — Conv2d forward and backward: through cuDNN when the build found it and the padding is symmetric,
 * otherwise (always available) im2col + cuBLAS, as kernels/cpu/conv2d.c and conv2d_bwd.c do it.
 *
 * im2col: per image, y (Cout, Ho·Wo) = w (Cout, Kc) · col (Kc, Ho·Wo), Kc = Cin·k·k, where row
 * r = (ci·k + kh)·k + kw of col holds the input pixel tap (ci,kh,kw) sees at each output position (0 in the
 * padding). col is built for a band of output rows at a time (at most CONV_SCRATCH_BYTES: the VAE decoder's
 * full col at 512×512 would be 2.4 GB). Backward: dw += dy · colᵀ; dcol = wᵀ · dy, then col2im adds each
 * dcol entry back onto the pixel it was copied from — written as a gather (each input pixel sums the taps
 * that read it, in (kh, kw) order), so there are no atomics and the result is the same bits on every run.
 * A 1×1, stride-1, unpadded conv needs no col: one (strided-batched) GEMM per direction.
 *
 * cuDNN (LS_HAVE_CUDNN): the legacy convolution API (deprecated in cuDNN 9 in favour of the graph API, still
 * shipped), fp32 with CUDNN_FMA_MATH (no TF32); the algorithm is cuDNN's heuristic first choice among those
 * that need at most CONV_SCRATCH_BYTES of workspace, are GEMM-like (no FFT or Winograd), not tensor-op, and
 * (backward) deterministic; when none qualifies the op takes the im2col path. The VAE encoder's asymmetric
 * padding (0 top/left, 1 bottom/right) always takes im2col. Next: cache the descriptors and algorithm per shape,
 * TF32 / bf16.
 */
#include "cuda_base.cuh" // defines: LAUNCH, GRID_STRIDE, grid_for, cuda_op, cuda_gemm, cuda_scratch

#define CONV_SCRATCH_BYTES ((size_t)256 << 20)

/* col (Kc, nrows·Wo) ← the pixels of x (Cin,H,W) seen by output rows [oh0, oh0+nrows) */
__global__ void im2col(float *col, const float *x, int Cin, int H, int W, int k, int stride, int pad0, int Wo,
                       int oh0, int nrows) {
    size_t n = (size_t)nrows * Wo;
    GRID_STRIDE(i, (size_t)Cin * k * k * n) {
        int r = (int)(i / n), p = (int)(i % n);
        int ci = r / (k * k), kh = r / k % k, kw = r % k;
        int ih = (oh0 + p / Wo) * stride - pad0 + kh, iw = p % Wo * stride - pad0 + kw;
        col[i] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[((size_t)ci * H + ih) * W + iw] : 0.0f;
    }
}

/* dx (Cin,H,W) += the entries of dcol (Kc, nrows·Wo) (output rows [oh0, oh0+nrows)) copied from each pixel */
__global__ void col2im(float *dx, const float *dcol, int Cin, int H, int W, int k, int stride, int pad0, int Wo,
                       int oh0, int nrows) {
    size_t n = (size_t)nrows * Wo;
    GRID_STRIDE(i, (size_t)Cin * H * W) {
        int ci = (int)(i / ((size_t)H * W)), ih = (int)(i / W % H), iw = (int)(i % W);
        float acc = 0.0f;
        for (int kh = 0; kh < k; kh++) {
            int t = ih + pad0 - kh; /* = oh·stride */
            if (t < 0 || t % stride) continue;
            int oh = t / stride;
            if (oh < oh0 || oh >= oh0 + nrows) continue;
            for (int kw = 0; kw < k; kw++) {
                int u = iw + pad0 - kw; /* = ow·stride */
                if (u < 0 || u % stride || u / stride >= Wo) continue;
                acc += dcol[(size_t)((ci * k + kh) * k + kw) * n + (size_t)(oh - oh0) * Wo + u / stride];
            }
        }
        dx[i] += acc;
    }
}

/* output rows per band so that one band of col fits the scratch budget (at least one row) */
static int band_rows(int Kc, int Ho, int Wo) {
    size_t row_bytes = (size_t)Kc * Wo * sizeof(float), rows = CONV_SCRATCH_BYTES / row_bytes;
    return rows < 1 ? 1 : rows > (size_t)Ho ? Ho : (int)rows;
}

#ifdef LS_HAVE_CUDNN
struct ConvDesc {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
};

static void desc_make(ConvDesc *d, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad, int Ho,
                      int Wo) {
    CUDNN(cudnnCreateTensorDescriptor(&d->x));
    CUDNN(cudnnCreateTensorDescriptor(&d->y));
    CUDNN(cudnnCreateFilterDescriptor(&d->w));
    CUDNN(cudnnCreateConvolutionDescriptor(&d->conv));
    CUDNN(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, B, Cin, H, W));
    CUDNN(cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, B, Cout, Ho, Wo));
    CUDNN(cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, Cout, Cin, k, k));
    CUDNN(cudnnSetConvolution2dDescriptor(d->conv, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                          CUDNN_DATA_FLOAT));
    CUDNN(cudnnSetConvolutionMathType(d->conv, CUDNN_FMA_MATH));
}

static void desc_free(ConvDesc *d) {
    CUDNN(cudnnDestroyTensorDescriptor(d->x));
    CUDNN(cudnnDestroyTensorDescriptor(d->y));
    CUDNN(cudnnDestroyFilterDescriptor(d->w));
    CUDNN(cudnnDestroyConvolutionDescriptor(d->conv));
}

/* The algorithms whose fp32 rounding is a GEMM's: no FFT, no Winograd (faster for 3×3, with larger errors:
 * next, with tolerances to match) */
static bool plain_algo(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
static bool plain_algo(cudnnConvolutionBwdDataAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}
static bool plain_algo(cudnnConvolutionBwdFilterAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

/* index of the first acceptable algorithm in cuDNN's ranked list, or -1 */
template <typename Perf> static int pick(const Perf *perf, int n, int need_deterministic) {
    for (int i = 0; i < n; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= CONV_SCRATCH_BYTES &&
            plain_algo(perf[i].algo) && perf[i].mathType != CUDNN_TENSOR_OP_MATH && perf[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
            (!need_deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
            return i;
    return -1;
}

/* y = conv(x, w) + beta·y (beta = 1: y holds the bias); 0 when no algorithm qualified (nothing done) */
static int cudnn_forward(float *y, const float *x, const float *w, int B, int Cin, int H, int W, int Cout, int k,
                         int stride, int pad, int Ho, int Wo, float beta) {
    cudnnHandle_t h = cuda_backend()->dnn;
    ConvDesc d;
    desc_make(&d, B, Cin, H, W, Cout, k, stride, pad, Ho, Wo);
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                                 perf));
    int i = pick(perf, got, 0);
    if (i >= 0) {
        void *ws = perf[i].memory ? cuda_scratch(perf[i].memory) : NULL;
        float one = 1.0f;
        CUDNN(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.conv, perf[i].algo, ws, perf[i].memory, &beta, d.y,
                                      y));
        cuda_scratch_free(ws);
    }
    desc_free(&d);
    return i >= 0;
}

/* dw += ∂/∂w, dx = ∂/∂x (either may be NULL); 0 when some needed algorithm did not qualify (nothing done) */
static int cudnn_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, int B, int Cin,
                          int H, int W, int Cout, int k, int stride, int pad, int Ho, int Wo) {
    cudnnHandle_t h = cuda_backend()->dnn;
    ConvDesc d;
    desc_make(&d, B, Cin, H, W, Cout, k, stride, pad, Ho, Wo);
    cudnnConvolutionBwdDataAlgoPerf_t pd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t pf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int nd = 0, nf = 0, id = -1, jf = -1;
    if (dx) {
        CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x,
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &nd, pd));
        id = pick(pd, nd, 1);
    }
    if (dw) {
        CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w,
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &nf, pf));
        jf = pick(pf, nf, 1);
    }
    int ok = (!dx || id >= 0) && (!dw || jf >= 0);
    if (ok) {
        float one = 1.0f, zero = 0.0f;
        if (dw) {
            void *ws = pf[jf].memory ? cuda_scratch(pf[jf].memory) : NULL;
            CUDNN(cudnnConvolutionBackwardFilter(h, &one, d.x, x, d.y, dy, d.conv, pf[jf].algo, ws, pf[jf].memory,
                                                 &one, d.w, dw));
            cuda_scratch_free(ws);
        }
        if (dx) {
            void *ws = pd[id].memory ? cuda_scratch(pd[id].memory) : NULL;
            CUDNN(cudnnConvolutionBackwardData(h, &one, d.w, w, d.y, dy, d.conv, pd[id].algo, ws, pd[id].memory,
                                               &zero, d.x, dx));
            cuda_scratch_free(ws);
        }
    }
    desc_free(&d);
    return ok;
}
#endif

extern "C" void op_conv2d_cuda(float *y, const float *x, const float *w, const float *b, int B, int Cin, int H,
                               int W, int Cout, int k, int stride, int pad0, int pad1) {
    cuda_op("conv2d", "B Cin H W Cout k stride pad0 pad1", B, Cin, H, W, Cout, k, stride, pad0, pad1);
    int Ho = op_conv2d_out(H, k, stride, pad0, pad1), Wo = op_conv2d_out(W, k, stride, pad0, pad1);
    LS_ASSERT(Ho > 0 && Wo > 0 && stride > 0 && k > 0);
    int Kc = Cin * k * k, HWo = Ho * Wo;
    if (B <= 0 || Cout <= 0) return;
    /* bias first, then each product accumulates onto it (beta = 1) */
    float beta = 0.0f;
    if (b) cuda_fill_channels(y, b, B, Cout, HWo), beta = 1.0f;
#ifdef LS_HAVE_CUDNN
    if (cuda_backend()->use_cudnn && pad0 == pad1 && cudnn_forward(y, x, w, B, Cin, H, W, Cout, k, stride, pad0, Ho,
                                                                   Wo, beta))
        return;
#endif
    if (k == 1 && stride == 1 && pad0 == 0 && pad1 == 0) { /* col == x */
        cuda_gemm_batched(0, 0, Cout, HWo, Cin, 1.0f, w, Cin, 0, x, HWo, (long long)Cin * HWo, beta, y, HWo,
                          (long long)Cout * HWo, B);
        return;
    }
    int band = band_rows(Kc, Ho, Wo);
    float *col = (float *)cuda_scratch((size_t)Kc * band * Wo * sizeof(float));
    for (int bi = 0; bi < B; bi++) {
        const float *xb = x + (size_t)bi * Cin * H * W;
        float *yb = y + (size_t)bi * Cout * HWo;
        for (int oh0 = 0; oh0 < Ho; oh0 += band) {
            int nrows = LS_MIN(band, Ho - oh0), n = nrows * Wo;
            LAUNCH(im2col, grid_for((size_t)Kc * n), BLOCK, col, xb, Cin, H, W, k, stride, pad0, Wo, oh0, nrows);
            /* y[:, oh0·Wo : oh0·Wo + n] (+)= w (Cout,Kc) · col (Kc,n) */
            cuda_gemm(0, 0, Cout, n, Kc, 1.0f, w, Kc, col, n, beta, yb + (size_t)oh0 * Wo, HWo);
        }
    }
    cuda_scratch_free(col);
}

extern "C" void op_conv2d_backward_cuda(float *dx, float *dw, float *db, const float *dy, const float *x,
                                        const float *w, int B, int Cin, int H, int W, int Cout, int k, int stride,
                                        int pad0, int pad1) {
    cuda_op("conv2d_backward", "B Cin H W Cout k stride pad0 pad1", B, Cin, H, W, Cout, k, stride, pad0, pad1);
    int Ho = op_conv2d_out(H, k, stride, pad0, pad1), Wo = op_conv2d_out(W, k, stride, pad0, pad1);
    LS_ASSERT(Ho > 0 && Wo > 0 && stride > 0 && k > 0);
    int Kc = Cin * k * k, HWo = Ho * Wo, HW = H * W;
    if (B <= 0) return;
    if (db) cuda_channel_sums(db, dy, B, Cout, HWo, 0);
    if (!dx && !dw) return;
#ifdef LS_HAVE_CUDNN
    if (cuda_backend()->use_cudnn && pad0 == pad1 &&
        cudnn_backward(dx, dw, dy, x, w, B, Cin, H, W, Cout, k, stride, pad0, Ho, Wo))
        return;
#endif
    if (k == 1 && stride == 1 && pad0 == 0 && pad1 == 0) { /* col == x: plain matrix products */
        if (dw) /* dw (Cout,Cin) += dy_b (Cout,HW) · x_b (Cin,HW)ᵀ, image by image (one accumulator) */
            for (int bi = 0; bi < B; bi++)
                cuda_gemm(0, 1, Cout, Cin, HW, 1.0f, dy + (size_t)bi * Cout * HW, HW, x + (size_t)bi * Cin * HW, HW,
                          1.0f, dw, Cin);
        if (dx) /* dx_b (Cin,HW) = w (Cout,Cin)ᵀ · dy_b (Cout,HW) */
            cuda_gemm_batched(1, 0, Cin, HW, Cout, 1.0f, w, Cin, 0, dy, HW, (long long)Cout * HW, 0.0f, dx, HW,
                              (long long)Cin * HW, B);
        return;
    }
    int band = band_rows(Kc, Ho, Wo);
    float *col = (float *)cuda_scratch((size_t)Kc * band * Wo * sizeof(float)); /* col, then dcol */
    if (dx) CU(cudaMemsetAsync(dx, 0, (size_t)B * Cin * HW * sizeof(float), cuda_stream()));
    for (int bi = 0; bi < B; bi++) {
        const float *dyb = dy + (size_t)bi * Cout * HWo, *xb = x ? x + (size_t)bi * Cin * HW : NULL;
        for (int oh0 = 0; oh0 < Ho; oh0 += band) {
            int nrows = LS_MIN(band, Ho - oh0), n = nrows * Wo;
            const float *dyband = dyb + (size_t)oh0 * Wo; /* (Cout, n), row stride HWo */
            if (dw) { /* dw (Cout,Kc) += dy (Cout,n) · col (Kc,n)ᵀ */
                LAUNCH(im2col, grid_for((size_t)Kc * n), BLOCK, col, xb, Cin, H, W, k, stride, pad0, Wo, oh0, nrows);
                cuda_gemm(0, 1, Cout, Kc, n, 1.0f, dyband, HWo, col, n, 1.0f, dw, Kc);
            }
            if (dx) { /* dcol (Kc,n) = w (Cout,Kc)ᵀ · dy (Cout,n), gathered back onto dx */
                cuda_gemm(1, 0, Kc, n, Cout, 1.0f, w, Kc, dyband, HWo, 0.0f, col, n);
                LAUNCH(col2im, grid_for((size_t)Cin * HW), BLOCK, dx + (size_t)bi * Cin * HW, col, Cin, H, W, k,
                       stride, pad0, Wo, oh0, nrows);
            }
        }
    }
    cuda_scratch_free(col);
}
