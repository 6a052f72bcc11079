/* test_pool — the backend's working memory (kernels/pool.h).
 *  1. The allocator: buffers are 64-byte aligned, keep their contents whatever the order of frees, and after
 *     one pass that spilled to the system the rebuilt slab serves the same pattern without a system call.
 *  2. A sampling step allocates nothing: every malloc/calloc/realloc/aligned_alloc of the library is counted
 *     (this executable links with -Wl,--wrap=...), over a 2-step and a 12-step generation of the tiny model
 *     and of the shipped base model (after one warm-up run); the ten extra steps must add no allocation. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h" // defines: GenParams, pipeline_generate
#include "pool.h"     // defines: pool_alloc, pool_free, pool_stats
#include "testutil.h"
#include "train.h"    // defines: TrainOptions, train_run

static volatile long n_allocs; /* calls from the library (and this test) to the system allocator */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n) { return __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED), __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t s) { return __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED), __real_calloc(n, s); }
void *__wrap_realloc(void *p, size_t n) { return __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED), __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) {
    return __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED), __real_aligned_alloc(a, n);
}

/* A fixed pattern of 40 buffers of varied sizes, freed in a shuffled order, contents checked. */
static void pattern(uint64_t seed) {
    enum { N = 40 };
    unsigned char *p[N];
    size_t sz[N];
    uint64_t r = seed;
    for (int i = 0; i < N; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        sz[i] = 1 + (size_t)(r >> 33) % 200000;
        p[i] = pool_alloc(sz[i]);
        CHECK(((uintptr_t)p[i] & 63) == 0, "buffer %d not 64-byte aligned", i);
        memset(p[i], i + 1, sz[i]);
        if (i % 3 == 2) { /* free one of the earlier buffers now and then: holes to reuse */
            int k = i - 2;
            pool_free(p[k]), p[k] = NULL;
        }
    }
    int bad = 0;
    for (int i = N - 1; i >= 0; i -= 2)
        if (p[i]) {
            for (size_t j = 0; j < sz[i]; j++) bad += p[i][j] != (unsigned char)(i + 1);
            pool_free(p[i]), p[i] = NULL;
        }
    for (int i = 0; i < N; i++)
        if (p[i]) {
            for (size_t j = 0; j < sz[i]; j++) bad += p[i][j] != (unsigned char)(i + 1);
            pool_free(p[i]);
        }
    CHECK(bad == 0, "%d bytes changed while other buffers came and went", bad);
}

static long allocs_of_generation(Model *m, int steps) {
    GenParams p;
    gen_params_init(&p);
    p.prompt = "a small red circle on the left on a white background";
    p.negative = "blue";
    p.steps = steps;
    p.seed = 3;
    Image img = {0};
    long before = n_allocs;
    int rc = pipeline_generate(m, &p, &img, NULL);
    long n = n_allocs - before;
    CHECK(rc == LS_OK, "%s", ls_last_error());
    image_free(&img);
    return n;
}

static void no_allocation_per_step(const char *what, const char *dir) {
    Model m;
    if (model_load(&m, dir, NULL) < 0) {
        CHECK(0, "%s: %s", dir, ls_last_error());
        return;
    }
    allocs_of_generation(&m, 2); /* warm-up: sizes the pool */
    long a2 = allocs_of_generation(&m, 2), a12 = allocs_of_generation(&m, 12);
    PoolStats s = pool_stats();
    printf("%s: %ld system allocations for a 2-step image, %ld for 12 steps: %.1f per step; pool slab %.1f MiB, "
           "peak %.1f MiB\n", what, a2, a12, (a12 - a2) / 10.0, s.slab_bytes / 1048576.0, s.peak_bytes / 1048576.0);
    CHECK(a12 == a2, "%s: %ld allocations in 10 more sampling steps", what, a12 - a2);
    model_free(&m);
}

static long allocs_of_training(const char *model, const char *data, const char *out, int steps) {
    TrainOptions o;
    train_options_default(&o);
    o.data_dir = data, o.model = model, o.out = out, o.name = "style";
    o.resolution = 64, o.quiet = 1, o.samples = 0, o.force = 1;
    o.steps = steps, o.batch = 2, o.checkpoint_every = 1000;
    long before = n_allocs;
    int rc = train_run(&o, NULL);
    long n = n_allocs - before;
    CHECK(rc == LS_OK, "train_run: %s", ls_last_error());
    return n;
}

static void no_allocation_per_training_step(const char *tmp, const char *model, const char *data) {
    char out[600];
    snprintf(out, sizeof out, "%s/train", tmp);
    allocs_of_training(model, data, out, 3); /* warm-up: sizes the pool */
    long a3 = allocs_of_training(model, data, out, 3), a13 = allocs_of_training(model, data, out, 13);
    PoolStats s = pool_stats();
    printf("LoRA training, tiny model: %ld system allocations for a 3-step run, %ld for 13 steps: %.1f per step; "
           "pool slab %.1f MiB, peak %.1f MiB\n", a3, a13, (a13 - a3) / 10.0, s.slab_bytes / 1048576.0,
           s.peak_bytes / 1048576.0);
    CHECK(a13 == a3, "%ld allocations in 10 more training steps", a13 - a3);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    long c0 = n_allocs;
    void *volatile probe = malloc(16); /* the counter sees the calls (the link wraps them) */
    free(probe);
    CHECK(n_allocs == c0 + 1, "malloc was not counted: is the executable linked with --wrap=malloc?");
    /* 1. the allocator */
    pool_trim();
    pattern(1);
    PoolStats s1 = pool_stats();
    CHECK(s1.live_bytes == 0 && s1.system_allocs > 0, "first pass: %zu live, %zu system allocations", s1.live_bytes,
          s1.system_allocs);
    long before = n_allocs;
    pattern(1);
    pattern(1);
    CHECK(n_allocs == before, "the same pattern again made %ld system allocations", n_allocs - before);
    PoolStats s2 = pool_stats();
    CHECK(s2.slab_bytes >= s2.peak_bytes && s2.slab_bytes <= s2.peak_bytes + s2.peak_bytes / 4 + 4096,
          "slab %zu bytes for a peak of %zu", s2.slab_bytes, s2.peak_bytes);
    pattern(2); /* another pattern: may spill once, then fits */
    before = n_allocs;
    pattern(2);
    CHECK(n_allocs == before, "pattern 2 again made %ld system allocations", n_allocs - before);
    void *z = pool_alloc(0);
    CHECK(z != NULL, "a zero-byte request gets a buffer");
    pool_free(z);
    pool_free(NULL);

    /* 2. sampling steps allocate nothing */
    char tmpl[] = "/tmp/ls_test_pool_XXXXXX", tiny[256] = "", base[1500];
    if (test_tiny_model(tmpl, tiny, sizeof tiny) == LS_OK) no_allocation_per_step("tiny model", tiny);
    snprintf(base, sizeof base, "%s/../../models/base", argv[1]);
    no_allocation_per_step("base model", base);
    /* 3. training steps allocate nothing */
    char data[1500];
    snprintf(data, sizeof data, "%s/../../datasets/sample_style", argv[1]);
    if (tiny[0]) no_allocation_per_training_step(tmpl, tiny, data);
    test_remove_dir(tmpl);
    return test_summary();
}
