/* cpu.h — the CPU backend's implementations (OpenMP + BLAS) of the op table (kernels/ops.h documents each). */
#ifndef LS_KERNELS_CPU_H
#define LS_KERNELS_CPU_H

#include <stddef.h>

#include "op_list.h" // defines: LS_OPS

/* op_<name>_cpu for every op of LS_OPS (those of LS_OPS_SERIAL the CPU table fills with op_*_ref) */
#define LS_OP_CPU(ret, op, params) ret op_##op##_cpu params;
LS_OPS(LS_OP_CPU)
#undef LS_OP_CPU

/* shared by the nearest resize and its backward (layout.c): the source index of output position dst for a
 * resize in → out (PyTorch's float-scale rule), and the source column of each of Wo output columns for
 * W → Wo (pool_alloc'd; pool_free it) */
int nearest_src(int dst, int in, int out);
int *nearest_src_cols(int W, int Wo);

#endif
