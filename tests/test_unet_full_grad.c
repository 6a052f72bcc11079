/* test_unet_full_grad.c — full fine-tuning of the U-Net: gradients of the MSE loss w.r.t. every weight.
 *
 * On the tiny preset (1.1 M parameters, 304 tensors), batch 2 (one timestep each), 16×12 latent:
 *  - unet_full_grads_alloc lists every U-Net tensor in the TrainSet under its checkpoint key, once, and
 *    makes the mmapped (F32) weights private and writable; the forward is unchanged;
 *  - every tensor's gradient matches PyTorch autograd through diffusers (tests/gen_unet_full_grad_fixtures.py
 *    → tests/fixtures/unet_full_grad.safetensors: 27 tensors of every kind in full, the first 256 values of
 *    every other tensor) within 1e-4 relative L2 per tensor and overall;
 *  - scalar parameters of every kind (conv, linear, group/layer norm, time embedding, attention, samplers,
 *    conv_out) match central finite differences;
 *  - gradients accumulate over two backwards; unet_full_grads_free makes the model frozen again;
 *  - a fine-tuned model (one SGD step) saves as a diffusers folder and as a single file, both reload with
 *    exactly the trained values, the source checkpoint is untouched, and `lorastyle generate --model`
 *    renders from each (argv[2] = the lorastyle binary).
 *
 * Usage: test_unet_full_grad FIXTURE_DIR [LORASTYLE] */
#include <float.h>

#include "grad_check.h" // defines: central_diff, fd_pick, fd_check, GradTally, find_tensor
#include "model.h"
#include "testutil.h"
#include "unet_case.h"
#include "trainset.h"
#include "unet_bwd.h"

#define TOL 1e-4      /* relative L2 against PyTorch */
#define FD_STEP 1e-2f /* central-difference step on a weight */
#define FD_RTOL 2e-2  /* |fd − g| ≤ FD_RTOL·|g| + atol, atol = the float32 noise floor of the loss over the step */

static Model g_m;
static UNetCase g_c; /* the fixture's inputs and target */

static double loss_eval(void) { return unet_case_loss(&g_m.unet, &g_c, NULL); }

/* forward_train + backward (gradients accumulate: the caller zeroes them); returns the loss */
static double loss_grad(float *out_copy) { return unet_case_loss_grad(&g_m.unet, &g_c, out_copy, NULL); }

/* Every tensor against the fixture's "grad.<name>" (its leading values): ‖g − r‖ ≤ TOL·‖r‖ + a floor of
 * 1e-7·‖r_all‖ (tensors whose true gradient is 0 pass on float noise: in the tiny preset the level-0
 * resnets have 32 channels in 32 groups, so norm2 removes any per-channel constant and their
 * time_emb_proj cannot change the output). */
static void compare_all(const StFile *ref, const TrainSet *ts) {
    GradTally tally = {0};
    int nfull = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < ts->n; i++) {
            const TrainTensor *t = &ts->t[i];
            char key[300];
            snprintf(key, sizeof key, "grad.%s", t->name);
            size_t n;
            double d2, r2;
            fixture_grad_diff(ref, key, t->g, t->n, &d2, &r2, &n);
            if (pass == 0) {
                tally.all2 += r2;
                continue;
            }
            nfull += n == t->n;
            CHECK(n <= t->n, "%s: fixture holds %zu values, the tensor %zu", key, n, t->n);
            grad_tally_check(&tally, key, d2, r2, TOL, "PyTorch");
        }
    }
    double overall = grad_tally_overall(&tally);
    CHECK(overall < TOL, "overall rel L2 %.3g vs PyTorch", overall);
    printf("gradients vs PyTorch autograd: %d tensors (%d in full, the rest their first values), overall rel L2 "
           "%.2g, worst %.2g (%s); %d with a zero true gradient (|g| ~ float noise, both sides)\n",
           tally.n, nfull, overall, tally.worst, tally.worst_key, tally.nzero);
}

/* Are two loaded U-Nets' weights bit-identical? Returns the number of differing tensors. */
static int unet_diff(const UNet *a, const UNet *b) {
    int nd = 0;
    for (int i = 0; i < a->wt.n; i++)
        nd += memcmp(*a->wt.v[i].ptr, *b->wt.v[i].ptr, (size_t)a->wt.v[i].numel * sizeof(float)) != 0;
    return nd;
}

int main(int argc, char **argv) {
    const char *exe = argc > 2 ? argv[2] : NULL;
    TestCase tc;
    if (test_case_begin(&tc, argc, argv, "fullgrad", &g_m, "unet_full_grad.safetensors") < 0) return test_summary();
    unet_case_load(&g_c, &tc.ref);
    float *ref_out = fixture_get(&tc.ref, "out", NULL, NULL), *ref_loss = fixture_get(&tc.ref, "loss", NULL, NULL);

    /* --- frozen: the time of one LoRA-free training step (nothing to train: only the activations' path) --- */
    WeightTable *wt = &g_m.unet.wt;
    float *out = fbuf(g_c.nout), *out_frozen = fbuf(g_c.nout);
    double t0 = ls_time();
    loss_grad(out_frozen);
    double t_frozen = ls_time() - t0;
    const float *conv_in_mapped = g_m.unet.conv_in.w;

    /* --- allocate: every tensor listed once under its checkpoint key, weights made writable --- */
    TrainSet ts = {0};
    CHECK(unet_full_grads_alloc(&g_m.unet, &ts) == 0, "alloc: %s", ls_last_error());
    CHECK(ts.n == wt->n, "trainset holds %d tensors, the U-Net %d", ts.n, wt->n);
    CHECK(ts.n_params == wt->numel, "trainset holds %lld values, the U-Net %lld", (long long)ts.n_params,
          (long long)wt->numel);
    for (int i = 0; i < ts.n && i < wt->n; i++)
        CHECK(!strcmp(ts.t[i].name, wt->v[i].name) && ts.t[i].p == *wt->v[i].ptr && ts.t[i].g != NULL,
              "trainset entry %d (%s) is not the table's %s", i, ts.t[i].name, wt->v[i].name);
    CHECK(find_tensor(&ts, "down_blocks.0.resnets.0.conv1.weight") &&
          find_tensor(&ts, "time_embedding.linear_1.weight") && find_tensor(&ts, "conv_norm_out.bias"),
          "checkpoint key names missing from the trainset");
    CHECK(g_m.unet.conv_in.w != conv_in_mapped && g_m.unet.conv_in.w >= wt->owned &&
          g_m.unet.conv_in.w < wt->owned + wt->owned_numel, "conv_in.weight was not made a private copy");
    CHECK(memcmp(g_m.unet.conv_in.w, conv_in_mapped, 4 * 32 * 9 * sizeof(float)) == 0,
          "private copy differs from the checkpoint");
    printf("full fine-tuning: %d tensors, %lld parameters; weights copied out of the mmap: %.1f MiB, "
           "gradients %.1f MiB\n", ts.n, (long long)ts.n_params, (double)wt->numel * 4 / (1 << 20),
           (double)wt->numel * 4 / (1 << 20));

    /* --- forward unchanged, loss == PyTorch, every gradient == PyTorch --- */
    trainset_zero_grads(&ts);
    t0 = ls_time();
    double loss = loss_grad(out);
    double t_full = ls_time() - t0;
    CHECK(memcmp(out, out_frozen, g_c.nout * sizeof(float)) == 0, "output changed with gradient buffers");
    double eo = rel_l2(out, ref_out, g_c.nout);
    CHECK(eo < TOL, "output vs diffusers rel L2 %.3g", eo);
    CHECK(fabs(loss - ref_loss[0]) / ref_loss[0] < 1e-5, "loss %.8f vs PyTorch %.8f", loss, (double)ref_loss[0]);
    printf("output vs diffusers rel L2 %.2g; loss %.6f (PyTorch %.6f)\n", eo, loss, (double)ref_loss[0]);
    compare_all(&tc.ref, &ts);
    int nzero_grad = count_zero_grads(&ts);
    CHECK(nzero_grad == 0, "%d tensors received no gradient at all", nzero_grad);

    /* --- finite differences: scalar parameters of every kind --- */
    {
        static const char *const names[] = {
            "conv_in.weight", "conv_in.bias", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
            "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.1.conv2.weight",
            "down_blocks.1.resnets.0.time_emb_proj.weight", "down_blocks.1.resnets.0.conv_shortcut.bias",
            "down_blocks.0.attentions.0.norm.bias", "down_blocks.0.attentions.0.proj_in.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.norm1.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.norm3.bias",
            "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.bias",
            "mid_block.attentions.0.transformer_blocks.0.ff.net.2.weight", "down_blocks.0.downsamplers.0.conv.weight",
            "up_blocks.0.upsamplers.0.conv.weight", "up_blocks.1.attentions.2.proj_out.bias",
            "conv_norm_out.weight", "conv_out.weight", "conv_out.bias"};
        int nn = (int)(sizeof names / sizeof *names);
        double atol = FLT_EPSILON * loss / (2.0 * FD_STEP);
        FdTally fd = {0};
        uint64_t ctr = 0;
        for (int k = 0; k < nn; k++) {
            const TrainTensor *t = find_tensor(&ts, names[k]);
            CHECK(t != NULL, "no tensor %s", names[k]);
            if (!t) continue;
            size_t best = fd_pick(t->g, t->n, 16, 5, &ctr);
            char what[300];
            snprintf(what, sizeof what, "%s[%zu]", names[k], best);
            fd_check(&fd, what, central_diff(&t->p[best], FD_STEP, loss_eval), t->g[best], FD_RTOL, atol);
        }
        printf("finite differences (step %g): %d parameters, worst %.2f of tolerance (%g·|g| + %.2g): %s\n",
               (double)FD_STEP, fd.n, fd.worst, FD_RTOL, atol, fd.where);
    }

    /* --- accumulation: a second backward without zeroing doubles every gradient --- */
    {
        const TrainTensor *t = find_tensor(&ts, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight");
        float *g1 = fbuf(t->n);
        memcpy(g1, t->g, t->n * sizeof(float));
        loss_grad(NULL);
        double ea = 0;
        for (size_t j = 0; j < t->n; j++) ea = fmax(ea, fabs(t->g[j] - 2.0 * g1[j]) / (fabs(g1[j]) + 1e-12));
        CHECK(ea < 1e-5, "second backward did not accumulate (max rel %.3g)", ea);
        free(g1);
    }

    /* --- one SGD step, then save in both layouts and reload --- */
    float *pristine = fbuf(wt->owned_numel); /* every weight before the step (one arena after alloc) */
    memcpy(pristine, wt->owned, (size_t)wt->owned_numel * sizeof(float));
    trainset_zero_grads(&ts);
    loss_grad(NULL);
    for (int i = 0; i < ts.n; i++)
        for (size_t j = 0; j < ts.t[i].n; j++) ts.t[i].p[j] -= 0.02f * ts.t[i].g[j];
    double loss1 = loss_eval();
    printf("one SGD step (lr 0.02): loss %.6f → %.6f; time of forward_train+backward: frozen %.3f s, full %.3f s\n",
           loss, loss1, t_frozen, t_full);
    CHECK(loss1 < loss, "an SGD step did not lower the loss (%.6f → %.6f)", loss, loss1);
    unet_full_grads_free(&g_m.unet);
    CHECK(g_m.unet.conv_in.dw == NULL && g_m.unet.norm_out.dg == NULL && wt->grads == NULL,
          "unet_full_grads_free left gradient buffers");
    trainset_free(&ts);
    {
        char fdir[200], ffile[200], cmd[1200];
        snprintf(fdir, sizeof fdir, "%s/tuned", tc.tmp);
        snprintf(ffile, sizeof ffile, "%s/tuned.safetensors", tc.tmp);
        CHECK(model_save(&g_m, fdir, ST_F32) == 0, "save folder: %s", ls_last_error());
        CHECK(model_save_single_file(&g_m, ffile, ST_F32) == 0, "save file: %s", ls_last_error());
        Model a, b, orig;
        ModelOpts mo = {.config_dir = tc.mdir}; /* a single file carries no config: the tiny model's */
        CHECK(model_load(&a, fdir, NULL) == 0, "reload folder: %s", ls_last_error());
        CHECK(model_load(&b, ffile, &mo) == 0, "reload file: %s", ls_last_error());
        CHECK(model_load(&orig, tc.mdir, NULL) == 0, "reload source: %s", ls_last_error());
        if (!g_fail) {
            CHECK(unet_diff(&a.unet, &g_m.unet) == 0, "folder: %d U-Net tensors differ from the trained ones",
                  unet_diff(&a.unet, &g_m.unet));
            CHECK(unet_diff(&b.unet, &g_m.unet) == 0, "single file: %d U-Net tensors differ from the trained ones",
                  unet_diff(&b.unet, &g_m.unet));
            int changed = 0;
            for (int i = 0; i < orig.unet.wt.n; i++)
                changed += memcmp(*orig.unet.wt.v[i].ptr, pristine + (*wt->v[i].ptr - wt->owned),
                                  (size_t)wt->v[i].numel * sizeof(float)) != 0;
            CHECK(changed == 0, "the source checkpoint changed (%d tensors)", changed);
            CHECK(unet_diff(&orig.unet, &g_m.unet) > 0, "the trained model equals the source");
            model_free(&a), model_free(&b), model_free(&orig);
        }
        if (exe) {
            snprintf(cmd, sizeof cmd, "'%s' generate 'a fox' --model '%s' --steps 2 --width 64 --height 64 --seed 3 "
                     "-o '%s/a.png' >/dev/null 2>&1 && '%s' generate 'a fox' --model '%s' --config '%s' --steps 2 "
                     "--width 64 --height 64 --seed 3 -o '%s/b.png' >/dev/null 2>&1", exe, fdir, tc.tmp, exe, ffile,
                     tc.mdir, tc.tmp);
            CHECK(system(cmd) == 0, "lorastyle generate --model on the saved models failed: %s", cmd);
            printf("saved the fine-tuned model as a diffusers folder and a single file; both reload exactly and "
                   "generate\n");
        }
    }

    /* --- an F16 checkpoint is converted at load: already private, nothing to copy --- */
    {
        char hdir[200];
        snprintf(hdir, sizeof hdir, "%s/tiny16", tc.tmp);
        Model h;
        CHECK(model_init_preset("tiny", hdir, 1, ST_F16, NULL) == 0 && model_load(&h, hdir, NULL) == 0,
              "f16 model: %s", ls_last_error());
        if (!g_fail) {
            CHECK(wt_make_writable(&h.unet.wt) == 0, "an F16 model's weights were copied again");
            model_free(&h);
        }
    }

    free(pristine), free(out), free(out_frozen), free(ref_out), free(ref_loss);
    unet_case_free(&g_c);
    return test_case_end(&g_m, &tc.ref, tc.tmp);
}
