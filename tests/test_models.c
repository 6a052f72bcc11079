/* test_models.c — whole models against diffusers/transformers (float32, CPU) on the tiny preset.
 *
 * The reference tensors in tests/fixtures/tiny_model.safetensors come from tests/gen_model_fixtures.py,
 * which loads the model that `lorastyle init --preset tiny --seed 1` writes with diffusers'
 * from_pretrained. This test writes the same model (same seed, same portable RNG) into a temp folder,
 * loads it, and checks: tokenizer ids, text encoder (last layer and clip skip 2), U-Net (batch of two
 * timesteps incl. a fractional one; an odd latent size), VAE decoder and encoder within 1e-4 relative L2,
 * a full 8-step DDIM run with CFG and a negative prompt (mean |Δ| ≤ 1/255 on the image), and that the
 * single-file LDM export loads back to the identical U-Net output.
 *
 * Usage: test_models FIXTURE_DIR [LORASTYLE] [--model DIR --fixture FILE]  (the last form checks a model
 * made elsewhere, e.g. SD1.5 shapes, against a fixture made by gen_model_fixtures.py --preset sd15). */
#include <unistd.h>

#include "model.h"
#include "pipeline.h"
#include "testutil.h"

#define TOL 1e-4

static Model g_m;

static void check_clip(const StFile *fx) {
    size_t n;
    const StTensor *meta;
    float *ids_f = fixture_get(fx, "clip_ids", &n, &meta);
    int B = (int)meta->shape[0], L = (int)meta->shape[1];
    const char *prompts[2] = {"a watercolor painting of a red fox in the snow", ""};
    int *ids = malloc(sizeof(int) * (size_t)B * L);
    for (int b = 0; b < B; b++) {
        int rc = tokenizer_encode(g_m.tok, prompts[b], ids + b * L, L, NULL);
        int same = rc >= 0;
        for (int i = 0; same && i < L; i++) same = ids[b * L + i] == (int)ids_f[b * L + i];
        CHECK(same, "tokenizer ids differ from CLIPTokenizer for prompt %d", b);
        for (int i = 0; i < L; i++) ids[b * L + i] = (int)ids_f[b * L + i];
    }
    float *ref = fixture_get(fx, "clip_out", &n, NULL);
    float *out = malloc(n * sizeof(float));
    CHECK(clip_forward(&g_m.clip, out, ids, B, L, 0) == 0, "clip_forward: %s", ls_last_error());
    double e = rel_l2(out, ref, n);
    printf("text encoder: rel L2 %.3g\n", e);
    CHECK(e < TOL, "text encoder rel L2 %.3g", e);
    float *ref2 = fixture_get(fx, "clip_out_skip2", &n, NULL);
    CHECK(clip_forward(&g_m.clip, out, ids, B, L, 1) == 0, "clip_forward skip: %s", ls_last_error());
    e = rel_l2(out, ref2, n);
    printf("text encoder, clip skip 2: rel L2 %.3g\n", e);
    CHECK(e < TOL, "text encoder clip-skip rel L2 %.3g", e);
    free(ids_f), free(ids), free(ref), free(ref2), free(out);
}

/* U-Net on fixture input xname, per item with its own t; returns the output (caller frees). */
static float *run_unet(Model *m, const StFile *fx, const char *xname, const float *t, int nt,
                       size_t *numel) {
    const StTensor *meta;
    float *x = fixture_get(fx, xname, numel, &meta);
    size_t cn;
    const StTensor *cm;
    float *ctx = fixture_get(fx, "unet_ctx", &cn, &cm);
    int B = (int)meta->shape[0], C = (int)meta->shape[1], H = (int)meta->shape[2], W = (int)meta->shape[3];
    int Tc = (int)cm->shape[1], D = (int)cm->shape[2];
    float *out = malloc(*numel * sizeof(float));
    size_t per = (size_t)C * H * W;
    for (int b = 0; b < B; b++)
        unet_forward(&m->unet, out + b * per, x + b * per, &t[b < nt ? b : 0], ctx + (size_t)b * Tc * D, 1,
                     H, W, Tc);
    free(x);
    free(ctx);
    return out;
}

static void check_unet(const StFile *fx, int odd) {
    size_t n;
    float *t = fixture_get(fx, "unet_t", &n, NULL);
    float *out = run_unet(&g_m, fx, "unet_x", t, (int)n, &n);
    float *ref = fixture_get(fx, "unet_out", NULL, NULL);
    double e = rel_l2(out, ref, n);
    printf("unet (t=%g and t=%g): rel L2 %.3g\n", (double)t[0], (double)t[1], e);
    CHECK(e < TOL, "unet rel L2 %.3g", e);
    float *again = run_unet(&g_m, fx, "unet_x", t, 2, &n);
    CHECK(memcmp(again, out, n * sizeof(float)) == 0, "unet forward is not deterministic");
    if (odd) {
        float t500 = 500.0f;
        float *o2 = run_unet(&g_m, fx, "unet_odd_x", &t500, 1, &n);
        float *r2 = fixture_get(fx, "unet_odd_out", NULL, NULL);
        e = rel_l2(o2, r2, n);
        printf("unet at an odd latent size 11x9: rel L2 %.3g\n", e);
        CHECK(e < TOL, "unet odd-size rel L2 %.3g", e);
        free(o2), free(r2);
    }
    free(again), free(t), free(out), free(ref);
}

static void check_vae(const StFile *fx) {
    size_t n, no;
    const StTensor *meta;
    float *z = fixture_get(fx, "vae_dec_in", &n, &meta);
    float *ref = fixture_get(fx, "vae_dec_out", &no, NULL);
    float *out = malloc(no * sizeof(float));
    vae_decode(&g_m.vae, out, z, 1, (int)meta->shape[2], (int)meta->shape[3]);
    double e = rel_l2(out, ref, no);
    printf("vae decoder: rel L2 %.3g\n", e);
    CHECK(e < TOL, "vae decoder rel L2 %.3g", e);
    free(z), free(ref), free(out);

    float *img = fixture_get(fx, "vae_enc_in", &n, &meta);
    ref = fixture_get(fx, "vae_enc_out", &no, NULL);
    out = malloc(no * sizeof(float));
    int h, w;
    vae_encode(&g_m.vae, out, img, 1, (int)meta->shape[2], (int)meta->shape[3], &h, &w);
    e = rel_l2(out, ref, no);
    printf("vae encoder: rel L2 %.3g\n", e);
    CHECK(e < TOL, "vae encoder rel L2 %.3g", e);
    free(img), free(ref), free(out);
}

static void check_ddim(const StFile *fx, const char *tmp) {
    size_t n;
    const StTensor *meta;
    float *lat = fixture_get(fx, "ddim_latent", &n, &meta);
    char path[512];
    snprintf(path, sizeof path, "%s/latent.safetensors", tmp);
    StWriter w;
    st_writer_init(&w);
    st_writer_add(&w, "latent", ST_F32, meta->ndim, meta->shape, lat);
    CHECK(st_writer_save(&w, path) == 0, "write latent: %s", ls_last_error());
    st_writer_free(&w);
    GenParams p;
    gen_params_init(&p);
    p.prompt = st_meta_get(fx, "ddim_prompt");
    p.negative = st_meta_get(fx, "ddim_negative");
    p.steps = atoi(st_meta_get(fx, "ddim_steps"));
    p.cfg = (float)atof(st_meta_get(fx, "ddim_cfg"));
    p.sampler = SAMPLER_DDIM;
    p.init_latent = path;
    Image img = {0};
    CHECK(pipeline_generate(&g_m, &p, &img, NULL) == 0, "pipeline: %s", ls_last_error());
    size_t ni;
    float *ref = fixture_get(fx, "ddim_image", &ni, NULL);
    double mad = 0;
    for (size_t i = 0; i < ni && img.data; i++) mad += fabs((double)img.data[i] - ref[i]);
    mad /= (double)ni;
    printf("full DDIM run (%d steps, cfg %g, negative prompt): mean |diff| %.4f / 255\n", p.steps,
           (double)p.cfg, mad);
    CHECK(img.data && ni == (size_t)img.w * img.h * 3, "image size mismatch");
    CHECK(mad <= 1.0, "DDIM image mean abs diff %.3f > 1/255", mad);
    image_free(&img);
    free(lat);
    free(ref);
}

static void check_single_file(const StFile *fx, const char *model_dir, const char *tmp) {
    char path[512];
    snprintf(path, sizeof path, "%s/single.safetensors", tmp);
    CHECK(model_save_single_file(&g_m, path, ST_F32) == 0, "export: %s", ls_last_error());
    Model m2;
    ModelOpts o = {.config_dir = model_dir};
    int rc = model_load(&m2, path, &o);
    CHECK(rc == 0, "load single file: %s", ls_last_error());
    if (rc) return;
    size_t n;
    float *t = fixture_get(fx, "unet_t", &n, NULL);
    float *a = run_unet(&g_m, fx, "unet_x", t, 2, &n);
    float *b = run_unet(&m2, fx, "unet_x", t, 2, &n);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0, "single-file U-Net output differs from the folder's");
    printf("single-file LDM export reloads with identical U-Net output\n");
    free(t), free(a), free(b);
    model_free(&m2);
}

int main(int argc, char **argv) {
    const char *fixdir = argc > 1 ? argv[1] : "tests/fixtures";
    const char *model_dir = NULL, *fixture = NULL;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--model")) model_dir = argv[i + 1];
        if (!strcmp(argv[i], "--fixture")) fixture = argv[i + 1];
    }
    char fxpath[512], tmp[] = "/tmp/ls_test_models_XXXXXX", mdir[600];
    if (!mkdtemp(tmp)) return 1;
    if (!fixture) {
        snprintf(fxpath, sizeof fxpath, "%s/tiny_model.safetensors", fixdir);
        fixture = fxpath;
    }
    if (!model_dir) {
        snprintf(mdir, sizeof mdir, "%s/tiny", tmp);
        int rc = model_init_preset("tiny", mdir, 1, ST_F32, NULL);
        CHECK(rc == 0, "init tiny: %s", ls_last_error());
        if (rc) return test_summary();
        model_dir = mdir;
    }
    StFile fx;
    if (st_open(&fx, fixture) < 0) {
        printf("FAIL: %s\n", ls_last_error());
        return 1;
    }
    double t0 = ls_time();
    int rc = model_load(&g_m, model_dir, NULL);
    CHECK(rc == 0, "load %s: %s", model_dir, ls_last_error());
    if (rc) return test_summary();
    printf("loaded %s in %.2f s\n", model_dir, ls_time() - t0);
    check_clip(&fx);
    check_unet(&fx, st_find(&fx, "unet_odd_x") != NULL);
    check_vae(&fx);
    if (st_find(&fx, "ddim_latent")) check_ddim(&fx, tmp);
    if (!strcmp(g_m.name, "tiny")) check_single_file(&fx, model_dir, tmp);
    model_free(&g_m);
    st_close(&fx);
    test_remove_dir(tmp);
    return test_summary();
}
