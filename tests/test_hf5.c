/* test_hf5.c — a pipeline folder written by today's diffusers + transformers 5 loads and encodes as
 * transformers does.
 *
 * fixtures/hf5_pipeline/ is StableDiffusionPipeline.save_pretrained output (tests/gen_hf5_fixtures.py):
 * its text encoder's keys have no "text_model." level and its tokenizer is tokenizer.json only (merges as
 * ["a", "b"] pairs). fixtures/hf5_ref.safetensors holds transformers' token ids and text-encoder outputs
 * (last layer and clip skip 2) for a few prompts. Checked: model_load of the folder, ids equal, outputs within
 * 1e-5 relative L2; the same tokenizer.json with the older "a b" merge strings; a single-file checkpoint
 * whose text-encoder keys lack "text_model." (cond_stage_model.transformer.encoder.…); bad tokenizer.json
 * files give one-line errors naming the file.
 *
 * Usage: test_hf5 FIXTURE_DIR */
#include <cjson/cJSON.h>

#include "model.h"
#include "testutil.h"

#define TOL 1e-5

/* Token ids and both text-encoder outputs of every fixture prompt against m (label names the variant). */
static void check_encoder(const Model *m, const Tokenizer *tok, const StFile *fx, const char *label) {
    int np = atoi(st_meta_get(fx, "n_prompts"));
    double worst = 0, worst_abs = 0;
    for (int p = 0; p < np; p++) {
        char name[32];
        size_t n;
        snprintf(name, sizeof name, "prompt_%d", p);
        const char *prompt = st_meta_get(fx, name);
        snprintf(name, sizeof name, "ids_%d", p);
        float *ref_ids = fixture_get(fx, name, &n, NULL);
        int L = (int)n, ids[77], same = L == 77 && tokenizer_encode(tok, prompt, ids, L, NULL) >= 0;
        for (int i = 0; same && i < L; i++) same = ids[i] == (int)ref_ids[i];
        CHECK(same, "%s: token ids of prompt %d differ from transformers'", label, p);
        for (int i = 0; i < L; i++) ids[i] = (int)ref_ids[i];
        for (int skip = 0; m && skip < 2; skip++) {
            snprintf(name, sizeof name, skip ? "skip2_%d" : "out_%d", p);
            float *ref = fixture_get(fx, name, &n, NULL), *out = malloc(n * sizeof(float));
            CHECK(clip_forward(&m->clip, out, ids, 1, L, skip) == 0, "clip_forward: %s", ls_last_error());
            double e = rel_l2(out, ref, n);
            worst = fmax(worst, e);
            worst_abs = fmax(worst_abs, max_abs_diff(out, ref, n));
            CHECK(e < TOL, "%s: prompt %d %s rel L2 %.3g", label, p, skip ? "clip skip 2" : "last layer", e);
            free(ref), free(out);
        }
        free(ref_ids);
    }
    if (m) printf("%s: %d prompts, ids equal, text encoder rel L2 ≤ %.3g, max |Δ| %.3g\n", label, np, worst, worst_abs);
    else printf("%s: %d prompts, ids equal\n", label, np);
}

static void write_text(const char *dir, const char *file, const char *text) {
    char *p = ls_path_join(dir, file);
    CHECK(ls_write_file_atomic(p, text, strlen(text)) == 0, "write %s: %s", p, ls_last_error());
    free(p);
}

/* tokenizer.json with the merges rewritten as "a b" strings (what tokenizers < 0.20 wrote). */
static void check_string_merges(const StFile *fx, const char *fixdir, const char *tmp) {
    char src[600], dir[600];
    snprintf(src, sizeof src, "%s/hf5_pipeline/tokenizer/tokenizer.json", fixdir);
    snprintf(dir, sizeof dir, "%s/tok_old", tmp);
    CHECK(ls_mkdir_p(dir) == 0, "mkdir %s", dir);
    size_t len;
    char *text = ls_read_file(src, &len);
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
    CHECK(cJSON_IsArray(merges) && cJSON_IsArray(merges->child), "%s: merges are not [a, b] pairs", src);
    cJSON *strs = cJSON_CreateArray();
    for (cJSON *m = merges ? merges->child : NULL; m; m = m->next) {
        char s[256];
        snprintf(s, sizeof s, "%s %s", cJSON_GetArrayItem(m, 0)->valuestring, cJSON_GetArrayItem(m, 1)->valuestring);
        cJSON_AddItemToArray(strs, cJSON_CreateString(s));
    }
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "model"), "merges", strs);
    char *out = cJSON_PrintUnformatted(root);
    write_text(dir, "tokenizer.json", out);
    Tokenizer *t = tokenizer_load(dir);
    CHECK(t != NULL, "load %s: %s", dir, ls_last_error());
    if (t) check_encoder(NULL, t, fx, "tokenizer.json with \"a b\" merge strings");
    tokenizer_free(t);
    free(out), free(text);
    cJSON_Delete(root);
}

/* A tokenizer folder holding only tokenizer.json = text must fail with an error containing want. */
static void expect_bad(const char *tmp, const char *text, const char *want) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    CHECK(ls_mkdir_p(dir) == 0, "mkdir %s", dir);
    write_text(dir, "tokenizer.json", text);
    Tokenizer *t = tokenizer_load(dir);
    const char *e = t ? "" : ls_last_error();
    CHECK(!t && strstr(e, "tokenizer.json") && strstr(e, want) && !strchr(e, '\n'),
          "bad tokenizer.json %.60s: error \"%s\" should name the file and say \"%s\"", text, e, want);
    tokenizer_free(t);
}

/* The folder's model saved as one LDM file, its text-encoder keys then stripped of "text_model."
 * (as some merged checkpoints are), loaded back with --config. */
static void check_flat_single_file(const Model *m, const StFile *fx, const char *fixdir, const char *tmp) {
    char full[600], flat[600], cfg[600];
    snprintf(full, sizeof full, "%s/full.safetensors", tmp);
    snprintf(flat, sizeof flat, "%s/flat.safetensors", tmp);
    snprintf(cfg, sizeof cfg, "%s/hf5_pipeline", fixdir);
    CHECK(model_save_single_file((Model *)m, full, ST_F32) == 0, "export: %s", ls_last_error());
    StFile f;
    if (st_open(&f, full) < 0) {
        CHECK(0, "%s", ls_last_error());
        return;
    }
    StWriter w;
    st_writer_init(&w);
    float **data = calloc((size_t)f.n_tensors, sizeof *data);
    int renamed = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        const char *pre = "cond_stage_model.transformer.text_model.";
        char key[512];
        if (!strncmp(t->name, pre, strlen(pre)))
            snprintf(key, sizeof key, "cond_stage_model.transformer.%s", t->name + strlen(pre)), renamed++;
        else snprintf(key, sizeof key, "%s", t->name);
        data[i] = test_add_f32(&w, &f, t, key);
    }
    CHECK(renamed > 0, "no text_model. keys in %s", full);
    test_writer_save(&w, flat);
    for (int i = 0; i < f.n_tensors; i++) free(data[i]);
    free(data);
    st_close(&f);
    Model m2;
    ModelOpts o = {.config_dir = cfg};
    int rc = model_load(&m2, flat, &o);
    CHECK(rc == 0, "load %s: %s", flat, ls_last_error());
    if (rc) return;
    check_encoder(&m2, m2.tok, fx, "single file without text_model.");
    model_free(&m2);
}

int main(int argc, char **argv) {
    const char *fixdir = argc > 1 ? argv[1] : "tests/fixtures";
    char folder[512], fxpath[512], tmp[] = "/tmp/ls_test_hf5_XXXXXX";
    snprintf(folder, sizeof folder, "%s/hf5_pipeline", fixdir);
    snprintf(fxpath, sizeof fxpath, "%s/hf5_ref.safetensors", fixdir);
    if (!mkdtemp(tmp)) return 1;
    StFile fx;
    if (st_open(&fx, fxpath) < 0) {
        printf("FAIL: %s\n", ls_last_error());
        return 1;
    }
    printf("fixture from diffusers %s, transformers %s, tokenizers %s\n", st_meta_get(&fx, "diffusers"),
           st_meta_get(&fx, "transformers"), st_meta_get(&fx, "tokenizers"));
    Model m;
    int rc = model_load(&m, folder, NULL);
    CHECK(rc == 0, "load %s: %s", folder, ls_last_error());
    if (rc == 0) {
        check_encoder(&m, m.tok, &fx, "diffusers/transformers-5 folder");
        check_flat_single_file(&m, &fx, fixdir, tmp);
        model_free(&m);
    }
    check_string_merges(&fx, fixdir, tmp);
    expect_bad(tmp, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "not a BPE tokenizer");
    expect_bad(tmp, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", "no \"merges\" list");
    expect_bad(tmp, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}",
               "merges[0]: merge \"a b\" uses a token missing");
    expect_bad(tmp, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}",
               "merges[0]: expected");
    expect_bad(tmp, "{\"model\": ", "not valid JSON");
    st_close(&fx);
    test_remove_dir(tmp);
    return test_summary();
}
