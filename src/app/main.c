/* main.c — the lorastyle command line: dispatch, and the model/file commands init, info, convert,
 * tokenizer (generate, sweep and merge live in cmd_generate.c). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"    // defines: cli_*, cmd_generate, cmd_sweep, cmd_merge
#include "common.h" // defines: ls_last_error, ls_time, ls_dir_begin, ls_dir_commit
#include "lora.h"   // defines: lora_load (info on adapters)
#include "model.h"  // defines: Model, model_load, model_init_preset
#include "ops.h"    // defines: ops_use_device
#include "train.h"  // defines: cmd_train

int cmd_scenes(int argc, char **argv);   /* cmd_scenes.c */
int cmd_pretrain(int argc, char **argv); /* pretrain.c */
int cmd_eval(int argc, char **argv);     /* cmd_eval.c */

#ifdef LS_HAVE_GUI
int cmd_view(int argc, char **argv); /* gui/view.c */
#else
static int cmd_view(int argc, char **argv) {
    (void)argc;
    (void)argv;
    ls_set_error("built without SDL2: `lorastyle view` is not available (apt-get install libsdl2-dev "
                 "libsdl2-ttf-dev, then rebuild with -DLS_GUI=ON)");
    return arg_fail();
}
#endif

static int usage(FILE *f) {
    fprintf(f,
            "lorastyle — LoRA style adapters for Stable Diffusion 1.x, in C\n\n"
            "usage:\n"
            "  lorastyle init [--preset tiny|base|sd15] [-o DIR] [--seed N] [--dtype f32|f16] [--bpe FILE]\n"
            "  lorastyle generate \"prompt\" [--model DIR|FILE] [--negative TEXT] [--steps 20] [--cfg 7.5]\n"
            "                     [--sampler euler_a|euler|ddim|dpmpp_2m|dpmpp_2m_karras] [--karras]\n"
            "                     [--seed N] [--width W --height H] [--batch N] [--clip-skip N]\n"
            "                     [--init-latent FILE] [--config DIR] [--tokenizer DIR] [-o out.png]\n"
            "                     [--lora FILE[:SCALE[:TE_SCALE]]]... [--lora-dir DIR] [--lenient]\n"
            "                     [--lora-mode merged|unmerged]   (prompt tags: <lora:NAME:SCALE>)\n"
            "                     [--params-from IMAGE.png]   (an A1111/lorastyle PNG's settings; later options override)\n"
            "  lorastyle sweep \"prompt\" --lora FILE [--lora B] [--scales 0,0.25,0.5,0.75,1,1.25]\n"
            "                     [--scales-b LIST] [--seeds 1,2,3] [--prompts FILE] [-o DIR] [generate options]\n"
            "  lorastyle merge MODEL --lora FILE[:SCALE]... -o OUT [--dtype f32|f16]\n"
            "  lorastyle view [--model M] [--lora FILE]... [--prompt TEXT] [generate options]\n"
            "                     [--script FILE] [--screenshot FILE.png]   (SDL2 window, live sliders)\n"
            "  lorastyle train DIR [--model M] [-o OUT] [--steps N] [--rank R] [--lr X] ... (train --help)\n"
            "  lorastyle info FILE|DIR             (checkpoint, model folder or adapter)\n"
            "  lorastyle convert MODEL -o FILE.safetensors [--dtype f32|f16]  (single-file LDM layout)\n"
            "  lorastyle tokenizer --bpe bpe_simple_vocab_16e6.txt.gz -o DIR\n"
            "  lorastyle scenes -o DIR [--style NAME] [-n N] [--seed S]   (synthetic captioned scenes)\n"
            "  lorastyle pretrain vae|diffusion MODEL [--steps N] ...  (train a small model from scratch)\n"
            "  lorastyle eval content|style ...     (what a model/adapter draws, scored; eval --help)\n\n"
            "Every command takes --device cpu|cuda|auto (default cpu, or $LORASTYLE_DEVICE): cuda runs the ops on an\n"
            "NVIDIA GPU through the CUDA backend (liblscuda.so, built when the CUDA toolkit is present).\n"
            "The default model is the built-in %s (trained by lorastyle itself on synthetic scenes; see README).\n",
            DEFAULT_MODEL);
    return f == stderr ? 2 : 0;
}

/* ---------------- init ---------------- */

/* Does folder `path` hold nothing? */
static int dir_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n == 0;
}

static int cmd_init(int argc, char **argv) {
    const char *preset = "tiny", *out = NULL, *bpe = NULL;
    long seed = 0;
    StDtype dt = ST_F32;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is_help(a)) return usage(stdout);
        if (!strcmp(a, "--preset") || !strcmp(a, "-o") || !strcmp(a, "--seed") || !strcmp(a, "--dtype") ||
            !strcmp(a, "--bpe")) {
            if (arg_need(argc, argv, i) < 0) return arg_fail();
            const char *v = argv[++i];
            if (!strcmp(a, "--preset")) preset = v;
            else if (!strcmp(a, "-o")) out = v;
            else if (!strcmp(a, "--bpe")) bpe = v;
            else if (!strcmp(a, "--seed")) {
                if (arg_int(a, v, 0, 2147483647L, &seed) < 0) return arg_fail();
            } else if (arg_dtype(v, &dt) < 0) return arg_fail();
        } else {
            ls_set_error("init: unknown argument '%s'", a);
            return arg_fail();
        }
    }
    char def[256];
    if (!out) {
        snprintf(def, sizeof def, "models/%s", preset);
        out = def;
        if (ls_is_dir(out)) { /* never overwrite a model by default (models/base is the shipped one) */
            ls_set_error("init: %s exists already; give a new folder with -o DIR", out);
            return arg_fail();
        }
    }
    struct stat st;
    if (stat(out, &st) == 0 && (!S_ISDIR(st.st_mode) || !dir_empty(out))) {
        ls_set_error("init: %s exists already%s; give a new folder with -o DIR", out,
                     S_ISDIR(st.st_mode) ? " and is not empty" : "");
        return arg_fail();
    }
    double t0 = ls_time();
    /* written into OUT.tmp.PID and renamed into place: a full disk or an error leaves no partial model */
    char *tmp = ls_dir_begin(out);
    if (!tmp || ls_dir_commit(tmp, out, model_init_preset(preset, tmp, (uint64_t)seed, dt, bpe)) < 0)
        return arg_fail();
    fprintf(stderr, "lorastyle: wrote a randomly initialised %s model to %s (seed %ld, %.1f s)\n", preset, out,
            seed, ls_time() - t0);
    return 0;
}
static void human(char *buf, size_t cap, double bytes) {
    const char *u[] = {"B", "KiB", "MiB", "GiB"};
    int k = 0;
    while (bytes >= 1024 && k < 3) {
        bytes /= 1024;
        k++;
    }
    snprintf(buf, cap, "%.1f %s", bytes, u[k]);
}

/* Which part of the network a module path belongs to (for `info ADAPTER`). */
static const char *module_group(const LoraModule *m) {
    const char *p = m->module;
    if (m->component == LORA_TE) return strstr(p, "mlp") ? "text encoder MLP" : "text encoder attention";
    if (strstr(p, "attn1")) return "U-Net self-attention";
    if (strstr(p, "attn2")) return "U-Net cross-attention";
    if (strstr(p, "ff_net") || strstr(p, "ff.net")) return "U-Net feed-forward";
    if (strstr(p, "proj_in") || strstr(p, "proj_out")) return "U-Net transformer proj_in/out";
    if (strstr(p, "time_emb_proj")) return "U-Net resnet time_emb_proj";
    if (strstr(p, "conv_shortcut")) return "U-Net resnet conv_shortcut";
    if (strstr(p, "samplers")) return "U-Net down/upsampler convs";
    if (strstr(p, "resnets")) return "U-Net resnet conv1/conv2";
    return "U-Net other";
}

static int info_adapter(const char *path) {
    Lora a;
    if (lora_load(&a, path) < 0) return arg_fail();
    char sz[32];
    human(sz, sizeof sz, (double)a.file.map_size);
    int rmin = 1 << 30, rmax = 0;
    float amin = INFINITY, amax = -INFINITY;
    for (int i = 0; i < a.n_mods; i++) {
        if (a.mods[i].rank == 0) continue; /* LoKr with both factors full: no rank, scale 1 */
        rmin = a.mods[i].rank < rmin ? a.mods[i].rank : rmin;
        rmax = a.mods[i].rank > rmax ? a.mods[i].rank : rmax;
        amin = fminf(amin, a.mods[i].alpha);
        amax = fmaxf(amax, a.mods[i].alpha);
    }
    printf("adapter: %s\nformat: %s\nfile size: %s\nshort hash: %s\n", path, lora_format_name(a.format), sz,
           a.hash);
    char kinds[256];
    lora_kind_summary(&a, kinds, sizeof kinds);
    printf("kind: %s\n", kinds);
    printf("modules: %d (U-Net %d, text encoder %d; %d conv k×k)\nparameters: %lld\n", a.n_mods, a.n_unet,
           a.n_te, a.n_conv, (long long)a.n_params);
    if (rmax == 0) printf("rank: none (full LoKr factors, scale 1)\n");
    else if (rmin == rmax) printf("rank: %d\n", rmin);
    else printf("rank: %d to %d\n", rmin, rmax);
    if (amin == amax) printf("alpha: %g (scale alpha/rank = %g)\n", (double)amin, (double)amin / rmin);
    else printf("alpha: %g to %g\n", (double)amin, (double)amax);
    const char *groups[16];
    int counts[16], ng = 0;
    for (int i = 0; i < a.n_mods; i++) {
        const char *g = module_group(&a.mods[i]);
        int k = 0;
        while (k < ng && strcmp(groups[k], g)) k++;
        if (k == ng && ng < 16) groups[ng] = g, counts[ng++] = 0;
        if (k < ng) counts[k]++;
    }
    for (int k = 0; k < ng; k++) printf("targets: %-32s %d modules\n", groups[k], counts[k]);
    for (int i = 0; i < a.file.n_meta; i++)
        printf("metadata: %s = %.200s\n", a.file.meta[i].key, a.file.meta[i].value);
    lora_free(&a);
    return 0;
}

static int info_file(const char *path) {
    StFile f;
    if (st_open(&f, path) < 0) return arg_fail();
    int64_t params = 0, counts[ST_DTYPE_COUNT] = {0};
    int unet = 0, vae = 0, te = 0, lora = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        params += t->numel;
        counts[t->dtype]++;
        if (!strncmp(t->name, "model.diffusion_model.", 22)) unet++;
        else if (!strncmp(t->name, "first_stage_model.", 18)) vae++;
        else if (!strncmp(t->name, "cond_stage_model.", 17)) te++;
        if (strstr(t->name, "lora") || !strncmp(t->name, "adapter_unet_", 13)) lora++;
    }
    const char *fmt = st_meta_get(&f, "format"), *step = st_meta_get(&f, "step");
    if (train_is_checkpoint_format(fmt)) { /* src/train/train_ckpt.c */
        const char *total = st_meta_get(&f, "max_train_steps");
        printf("file: %s\nlayout: lorastyle training checkpoint (%s): step %s of %s, %d tensors (trained values "
               "p., AdamW moments m. and v.)\nresume with: lorastyle train DIR -o <this folder> --resume; the "
               "adapter itself is NAME.safetensors beside it\n", path, fmt, step ? step : "?", total ? total : "?",
               f.n_tensors);
        st_close(&f);
        return 0;
    }
    if (lora && !unet) {
        st_close(&f);
        return info_adapter(path);
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
    if (argc == 1 && arg_is_help(argv[0])) return usage(stdout);
    if (argc != 1) {
        ls_set_error("info: give one FILE or DIR");
        return arg_fail();
    }
    const char *path = argv[0];
    if (!ls_is_dir(path)) return info_file(path);
    Model m;
    if (model_load(&m, path, NULL) < 0) return arg_fail();
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
        if (arg_is_help(argv[i])) return usage(stdout);
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--dtype") || !strcmp(argv[i], "--config") ||
            !strcmp(argv[i], "--tokenizer")) {
            if (arg_need(argc, argv, i) < 0) return arg_fail();
            const char *a = argv[i], *v = argv[++i];
            if (!strcmp(a, "-o")) out = v;
            else if (!strcmp(a, "--config")) mo.config_dir = v;
            else if (!strcmp(a, "--tokenizer")) mo.tokenizer_dir = v;
            else if (arg_dtype(v, &dt) < 0) return arg_fail();
        } else if (!in) in = argv[i];
        else {
            ls_set_error("convert: unexpected argument '%s'", argv[i]);
            return arg_fail();
        }
    }
    if (!in || !out) {
        ls_set_error("convert: usage: lorastyle convert MODEL -o FILE.safetensors");
        return arg_fail();
    }
    Model m;
    if (model_load(&m, in, &mo) < 0) return arg_fail();
    int rc = model_save_single_file(&m, out, dt);
    model_free(&m);
    if (rc < 0) return arg_fail();
    printf("%s\n", out);
    return 0;
}

static int cmd_tokenizer(int argc, char **argv) {
    const char *bpe = NULL, *out = NULL;
    if (argc == 1 && arg_is_help(argv[0])) return usage(stdout);
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--bpe")) bpe = argv[i + 1];
        else if (!strcmp(argv[i], "-o")) out = argv[i + 1];
    }
    if (!bpe || !out || argc != 4) {
        ls_set_error("tokenizer: usage: lorastyle tokenizer --bpe FILE -o DIR");
        return arg_fail();
    }
    if (ls_mkdir_p(out) < 0 || tokenizer_write_from_bpe(bpe, out) < 0) return arg_fail();
    printf("%s\n", out);
    return 0;
}

/* OpenMP's idle threads spin before they sleep (libgomp: 300000 rounds by default). With another busy
 * process on the machine the spinners take its turns and small workloads collapse (BENCHMARKS.md,
 * "Threads on a shared machine"); OMP_WAIT_POLICY=PASSIVE (no spinning) costs speed on a quiet machine. A
 * short spin, then sleep, serves both. libgomp reads its environment before main runs, so when the user set
 * neither variable lorastyle sets GOMP_SPINCOUNT and executes itself again, once. */
static void bounded_spinning(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", "30000", 1) == 0) execv("/proc/self/exe", argv); /* returns only on failure */
}

/* --device DEV anywhere on the line (or $LORASTYLE_DEVICE; default cpu): the backend of this process, chosen
 * before any model is loaded; the option is taken out of argv before the command parses the rest. */
static int choose_device(int *argc, char **argv) {
    const char *dev = getenv("LORASTYLE_DEVICE");
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        if (!strcmp(argv[i], "--device")) {
            if (i + 1 >= *argc) return ls_set_error("--device needs a value: cpu, cuda or auto");
            dev = argv[++i];
        }
        else if (!strncmp(argv[i], "--device=", 9)) dev = argv[i] + 9;
        else argv[n++] = argv[i];
    }
    argv[n] = NULL;
    *argc = n;
    char why[512];
    if (dev && *dev && ops_use_device(dev, why, sizeof why) < 0) {
        ls_set_error("%s", why);
        return LS_ERR;
    }
    return LS_OK;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv); /* the arguments after the command's name */
    } commands[] = {{"init", cmd_init},           {"generate", cmd_generate}, {"sweep", cmd_sweep},
                    {"merge", cmd_merge},         {"train", cmd_train},       {"view", cmd_view},
                    {"info", cmd_info},           {"convert", cmd_convert},   {"tokenizer", cmd_tokenizer},
                    {"scenes", cmd_scenes},       {"pretrain", cmd_pretrain}, {"eval", cmd_eval}};
    enum { N_COMMANDS = sizeof commands / sizeof commands[0] };
    bounded_spinning(argv);
    if (choose_device(&argc, argv) < 0) return arg_fail();
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) return usage(stdout);
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    char names[256] = "";
    for (int i = 0; i < N_COMMANDS; i++) {
        size_t k = strlen(names);
        snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "", commands[i].name);
    }
    ls_set_error("unknown command '%s' (commands: %s; see lorastyle --help)", cmd, names);
    return arg_fail();
}
