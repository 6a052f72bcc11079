/* test_adapter.c — bottleneck (Houlsby-style) adapters: y ← y + s·up(gelu(down(y))) on the output of every
 * transformer block's attn1.to_out.0, attn2.to_out.0 and ff.net.2 (layers.h, lora.h).
 *
 * On the tiny preset, batch 2 (one timestep each), 16×12 latent:
 *  - the fixture adapter (written by tests/gen_adapter_fixtures.py in lorastyle's file format: 18 modules,
 *    rank 4, alpha 2) at strength 0.7 gives PyTorch's output and loss, and every down/up gradient matches
 *    PyTorch autograd (forward hooks on diffusers' U-Net) within 1e-4 relative L2; finite differences agree;
 *  - strength 0 is bit-identical to the base model; lora_merge leaves the adapter live (same output);
 *  - a LoRA on the same layers trains through a frozen adapter (finite differences);
 *  - lora_create_bottleneck: up = 0 leaves the output bit-identical, TrainSet names, save → load round
 *    trip (values, alpha, metadata, output);
 *  - CLI: `generate --lora FILE:0.8` works (default mode), `--lora-mode merged` and `merge` refuse it
 *    (argv[2] = the lorastyle binary).
 *
 * Usage: test_adapter FIXTURE_DIR [LORASTYLE] */
#include <float.h>

#include "grad_check.h" // defines: central_diff, fd_pick, fd_check, numel_down, numel_up
#include "lora.h"
#include "model.h"
#include "rng.h"
#include "testutil.h"
#include "unet_case.h"
#include "unet_bwd.h"

#define TOL 1e-4
#define FD_STEP 1e-2f
#define FD_RTOL 2e-2

static Model g_m;
static UNetCase g_c; /* the fixture's inputs and target */

static double loss_eval(float *out_copy) { return unet_case_loss(&g_m.unet, &g_c, out_copy); }
static double loss_fd(void) { return loss_eval(NULL); } /* what finite differences perturb */

/* forward_train + backward (gradients accumulate); returns the loss */
static double loss_grad(float *out_copy) { return unet_case_loss_grad(&g_m.unet, &g_c, out_copy, NULL); }


/* n finite-difference checks on a's parameters (module i·7 mod n_mods, down/up alternating, the largest |g|
 * of 8 random entries); returns the worst ratio to the tolerance. */
static double fd_sweep(Lora *a, int n, uint64_t seed, double atol, const char *label) {
    FdTally fd = {0};
    uint64_t ctr = 0;
    for (int it = 0; it < n; it++) {
        LoraModule *m = &a->mods[(it * 7) % a->n_mods];
        int up = it % 2;
        float *w = up ? m->up : m->down, *g = up ? m->dup : m->ddown;
        size_t best = fd_pick(g, up ? numel_up(m) : numel_down(m), 8, seed, &ctr);
        char what[300];
        snprintf(what, sizeof what, "%s %s.%s[%zu]", label, m->module, up ? "up" : "down", best);
        fd_check(&fd, what, central_diff(&w[best], FD_STEP, loss_fd), g[best], FD_RTOL, atol);
    }
    printf("finite differences (%s): %d parameters, worst %.2f of tolerance: %s\n", label, n, fd.worst, fd.where);
    return fd.worst;
}

static int run_quiet(const char *cmd) { return system(cmd); }

int main(int argc, char **argv) {
    const char *exe = argc > 2 ? argv[2] : NULL;
    TestCase tc;
    if (test_case_begin(&tc, argc, argv, "adapter", &g_m, "adapter_grad.safetensors") < 0) return test_summary();
    char fa[512];
    snprintf(fa, sizeof fa, "%s/adapter.safetensors", tc.fixdir);
    unet_case_load(&g_c, &tc.ref);
    float *ref_out = fixture_get(&tc.ref, "out", NULL, NULL), *ref_base = fixture_get(&tc.ref, "base_out", NULL, NULL);
    float *ref_loss = fixture_get(&tc.ref, "loss", NULL, NULL);
    float s = (float)atof(st_meta_get(&tc.ref, "strength"));

    float *base = fbuf(g_c.nout), *out = fbuf(g_c.nout), *out2 = fbuf(g_c.nout), *out_inf = fbuf(g_c.nout);
    loss_eval(base);
    CHECK(rel_l2(base, ref_base, g_c.nout) < TOL, "base output vs diffusers rel L2 %.3g", rel_l2(base, ref_base, g_c.nout));

    /* --- the fixture adapter: forward, loss and every gradient against PyTorch --- */
    Lora a;
    CHECK(lora_load(&a, fa) == 0, "load %s: %s", fa, ls_last_error());
    CHECK(a.format == LORA_ADAPTER && a.n_mods == 18 && !lora_is_mergeable(&a), "format %d, %d modules",
          (int)a.format, a.n_mods);
    CHECK(lora_attach(&a, &g_m, 0) == 0, "attach: %s", ls_last_error());
    CHECK(lora_grads_alloc(&a) == 0, "grads: %s", ls_last_error());
    if (g_fail) return test_summary();
    lora_set_strength(&a, s, s);
    double loss_inf = loss_eval(out_inf);
    lora_grads_zero(&a);
    double loss = loss_grad(out);
    double e = rel_l2(out, out_inf, g_c.nout), eo = rel_l2(out, ref_out, g_c.nout);
    CHECK(e < 1e-6, "forward_train vs forward rel L2 %.3g", e);
    CHECK(eo < TOL, "output vs PyTorch rel L2 %.3g", eo);
    CHECK(fabs(loss - ref_loss[0]) / ref_loss[0] < 1e-5 && fabs(loss_inf - loss) < 1e-6, "loss %.8f vs PyTorch %.8f",
          loss, (double)ref_loss[0]);
    CHECK(rel_l2(out, base, g_c.nout) > 1e-3, "the adapter does not change the output");
    printf("adapter %s: %d modules at strength %.2f: output vs PyTorch rel L2 %.2g, loss %.6f (PyTorch %.6f)\n",
           a.name, a.n_mods, (double)s, eo, loss, (double)ref_loss[0]);
    {
        double num = 0, den = 0, worst = 0;
        char key[600], worst_key[600] = "";
        for (int i = 0; i < a.n_mods; i++) {
            const LoraModule *m = &a.mods[i];
            for (int p = 0; p < 2; p++) {
                snprintf(key, sizeof key, "adapter_unet_%s.%s", m->module, p ? "adapter_up.weight" : "adapter_down.weight");
                size_t n;
                float *r = fixture_get(&tc.ref, key, &n, NULL);
                const float *g = p ? m->dup : m->ddown;
                CHECK(n == (p ? numel_up(m) : numel_down(m)), "%s: %zu values", key, n);
                double d2 = 0, r2 = 0;
                for (size_t j = 0; j < n; j++) d2 += ((double)g[j] - r[j]) * ((double)g[j] - r[j]), r2 += (double)r[j] * r[j];
                free(r);
                double rel = sqrt(d2 / (r2 + 1e-30));
                CHECK(rel <= TOL, "%s: gradient rel L2 %.3g vs PyTorch", key, rel);
                num += d2, den += r2;
                if (rel > worst) worst = rel, snprintf(worst_key, sizeof worst_key, "%s", key);
            }
        }
        printf("gradients vs PyTorch autograd: %d modules, overall rel L2 %.2g, worst %.2g (%s)\n", a.n_mods,
               sqrt(num / den), worst, worst_key);
    }
    double atol = FLT_EPSILON * loss / (2.0 * FD_STEP);
    fd_sweep(&a, 16, 3, atol, "adapter down/up");

    /* --- strength 0 is exactly the base; lora_merge leaves a bottleneck adapter live --- */
    lora_set_strength(&a, 0, 0);
    loss_eval(out2);
    CHECK(memcmp(out2, base, g_c.nout * sizeof(float)) == 0, "strength 0 differs from the base model");
    lora_set_strength(&a, s, s);
    lora_merge(&a);
    loss_eval(out2);
    CHECK(memcmp(out2, out_inf, g_c.nout * sizeof(float)) == 0, "after lora_merge the adapter no longer acts the same");
    lora_set_strength(&a, 0.3f, 0.3f); /* live strength change while 'merged' */
    double l03 = loss_eval(NULL);
    lora_unmerge(&a);
    CHECK(fabs(l03 - loss_eval(NULL)) == 0.0, "strength change under lora_merge is not live");
    lora_set_strength(&a, s, s);

    /* --- a LoRA on the same layers trains through the (frozen) adapter --- */
    {
        for (int i = 0; i < a.n_mods; i++) a.mods[i].hook.ddown = a.mods[i].hook.dup = NULL;
        Lora l;
        CHECK(lora_create(&l, &g_m, "attn1.to_out.0,attn2.to_out.0,ff.net.2", 2, 0, 0, 0, 9) == 0, "create: %s",
              ls_last_error());
        for (int i = 0; i < l.n_mods; i++) {
            rng_normal(l.mods[i].up, numel_up(&l.mods[i]), 40 + i, 0);
            for (size_t j = 0; j < numel_up(&l.mods[i]); j++) l.mods[i].up[j] *= 0.3f;
        }
        CHECK(lora_attach(&l, &g_m, 0) == 0 && lora_grads_alloc(&l) == 0, "attach lora: %s", ls_last_error());
        lora_grads_zero(&a);
        lora_grads_zero(&l);
        double ll = loss_grad(NULL);
        CHECK(lora_grads_sumsq(&a) == 0.0, "the frozen adapter received gradients");
        fd_sweep(&l, 12, 8, FLT_EPSILON * ll / (2.0 * FD_STEP), "LoRA through a frozen adapter");
        lora_free(&l);
    }
    lora_free(&a);
    loss_eval(out2);
    CHECK(memcmp(out2, base, g_c.nout * sizeof(float)) == 0, "detaching did not restore the base model");

    /* --- a new adapter: identity at start, TrainSet names, save → load round trip --- */
    {
        Lora b, c;
        CHECK(lora_create_bottleneck(&b, &g_m, 4, 0, 5) == 0, "create: %s", ls_last_error());
        CHECK(b.n_mods == 18 && b.format == LORA_ADAPTER && b.mods[0].alpha == 4.0f, "%d modules", b.n_mods);
        CHECK(lora_attach(&b, &g_m, 0) == 0 && lora_grads_alloc(&b) == 0, "attach new: %s", ls_last_error());
        loss_eval(out2);
        CHECK(memcmp(out2, base, g_c.nout * sizeof(float)) == 0, "a new adapter (up = 0) changes the output");
        lora_grads_zero(&b);
        loss_grad(NULL);
        double down2 = 0, up2 = 0;
        for (int i = 0; i < b.n_mods; i++) {
            for (size_t j = 0; j < numel_down(&b.mods[i]); j++) down2 += (double)b.mods[i].ddown[j] * b.mods[i].ddown[j];
            for (size_t j = 0; j < numel_up(&b.mods[i]); j++) up2 += (double)b.mods[i].dup[j] * b.mods[i].dup[j];
        }
        CHECK(down2 == 0.0 && up2 > 0.0, "new adapter: |ddown|² %g (want 0), |dup|² %g (want > 0)", down2, up2);
        TrainSet ts = {0};
        lora_trainset(&b, &ts);
        CHECK(ts.n == 2 * b.n_mods && ts.n_params == b.n_params, "trainset %d tensors", ts.n);
        CHECK(ts.n > 0 && !strcmp(ts.t[0].name, "adapter_unet_down_blocks_0_attentions_0_transformer_blocks_0_"
                                                "attn1_to_out_0.adapter_down.weight"), "first trainset name %s",
              ts.n ? ts.t[0].name : "");
        trainset_free(&ts);
        for (int i = 0; i < b.n_mods; i++) rng_normal(b.mods[i].up, numel_up(&b.mods[i]), 60 + i, 0);
        loss_eval(out);
        char path[200];
        snprintf(path, sizeof path, "%s/new.safetensors", tc.tmp);
        const char *meta[2] = {"ss_network_dim", "4"};
        CHECK(lora_save_kohya(&b, path, meta, 1) == 0, "save: %s", ls_last_error());
        lora_free(&b);
        CHECK(lora_load(&c, path) == 0, "reload: %s", ls_last_error());
        CHECK(c.format == LORA_ADAPTER && c.n_mods == 18 && c.mods[0].alpha == 4.0f, "reloaded %d modules",
              c.n_mods);
        const char *mm = st_meta_get(&c.file, "lorastyle_method");
        CHECK(mm && !strcmp(mm, "adapter"), "metadata lorastyle_method = %s", mm ? mm : "(none)");
        CHECK(lora_attach(&c, &g_m, 0) == 0, "attach reloaded: %s", ls_last_error());
        loss_eval(out2);
        CHECK(memcmp(out2, out, g_c.nout * sizeof(float)) == 0, "reloaded adapter gives another output");
        lora_free(&c);
        printf("new adapter: identity at start, save → load round trip exact (%s)\n", path);
    }

    /* --- the CLI: live with --lora, refused by --lora-mode merged and merge --- */
    if (exe) {
        char cmd[2000], log[200];
        const char *tmp = tc.tmp, *mdir = tc.mdir;
        snprintf(log, sizeof log, "%s/log.txt", tmp);
        const char *gen = "generate 'a fox' --steps 2 --width 64 --height 64 --seed 3";
        snprintf(cmd, sizeof cmd, "'%s' %s --model '%s' --lora '%s:0.8' -o '%s/a.png' >'%s' 2>&1", exe, gen, mdir, fa,
                 tmp, log);
        CHECK(run_quiet(cmd) == 0, "generate with a bottleneck adapter failed: %s", cmd);
        snprintf(cmd, sizeof cmd, "'%s' %s --model '%s' --lora '%s:0.8' --lora-mode merged -o '%s/b.png' >'%s' 2>&1 ; "
                 "test $? -ne 0 && grep -q 'cannot be merged' '%s' && test ! -e '%s/b.png'", exe, gen, mdir, fa, tmp,
                 log, log, tmp);
        CHECK(run_quiet(cmd) == 0, "--lora-mode merged did not refuse the adapter clearly: %s", cmd);
        snprintf(cmd, sizeof cmd, "'%s' merge '%s' --lora '%s' -o '%s/merged' >'%s' 2>&1 ; test $? -ne 0 && "
                 "grep -q 'cannot be merged' '%s' && test ! -e '%s/merged'", exe, mdir, fa, tmp, log, log, tmp);
        CHECK(run_quiet(cmd) == 0, "merge did not refuse the adapter clearly: %s", cmd);
        printf("CLI: generate --lora FILE:0.8 works; --lora-mode merged and merge refuse it\n");
    }

    free(base), free(out), free(out2), free(out_inf), free(ref_out), free(ref_base), free(ref_loss);
    unet_case_free(&g_c);
    return test_case_end(&g_m, &tc.ref, tc.tmp);
}
