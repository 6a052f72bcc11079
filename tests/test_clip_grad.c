/* test_clip_grad.c — CLIP text-encoder backward: LoRA gradients (kohya --train-text-encoder).
 *
 * On the tiny preset's CLIP (3 layers, D 32) with the text-encoder modules of the kohya adapter
 * tests/fixtures/lora_kohya.safetensors (q/k/v/out_proj, fc1, fc2 of every layer; rank 4, alpha 2) at
 * strength 0.7, a batch of 2 token sequences (77 tokens, padded) and loss = Σ out·R for a fixed random R:
 *  - clip_forward_train gives clip_forward's output (clip skip 1 and 2), and transformers' output;
 *  - every module's down/up gradient matches PyTorch autograd through transformers + PEFT
 *    (tests/gen_clip_grad_fixtures.py → tests/fixtures/clip_grad.safetensors) within 1e-4 relative L2, at
 *    clip skip 1 and 2 (there the last layer does not run: its gradients are exactly 0);
 *  - LoRA parameters of every module kind match central finite differences of the loss, at both skips;
 *  - gradients accumulate; layers below the lowest trainable one are skipped without changing the rest;
 *    strength 0 gives exactly 0; kohya's zero-up initialisation: down gradients exactly 0, up == PyTorch;
 *  - clip_encode_train == pipeline_encode_prompt (tokenizer, truncation, padding, clip skip);
 *  - lora_add_te: 18 modules with kohya names, the identity at creation, U-Net modules unchanged by it,
 *    saved by lora_save_kohya and read back by lora_load (and `lorastyle generate --lora`) identically;
 *  - full fine-tuning (clip_full_grads_alloc, on a second, adapter-free copy of the model): all 52 tensors
 *    listed under their checkpoint keys, the forward unchanged; every tensor's gradient (embeddings, norms,
 *    Linear weights and biases, final_layer_norm) matches transformers' CLIPTextModel autograd
 *    (tests/gen_clip_grad_fixtures.py → tests/fixtures/clip_full_grad.safetensors) within 1e-4 relative L2
 *    at clip skip 1 (and a subset at clip skip 2, where the last layer's stay exactly 0), token-embedding
 *    rows of ids that do not occur exactly 0; one scalar of every tensor matches central finite
 *    differences; gradients accumulate; a merged adapter is refused; after an SGD step
 *    clip_full_grads_free leaves the trained values in place and the checkpoint file untouched.
 *
 * Usage: test_clip_grad FIXTURE_DIR [LORASTYLE] */
#include <float.h>
#include <unistd.h>

#include "clip_bwd.h"
#include "grad_check.h" // defines: dot, find_tensor, central_diff, fd_pick, fd_check, GradTally
#include "lora.h"
#include "model.h"
#include "pipeline.h"
#include "rng.h"
#include "testutil.h"
#include "trainset.h"

#define TOL 1e-4      /* relative L2 against PyTorch */
#define FD_STEP 1e-2f /* central-difference step on a LoRA parameter (values ~0.1-0.5) */
#define FD_RTOL 1e-2  /* |fd − g| ≤ FD_RTOL·|g| + atol, atol = the loss's float noise over the step */

static Model g_m;
static Lora g_a;
static int *g_ids;
static float *g_R; /* (B,L,D) = ∂loss/∂out */
static int g_B, g_L, g_D, g_skip;
static size_t g_nout;

/* loss of the inference forward (what finite differences perturb) */
static double loss_eval(void) {
    float *out = fbuf(g_nout);
    LS_ASSERT(clip_forward(&g_m.clip, out, g_ids, g_B, g_L, g_skip) == 0);
    double l = dot(out, g_R, g_nout);
    free(out);
    return l;
}

/* Zero the gradients, forward_train + backward; returns the loss, out_copy (optional) the output. */
static double loss_grad(Lora *a, float *out_copy) {
    ClipActs acts = {0};
    float *out = fbuf(g_nout);
    lora_grads_zero(a);
    LS_ASSERT(clip_forward_train(&g_m.clip, &acts, out, g_ids, g_B, g_L, g_skip) == 0);
    clip_backward(&g_m.clip, &acts, g_R);
    double l = dot(out, g_R, g_nout);
    if (out_copy) memcpy(out_copy, out, g_nout * sizeof(float));
    clip_acts_free(&acts);
    free(out);
    return l;
}

static int layer_of(const LoraModule *m) {
    int li = -1;
    sscanf(m->module, "text_model_encoder_layers_%d_", &li);
    return li;
}
static double sumsq(const float *g, size_t n) { return dot(g, g, n); }

/* Compare every text-encoder module's gradients (parts: 1 = down, 2 = up, 3 = both) with the fixture's
 * ("<prefix>lora_te_<module>.lora_{down,up}.weight"); modules of layers that did not run (≥ layers − skip)
 * must be exactly 0. Returns the overall relative L2. */
static double compare_grads(const StFile *ref, const char *prefix, int parts, const char *label) {
    const char *tags[2] = {"lora_down", "lora_up"};
    double num = 0, den = 0, worst = 0;
    char worst_key[600] = "";
    int nmods = 0, nskipped = 0;
    for (int i = 0; i < g_a.n_mods; i++) {
        const LoraModule *m = &g_a.mods[i];
        if (m->component != LORA_TE) continue;
        nmods++;
        if (layer_of(m) >= g_m.clip.cfg.layers - g_skip) {
            nskipped++;
            CHECK(sumsq(m->ddown, numel_down(m)) + sumsq(m->dup, numel_up(m)) == 0.0,
                  "%s: layer after the clip-skip output has a gradient", m->module);
            continue;
        }
        for (int p = 0; p < 2; p++) {
            if (!(parts & (1 << p))) continue;
            char key[600];
            snprintf(key, sizeof key, "%slora_te_%s.%s.weight", prefix, m->module, tags[p]);
            size_t n;
            float *r = fixture_get(ref, key, &n, NULL);
            const float *g = p ? m->dup : m->ddown;
            CHECK(n == (p ? numel_up(m) : numel_down(m)), "%s: %zu values in the fixture", key, n);
            double rel = rel_l2(g, r, n);
            CHECK(rel <= TOL, "%s: gradient rel L2 %.3g vs PyTorch", key, rel);
            for (size_t j = 0; j < n; j++) num += ((double)g[j] - r[j]) * ((double)g[j] - r[j]);
            den += sumsq(r, n);
            if (rel > worst) worst = rel, snprintf(worst_key, sizeof worst_key, "%s", key);
            free(r);
        }
    }
    double overall = sqrt(num / den);
    CHECK(overall < TOL, "%s: overall rel L2 %.3g", label, overall);
    CHECK(nmods == 18, "expected 18 text-encoder modules, got %d", nmods);
    printf("%s: %d modules (%d after the clip-skip output, exactly 0), overall rel L2 %.2g, worst %.2g (%s)\n",
           label, nmods, nskipped, overall, worst, worst_key);
    return overall;
}

/* Central differences on n LoRA parameters (module kinds round robin, down/up alternating; the largest
 * |g| of 8 random entries), only in layers that run. Prints and returns the worst error/tolerance ratio. */
static double fd_sweep(Lora *a, int n, int only_up, uint64_t seed, double atol, const char *label) {
    static const char *kinds[6] = {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"};
    FdTally fd = {0};
    uint64_t ctr = 0;
    for (int it = 0; it < n; it++) {
        LoraModule *m;
        do m = &a->mods[rng_u32(seed, ctr++) % (uint32_t)a->n_mods];
        while (m->component != LORA_TE || !strstr(m->module, kinds[it % 6]) ||
               layer_of(m) >= g_m.clip.cfg.layers - g_skip);
        int up = only_up || (it % 6 + it / 6) % 2;
        float *w = up ? m->up : m->down, *g = up ? m->dup : m->ddown;
        size_t best = fd_pick(g, up ? numel_up(m) : numel_down(m), 8, seed, &ctr);
        char what[300];
        snprintf(what, sizeof what, "%s.%s[%zu]", m->module, up ? "up" : "down", best);
        fd_check(&fd, what, central_diff(&w[best], FD_STEP, loss_eval), g[best], FD_RTOL, atol);
    }
    printf("finite differences %s (step %g): %d parameters, worst %.2f of tolerance (%g·|g| + %.2g): %s\n",
           label, (double)FD_STEP, n, fd.worst, FD_RTOL, atol, fd.where);
    return fd.worst;
}

/* FD noise floor: one float rounding (relative FLT_EPSILON) of every term of the loss, over the step
 * (Σ|out·R| ≈ 3900 here, so ~0.02: the probed gradients are 0.5-15). */
static double fd_atol(void) {
    float *out = fbuf(g_nout);
    clip_forward(&g_m.clip, out, g_ids, g_B, g_L, g_skip);
    double s = 0;
    for (size_t i = 0; i < g_nout; i++) s += fabs((double)out[i] * g_R[i]);
    free(out);
    return FLT_EPSILON * s / (2.0 * FD_STEP);
}

/* clip_encode_train == pipeline_encode_prompt, caption by caption (incl. one truncated at 77 tokens). */
static void check_encode(void) {
    char longcap[2048] = "";
    for (int i = 0; i < 60; i++) strcat(longcap, i % 2 ? "watercolor fox " : "snowy forest ");
    const char *caps[3] = {"a watercolor painting of a fox", "", longcap};
    int L = tokenizer_max_length(g_m.tok), D = g_m.clip.cfg.hidden;
    size_t per = (size_t)L * D;
    float *ctx = fbuf(3 * per), *ref = fbuf(per);
    for (int cs = 1; cs <= 2; cs++) {
        ClipActs acts = {0};
        CHECK(clip_encode_train(&g_m.clip, g_m.tok, &acts, ctx, caps, 3, cs) == 0, "encode: %s",
              ls_last_error());
        CHECK(acts.B == 3 && acts.L == L && acts.n == g_m.clip.cfg.layers - (cs - 1), "acts dims");
        double worst = 0;
        for (int b = 0; b < 3; b++) {
            CHECK(pipeline_encode_prompt(&g_m, caps[b], cs, ref) == 0, "pipeline: %s", ls_last_error());
            worst = fmax(worst, rel_l2(ctx + b * per, ref, per));
        }
        CHECK(worst < 1e-6, "clip skip %d: clip_encode_train vs pipeline_encode_prompt rel L2 %.3g", cs, worst);
        printf("clip_encode_train vs pipeline_encode_prompt (clip skip %d, 3 captions, one truncated): rel L2 "
               "%.2g; saved activations %.1f KiB\n", cs, worst, (double)acts.bytes / 1024);
        clip_acts_free(&acts);
    }
    ClipActs acts = {0};
    CHECK(clip_encode_train(&g_m.clip, g_m.tok, &acts, ctx, caps, 1, g_m.clip.cfg.layers + 1) < 0,
          "clip skip past the first layer must fail");
    CHECK(acts.hs == NULL, "failed encode left activations");
    free(ctx);
    free(ref);
}

/* lora_create + lora_add_te: names, identity at creation, save/load round trip; generate --lora. */
static void check_add_te(const char *tmp, const char *lorastyle) {
    Lora u, a, b;
    CHECK(lora_create(&u, &g_m, NULL, 4, 4, 0, 0, 5) == 0, "create: %s", ls_last_error());
    CHECK(lora_create(&a, &g_m, NULL, 4, 4, 0, 0, 5) == 0, "create: %s", ls_last_error());
    int nu = a.n_mods;
    CHECK(lora_add_te(&a, &g_m, 2, 1, 5) == 0, "add_te: %s", ls_last_error());
    CHECK(a.n_te == 18 && a.n_mods == nu + 18 && a.n_unet == nu, "modules: %d unet %d te", a.n_unet, a.n_te);
    int same = 1;
    for (int i = 0; i < nu; i++) same &= !memcmp(u.mods[i].down, a.mods[i].down, numel_down(&u.mods[i]) * 4);
    CHECK(same, "adding text-encoder modules changed the U-Net modules' initialisation");
    lora_free(&u);
    const LoraModule *q0 = &a.mods[nu];
    CHECK(!strcmp(q0->module, "text_model_encoder_layers_0_self_attn_k_proj") ||
              !strcmp(q0->module, "text_model_encoder_layers_0_self_attn_q_proj"),
          "first TE module %s", q0->module);
    int kinds = 0;
    double bound_err = 0;
    for (int i = nu; i < a.n_mods; i++) {
        const LoraModule *m = &a.mods[i];
        for (int k = 0; k < 6; k++) {
            static const char *suf[6] = {"_self_attn_q_proj", "_self_attn_k_proj", "_self_attn_v_proj",
                                         "_self_attn_out_proj", "_mlp_fc1", "_mlp_fc2"};
            size_t ls = strlen(suf[k]), lm = strlen(m->module);
            if (lm > ls && !strcmp(m->module + lm - ls, suf[k])) kinds |= 1 << k;
        }
        CHECK(m->component == LORA_TE && m->rank == 2 && m->alpha == 1.0f, "%s: rank/alpha", m->module);
        CHECK(sumsq(m->up, numel_up(m)) == 0.0, "%s: up not zero", m->module);
        double mx = 0, bound = 1.0 / sqrt((double)m->in);
        for (size_t j = 0; j < numel_down(m); j++) mx = fmax(mx, fabs(m->down[j]));
        bound_err = fmax(bound_err, mx / bound); /* ≤ 1 and close to it */
    }
    CHECK(kinds == 63, "not every target kind present (mask %d)", kinds);
    CHECK(bound_err <= 1.0 && bound_err > 0.8, "down not U(±1/√in): max/bound %.3f", bound_err);

    /* attached at creation: the identity (up = 0), bit for bit */
    float *base = fbuf(g_nout), *o1 = fbuf(g_nout), *o2 = fbuf(g_nout);
    lora_detach(&g_a);
    clip_forward(&g_m.clip, base, g_ids, g_B, g_L, 0);
    CHECK(lora_attach(&a, &g_m, 0) == 0 && lora_grads_alloc(&a) == 0, "attach new: %s", ls_last_error());
    clip_forward(&g_m.clip, o1, g_ids, g_B, g_L, 0);
    CHECK(!memcmp(base, o1, g_nout * sizeof(float)), "a new adapter changed the text encoder's output");
    int skip = g_skip;
    g_skip = 0;
    loss_grad(&a, NULL);
    double gd = 0, gu = 0;
    for (int i = nu; i < a.n_mods; i++) gd += sumsq(a.mods[i].ddown, numel_down(&a.mods[i]));
    for (int i = nu; i < a.n_mods; i++) gu += sumsq(a.mods[i].dup, numel_up(&a.mods[i]));
    CHECK(gd == 0.0 && gu > 0, "new adapter: |ddown|² %.3g (must be 0), |dup|² %.3g (must be > 0)", gd, gu);
    printf("lora_add_te: %d modules (%d U-Net kept), identity at creation; zero-up gradients: |dup| %.3g, "
           "ddown exactly 0\n", a.n_te, nu, sqrt(gu));

    /* train-like change, save, load back: same output */
    for (int i = nu; i < a.n_mods; i++) {
        rng_normal(a.mods[i].up, numel_up(&a.mods[i]), 900 + i, 0);
        for (size_t j = 0; j < numel_up(&a.mods[i]); j++) a.mods[i].up[j] *= 0.2f;
    }
    clip_forward(&g_m.clip, o1, g_ids, g_B, g_L, 0);
    char path[600];
    snprintf(path, sizeof path, "%s/te.safetensors", tmp);
    CHECK(lora_save_kohya(&a, path, NULL, 0) == 0, "save: %s", ls_last_error());
    lora_free(&a);
    CHECK(lora_load(&b, path) == 0, "load %s: %s", path, ls_last_error());
    CHECK(b.n_te == 18 && b.n_unet == nu, "loaded: %d unet %d te", b.n_unet, b.n_te);
    CHECK(lora_attach(&b, &g_m, 0) == 0, "attach loaded: %s", ls_last_error());
    clip_forward(&g_m.clip, o2, g_ids, g_B, g_L, 0);
    CHECK(!memcmp(o1, o2, g_nout * sizeof(float)), "saved+loaded adapter: output differs (rel %.3g)",
          rel_l2(o2, o1, g_nout));
    CHECK(rel_l2(o1, base, g_nout) > 1e-3, "the trained-like adapter does not change the output");
    printf("lora_save_kohya → lora_load: identical text-encoder output (rel change vs base %.3g)\n",
           rel_l2(o1, base, g_nout));
    lora_free(&b);
    g_skip = skip;
    CHECK(lora_attach(&g_a, &g_m, 0) == 0 && lora_grads_alloc(&g_a) == 0, "re-attach: %s", ls_last_error());
    if (lorastyle) { /* the CLI reads it too */
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "'%s' generate 'a fox' --model '%s/tiny' --lora '%s:0:1' --steps 2 "
                 "--width 64 --height 64 --seed 1 -o '%s/te.png' > /dev/null 2>&1", lorastyle, tmp, path, tmp);
        CHECK(system(cmd) == 0, "lorastyle generate --lora with a text-encoder adapter failed: %s", cmd);
    }
    free(base), free(o1), free(o2);
}

/* ---------------- full fine-tuning (clip_full_grads_alloc): every text-encoder tensor ---------------- */

#define FULL_FD_STEP 1e-2f    /* central-difference step on a weight */
#define FULL_FD_STEP_EMB 1e-3f /* on an embedding (values ~0.02: the larger step's error is ~0.4%) */

/* tests/fixtures/clip_full_grad.safetensors' input on a second, adapter-free copy of the tiny model */
typedef struct {
    Model m;
    int *ids;
    float *R; /* (B,L,D) = ∂loss/∂out */
    int B, L, skip;
    size_t nout;
} FullCase;

static double full_loss(const FullCase *f) {
    float *out = fbuf(f->nout);
    LS_ASSERT(clip_forward(&f->m.clip, out, f->ids, f->B, f->L, f->skip) == 0);
    double l = dot(out, f->R, f->nout);
    free(out);
    return l;
}

/* Zero every gradient of ts, forward_train + backward; returns the loss. */
static double full_loss_grad(const FullCase *f, const TrainSet *ts) {
    ClipActs acts = {0};
    float *out = fbuf(f->nout);
    trainset_zero_grads(ts);
    LS_ASSERT(clip_forward_train(&f->m.clip, &acts, out, f->ids, f->B, f->L, f->skip) == 0);
    clip_backward(&f->m.clip, &acts, f->R);
    double l = dot(out, f->R, f->nout);
    clip_acts_free(&acts);
    free(out);
    return l;
}

static int layer_of_key(const char *name) {
    const char *p = strstr(name, ".layers.");
    int li = -1;
    if (p) sscanf(p, ".layers.%d.", &li);
    return li;
}
static int is_token_embedding(const char *name) { return strstr(name, "token_embedding") != NULL; }

/* Every tensor's gradient against the fixture's "<prefix>grad.<name>" (a tensor the fixture lacks is
 * skipped: the clip-skip-2 part holds a subset; returns how many were compared). The token embedding's
 * fixture holds only the rows "token_rows" (the ids that occur): every other row must be exactly 0.
 * Tensors of layers after the clip-skip output must be exactly 0. Per tensor and overall ‖g − r‖ ≤
 * TOL·‖r‖ + 1e-7·‖r_all‖: the floor only matters for a zero true gradient (k_proj.bias: adding a constant
 * to every key shifts each query's scores by one constant, which the softmax ignores), where both sides
 * are float noise; those are reported apart. */
static int compare_full(const StFile *ref, const FullCase *f, const TrainSet *ts, const char *prefix,
                        const char *label) {
    int D = f->m.clip.cfg.hidden, n_run = f->m.clip.cfg.layers - f->skip;
    size_t nrows;
    float *rowsf = fixture_get(ref, "token_rows", &nrows, NULL);
    GradTally tally = {0};
    double zero_noise = 0;
    int nafter = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < ts->n; i++) {
            const TrainTensor *t = &ts->t[i];
            char key[400];
            snprintf(key, sizeof key, "%sgrad.%s", prefix, t->name);
            if (layer_of_key(t->name) >= n_run) { /* after the clip-skip output: did not run */
                if (pass) CHECK(sumsq(t->g, t->n) == 0.0, "%s: a layer that did not run has a gradient", t->name);
                nafter += pass;
                continue;
            }
            if (!st_find(ref, key)) continue;
            const float *g = t->g;
            float *rows = NULL;
            size_t n = t->n;
            if (is_token_embedding(t->name)) { /* gather the fixture's rows; the others must be exactly 0 */
                char *used = callocCheck(t->n / D, 1);
                rows = fbuf(nrows * D);
                for (size_t r = 0; r < nrows; r++) {
                    int id = (int)rowsf[r];
                    used[id] = 1;
                    memcpy(rows + r * D, t->g + (size_t)id * D, D * sizeof(float));
                }
                int stray = 0;
                for (size_t j = 0; j < t->n; j++) stray += !used[j / D] && t->g[j] != 0.0f;
                if (pass) CHECK(stray == 0, "%s: %d gradient values on rows of ids that do not occur", key, stray);
                free(used);
                g = rows, n = nrows * D;
            }
            size_t nref;
            double d2, r2;
            fixture_grad_diff(ref, key, g, n, &d2, &r2, &nref);
            free(rows);
            if (pass == 0) {
                tally.all2 += r2;
                continue;
            }
            CHECK(nref == n, "%s: the fixture holds %zu values, the gradient %zu", key, nref, n);
            if (grad_tally_check(&tally, key, d2, r2, TOL, "PyTorch") < 0) /* a zero true gradient */
                zero_noise = fmax(zero_noise, sqrt(d2 / tally.all2));
        }
    double overall = grad_tally_overall(&tally);
    CHECK(overall < TOL, "%s: overall rel L2 %.3g", label, overall);
    printf("%s: %d tensors, overall rel L2 %.2g, worst %.2g (%s)", label, tally.n, overall, tally.worst,
           tally.worst_key);
    if (tally.nzero)
        printf("; %d with a zero true gradient (k_proj.bias: |g − ref| ≤ %.1g·|all|, float noise)", tally.nzero,
               zero_noise);
    printf("; %d after the clip-skip output, exactly 0\n", nafter);
    free(rowsf);
    return tally.n;
}

/* Central differences on one scalar of every tensor that runs: the largest |g| of 16 random entries (the
 * token embedding: entries on rows of ids that occur). Prints and returns the worst error/tolerance ratio;
 * atol = one float rounding of every term of the loss, over the step. */
static double full_fd(const FullCase *f, const TrainSet *ts, uint64_t seed, const char *label) {
    int D = f->m.clip.cfg.hidden, n_run = f->m.clip.cfg.layers - f->skip;
    float *out = fbuf(f->nout);
    clip_forward(&f->m.clip, out, f->ids, f->B, f->L, f->skip);
    double s = 0;
    for (size_t i = 0; i < f->nout; i++) s += fabs((double)out[i] * f->R[i]);
    free(out);
    FdTally fd = {0};
    uint64_t ctr = 0;
    for (int k = 0; k < ts->n; k++) {
        const TrainTensor *t = &ts->t[k];
        if (layer_of_key(t->name) >= n_run) continue;
        size_t best = 0;
        for (int c = 0; c < 16; c++) {
            size_t i = rng_u32(seed, ctr++) % t->n;
            if (is_token_embedding(t->name)) {
                size_t row = (size_t)f->ids[rng_u32(seed, ctr++) % (f->nout / D)];
                i = row * D + i % D;
            }
            if (c == 0 || fabsf(t->g[i]) > fabsf(t->g[best])) best = i;
        }
        float v = t->p[best], h = strstr(t->name, "embedding") ? FULL_FD_STEP_EMB : FULL_FD_STEP;
        t->p[best] = v + h;
        double lp = full_loss(f);
        t->p[best] = v - h;
        double lm = full_loss(f);
        t->p[best] = v;
        char what[300];
        snprintf(what, sizeof what, "%s[%zu]", t->name, best);
        fd_check(&fd, what, (lp - lm) / (2.0 * ((double)(v + h) - (double)v)), t->g[best], FD_RTOL,
                 FLT_EPSILON * s / (2.0 * h));
    }
    printf("finite differences %s (step %g, embeddings %g): one scalar of each of %d tensors, worst %.2f of "
           "tolerance (%g·|g| + %.2g/step, float noise): %s\n", label, (double)FULL_FD_STEP, (double)FULL_FD_STEP_EMB,
           fd.n, fd.worst, FD_RTOL, FLT_EPSILON * s / 2.0, fd.where);
    return fd.worst;
}

/* clip_full_grads_alloc / clip_backward / clip_full_grads_free on a second copy of the tiny model. */
static void check_full(const char *fixdir, const char *mdir, const char *adapter) {
    FullCase f = {0};
    StFile ref;
    if (test_open_case(&f.m, mdir, &ref, fixdir, "clip_full_grad.safetensors") < 0) return;
    const StTensor *rm;
    size_t nids;
    float *idsf = fixture_get(&ref, "ids", &nids, NULL);
    f.R = fixture_get(&ref, "R", &f.nout, &rm);
    f.B = (int)rm->shape[0], f.L = (int)rm->shape[1];
    f.ids = mallocCheck(nids * sizeof(int));
    for (size_t i = 0; i < nids; i++) f.ids[i] = (int)idsf[i];
    Clip *c = &f.m.clip;
    WeightTable *wt = &c->wt;

    /* a merged adapter is refused (its weights are a modified copy), nothing allocated */
    {
        Lora x;
        TrainSet ts = {0};
        CHECK(lora_load(&x, adapter) == 0 && lora_attach(&x, &f.m, 0) == 0, "adapter: %s", ls_last_error());
        lora_merge(&x);
        CHECK(clip_full_grads_alloc(c, &ts) < 0 && strstr(ls_last_error(), "merged"),
              "full fine-tuning of a merged text encoder was not refused");
        CHECK(ts.n == 0 && wt->grads == NULL && c->dtok_emb == NULL, "a refused alloc left gradients");
        lora_free(&x);
    }

    /* every tensor listed once under its checkpoint key, value = the weight the forward reads */
    float *base = fbuf(f.nout), *o = fbuf(f.nout);
    clip_forward(c, base, f.ids, f.B, f.L, 0);
    const float *mapped = c->tok_emb;
    TrainSet ts = {0};
    CHECK(clip_full_grads_alloc(c, &ts) == 0, "alloc: %s", ls_last_error());
    int nexp = 4 + 16 * c->cfg.layers, listed = 1;
    CHECK(ts.n == wt->n && ts.n == nexp, "trainset holds %d tensors, the encoder %d (expected %d)", ts.n, wt->n,
          nexp);
    CHECK(ts.n_params == wt->numel, "trainset holds %lld values, the encoder %lld", (long long)ts.n_params,
          (long long)wt->numel);
    for (int i = 0; i < ts.n && i < wt->n; i++)
        listed &= !strcmp(ts.t[i].name, wt->v[i].name) && ts.t[i].p == *wt->v[i].ptr && ts.t[i].g &&
                  ts.t[i].n == (size_t)wt->v[i].numel && find_tensor(&ts, ts.t[i].name) == &ts.t[i];
    CHECK(listed, "trainset names/values/gradients do not follow the weight table");
    CHECK(find_tensor(&ts, "text_model.embeddings.token_embedding.weight") &&
              find_tensor(&ts, "text_model.embeddings.position_embedding.weight") &&
              find_tensor(&ts, "text_model.final_layer_norm.bias") &&
              find_tensor(&ts, "text_model.encoder.layers.0.layer_norm1.weight") &&
              find_tensor(&ts, "text_model.encoder.layers.2.mlp.fc2.bias"),
          "checkpoint keys missing from the trainset");
    CHECK(c->tok_emb != mapped && c->dtok_emb && c->dpos_emb && c->final_ln.dg && c->layer[0].ln1.db &&
              c->layer[0].q.dw && c->layer[2].fc2.db,
          "weights not made private, or gradient fields not set");
    clip_forward(c, o, f.ids, f.B, f.L, 0);
    CHECK(!memcmp(o, base, f.nout * sizeof(float)), "the private copy changed the output");

    /* gradients vs PyTorch (clip skip 1 and 2) and finite differences */
    for (f.skip = 0; f.skip <= 1; f.skip++) {
        double t0 = ls_time();
        full_loss_grad(&f, &ts);
        double t = ls_time() - t0;
        int nc = compare_full(&ref, &f, &ts, f.skip ? "skip2." : "",
                              f.skip ? "full fine-tuning, clip skip 2: gradients vs PyTorch"
                                     : "full fine-tuning, clip skip 1: gradients vs PyTorch");
        CHECK(nc == (f.skip ? 11 : ts.n), "clip skip %d: compared %d tensors", f.skip + 1, nc);
        full_fd(&f, &ts, 21 + f.skip, f.skip ? "(full, clip skip 2)" : "(full, clip skip 1)");
        printf("full fine-tuning, clip skip %d: forward_train+backward %.1f ms\n", f.skip + 1, 1e3 * t);
    }
    f.skip = 0;

    /* accumulation: a second backward without zeroing doubles every gradient */
    {
        full_loss_grad(&f, &ts);
        size_t tot = (size_t)wt->numel;
        float *g1 = fbuf(tot);
        memcpy(g1, wt->grads, tot * sizeof(float));
        ClipActs acts = {0};
        clip_forward_train(c, &acts, o, f.ids, f.B, f.L, 0);
        clip_backward(c, &acts, f.R);
        clip_acts_free(&acts);
        int ok = 1;
        for (size_t j = 0; j < tot; j++) ok &= fabs(wt->grads[j] - 2.0 * g1[j]) <= 1e-5 * fabs(g1[j]) + 1e-30;
        CHECK(ok, "second backward did not accumulate every gradient");
        free(g1);
    }

    /* one SGD step; clip_full_grads_free keeps the trained values in place and freezes the encoder */
    double loss0 = full_loss_grad(&f, &ts);
    for (int i = 0; i < ts.n; i++)
        for (size_t j = 0; j < ts.t[i].n; j++) ts.t[i].p[j] -= 1e-5f * ts.t[i].g[j];
    double loss1 = full_loss(&f);
    float *trained = fbuf(wt->numel), *o1 = fbuf(f.nout);
    for (size_t i = 0, off = 0; i < (size_t)wt->n; off += (size_t)wt->v[i].numel, i++)
        memcpy(trained + off, *wt->v[i].ptr, (size_t)wt->v[i].numel * sizeof(float));
    clip_forward(c, o1, f.ids, f.B, f.L, 0);
    clip_full_grads_free(c);
    trainset_free(&ts);
    CHECK(loss1 < loss0, "an SGD step did not lower the loss (%.6f → %.6f)", loss0, loss1);
    CHECK(c->dtok_emb == NULL && c->dpos_emb == NULL && c->final_ln.dg == NULL && c->layer[0].ln1.db == NULL &&
              c->layer[0].q.dw == NULL && c->layer[2].fc2.db == NULL && wt->grads == NULL,
          "clip_full_grads_free left gradient buffers");
    int kept = 1;
    for (size_t i = 0, off = 0; i < (size_t)wt->n; off += (size_t)wt->v[i].numel, i++)
        kept &= !memcmp(trained + off, *wt->v[i].ptr, (size_t)wt->v[i].numel * sizeof(float));
    clip_forward(c, o, f.ids, f.B, f.L, 0);
    CHECK(kept && !memcmp(o, o1, f.nout * sizeof(float)), "clip_full_grads_free changed the trained weights");
    CHECK(rel_l2(o, base, f.nout) > 1e-6, "the SGD step did not change the output");
    {
        ClipActs acts = {0}; /* frozen again: the backward has nothing to do */
        clip_forward_train(c, &acts, o, f.ids, f.B, f.L, 0);
        clip_backward(c, &acts, f.R);
        clip_acts_free(&acts);
    }
    Model chk; /* the checkpoint file is untouched */
    CHECK(model_load(&chk, mdir, NULL) == 0, "reload: %s", ls_last_error());
    clip_forward(&chk.clip, o, f.ids, f.B, f.L, 0);
    CHECK(!memcmp(o, base, f.nout * sizeof(float)), "training changed the checkpoint file");
    model_free(&chk);
    printf("one SGD step (lr 1e-5): loss %.4f → %.4f; clip_full_grads_free: trained values kept, gradients "
           "gone, the checkpoint untouched\n", loss0, loss1);

    free(trained), free(o1), free(base), free(o), free(idsf), free(f.ids), free(f.R);
    st_close(&ref);
    model_free(&f.m);
}

int main(int argc, char **argv) {
    TestCase tc;
    if (test_case_begin(&tc, argc, argv, "cgrad", &g_m, "clip_grad.safetensors") < 0) return test_summary();
    char fk[512];
    snprintf(fk, sizeof fk, "%s/lora_kohya.safetensors", tc.fixdir);
    const StTensor *rm;
    size_t nids;
    float *idsf = fixture_get(&tc.ref, "ids", &nids, NULL);
    g_R = fixture_get(&tc.ref, "R", &g_nout, &rm);
    float *ref_out = fixture_get(&tc.ref, "out", NULL, NULL);
    float *ref_out2 = fixture_get(&tc.ref, "out_skip2", NULL, NULL);
    g_B = (int)rm->shape[0], g_L = (int)rm->shape[1], g_D = (int)rm->shape[2];
    g_ids = mallocCheck(nids * sizeof(int));
    for (size_t i = 0; i < nids; i++) g_ids[i] = (int)idsf[i];
    float s = (float)atof(st_meta_get(&tc.ref, "strength"));

    CHECK(lora_load(&g_a, fk) == 0, "load %s: %s", fk, ls_last_error());
    CHECK(lora_attach(&g_a, &g_m, 0) == 0, "attach: %s", ls_last_error());
    CHECK(lora_grads_alloc(&g_a) == 0, "grads: %s", ls_last_error());
    if (g_fail) return test_summary();
    lora_set_strength(&g_a, 0, s); /* U-Net part off: only the text encoder matters here */
    printf("%s: %d text-encoder modules, strength %.2f; batch %d × %d tokens, D %d\n", g_a.name, g_a.n_te,
           (double)s, g_B, g_L, g_D);

    float *out = fbuf(g_nout), *out_inf = fbuf(g_nout);
    for (g_skip = 0; g_skip <= 1; g_skip++) {
        /* --- forward_train == forward == transformers --- */
        double t0 = ls_time();
        double loss = loss_grad(&g_a, out);
        double t_fb = ls_time() - t0;
        clip_forward(&g_m.clip, out_inf, g_ids, g_B, g_L, g_skip);
        double e = rel_l2(out, out_inf, g_nout), ep = rel_l2(out, g_skip ? ref_out2 : ref_out, g_nout);
        CHECK(e < 1e-6, "clip skip %d: forward_train vs forward rel L2 %.3g", g_skip + 1, e);
        CHECK(ep < TOL, "clip skip %d: output vs transformers rel L2 %.3g", g_skip + 1, ep);
        printf("clip skip %d: forward_train vs forward rel L2 %.2g (%s), vs transformers %.2g; loss %.4f; "
               "forward_train+backward %.1f ms\n", g_skip + 1, e,
               memcmp(out, out_inf, g_nout * sizeof(float)) ? "not bit-identical" : "bit-identical", ep, loss,
               1e3 * t_fb);

        /* --- gradients vs PyTorch, finite differences --- */
        compare_grads(&tc.ref, g_skip ? "skip2." : "", 3,
                      g_skip ? "clip skip 2: gradients vs PyTorch" : "clip skip 1: gradients vs PyTorch");
        fd_sweep(&g_a, 18, 0, 7 + g_skip, fd_atol(), g_skip ? "(clip skip 2)" : "(clip skip 1)");
    }
    g_skip = 0;

    /* --- accumulation: a second backward without zeroing doubles every gradient --- */
    {
        loss_grad(&g_a, NULL);
        const LoraModule *m = &g_a.mods[g_a.n_mods - 1];
        size_t nd = numel_down(m);
        float *g1 = fbuf(nd);
        memcpy(g1, m->ddown, nd * sizeof(float));
        ClipActs acts = {0};
        clip_forward_train(&g_m.clip, &acts, out, g_ids, g_B, g_L, 0);
        clip_backward(&g_m.clip, &acts, g_R);
        clip_acts_free(&acts);
        double ea = 0;
        for (size_t j = 0; j < nd; j++) ea = fmax(ea, fabs(m->ddown[j] - 2.0 * g1[j]) / (fabs(g1[j]) + 1e-12));
        CHECK(ea < 1e-5, "second backward did not accumulate (max rel %.3g)", ea);
        free(g1);
    }

    /* --- layer 0 frozen (its hooks lose their buffers): the backward stops at layer 1 and the other
     *     gradients are bit-identical --- */
    {
        loss_grad(&g_a, NULL);
        size_t tot = 0;
        for (int i = 0; i < g_a.n_mods; i++) tot += numel_down(&g_a.mods[i]) + numel_up(&g_a.mods[i]);
        float *full = fbuf(tot), *p = full;
        for (int i = 0; i < g_a.n_mods; i++) {
            const LoraModule *m = &g_a.mods[i];
            memcpy(p, m->ddown, numel_down(m) * 4), p += numel_down(m);
            memcpy(p, m->dup, numel_up(m) * 4), p += numel_up(m);
        }
        for (int i = 0; i < g_a.n_mods; i++)
            if (g_a.mods[i].component == LORA_TE && layer_of(&g_a.mods[i]) == 0)
                g_a.mods[i].hook.ddown = g_a.mods[i].hook.dup = NULL;
        loss_grad(&g_a, NULL);
        int ok = 1;
        double z = 0;
        p = full;
        for (int i = 0; i < g_a.n_mods; i++) {
            const LoraModule *m = &g_a.mods[i];
            if (m->component == LORA_TE && layer_of(m) == 0)
                z += sumsq(m->ddown, numel_down(m)) + sumsq(m->dup, numel_up(m));
            else if (m->component == LORA_TE)
                ok &= !memcmp(p, m->ddown, numel_down(m) * 4) &&
                      !memcmp(p + numel_down(m), m->dup, numel_up(m) * 4);
            p += numel_down(m) + numel_up(m);
        }
        CHECK(z == 0.0, "frozen layer-0 modules received gradients");
        CHECK(ok, "freezing layer 0 changed the gradients of layers 1-2");
        free(full);
        CHECK(lora_grads_alloc(&g_a) == 0, "re-enable grads: %s", ls_last_error());
    }

    /* --- strength 0: the adapter is off, every gradient is exactly zero --- */
    lora_set_strength(&g_a, 0, 0);
    loss_grad(&g_a, NULL);
    CHECK(lora_grads_sumsq(&g_a) == 0.0, "strength 0: gradients are not all zero");

    /* --- kohya initialisation, up = 0: down grads exactly 0, up grads == PyTorch and finite differences --- */
    lora_set_strength(&g_a, 0, s);
    for (int i = 0; i < g_a.n_mods; i++) memset(g_a.mods[i].up, 0, numel_up(&g_a.mods[i]) * sizeof(float));
    loss_grad(&g_a, NULL);
    double dz = 0;
    for (int i = 0; i < g_a.n_mods; i++) dz += sumsq(g_a.mods[i].ddown, numel_down(&g_a.mods[i]));
    CHECK(dz == 0.0, "zero-up: down gradients are not exactly 0");
    compare_grads(&tc.ref, "zero_up.", 2, "zero-up up gradients vs PyTorch");
    fd_sweep(&g_a, 6, 1, 13, fd_atol(), "(zero-up)");

    check_encode();
    check_add_te(tc.tmp, argc > 2 ? argv[2] : NULL);
    check_full(tc.fixdir, tc.mdir, fk);

    free(out), free(out_inf), free(ref_out), free(ref_out2), free(idsf), free(g_ids), free(g_R);
    lora_free(&g_a);
    return test_case_end(&g_m, &tc.ref, tc.tmp);
}
