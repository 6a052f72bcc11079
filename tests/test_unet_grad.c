/* test_unet_grad.c — U-Net backward: LoRA gradients of the MSE loss.
 *
 * On the tiny preset with the kohya LoCon adapter tests/fixtures/lora_kohya.safetensors (117 U-Net modules:
 * attention, feed-forward, 1×1 proj and shortcut convs, 3×3 resnet and sampler convs, time_emb_proj) at
 * strength 0.7 and a batch of 2 (one timestep each, 16×12 latent):
 *  - unet_forward_train gives unet_forward's output, and the loss diffusers gives;
 *  - every module's down/up gradient matches PyTorch autograd through diffusers + PEFT
 *    (tests/gen_unet_grad_fixtures.py → tests/fixtures/unet_grad.safetensors) within 1e-4 relative L2,
 *    per module and overall;
 *  - ~40 parameters across module types match central finite differences of the loss (double sum);
 *  - the context gradient (for text-encoder training later) matches finite differences;
 *  - a second adapter on conv_in, conv_out and the time-embedding MLP (modules the fixture adapter leaves
 *    out) matches finite differences while the fixture adapter stays live but frozen (no gradient buffers);
 *  - kohya's initialisation (every up = 0): down gradients exactly 0, up gradients non-zero and equal to
 *    diffusers' and to finite differences; at strength 0 every gradient is exactly 0 (the adapter is off);
 *  - a second backward without zeroing doubles the gradients (they accumulate).
 * Prints the saved-activation size, peak RSS and the time of one forward + backward (informational).
 *
 * Usage: test_unet_grad FIXTURE_DIR [LORASTYLE] */
#include <float.h>
#include <unistd.h>

#include "grad_check.h" // defines: central_diff, fd_pick, fd_check, GradTally
#include "lora.h"
#include "model.h"
#include "rng.h"
#include "testutil.h"
#include "unet_case.h"
#include "unet_bwd.h"

#define TOL 1e-4      /* relative L2 against PyTorch */
#define FD_STEP 1e-2f /* central-difference step on a parameter (LoRA values are ~0.1-0.5) */
#define FD_RTOL 2e-2  /* |fd − g| ≤ FD_RTOL·|g| + atol, atol = the FD noise floor: one float32 rounding of
                       * the loss over the step, FLT_EPSILON·loss / (2·FD_STEP) (~7e-6 here) */

static Model g_m;
static Lora g_a;     /* the kohya fixture adapter */
static Lora *g_extra; /* a second adapter (conv_in, conv_out, time-embedding MLP) when attached */
static UNetCase g_c; /* the fixture's inputs and target */

/* loss of the inference forward (what finite differences perturb) */
static double loss_eval(void) { return unet_case_loss(&g_m.unet, &g_c, NULL); }

/* Zero the gradients, forward_train + backward; returns the loss. out_copy (optional) gets the output,
 * dctx (optional) the context gradient. */
static double loss_grad(float *out_copy, float *dctx) {
    lora_grads_zero(&g_a);
    if (g_extra) lora_grads_zero(g_extra);
    return unet_case_loss_grad(&g_m.unet, &g_c, out_copy, dctx);
}

/* module type, for spreading the finite-difference checks */
static const char *kind_of(const LoraModule *m) {
    static const char *kinds[] = {"attn1", "attn2", "ff_net", "proj_in", "proj_out", "time_emb_proj",
                                  "conv_shortcut", "conv1", "conv2", "samplers", "time_embedding",
                                  "conv_in", "conv_out"};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strstr(m->module, kinds[i])) return kinds[i];
    return "other";
}


static double module_sumsq(const LoraModule *m) {
    double s = 0;
    for (size_t i = 0; i < numel_down(m); i++) s += (double)m->ddown[i] * m->ddown[i];
    for (size_t i = 0; i < numel_up(m); i++) s += (double)m->dup[i] * m->dup[i];
    return s;
}

/* n parameters spread over the module kinds (round robin; a random module of the kind, down and up
 * alternating), each the largest-|g| of 8 random entries, so the comparison is not dominated by float
 * noise on near-zero gradients. only_up: up matrices only. */
static void fd_sweep(Lora *a, FdTally *st, int n, int only_up, uint64_t seed, float h, double rtol,
                     double atol) {
    const char *kinds[32];
    int nk = 0;
    for (int i = 0; i < a->n_mods; i++) {
        if (a->mods[i].component != LORA_UNET) continue;
        const char *k = kind_of(&a->mods[i]);
        int seen = 0;
        for (int j = 0; j < nk; j++) seen |= kinds[j] == k;
        if (!seen && nk < 32) kinds[nk++] = k;
    }
    double total = lora_grads_sumsq(a); /* modules with a zero true gradient are not probed */
    uint64_t ctr = 0;
    for (int it = 0; it < n; it++) {
        const char *k = kinds[it % nk];
        LoraModule *m;
        do m = &a->mods[rng_u32(seed, ctr++) % (uint32_t)a->n_mods];
        while (m->component != LORA_UNET || kind_of(m) != k || module_sumsq(m) < 1e-12 * total);
        int up = only_up || (it % nk + it / nk) % 2; /* each kind alternates down/up from round to round */
        float *w = up ? m->up : m->down, *g = up ? m->dup : m->ddown;
        size_t best = fd_pick(g, up ? numel_up(m) : numel_down(m), 8, seed, &ctr);
        char what[256];
        snprintf(what, sizeof what, "%s.%s[%zu] (%s)", m->module, up ? "up" : "down", best, k);
        fd_check(st, what, central_diff(&w[best], h, loss_eval), g[best], rtol, atol);
    }
}

/* A kohya adapter (rank 2, alpha 1) on the modules the fixture adapter leaves out: conv_in and conv_out
 * (3×3 LoCon) and time_embedding.linear_1/linear_2. */
static void write_extra_adapter(const char *path) {
    static const struct {
        const char *name;
        int in, out, k;
    } mods[4] = {{"conv_in", 4, 32, 3}, {"conv_out", 32, 4, 3}, {"time_embedding_linear_1", 32, 128, 1},
                 {"time_embedding_linear_2", 128, 128, 1}};
    StWriter w;
    st_writer_init(&w);
    float *bufs[8];
    static float alpha = 1.0f;
    char names[12][128];
    for (int i = 0; i < 4; i++) {
        int r = 2, k = mods[i].k;
        size_t nd = (size_t)r * mods[i].in * k * k, nu = (size_t)mods[i].out * r;
        bufs[2 * i] = fbuf(nd), bufs[2 * i + 1] = fbuf(nu);
        rng_normal(bufs[2 * i], nd, 100 + i, 0);
        rng_normal(bufs[2 * i + 1], nu, 200 + i, 0);
        for (size_t j = 0; j < nd; j++) bufs[2 * i][j] *= 0.3f;
        for (size_t j = 0; j < nu; j++) bufs[2 * i + 1][j] *= 0.3f;
        int64_t sd[4] = {r, mods[i].in, k, k}, su[4] = {mods[i].out, r, 1, 1}, sa[1] = {1};
        snprintf(names[3 * i], 128, "lora_unet_%s.lora_down.weight", mods[i].name);
        snprintf(names[3 * i + 1], 128, "lora_unet_%s.lora_up.weight", mods[i].name);
        snprintf(names[3 * i + 2], 128, "lora_unet_%s.alpha", mods[i].name);
        st_writer_add(&w, names[3 * i], ST_F32, k > 1 ? 4 : 2, sd, bufs[2 * i]);
        st_writer_add(&w, names[3 * i + 1], ST_F32, k > 1 ? 4 : 2, su, bufs[2 * i + 1]);
        st_writer_add(&w, names[3 * i + 2], ST_F32, 0, sa, &alpha);
    }
    test_writer_save(&w, path);
    for (int i = 0; i < 8; i++) free(bufs[i]);
}

/* Compare every U-Net module's gradients (parts: 1 = down, 2 = up, 3 = both) with the fixture's, keys
 * "<prefix>lora_unet_<module>.lora_{down,up}.weight". Per module and part: ‖g − r‖ ≤ TOL·‖r‖ + a floor of
 * 1e-7·‖r_all‖, so that modules whose true gradient is 0 pass on float noise: in the tiny preset the level-0
 * resnets have 32 channels in 32 groups, and norm2 removes any per-channel constant, so their
 * time_emb_proj cannot change the output (both sides give ~1e-10 there). Those are counted apart. */
static void compare_grads(const StFile *ref, const char *prefix, int parts, const char *label) {
    const char *tags[2] = {"lora_down", "lora_up"};
    GradTally tally = {0};
    int nmods = 0;
    for (int pass = 0; pass < 2; pass++) { /* pass 0: ‖r_all‖; pass 1: compare */
        for (int i = 0; i < g_a.n_mods; i++) {
            const LoraModule *m = &g_a.mods[i];
            if (m->component != LORA_UNET) continue;
            nmods += pass;
            for (int p = 0; p < 2; p++) {
                if (!(parts & (1 << p))) continue;
                char key[600];
                snprintf(key, sizeof key, "%slora_unet_%s.%s.weight", prefix, m->module, tags[p]);
                size_t n;
                double d2, r2;
                fixture_grad_diff(ref, key, p ? m->dup : m->ddown, p ? numel_up(m) : numel_down(m), &d2, &r2, &n);
                if (pass == 0) {
                    tally.all2 += r2;
                    continue;
                }
                CHECK(n == (p ? numel_up(m) : numel_down(m)), "%s: %zu values in the fixture", key, n);
                grad_tally_check(&tally, key, d2, r2, TOL, "diffusers");
            }
        }
    }
    double overall = grad_tally_overall(&tally);
    CHECK(overall < TOL, "%s: overall rel L2 %.3g", label, overall);
    CHECK(nmods == 117, "expected 117 U-Net modules, got %d", nmods);
    printf("%s: %d modules, overall rel L2 %.2g, worst %.2g (%s); %d matrices with a zero true gradient "
           "(|g| ~ float noise, both sides)\n", label, nmods, overall, tally.worst, tally.worst_key, tally.nzero);
}

int main(int argc, char **argv) {
    TestCase tc;
    if (test_case_begin(&tc, argc, argv, "ugrad", &g_m, "unet_grad.safetensors") < 0) return test_summary();
    char fk[512];
    snprintf(fk, sizeof fk, "%s/lora_kohya.safetensors", tc.fixdir);
    unet_case_load(&g_c, &tc.ref);
    float *ref_out = fixture_get(&tc.ref, "out", NULL, NULL);
    float *ref_loss = fixture_get(&tc.ref, "loss", NULL, NULL);
    float *ref_loss0 = fixture_get(&tc.ref, "zero_up.loss", NULL, NULL);
    float s = (float)atof(st_meta_get(&tc.ref, "strength"));

    CHECK(lora_load(&g_a, fk) == 0, "load %s: %s", fk, ls_last_error());
    CHECK(lora_attach(&g_a, &g_m, 0) == 0, "attach: %s", ls_last_error());
    CHECK(lora_grads_alloc(&g_a) == 0, "grads: %s", ls_last_error());
    if (g_fail) return test_summary();
    lora_set_strength(&g_a, s, s);
    printf("%s: %d U-Net modules (%d conv), strength %.2f; batch %d, latent %dx%d, %d context tokens\n",
           g_a.name, g_a.n_unet, g_a.n_conv, (double)s, g_c.B, g_c.H, g_c.W, g_c.Tc);

    /* --- training forward == inference forward == diffusers; loss; timing and memory --- */
    float *out = fbuf(g_c.nout), *out_inf = fbuf(g_c.nout);
    size_t nctx = (size_t)g_c.B * g_c.Tc * g_c.Cc;
    float *dctx = fbuf(nctx);
    /* timings: best of 3 (informational; the machine may be busy) */
    double t_f = 1e30, t_fb = 1e30, loss = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = ls_time();
        unet_forward(&g_m.unet, out_inf, g_c.x, g_c.t, g_c.ctx, g_c.B, g_c.H, g_c.W, g_c.Tc);
        double t1 = ls_time();
        loss = loss_grad(out, dctx);
        t_f = fmin(t_f, t1 - t0);
        t_fb = fmin(t_fb, ls_time() - t1);
    }
    double e = rel_l2(out, out_inf, g_c.nout);
    CHECK(e < 1e-6, "forward_train vs forward rel L2 %.3g", e);
    double eo = rel_l2(out, ref_out, g_c.nout);
    CHECK(eo < TOL, "output vs diffusers rel L2 %.3g", eo);
    double el = fabs(loss - ref_loss[0]) / ref_loss[0];
    CHECK(el < 1e-5, "loss %.8f vs diffusers %.8f", loss, (double)ref_loss[0]);
    printf("forward_train vs forward rel L2 %.2g, vs diffusers %.2g; loss %.6f (diffusers %.6f)\n", e, eo,
           loss, (double)ref_loss[0]);
    {
        UNetActs acts = {0};
        unet_forward_train(&g_m.unet, &acts, out, g_c.x, g_c.t, g_c.ctx, g_c.B, g_c.H, g_c.W, g_c.Tc);
        printf("saved activations: %.2f MiB\n", (double)acts.bytes / (1 << 20));
        unet_acts_free(&acts);
    }

    /* --- every module's gradients against PyTorch autograd (diffusers + PEFT) --- */
    compare_grads(&tc.ref, "", 3, "gradients vs diffusers+PEFT");

    /* --- finite differences: ~40 LoRA parameters over module kinds, and a few context values --- */
    FdTally st = {0};
    double fd_atol = FLT_EPSILON * loss / (2.0 * FD_STEP);
    fd_sweep(&g_a, &st, 40, 0, 7, FD_STEP, FD_RTOL, fd_atol);
    printf("finite differences (step %g): %d LoRA parameters, worst %.2f of tolerance (%g·|g| + %.2g): %s\n",
           (double)FD_STEP, st.n, st.worst, FD_RTOL, fd_atol, st.where);
    {
        FdTally sc = {0};
        uint32_t ctr = 0;
        for (int c = 0; c < 6; c++) {
            size_t best = rng_u32(11, ctr++) % nctx;
            for (int k = 0; k < 16; k++) {
                size_t i = rng_u32(11, ctr++) % nctx;
                if (fabsf(dctx[i]) >= fabsf(dctx[best])) best = i;
            }
            char what[64];
            snprintf(what, sizeof what, "ctx[%zu]", best);
            fd_check(&sc, what, central_diff(&g_c.ctx[best], FD_STEP, loss_eval), dctx[best], FD_RTOL, fd_atol);
        }
        printf("finite differences: %d context values, worst %.2f of tolerance: %s\n", sc.n, sc.worst, sc.where);
    }

    /* --- accumulation: a second backward without zeroing doubles every gradient --- */
    {
        size_t nd = numel_down(&g_a.mods[0]);
        float *g1 = fbuf(nd);
        memcpy(g1, g_a.mods[0].ddown, nd * sizeof(float));
        UNetActs acts = {0};
        float *dout = fbuf(g_c.nout);
        unet_forward_train(&g_m.unet, &acts, out, g_c.x, g_c.t, g_c.ctx, g_c.B, g_c.H, g_c.W, g_c.Tc);
        unet_mse_loss(dout, out, g_c.target, g_c.nout);
        unet_backward(&g_m.unet, &acts, NULL, dout);
        unet_acts_free(&acts);
        double ea = 0;
        for (size_t j = 0; j < nd; j++) ea = fmax(ea, fabs(g_a.mods[0].ddown[j] - 2.0 * g1[j]) / (fabs(g1[j]) + 1e-12));
        CHECK(ea < 1e-5, "second backward did not accumulate (max rel %.3g)", ea);
        free(g1);
        free(dout);
    }

    /* --- LoRA on conv_in, conv_out and the time-embedding MLP (not in the fixture adapter), beside the
     *     fixture adapter kept live but frozen (no gradient buffers: it must still shape dx) --- */
    {
        char path[600];
        snprintf(path, sizeof path, "%s/extra.safetensors", tc.tmp);
        write_extra_adapter(path);
        Lora x;
        CHECK(lora_load(&x, path) == 0 && lora_attach(&x, &g_m, 0) == 0 && lora_grads_alloc(&x) == 0,
              "extra adapter: %s", ls_last_error());
        lora_set_strength(&x, 0.8f, 0.8f);
        for (int i = 0; i < g_a.n_mods; i++) g_a.mods[i].hook.ddown = g_a.mods[i].hook.dup = NULL;
        g_extra = &x;
        lora_grads_zero(&g_a);
        loss_grad(NULL, NULL);
        CHECK(lora_grads_sumsq(&g_a) == 0.0, "a frozen adapter received gradients");
        FdTally sx = {0};
        fd_sweep(&x, &sx, 12, 0, 17, FD_STEP, FD_RTOL, fd_atol);
        printf("finite differences (conv_in, conv_out, time_embedding.linear_1/2 adapter beside a frozen one): "
               "%d parameters, worst %.2f of tolerance: %s\n", sx.n, sx.worst, sx.where);
        g_extra = NULL;
        lora_free(&x);
        CHECK(lora_grads_alloc(&g_a) == 0, "re-enable grads: %s", ls_last_error());
    }

    /* --- strength 0: the adapter is off, every gradient is exactly zero --- */
    lora_set_strength(&g_a, 0, 0);
    loss_grad(NULL, NULL);
    CHECK(lora_grads_sumsq(&g_a) == 0.0, "strength 0: gradients are not all zero");

    /* --- kohya initialisation, up = 0: down grads exactly 0, up grads == diffusers and finite differences --- */
    lora_set_strength(&g_a, s, s);
    for (int i = 0; i < g_a.n_mods; i++) memset(g_a.mods[i].up, 0, numel_up(&g_a.mods[i]) * sizeof(float));
    double loss0 = loss_grad(NULL, NULL);
    CHECK(fabs(loss0 - ref_loss0[0]) / ref_loss0[0] < 1e-5, "zero-up loss %.8f vs diffusers %.8f", loss0,
          (double)ref_loss0[0]);
    int down_nonzero = 0;
    for (int i = 0; i < g_a.n_mods; i++)
        for (size_t j = 0; g_a.mods[i].component == LORA_UNET && j < numel_down(&g_a.mods[i]); j++)
            down_nonzero += g_a.mods[i].ddown[j] != 0.0f;
    CHECK(down_nonzero == 0, "zero-up: %d down-gradient values are not exactly 0", down_nonzero);
    printf("zero-up adapter: down gradients all exactly 0\n");
    compare_grads(&tc.ref, "zero_up.", 2, "zero-up up gradients vs diffusers+PEFT");
    FdTally s0 = {0};
    fd_sweep(&g_a, &s0, 12, 1, 13, FD_STEP, FD_RTOL, fd_atol);
    printf("finite differences (zero-up): %d up parameters, worst %.2f of tolerance: %s\n", s0.n, s0.worst,
           s0.where);

    printf("time (batch %d, %dx%d, %d threads, best of 3): forward_train+backward %.3f s, inference forward "
           "%.3f s; peak RSS %.1f MiB\n", g_c.B, g_c.H, g_c.W, op_num_threads(), t_fb, t_f,
           (double)ls_peak_rss() / (1 << 20));

    free(out), free(out_inf), free(dctx), free(ref_out), free(ref_loss), free(ref_loss0);
    unet_case_free(&g_c);
    lora_free(&g_a);
    return test_case_end(&g_m, &tc.ref, tc.tmp);
}
