/* ops.c — the backend handle: which op table the op_* wrappers of ops.h call, and which backends this binary
 * can run here (the CUDA backend only when compiled in, LS_HAVE_CUDA, and a GPU is present). */
#include "ops.h"

#include <string.h>

#ifdef LS_HAVE_CUDA
#include "cuda/cuda_ops.h" // defines: ops_cuda_present
#endif

const OpTable *ls_ops = &op_table_cpu;

const OpTable *const *ops_backends(void) {
    static const OpTable *all[3] = {&op_table_cpu, NULL, NULL};
#ifdef LS_HAVE_CUDA
    if (ops_cuda_present()) all[1] = &op_table_cuda;
#endif
    return all;
}

int ops_select(const char *name) {
    if (!strcmp(name, "ref")) return ls_ops = &op_table_ref, 0;
    for (const OpTable *const *b = ops_backends(); *b; b++)
        if (!strcmp((*b)->name, name)) return ls_ops = *b, 0;
    return -1;
}
