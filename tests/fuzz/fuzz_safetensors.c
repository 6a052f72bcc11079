/* fuzz_safetensors.c — the safetensors reader (st_open) on arbitrary bytes: header length, JSON header,
 * dtypes, shapes, offsets, overlaps, __metadata__; then everything a loader does with an opened file —
 * look every tensor up by name, read the metadata, convert every float tensor to float32 (with and without
 * the finiteness check). Must never crash, leak or read outside the mapping. */
#include "fuzz_util.h"     // defines: fuzz_dir, fuzz_write
#include "safetensors.h"   // defines: st_open, st_to_f32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write(fuzz_dir("safetensors"), "in.safetensors", data, size);
    StFile f;
    if (st_open(&f, path) == 0) {
        for (int i = 0; i < f.n_tensors; i++) {
            const StTensor *t = &f.tensors[i];
            if (st_find(&f, t->name) != t) abort(); /* the name table must find every tensor */
            float *dst = malloc((size_t)t->numel * sizeof *dst + 1);
            if (!dst) abort();
            st_to_f32(&f, t, dst, i & 1);
            free(dst);
        }
        for (int i = 0; i < f.n_meta; i++) st_meta_get(&f, f.meta[i].key);
        st_meta_get(&f, "format");
        st_close(&f);
    }
    free(path);
    return 0;
}
