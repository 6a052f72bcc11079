/* table.c — the CUDA backend's op table (the implementations: the .cu files beside it; built only with CUDA). */
#include "cuda_ops.h" // defines: the op_*_cuda prototypes
#include "ops.h"      // defines: the ops' semantics (OpTable)

const OpTable op_table_cuda = {
    .name = "cuda",
    .host_memory = 0,
#define LS_OP_CUDA(ret, op, params) .op = op_##op##_cuda,
    LS_OPS(LS_OP_CUDA)
    LS_OPS_SERIAL(LS_OP_CUDA)
#undef LS_OP_CUDA
};
