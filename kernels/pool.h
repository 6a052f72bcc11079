/* pool.h — the backend's working memory: the activations and scratch buffers of a forward pass, and of a
 * training step (its saved activations, the backward's scratch, the step's own buffers), come from one slab
 * that the backend owns, not from malloc. A first-fit allocator over the slab (address-ordered blocks,
 * neighbours merged on free) keeps the peak what malloc/free in the same order would need. Planning by
 * measurement: a request the slab cannot serve goes to the system once and is counted; the next time the
 * pool is empty (the end of a forward pass or of a training step) the slab is rebuilt at the highest demand
 * seen (+ 1/8 for the layout), so from the second step on a sampling or training step makes no system
 * allocation (tests/test_pool.c counts). Whatever is kept across steps keeps the pool from emptying: free it
 * at the end of the step.
 * Thread-safe (one lock; ops allocate per task inside parallel loops). */
#ifndef LS_POOL_H
#define LS_POOL_H

#include <stddef.h>

/* n bytes, 64-byte aligned, from the backend's pool (aborts on out-of-memory like mallocCheck). */
void *pool_alloc(size_t n);
/* Give back a pool_alloc'd buffer (NULL is fine). */
void pool_free(void *p);

typedef struct {
    size_t slab_bytes;   /* the slab's size now */
    size_t live_bytes;   /* in use now (slab and overflow) */
    size_t peak_bytes;   /* the highest demand seen */
    size_t system_allocs; /* requests the slab could not serve (each one a malloc), and slab rebuilds */
} PoolStats;
PoolStats pool_stats(void);
/* Release the slab (only when nothing is in use; a no-op otherwise). */
void pool_trim(void);

#endif
