/* pool.c — see pool.h. */
#include "pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__ /* (defined by the headers above) */
#include <malloc.h> // defines: malloc_trim
#endif

#include "kbase.h" // defines: LS_ASSERT
#include "ops.h"   // defines: op_try_alloc, op_free, op_sync (the backend's memory)

#define ALIGN 64
#define MAGIC 0x706f6f6cu /* "pool" */
enum { B_FREE = 1, B_SYSTEM = 2 };

/* Every buffer is preceded by one header; in the slab, blocks tile it with no gaps. */
typedef struct {
    size_t size;      /* payload bytes (a multiple of ALIGN) */
    size_t prev_size; /* payload bytes of the physically previous block in the slab (0: first) */
    uint32_t magic, flags;
    char pad[ALIGN - 2 * sizeof(size_t) - 2 * sizeof(uint32_t)];
} Block;
_Static_assert(sizeof(Block) == ALIGN, "the header keeps payloads aligned");

typedef struct {
    pthread_mutex_t lock;
    char *slab;
    size_t cap, live, peak, system_allocs;
    int spilled; /* a request went to the system since the slab was last built */
} Pool;

/* The backend's pool: part of the backend handle (kernels/ops.c holds the handle; the pool is its memory). */
static Pool pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static Block *next_of(Block *b) { return (Block *)((char *)(b + 1) + b->size); }
static Block *prev_of(Block *b) { return b->prev_size ? (Block *)((char *)b - b->prev_size - sizeof(Block)) : NULL; }
static int in_slab(const Block *b) { return pool.slab && (const char *)b >= pool.slab && (const char *)b < pool.slab + pool.cap; }
static char *slab_end(void) { return pool.slab + pool.cap; }

static void slab_build(size_t cap) {
    op_free(pool.slab);
    pool.slab = NULL, pool.cap = 0;
    if (!cap) return;
    cap = (cap + ALIGN - 1) / ALIGN * ALIGN + sizeof(Block);
    pool.slab = op_try_alloc(cap);
    if (!pool.slab) return; /* out of memory: every request goes to the system (and fails loudly there) */
    pool.cap = cap;
    Block *b = (Block *)pool.slab;
    *b = (Block){.size = cap - sizeof(Block), .prev_size = 0, .magic = MAGIC, .flags = B_FREE};
    pool.system_allocs++;
}

void *pool_alloc(size_t n) {
    size_t need = (n + ALIGN - 1) / ALIGN * ALIGN;
    if (!need) need = ALIGN;
    pthread_mutex_lock(&pool.lock);
    Block *fit = NULL;
    for (Block *b = pool.slab ? (Block *)pool.slab : NULL; b && (char *)b < slab_end(); b = next_of(b))
        if ((b->flags & B_FREE) && b->size >= need) {
            fit = b;
            break;
        }
    if (fit) {
        if (fit->size >= need + sizeof(Block) + ALIGN) { /* split: the rest stays free */
            Block *rest = (Block *)((char *)(fit + 1) + need);
            *rest = (Block){.size = fit->size - need - sizeof(Block), .prev_size = need, .magic = MAGIC,
                            .flags = B_FREE};
            Block *after = next_of(rest);
            if ((char *)after < slab_end()) after->prev_size = rest->size;
            fit->size = need;
        }
        fit->flags = 0;
    } else { /* the slab cannot serve it: from the system, counted, and planned for next time */
        fit = op_try_alloc(sizeof(Block) + need);
        if (!fit) {
            pthread_mutex_unlock(&pool.lock);
            LS_ASSERT(!"out of memory in the backend pool");
        }
        *fit = (Block){.size = need, .prev_size = 0, .magic = MAGIC, .flags = B_SYSTEM};
        pool.system_allocs++;
        pool.spilled = 1;
    }
    pool.live += fit->size + sizeof(Block);
    if (pool.live > pool.peak) pool.peak = pool.live;
    pthread_mutex_unlock(&pool.lock);
    return fit + 1;
}

void pool_free(void *p) {
    if (!p) return;
    Block *b = (Block *)p - 1;
    LS_ASSERT(b->magic == MAGIC && !(b->flags & B_FREE));
    if (!ls_ops->host_memory) op_sync(); /* an asynchronous backend: no queued op may still use the buffer */
    pthread_mutex_lock(&pool.lock);
    pool.live -= b->size + sizeof(Block);
    if (b->flags & B_SYSTEM) {
        b->magic = 0;
        op_free(b);
    } else {
        LS_ASSERT(in_slab(b));
        b->flags = B_FREE;
        Block *n = next_of(b);
        if ((char *)n < slab_end() && (n->flags & B_FREE)) { /* merge the next block into b */
            b->size += sizeof(Block) + n->size;
            n->magic = 0;
        }
        Block *pv = prev_of(b);
        if (pv && (pv->flags & B_FREE)) { /* merge b into the previous block */
            pv->size += sizeof(Block) + b->size;
            b->magic = 0;
            b = pv;
        }
        Block *after = next_of(b);
        if ((char *)after < slab_end()) after->prev_size = b->size;
    }
    /* empty after the slab was too small: rebuild it at the highest demand + 1/8 for the layout's gaps (and
     * at least 1/4 larger than before, should the gaps need more) */
    if (pool.live == 0 && pool.spilled) {
        size_t want = pool.peak + pool.peak / 8, grown = pool.cap + pool.cap / 4;
        slab_build(want > grown ? want : grown);
        pool.spilled = 0;
#ifdef __GLIBC__
        /* The spilled buffers went back to the C heap, which keeps their pages for reuse; the slab serves
         * those requests from now on, so give the pages to the system (a 30-step base-model training held
         * both: 17 MiB more peak RSS). */
        malloc_trim(0);
#endif
    }
    pthread_mutex_unlock(&pool.lock);
}

PoolStats pool_stats(void) {
    pthread_mutex_lock(&pool.lock);
    PoolStats s = {pool.cap, pool.live, pool.peak, pool.system_allocs};
    pthread_mutex_unlock(&pool.lock);
    return s;
}

void pool_trim(void) {
    pthread_mutex_lock(&pool.lock);
    if (pool.live == 0) slab_build(0), pool.peak = 0;
    pthread_mutex_unlock(&pool.lock);
}
