/* main.c — the lorastyle command line: init, generate, info, convert, tokenizer. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"   // defines: ls_last_error, ls_time
#include "model.h"    // defines: Model, model_load, model_init_preset
#include "ops.h"      // defines: op_num_threads
#include "pipeline.h" // defines: GenParams, pipeline_generate

#define DEFAULT_MODEL "models/tiny"

static int usage(FILE *f) {
    fprintf(f,
            "lorastyle — LoRA style adapters for Stable Diffusion 1.x, in C\n\n"
            "usage:\n"
            "  lorastyle init [--preset tiny|sd15] [-o DIR] [--seed N] [--dtype f32|f16] [--bpe FILE]\n"
            "  lorastyle generate \"prompt\" [--model DIR|FILE] [--negative TEXT] [--steps 20] [--cfg 7.5]\n"
            "                     [--sampler euler_a|euler|ddim|dpmpp_2m|dpmpp_2m_karras] [--karras]\n"
            "                     [--seed N] [--width W --height H] [--batch N] [--clip-skip N]\n"
            "                     [--init-latent FILE] [--config DIR] [--tokenizer DIR] [-o out.png]\n"
            "  lorastyle info FILE|DIR\n"
            "  lorastyle convert MODEL -o FILE.safetensors [--dtype f32|f16]  (single-file LDM layout)\n"
            "  lorastyle tokenizer --bpe bpe_simple_vocab_16e6.txt.gz -o DIR\n\n"
            "The default model is %s (make it with `lorastyle init`).\n",
            DEFAULT_MODEL);
    return f == stderr ? 2 : 0;
}

static int fail(void) {
    fprintf(stderr, "lorastyle: error: %s\n", ls_last_error());
    return 1;
}

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

/* Option helpers: each returns 0 or sets an error. */
static int need_arg(int argc, char **argv, int i) {
    if (i + 1 >= argc) return ls_set_error("option %s needs a value", argv[i]);
    return 0;
}

static int parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return ls_set_error("%s: '%s' is not an integer between %ld and %ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int parse_float(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return ls_set_error("%s: '%s' is not a number", opt, s);
    *out = v;
    return 0;
}

static int parse_dtype(const char *s, StDtype *dt) {
    if (!strcmp(s, "f32") || !strcmp(s, "fp32")) *dt = ST_F32;
    else if (!strcmp(s, "f16") || !strcmp(s, "fp16")) *dt = ST_F16;
    else if (!strcmp(s, "bf16")) *dt = ST_BF16;
    else return ls_set_error("--dtype '%s': choose f32, f16 or bf16", s);
    return 0;
}

/* ---------------- init ---------------- */

static int cmd_init(int argc, char **argv) {
    const char *preset = "tiny", *out = NULL, *bpe = NULL;
    long seed = 0;
    StDtype dt = ST_F32;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) return usage(stdout);
        if (!strcmp(a, "--preset") || !strcmp(a, "-o") || !strcmp(a, "--seed") || !strcmp(a, "--dtype") ||
            !strcmp(a, "--bpe")) {
            if (need_arg(argc, argv, i) < 0) return fail();
            const char *v = argv[++i];
            if (!strcmp(a, "--preset")) preset = v;
            else if (!strcmp(a, "-o")) out = v;
            else if (!strcmp(a, "--bpe")) bpe = v;
            else if (!strcmp(a, "--seed")) {
                if (parse_int(a, v, 0, 2147483647L, &seed) < 0) return fail();
            } else if (parse_dtype(v, &dt) < 0) return fail();
        } else {
            ls_set_error("init: unknown argument '%s'", a);
            return fail();
        }
    }
    char def[256];
    if (!out) {
        snprintf(def, sizeof def, "models/%s", preset);
        out = def;
    }
    double t0 = ls_time();
    if (model_init_preset(preset, out, (uint64_t)seed, dt, bpe) < 0) return fail();
    fprintf(stderr, "lorastyle: wrote a randomly initialised %s model to %s (seed %ld, %.1f s)\n", preset, out,
            seed, ls_time() - t0);
    return 0;
}

/* ---------------- generate ---------------- */

typedef struct {
    double t0;
    int tty;
} Progress;

static void on_step(int step, int total, void *user) {
    Progress *pr = user;
    if (!pr->tty) return;
    double el = ls_time() - pr->t0, rate = step / (el > 0 ? el : 1e-9);
    double eta = (total - step) / (rate > 0 ? rate : 1e-9);
    int width = 30, fill = width * step / total;
    fprintf(stderr, "\r[%.*s%*s] step %d/%d  %.2f it/s  ETA %.0fs ", fill,
            "==============================", width - fill, "", step, total, rate, eta);
    if (step == total) fputc('\n', stderr);
    fflush(stderr);
}

/* "out.png" → "out-1.png" for batch image b > 0 */
static char *batch_path(const char *out, int b) {
    size_t n = strlen(out) + 16;
    char *p = mallocCheck(n);
    if (b == 0) {
        snprintf(p, n, "%s", out);
        return p;
    }
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    snprintf(p, n, "%.*s-%d%s", (int)(dot - out), out, b, dot);
    return p;
}

/* Check the output path(s) before spending minutes on sampling. */
static int check_output(const char *out, int batch) {
    if (!*out) return ls_set_error("-o: empty output path");
    for (int b = 0; b < batch; b++) {
        char *path = batch_path(out, b);
        int is_dir = ls_is_dir(path);
        if (is_dir) ls_set_error("%s: is a folder, not an image file name", path);
        free(path);
        if (is_dir) return LS_ERR;
    }
    char *dir = strdup(out), *s = strrchr(dir, '/');
    if (s == dir) s[1] = 0; /* "/x.png" → "/" */
    else if (s) *s = 0;
    const char *d = s ? dir : ".";
    int rc = LS_OK;
    if (!ls_is_dir(d)) rc = ls_set_error("%s: output folder %s does not exist", out, d);
    else if (access(d, W_OK) != 0) rc = ls_set_error("%s: output folder %s is not writable", out, d);
    free(dir);
    return rc;
}

static int cmd_generate(int argc, char **argv) {
    GenParams p;
    gen_params_init(&p);
    const char *model = DEFAULT_MODEL, *out = "out.png", *prompt = NULL;
    ModelOpts mo = {0};
    long seed = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (prompt) {
                ls_set_error("generate: more than one prompt given ('%s'); quote the prompt", a);
                return fail();
            }
            prompt = a;
            continue;
        }
        if (is_help(a)) return usage(stdout);
        if (!strcmp(a, "--karras")) {
            p.karras = 1;
            continue;
        }
        if (need_arg(argc, argv, i) < 0) return fail();
        const char *v = argv[++i];
        long n;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--negative")) p.negative = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--init-latent")) p.init_latent = v;
        else if (!strcmp(a, "--config")) mo.config_dir = v;
        else if (!strcmp(a, "--tokenizer")) mo.tokenizer_dir = v;
        else if (!strcmp(a, "--sampler")) {
            int k = 0;
            if (sampler_from_name(v, &p.sampler, &k) < 0) return fail();
            p.karras |= k;
        } else if (!strcmp(a, "--steps")) {
            if (parse_int(a, v, 1, SCHED_MAX_STEPS, &n) < 0) return fail();
            p.steps = (int)n;
        } else if (!strcmp(a, "--cfg")) {
            if (parse_float(a, v, &p.cfg) < 0) return fail();
        } else if (!strcmp(a, "--seed")) {
            if (parse_int(a, v, -1, 4294967295L, &seed) < 0) return fail();
        } else if (!strcmp(a, "--width") || !strcmp(a, "-W")) {
            if (parse_int(a, v, 1, 1 << 14, &n) < 0) return fail();
            p.width = (int)n;
        } else if (!strcmp(a, "--height") || !strcmp(a, "-H")) {
            if (parse_int(a, v, 1, 1 << 14, &n) < 0) return fail();
            p.height = (int)n;
        } else if (!strcmp(a, "--batch")) {
            if (parse_int(a, v, 1, 64, &n) < 0) return fail();
            p.batch = (int)n;
        } else if (!strcmp(a, "--clip-skip")) {
            if (parse_int(a, v, 1, 64, &n) < 0) return fail();
            p.clip_skip = (int)n;
        } else {
            ls_set_error("generate: unknown option '%s'", a);
            return fail();
        }
    }
    if (!prompt) {
        ls_set_error("generate: no prompt given (lorastyle generate \"a watercolor fox\")");
        return fail();
    }
    p.prompt = prompt;
    p.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)(time(NULL) ^ (getpid() << 16)) % 4294967296ULL;
    if (check_output(out, p.batch) < 0) return fail();
    Model m;
    double t0 = ls_time();
    if (model_load(&m, model, &mo) < 0) {
        if (!strcmp(model, DEFAULT_MODEL) && !ls_is_dir(model))
            ls_set_error("%s: no model here yet; make the built-in tiny one with `lorastyle init` or pass "
                         "--model DIR|FILE", model);
        return fail();
    }
    if (gen_params_check(&m, &p) < 0) {
        model_free(&m);
        return fail();
    }
    double t_load = ls_time() - t0;
    Image *imgs = callocCheck((size_t)p.batch, sizeof *imgs);
    Progress pr = {ls_time(), isatty(2)};
    p.on_step = on_step;
    p.user = &pr;
    int rc = pipeline_generate(&m, &p, imgs, NULL);
    double t_gen = ls_time() - pr.t0;
    for (int b = 0; rc == 0 && b < p.batch; b++) {
        char *path = batch_path(out, b);
        char *params = pipeline_parameters_text(&m, &p, b);
        const char *text[2] = {"parameters", params};
        rc = image_write_png(path, &imgs[b], text, 1);
        if (rc == 0) printf("%s\n", path);
        free(params);
        free(path);
    }
    if (rc == 0)
        fprintf(stderr, "lorastyle: %d image%s %dx%d, %d steps %s, seed %llu: load %.2f s, generate %.2f s "
                        "(%d threads)\n", p.batch, p.batch > 1 ? "s" : "", p.width, p.height, p.steps,
                sampler_display_name(p.sampler, p.karras), (unsigned long long)p.seed, t_load, t_gen,
                op_num_threads());
    for (int b = 0; b < p.batch; b++) image_free(&imgs[b]);
    free(imgs);
    model_free(&m);
    return rc < 0 ? fail() : 0;
}

/* ---------------- info ---------------- */

static void human(char *buf, size_t cap, double bytes) {
    const char *u[] = {"B", "KiB", "MiB", "GiB"};
    int k = 0;
    while (bytes >= 1024 && k < 3) {
        bytes /= 1024;
        k++;
    }
    snprintf(buf, cap, "%.1f %s", bytes, u[k]);
}

static int info_file(const char *path) {
    StFile f;
    if (st_open(&f, path) < 0) return fail();
    int64_t params = 0, counts[ST_DTYPE_COUNT] = {0};
    int unet = 0, vae = 0, te = 0, lora = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        params += t->numel;
        counts[t->dtype]++;
        if (!strncmp(t->name, "model.diffusion_model.", 22)) unet++;
        else if (!strncmp(t->name, "first_stage_model.", 18)) vae++;
        else if (!strncmp(t->name, "cond_stage_model.", 17)) te++;
        if (strstr(t->name, "lora_")) lora++;
    }
    char sz[32];
    human(sz, sizeof sz, (double)f.map_size);
    printf("file: %s\nsize: %s\ntensors: %d\nparameters: %lld\n", path, sz, f.n_tensors, (long long)params);
    printf("dtypes:");
    for (int d = 0; d < ST_DTYPE_COUNT; d++)
        if (counts[d]) printf(" %s×%lld", st_dtype_name((StDtype)d), (long long)counts[d]);
    printf("\n");
    if (unet) printf("layout: single-file LDM checkpoint (U-Net %d, VAE %d, text encoder %d tensors)\n", unet, vae, te);
    else if (lora) printf("layout: LoRA adapter (%d lora tensors)\n", lora);
    else printf("layout: plain tensors (diffusers component or other)\n");
    for (int i = 0; i < f.n_meta; i++) printf("metadata: %s = %.200s\n", f.meta[i].key, f.meta[i].value);
    st_close(&f);
    return 0;
}

static int cmd_info(int argc, char **argv) {
    if (argc == 1 && is_help(argv[0])) return usage(stdout);
    if (argc != 1) {
        ls_set_error("info: give one FILE or DIR");
        return fail();
    }
    const char *path = argv[0];
    if (!ls_is_dir(path)) return info_file(path);
    Model m;
    if (model_load(&m, path, NULL) < 0) return fail();
    int64_t u, v, c;
    int64_t all = model_param_count(&m, &u, &v, &c);
    const UNetConfig *uc = &m.unet.cfg;
    printf("model: %s (diffusers folder)\n", path);
    printf("unet: %lld parameters, block_out_channels", (long long)u);
    for (int i = 0; i < uc->n_levels; i++) printf("%s%d", i ? "," : " ", uc->block_out[i]);
    printf(", layers_per_block %d, cross_attention_dim %d, sample_size %d\n", uc->layers_per_block,
           uc->cross_attention_dim, uc->sample_size);
    printf("vae: %lld parameters, scale factor %d, scaling_factor %g\n", (long long)v,
           vae_scale_factor(&m.vae.cfg), (double)m.vae.cfg.scaling_factor);
    printf("text encoder: %lld parameters, %d layers, width %d, vocabulary %d\n", (long long)c,
           m.clip.cfg.layers, m.clip.cfg.hidden, tokenizer_vocab_size(m.tok));
    printf("total: %lld parameters\ndefault image size: %dx%d\nmodel hash: %s\n", (long long)all,
           uc->sample_size * vae_scale_factor(&m.vae.cfg), uc->sample_size * vae_scale_factor(&m.vae.cfg),
           model_hash(&m));
    model_free(&m);
    return 0;
}

/* ---------------- convert / tokenizer ---------------- */

static int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    StDtype dt = ST_F16;
    ModelOpts mo = {0};
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) return usage(stdout);
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--dtype") || !strcmp(argv[i], "--config") ||
            !strcmp(argv[i], "--tokenizer")) {
            if (need_arg(argc, argv, i) < 0) return fail();
            const char *a = argv[i], *v = argv[++i];
            if (!strcmp(a, "-o")) out = v;
            else if (!strcmp(a, "--config")) mo.config_dir = v;
            else if (!strcmp(a, "--tokenizer")) mo.tokenizer_dir = v;
            else if (parse_dtype(v, &dt) < 0) return fail();
        } else if (!in) in = argv[i];
        else {
            ls_set_error("convert: unexpected argument '%s'", argv[i]);
            return fail();
        }
    }
    if (!in || !out) {
        ls_set_error("convert: usage: lorastyle convert MODEL -o FILE.safetensors");
        return fail();
    }
    Model m;
    if (model_load(&m, in, &mo) < 0) return fail();
    int rc = model_save_single_file(&m, out, dt);
    model_free(&m);
    if (rc < 0) return fail();
    printf("%s\n", out);
    return 0;
}

static int cmd_tokenizer(int argc, char **argv) {
    const char *bpe = NULL, *out = NULL;
    if (argc == 1 && is_help(argv[0])) return usage(stdout);
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--bpe")) bpe = argv[i + 1];
        else if (!strcmp(argv[i], "-o")) out = argv[i + 1];
    }
    if (!bpe || !out || argc != 4) {
        ls_set_error("tokenizer: usage: lorastyle tokenizer --bpe FILE -o DIR");
        return fail();
    }
    if (ls_mkdir_p(out) < 0 || tokenizer_write_from_bpe(bpe, out) < 0) return fail();
    printf("%s\n", out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) return usage(stdout);
    if (!strcmp(cmd, "init")) return cmd_init(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 2, argv + 2);
    if (!strcmp(cmd, "tokenizer")) return cmd_tokenizer(argc - 2, argv + 2);
    ls_set_error("unknown command '%s' (commands: init, generate, info, convert, tokenizer; see lorastyle "
                 "--help)", cmd);
    return fail();
}
