/* model.c — loading both checkpoint layouts, presets for `lorastyle init`, single-file export. */
#include "model.h"
#include "scenes.h" // defines: scene_vocabulary

#include <string.h>

#include <cjson/cJSON.h>

#include "common.h"    // defines: ls_set_error, ls_path_join
#include "ldm_names.h" // defines: ldm_unet_key, ldm_vae_key, ldm_prefix_key
#include "sha256.h"    // defines: sha256_file_hex

static void set_name(Model *m, const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (!*b) { /* trailing slash */
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') n--;
        const char *s = path + n;
        while (s > path && s[-1] != '/') s--;
        snprintf(m->name, sizeof m->name, "%.*s", (int)(path + n - s), s);
        return;
    }
    snprintf(m->name, sizeof m->name, "%s", b);
    char *dot = strrchr(m->name, '.');
    if (dot && !strcmp(dot, ".safetensors")) *dot = 0;
}

/* "text_model.X" → ctx + "X": text-encoder files without the text_model. level (transformers >= 5 saves
 * CLIPTextModel flattened: "embeddings.…", "encoder.layers.…", "final_layer_norm.…"; some single-file
 * merges drop it too). */
static int te_flat_key(const char *key, char *out, int cap, const void *ctx) {
    if (strncmp(key, "text_model.", 11)) return -1;
    return ldm_prefix_key(key + 11, out, cap, ctx);
}

/* First existing weights file of a diffusers component folder. */
static char *find_weights(const char *dir, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        char *p = ls_path_join(dir, names[i]);
        if (ls_file_exists(p)) return p;
        free(p);
    }
    for (int i = 0; names[i]; i++) {
        char idx[256];
        snprintf(idx, sizeof idx, "%s.index.json", names[i]);
        char *p = ls_path_join(dir, idx);
        int sharded = ls_file_exists(p);
        free(p);
        if (sharded) {
            ls_set_error("%s: sharded checkpoints (%s) are not supported; merge the shards into one "
                         ".safetensors file", dir, idx);
            return NULL;
        }
    }
    char *bin = ls_path_join(dir, "diffusion_pytorch_model.bin");
    int has_bin = ls_file_exists(bin) || (free(bin), bin = ls_path_join(dir, "pytorch_model.bin"),
                                          ls_file_exists(bin));
    free(bin);
    if (has_bin)
        ls_set_error("%s: only PyTorch .bin weights found; lorastyle reads .safetensors (convert them "
                     "with diffusers' save_pretrained(safe_serialization=True))", dir);
    else ls_set_error("%s: no weights file (expected %s)", dir, names[0]);
    return NULL;
}

/* The parts' config loaders, with one signature (part_config calls any of them). */
typedef int (*ConfigLoad)(void *cfg, const char *path);
static int unet_cfg_load(void *c, const char *path) { return unet_config_load(c, path); }
static int vae_cfg_load(void *c, const char *path) { return vae_config_load(c, path); }
static int clip_cfg_load(void *c, const char *path) { return clip_config_load(c, path); }

/* Read dir/part/config.json with load into cfg. */
static int part_config(const char *dir, const char *part, ConfigLoad load, void *cfg) {
    char *sub = ls_path_join(dir, part), *p = ls_path_join(sub, "config.json");
    int rc = load(cfg, p);
    free(p);
    free(sub);
    return rc;
}

/* part_config, then the part's weights file (the first of names in dir/part) opened as *f: LS_OK, or LS_ERR with
 * the error set. The file's path (malloc'd) goes to *path when path is not NULL. */
static int part_open(const char *dir, const char *part, ConfigLoad load, void *cfg, const char *const *names,
                     StFile *f, char **path) {
    LS_TRY(part_config(dir, part, load, cfg));
    char *sub = ls_path_join(dir, part), *w = find_weights(sub, names);
    free(sub);
    if (!w) return LS_ERR;
    int rc = st_open(f, w);
    if (path) *path = w;
    else free(w);
    return rc;
}

static int load_folder(Model *m, const char *dir) {
    static const char *const unet_w[] = {"diffusion_pytorch_model.safetensors",
                                         "diffusion_pytorch_model.fp16.safetensors",
                                         "diffusion_pytorch_model.non_ema.safetensors", NULL};
    static const char *const clip_w[] = {"model.safetensors", "model.fp16.safetensors", NULL};
    UNetConfig uc;
    VaeConfig vc;
    ClipConfig cc;
    /* U-Net (its file's path names the model's hash) */
    LS_TRY(part_open(dir, "unet", unet_cfg_load, &uc, unet_w, &m->files[0], &m->hash_path));
    unet_build(&m->unet, &uc);
    LS_TRY(wt_load(&m->unet.wt, &m->files[0], NULL, NULL));
    /* VAE */
    LS_TRY(part_open(dir, "vae", vae_cfg_load, &vc, unet_w, &m->files[1], NULL));
    vae_build(&m->vae, &vc);
    /* older diffusers VAE files name the mid attention query/key/value/proj_attn */
    int legacy = st_find(&m->files[1], "encoder.mid_block.attentions.0.query.weight") != NULL;
    LS_TRY(wt_load(&m->vae.wt, &m->files[1], legacy ? vae_legacy_attn_key : NULL, NULL));
    /* text encoder */
    LS_TRY(part_open(dir, "text_encoder", clip_cfg_load, &cc, clip_w, &m->files[2], NULL));
    clip_build(&m->clip, &cc);
    int flat = !st_find(&m->files[2], "text_model.embeddings.token_embedding.weight") &&
               st_find(&m->files[2], "embeddings.token_embedding.weight");
    LS_TRY(wt_load(&m->clip.wt, &m->files[2], flat ? te_flat_key : NULL, ""));
    /* tokenizer, scheduler */
    char *sub = ls_path_join(dir, "tokenizer");
    m->tok = tokenizer_load(sub);
    free(sub);
    if (!m->tok) return LS_ERR;
    sched_config_default(&m->sched);
    char *sp = ls_path_join(dir, "scheduler/scheduler_config.json");
    int rc = ls_file_exists(sp) ? sched_config_load(&m->sched, sp) : 0;
    free(sp);
    return rc;
}

static int load_configs(const char *dir, UNetConfig *uc, VaeConfig *vc, ClipConfig *cc) {
    LS_TRY(part_config(dir, "unet", unet_cfg_load, uc));
    LS_TRY(part_config(dir, "vae", vae_cfg_load, vc));
    return part_config(dir, "text_encoder", clip_cfg_load, cc);
}

static int load_single(Model *m, const char *path, const ModelOpts *o) {
    StFile *f = &m->files[0];
    LS_TRY(st_open(f, path));
    if (!st_find(f, "model.diffusion_model.input_blocks.0.0.weight"))
        return ls_set_error("%s: not a single-file SD checkpoint (no model.diffusion_model.* U-Net keys)",
                            path);
    const StTensor *in = st_find(f, "model.diffusion_model.input_blocks.0.0.weight");
    if (in->ndim != 4 || in->shape[1] != 4)
        return ls_set_error("%s: U-Net has %lld input channels; only SD-1.x text-to-image (4) is supported",
                            path, (long long)(in->ndim == 4 ? in->shape[1] : -1));
    UNetConfig uc;
    VaeConfig vc;
    ClipConfig cc;
    if (o->config_dir) {
        LS_TRY(load_configs(o->config_dir, &uc, &vc, &cc));
    } else {
        const StTensor *k =
            st_find(f, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight");
        if (k && k->ndim == 2 && k->shape[1] != 768)
            return ls_set_error("%s: cross-attention width %lld is not SD-1.x's 768 (SD2/SDXL are not "
                                "supported; pass --config DIR for other SD-1.x-style shapes)",
                                path, (long long)k->shape[1]);
        unet_config_sd15(&uc);
        vae_config_sd15(&vc);
        clip_config_sd15(&cc);
    }
    unet_build(&m->unet, &uc);
    LS_TRY(wt_load(&m->unet.wt, f, ldm_unet_key, &m->unet.cfg));
    vae_build(&m->vae, &vc);
    LS_TRY(wt_load(&m->vae.wt, f, ldm_vae_key, &m->vae.cfg));
    clip_build(&m->clip, &cc);
    int flat = !st_find(f, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") &&
               st_find(f, "cond_stage_model.transformer.embeddings.token_embedding.weight");
    LS_TRY(wt_load(&m->clip.wt, f, flat ? te_flat_key : ldm_prefix_key, "cond_stage_model.transformer."));
    sched_config_default(&m->sched);
    if (o->config_dir) {
        char *sp = ls_path_join(o->config_dir, "scheduler/scheduler_config.json");
        int rc = ls_file_exists(sp) ? sched_config_load(&m->sched, sp) : 0;
        free(sp);
        LS_TRY(rc);
    }
    m->hash_path = strdup(path);
    /* tokenizer: a single file has none */
    char *tdir = NULL;
    if (o->tokenizer_dir) tdir = strdup(o->tokenizer_dir);
    else if (o->config_dir) tdir = ls_path_join(o->config_dir, "tokenizer");
    else if (getenv("LORASTYLE_TOKENIZER")) tdir = strdup(getenv("LORASTYLE_TOKENIZER"));
    else {
        char *d = strdup(path), *s = strrchr(d, '/');
        if (s) *s = 0;
        tdir = ls_path_join(s ? d : ".", "tokenizer");
        free(d);
    }
    char *vj = ls_path_join(tdir, "vocab.json"), *tj = ls_path_join(tdir, "tokenizer.json");
    int ok = ls_file_exists(vj) || ls_file_exists(tj);
    free(vj);
    free(tj);
    if (!ok) {
        ls_set_error("%s: a single-file checkpoint has no tokenizer; none found in %s (pass --tokenizer "
                     "DIR, set LORASTYLE_TOKENIZER, or run `lorastyle tokenizer --bpe FILE -o DIR`)",
                     path, tdir);
        free(tdir);
        return LS_ERR;
    }
    m->tok = tokenizer_load(tdir);
    free(tdir);
    return m->tok ? LS_OK : LS_ERR;
}

int model_load(Model *m, const char *path, const ModelOpts *opts) {
    ModelOpts none = {0};
    if (!opts) opts = &none;
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    set_name(m, path);
    int rc;
    if (ls_is_dir(path)) {
        rc = load_folder(m, path);
    } else if (ls_file_exists(path)) {
        m->single_file = 1;
        rc = load_single(m, path, opts);
    } else {
        rc = ls_set_error("%s: no such model file or folder", path);
    }
    if (rc < 0) {
        char err[1024];
        snprintf(err, sizeof err, "%s", ls_last_error());
        model_free(m);
        ls_set_error("%s", err);
    }
    return rc;
}

void model_free(Model *m) {
    unet_free(&m->unet);
    vae_free(&m->vae);
    clip_free(&m->clip);
    if (m->tok) tokenizer_free(m->tok);
    for (int i = 0; i < 3; i++) st_close(&m->files[i]);
    free(m->path);
    free(m->hash_path);
    memset(m, 0, sizeof *m);
}

const char *model_hash(Model *m) {
    if (!m->hash[0] && m->hash_path) {
        char hex[65];
        if (sha256_file_hex(m->hash_path, hex) == 0) snprintf(m->hash, sizeof m->hash, "%.10s", hex);
    }
    return m->hash;
}

int64_t model_param_count(const Model *m, int64_t *u, int64_t *v, int64_t *c) {
    if (u) *u = m->unet.wt.numel;
    if (v) *v = m->vae.wt.numel;
    if (c) *c = m->clip.wt.numel;
    return m->unet.wt.numel + m->vae.wt.numel + m->clip.wt.numel;
}

/* ---------------- init presets ---------------- */

static int write_json(const char *dir, const char *sub, const char *file, char *json) {
    char *d = ls_path_join(dir, sub);
    int rc = ls_mkdir_p(d);
    char *p = ls_path_join(d, file);
    if (rc == 0) rc = ls_write_file_atomic(p, json, strlen(json));
    free(p);
    free(d);
    free(json);
    return rc;
}

/* The built-in base model's shapes (trained from scratch on datasets/scenes.h, models/base): 64×64 images, a
 * VAE with 4× downsampling (16×16×4 latents; 16/32/64 channels in 4 norm groups: at least 4 channels per group, as SD's VAE; with one channel per group, GroupNorm removed every channel's mean and the VAE could hardly learn colours), a 3-level U-Net with cross-attention at the two finer levels
 * and the mid block, a 3-layer CLIP text encoder of width 64 over the scene grammar's vocabulary. */
void model_config_base(UNetConfig *uc, VaeConfig *vc, ClipConfig *cc) {
    uc->n_levels = 3;
    int bo[3] = {64, 128, 128}, da[3] = {1, 1, 0}, ua[3] = {0, 1, 1};
    for (int i = 0; i < 3; i++) uc->block_out[i] = bo[i], uc->down_attn[i] = da[i], uc->up_attn[i] = ua[i], uc->heads[i] = 4;
    uc->layers_per_block = 1;
    uc->cross_attention_dim = 64;
    uc->sample_size = 16;
    int vb[3] = {32, 64, 128};
    vc->n_levels = 3;
    vc->norm_num_groups = 8;
    for (int i = 0; i < 3; i++) vc->block_out[i] = vb[i];
    vc->layers_per_block = 1;
    vc->sample_size = 64;
    cc->hidden = 64;
    cc->intermediate = 256;
    cc->layers = 3;
    cc->heads = 4;
}

int model_init_preset(const char *preset, const char *dir, uint64_t seed, StDtype dtype,
                      const char *bpe_path) {
    UNetConfig uc;
    VaeConfig vc;
    ClipConfig cc;
    int tiny = !strcmp(preset, "tiny"), base = !strcmp(preset, "base");
    if (tiny || base) {
        unet_config_tiny(&uc);
        vae_config_tiny(&vc);
        clip_config_tiny(&cc);
        if (base) model_config_base(&uc, &vc, &cc);
    } else if (!strcmp(preset, "sd15")) {
        unet_config_sd15(&uc);
        vae_config_sd15(&vc);
        clip_config_sd15(&cc);
        if (!bpe_path)
            return ls_set_error("init --preset sd15 needs the CLIP vocabulary: --bpe "
                                "bpe_simple_vocab_16e6.txt.gz (scripts/fetch_clip_vocab.sh fetches it)");
    } else {
        return ls_set_error("unknown preset '%s' (choose tiny, base or sd15)", preset);
    }
    LS_TRY(ls_mkdir_p(dir));
    /* tokenizer first: it is the cheapest thing to get wrong (missing bpe file) */
    char *tdir = ls_path_join(dir, "tokenizer");
    int rc = ls_mkdir_p(tdir);
    if (rc == 0) {
        if (tiny) rc = tokenizer_write_tiny(tdir);
        else if (base) { /* the scene grammar's words, each one token; any other text falls back to bytes */
            const char *words[256];
            int nw = scene_vocabulary(words, 256), nv = 0;
            rc = tokenizer_write_trained(tdir, words, (size_t)nw, 2000, &nv);
            cc.vocab_size = nv, cc.bos_id = nv - 2, cc.eos_id = cc.pad_id = nv - 1;
        } else rc = tokenizer_write_from_bpe(bpe_path, tdir);
    }
    free(tdir);
    LS_TRY(rc);

    cJSON *mi = cJSON_CreateObject();
    cJSON_AddStringToObject(mi, "_class_name", "StableDiffusionPipeline");
    cJSON_AddStringToObject(mi, "_diffusers_version", "0.6.0");
    const char *comp[][3] = {{"scheduler", "diffusers", "PNDMScheduler"},
                             {"text_encoder", "transformers", "CLIPTextModel"},
                             {"tokenizer", "transformers", "CLIPTokenizer"},
                             {"unet", "diffusers", "UNet2DConditionModel"},
                             {"vae", "diffusers", "AutoencoderKL"}};
    for (int i = 0; i < 5; i++) {
        const char *pair[2] = {comp[i][1], comp[i][2]};
        cJSON_AddItemToObject(mi, comp[i][0], cJSON_CreateStringArray(pair, 2));
    }
    /* absent optional components are [null, null] (what diffusers writes; a bare null breaks it) */
    cJSON *nn = cJSON_CreateArray();
    cJSON_AddItemToArray(nn, cJSON_CreateNull());
    cJSON_AddItemToArray(nn, cJSON_CreateNull());
    cJSON_AddItemToObject(mi, "safety_checker", nn);
    cJSON_AddItemToObject(mi, "feature_extractor", cJSON_Duplicate(nn, 1));
    cJSON_AddBoolToObject(mi, "requires_safety_checker", 0);
    char *s = cJSON_Print(mi);
    cJSON_Delete(mi);
    LS_TRY(write_json(dir, ".", "model_index.json", s));
    /* SD1.5's scheduler file; the base preset adds v-prediction on a zero-terminal-SNR schedule with
     * trailing timesteps (Lin et al. 2023): with SD1's schedule, ᾱ_T = 0.0047 leaves the mean colour of the
     * image in the noisiest training input, a 64² model learns its background from that instead of from
     * the caption, and at sampling time the seed's noise decides it (seen on the first base model). */
    char sched[1024];
    snprintf(sched, sizeof sched, "{\n  \"_class_name\": \"PNDMScheduler\",\n  \"_diffusers_version\": \"0.6.0\",\n"
                             "  \"beta_end\": 0.012,\n  \"beta_schedule\": \"scaled_linear\",\n"
                             "  \"beta_start\": 0.00085,\n  \"num_train_timesteps\": 1000,\n"
                             "  \"set_alpha_to_one\": false,\n  \"skip_prk_steps\": true,\n"
                             "  \"steps_offset\": 1,\n  \"trained_betas\": null,\n  \"clip_sample\": false%s\n}\n",
                             base ? ",\n  \"prediction_type\": \"v_prediction\",\n  \"rescale_betas_zero_snr\": true,\n"
                                    "  \"timestep_spacing\": \"trailing\"" : "");
    LS_TRY(write_json(dir, "scheduler", "scheduler_config.json", strdup(sched)));
    LS_TRY(write_json(dir, "unet", "config.json", unet_config_to_json(&uc)));
    LS_TRY(write_json(dir, "vae", "config.json", vae_config_to_json(&vc)));
    LS_TRY(write_json(dir, "text_encoder", "config.json", clip_config_to_json(&cc)));

    /* weights: each component from its own seeded stream (seed·3 + k), built and freed one at a time */
    UNet u;
    Vae v;
    Clip c;
    struct {
        WeightTable *wt;
        const char *file;
    } part[3] = {{&u.wt, "unet/diffusion_pytorch_model.safetensors"},
                 {&v.wt, "vae/diffusion_pytorch_model.safetensors"},
                 {&c.wt, "text_encoder/model.safetensors"}};
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (k == 0) unet_build(&u, &uc);
        else if (k == 1) vae_build(&v, &vc);
        else clip_build(&c, &cc);
        wt_init_random(part[k].wt, seed * 3 + (uint64_t)k);
        char *p = ls_path_join(dir, part[k].file);
        rc = wt_save(part[k].wt, p, dtype);
        free(p);
        if (k == 0) unet_free(&u);
        else if (k == 1) vae_free(&v);
        else clip_free(&c);
    }
    return rc;
}

/* ---------------- diffusers-folder and single-file export ---------------- */

static int copy_file(const char *src, const char *dst) {
    size_t n;
    char *d = ls_read_file(src, &n);
    if (!d) return LS_ERR;
    int rc = ls_write_file_atomic(dst, d, n);
    free(d);
    return rc;
}

int model_save_folder(Model *m, const char *out, StDtype dt) {
    if (m->single_file)
        return ls_set_error("%s: a single-file model has no tokenizer or configs to copy into a diffusers "
                            "folder; save it as one file", m->path);
    const char *src = m->path;
    static const char *const copies[] = {"model_index.json",          "scheduler/scheduler_config.json",
                                         "tokenizer/vocab.json",      "tokenizer/merges.txt",
                                         "tokenizer/tokenizer.json",
                                         "tokenizer/tokenizer_config.json",
                                         "tokenizer/special_tokens_map.json", NULL};
    static const char *const subs[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer", NULL};
    for (int i = 0; subs[i]; i++) {
        char *d = ls_path_join(out, subs[i]);
        int rc = ls_mkdir_p(d);
        free(d);
        LS_TRY(rc);
    }
    for (int i = 0; copies[i]; i++) {
        char *a = ls_path_join(src, copies[i]), *b = ls_path_join(out, copies[i]);
        int rc = ls_file_exists(a) ? copy_file(a, b) : 0;
        free(a);
        free(b);
        LS_TRY(rc);
    }
    struct {
        const char *cfg;
        char *json;
        const WeightTable *wt;
        const char *weights;
    } parts[3] = {{"unet/config.json", unet_config_to_json(&m->unet.cfg), &m->unet.wt,
                   "unet/diffusion_pytorch_model.safetensors"},
                  {"vae/config.json", vae_config_to_json(&m->vae.cfg), &m->vae.wt,
                   "vae/diffusion_pytorch_model.safetensors"},
                  {"text_encoder/config.json", clip_config_to_json(&m->clip.cfg), &m->clip.wt,
                   "text_encoder/model.safetensors"}};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        char *c = ls_path_join(out, parts[i].cfg), *w = ls_path_join(out, parts[i].weights);
        if (rc == 0) rc = ls_write_file_atomic(c, parts[i].json, strlen(parts[i].json));
        if (rc == 0) rc = wt_save(parts[i].wt, w, dt);
        free(c);
        free(w);
        free(parts[i].json);
    }
    return rc;
}

static void add_mapped(StWriter *w, const WeightTable *t, KeyMapFn map, const void *ctx, StDtype dt) {
    char key[512];
    for (int i = 0; i < t->n; i++) {
        const WeightSpec *s = &t->v[i];
        LS_ASSERT(map(s->name, key, sizeof key, ctx) == 0);
        st_writer_add(w, key, dt, s->ndim, s->shape, *s->ptr);
    }
}

int model_save_single_file(Model *m, const char *path, StDtype dtype) {
    StWriter w;
    st_writer_init(&w);
    st_writer_meta(&w, "format", "pt");
    add_mapped(&w, &m->unet.wt, ldm_unet_key, &m->unet.cfg, dtype);
    add_mapped(&w, &m->vae.wt, ldm_vae_key, &m->vae.cfg, dtype);
    add_mapped(&w, &m->clip.wt, ldm_prefix_key, "cond_stage_model.transformer.", dtype);
    int rc = st_writer_save(&w, path);
    st_writer_free(&w);
    return rc;
}

int model_save(Model *m, const char *out, StDtype dtype) {
    return m->single_file ? model_save_single_file(m, out, dtype) : model_save_folder(m, out, dtype);
}
