/* ops.c — the backend handle: which op table the op_* wrappers of ops.h call, and which backends this binary
 * can run here (the CUDA backend only when the program links it and a GPU is present). */
#include "ops.h"

#include <string.h>

/* The CUDA backend (kernels/cuda, library lscuda) is linked only into the programs that use it; these weak
 * references are NULL in the others, which then never load the CUDA libraries. */
extern const OpTable op_table_cuda __attribute__((weak));
int ops_cuda_present(void) __attribute__((weak));

const OpTable *ls_ops = &op_table_cpu;

const OpTable *const *ops_backends(void) {
    static const OpTable *all[3] = {&op_table_cpu, NULL, NULL};
    if (&op_table_cuda && ops_cuda_present && ops_cuda_present()) all[1] = &op_table_cuda;
    return all;
}

int ops_select(const char *name) {
    if (!strcmp(name, "ref")) return ls_ops = &op_table_ref, 0;
    for (const OpTable *const *b = ops_backends(); *b; b++)
        if (!strcmp((*b)->name, name)) return ls_ops = *b, 0;
    return -1;
}
