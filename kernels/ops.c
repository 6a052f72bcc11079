/* ops.c — the backend handle: which op table the op_* wrappers of ops.h call. */
#include "ops.h"

#include <string.h>

const OpTable *ls_ops = &op_table_cpu;

const OpTable *const *ops_backends(void) {
    static const OpTable *const all[] = {&op_table_cpu, NULL};
    return all;
}

int ops_select(const char *name) {
    if (!strcmp(name, "ref")) return ls_ops = &op_table_ref, 0;
    for (const OpTable *const *b = ops_backends(); *b; b++)
        if (!strcmp((*b)->name, name)) return ls_ops = *b, 0;
    return -1;
}
