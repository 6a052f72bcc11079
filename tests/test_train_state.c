/* test_train_state.c — the parts of `lorastyle train` around the loop (src/train*.c, src/train/train_opts.c,
 * src/train/lossplot.c), on a fresh tiny model and datasets/sample_style at 64×64:
 *  1. resume: a run stopped after 5 of 12 steps (the Ctrl-C path, via the stop_after hook) and resumed
 *     writes a byte-identical adapter and the same loss.csv rows (step, loss, lr, grad norm) as the run
 *     that was never stopped — with batch 2, gradient accumulation 2, flips, tag shuffling, noise offset
 *     and a cosine schedule, checkpoints every 4 steps; a checkpoint that does not fit (other rank) and a
 *     finished run are refused with messages naming the checkpoint;
 *  2. options: a JSON config sets every kind of option; the effective config.json reads back to the same
 *     JSON; unknown keys, bad types and bad values are errors naming the file and the key;
 *  3. samples and the loss curve: grids at steps 2 and 4 (rows = strengths 0 and 1) whose strength-0 cells
 *     are identical (the base model does not train) and whose strength-1 cells differ; loss.png exists;
 *  4. latent cache: a second run over the same cache folder encodes nothing and writes the same adapter as
 *     a run without the disk cache;
 *  5. buckets and epochs: mixed aspect ratios train in their own buckets; --epochs sets the step count.
 * Usage: test_train_state FIXTURE_DIR */
#include <sys/stat.h>
#include <unistd.h>

#include "grid.h"
#include "image.h"
#include "model.h"
#include "train_case.h" // defines: g_tmp, g_model, base_opts, same_file, train_case_main
#include "train.h"

/* loss.csv without its time column */
static char *csv_no_time(const char *path) {
    size_t n;
    char *s = ls_read_file(path, &n);
    if (!s) return NULL;
    char *out = calloc(1, n + 1), *o = out;
    for (char *p = s; *p;) {
        char *nl = strchr(p, '\n'), *last = NULL;
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        for (size_t k = 0; k < l; k++)
            if (p[k] == ',') last = p + k;
        size_t keep = last ? (size_t)(last - p) : l;
        memcpy(o, p, keep), o += keep, *o++ = '\n';
        p += l + (nl ? 1 : 0);
    }
    free(s);
    return out;
}

static void resume_opts(TrainOptions *o, const char *out) {
    base_opts(o, out);
    o->steps = 12, o->batch = 2, o->grad_accum = 2, o->lr = 2e-3f, o->flip = 1, o->shuffle_tags = 1;
    o->noise_offset = 0.05f, o->lr_schedule = LR_COSINE, o->warmup = 2, o->checkpoint_every = 4, o->seed = 5;
    o->conv_rank = 2;
}

static void test_resume(void) {
    char a[600], b[600], pa[700], pb[700];
    snprintf(a, sizeof a, "%s/full", g_tmp);
    snprintf(b, sizeof b, "%s/stopped", g_tmp);
    TrainOptions o;
    TrainResult r;
    resume_opts(&o, a);
    CHECK(train_run(&o, &r) == LS_OK, "uninterrupted: %s", ls_last_error());
    resume_opts(&o, b);
    o.stop_after = 5;
    int rc = train_run(&o, &r);
    CHECK(rc == TRAIN_INTERRUPTED && r.steps_done == 5, "stop after 5: rc %d, %d steps: %s", rc, r.steps_done,
          ls_last_error());
    CHECK(strstr(ls_last_error(), "--resume") && strstr(ls_last_error(), "step 5 of 12"), "message: %s",
          ls_last_error());
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", b);
    CHECK(ls_file_exists(pb), "checkpoint written on stop");
    resume_opts(&o, b);
    o.resume = 1;
    o.rank += 1; /* does not fit the checkpoint */
    CHECK(train_run(&o, &r) == LS_ERR && strstr(ls_last_error(), "checkpoint.safetensors"), "other rank: %s",
          ls_last_error());
    resume_opts(&o, b);
    o.resume = 1;
    rc = train_run(&o, &r);
    CHECK(rc == LS_OK && r.start_step == 5 && r.steps_done == 12, "resume: rc %d start %d done %d: %s", rc,
          r.start_step, r.steps_done, ls_last_error());
    snprintf(pa, sizeof pa, "%s/style.safetensors", a);
    snprintf(pb, sizeof pb, "%s/style.safetensors", b);
    CHECK(same_file(pa, pb), "resumed adapter is byte-identical to the uninterrupted one");
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", a);
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", b);
    CHECK(same_file(pa, pb), "final checkpoints identical");
    snprintf(pa, sizeof pa, "%s/loss.csv", a);
    snprintf(pb, sizeof pb, "%s/loss.csv", b);
    char *ca = csv_no_time(pa), *cb = csv_no_time(pb);
    CHECK(ca && cb && !strcmp(ca, cb), "loss.csv rows identical:\n%s---\n%s", ca ? ca : "", cb ? cb : "");
    free(ca), free(cb);
    resume_opts(&o, b);
    o.resume = 1;
    CHECK(train_run(&o, &r) == LS_ERR && strstr(ls_last_error(), "nothing left"), "finished: %s", ls_last_error());
    o.steps = 14; /* extending a finished run continues it */
    CHECK(train_run(&o, &r) == LS_OK && r.start_step == 12 && r.steps_done == 14, "extend: %s", ls_last_error());
    resume_opts(&o, a);
    CHECK(train_run(&o, &r) == LS_ERR && strstr(ls_last_error(), "--resume"), "existing OUT: %s", ls_last_error());
}

static int write_text(const char *path, const char *s) { return ls_write_file_atomic(path, s, strlen(s)); }

static void test_options_json(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/train.json", g_tmp);
    write_text(path, "{\"steps\": 7, \"rank\": 2, \"lr\": 0.001, \"flip\": true, \"lr_scheduler\": \"cosine\",\n"
                     " \"method\": \"locon\", \"seed\": 11, \"samples\": false, \"sample_strengths\": \"0,1\",\n"
                     " \"trigger\": \"sks\", \"min_snr_gamma\": 5, \"model_config\": null,\n"
                     " \"train_text_encoder\": true, \"text_encoder_lr\": 0.0005, \"save_precision\": \"bf16\"}\n");
    TrainOptions o;
    train_options_default(&o);
    CHECK(train_options_load_json(&o, path) == LS_OK, "load: %s", ls_last_error());
    CHECK(o.steps == 7 && o.rank == 2 && fabsf(o.lr - 1e-3f) < 1e-9f && o.flip == 1 && o.lr_schedule == LR_COSINE &&
              o.method == METHOD_LOCON && o.seed == 11 && o.samples == 0 && !strcmp(o.sample_strengths, "0,1") &&
              !strcmp(o.trigger, "sks") && o.min_snr_gamma == 5.0f && !o.config_dir && o.train_text_encoder == 1 &&
              fabsf(o.text_encoder_lr - 5e-4f) < 1e-9f && o.save_precision == SAVE_BF16,
          "values read");
    int used;
    CHECK(train_option_set(&o, "--steps", "9", &used) == LS_OK && used && o.steps == 9, "CLI override");
    CHECK(train_option_set(&o, "--no-samples", NULL, &used) == LS_OK && !used && o.samples == 0, "--no-samples");
    char *j1 = train_options_to_json(&o, 64);
    write_text(path, j1);
    TrainOptions o2;
    train_options_default(&o2);
    CHECK(train_options_load_json(&o2, path) == LS_OK, "reload: %s", ls_last_error());
    char *j2 = train_options_to_json(&o2, 64);
    CHECK(!strcmp(j1, j2), "config.json round trip:\n%s\n%s", j1, j2);
    free(j1), free(j2);
    train_options_free(&o), train_options_free(&o2);
    const char *bad[][2] = {{"{\"stepz\": 3}", "stepz"},
                            {"{\"steps\": \"many\"}", "steps"},
                            {"{\"steps\": 2.5}", "whole number"},
                            {"{\"rank\": 0}", "rank"},
                            {"{\"lr\": -1}", "lr"},
                            {"{\"flip\": 3}", "flip"},
                            {"{\"method\": \"dreambooth\"}", "method"},
                            {"{\"save_precision\": \"fp8\"}", "save_precision"},
                            {"[1, 2]", "JSON object"},
                            {"{\"steps\": 3", "train.json"}};
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        write_text(path, bad[i][0]);
        train_options_default(&o);
        int rc = train_options_load_json(&o, path);
        CHECK(rc == LS_ERR && strstr(ls_last_error(), "train.json") && strstr(ls_last_error(), bad[i][1]),
              "bad config %d: %s", i, ls_last_error());
        train_options_free(&o);
    }
}

static void test_samples(void) {
    char out[600], prompts[600], p2[700], p4[700];
    snprintf(out, sizeof out, "%s/samples", g_tmp);
    snprintf(prompts, sizeof prompts, "%s/prompts.txt", g_tmp);
    write_text(prompts, "# sample prompts\npastel shapes, circle --d 3 --s 3\n\na square --n blurry --s 2 --l 5\n");
    TrainOptions o;
    base_opts(&o, out);
    o.steps = 4, o.lr = 5e-3f, o.samples = 1, o.sample_every = 2, o.sample_prompts = prompts;
    o.sample_strengths = "0,1";
    TrainResult r;
    CHECK(train_run(&o, &r) == LS_OK, "train with samples: %s", ls_last_error());
    snprintf(p2, sizeof p2, "%s/samples/step_000002.png", out);
    snprintf(p4, sizeof p4, "%s/samples/step_000004.png", out);
    Image g2 = {0}, g4 = {0};
    CHECK(image_load(&g2, p2) == LS_OK && image_load(&g4, p4) == LS_OK, "sample grids: %s", ls_last_error());
    const char *rows[2] = {"strength 0", "strength 1"}, *cols[2] = {"pastel shapes, circle", "a square"};
    GridLayout L;
    char title[64];
    snprintf(title, sizeof title, "style - step 2");
    CHECK(grid_layout(&L, 64, 64, 2, 2, rows, cols, title) == LS_OK && g2.w == L.w && g2.h == L.h && g4.w == L.w,
          "grid %dx%d, expected %dx%d", g2.w, g2.h, L.w, L.h);
    if (g2.data && g4.data && g2.w == L.w && g4.w == L.w && g2.h == g4.h) {
        int same0 = 1, same1 = 1; /* row 0: strength 0, row 1: strength 1 */
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < L.cell_h; y++) {
                size_t x = (size_t)L.x0 + (size_t)c * (L.cell_w + L.gap);
                size_t off0 = ((size_t)(L.y0 + y) * g2.w + x) * 3;
                size_t off1 = ((size_t)(L.y0 + L.cell_h + L.gap + y) * g2.w + x) * 3;
                same0 &= !memcmp(g2.data + off0, g4.data + off0, (size_t)L.cell_w * 3);
                same1 &= !memcmp(g2.data + off1, g4.data + off1, (size_t)L.cell_w * 3);
            }
        CHECK(same0, "strength-0 cells identical at steps 2 and 4 (the base model is frozen)");
        CHECK(!same1, "strength-1 cells changed between steps 2 and 4 (the adapter trains)");
    }
    image_free(&g2), image_free(&g4);
    char lp[700];
    snprintf(lp, sizeof lp, "%s/loss.png", out);
    Image lo = {0};
    CHECK(image_load(&lo, lp) == LS_OK && lo.w == 720 && lo.h == 400, "loss.png: %s", ls_last_error());
    image_free(&lo);
    o.sample_prompts = "/nonexistent/prompts.txt";
    o.force = 1;
    CHECK(train_run(&o, &r) == LS_ERR && strstr(ls_last_error(), "/nonexistent/prompts.txt"), "missing prompts: %s",
          ls_last_error());
}

static void test_cache(void) {
    char out[3][600], cache[600];
    snprintf(cache, sizeof cache, "%s/shared-cache", g_tmp);
    TrainResult r[3];
    for (int i = 0; i < 3; i++) {
        snprintf(out[i], sizeof out[i], "%s/cache%d", g_tmp, i);
        TrainOptions o;
        base_opts(&o, out[i]);
        o.steps = 6, o.batch = 3, o.flip = 1, o.lr = 1e-3f;
        if (i < 2) o.cache_dir = cache;
        else o.cache = 0;
        CHECK(train_run(&o, &r[i]) == LS_OK, "run %d: %s", i, ls_last_error());
    }
    CHECK(r[0].cache_misses > 0 && r[0].cache_hits == 0, "first run encodes (%d misses)", r[0].cache_misses);
    CHECK(r[1].cache_misses == 0 && r[1].cache_hits == r[0].cache_misses, "second run: %d hits, %d misses",
          r[1].cache_hits, r[1].cache_misses);
    CHECK(same_file(r[0].adapter_path, r[1].adapter_path) && same_file(r[0].adapter_path, r[2].adapter_path),
          "same adapter with a cold cache, a warm cache and no disk cache");
}

static void test_buckets_epochs(void) {
    char data[600], sub[700], out[600];
    snprintf(data, sizeof data, "%s/mixed", g_tmp);
    snprintf(sub, sizeof sub, "%s/2_shapes", data);
    CHECK(ls_mkdir_p(sub) == LS_OK, "mkdir");
    const int sizes[3][2] = {{200, 100}, {100, 200}, {150, 150}};
    for (int i = 0; i < 3; i++) {
        Image im = {sizes[i][0], sizes[i][1], 3, malloc((size_t)sizes[i][0] * sizes[i][1] * 3)};
        for (int k = 0; k < im.w * im.h * 3; k++) im.data[k] = (uint8_t)((k * 7 + i * 50) % 251);
        char p[800];
        snprintf(p, sizeof p, "%s/img%d.png", sub, i);
        CHECK(image_write_png(p, &im, NULL, 0) == LS_OK, "write %s", p);
        free(im.data);
    }
    TrainOptions o;
    base_opts_at(&o, out, sizeof out, "bucketrun");
    o.data_dir = data, o.resolution = 128, o.buckets = 1, o.bucket_step = 32, o.batch = 2, o.epochs = 3;
    o.grad_accum = 2, o.caption = "shapes";
    TrainResult r;
    CHECK(train_run(&o, &r) == LS_OK, "buckets: %s", ls_last_error());
    /* 3 buckets × 2 repeats: batches of 2 within a bucket → 3 per epoch, 9 micro-batches / 2 → 5 steps */
    CHECK(r.steps_done == 5, "--epochs 3: %d steps (expected 5)", r.steps_done);
    o.bucket_step = 24; /* not a multiple of the U-Net's 16 */
    o.force = 1;
    CHECK(train_run(&o, &r) == LS_ERR && strstr(ls_last_error(), "--bucket-step"), "bad step: %s", ls_last_error());
}

int main(int argc, char **argv) {
    static const TrainCaseStep steps[] = {{test_resume, "resume"}, {test_options_json, "options"},
                                          {test_samples, "samples"}, {test_cache, "cache"},
                                          {test_buckets_epochs, "buckets"}};
    return train_case_main(argc, argv, steps, sizeof steps / sizeof steps[0]);
}
