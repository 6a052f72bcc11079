/* test_base_model — the shipped base model (models/base): it loads, is what the README says (f16, ≤ 20 MB,
 * SD-1.x folder layout, the scene grammar's vocabulary with a byte-level fallback), and it draws what it is
 * told: fixed-seed images of one-object prompts have the named colour and background (datasets/quality.h).
 * argv[1] = tests/fixtures (the model is ../../models/base from there). */
#include <sys/stat.h>

#include "pipeline.h" // defines: GenParams, pipeline_generate
#include "quality.h"  // defines: quality_score_caption
#include "scenes.h"   // defines: scene_vocabulary
#include "testutil.h"
#include "tokenizer.h"

static long file_size(const char *dir, const char *rel) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char dir[1500];
    snprintf(dir, sizeof dir, "%s/../../models/base", argv[1]);
    Model m;
    if (model_load(&m, dir, NULL) < 0) {
        printf("FAIL %s: %s\n", dir, ls_last_error());
        return 1;
    }
    /* shipped as f16 safetensors, at most 20 MB in all */
    const char *files[3] = {"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                            "text_encoder/model.safetensors"};
    long total = 0;
    for (int i = 0; i < 3; i++) {
        long s = file_size(dir, files[i]);
        CHECK(s > 0, "%s missing", files[i]);
        total += s;
        CHECK(m.files[i].n_tensors > 0 && m.files[i].tensors[0].dtype == ST_F16, "%s is not f16", files[i]);
    }
    CHECK(total <= 20L * 1000 * 1000, "weights are %ld bytes (> 20 MB)", total);
    printf("base model: %ld bytes of f16 weights\n", total);
    int size = m.unet.cfg.sample_size * vae_scale_factor(&m.vae.cfg);
    CHECK(size == 64, "default image size %d", size);

    /* every word of the scene grammar is one token; other text falls back to bytes and still encodes */
    const char *words[256];
    int nw = scene_vocabulary(words, 256), L = tokenizer_max_length(m.tok);
    int *ids = mallocCheck((size_t)L * sizeof(int)), dropped = 0;
    for (int i = 0; i < nw; i++) {
        CHECK(tokenizer_encode(m.tok, words[i], ids, L, &dropped) == LS_OK, "%s", words[i]);
        CHECK(ids[2] == tokenizer_eos(m.tok), "'%s' is more than one token", words[i]);
    }
    CHECK(tokenizer_encode(m.tok, "a zebra in Zürich, 2024!", ids, L, &dropped) == LS_OK, "fallback: %s",
          ls_last_error());
    free(ids);

    /* it draws what it is told: colour and background of fixed-seed images (20 steps Euler a, CFG 7.5) */
    static const struct {
        const char *prompt;
        uint64_t seed;
    } cases[] = {
        {"a large red circle in the centre on a white background", 1},
        {"a large blue square on the left on a yellow background", 2},
        {"a large green triangle at the top on a black background", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        GenParams p;
        gen_params_init(&p);
        p.prompt = cases[i].prompt;
        p.seed = cases[i].seed;
        Image img = {0};
        CHECK(pipeline_generate(&m, &p, &img, NULL) == LS_OK, "%s", ls_last_error());
        QualityResult q;
        Scene want;
        CHECK(quality_score_caption(img.data, img.w, cases[i].prompt, 0, &q) == LS_OK, "%s", ls_last_error());
        scene_parse(&want, cases[i].prompt);
        CHECK(q.found && q.colour_ok, "'%s' seed %llu: object colour %s", cases[i].prompt,
              (unsigned long long)cases[i].seed, q.colour >= 0 ? scene_colour_names[q.colour] : "(none)");
        CHECK(q.bg == want.bg, "'%s' seed %llu: background %s", cases[i].prompt, (unsigned long long)cases[i].seed,
              q.bg >= 0 ? scene_colour_names[q.bg] : "(none)");
        printf("%s (seed %llu): colour %s, shape %s, position %s, background %s\n", cases[i].prompt,
               (unsigned long long)cases[i].seed, q.colour >= 0 ? scene_colour_names[q.colour] : "-",
               q.shape >= 0 ? scene_shape_names[q.shape] : "-", q.pos >= 0 ? scene_position_names[q.pos] : "-",
               q.bg >= 0 ? scene_colour_names[q.bg] : "-");
        image_free(&img);
    }
    /* a prompt outside the grammar still generates */
    GenParams p;
    gen_params_init(&p);
    p.prompt = "a photo of a cat";
    p.seed = 5;
    p.steps = 4;
    Image img = {0};
    CHECK(pipeline_generate(&m, &p, &img, NULL) == LS_OK, "out-of-grammar prompt: %s", ls_last_error());
    image_free(&img);
    model_free(&m);
    return test_summary();
}
