/* test_view.c — `lorastyle view` end to end under Xvfb, and the pipeline hooks it relies on.
 *
 * Part 1 (always): GenParams' interactive hooks on a tiny random model — on_latents/preview_every leave the
 * image bit-identical and deliver finite x̂0 estimates that approach the final latents, cancel stops a run
 * with LS_CANCELLED and no image.
 * Part 2 (needs a build with SDL2 and Debian's xvfb-run; otherwise exit 77 = skipped, with a message):
 *  - --screenshot: the image region of the window is the image `generate` makes with the same settings,
 *    scaled by the integer factor the layout reports (nearest neighbour); slider bars and knobs are where
 *    the layout says, knobs at the adapters' strengths;
 *  - --script: a slider move re-renders (same seed, same noise) exactly the image of `generate` at that
 *    strength, Ctrl+S saves it with A1111 metadata, a corrupt dropped adapter, an empty prompt and a tiny
 *    window give status messages and the app keeps running, a dropped adapter adds a slider;
 *  - the bitmap-font fallback (--font missing.ttf) and a bad script line (exit 1, file:line message).
 *
 * Usage: test_view <fixtures_dir> <lorastyle_binary>
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"   // defines: ls_read_file, ls_last_error
#include "image.h"    // defines: image_load, image_png_get_text
#include "model.h"    // defines: model_init_preset, model_load
#include "pipeline.h" // defines: pipeline_generate, GenParams
#include "pool.h"     // defines: pool_free (the latents pipeline_generate hands back)
#include "testutil.h" // defines: CHECK, test_summary

/* Colours of the viewer's theme (gui/widgets.c): keep in sync. */
static const uint8_t TRACK[3] = {78, 81, 94}, ACCENT[3] = {86, 156, 245}, KNOB[3] = {240, 240, 246},
                     DIM[3] = {150, 153, 166};

static char g_tmp[256], g_bin[1024], g_fix[1024];

/* ---------------- part 1: pipeline hooks ---------------- */

typedef struct {
    int calls, steps[64], cancel_after, polls;
    float *x0[64];
    size_t n;
} Hook;

static void on_latents(int step, int total, const float *x0, int C, int h, int w, void *user) {
    Hook *k = user;
    (void)total;
    if (k->calls < 64) {
        k->steps[k->calls] = step;
        k->n = (size_t)C * h * w;
        k->x0[k->calls] = malloc(k->n * sizeof(float));
        memcpy(k->x0[k->calls], x0, k->n * sizeof(float));
    }
    k->calls++;
}

static int cancel_cb(void *user) {
    Hook *k = user;
    int n = k->polls++;
    return k->cancel_after >= 0 && n >= k->cancel_after;
}

static void test_hooks(const char *model_dir) {
    Model m;
    if (model_load(&m, model_dir, NULL) < 0) {
        CHECK(0, "load %s: %s", model_dir, ls_last_error());
        return;
    }
    const SamplerKind kinds[] = {SAMPLER_EULER_A, SAMPLER_EULER, SAMPLER_DDIM, SAMPLER_DPMPP_2M};
    for (int s = 0; s < 4; s++) {
        GenParams p;
        gen_params_init(&p);
        p.prompt = "a watercolor fox";
        p.steps = 9;
        p.seed = 11;
        p.sampler = kinds[s];
        Image ref = {0}, img = {0};
        float *lat = NULL;
        CHECK(pipeline_generate(&m, &p, &ref, &lat) == 0, "plain run: %s", ls_last_error());
        Hook k = {0};
        k.cancel_after = -1;
        p.on_latents = on_latents;
        p.cancel = cancel_cb;
        p.preview_every = 2;
        p.user = &k;
        CHECK(pipeline_generate(&m, &p, &img, NULL) == 0, "hooked run: %s", ls_last_error());
        CHECK(img.data && ref.data && !memcmp(img.data, ref.data, (size_t)ref.w * ref.h * 3),
              "%s: hooks changed the image", sampler_name(kinds[s]));
        CHECK(k.calls == 4 && k.steps[0] == 2 && k.steps[3] == 8, "%s: on_latents called %d times (steps %d..%d)",
              sampler_name(kinds[s]), k.calls, k.steps[0], k.steps[k.calls ? k.calls - 1 : 0]);
        CHECK(k.polls == 10, "cancel polled %d times (9 steps + before the decode)", k.polls);
        if (k.calls == 4 && lat) {
            int finite = 1;
            for (int c = 0; c < 4; c++)
                for (size_t j = 0; j < k.n; j++) finite &= isfinite(k.x0[c][j]) != 0;
            double first = rel_l2(k.x0[0], lat, k.n), last = rel_l2(k.x0[3], lat, k.n);
            CHECK(finite && last < first && last < 0.5, "%s: x0 estimates do not approach the result (%.3f → %.3f)",
                  sampler_name(kinds[s]), first, last);
        }
        for (int c = 0; c < k.calls && c < 64; c++) free(k.x0[c]);
        image_free(&img);
        /* cancel after 3 polls: stops before step 4 */
        Hook kc = {0};
        kc.cancel_after = 3;
        p.user = &kc;
        p.on_latents = NULL;
        Image none = {0};
        int rc = pipeline_generate(&m, &p, &none, NULL);
        CHECK(rc == LS_CANCELLED && none.data == NULL && strstr(ls_last_error(), "cancelled"),
              "cancel: rc %d, image %p, error '%s'", rc, (void *)none.data, ls_last_error());
        image_free(&ref);
        pool_free(lat); /* latents_out is pool memory (pipeline.h) */
    }
    model_free(&m);
}

/* ---------------- part 2: the window ---------------- */

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *path) {
    size_t n;
    char *s = ls_read_file(path, &n);
    return s ? s : strdup("");
}

/* One "key a b c d [e]" line of the layout text; returns how many numbers were read. */
static int layout_get(const char *layout, const char *key, int index, int v[5]) {
    char pat[64];
    snprintf(pat, sizeof pat, index >= 0 ? "\n%s %d " : "\n%s ", key, index);
    char *buf = malloc(strlen(layout) + 2);
    buf[0] = '\n';
    strcpy(buf + 1, layout);
    const char *p = strstr(buf, pat);
    int n = 0;
    if (p) {
        p += strlen(pat);
        n = sscanf(p, "%d %d %d %d %d", &v[0], &v[1], &v[2], &v[3], &v[4]);
    }
    free(buf);
    return n;
}

static const uint8_t *px(const Image *im, int x, int y) { return im->data + ((size_t)y * im->w + x) * 3; }
static int same(const uint8_t *p, const uint8_t c[3]) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

/* The window's image region == ref scaled by the layout's integer factor. Returns mismatching pixels. */
static long image_region_diff(const Image *shot, const char *layout, const Image *ref) {
    int r[5] = {0}, sc[5] = {0};
    if (layout_get(layout, "image", -1, r) != 4 || layout_get(layout, "scale", -1, sc) != 1) return -1;
    int k = sc[0];
    if (k < 1 || r[2] != ref->w * k || r[3] != ref->h * k || r[0] + r[2] > shot->w || r[1] + r[3] > shot->h) return -2;
    long bad = 0;
    for (int y = 0; y < r[3]; y++)
        for (int x = 0; x < r[2]; x++) bad += memcmp(px(shot, r[0] + x, r[1] + y), px(ref, x / k, y / k), 3) != 0;
    return bad;
}

/* Slider i: the bar's middle row holds only track/accent/knob/zero-mark colours, the knob is at the value. */
static void check_slider(const Image *shot, const char *layout, int i, float value) {
    int bar[5], knob[5];
    CHECK(layout_get(layout, "slider-bar", i, bar) == 4 && layout_get(layout, "slider-knob", i, knob) == 4,
          "layout has no slider %d", i);
    int y = bar[1] + bar[3] / 2, odd = 0, accent = 0;
    for (int x = bar[0]; x < bar[0] + bar[2]; x++) {
        const uint8_t *p = px(shot, x, y);
        odd += !(same(p, TRACK) || same(p, ACCENT) || same(p, KNOB) || same(p, DIM));
        accent += same(p, ACCENT);
    }
    CHECK(odd == 0, "slider %d: %d pixels of the bar are not slider colours", i, odd);
    CHECK(value == 0 || accent > 0, "slider %d: no accent fill for value %.2f", i, (double)value);
    int expect = bar[0] + (int)lroundf((value + 1.0f) / 3.0f * (float)(bar[2] - 1));
    CHECK(knob[0] == expect, "slider %d: layout knob x %d, expected %d for %.2f", i, knob[0], expect, (double)value);
    CHECK(same(px(shot, knob[0], y), KNOB) && same(px(shot, knob[0], y - 4), KNOB), "slider %d: no knob at x=%d", i,
          knob[0]);
    CHECK(same(px(shot, bar[0] + 1, y), TRACK) || value <= -0.95f, "slider %d: no track at its left end", i);
}

static int load_shot(const char *name, Image *img, char **layout) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    *layout = NULL;
    if (image_load(img, path) < 0) {
        CHECK(0, "screenshot %s: %s", path, ls_last_error());
        return LS_ERR;
    }
    *layout = image_png_get_text(path, "layout");
    if (!*layout) {
        CHECK(0, "screenshot %s has no layout text", path);
        image_free(img);
        return LS_ERR;
    }
    return LS_OK;
}

static void gen_ref(const char *out, const char *lora_a) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s generate 'a watercolor fox' --model %s/tiny --lora %s --lora %s/lora_peft.safetensors "
             "--lora-mode unmerged --seed 7 --steps 8 -o %s/%s >/dev/null 2>%s/gen.log", g_bin, g_tmp, lora_a, g_fix,
             g_tmp, out, g_tmp);
    CHECK(run(cmd) == 0, "generate %s failed: %s", out, cmd);
}

static void test_window(void) {
    char cmd[16384], base[4096];
    snprintf(base, sizeof base, "cd %s && xvfb-run -a -s '-screen 0 1280x1024x24' %s view --model tiny --lora "
             "%s/lora_kohya.safetensors --lora %s/lora_peft.safetensors --prompt 'a watercolor fox' --seed 7 "
             "--steps 8", g_tmp, g_bin, g_fix, g_fix);
    char la[1200], lb[1200];
    snprintf(la, sizeof la, "%s/lora_kohya.safetensors", g_fix);
    snprintf(lb, sizeof lb, "%s/lora_kohya.safetensors:0.5", g_fix);
    gen_ref("ref.png", la);
    gen_ref("ref05.png", lb);
    Image ref, ref05;
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/ref.png", g_tmp);
    snprintf(p2, sizeof p2, "%s/ref05.png", g_tmp);
    if (image_load(&ref, p1) < 0 || image_load(&ref05, p2) < 0) {
        CHECK(0, "reference images: %s", ls_last_error());
        return;
    }
    CHECK(memcmp(ref.data, ref05.data, (size_t)ref.w * ref.h * 3) != 0, "strength 0.5 should change the image");

    /* 1. --screenshot */
    snprintf(cmd, sizeof cmd, "%s --screenshot shot.png 2>view1.log", base);
    int rc = run(cmd);
    CHECK(rc == 0, "view --screenshot exited %d (see %s/view1.log)", rc, g_tmp);
    Image shot;
    char *layout;
    if (rc == 0 && load_shot("shot.png", &shot, &layout) == 0) {
        long bad = image_region_diff(&shot, layout, &ref);
        CHECK(bad == 0, "screenshot: image region differs from generate's image (%ld pixels; layout:\n%s)", bad, layout);
        check_slider(&shot, layout, 0, 1.0f);
        check_slider(&shot, layout, 1, 1.0f);
        int st[5];
        CHECK(layout_get(layout, "status", -1, st) == 4 && st[1] + st[3] == shot.h, "status bar at the bottom");
        free(layout);
        image_free(&shot);
    }

    /* 2. --script: slider, save, bad input, resize, drop */
    char path[512];
    snprintf(path, sizeof path, "%s/corrupt.safetensors", g_tmp);
    FILE *f = fopen(path, "wb");
    fprintf(f, "this is not a safetensors file");
    fclose(f);
    snprintf(cmd, sizeof cmd, "cp %s/lora_kohya.safetensors %s/style_b.safetensors", g_fix, g_tmp);
    CHECK(run(cmd) == 0, "copy adapter");
    snprintf(path, sizeof path, "%s/script.txt", g_tmp);
    f = fopen(path, "w");
    fprintf(f, "# test_view script\nwait-render\nslider 0 0.5\nwait-render\nkey ctrl+s\nexpect-status saved\n"
               "screenshot s1.png\ndrop %s/corrupt.safetensors\nwait-render\nexpect-status adapter not loaded\n"
               "focus prompt\nkey ctrl+u\nkey enter\nexpect-status empty prompt\ntype a watercolor fox\n"
               "resize 200 100\nwait 300\nexpect-status window too small\nscreenshot small.png\nresize 948 600\n"
               "wait 300\ndrop %s/style_b.safetensors\nwait-render\nexpect-status done\nfocus slider0\nkey left\nkey shift+right\n"
               "wait-render\nscreenshot s2.png\n",
            g_tmp, g_tmp);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s -o saved.png --script script.txt 2>view2.log", base);
    rc = run(cmd);
    CHECK(rc == 0, "view --script exited %d (see %s/view2.log)", rc, g_tmp);
    snprintf(path, sizeof path, "%s/view2.log", g_tmp);
    char *log = slurp(path);
    CHECK(strstr(log, "adapter not loaded") && strstr(log, "empty prompt") && strstr(log, "window too small"),
          "bad-input messages missing from the log:\n%s", log);
    CHECK(strstr(log, "timing: slider 0 = 0.50"), "no timing line for the slider move");
    free(log);
    Image saved;
    snprintf(path, sizeof path, "%s/saved.png", g_tmp);
    if (image_load(&saved, path) == 0) {
        CHECK(saved.w == ref05.w && !memcmp(saved.data, ref05.data, (size_t)saved.w * saved.h * 3),
              "the saved image after 'slider 0 0.5' differs from generate --lora A:0.5");
        char *params = image_png_get_text(path, "parameters");
        CHECK(params && strstr(params, "a watercolor fox <lora:lora_kohya:0.5> <lora:lora_peft:1>") &&
                  strstr(params, "Seed: 7") && strstr(params, "Steps: 8") && strstr(params, "Lora hashes: \""),
              "saved metadata: %s", params ? params : "(none)");
        free(params);
        if (load_shot("s1.png", &shot, &layout) == 0) {
            CHECK(image_region_diff(&shot, layout, &saved) == 0, "s1: image region != saved image");
            check_slider(&shot, layout, 0, 0.5f);
            free(layout);
            image_free(&shot);
        }
        image_free(&saved);
    } else {
        CHECK(0, "Ctrl+S wrote no image: %s", ls_last_error());
    }
    if (load_shot("small.png", &shot, &layout) == 0) {
        int v[5];
        CHECK(shot.w == 200 && shot.h == 100 && layout_get(layout, "too-small", -1, v) == 1 && v[0] == 1,
              "small window: %dx%d\n%s", shot.w, shot.h, layout);
        free(layout);
        image_free(&shot);
    }
    if (load_shot("s2.png", &shot, &layout) == 0) {
        int v[5];
        CHECK(layout_get(layout, "slider", 2, v) == 4, "the dropped adapter has no slider:\n%s", layout);
        /* slider 0 focused: left, then shift+right = 0.5 - 0.05 + 0.25 */
        check_slider(&shot, layout, 0, 0.7f);
        check_slider(&shot, layout, 2, 1.0f);
        free(layout);
        image_free(&shot);
    }

    /* 3. bitmap font fallback, and a bad script */
    snprintf(cmd, sizeof cmd, "%s --font /nonexistent/font.ttf --screenshot fb.png 2>view3.log", base);
    rc = run(cmd);
    CHECK(rc == 0, "view with a missing font exited %d", rc);
    if (rc == 0 && load_shot("fb.png", &shot, &layout) == 0) {
        CHECK(image_region_diff(&shot, layout, &ref) == 0, "fallback font: image region differs");
        check_slider(&shot, layout, 0, 1.0f);
        free(layout);
        image_free(&shot);
    }
    snprintf(path, sizeof path, "%s/bad.txt", g_tmp);
    f = fopen(path, "w");
    fprintf(f, "wait-render\nslidr 0 1\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --script bad.txt 2>view4.log", base);
    rc = run(cmd);
    snprintf(path, sizeof path, "%s/view4.log", g_tmp);
    log = slurp(path);
    CHECK(rc == 1 && strstr(log, "bad.txt:2") && strstr(log, "unknown command 'slidr'"), "bad script: rc %d, log %s",
          rc, log);
    free(log);
    image_free(&ref);
    image_free(&ref05);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_view <fixtures_dir> <lorastyle_binary>\n");
        return 2;
    }
    snprintf(g_fix, sizeof g_fix, "%s", argv[1]);
    snprintf(g_bin, sizeof g_bin, "%s", argv[2]);
    if (g_fix[0] != '/' || g_bin[0] != '/') {
        char cwd[512];
        if (!getcwd(cwd, sizeof cwd)) return 2;
        char t[1024];
        if (g_fix[0] != '/') snprintf(t, sizeof t, "%s/%s", cwd, argv[1]), snprintf(g_fix, sizeof g_fix, "%s", t);
        if (g_bin[0] != '/') snprintf(t, sizeof t, "%s/%s", cwd, argv[2]), snprintf(g_bin, sizeof g_bin, "%s", t);
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/lorastyle_test_view_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char model[512];
    snprintf(model, sizeof model, "%s/tiny", g_tmp);
    if (model_init_preset("tiny", model, 1, ST_F32, NULL) < 0) {
        printf("FAIL: init tiny: %s\n", ls_last_error());
        return 1;
    }
    test_hooks(model);

    /* part 2 needs the viewer and a virtual X server */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s view --no-such-option 2>&1 | grep -q 'built without SDL2'", g_bin);
    int skip = 0;
    if (run(cmd) == 0) {
        printf("SKIP: part 2: lorastyle was built without SDL2 (the viewer is not there)\n");
        skip = 1;
    } else if (run("command -v xvfb-run >/dev/null 2>&1 && command -v xauth >/dev/null 2>&1") != 0) {
        printf("SKIP: part 2: xvfb-run or xauth not found (apt-get install xvfb xauth)\n");
        skip = 1;
    } else {
        test_window();
    }
    int rc = test_summary();
    if (rc == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
        if (run(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
    } else {
        printf("files kept in %s\n", g_tmp);
    }
    return rc ? rc : skip ? 77 : 0;
}
