/* test_train_methods.c — `lorastyle train` beyond U-Net LoRA (src/train/train.c), on a fresh tiny model and
 * datasets/sample_style at 64×64:
 *  1. --train-text-encoder: the file holds the 6·layers text-encoder modules besides the U-Net's; after ONE
 *     AdamW step (no clipping) every up matrix moved by its own learning rate (Adam's first step moves each
 *     weight with a non-zero gradient by lr·g/(|g|+eps) ≈ lr): --lr 1e-3 for the U-Net, --text-encoder-lr
 *     1e-4 for the text encoder — so gradients reach the encoder and each part gets its rate; a run stopped
 *     and resumed writes the byte-identical adapter;
 *  2. --method full: overfits one image (fixed t and noise) faster than LoRA; writes a diffusers folder
 *     that model_load reads, whose U-Net equals the checkpoint's trained tensors exactly and differs from
 *     the base while its VAE and text encoder are the base's, bit for bit; --save-precision fp16 writes F16
 *     tensors; stop + resume gives the byte-identical U-Net file;
 *  3. --method adapter: a bottleneck-adapter file (3 per transformer block, lorastyle_method "adapter")
 *     that lora_load and lora_attach accept, with trained (non-zero) up matrices; --save-every writes
 *     kohya-named NAME-step00000003.safetensors files besides the final NAME.safetensors;
 *  4. --validation-split: rows at step 0, every --validate-every steps and the end; the step-0 loss is the
 *     base model's, the same for every method; resumed runs write the same validation.csv (in 1.);
 *  5. LoRA on SD1.x's 1×1-conv proj_in/proj_out is saved as 4-d tensors (what diffusers requires), other
 *     Linear targets as 2-d, and a reloaded file re-saves with the same shapes; --targets groups (all =
 *     attn,ff,proj,conv = the default; attn = the attention projections, values as naming them), conv rank
 *     0, suffixes naming other convolutions, and entries that match nothing, refused by name;
 *  6. options that do not fit the method are refused by name.
 * Usage: test_train_methods FIXTURE_DIR */
#include <math.h>
#include <unistd.h>

#include "lora.h"
#include "model.h"
#include "safetensors.h"
#include "train_case.h" // defines: g_tmp, g_model, g_data, base_opts, same_file, train_case_main
#include "train.h"

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* The adapter a run wrote and the base model it trained on (each load a check). LS_ERR when the adapter
 * does not load (then neither is loaded). */
static int load_result(const TrainResult *r, Lora *a, Model *m) {
    if (lora_load(a, r->adapter_path) != LS_OK) {
        CHECK(0, "lora_load: %s", ls_last_error());
        return LS_ERR;
    }
    CHECK(model_load(m, g_model, NULL) == LS_OK, "model_load: %s", ls_last_error());
    return LS_OK;
}

/* Run o twice: straight through, and stopped after `stop` steps then resumed; the file `rel` (and `rel2`
 * unless NULL) under each OUT must be byte-identical. */
static void check_same_under(const char *a, const char *b, const char *tag, const char *rel) {
    char pa[900], pb[900];
    snprintf(pa, sizeof pa, "%s/%s", a, rel);
    snprintf(pb, sizeof pb, "%s/%s", b, rel);
    CHECK(same_file(pa, pb), "%s: resumed %s is byte-identical to the uninterrupted run's", tag, rel);
}

static void check_resume(TrainOptions *o, const char *tag, int stop, const char *rel, const char *rel2) {
    char a[700], b[700], pa[900], pb[900];
    snprintf(a, sizeof a, "%s/%s_full", g_tmp, tag);
    snprintf(b, sizeof b, "%s/%s_stopped", g_tmp, tag);
    TrainResult r;
    o->out = a;
    CHECK(train_run(o, &r) == LS_OK, "%s uninterrupted: %s", tag, ls_last_error());
    o->out = b, o->stop_after = stop;
    CHECK(train_run(o, &r) == TRAIN_INTERRUPTED && r.steps_done == stop, "%s stopped: %s", tag, ls_last_error());
    o->stop_after = 0, o->resume = 1;
    CHECK(train_run(o, &r) == LS_OK && r.start_step == stop, "%s resumed: %s", tag, ls_last_error());
    o->resume = 0;
    snprintf(pa, sizeof pa, "%s/%s", a, rel);
    snprintf(pb, sizeof pb, "%s/%s", b, rel);
    CHECK(same_file(pa, pb), "%s: resumed %s is byte-identical to the uninterrupted run's", tag, rel);
    if (rel2) check_same_under(a, b, tag, rel2);
}

static void test_text_encoder(void) {
    char out[600];
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "te1");
    o.train_text_encoder = 1, o.steps = 1, o.lr = 1e-3f, o.text_encoder_lr = 1e-4f, o.max_grad_norm = 0;
    TrainResult r;
    CHECK(train_run(&o, &r) == LS_OK, "TE run: %s", ls_last_error());
    Lora a;
    Model m;
    if (load_result(&r, &a, &m) < 0) return;
    CHECK(a.n_te == 6 * m.clip.cfg.layers && a.n_unet > 0, "%d text-encoder modules for %d layers, %d U-Net", a.n_te,
          m.clip.cfg.layers, a.n_unet);
    const char *tlr = st_meta_get(&a.file, "ss_text_encoder_lr");
    CHECK(tlr && fabs(atof(tlr) - 1e-4) < 1e-9, "ss_text_encoder_lr %s", tlr ? tlr : "(missing)");
    int bad = 0;
    float lo[2] = {1, 1}, hi[2] = {0, 0};
    for (int i = 0; i < a.n_mods; i++) {
        const LoraModule *lm = &a.mods[i];
        int c = lm->component;
        float mx = max_abs(lm->up, (size_t)(lm->out * lm->rank)), lr = c == LORA_TE ? 1e-4f : 1e-3f;
        lo[c] = fminf(lo[c], mx), hi[c] = fmaxf(hi[c], mx);
        if (!(mx > 0.9f * lr && mx <= lr * 1.0001f)) bad++;
    }
    CHECK(bad == 0, "%d modules whose first step is not ≈ their lr: U-Net max|up| %g..%g, text encoder %g..%g", bad,
          (double)lo[0], (double)hi[0], (double)lo[1], (double)hi[1]);
    CHECK(lora_attach(&a, &m, 0) == LS_OK, "attach: %s", ls_last_error());
    lora_free(&a);
    model_free(&m);

    base_opts(&o, NULL);
    o.train_text_encoder = 1, o.steps = 6, o.lr = 1e-3f, o.batch = 2, o.shuffle_tags = 1, o.checkpoint_every = 2;
    o.validation_split = 0.2f, o.validate_every = 2; /* the validation re-encodes through the trained TE */
    check_resume(&o, "te", 3, "style.safetensors", "validation.csv");
}

static int load_ckpt_param(const StFile *f, const char *name, float *dst) {
    char key[700];
    snprintf(key, sizeof key, "p.%s", name);
    const StTensor *t = st_find(f, key);
    return t ? st_to_f32(f, t, dst, 1) : LS_ERR;
}

static void test_full(void) {
    /* overfitting: full fine-tuning against LoRA on the same single-image, fixed-noise problem */
    char data1[700], out[700];
    one_image_data(data1, sizeof data1);
    double ratio[2];
    for (int full = 0; full < 2; full++) {
        TrainOptions o;
        base_opts_at(&o, out, sizeof out, "overfit%d", full);
        o.data_dir = data1, o.method = full ? METHOD_FULL : METHOD_LORA, o.steps = 20, o.lr = 1e-3f;
        o.fixed_t = 500, o.fixed_noise = 1;
        TrainResult r;
        CHECK(train_run(&o, &r) == LS_OK, "overfit %d: %s", full, ls_last_error());
        ratio[full] = r.last_loss / r.first_loss;
        if (full) CHECK(r.trainable == r.unet_params, "full: %lld trainable of %lld", (long long)r.trainable,
                        (long long)r.unet_params);
    }
    printf("overfit 20 steps: loss ratio LoRA %.3f, full %.3f\n", ratio[0], ratio[1]);
    CHECK(ratio[1] < 0.5 && ratio[1] < ratio[0], "full fine-tuning overfits (%.3f) faster than LoRA (%.3f)", ratio[1],
          ratio[0]);

    /* the written model */
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "full1");
    o.method = METHOD_FULL, o.steps = 4, o.lr = 1e-3f, o.samples = 1, o.sample_steps = 2;
    TrainResult r;
    CHECK(train_run(&o, &r) == LS_OK, "full run: %s", ls_last_error());
    Model base, tuned;
    char mp[800], ck[800], grid[800];
    snprintf(mp, sizeof mp, "%s/style", out);
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", out);
    snprintf(grid, sizeof grid, "%s/samples/step_000004.png", out);
    CHECK(ls_is_dir(mp) && !strcmp(r.adapter_path, mp), "output folder %s (%s)", mp, r.adapter_path);
    CHECK(ls_file_exists(grid), "sample grid %s", grid);
    if (model_load(&base, g_model, NULL) != LS_OK || model_load(&tuned, mp, NULL) != LS_OK) {
        CHECK(0, "model_load: %s", ls_last_error());
        return;
    }
    StFile f;
    CHECK(st_open(&f, ck) == LS_OK, "checkpoint: %s", ls_last_error());
    int same_ck = 1, changed = 0;
    for (int i = 0; i < tuned.unet.wt.n; i++) {
        const WeightSpec *s = &tuned.unet.wt.v[i];
        float *p = malloc((size_t)s->numel * sizeof(float));
        if (load_ckpt_param(&f, s->name, p) < 0 || memcmp(p, *s->ptr, (size_t)s->numel * sizeof(float)))
            same_ck = 0;
        if (memcmp(*base.unet.wt.v[i].ptr, *s->ptr, (size_t)s->numel * sizeof(float))) changed++;
        free(p);
    }
    st_close(&f);
    CHECK(same_ck, "the saved U-Net equals the checkpoint's trained tensors");
    CHECK(changed > tuned.unet.wt.n / 2, "%d of %d U-Net tensors changed", changed, tuned.unet.wt.n);
    int frozen = 1;
    for (int i = 0; i < base.vae.wt.n; i++)
        frozen &= !memcmp(*base.vae.wt.v[i].ptr, *tuned.vae.wt.v[i].ptr, (size_t)base.vae.wt.v[i].numel * 4);
    for (int i = 0; i < base.clip.wt.n; i++)
        frozen &= !memcmp(*base.clip.wt.v[i].ptr, *tuned.clip.wt.v[i].ptr, (size_t)base.clip.wt.v[i].numel * 4);
    CHECK(frozen, "VAE and text encoder are the base's");
    model_free(&base), model_free(&tuned);

    base_opts_at(&o, out, sizeof out, "full16");
    o.method = METHOD_FULL, o.steps = 1, o.save_precision = SAVE_FP16;
    CHECK(train_run(&o, &r) == LS_OK, "fp16 run: %s", ls_last_error());
    snprintf(mp, sizeof mp, "%s/style/unet/diffusion_pytorch_model.safetensors", out);
    if (st_open(&f, mp) == LS_OK) {
        int f16 = f.n_tensors > 0;
        for (int i = 0; i < f.n_tensors; i++) f16 &= f.tensors[i].dtype == ST_F16;
        CHECK(f16, "--save-precision fp16: every U-Net tensor is F16");
        st_close(&f);
    } else CHECK(0, "open %s: %s", mp, ls_last_error());

    base_opts(&o, NULL);
    o.method = METHOD_FULL, o.steps = 5, o.lr = 1e-3f, o.checkpoint_every = 2, o.noise_offset = 0.05f;
    check_resume(&o, "full", 3, "style/unet/diffusion_pytorch_model.safetensors", NULL);
}

static void test_adapter_method(void) {
    char out[600];
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "adapter");
    o.method = METHOD_ADAPTER, o.steps = 6, o.lr = 1e-3f, o.rank = 8, o.save_every = 3;
    TrainResult r;
    CHECK(train_run(&o, &r) == LS_OK, "adapter run: %s", ls_last_error());
    char mid[700], last[700];
    snprintf(mid, sizeof mid, "%s/style-step00000003.safetensors", out);
    snprintf(last, sizeof last, "%s/style-step00000006.safetensors", out);
    Lora a3;
    CHECK(lora_load(&a3, mid) == LS_OK && !ls_file_exists(last), "--save-every 3: %s loads, no copy of the final: %s",
          mid, ls_last_error());
    lora_free(&a3);
    Lora a;
    Model m;
    if (load_result(&r, &a, &m) < 0) return;
    int blocks = 0;
    for (int i = 0; i < m.unet.wt.n_mods; i++)
        if (strstr(m.unet.wt.mods[i].name, "attn2.to_out.0")) blocks++;
    const char *meth = st_meta_get(&a.file, "lorastyle_method");
    CHECK(a.format == LORA_ADAPTER && a.n_mods == 3 * blocks && meth && !strcmp(meth, "adapter"),
          "format %s, %d modules for %d transformer blocks, method %s", lora_format_name(a.format), a.n_mods, blocks,
          meth ? meth : "(none)");
    int zero_up = 0;
    for (int i = 0; i < a.n_mods; i++) zero_up += max_abs(a.mods[i].up, (size_t)(a.mods[i].out * a.mods[i].rank)) == 0;
    CHECK(zero_up == 0 && a.mods[0].rank == 8, "%d modules still have up = 0 (rank %d)", zero_up, a.mods[0].rank);
    CHECK(r.trainable == a.n_params, "reported %lld trainable, file %lld", (long long)r.trainable,
          (long long)a.n_params);
    CHECK(lora_attach(&a, &m, 0) == LS_OK, "attach: %s", ls_last_error());
    lora_free(&a);
    model_free(&m);
}

/* --validation-split: the step-0 validation loss is the base model's, so every method measures the same
 * value there; rows at step 0, every --validate-every steps and the end; the report names the best step. */
static void test_validation(void) {
    const TrainMethod ms[3] = {METHOD_LORA, METHOD_ADAPTER, METHOD_FULL};
    double v0[3] = {0};
    for (int k = 0; k < 3; k++) {
        char out[600], path[700];
        TrainOptions o;
        base_opts_at(&o, out, sizeof out, "val%d", k);
        o.method = ms[k], o.steps = 5, o.lr = 1e-3f, o.validation_split = 0.3f, o.validate_every = 2;
        TrainResult r;
        CHECK(train_run(&o, &r) == LS_OK, "validation run %d: %s", k, ls_last_error());
        v0[k] = r.val_first;
        snprintf(path, sizeof path, "%s/validation.csv", out);
        size_t n;
        char *csv = ls_read_file(path, &n);
        int steps[8], ns = 0;
        for (char *p = csv ? strchr(csv, '\n') : NULL; p && p[1] && ns < 8; p = strchr(p + 1, '\n'))
            steps[ns++] = atoi(p + 1);
        CHECK(r.n_val == 4 && ns == 4 && steps[0] == 0 && steps[1] == 2 && steps[2] == 4 && steps[3] == 5,
              "method %d: %d validations, csv rows %d (steps 0, 2, 4, 5)", k, r.n_val, ns);
        free(csv);
        snprintf(path, sizeof path, "%s/report.txt", out);
        char *rep = ls_read_file(path, &n);
        CHECK(rep && strstr(rep, "validation loss:") && strstr(rep, "3 held-out images") &&
                  strstr(rep, "held out for the validation loss"),
              "report: %s", rep ? rep : "(none)");
        free(rep);
    }
    printf("step-0 validation loss: lora %.6f, adapter %.6f, full %.6f\n", v0[0], v0[1], v0[2]);
    CHECK(v0[0] > 0 && v0[0] == v0[1] && v0[0] == v0[2], "the same base model gives the same step-0 validation loss");
}

/* kohya/diffusers store the LoRA of a layer that is a Conv2d in the checkpoint as 4-d tensors — also for
 * SD1.x's 1×1 proj_in/proj_out, which lorastyle runs as Linear layers (diffusers refuses 2-d ones there). */
static void test_conv1x1_shapes(void) {
    char out[600], path[700];
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "proj");
    o.steps = 1, o.targets = "proj_in,proj_out,attn2.to_k";
    TrainResult r;
    CHECK(train_run(&o, &r) == LS_OK, "proj run: %s", ls_last_error());
    snprintf(path, sizeof path, "%s/style.safetensors", out);
    StFile f;
    if (st_open(&f, path) != LS_OK) {
        CHECK(0, "open: %s", ls_last_error());
        return;
    }
    int n4 = 0, n2 = 0, bad = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        if (!strstr(t->name, ".lora_")) continue;
        int proj = strstr(t->name, "_proj_in.") || strstr(t->name, "_proj_out.");
        if (proj) n4++, bad += !(t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1);
        else n2++, bad += t->ndim != 2;
    }
    st_close(&f);
    CHECK(n4 > 0 && n2 > 0 && bad == 0, "%d proj tensors (4-d, 1x1), %d to_k tensors (2-d), %d wrong", n4, n2, bad);
    Lora a;
    CHECK(lora_load(&a, path) == LS_OK, "reload: %s", ls_last_error());
    Model m;
    CHECK(model_load(&m, g_model, NULL) == LS_OK && lora_attach(&a, &m, 0) == LS_OK, "attach: %s", ls_last_error());
    char again[700];
    snprintf(again, sizeof again, "%s/again.safetensors", out);
    CHECK(lora_save_kohya(&a, again, NULL, 0) == LS_OK, "re-save: %s", ls_last_error());
    StFile f1, f2; /* a loaded file saves back with the same shapes */
    int same = st_open(&f1, path) == LS_OK && st_open(&f2, again) == LS_OK && f1.n_tensors == f2.n_tensors;
    for (int i = 0; same && i < f1.n_tensors; i++) {
        const StTensor *t2 = st_find(&f2, f1.tensors[i].name);
        same = t2 && t2->ndim == f1.tensors[i].ndim &&
               !memcmp(t2->shape, f1.tensors[i].shape, (size_t)t2->ndim * sizeof(int64_t));
    }
    CHECK(same, "reloaded adapter re-saves with the same keys and shapes");
    st_close(&f1), st_close(&f2);
    lora_free(&a);
    model_free(&m);
}

/* 1 if a and b hold the same modules (names, ranks, shapes) with the same initial values */
static int same_modules(const Lora *a, const Lora *b) {
    if (a->n_mods != b->n_mods) return 0;
    for (int i = 0; i < a->n_mods; i++) {
        const LoraModule *x = &a->mods[i], *y = &b->mods[i];
        size_t nd = (size_t)x->rank * x->in * x->k * x->k;
        if (strcmp(x->module, y->module) || x->rank != y->rank || x->in != y->in || x->out != y->out ||
            x->k != y->k || x->alpha != y->alpha || memcmp(x->down, y->down, nd * sizeof(float)))
            return 0;
    }
    return 1;
}

/* --targets groups and suffixes (lora_create): NULL = all = attn,ff,proj,conv in any order; attn = the 8
 * attention suffixes (the set and the values the attention-only default always had); conv rank 0 leaves
 * the convolutions out of all and refuses named ones; an entry that matches nothing is refused by name;
 * suffixes may name other convolutions (LoCon). */
static void test_targets(void) {
    Model m;
    if (model_load(&m, g_model, NULL) != LS_OK) {
        CHECK(0, "model_load: %s", ls_last_error());
        return;
    }
    int attn = 0, down = 0, shortcut = 0;
    for (int i = 0; i < m.unet.wt.n_mods; i++) {
        const char *n = m.unet.wt.mods[i].name;
        attn += m.unet.wt.mods[i].kind == MOD_LINEAR && (strstr(n, ".attn1.to_") || strstr(n, ".attn2.to_"));
        down += strstr(n, "downsamplers.0.conv") != NULL;
        shortcut += strstr(n, "conv_shortcut") != NULL;
    }
    Lora ref, a;
    CHECK(lora_create(&ref, &m, NULL, 4, 0, 3, 0, 5) == LS_OK, "default: %s", ls_last_error());
    const char *same_as_default[] = {"all", "attn,ff,proj,conv", "conv, proj ,ff,attn", "attn,all"};
    for (int i = 0; i < 4; i++) {
        int rc = lora_create(&a, &m, same_as_default[i], 4, 0, 3, 0, 5);
        CHECK(rc == LS_OK && same_modules(&ref, &a), "--targets '%s' is the default set (%s)", same_as_default[i],
              rc == LS_OK ? "differs" : ls_last_error());
        if (rc == LS_OK) lora_free(&a);
    }
    int n_default = ref.n_mods, n_conv = ref.n_conv;
    lora_free(&ref);

    CHECK(lora_create(&ref, &m, "attn1.to_q,attn1.to_k,attn1.to_v,attn1.to_out.0,attn2.to_q,attn2.to_k,attn2.to_v,"
                                "attn2.to_out.0", 4, 0, 4, 0, 5) == LS_OK, "suffixes: %s", ls_last_error());
    int rc = lora_create(&a, &m, "attn", 4, 0, 4, 0, 5);
    CHECK(rc == LS_OK && same_modules(&ref, &a) && a.n_mods == attn && a.n_conv == 0,
          "--targets attn: %d modules, the %d attention projections, same values as naming them", rc ? -1 : a.n_mods,
          attn);
    if (rc == LS_OK) lora_free(&a);
    lora_free(&ref);

    rc = lora_create(&a, &m, NULL, 4, 0, 0, 0, 5);
    CHECK(rc == LS_OK && a.n_conv == 0 && a.n_mods == n_default - n_conv, "conv rank 0: %d modules, %d convs (%s)",
          rc ? -1 : a.n_mods, rc ? -1 : a.n_conv, ls_last_error());
    if (rc == LS_OK) lora_free(&a);
    const struct {
        const char *targets, *want[2];
    } bad[] = {
        {"attn,atn", {"'atn': matches no U-Net module", "groups: attn, ff, proj, conv, all"}},
        {"attn2.to_kk", {"'attn2.to_kk'", "module-path suffixes"}},
        {"attn,,ff", {"empty entry", "attn,,ff"}},
        {"attn,conv", {"'conv'", "--conv-rank"}},
        {"attn2.to_k,downsamplers.0.conv", {"downsamplers.0.conv", "--conv-rank"}},
    };
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        rc = lora_create(&a, &m, bad[i].targets, 4, 0, 0, 0, 1);
        CHECK(rc == LS_ERR && strstr(ls_last_error(), bad[i].want[0]) && strstr(ls_last_error(), bad[i].want[1]),
              "--targets '%s' (conv rank 0) refused: %s", bad[i].targets, ls_last_error());
    }
    rc = lora_create(&a, &m, "attn2.to_k,downsamplers.0.conv,conv_shortcut", 4, 0, 2, 0, 1);
    CHECK(rc == LS_OK && a.n_conv == down && down > 0 && a.n_mods == attn / 8 + down + shortcut,
          "LoCon on the %d downsamplers and %d conv_shortcuts named: %d modules, %d k×k (%s)", down, shortcut,
          rc == LS_OK ? a.n_mods : -1, rc == LS_OK ? a.n_conv : -1, ls_last_error());
    if (rc == LS_OK) lora_free(&a);
    model_free(&m);
}

/* With no sample grids and fixed captions the VAE and text encoder are given back after the caching phase;
 * the run is otherwise the same: the adapter is byte-identical to one trained with them kept (samples on). */
static void test_release(void) {
    char a[600], b[600], pa[700], pb[700], rp[700];
    snprintf(a, sizeof a, "%s/kept", g_tmp);
    snprintf(b, sizeof b, "%s/released", g_tmp);
    TrainOptions o;
    TrainResult r;
    base_opts(&o, a);
    o.steps = 4, o.lr = 1e-3f, o.validation_split = 0.2f, o.caption_dropout = 0.5f, o.flip = 1, o.batch = 2;
    o.samples = 1, o.sample_steps = 2;
    o.style_curve = 0; /* the style curve, too, needs the VAE and the text encoder after training */
    CHECK(train_run(&o, &r) == LS_OK, "kept: %s", ls_last_error());
    o.out = b, o.samples = 0;
    CHECK(train_run(&o, &r) == LS_OK, "released: %s", ls_last_error());
    snprintf(pa, sizeof pa, "%s/style.safetensors", a);
    snprintf(pb, sizeof pb, "%s/style.safetensors", b);
    CHECK(same_file(pa, pb), "the adapter does not depend on whether the encoders were released");
    size_t n;
    snprintf(rp, sizeof rp, "%s/report.txt", b);
    char *rb = ls_read_file(rp, &n);
    snprintf(rp, sizeof rp, "%s/report.txt", a);
    char *ra = ls_read_file(rp, &n);
    CHECK(rb && strstr(rb, "released:") && ra && !strstr(ra, "released:"), "report says when the encoders were "
          "released (only without samples)");
    free(ra), free(rb);
}

static void test_refused(void) {
    struct {
        TrainMethod method;
        int conv_rank, te, prec;
        const char *targets;
        float te_lr;
        const char *want;
    } cases[] = {
        {METHOD_FULL, 4, 0, 0, NULL, 0, "--conv-rank"},
        {METHOD_FULL, 0, 1, 0, NULL, 0, "--train-text-encoder"},
        {METHOD_ADAPTER, 0, 0, 0, "attn1.to_q", 0, "--targets"},
        {METHOD_ADAPTER, 0, 1, 0, NULL, 0, "--train-text-encoder"},
        {METHOD_LORA, 0, 0, 0, NULL, 1e-4f, "--text-encoder-lr"},
        {METHOD_LORA, 0, 0, SAVE_FP16, NULL, 0, "--save-precision"},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        char out[600];
        TrainOptions o;
        base_opts_at(&o, out, sizeof out, "refused%d", i);
        o.method = cases[i].method, o.conv_rank = cases[i].conv_rank, o.train_text_encoder = cases[i].te;
        o.save_precision = (SavePrecision)cases[i].prec, o.targets = cases[i].targets;
        o.text_encoder_lr = cases[i].te_lr;
        int rc = train_run(&o, NULL);
        CHECK(rc == LS_ERR && strstr(ls_last_error(), cases[i].want) && !ls_file_exists(out), "case %d: %s", i,
              ls_last_error());
    }
}

int main(int argc, char **argv) {
    static const TrainCaseStep steps[] = {
        {test_text_encoder, "text encoder"}, {test_full, "full"}, {test_adapter_method, "adapter"},
        {test_conv1x1_shapes, NULL},         {test_targets, NULL}, {test_validation, "validation"},
        {test_release, NULL},                {test_refused, "release, refused"}};
    return train_case_main(argc, argv, steps, sizeof steps / sizeof steps[0]);
}
