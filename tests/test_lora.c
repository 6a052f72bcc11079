/* test_lora.c — adapters at generation time.
 *
 * Against diffusers (tests/gen_lora_fixtures.py: load_lora_weights + set_adapters on the same files):
 * a kohya-format LoCon adapter (attention, feed-forward, 1×1 and 3×3 convs, time_emb_proj, text encoder)
 * at strength 0.7 gives the U-Net and text-encoder outputs within 1e-4 relative L2, unmerged and merged,
 * and the diffusers/PEFT-format copy of the same adapter gives the same, and so do copies made here: the kohya
 * file with lora_te1_ text-encoder keys (SDXL-era naming, read on SD1 by A1111 and ComfyUI) and two files
 * that mix kohya and PEFT keys (U-Net from one, text encoder from the other). Exact properties: strength 0 and
 * an adapter whose up matrices are zero reproduce the base bit for bit; unmerge restores the weights bit
 * for bit; changing the strength of a merged adapter equals merging at that strength; merged and
 * unmerged generation give the same image (mean |Δ| ≤ 1/255). Bad input: shape mismatch, NaN, unknown
 * keys, LyCORIS keys, missing up matrix, a module given twice (kohya and PEFT keys for the same layers),
 * lora_te2_ (SDXL) keys, a lora_te1_ key matching no module, malformed scales and prompt tags.
 *
 * Usage: test_lora FIXTURE_DIR [LORASTYLE] [--model DIR]. With --model (e.g. SD1.5 shapes, outside CI:
 * tests/check_sd15.sh), FIXTURE_DIR holds lora_{kohya,peft,ref}.safetensors made for that model by
 * gen_lora_fixtures.py --model DIR, and the full-generation check is skipped (it costs minutes there). */
#include <unistd.h>

#include "lora.h"
#include "pipeline.h"
#include "lora_case.h" // defines: LoraInputs, lora_inputs_load, lora_unet_out, expect_adapter_error
#include "testutil.h"

#define TOL 1e-4

static Model g_m;
static char g_tmp[64];


/* Write a copy of adapter src with tensors modified by fn(name, data, numel) (may be NULL) and, if
 * extra_key is set, one more tensor of that name and shape (values 0.01). */
static char *rewrite_adapter(const char *src, const char *name, void (*fn)(const char *, float *, size_t),
                             const char *extra_key, int ndim, const int64_t *shape) {
    StFile f;
    if (st_open(&f, src) < 0) return NULL;
    StWriter w;
    st_writer_init(&w);
    float **bufs = calloc((size_t)f.n_tensors, sizeof *bufs);
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        bufs[i] = test_add_f32(&w, &f, t, t->name); /* written at the save: fn's changes count */
        if (fn) fn(t->name, bufs[i], (size_t)t->numel);
    }
    static float extra[4096];
    for (int i = 0; i < 4096; i++) extra[i] = 0.01f;
    if (extra_key) st_writer_add(&w, extra_key, ST_F32, ndim, shape, extra);
    char *path = write_adapter(&w, g_tmp, name);
    for (int i = 0; i < f.n_tensors; i++) free(bufs[i]);
    free(bufs);
    st_close(&f);
    return path;
}

/* Tensors of src whose names start with `from`, renamed to start with `to` instead. */
typedef struct {
    const char *src, *from, *to;
} KeyCopy;

/* Write g_tmp/name.safetensors from the tensors of n KeyCopy rules (for mixed-style files). */
static char *write_keys(const char *name, const KeyCopy *c, int n) {
    StWriter w;
    st_writer_init(&w);
    StFile f[4];
    float *bufs[2048];
    int nb = 0;
    for (int i = 0; i < n; i++) {
        if (st_open(&f[i], c[i].src) < 0) return NULL;
        for (int k = 0; k < f[i].n_tensors && nb < 2048; k++) {
            const StTensor *t = &f[i].tensors[k];
            size_t lf = strlen(c[i].from);
            if (strncmp(t->name, c[i].from, lf)) continue;
            char key[512];
            snprintf(key, sizeof key, "%s%s", c[i].to, t->name + lf);
            bufs[nb++] = test_add_f32(&w, &f[i], t, key);
        }
    }
    char *path = write_adapter(&w, g_tmp, name);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    for (int i = 0; i < n; i++) st_close(&f[i]);
    return path;
}

static void zero_up(const char *name, float *d, size_t n) {
    if (strstr(name, "lora_up")) memset(d, 0, n * sizeof(float));
}
static void one_nan(const char *name, float *d, size_t n) {
    if (strstr(name, "mid_block_attentions_0_proj_in.lora_down")) d[n / 2] = NAN;
}

int main(int argc, char **argv) {
    const char *fixdir = argc > 1 ? argv[1] : "tests/fixtures";
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ls_test_lora_XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    char mdir[128], fk[512], fp[512];
    snprintf(mdir, sizeof mdir, "%s/tiny", g_tmp);
    snprintf(fk, sizeof fk, "%s/lora_kohya.safetensors", fixdir);
    snprintf(fp, sizeof fp, "%s/lora_peft.safetensors", fixdir);
    const char *model_dir = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--model")) model_dir = argv[i + 1];
    if (!model_dir) {
        CHECK(model_init_preset("tiny", mdir, 1, ST_F32, NULL) == 0, "init: %s", ls_last_error());
        model_dir = mdir;
    }
    StFile ref;
    if (test_open_case(&g_m, model_dir, &ref, fixdir, "lora_ref.safetensors") < 0) return test_summary();
    LoraInputs in;
    lora_inputs_load(&ref, &in);
    float s = (float)atof(st_meta_get(&ref, "strength"));
    size_t nte;
    float *ref_base = fixture_get(&ref, "unet_base", NULL, NULL);
    float *ref_unet = fixture_get(&ref, "unet_lora", NULL, NULL);
    float *ref_te = fixture_get(&ref, "te_lora", &nte, NULL);
    float *base = malloc(in.n * sizeof(float)), *out = malloc(in.n * sizeof(float));
    float *te = malloc(nte * sizeof(float)), *te_base = malloc(nte * sizeof(float));
    lora_unet_out(&g_m, &in, base);
    lora_te_out(&g_m, &in, te_base);
    double e = rel_l2(base, ref_base, in.n);
    CHECK(e < TOL, "base U-Net rel L2 %.3g", e);

    /* --- kohya and PEFT formats against diffusers, unmerged and merged; the same weights with lora_te1_
     *     text-encoder keys, and mixed kohya + PEFT keys --- */
    KeyCopy te1[2] = {{fk, "lora_unet_", "lora_unet_"}, {fk, "lora_te_", "lora_te1_"}};
    KeyCopy mix1[2] = {{fk, "lora_unet_", "lora_unet_"}, {fp, "text_encoder.", "text_encoder."}};
    KeyCopy mix2[2] = {{fp, "unet.", "unet."}, {fk, "lora_te_", "lora_te1_"}};
    char *derived[3] = {write_keys("te1", te1, 2), write_keys("mixed1", mix1, 2), write_keys("mixed2", mix2, 2)};
    const char *files[5] = {fk, fp, derived[0], derived[1], derived[2]};
    LoraFormat formats[5] = {LORA_KOHYA, LORA_PEFT, LORA_KOHYA, LORA_MIXED, LORA_MIXED};
    for (int f = 0; f < 5; f++) {
        Lora a;
        int rc = lora_load(&a, files[f]);
        CHECK(rc == 0, "load %s: %s", files[f], ls_last_error());
        if (rc) continue;
        printf("%s: %s, %d U-Net + %d text-encoder modules (%d conv), %lld parameters, hash %s\n", a.name,
               lora_format_name(a.format), a.n_unet, a.n_te, a.n_conv, (long long)a.n_params, a.hash);
        CHECK(a.n_unet > 0 && a.n_te > 0 && a.n_conv > 0, "expected U-Net, text-encoder and conv modules");
        CHECK(a.format == formats[f], "%s: format %d, expected %d", a.name, a.format, formats[f]);
        CHECK(lora_attach(&a, &g_m, 0) == 0, "attach: %s", ls_last_error());
        lora_set_strength(&a, s, s);
        lora_unet_out(&g_m, &in, out);
        lora_te_out(&g_m, &in, te);
        double eu = rel_l2(out, ref_unet, in.n), et = rel_l2(te, ref_te, nte);
        printf("  unmerged at %.2f: U-Net rel L2 %.3g, text encoder %.3g (vs diffusers)\n", (double)s, eu, et);
        CHECK(eu < TOL && et < TOL, "%s unmerged: U-Net %.3g, text encoder %.3g", a.name, eu, et);
        lora_merge(&a);
        lora_unet_out(&g_m, &in, out);
        lora_te_out(&g_m, &in, te);
        eu = rel_l2(out, ref_unet, in.n), et = rel_l2(te, ref_te, nte);
        printf("  merged   at %.2f: U-Net rel L2 %.3g, text encoder %.3g\n", (double)s, eu, et);
        CHECK(eu < TOL && et < TOL, "%s merged: U-Net %.3g, text encoder %.3g", a.name, eu, et);
        /* strength change on a merged adapter == a fresh merge at that strength */
        float *o1 = malloc(in.n * sizeof(float));
        lora_check_remerge(&g_m, &in, &a, o1, out, a.name);
        free(o1);
        lora_unmerge(&a);
        lora_set_strength(&a, 0, 0);
        CHECK(lora_unet_same(&g_m, &in, out, base), "strength 0 is not bit-identical to the base");
        lora_merge(&a); /* merged at 0, then unmerge: weights restored exactly */
        lora_unmerge(&a);
        lora_set_strength(&a, 1, 1);
        lora_detach(&a);
        CHECK(lora_unet_same(&g_m, &in, out, base), "detach does not restore the base bit for bit");
        lora_free(&a);
    }

    /* --- an adapter whose up matrices are zero changes nothing, merged or not --- */
    char *zp = rewrite_adapter(fk, "zero_up", zero_up, NULL, 0, NULL);
    Lora z;
    CHECK(zp && lora_load(&z, zp) == 0 && lora_attach(&z, &g_m, 0) == 0, "zero-up: %s", ls_last_error());
    CHECK(lora_unet_same(&g_m, &in, out, base), "zero-up adapter changed the U-Net output");
    lora_merge(&z);
    CHECK(lora_unet_same(&g_m, &in, out, base), "merged zero-up adapter changed the U-Net output");
    lora_free(&z);

    /* --- two adapters at once: the effects add (linear in the weights for one layer is not exact for a
     *     whole network, so compare with both merged vs both unmerged) --- */
    {
        Lora a1, a2;
        CHECK(lora_load(&a1, fk) == 0 && lora_load(&a2, fp) == 0, "load two: %s", ls_last_error());
        CHECK(lora_attach(&a1, &g_m, 0) == 0 && lora_attach(&a2, &g_m, 0) == 0, "attach two: %s",
              ls_last_error());
        lora_set_strength(&a1, 0.5f, 0.5f);
        lora_set_strength(&a2, -0.3f, 0.2f);
        float *o1 = malloc(in.n * sizeof(float));
        lora_unet_out(&g_m, &in, o1);
        lora_merge(&a1);
        lora_merge(&a2);
        e = lora_unet_rel(&g_m, &in, out, o1);
        printf("two adapters (0.5 and -0.3): merged vs unmerged rel L2 %.3g\n", e);
        CHECK(e < 1e-5, "two adapters merged vs unmerged rel L2 %.3g", e);
        lora_unmerge(&a1); /* a2 still merged into shared layers */
        e = lora_unet_rel(&g_m, &in, out, o1);
        CHECK(e < 1e-5, "partial unmerge rel L2 %.3g", e);
        lora_free(&a2);
        lora_free(&a1);
        CHECK(lora_unet_same(&g_m, &in, out, base), "freeing two adapters did not restore the base");
        free(o1);
    }

    /* --- merged vs unmerged full generation: same image --- */
    if (model_dir == mdir) {
        Lora a;
        CHECK(lora_load(&a, fk) == 0 && lora_attach(&a, &g_m, 0) == 0, "attach: %s", ls_last_error());
        lora_set_strength(&a, 0.8f, 0.8f);
        GenParams p;
        gen_params_init(&p);
        p.prompt = "a watercolor fox";
        p.steps = 4;
        p.seed = 7;
        Image i1 = {0}, i2 = {0};
        CHECK(pipeline_generate(&g_m, &p, &i1, NULL) == 0, "generate: %s", ls_last_error());
        lora_merge(&a);
        CHECK(pipeline_generate(&g_m, &p, &i2, NULL) == 0, "generate merged: %s", ls_last_error());
        double mad = 0;
        size_t np = (size_t)i1.w * i1.h * 3;
        for (size_t i = 0; i1.data && i2.data && i < np; i++) mad += abs((int)i1.data[i] - (int)i2.data[i]);
        mad /= (double)np;
        printf("generation, merged vs unmerged: mean |diff| %.4f / 255\n", mad);
        CHECK(i1.data && i2.data && mad <= 1.0, "merged vs unmerged image mean abs diff %.3f", mad);
        image_free(&i1);
        image_free(&i2);
        lora_free(&a);
    }

    /* --- bad input --- */
    char *nanp = rewrite_adapter(fk, "nan", one_nan, NULL, 0, NULL);
    expect_adapter_error(&g_m, nanp, "NaN", "NaN in a weight");
    int64_t sh2[2] = {4, 99};
    char *mism = rewrite_adapter(fp, "mismatch", NULL,
                                 "unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight_x", 2, sh2);
    expect_adapter_error(&g_m, mism, "not a LoRA tensor", "unknown key");
    {   /* shape mismatch: a module with the wrong input width (an adapter for another architecture) */
        StWriter w;
        st_writer_init(&w);
        static float d[4 * 99], u[32 * 4];
        int64_t ds[2] = {4, 99}, us[2] = {32, 4};
        st_writer_add(&w, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", ST_F32, 2, ds, d);
        st_writer_add(&w, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight", ST_F32, 2, us, u);
        char *path = write_adapter(&w, g_tmp, "other_arch");
        expect_adapter_error(&g_m, path, "attn1_to_q", "shape mismatch (another architecture)");
        /* lenient: skipped with a warning, but nothing left → error "no module" */
        Lora a;
        CHECK(lora_load(&a, path) == 0, "load: %s", ls_last_error());
        CHECK(lora_attach(&a, &g_m, 1) < 0 && strstr(ls_last_error(), "no module"), "lenient: %s", ls_last_error());
        lora_free(&a);
        free(path);

        st_writer_init(&w);
        int64_t s1[1] = {4};
        st_writer_add(&w, "lora_unet_mid_block_attentions_0_proj_in.hada_w1_a", ST_F32, 1, s1, d);
        expect_written_error(&g_m, &w, g_tmp, "loha", "LoHa", "LyCORIS LoHa");

        st_writer_init(&w);
        st_writer_add(&w, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", ST_F32, 2, ds, d);
        expect_written_error(&g_m, &w, g_tmp, "no_up", "no up", "missing up matrix");

        st_writer_init(&w);
        int64_t ws[2] = {4, 32}, wu[2] = {32, 4};
        st_writer_add(&w, "lora_unet_not_a_module.lora_down.weight", ST_F32, 2, ws, d);
        st_writer_add(&w, "lora_unet_not_a_module.lora_up.weight", ST_F32, 2, wu, u);
        expect_written_error(&g_m, &w, g_tmp, "unknown_module", "not_a_module", "module matching nothing");

        st_writer_init(&w);
        st_writer_add(&w, "lora_te1_text_model_encoder_layers_0_not_a_module.lora_down.weight", ST_F32, 2, ws, d);
        st_writer_add(&w, "lora_te1_text_model_encoder_layers_0_not_a_module.lora_up.weight", ST_F32, 2, wu, u);
        expect_written_error(&g_m, &w, g_tmp, "unknown_te1",
                             "lora_te1_text_model_encoder_layers_0_not_a_module matches no module",
                             "lora_te1_ module matching nothing");
    }
    KeyCopy twice[2] = {{fk, "lora_unet_", "lora_unet_"}, {fp, "unet.", "unet."}};
    char *twp = write_keys("twice", twice, 2);
    expect_adapter_error(&g_m, twp, "of this file already does", "one module in kohya and PEFT keys");
    KeyCopy te2[1] = {{fk, "lora_te_", "lora_te2_"}};
    char *te2p = write_keys("te2", te2, 1);
    expect_adapter_error(&g_m, te2p, "SDXL", "lora_te2_ keys");
    expect_adapter_error(&g_m, "/nonexistent/x.safetensors", "cannot open", "missing file");

    /* --- spec and prompt-tag parsing --- */
    char path[512];
    float u, t;
    CHECK(lora_parse_spec("style.safetensors:0.8", path, sizeof path, &u, &t) == 0 && !strcmp(path, "style.safetensors") &&
              u == 0.8f && t == 0.8f, "spec FILE:S");
    CHECK(lora_parse_spec("style.safetensors:1:0.5", path, sizeof path, &u, &t) == 0 && !strcmp(path, "style.safetensors") &&
              u == 1.0f && t == 0.5f, "spec FILE:S:TE");
    CHECK(lora_parse_spec("style.safetensors", path, sizeof path, &u, &t) == 0 && u == 1.0f, "spec FILE");
    CHECK(lora_parse_spec("style.safetensors:abc", path, sizeof path, &u, &t) < 0 && strstr(ls_last_error(), "abc"),
          "malformed scale: %s", ls_last_error());
    char prompt[256] = "a fox <lora:watercolor:0.6>, snow <lora:ink:te=0.2:unet=0.9><lora:x>";
    char *names[4];
    float te_s[4], un_s[4];
    int n = lora_extract_prompt_tags(prompt, names, te_s, un_s, 4);
    CHECK(n == 3, "tags: %d (%s)", n, n < 0 ? ls_last_error() : "");
    if (n == 3) {
        CHECK(!strcmp(names[0], "watercolor") && te_s[0] == 0.6f && un_s[0] == 0.6f, "tag 0");
        CHECK(!strcmp(names[1], "ink") && te_s[1] == 0.2f && un_s[1] == 0.9f, "tag 1");
        CHECK(!strcmp(names[2], "x") && te_s[2] == 1.0f && un_s[2] == 1.0f, "tag 2");
        CHECK(!strcmp(prompt, "a fox , snow "), "prompt after removing tags: '%s'", prompt);
        for (int i = 0; i < n; i++) free(names[i]);
    }
    char bad[64] = "x <lora:a:zz>";
    CHECK(lora_extract_prompt_tags(bad, names, te_s, un_s, 4) < 0 && strstr(ls_last_error(), "zz"), "bad tag");
    char unterminated[64] = "x <lora:a:1";
    CHECK(lora_extract_prompt_tags(unterminated, names, te_s, un_s, 4) < 0, "unterminated tag");

    free(base), free(out), free(te), free(te_base), free(ref_base), free(ref_unet), free(ref_te);
    lora_inputs_free(&in);
    free(zp), free(nanp), free(mism), free(twp), free(te2p);
    for (int i = 0; i < 3; i++) free(derived[i]);
    return test_case_end(&g_m, &ref, g_tmp);
}
