/* test_train.c — the LoRA training loop (src/train/train.c, lora_create/lora_save_kohya in src/train/lora_train.c).
 *
 * On a fresh tiny model (model_init_preset) and datasets/sample_style at 64×64:
 *  1. a 40-step run with the default targets (all; rank 4, alpha 1, conv rank 2) writes an adapter that
 *     lora_load + lora_attach accept, holding exactly the model's attention, feed-forward, proj_in/out and
 *     resnet/sampler conv modules (counted in its module table), with kohya key names, ranks, alphas and
 *     shapes; the reported trainable count equals the sum of the file's down/up sizes; loss.csv /
 *     config.json / report.txt are written; up is no longer 0;
 *  2. overfitting: one image, fixed t and fixed noise — the loss after 40 AdamW steps is < 0.7× step 0's;
 *  3. a new adapter (up = 0) leaves the U-Net output bit-identical to the base;
 *  4. two runs with the same seed write bit-identical adapter files (and another seed does not);
 *  5. bad input: an empty folder, an existing OUT without --force, through train_run and the CLI (one
 *     error line, exit status 1).
 * Usage: test_train FIXTURE_DIR [LORASTYLE] */
#include <sys/stat.h>
#include <unistd.h>

#include "lora.h"
#include "model.h"
#include "rng.h"
#include "train_case.h" // defines: g_tmp, g_model, g_data, g_exe, base_opts, same_file, train_case_main
#include "train.h"

static char *slurp(const char *path, size_t *n) {
    char *s = ls_read_file(path, n);
    return s;
}

/* The --targets group of a module path ('.' or '_' separated), by name alone: 0 attn, 1 ff, 2 proj,
 * 3 conv (resnet conv1/conv2, down/upsampler conv), -1 none of them. */
static int target_group(const char *path) {
    char p[512];
    snprintf(p, sizeof p, "_%s", path);
    for (char *c = p; *c; c++)
        if (*c == '.') *c = '_';
    size_t n = strlen(p);
#define ENDS(s) (n >= strlen(s) && !strcmp(p + n - strlen(s), s))
    if (strstr(p, "_attn1_to_") || strstr(p, "_attn2_to_")) return 0;
    if (ENDS("_ff_net_0_proj") || ENDS("_ff_net_2")) return 1;
    if (ENDS("_proj_in") || ENDS("_proj_out")) return 2;
    if ((strstr(p, "_resnets_") && (ENDS("_conv1") || ENDS("_conv2"))) || ENDS("samplers_0_conv")) return 3;
#undef ENDS
    return -1;
}

static void test_run_and_load(void) {
    char out[600];
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "run1");
    o.steps = 40, o.rank = 4, o.alpha = 1, o.conv_rank = 2, o.lr = 1e-3f, o.seed = 7;
    o.flip = 1, o.shuffle_tags = 1, o.trigger = "sks", o.min_snr_gamma = 5, o.noise_offset = 0.05f;
    o.lr_schedule = LR_COSINE, o.warmup = 5;
    TrainResult r;
    double t0 = ls_time();
    int rc = train_run(&o, &r);
    CHECK(rc == LS_OK, "train_run: %s", ls_last_error());
    if (rc != LS_OK) return;
    printf("run 1: %d steps in %.2f s, loss %.4f → %.4f (first/last 10: %.4f → %.4f), %lld trainable\n",
           r.steps_done, ls_time() - t0, r.first_loss, r.last_loss, r.mean_loss_first10, r.mean_loss_last10,
           (long long)r.trainable);
    Lora a;
    CHECK(lora_load(&a, r.adapter_path) == LS_OK, "lora_load: %s", ls_last_error());
    Model m;
    CHECK(model_load(&m, g_model, NULL) == LS_OK, "model_load: %s", ls_last_error());
    CHECK(lora_attach(&a, &m, 0) == LS_OK, "lora_attach: %s", ls_last_error());
    CHECK(a.format == LORA_KOHYA, "format %d", a.format);
    CHECK(a.n_params == r.trainable, "params in file %lld != reported %lld", (long long)a.n_params,
          (long long)r.trainable);
    int want[4] = {0}, got[4] = {0}, other = 0, up_nonzero = 0;
    for (int i = 0; i < m.unet.wt.n_mods; i++) {
        int g = target_group(m.unet.wt.mods[i].name);
        if (g >= 0) want[g]++;
        CHECK(g != 3 || m.unet.wt.mods[i].kind == MOD_CONV, "%s is in the conv group", m.unet.wt.mods[i].name);
    }
    int64_t sum = 0;
    for (int i = 0; i < a.n_mods; i++) {
        const LoraModule *lm = &a.mods[i];
        int g = target_group(lm->module);
        sum += (int64_t)lm->rank * lm->in * lm->k * lm->k + lm->out * lm->rank;
        if (g >= 0) got[g]++;
        other += g < 0;
        CHECK(g >= 0, "%s is in no default target group", lm->module);
        if (g == 3) {
            CHECK(lm->k == 3 && lm->rank == 2 && lm->alpha == 2.0f, "%s: conv k %d rank %d alpha %g", lm->module,
                  lm->k, lm->rank, (double)lm->alpha);
        } else {
            CHECK(lm->k == 1 && lm->rank == 4 && lm->alpha == 1.0f, "%s: k %d rank %d alpha %g", lm->module, lm->k,
                  lm->rank, (double)lm->alpha);
        }
        for (int64_t j = 0; j < lm->out * lm->rank; j++) up_nonzero |= lm->up[j] != 0.0f;
    }
    printf("default targets: attn %d, ff %d, proj %d, conv %d modules (the model has %d, %d, %d, %d)\n", got[0],
           got[1], got[2], got[3], want[0], want[1], want[2], want[3]);
    CHECK(sum == r.trainable, "sum of down/up sizes %lld != %lld", (long long)sum, (long long)r.trainable);
    CHECK(want[0] > 0 && want[0] % 8 == 0 && want[1] > 0 && want[2] > 0 && want[3] > 0, "the tiny model's groups");
    CHECK(!memcmp(got, want, sizeof got) && other == 0 && a.n_mods == want[0] + want[1] + want[2] + want[3] &&
              a.n_conv == want[3],
          "the default adapter holds every attn/ff/proj/conv module of the model and nothing else");
    CHECK(up_nonzero, "every up matrix is still 0 after training");
    const StTensor *t = st_find(&a.file, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 4, "kohya key/shape of attn1.to_q down");
    t = st_find(&a.file, "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0.alpha");
    CHECK(t && t->ndim == 0, "0-d alpha of attn2.to_out.0");
    t = st_find(&a.file, "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight");
    CHECK(t && t->ndim == 4 && t->shape[1] == 2 && t->shape[2] == 1, "LoCon up is (out, r, 1, 1)");
    t = st_find(&a.file, "lora_unet_down_blocks_0_downsamplers_0_conv.lora_down.weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 2 && t->shape[2] == 3, "LoCon down of a downsampler is (r, in, 3, 3)");
    t = st_find(&a.file, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj.lora_down.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 4, "ff.net.0.proj down is 2-d (r, in)");
    t = st_find(&a.file, "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight");
    CHECK(t && t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1, "proj_in down is 4-d (r, in, 1, 1)");
    const char *mv = st_meta_get(&a.file, "ss_network_module");
    CHECK(mv && !strcmp(mv, "networks.lora"), "ss_network_module");
    mv = st_meta_get(&a.file, "ss_network_args");
    CHECK(mv && strstr(mv, "\"conv_dim\": \"2\""), "ss_network_args %s", mv ? mv : "(none)");
    mv = st_meta_get(&a.file, "ss_tag_frequency");
    CHECK(mv && strstr(mv, "10_pastelshapes"), "ss_tag_frequency");
    mv = st_meta_get(&a.file, "lorastyle_method");
    CHECK(mv && !strcmp(mv, "locon"), "lorastyle_method (a conv rank makes it LoCon)");
    mv = st_meta_get(&a.file, "ss_sd_model_hash"); /* what kohya writes for a diffusers folder */
    CHECK(mv && !strcmp(mv, "IsADirectory"), "ss_sd_model_hash %s", mv ? mv : "(none)");
    mv = st_meta_get(&a.file, "sshs_model_hash"); /* recomputed in tests/check_kohya_metadata.py */
    CHECK(mv && strlen(mv) == 64, "sshs_model_hash %s", mv ? mv : "(none)");
    lora_free(&a);
    model_free(&m);
    const char *files[] = {"loss.csv", "config.json", "report.txt"};
    for (int i = 0; i < 3; i++) {
        char *p = ls_path_join(out, files[i]);
        size_t n = 0;
        char *s = slurp(p, &n);
        CHECK(s && n > 0, "%s missing", p);
        if (s && i == 0) {
            int lines = 0;
            for (size_t j = 0; j < n; j++) lines += s[j] == '\n';
            CHECK(lines == 41, "loss.csv has %d lines", lines);
        }
        if (s && i == 2)
            CHECK(strstr(s, "trainable parameters") && strstr(s, "peak memory") && strstr(s, "LoCon on --targets all"),
                  "report.txt");
        if (s && i == 1)
            CHECK(strstr(s, "\"targets\":\t\"all\"") && strstr(s, "\"conv_rank\":\t2,"), "config.json: %s", s);
        free(s);
        free(p);
    }
}

static void test_overfit(void) {
    char one[600], out[600];
    one_image_data(one, sizeof one);
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "overfit");
    o.data_dir = one;
    o.steps = 40, o.rank = 8, o.lr = 1e-2f, o.fixed_t = 500, o.fixed_noise = 1, o.seed = 3;
    TrainResult r;
    int rc = train_run(&o, &r);
    CHECK(rc == LS_OK, "train_run: %s", ls_last_error());
    if (rc != LS_OK) return;
    printf("overfit: loss %.5f → %.5f (%.2f×)\n", r.first_loss, r.last_loss, r.last_loss / r.first_loss);
    CHECK(r.last_loss < 0.7 * r.first_loss, "loss %g → %g is not < 0.7×", r.first_loss, r.last_loss);
}

static void test_zero_up_is_base(void) {
    Model m;
    if (model_load(&m, g_model, NULL) < 0) {
        CHECK(0, "model_load: %s", ls_last_error());
        return;
    }
    int B = 2, H = 8, W = 8, L = tokenizer_max_length(m.tok), Cc = m.unet.cfg.cross_attention_dim;
    int C = m.unet.cfg.in_channels, Co = m.unet.cfg.out_channels;
    size_t nx = (size_t)B * C * H * W, no = (size_t)B * Co * H * W, nc = (size_t)B * L * Cc;
    float *x = malloc(nx * 4), *ctx = malloc(nc * 4), *y0 = malloc(no * 4), *y1 = malloc(no * 4);
    float t[2] = {10.0f, 731.0f};
    rng_normal(x, nx, 11, 0);
    rng_normal(ctx, nc, 12, 0);
    unet_forward(&m.unet, y0, x, t, ctx, B, H, W, L);
    Lora a;
    CHECK(lora_create(&a, &m, NULL, 4, 0, 3, 0, 5) == LS_OK, "lora_create: %s", ls_last_error());
    CHECK(lora_attach(&a, &m, 0) == LS_OK, "attach: %s", ls_last_error());
    CHECK(lora_grads_alloc(&a) == LS_OK, "grads: %s", ls_last_error());
    unet_forward(&m.unet, y1, x, t, ctx, B, H, W, L);
    CHECK(memcmp(y0, y1, no * 4) == 0, "zero-up adapter changes the output (max diff %g)", max_abs_diff(y0, y1, no));
    /* kohya init: down within ±1/√fan_in and not all zero; up exactly 0 */
    int ok = 1;
    for (int i = 0; i < a.n_mods; i++) {
        const LoraModule *lm = &a.mods[i];
        float bound = 1.0f / sqrtf((float)(lm->in * lm->k * lm->k));
        size_t nd = (size_t)lm->rank * lm->in * lm->k * lm->k;
        double s2 = 0;
        for (size_t j = 0; j < nd; j++) ok &= fabsf(lm->down[j]) <= bound, s2 += lm->down[j] * lm->down[j];
        ok &= s2 > 0;
        for (int64_t j = 0; j < lm->out * lm->rank; j++) ok &= lm->up[j] == 0.0f;
    }
    CHECK(ok, "kohya init ranges");
    lora_free(&a);
    unet_forward(&m.unet, y1, x, t, ctx, B, H, W, L);
    CHECK(memcmp(y0, y1, no * 4) == 0, "detaching does not restore the base output");
    free(x), free(ctx), free(y0), free(y1);
    model_free(&m);
}

static void test_reproducible(void) {
    char p[3][1024];
    for (int i = 0; i < 3; i++) {
        char out[600];
        TrainOptions o;
        base_opts_at(&o, out, sizeof out, "rep%d", i);
        o.steps = 12, o.batch = 2, o.lr = 1e-3f, o.flip = 1, o.shuffle_tags = 1, o.noise_offset = 0.1f;
        o.seed = i == 2 ? 99 : 42;
        TrainResult r;
        CHECK(train_run(&o, &r) == LS_OK, "train_run: %s", ls_last_error());
        snprintf(p[i], sizeof p[i], "%s", r.adapter_path);
    }
    CHECK(same_file(p[0], p[1]), "same seed: %s and %s differ", p[0], p[1]);
    CHECK(!same_file(p[0], p[2]), "different seeds gave the same adapter");
}

static void test_bad_input(void) {
    const char *exe = g_exe;
    char empty[600], out[600];
    snprintf(empty, sizeof empty, "%s/empty", g_tmp);
    mkdir(empty, 0755);
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "bad");
    o.data_dir = empty, o.steps = 2;
    CHECK(train_run(&o, NULL) == LS_ERR && strstr(ls_last_error(), empty), "empty folder: %s", ls_last_error());
    base_opts_at(&o, out, sizeof out, "run1"); /* exists from test 1 */
    o.steps = 2;
    CHECK(train_run(&o, NULL) == LS_ERR && strstr(ls_last_error(), "already exists"), "existing OUT: %s",
          ls_last_error());
    o.force = 1;
    CHECK(train_run(&o, NULL) == LS_OK, "--force: %s", ls_last_error());
    if (!exe) return;
    char fresh[640];
    snprintf(fresh, sizeof fresh, "%s/never", g_tmp);
    const char *cases[][3] = {{empty, "no images", fresh}, {g_data, "already exists", out}};
    for (int c = 0; c < 2; c++) {
        char cmd[4096], line[1024];
        snprintf(cmd, sizeof cmd, "'%s' train '%s' --model '%s' -o '%s' --steps 2 --resolution 64 2>&1 >/dev/null",
                 exe, cases[c][0], g_model, cases[c][2]);
        FILE *f = popen(cmd, "r");
        int lines = 0, found = 0;
        while (f && fgets(line, sizeof line, f)) {
            if (!strncmp(line, "lorastyle: warning:", 19)) continue;
            lines++;
            found |= strstr(line, "lorastyle: error:") && strstr(line, cases[c][1]);
        }
        int st = f ? pclose(f) : -1;
        CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && lines == 1 && found,
              "CLI case %d: status %d, %d lines", c, st, lines);
    }
}

int main(int argc, char **argv) {
    static const TrainCaseStep steps[] = {{test_zero_up_is_base, "zero-up"}, {test_run_and_load, "run + load"},
                                          {test_overfit, "overfit"},         {test_reproducible, "reproducible"},
                                          {test_bad_input, "bad input"}};
    return train_case_main(argc, argv, steps, sizeof steps / sizeof steps[0]);
}
