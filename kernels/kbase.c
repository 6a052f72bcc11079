/* kbase.c — see kbase.h. */
#include "kbase.h"

void *ls_malloc_check(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "lorastyle: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
        abort();
    }
    return p;
}

void *ls_calloc_check(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "lorastyle: out of memory allocating %zu x %zu bytes at %s:%d\n", n, sz, file,
                line);
        abort();
    }
    return p;
}
