/* kbase.h — what the kernels need from a runtime and nothing more: checked allocation and invariants.
 * (src/runtime/common.h includes it; the kernels, the lowest layer, include only this.) */
#ifndef LS_KBASE_H
#define LS_KBASE_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Checked allocation: aborts with file:line on out-of-memory (internal failure, not bad input). */
void *ls_malloc_check(size_t n, const char *file, int line);
void *ls_calloc_check(size_t n, size_t sz, const char *file, int line);
#define mallocCheck(n) ls_malloc_check((n), __FILE__, __LINE__)
#define callocCheck(n, sz) ls_calloc_check((n), (sz), __FILE__, __LINE__)
/* Abort on a broken internal invariant. */
#define LS_ASSERT(cond)                                                                           \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "lorastyle: internal error: %s failed at %s:%d\n", #cond, __FILE__, \
                    __LINE__);                                                                    \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

#define LS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LS_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
