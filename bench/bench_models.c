/* bench_models.c — seconds per U-Net call, VAE decode and text encode, and peak memory, for a model.
 *
 *   bench_models MODEL [--size PIXELS] [--batch B] [--reps N] [--only unet|vae|text|load]
 *
 * Inputs are seeded random latents/ids (the weights do not affect the cost). Prints one line per call type
 * with the median of N timed repetitions after one warm-up, then the process's peak RSS. bench/peer.py runs
 * the same calls in PyTorch/diffusers for comparison. Not a test.
 * The project's machine has 2 cores shared with other jobs: each line also gives the most CPU time other
 * processes took during one repetition (Linux /proc/stat); a figure measured beside another job says so. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "benchutil.h" // defines: cmp_double, machine_busy, self_cpu
#include "common.h"
#include "model.h"
#include "ops.h"
#include "rng.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_models MODEL [--size PIXELS] [--batch B] [--reps N] [--only unet|vae|text|load]\n");
        return 2;
    }
    int size = 0, B = 1, reps = 3;
    /* run just one call type (the SD1.5 VAE decode alone takes ~20 s a rep); "load": none, load time only */
    const char *only = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
    }
    if (reps < 1 || reps > 100) reps = 3;
    Model m;
    double t0 = ls_time();
    if (model_load(&m, argv[1], NULL) < 0) {
        fprintf(stderr, "bench_models: %s\n", ls_last_error());
        return 1;
    }
    double t_load = ls_time() - t0;
    int f = vae_scale_factor(&m.vae.cfg);
    if (size <= 0) size = m.unet.cfg.sample_size * f;
    int h = size / f, C = m.unet.cfg.in_channels, L = 77, D = m.clip.cfg.hidden;
    size_t per = (size_t)C * h * h;
    float *x = fbuf(B * per), *eps = fbuf(B * per), *ctx = fbuf((size_t)B * L * D), *t = fbuf(B);
    float *img = fbuf((size_t)B * 3 * size * size);
    int *ids = mallocCheck(sizeof(int) * (size_t)B * L);
    rng_normal(x, B * per, 1, 0);
    rng_normal(ctx, (size_t)B * L * D, 2, 0);
    for (int b = 0; b < B; b++) t[b] = 500.0f;
    for (int i = 0; i < B * L; i++) ids[i] = (int)(rng_u32(3, (uint64_t)i) % (uint32_t)m.clip.cfg.vocab_size);
    printf("model %s: unet %lld params, %d threads, load %.2f s\n", argv[1], (long long)m.unet.wt.numel,
           op_num_threads(), t_load);
    const char *what[3] = {"unet forward", "vae decode", "text encode"};
    const char *key[3] = {"unet", "vae", "text"};
    for (int k = 0; k < 3; k++) {
        if (only && strcmp(only, key[k])) continue;
        double ts[100], other = 0.0; /* most CPU-s other processes used during one repetition */
        for (int r = -1; r < reps; r++) {
            double s = ls_time(), busy0 = machine_busy(), self0 = self_cpu();
            if (k == 0) unet_forward(&m.unet, eps, x, t, ctx, B, h, h, L);
            else if (k == 1) vae_decode(&m.vae, img, x, B, h, h);
            else clip_forward(&m.clip, ctx, ids, B, L, 0);
            if (r >= 0) {
                ts[r] = ls_time() - s;
                double o = (machine_busy() - busy0) - (self_cpu() - self0);
                if (busy0 >= 0 && o > other) other = o;
            }
        }
        qsort(ts, (size_t)reps, sizeof ts[0], cmp_double);
        printf("%-13s %dx%d batch %d: median %.4f s (min %.4f, %d reps; other processes: up to %.1f CPU-s a rep)\n",
               what[k], size, size, B, ts[reps / 2], ts[0], reps, other);
    }
    printf("peak RSS: %.1f MiB\n", (double)ls_peak_rss() / (1 << 20));
    free(x), free(eps), free(ctx), free(t), free(img), free(ids);
    model_free(&m);
    return 0;
}
