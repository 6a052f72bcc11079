/* cli.c — see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h" // defines: ls_set_error, ls_last_error
#include "image.h"  // defines: image_png_get_text

int cli_fail(void) {
    fprintf(stderr, "lorastyle: error: %s\n", ls_last_error());
    return 1;
}

int cli_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

int cli_need_arg(int argc, char **argv, int i) {
    if (i + 1 >= argc) return ls_set_error("option %s needs a value", argv[i]);
    return 0;
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return ls_set_error("%s: '%s' is not an integer between %ld and %ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

int cli_parse_float(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return ls_set_error("%s: '%s' is not a number", opt, s);
    *out = v;
    return 0;
}

int cli_parse_dtype(const char *s, StDtype *dt) {
    if (!strcmp(s, "f32") || !strcmp(s, "fp32")) *dt = ST_F32;
    else if (!strcmp(s, "f16") || !strcmp(s, "fp16")) *dt = ST_F16;
    else if (!strcmp(s, "bf16")) *dt = ST_BF16;
    else return ls_set_error("--dtype '%s': choose f32, f16 or bf16", s);
    return 0;
}

int cli_parse_list(const char *opt, const char *s, float *out, int cap) {
    int n = 0;
    const char *p = s;
    while (1) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char buf[64];
        if (len == 0 || len >= sizeof buf) return ls_set_error("%s '%s': empty or overlong entry", opt, s);
        memcpy(buf, p, len);
        buf[len] = 0;
        if (n == cap) return ls_set_error("%s '%s': more than %d entries", opt, s, cap);
        if (cli_parse_float(opt, buf, &out[n]) < 0) return LS_ERR;
        n++;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

char *cli_batch_path(const char *out, int b) {
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

int cli_check_output(const char *out, int batch) {
    if (!*out) return ls_set_error("-o: empty output path");
    for (int b = 0; b < batch; b++) {
        char *path = cli_batch_path(out, b);
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

void cli_on_step(int step, int total, void *user) {
    CliProgress *pr = user;
    if (!pr->tty) return;
    double el = ls_time() - pr->t0, rate = step / (el > 0 ? el : 1e-9);
    double eta = (total - step) / (rate > 0 ? rate : 1e-9);
    int width = 30, fill = width * step / total;
    fprintf(stderr, "\r%s%s[%.*s%*s] step %d/%d  %.2f it/s  ETA %.0fs ", pr->label ? pr->label : "",
            pr->label ? " " : "", fill, "==============================", width - fill, "", step, total, rate,
            eta);
    if (step == total) fputc('\n', stderr);
    fflush(stderr);
}

/* ---------------- generation options ---------------- */

const char *cli_default_model(void) {
    static char buf[4096];
    const char *env = getenv("LORASTYLE_MODEL");
    if (env && *env) return env;
    if (ls_is_dir(DEFAULT_MODEL)) return DEFAULT_MODEL;
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        char *sl = strrchr(buf, '/');
        if (sl && (size_t)(sl - buf) + 32 < sizeof buf) {
            strcpy(sl, "/../" DEFAULT_MODEL);
            if (ls_is_dir(buf)) return buf;
        }
    }
    return DEFAULT_MODEL;
}

int cli_missing_model(const char *path) {
    return ls_set_error("%s: the built-in model is not here (it ships in the repository's models/base; run from "
                        "the repository, set LORASTYLE_MODEL, or pass --model DIR|FILE)", path);
}

void genopts_init(GenOptions *o, const char *default_out) {
    memset(o, 0, sizeof *o);
    gen_params_init(&o->p);
    o->model = cli_default_model();
    o->seed = -1;
    o->out = default_out;
    o->merge = -1; /* merged where possible */
    o->dtype = ST_DTYPE_COUNT;
}

void genopts_free(GenOptions *o) { infotext_free(&o->png); }

/* --params-from: the settings of an A1111 / lorastyle PNG (see genopts_parse); fields it lacks keep their
 * values, except the negative prompt (none) and clip skip (1), as A1111 reads them. */
static int params_from_png(GenOptions *o, const char *path) {
    char *text = image_png_get_text(path, "parameters");
    if (!text) return LS_ERR;
    infotext_free(&o->png);
    int rc = infotext_parse(&o->png, text);
    free(text);
    if (rc < 0) return ls_error_context("%s: parameters text", path);
    const InfoText *it = &o->png;
    GenParams *p = &o->p;
    p->prompt = it->prompt;
    p->negative = it->negative;
    const char *v, *smp = infotext_get(it, "Sampler");
    long n, w, h;
    if ((v = infotext_get(it, "Steps"))) {
        if (cli_parse_int("Steps", v, 1, SCHED_MAX_STEPS, &n) < 0) return ls_error_context("%s", path);
        p->steps = (int)n;
    }
    if ((v = infotext_get(it, "CFG scale")) && cli_parse_float("CFG scale", v, &p->cfg) < 0)
        return ls_error_context("%s", path);
    if ((v = infotext_get(it, "Seed")) && cli_parse_int("Seed", v, 0, 4294967295L, &o->seed) < 0)
        return ls_error_context("%s", path);
    if ((v = infotext_get(it, "Size"))) {
        char tail;
        if (sscanf(v, "%ldx%ld%c", &w, &h, &tail) != 2 || w < 1 || h < 1 || w > 1 << 14 || h > 1 << 14)
            return ls_set_error("%s: Size '%s' is not WIDTHxHEIGHT", path, v);
        p->width = (int)w, p->height = (int)h;
    }
    p->clip_skip = 1;
    if ((v = infotext_get(it, "Clip skip"))) {
        if (cli_parse_int("Clip skip", v, 1, 64, &n) < 0) return ls_error_context("%s", path);
        p->clip_skip = (int)n;
    }
    o->png_sampler_error[0] = 0;
    if (smp) {
        int karras;
        if (sampler_from_display_name(smp, infotext_get(it, "Schedule type"), &p->sampler, &karras) < 0)
            snprintf(o->png_sampler_error, sizeof o->png_sampler_error, "%s: %s (give --sampler after --params-from)",
                     path, ls_last_error());
        else p->karras = o->png_karras = karras;
    }
    return LS_OK;
}

int genopts_parse(GenOptions *o, int argc, char **argv, int i) {
    const char *a = argv[i];
    GenParams *p = &o->p;
    if (!strcmp(a, "--karras")) return p->karras = 1, 1;
    if (!strcmp(a, "--lenient")) return o->lenient = 1, 1;
    if (!strcmp(a, "--compare")) return o->compare = 1, 1;
    static const char *const with_value[] = {
        "--model", "--prompt", "--negative", "-o", "--output", "--init-latent", "--config", "--tokenizer",
        "--sampler", "--steps", "--cfg", "--seed", "--width", "-W", "--height", "-H", "--batch",
        "--clip-skip", "--lora", "--lora-dir", "--lora-mode", "--dtype", "--scales", "--scales-b", "--seeds",
        "--prompts", "--params-from", NULL};
    int known = 0;
    for (int k = 0; with_value[k]; k++) known |= !strcmp(a, with_value[k]);
    if (!known || (!o->params_from_ok && !strcmp(a, "--params-from"))) return 0;
    if (cli_need_arg(argc, argv, i) < 0) return LS_ERR;
    const char *v = argv[i + 1];
    long n;
    if (!strcmp(a, "--params-from")) LS_TRY(params_from_png(o, v));
    else if (!strcmp(a, "--model")) o->model = v;
    else if (!strcmp(a, "--prompt")) p->prompt = v;
    else if (!strcmp(a, "--negative")) p->negative = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output")) o->out = v;
    else if (!strcmp(a, "--init-latent")) p->init_latent = v;
    else if (!strcmp(a, "--config")) o->mo.config_dir = v;
    else if (!strcmp(a, "--tokenizer")) o->mo.tokenizer_dir = v;
    else if (!strcmp(a, "--lora-dir")) o->lora_dir = v;
    else if (!strcmp(a, "--scales")) o->scales = v;
    else if (!strcmp(a, "--scales-b")) o->scales_b = v;
    else if (!strcmp(a, "--seeds")) o->seeds = v;
    else if (!strcmp(a, "--prompts")) o->prompts_file = v;
    else if (!strcmp(a, "--dtype")) LS_TRY(cli_parse_dtype(v, &o->dtype));
    else if (!strcmp(a, "--lora")) {
        if (o->n_lora == LS_MAX_LORAS) return ls_set_error("--lora: at most %d adapters", LS_MAX_LORAS);
        o->lora[o->n_lora++] = v;
    } else if (!strcmp(a, "--lora-mode")) {
        if (!strcmp(v, "merged")) o->merge = 1;
        else if (!strcmp(v, "unmerged")) o->merge = 0;
        else return ls_set_error("--lora-mode '%s': choose merged or unmerged", v);
    } else if (!strcmp(a, "--sampler")) {
        int k = 0;
        LS_TRY(sampler_from_name(v, &p->sampler, &k));
        if (o->png_karras) p->karras = o->png_karras = 0; /* the PNG's schedule goes with its sampler */
        p->karras |= k;
        o->png_sampler_error[0] = 0;
    } else if (!strcmp(a, "--steps")) {
        LS_TRY(cli_parse_int(a, v, 1, SCHED_MAX_STEPS, &n));
        p->steps = (int)n;
    } else if (!strcmp(a, "--cfg")) {
        LS_TRY(cli_parse_float(a, v, &p->cfg));
    } else if (!strcmp(a, "--seed")) {
        LS_TRY(cli_parse_int(a, v, -1, 4294967295L, &o->seed));
    } else if (!strcmp(a, "--width") || !strcmp(a, "-W")) {
        LS_TRY(cli_parse_int(a, v, 1, 1 << 14, &n));
        p->width = (int)n;
    } else if (!strcmp(a, "--height") || !strcmp(a, "-H")) {
        LS_TRY(cli_parse_int(a, v, 1, 1 << 14, &n));
        p->height = (int)n;
    } else if (!strcmp(a, "--batch")) {
        LS_TRY(cli_parse_int(a, v, 1, 64, &n));
        p->batch = (int)n;
    } else if (!strcmp(a, "--clip-skip")) {
        LS_TRY(cli_parse_int(a, v, 1, 64, &n));
        p->clip_skip = (int)n;
    }
    return 2;
}

/* ---------------- session: model + adapters ---------------- */

static void sappend(char **s, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sappend(char **s, size_t *cap, const char *fmt, ...) {
    size_t len = *s ? strlen(*s) : 0;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len + (size_t)need + 1 > *cap) {
        *cap = 2 * (len + (size_t)need + 1);
        *s = realloc(*s, *cap);
        LS_ASSERT(*s);
        if (len == 0) (*s)[0] = 0;
    }
    va_start(ap, fmt);
    vsnprintf(*s + len, *cap - len, fmt, ap);
    va_end(ap);
}

static int add_adapter(GenSession *s, const GenOptions *o, const char *path, float unet, float te) {
    if (s->n_lora == LS_MAX_LORAS) return ls_set_error("at most %d adapters", LS_MAX_LORAS);
    Lora *a = &s->lora[s->n_lora];
    LS_TRY(lora_load(a, path));
    s->n_lora++;
    if (lora_attach(a, &s->m, o->lenient) < 0) return LS_ERR;
    lora_set_strength(a, unet, te);
    if (o->merge == 1 && !lora_is_mergeable(a))
        return ls_set_error("%s: a bottleneck adapter (lorastyle_method adapter) is a nonlinear function of each "
                            "layer's output and cannot be merged into weights (generate with --lora-mode unmerged)",
                            path);
    if (unet == te)
        fprintf(stderr, "lorastyle: adapter %s: %s, %d U-Net + %d text-encoder modules, strength %g\n", a->name,
                lora_format_name(a->format), a->n_unet, a->n_te, (double)unet);
    else
        fprintf(stderr, "lorastyle: adapter %s: %s, %d U-Net + %d text-encoder modules, strength %g (text "
                "encoder %g)\n", a->name, lora_format_name(a->format), a->n_unet, a->n_te, (double)unet,
                (double)te);
    return LS_OK;
}

/* A <lora:NAME:...> tag stays inside its LoRA folder: NAME (subfolders allowed) is not absolute and has no
 * ".." component; prompts come from files, PNG metadata and other people, so a tag never reads elsewhere. */
static int lora_tag_name_ok(const char *name) {
    if (!*name || name[0] == '/' || strchr(name, '\\')) return 0;
    for (const char *c = name; c;) { /* each '/'-separated component */
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') return 0;
        c = e ? e + 1 : NULL;
    }
    return 1;
}

int gensession_open(GenSession *s, const GenOptions *o, const char *prompt) {
    memset(s, 0, sizeof *s);
    double t0 = ls_time();
    if (model_load(&s->m, o->model, &o->mo) < 0) {
        if (!strcmp(o->model, cli_default_model()) && !ls_is_dir(o->model)) cli_missing_model(o->model);
        return LS_ERR;
    }
    s->prompt = strdup(prompt ? prompt : "");
    size_t dcap = 0, ecap = 0;
    sappend(&s->display_prompt, &dcap, "%s", s->prompt);
    /* --lora FILE[:SCALE[:TE_SCALE]] */
    for (int i = 0; i < o->n_lora; i++) {
        char path[1024];
        float u, t;
        if (lora_parse_spec(o->lora[i], path, sizeof path, &u, &t) < 0 || add_adapter(s, o, path, u, t) < 0)
            goto fail;
        Lora *a = &s->lora[s->n_lora - 1];
        if (u == t) sappend(&s->display_prompt, &dcap, " <lora:%s:%g>", a->name, (double)u);
        else sappend(&s->display_prompt, &dcap, " <lora:%s:%g:%g>", a->name, (double)t, (double)u);
    }
    /* <lora:NAME:...> tags in the prompt */
    char *names[LS_MAX_LORAS];
    float te[LS_MAX_LORAS], un[LS_MAX_LORAS];
    int nt = lora_extract_prompt_tags(s->prompt, names, te, un, LS_MAX_LORAS);
    if (nt < 0) goto fail;
    char *dir = NULL;
    if (o->lora_dir) dir = strdup(o->lora_dir);
    else if (o->n_lora) {
        dir = strdup(s->lora[0].path);
        char *sl = strrchr(dir, '/');
        if (sl) *sl = 0;
        else strcpy(dir, ".");
    } else dir = strdup(".");
    int rc = 0;
    for (int i = 0; i < nt; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, names[i]);
        if (rc == 0 && !lora_tag_name_ok(names[i]))
            rc = ls_set_error("<lora:%s:...>: prompt tags may only name adapters inside the LoRA folder %s (no "
                              "absolute path or '..'; give other files with --lora FILE)", names[i], dir);
        if (rc == 0 && !ls_file_exists(path))
            rc = ls_set_error("<lora:%s:...>: no file %s (set --lora-dir)", names[i], path);
        if (rc == 0) rc = add_adapter(s, o, path, un[i], te[i]);
        free(names[i]);
    }
    free(dir);
    if (rc < 0) goto fail;
    if (s->n_lora) {
        sappend(&s->extra, &ecap, ", Lora hashes: \"");
        for (int i = 0; i < s->n_lora; i++)
            sappend(&s->extra, &ecap, "%s%s: %s", i ? ", " : "", s->lora[i].name, s->lora[i].hash);
        sappend(&s->extra, &ecap, "\"");
        if (o->merge)
            for (int i = 0; i < s->n_lora; i++) lora_merge(&s->lora[i]);
    } else {
        s->extra = strdup("");
    }
    s->t_load = ls_time() - t0;
    return LS_OK;
fail:;
    char err[1024];
    snprintf(err, sizeof err, "%s", ls_last_error());
    gensession_close(s);
    return ls_set_error("%s", err);
}

void gensession_close(GenSession *s) {
    for (int i = s->n_lora - 1; i >= 0; i--) lora_free(&s->lora[i]); /* restores the weights */
    model_free(&s->m);
    free(s->prompt);
    free(s->display_prompt);
    free(s->extra);
    memset(s, 0, sizeof *s);
}
