/* bench_lora.c — what an adapter costs at generation time, on one U-Net call.
 *
 *   bench_lora MODEL ADAPTER [--size PIXELS] [--reps N]
 *
 * Times the U-Net forward without the adapter, with it attached unmerged (the update runs every call),
 * and merged (baked into the weights: no per-step cost); the one-off merge; and a strength change on a
 * merged and on an unmerged adapter. Prints medians of N repetitions after one warm-up. Not a test. */
#include <stdio.h>
#include <string.h>

#include "benchutil.h" // defines: cmp_double, machine_busy, self_cpu
#include "common.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
#include "rng.h"

typedef struct {
    const UNet *u;
    float *x, *t, *ctx, *eps;
    int h;
} Call;

static double time_unet(const Call *c, int reps) {
    double ts[64];
    for (int r = -1; r < reps; r++) {
        double s = ls_time();
        unet_forward(c->u, c->eps, c->x, c->t, c->ctx, 1, c->h, c->h, 77);
        if (r >= 0) ts[r] = ls_time() - s;
    }
    qsort(ts, (size_t)reps, sizeof ts[0], cmp_double);
    return ts[reps / 2];
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_lora MODEL ADAPTER [--size PIXELS] [--reps N]\n");
        return 2;
    }
    int size = 0, reps = 3;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (reps < 1 || reps > 64) reps = 3;
    Model m;
    Lora a;
    if (model_load(&m, argv[1], NULL) < 0 || lora_load(&a, argv[2]) < 0) {
        fprintf(stderr, "bench_lora: %s\n", ls_last_error());
        return 1;
    }
    int f = vae_scale_factor(&m.vae.cfg);
    if (size <= 0) size = m.unet.cfg.sample_size * f;
    Call c = {&m.unet, NULL, NULL, NULL, NULL, size / f};
    size_t per = (size_t)m.unet.cfg.in_channels * c.h * c.h, nc = (size_t)77 * m.clip.cfg.hidden;
    c.x = fbuf(per), c.eps = fbuf(per), c.ctx = fbuf(nc), c.t = fbuf(1);
    rng_normal(c.x, per, 1, 0);
    rng_normal(c.ctx, nc, 2, 0);
    c.t[0] = 500.0f;
    int rmax = 0;
    for (int i = 0; i < a.n_mods; i++) rmax = a.mods[i].rank > rmax ? a.mods[i].rank : rmax;
    printf("model %s, adapter %s: %d U-Net modules (%d conv), rank %d, %lld parameters; %dx%d, %d threads\n",
           argv[1], a.name, a.n_unet, a.n_conv, rmax, (long long)a.n_params, size, size, op_num_threads());
    double base = time_unet(&c, reps);
    if (lora_attach(&a, &m, 0) < 0) {
        fprintf(stderr, "bench_lora: %s\n", ls_last_error());
        return 1;
    }
    lora_set_strength(&a, 0.8f, 0.8f);
    double unmerged = time_unet(&c, reps);
    double s0 = ls_time();
    lora_set_strength(&a, 0.6f, 0.6f);
    double t_strength_unmerged = ls_time() - s0;
    s0 = ls_time();
    lora_merge(&a);
    double t_merge = ls_time() - s0;
    double merged = time_unet(&c, reps);
    double ts[64];
    for (int r = 0; r < reps; r++) {
        s0 = ls_time();
        lora_set_strength(&a, r % 2 ? 0.6f : 0.9f, r % 2 ? 0.6f : 0.9f);
        ts[r] = ls_time() - s0;
    }
    qsort(ts, (size_t)reps, sizeof ts[0], cmp_double);
    printf("unet forward, no adapter:        %.4f s\n", base);
    printf("unet forward, unmerged adapter:  %.4f s  (+%.1f%% per step)\n", unmerged,
           100.0 * (unmerged - base) / base);
    printf("unet forward, merged adapter:    %.4f s  (+%.1f%% per step)\n", merged, 100.0 * (merged - base) / base);
    printf("merge (one-off):                 %.4f s\n", t_merge);
    printf("strength change, merged:         %.4f s (median of %d)\n", ts[reps / 2], reps);
    printf("strength change, unmerged:       %.6f s\n", t_strength_unmerged);
    printf("peak RSS: %.1f MiB\n", (double)ls_peak_rss() / (1 << 20));
    lora_free(&a);
    model_free(&m);
    free(c.x), free(c.eps), free(c.ctx), free(c.t);
    return 0;
}
