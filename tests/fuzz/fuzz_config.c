/* fuzz_config.c — model config.json parsing: the same bytes as a U-Net, VAE, CLIP text-encoder and
 * scheduler config (cJSON, then the typed getters of jsonutil.c with their range checks), and a loaded
 * config written back to JSON. Must never crash or leak, whatever the types, sizes or nesting. */
#include "clip.h"        // defines: clip_config_load, clip_config_to_json
#include "fuzz_util.h"   // defines: fuzz_dir, fuzz_write
#include "scheduler.h"   // defines: sched_config_load
#include "unet.h"        // defines: unet_config_load, unet_config_to_json
#include "vae.h"         // defines: vae_config_load, vae_config_to_json

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write(fuzz_dir("config"), "config.json", data, size);
    UNetConfig uc;
    if (unet_config_load(&uc, path) == 0) free(unet_config_to_json(&uc));
    VaeConfig vc;
    if (vae_config_load(&vc, path) == 0) free(vae_config_to_json(&vc));
    ClipConfig cc;
    if (clip_config_load(&cc, path) == 0) free(clip_config_to_json(&cc));
    SchedConfig sc;
    sched_config_default(&sc);
    sched_config_load(&sc, path);
    free(path);
    return 0;
}
