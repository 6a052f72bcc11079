/* cuda_ops.h — the CUDA backend's implementations of the op table (kernels/ops.h documents each op), its
 * memory, and what ops.c and the tests ask of it. Plain C prototypes: kernels/cuda/table.c (C) and
 * kernels/ops.c include this; the definitions live in the .cu files beside it, with C linkage. */
#ifndef LS_CUDA_OPS_H
#define LS_CUDA_OPS_H

#include <stddef.h>

#include "op_list.h" // defines: LS_OPS, LS_OPS_SERIAL

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the CUDA runtime sees at least one device (cudaGetDeviceCount > 0; asked once), else 0. */
int ops_cuda_present(void);
/* Test hooks, both returning the setting now in force: conv2d through cuDNN (1) or im2col + cuBLAS (0),
 * and attention through the fused kernel (1) or the chunked cuBLAS path (0); -1 only asks. Asking cuDNN
 * for 1 in a build without it keeps 0. The defaults: cuDNN when built with it, the fused kernel — unless the
 * environment says LS_CUDA_NO_CUDNN=1 or LS_CUDA_NO_FUSED=1 when the backend starts. */
int ops_cuda_conv_cudnn(int on);
int ops_cuda_attention_fused(int on);

/* op_<name>_cuda for every op of the table */
#define LS_OP_CUDA(ret, op, params) ret op_##op##_cuda params;
LS_OPS(LS_OP_CUDA)
LS_OPS_SERIAL(LS_OP_CUDA)
#undef LS_OP_CUDA

#ifdef __cplusplus
}
#endif

#endif
