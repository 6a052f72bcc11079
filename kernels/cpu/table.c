/* table.c — the CPU backend's op table, and its memory: aligned_alloc/free, nothing to wait for. */
#include <stdlib.h>

#include "kbase.h"  // defines: mallocCheck
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable)

void *op_alloc_cpu(size_t bytes) {
    size_t n = bytes ? (bytes + 63) / 64 * 64 : 64; /* aligned_alloc wants a multiple of the alignment */
    return n >= bytes ? aligned_alloc(64, n) : NULL;
}
void op_free_cpu(void *p) { free(p); }
void op_sync_cpu(void) {} /* the CPU ops return when their work is done */

const OpTable op_table_cpu = {
    .name = "cpu",
    .host_memory = 1,
#define LS_OP_CPU(ret, op, params) .op = op_##op##_cpu,
    LS_OPS(LS_OP_CPU)
#undef LS_OP_CPU
    /* the plain serial loops: the loss the same sum at any thread count; sampling a few thousand latent values */
#define LS_OP_REF(ret, op, params) .op = op_##op##_ref,
    LS_OPS_SERIAL(LS_OP_REF)
#undef LS_OP_REF
};
