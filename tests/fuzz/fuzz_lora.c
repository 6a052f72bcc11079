/* fuzz_lora.c — adapter files: lora_load's key parsing (kohya / PEFT / old diffusers / bottleneck key
 * styles and their mixes, ranks, alphas, shapes, lora_adapter_metadata) on arbitrary safetensors bytes,
 * then matching against a real model (the tiny preset, made once per process): strict and lenient attach,
 * a merge, a strength change and the unmerge. Must never crash or leak; a refused file leaves the model
 * as it was. */
#include "fuzz_util.h"   // defines: fuzz_dir, fuzz_write
#include "lora.h"        // defines: lora_load, lora_attach, lora_merge
#include "model.h"       // defines: model_init_preset, model_load

static Model *fuzz_model(const char *dir) {
    static Model m;
    static int loaded;
    if (loaded) return &m;
    char *mdir = ls_path_join(dir, "tiny");
    if (model_init_preset("tiny", mdir, 1, ST_F32, NULL) < 0 || model_load(&m, mdir, NULL) < 0) {
        fprintf(stderr, "fuzz_lora: %s\n", ls_last_error());
        abort();
    }
    free(mdir);
    loaded = 1;
    return &m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir("lora");
    Model *m = fuzz_model(dir);
    char *path = fuzz_write(dir, "adapter.safetensors", data, size);
    Lora a;
    if (lora_load(&a, path) == 0) {
        int lenient = size & 1; /* both paths, chosen by an input bit libFuzzer can flip */
        if (lora_attach(&a, m, lenient) == 0) {
            lora_merge(&a);
            lora_set_strength(&a, 0.5f, 0.25f);
            lora_unmerge(&a);
        }
        lora_free(&a);
    }
    free(path);
    return 0;
}
