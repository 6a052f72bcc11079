/* weights.h — named parameter tables: one table per model, built by walking the model config.
 *
 * Every parameter a model has is registered once with its checkpoint key (diffusers naming), shape and a
 * pointer to the struct field that will point at its data. The same table then serves three jobs:
 *  - loading: look each key up in the checkpoint (through a key-mapping for LDM single files), check the
 *    shape, convert to float32 (or point straight into the mmap when the file already holds aligned F32);
 *  - `lorastyle init`: fill every tensor from the portable seeded RNG and write a safetensors file;
 *  - reporting (parameter counts) and, later, LoRA targeting (module names come from the table).
 */
#ifndef LS_WEIGHTS_H
#define LS_WEIGHTS_H

#include <stdint.h>

#include "safetensors.h" // defines: StFile, StTensor

/* How `lorastyle init` fills a tensor (PyTorch default initialisations). */
typedef enum {
    WINIT_UNIFORM_FANIN, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): nn.Linear / nn.Conv2d weight and bias */
    WINIT_ONES,          /* norm scale */
    WINIT_ZEROS,         /* norm shift */
    WINIT_NORMAL_002,    /* N(0, 0.02²): embeddings */
} WInit;

typedef struct {
    char *name;         /* checkpoint key, diffusers naming */
    int ndim;
    int64_t shape[4];
    int64_t numel;
    float **ptr;        /* field that receives the data pointer */
    float **gptr;       /* field that receives the gradient pointer (full fine-tuning), or NULL: the
                         * tensor has no gradient field (embeddings of the text encoder) */
    WInit init;
    int64_t fan_in;     /* for WINIT_UNIFORM_FANIN */
} WeightSpec;

/* A parameterised layer (Linear or Conv2d) registered under its module path, e.g.
 * "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": what LoRA files name and target. */
typedef enum { MOD_LINEAR, MOD_CONV } ModKind;
typedef struct {
    char *name;
    ModKind kind;
    void *layer; /* Linear* or Conv2d* (layers.h) */
} ModuleSpec;

typedef struct {
    WeightSpec *v;
    int n, cap;
    ModuleSpec *mods;   /* every Linear/Conv2d, in build order */
    int n_mods, cap_mods;
    float *owned;       /* float32 storage for tensors that needed conversion (or init) */
    int64_t owned_numel; /* floats in owned */
    float *grads;       /* gradient arena of wt_grads_alloc (NULL: none) */
    int64_t numel;      /* total parameters */
} WeightTable;

void wt_init(WeightTable *t);
void wt_free(WeightTable *t);
/* Register a tensor: name = printf(fmt, ...) appended to prefix ("" allowed). */
void wt_add(WeightTable *t, float **ptr, WInit init, int64_t fan_in, int ndim, const int64_t *shape,
            const char *prefix, const char *suffix);

/* Name the gradient field of the tensor registered last (layers.c builders: Linear dw/db, Conv2d dw/db,
 * Norm dg/db); it stays NULL until wt_grads_alloc. */
void wt_set_grad(WeightTable *t, float **gptr);

/* Register a layer under its module path (called by the layer builders). */
void wt_add_module(WeightTable *t, const char *name, ModKind kind, void *layer);
/* Module by exact path, or NULL. */
const ModuleSpec *wt_find_module(const WeightTable *t, const char *name);

/* Maps a table key to the key in a file; returns 0 and writes out (cap bytes) or -1 if it has none. */
typedef int (*KeyMapFn)(const char *key, char *out, int cap, const void *ctx);

/* Load every registered tensor from f (key mapped through map, or identity if map is NULL).
 * Shapes must match exactly, except that trailing size-1 dims are ignored (1×1 conv ↔ Linear).
 * Aligned F32 data is used in place from the mmap (f must stay open); others are converted.
 * LS_ERR naming the file and key on a missing key, shape mismatch, bad dtype or NaN/Inf. */
int wt_load(WeightTable *t, const StFile *f, KeyMapFn map, const void *map_ctx);

/* Fill every tensor from the portable RNG (stream `seed`, each tensor at its own offset). */
void wt_init_random(WeightTable *t, uint64_t seed);

/* Full fine-tuning: make every tensor a private, writable float32 copy. Tensors used in place from a
 * read-only mmap (aligned F32 files) are copied into one new arena (the table's numel floats; the mmap
 * itself is then no longer read); when everything is already private (F16/BF16 files converted at load,
 * or wt_init_random) nothing is done. Returns the bytes newly allocated, or LS_ERR when the memory is not
 * there. */
int64_t wt_make_writable(WeightTable *t);
/* Give a component's weights back (a model part that is no longer needed, e.g. the VAE and text encoder once
 * training has cached their outputs): the float32 copies are freed and the pages of tensors read in place
 * from a mapped file are released (st_release_pages). The table is then empty (wt_free); the component's
 * config stays. Returns the bytes of float32 weights given back. */
int64_t wt_release(WeightTable *t);

/* Full fine-tuning: one zeroed float32 gradient arena (numel floats) pointed into by every tensor's
 * gradient field. LS_ERR naming the first tensor that has no gradient field, or when out of memory. */
int wt_grads_alloc(WeightTable *t);
/* Free the arena and set every gradient field back to NULL (frozen again). */
void wt_grads_free(WeightTable *t);

/* Write all tensors to path (dtype ST_F32/ST_F16/ST_BF16), atomically. */
int wt_save(const WeightTable *t, const char *path, StDtype dtype);

#endif
