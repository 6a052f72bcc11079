/* test_lycoris.c — LyCORIS LoHa / LoKr and DoRA adapters at generation time.
 *
 * Against tests/gen_lycoris_fixtures.py (LyCORIS's own LohaModule / LokrModule / LoConModule with
 * weight_decompose, and PEFT's use_dora, on the tiny preset model): at strength 0.7, as A1111 and ComfyUI
 * apply it (W + s·(W(1) − W)), the U-Net and text-encoder outputs within 1e-4 relative L2, unmerged and
 * merged, and the merged weights of a Linear, a 3×3 conv, a 1×1 conv and a text-encoder Linear within 1e-5;
 * the PEFT DoRA file at strength 1 against diffusers' own DoRA forward. Exact properties: strength 0
 * reproduces the base bit for bit (unmerged and merged), detach restores it, merged == unmerged, a merged
 * strength change == a re-merge, the kinds counted per module. Bad input: a LoHa module without hada_w2_b,
 * LoHa and LoKr tensors on one module, LoCon's lora_mid, a DoRA magnitude of the wrong size, a DoRA
 * magnitude alone, and a LoHa module whose ΔW does not fit the layer.
 *
 * Usage: test_lycoris FIXTURE_DIR */
#include <unistd.h>

#include "lora.h"
#include "lora_case.h" // defines: LoraInputs, lora_inputs_load, lora_unet_out, expect_adapter_error
#include "testutil.h"

#define TOL 1e-4
#define WTOL 1e-5

static Model g_m;
static TestCase g_tc; /* the fixture, and the scratch folder the bad adapters go to */


/* The current weights of a module (diffusers path), or NULL. */
static const float *module_w(const char *path, size_t *n) {
    const WeightTable *t = strncmp(path, "text_model.", 11) ? &g_m.unet.wt : &g_m.clip.wt;
    const ModuleSpec *s = wt_find_module(t, path);
    if (!s) return NULL;
    if (s->kind == MOD_LINEAR) {
        const Linear *l = s->layer;
        *n = (size_t)l->in * l->out;
        return l->w;
    }
    const Conv2d *c = s->layer;
    *n = (size_t)c->cout * c->cin * c->k * c->k;
    return c->w;
}

static void check_weights(const StFile *ref, const char *tag, const char *when) {
    static const char *const keys[] = {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                                       "down_blocks.0.resnets.0.conv1", "up_blocks.0.resnets.0.conv_shortcut",
                                       "text_model.encoder.layers.0.mlp.fc1"};
    for (int i = 0; i < 4; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s.w.%s", tag, keys[i]);
        if (!st_find(ref, key)) continue;
        size_t nr, n;
        float *r = fixture_get(ref, key, &nr, NULL);
        const float *w = module_w(keys[i], &n);
        CHECK(w && n == nr, "%s: weight %s (%zu values, reference %zu)", tag, keys[i], w ? n : 0, nr);
        if (w && n == nr) {
            double e = rel_l2(w, r, n);
            printf("  %s weight %-58s rel L2 %.3g\n", when, keys[i], e);
            CHECK(e < WTOL, "%s %s: weight %s rel L2 %.3g", tag, when, keys[i], e);
        }
        free(r);
    }
}

/* the adapter in w, written as <g_tc.tmp>/<name>.safetensors, must fail to load or attach (expect_adapter_error) */
static void expect_error(StWriter *w, const char *name, const char *needle, const char *what) {
    expect_written_error(&g_m, w, g_tc.tmp, name, needle, what);
}

/* A fresh w holding the LoHa tensors hada_w1_a (32×2), hada_w1_b (shape sb), hada_w2_a (32×2) and, when
 * with_w2b, hada_w2_b (shape sb), named k[0..3], all with the values d. */
static void loha_writer(StWriter *w, char k[4][256], const int64_t *sb, int with_w2b, const float *d) {
    static const int64_t sa[2] = {32, 2};
    st_writer_init(w);
    st_writer_add(w, k[0], ST_F32, 2, sa, d), st_writer_add(w, k[1], ST_F32, 2, sb, d);
    st_writer_add(w, k[2], ST_F32, 2, sa, d);
    if (with_w2b) st_writer_add(w, k[3], ST_F32, 2, sb, d);
}

int main(int argc, char **argv) {
    if (test_case_begin(&g_tc, argc, argv, "lyco", &g_m, "lyco_ref.safetensors") < 0) return test_summary();
    LoraInputs in;
    lora_inputs_load(&g_tc.ref, &in);
    float s = (float)atof(st_meta_get(&g_tc.ref, "strength"));
    size_t nte;
    float *ref_base = fixture_get(&g_tc.ref, "unet_base", NULL, NULL);
    float *ref_te_base = fixture_get(&g_tc.ref, "te_base", &nte, NULL);
    float *base = malloc(in.n * sizeof(float)), *out = malloc(in.n * sizeof(float)), *o1 = malloc(in.n * sizeof(float));
    float *te = malloc(nte * sizeof(float)), *te_base = malloc(nte * sizeof(float));
    lora_unet_out(&g_m, &in, base);
    lora_te_out(&g_m, &in, te_base);
    double e = rel_l2(base, ref_base, in.n), et = rel_l2(te_base, ref_te_base, nte);
    CHECK(e < TOL && et < TOL, "base U-Net rel L2 %.3g, text encoder %.3g", e, et);

    static const struct {
        const char *tag, *kinds;
        int te;
    } files[] = {
        {"lyco_loha", "LoHa", 1},
        {"lyco_lokr", "LoKr", 1},
        {"lyco_dora", "LoRA+DoRA", 1},
        {"peft_dora", "LoRA+DoRA", 0},
    };
    for (int f = 0; f < 4; f++) {
        const char *tag = files[f].tag;
        char path[512], key[128];
        snprintf(path, sizeof path, "%s/%s.safetensors", g_tc.fixdir, tag);
        Lora a;
        int rc = lora_load(&a, path);
        CHECK(rc == 0, "load %s: %s", path, ls_last_error());
        if (rc) continue;
        char kinds[256];
        lora_kind_summary(&a, kinds, sizeof kinds);
        printf("%s: %s; %s; %d U-Net + %d text-encoder modules, %lld parameters\n", tag, lora_format_name(a.format),
               kinds, a.n_unet, a.n_te, (long long)a.n_params);
        CHECK(strstr(kinds, files[f].kinds) != NULL, "%s: kinds '%s' lack %s", tag, kinds, files[f].kinds);
        CHECK(lora_attach(&a, &g_m, 0) == 0, "attach %s: %s", tag, ls_last_error());
        snprintf(key, sizeof key, "%s.unet", tag);
        float *ref_u = fixture_get(&g_tc.ref, key, NULL, NULL), *ref_te = NULL;
        if (files[f].te) {
            snprintf(key, sizeof key, "%s.te", tag);
            ref_te = fixture_get(&g_tc.ref, key, NULL, NULL);
        }
        lora_set_strength(&a, s, s);
        for (int merged = 0; merged < 2; merged++) {
            if (merged) lora_merge(&a);
            lora_unet_out(&g_m, &in, out);
            lora_te_out(&g_m, &in, te);
            double eu = rel_l2(out, ref_u, in.n);
            double ete = ref_te ? rel_l2(te, ref_te, nte) : rel_l2(te, te_base, nte);
            printf("  %s at %.2f: U-Net rel L2 %.3g, text encoder %.3g (vs reference)\n",
                   merged ? "merged  " : "unmerged", (double)s, eu, ete);
            CHECK(eu < TOL && ete < TOL, "%s %s: U-Net %.3g, text encoder %.3g", tag, merged ? "merged" : "unmerged",
                  eu, ete);
            if (!merged) memcpy(o1, out, in.n * sizeof(float));
            else {
                double d = rel_l2(out, o1, in.n);
                printf("  merged vs unmerged: rel L2 %.3g\n", d);
                CHECK(d < 1e-5, "%s: merged vs unmerged rel L2 %.3g", tag, d);
                check_weights(&g_tc.ref, tag, "merged");
            }
        }
        /* merged strength change == re-merge at that strength */
        lora_check_remerge(&g_m, &in, &a, o1, out, tag);
        lora_unmerge(&a);
        if (!files[f].te) { /* PEFT at strength 1 against diffusers' own DoRA forward */
            lora_set_strength(&a, 1, 1);
            snprintf(key, sizeof key, "%s.unet_s1", tag);
            float *r1 = fixture_get(&g_tc.ref, key, NULL, NULL);
            e = lora_unet_rel(&g_m, &in, out, r1);
            printf("  unmerged at 1.00: U-Net rel L2 %.3g (vs diffusers + PEFT DoRA)\n", e);
            CHECK(e < TOL, "%s at 1: rel L2 %.3g vs diffusers", tag, e);
            free(r1);
        }
        lora_set_strength(&a, 0, 0);
        lora_unet_out(&g_m, &in, out);
        lora_te_out(&g_m, &in, te);
        CHECK(!memcmp(out, base, in.n * sizeof(float)) && !memcmp(te, te_base, nte * sizeof(float)),
              "%s: strength 0 is not bit-identical to the base", tag);
        lora_merge(&a);
        CHECK(lora_unet_same(&g_m, &in, out, base), "%s: merged at strength 0 is not the base", tag);
        lora_set_strength(&a, s, s);
        lora_detach(&a);
        CHECK(lora_unet_same(&g_m, &in, out, base), "%s: detach does not restore the base bit for bit", tag);
        lora_free(&a);
        free(ref_u);
        free(ref_te);
    }

    /* two adapters on the same layers (LoHa merged, DoRA live): the DoRA update is taken against the base
     * weights, so merged == unmerged still holds */
    {
        char p1[512], p2[512];
        snprintf(p1, sizeof p1, "%s/lyco_loha.safetensors", g_tc.fixdir);
        snprintf(p2, sizeof p2, "%s/lyco_dora.safetensors", g_tc.fixdir);
        Lora a1, a2;
        int ok = lora_load(&a1, p1) == 0;
        ok = ok && lora_load(&a2, p2) == 0;
        CHECK(ok, "load two: %s", ls_last_error());
        if (!ok) return test_summary();
        CHECK(lora_attach(&a1, &g_m, 0) == 0, "attach: %s", ls_last_error());
        lora_set_strength(&a1, 0.5f, 0.5f);
        lora_merge(&a1);
        CHECK(lora_attach(&a2, &g_m, 0) == 0, "attach: %s", ls_last_error());
        lora_set_strength(&a2, -0.4f, 0.3f);
        lora_unet_out(&g_m, &in, o1);
        lora_merge(&a2);
        lora_unmerge(&a1);
        lora_merge(&a1);
        e = lora_unet_rel(&g_m, &in, out, o1);
        printf("LoHa merged + DoRA live vs both merged: rel L2 %.3g\n", e);
        CHECK(e < 1e-5, "two adapters: rel L2 %.3g", e);
        lora_free(&a2);
        lora_free(&a1);
        CHECK(lora_unet_same(&g_m, &in, out, base), "freeing two adapters did not restore the base");
    }

    /* --- bad input --- */
    static float d[64 * 64 * 9];
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) d[i] = 0.01f * (float)(i % 7);
    const char *mod = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    char k[4][256], k5[256];
    snprintf(k[0], sizeof k[0], "%s.hada_w1_a", mod);
    snprintf(k[1], sizeof k[1], "%s.hada_w1_b", mod);
    snprintf(k[2], sizeof k[2], "%s.hada_w2_a", mod);
    snprintf(k[3], sizeof k[3], "%s.hada_w2_b", mod);
    int64_t sb[2] = {2, 32}, sb_bad[2] = {2, 48};
    StWriter w;
    loha_writer(&w, k, sb, 0, d);
    expect_error(&w, "loha_no_w2b", "has no hada_w2_b", "LoHa without hada_w2_b");
    loha_writer(&w, k, sb_bad, 1, d);
    expect_error(&w, "loha_48", "attn1_to_q", "LoHa ΔW of another width");
    loha_writer(&w, k, sb, 1, d);
    snprintf(k5, sizeof k5, "%s.lokr_w1", mod);
    int64_t s44[2] = {4, 4};
    st_writer_add(&w, k5, ST_F32, 2, s44, d);
    expect_error(&w, "loha_lokr", "mixes LoHa and LoKr", "LoHa and LoKr on one module");
    loha_writer(&w, k, sb, 1, d);
    snprintf(k5, sizeof k5, "%s.dora_scale", mod);
    int64_t sd_bad[2] = {31, 1};
    st_writer_add(&w, k5, ST_F32, 2, sd_bad, d + 1);
    expect_error(&w, "dora_size", "DoRA magnitude", "DoRA magnitude of the wrong size");
    st_writer_init(&w);
    int64_t sd1[2] = {32, 1};
    st_writer_add(&w, k5, ST_F32, 2, sd1, d + 1);
    expect_error(&w, "dora_alone", "only a DoRA magnitude", "DoRA magnitude alone");
    st_writer_init(&w);
    snprintf(k5, sizeof k5, "%s.lora_mid.weight", mod);
    st_writer_add(&w, k5, ST_F32, 2, s44, d);
    expect_error(&w, "lora_mid", "lora_mid", "LoCon lora_mid");

    free(base), free(out), free(o1), free(te), free(te_base), free(ref_base), free(ref_te_base);
    lora_inputs_free(&in);
    return test_case_end(&g_m, &g_tc.ref, g_tc.tmp);
}
