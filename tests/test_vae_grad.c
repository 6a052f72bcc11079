/* test_vae_grad.c — VAE (AutoencoderKL) training forward and backward: gradients w.r.t. every weight.
 *
 * On the tiny preset (1.0 M parameters, 180 tensors), batch 2, 32×24 images, 4×3 latents:
 *  - vae_encode_train / vae_decode_train give the same outputs as vae_encode / vae_decode (tight) and as
 *    diffusers (tests/gen_vae_grad_fixtures.py → tests/fixtures/vae_grad.safetensors);
 *  - with loss_enc = Σ moments·R1 and loss_dec = Σ decode(z)·R2, every tensor's gradient (encoder +
 *    quant_conv from loss_enc, decoder + post_quant_conv from loss_dec) and dz match PyTorch autograd within
 *    1e-4 relative L2 each (the fixture holds a representative set in full and the first values of every
 *    other tensor); dz also through the frozen decoder (no gradient buffers);
 *  - scalar weights of every kind and a latent entry match central finite differences of the inference
 *    forward;
 *  - vae_full_grads_alloc lists every tensor once under its checkpoint key (weights made writable);
 *    gradients accumulate; an SGD step lowers both losses; vae_full_grads_free leaves a working model;
 *  - a variant without mid attention, quant_conv and post_quant_conv (random weights): training forward
 *    == inference forward, finite differences == backward.
 *
 * Usage: test_vae_grad FIXTURE_DIR */
#include <float.h>

#include "grad_check.h" // defines: dot, find_tensor, central_diff, fd_pick, fd_check, GradTally
#include "model.h"
#include "testutil.h"
#include "trainset.h"
#include "vae_bwd.h"

#define TOL 1e-4      /* relative L2 against PyTorch */
#define FD_STEP 1e-2f /* central-difference step on a weight */
#define FD_RTOL 2e-2  /* |fd − g| ≤ FD_RTOL·|g| + atol, atol = the float32 noise floor of the loss over the step */

static Model g_m;
static Vae *g_v; /* the VAE under test: the tiny model's, then a variant */
static float *g_img, *g_r1, *g_z, *g_r2; /* the fixture's inputs */
static int g_B, g_H, g_W, g_h, g_w;
static size_t g_nimg, g_nmom, g_nz;

/* loss_enc / loss_dec through the inference forward (what finite differences perturb) */
static double loss_enc(void) {
    float *m = fbuf(g_nmom);
    int h, w;
    vae_encode(g_v, m, g_img, g_B, g_H, g_W, &h, &w);
    double l = dot(m, g_r1, g_nmom);
    free(m);
    return l;
}

static double loss_dec(void) {
    float *d = fbuf(g_nimg);
    vae_decode(g_v, d, g_z, g_B, g_h, g_w);
    double l = dot(d, g_r2, g_nimg);
    free(d);
    return l;
}

/* Both training forwards and backwards (parameter gradients ACCUMULATE); outputs and dz copied out when
 * given. Returns loss_enc + loss_dec. */
static double loss_grad(float *mom, float *dec, float *dz) {
    VaeActs acts = {0};
    float *m = fbuf(g_nmom), *d = fbuf(g_nimg);
    vae_encode_train(g_v, &acts, m, g_img, g_B, g_H, g_W);
    vae_encode_backward(g_v, &acts, g_r1);
    vae_decode_train(g_v, &acts, d, g_z, g_B, g_h, g_w);
    vae_decode_backward(g_v, &acts, dz, g_r2);
    double l = dot(m, g_r1, g_nmom) + dot(d, g_r2, g_nimg);
    if (mom) memcpy(mom, m, g_nmom * sizeof(float));
    if (dec) memcpy(dec, d, g_nimg * sizeof(float));
    vae_acts_free(&acts);
    free(m);
    free(d);
    return l;
}

static int is_enc(const char *name) { return !strncmp(name, "encoder.", 8) || !strncmp(name, "quant_conv.", 11); }

/* The group a tensor's error is reported under. */
enum { G_CONV, G_NORM, G_ATTN, G_QUANT, NG };
static const char *const group_names[NG] = {"conv", "norm", "attention", "(post_)quant_conv"};
static int group_of(const char *name) {
    if (strstr(name, "quant_conv")) return G_QUANT;
    if (strstr(name, "attentions")) return G_ATTN;
    if (strstr(name, "norm")) return G_NORM;
    return G_CONV;
}

/* Every tensor against the fixture's "enc.<name>" / "dec.<name>" (its leading values): ‖g − r‖ ≤ TOL·‖r‖ +
 * 1e-7·‖r_all‖ (r_all: every reference gradient of the same loss). The floor lets the 11 tensors whose
 * true gradient is 0 pass on float noise: the tiny VAE's 32-channel resnets have 32 channels in 32 groups,
 * so norm2 removes any per-channel constant and their conv1.bias cannot change the output (likewise the
 * biases that only shift the decoder's last 32-channel stream before conv_norm_out), and softmax ignores
 * the key bias (to_k.bias) of the mid attention. */
static void compare_all(const StFile *ref, const TrainSet *ts) {
    GradTally tally[2] = {{0}}; /* encoder, decoder */
    double worst[2][NG] = {{0}};
    char worst_key[2][NG][300] = {{""}};
    int nfull = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < ts->n; i++) {
            const TrainTensor *t = &ts->t[i];
            int e = !is_enc(t->name); /* 0 encoder, 1 decoder */
            char key[300];
            snprintf(key, sizeof key, "%s.%s", e ? "dec" : "enc", t->name);
            size_t n;
            double d2, r2;
            fixture_grad_diff(ref, key, t->g, t->n, &d2, &r2, &n);
            if (pass == 0) {
                tally[e].all2 += r2;
                continue;
            }
            nfull += n == t->n;
            CHECK(n <= t->n, "%s: fixture holds %zu values, the tensor %zu", key, n, t->n);
            double rel = grad_tally_check(&tally[e], key, d2, r2, TOL, "PyTorch");
            int g = group_of(t->name);
            if (rel > worst[e][g]) worst[e][g] = rel, snprintf(worst_key[e][g], 300, "%s", t->name);
        }
    }
    printf("gradients vs PyTorch autograd: %d tensors (%d in full, the rest their first values), %d with a zero "
           "true gradient (|g| ~ float noise, both sides)\n", tally[0].n + tally[1].n, nfull,
           tally[0].nzero + tally[1].nzero);
    for (int e = 0; e < 2; e++) {
        double overall = grad_tally_overall(&tally[e]);
        CHECK(overall < TOL, "%s: overall rel L2 %.3g vs PyTorch", e ? "decoder" : "encoder", overall);
        printf("  %s (loss_%s): overall rel L2 %.2g; worst per group:", e ? "decoder" : "encoder", e ? "dec" : "enc",
               overall);
        for (int g = 0; g < NG; g++)
            if (worst_key[e][g][0]) printf(" %s %.2g (%s);", group_names[g], worst[e][g], worst_key[e][g]);
        printf("\n");
    }
}

static void fd_checks(const TrainSet *ts, const float *dz, double sabs_enc, double sabs_dec) {
    static const char *const names[] = {
        "encoder.conv_in.weight", "encoder.conv_in.bias", "encoder.down_blocks.0.resnets.0.norm1.weight",
        "encoder.down_blocks.0.resnets.0.conv1.weight", "encoder.down_blocks.1.downsamplers.0.conv.weight",
        "encoder.down_blocks.2.resnets.0.conv_shortcut.weight", "encoder.mid_block.attentions.0.group_norm.bias",
        "encoder.mid_block.attentions.0.to_k.weight", "encoder.mid_block.attentions.0.to_out.0.bias",
        "encoder.mid_block.resnets.1.norm2.weight", "encoder.conv_norm_out.weight", "encoder.conv_out.weight",
        "quant_conv.weight", "post_quant_conv.bias", "decoder.conv_in.weight",
        "decoder.mid_block.attentions.0.to_q.weight", "decoder.mid_block.attentions.0.to_v.bias",
        "decoder.mid_block.resnets.0.conv2.weight", "decoder.up_blocks.0.resnets.1.norm1.bias",
        "decoder.up_blocks.0.upsamplers.0.conv.weight", "decoder.up_blocks.2.resnets.0.conv_shortcut.bias",
        "decoder.up_blocks.3.resnets.1.conv1.weight", "decoder.conv_norm_out.bias", "decoder.conv_out.weight"};
    int nn = (int)(sizeof names / sizeof *names);
    FdTally fd = {0};
    uint64_t ctr = 0;
    for (int k = 0; k <= nn; k++) {
        int enc = k < nn && is_enc(names[k]);
        double atol = FLT_EPSILON * (enc ? sabs_enc : sabs_dec) / (2.0 * FD_STEP);
        float *p;
        double g;
        char what[300];
        if (k == nn) { /* a latent entry: dz */
            size_t best = 0;
            for (size_t i = 1; i < g_nz; i++)
                if (fabsf(dz[i]) > fabsf(dz[best])) best = i;
            p = &g_z[best], g = dz[best];
            snprintf(what, sizeof what, "z[%zu]", best);
        } else {
            const TrainTensor *t = find_tensor(ts, names[k]);
            CHECK(t != NULL, "no tensor %s", names[k]);
            if (!t) continue;
            size_t best = fd_pick(t->g, t->n, 16, 7, &ctr);
            p = &t->p[best], g = t->g[best];
            snprintf(what, sizeof what, "%s[%zu]", names[k], best);
        }
        fd_check(&fd, what, central_diff(p, FD_STEP, enc ? loss_enc : loss_dec), g, FD_RTOL, atol);
    }
    printf("finite differences (step %g): %d parameters + dz, worst %.2f of tolerance (%g·|g| + atol): %s\n",
           (double)FD_STEP, fd.n - 1, fd.worst, FD_RTOL, fd.where);
}

int main(int argc, char **argv) {
    TestCase tc;
    if (test_case_begin(&tc, argc, argv, "vaegrad", &g_m, "vae_grad.safetensors") < 0) return test_summary();
    const StTensor *im, *zm;
    g_img = fixture_get(&tc.ref, "img", &g_nimg, &im);
    g_z = fixture_get(&tc.ref, "z", &g_nz, &zm);
    g_r1 = fixture_get(&tc.ref, "R1", &g_nmom, NULL);
    g_r2 = fixture_get(&tc.ref, "R2", NULL, NULL);
    float *ref_mom = fixture_get(&tc.ref, "moments", NULL, NULL), *ref_dec = fixture_get(&tc.ref, "dec", NULL, NULL);
    float *ref_dz = fixture_get(&tc.ref, "dz", NULL, NULL);
    g_B = (int)im->shape[0], g_H = (int)im->shape[2], g_W = (int)im->shape[3];
    g_h = (int)zm->shape[2], g_w = (int)zm->shape[3];
    Vae *v = g_v = &g_m.vae;
    WeightTable *wt = &v->wt;
    int f = vae_scale_factor(&v->cfg);
    CHECK(g_h * f == g_H && g_w * f == g_W && g_nmom == (size_t)g_B * 2 * v->cfg.latent_channels * g_h * g_w,
          "fixture shapes do not fit the tiny VAE (f = %d)", f);
    if (g_fail) return test_summary();

    /* --- inference outputs (the reference for the training forwards) --- */
    float *mom_inf = fbuf(g_nmom), *dec_inf = fbuf(g_nimg), *mom = fbuf(g_nmom), *dec = fbuf(g_nimg);
    float *dz = fbuf(g_nz), *dz_frozen = fbuf(g_nz);
    int h, w;
    vae_encode(v, mom_inf, g_img, g_B, g_H, g_W, &h, &w);
    CHECK(h == g_h && w == g_w, "latent %dx%d, expected %dx%d", h, w, g_h, g_w);
    vae_decode(v, dec_inf, g_z, g_B, g_h, g_w);

    /* --- frozen (no gradient buffers): outputs equal the inference forward; dz flows through the decoder --- */
    double t0 = ls_time();
    loss_grad(mom, dec, dz_frozen);
    double t_frozen = ls_time() - t0;
    double em = rel_l2(mom, mom_inf, g_nmom), ed = rel_l2(dec, dec_inf, g_nimg);
    CHECK(em < 1e-6 && ed < 1e-6, "training forward != inference forward: moments rel L2 %.3g, decoded %.3g", em, ed);
    printf("training forward vs inference forward: moments rel L2 %.2g (max |Δ| %.2g), decoded %.2g (max |Δ| %.2g)\n",
           em, max_abs_diff(mom, mom_inf, g_nmom), ed, max_abs_diff(dec, dec_inf, g_nimg));
    em = rel_l2(mom_inf, ref_mom, g_nmom), ed = rel_l2(dec_inf, ref_dec, g_nimg);
    CHECK(em < TOL && ed < TOL, "forward vs diffusers: moments rel L2 %.3g, decoded %.3g", em, ed);
    printf("forward vs diffusers: moments rel L2 %.2g, decoded %.2g\n", em, ed);
    double edz = rel_l2(dz_frozen, ref_dz, g_nz);
    CHECK(edz < TOL, "dz through the frozen decoder vs PyTorch rel L2 %.3g", edz);

    /* --- allocate: every tensor listed once under its checkpoint key, weights made writable --- */
    const float *conv_in_mapped = v->enc.conv_in.w;
    TrainSet ts = {0};
    CHECK(vae_full_grads_alloc(v, &ts) == 0, "alloc: %s", ls_last_error());
    CHECK(ts.n == wt->n && ts.n == 180, "trainset holds %d tensors, the VAE %d (tiny: 180)", ts.n, wt->n);
    CHECK(ts.n_params == wt->numel, "trainset holds %lld values, the VAE %lld", (long long)ts.n_params,
          (long long)wt->numel);
    for (int i = 0; i < ts.n && i < wt->n; i++)
        CHECK(!strcmp(ts.t[i].name, wt->v[i].name) && ts.t[i].p == *wt->v[i].ptr && ts.t[i].g != NULL,
              "trainset entry %d (%s) is not the table's %s", i, ts.t[i].name, wt->v[i].name);
    CHECK(find_tensor(&ts, "encoder.down_blocks.0.resnets.0.conv1.weight") && find_tensor(&ts, "quant_conv.bias") &&
          find_tensor(&ts, "decoder.mid_block.attentions.0.to_out.0.weight"),
          "checkpoint key names missing from the trainset");
    CHECK(v->enc.conv_in.w != conv_in_mapped && memcmp(v->enc.conv_in.w, conv_in_mapped, 32 * 3 * 9 * sizeof(float)) == 0,
          "encoder.conv_in.weight was not made an equal private copy");
    printf("full training: %d tensors, %lld parameters (%.1f MiB of gradients)\n", ts.n, (long long)ts.n_params,
           (double)wt->numel * 4 / (1 << 20));

    /* --- encoder backward alone touches only encoder tensors --- */
    {
        trainset_zero_grads(&ts);
        VaeActs acts = {0};
        vae_encode_train(v, &acts, mom, g_img, g_B, g_H, g_W);
        vae_encode_backward(v, &acts, g_r1);
        int wrong = 0;
        for (int i = 0; i < ts.n; i++) {
            double s = 0;
            for (size_t j = 0; j < ts.t[i].n; j++) s += fabsf(ts.t[i].g[j]);
            wrong += is_enc(ts.t[i].name) ? 0 : s != 0;
        }
        CHECK(wrong == 0, "the encoder backward wrote %d decoder gradients", wrong);
        vae_acts_free(&acts);
    }

    /* --- outputs unchanged, every gradient and dz == PyTorch --- */
    trainset_zero_grads(&ts);
    t0 = ls_time();
    double loss = loss_grad(mom, dec, dz);
    double t_full = ls_time() - t0;
    CHECK(rel_l2(mom, mom_inf, g_nmom) < 1e-6 && rel_l2(dec, dec_inf, g_nimg) < 1e-6,
          "outputs changed with gradient buffers");
    edz = rel_l2(dz, ref_dz, g_nz);
    CHECK(edz < TOL, "dz vs PyTorch rel L2 %.3g", edz);
    CHECK(memcmp(dz, dz_frozen, g_nz * sizeof(float)) == 0, "dz differs with and without gradient buffers");
    printf("dz vs PyTorch rel L2 %.2g (identical frozen and with gradient buffers)\n", edz);
    compare_all(&tc.ref, &ts);
    int nzero_grad = count_zero_grads(&ts);
    CHECK(nzero_grad == 0, "%d tensors received no gradient at all", nzero_grad);

    /* --- finite differences on the inference forward --- */
    {
        double se = 0, sd = 0;
        for (size_t i = 0; i < g_nmom; i++) se += fabs((double)mom[i] * g_r1[i]);
        for (size_t i = 0; i < g_nimg; i++) sd += fabs((double)dec[i] * g_r2[i]);
        fd_checks(&ts, dz, se, sd);
    }

    /* --- accumulation: a second backward without zeroing doubles every gradient --- */
    {
        const TrainTensor *t1 = find_tensor(&ts, "encoder.mid_block.attentions.0.to_v.weight");
        const TrainTensor *t2 = find_tensor(&ts, "decoder.up_blocks.1.upsamplers.0.conv.weight");
        float *g1 = fbuf(t1->n), *g2 = fbuf(t2->n);
        memcpy(g1, t1->g, t1->n * sizeof(float));
        memcpy(g2, t2->g, t2->n * sizeof(float));
        loss_grad(NULL, NULL, NULL);
        double ea = 0;
        for (size_t j = 0; j < t1->n; j++) ea = fmax(ea, fabs(t1->g[j] - 2.0 * g1[j]) / (fabs(g1[j]) + 1e-12));
        for (size_t j = 0; j < t2->n; j++) ea = fmax(ea, fabs(t2->g[j] - 2.0 * g2[j]) / (fabs(g2[j]) + 1e-12));
        CHECK(ea < 1e-5, "second backward did not accumulate (max rel %.3g)", ea);
        free(g1), free(g2);
    }

    /* --- one SGD step lowers both (linear) losses; free leaves a working model with the trained weights --- */
    trainset_zero_grads(&ts);
    loss_grad(NULL, NULL, NULL);
    double le0 = loss_enc(), ld0 = loss_dec();
    for (int i = 0; i < ts.n; i++)
        for (size_t j = 0; j < ts.t[i].n; j++) ts.t[i].p[j] -= 1e-4f * ts.t[i].g[j];
    double le1 = loss_enc(), ld1 = loss_dec();
    CHECK(le1 < le0 && ld1 < ld0, "an SGD step did not lower the losses: enc %.6f → %.6f, dec %.6f → %.6f", le0, le1,
          ld0, ld1);
    printf("one SGD step (lr 1e-4): loss_enc %.5f → %.5f, loss_dec %.5f → %.5f; forward_train+backward of both "
           "halves: frozen %.3f s, full %.3f s (loss %.4f)\n", le0, le1, ld0, ld1, t_frozen, t_full, loss);
    vae_full_grads_free(v);
    trainset_free(&ts);
    CHECK(v->enc.conv_in.dw == NULL && v->dec.norm_out.dg == NULL && v->dec.mid_attn.attn.to_q.dw == NULL &&
          wt->grads == NULL, "vae_full_grads_free left gradient buffers");
    {
        double le2 = loss_enc(), ld2 = loss_dec();
        CHECK(le2 == le1 && ld2 == ld1, "the model changed when its gradients were freed");
        VaeActs acts = {0}; /* training forward + frozen backward still run (dz only) */
        vae_decode_train(v, &acts, dec, g_z, g_B, g_h, g_w);
        vae_decode_backward(v, &acts, dz, g_r2);
        double s = 0;
        for (size_t i = 0; i < g_nz; i++) s += fabsf(dz[i]);
        CHECK(s > 0 && isfinite(s) && fabs(dot(dec, g_r2, g_nimg) - ld2) <= 1e-5 * fabs(ld2) + 1e-6,
              "frozen decode after free: loss %.6f vs %.6f, |dz| %.3g", dot(dec, g_r2, g_nimg), ld2, s);
        vae_acts_free(&acts);
    }

    /* --- a variant without mid attention, quant_conv and post_quant_conv (random weights): the training
     * forwards equal the inference ones, and finite differences agree with the backward --- */
    {
        VaeConfig c;
        vae_config_tiny(&c);
        c.mid_attention = c.use_quant_conv = c.use_post_quant_conv = 0;
        Vae vb;
        vae_build(&vb, &c);
        wt_init_random(&vb.wt, 11);
        g_v = &vb;
        TrainSet tb = {0};
        CHECK(vae_full_grads_alloc(&vb, &tb) == 0 && tb.n == 180 - 24, "variant alloc: %d tensors (%s)", tb.n,
              ls_last_error());
        vae_encode(&vb, mom_inf, g_img, g_B, g_H, g_W, &h, &w);
        vae_decode(&vb, dec_inf, g_z, g_B, g_h, g_w);
        trainset_zero_grads(&tb);
        loss_grad(mom, dec, dz);
        CHECK(rel_l2(mom, mom_inf, g_nmom) < 1e-6 && rel_l2(dec, dec_inf, g_nimg) < 1e-6,
              "variant: training forward != inference forward (rel L2 %.3g, %.3g)", rel_l2(mom, mom_inf, g_nmom),
              rel_l2(dec, dec_inf, g_nimg));
        static const char *const names[] = {"encoder.conv_in.weight", "encoder.mid_block.resnets.1.conv1.weight",
                                            "encoder.conv_out.bias", "decoder.conv_in.weight",
                                            "decoder.mid_block.resnets.0.norm1.weight", "decoder.conv_out.weight"};
        double se = 0, sd = 0, worst = 0;
        for (size_t i = 0; i < g_nmom; i++) se += fabs((double)mom[i] * g_r1[i]);
        for (size_t i = 0; i < g_nimg; i++) sd += fabs((double)dec[i] * g_r2[i]);
        for (int k = 0; k < 7; k++) {
            float *p;
            double g;
            int enc = k < 6 && is_enc(names[k]);
            if (k == 6) {
                size_t best = 0;
                for (size_t i = 1; i < g_nz; i++)
                    if (fabsf(dz[i]) > fabsf(dz[best])) best = i;
                p = &g_z[best], g = dz[best];
            } else {
                const TrainTensor *t = find_tensor(&tb, names[k]);
                size_t best = 0;
                for (size_t i = 1; i < t->n && i < 4096; i++)
                    if (fabsf(t->g[i]) > fabsf(t->g[best])) best = i;
                p = &t->p[best], g = t->g[best];
            }
            double atol = FLT_EPSILON * (enc ? se : sd) / (2.0 * FD_STEP);
            double fv = central_diff(p, FD_STEP, enc ? loss_enc : loss_dec), r = fabs(fv - g) / (FD_RTOL * fabs(g) + atol);
            CHECK(r <= 1.0, "variant %s: finite difference %.6g vs analytic %.6g", k < 6 ? names[k] : "dz", fv, g);
            worst = fmax(worst, r);
        }
        printf("variant without mid attention / quant convs: training forward == inference; finite differences "
               "(6 weights + dz) worst %.2f of tolerance\n", worst);
        vae_full_grads_free(&vb);
        trainset_free(&tb);
        vae_free(&vb);
        g_v = v;
    }

    free(mom_inf), free(dec_inf), free(mom), free(dec), free(dz), free(dz_frozen);
    free(ref_mom), free(ref_dec), free(ref_dz);
    free(g_img), free(g_z), free(g_r1), free(g_r2);
    return test_case_end(&g_m, &tc.ref, tc.tmp);
}
