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
        if (arg_int("Steps", v, 1, SCHED_MAX_STEPS, &n) < 0) return ls_error_context("%s", path);
        p->steps = (int)n;
    }
    if ((v = infotext_get(it, "CFG scale")) && arg_float("CFG scale", v, &p->cfg) < 0)
        return ls_error_context("%s", path);
    if ((v = infotext_get(it, "Seed")) && arg_int("Seed", v, 0, 4294967295L, &o->seed) < 0)
        return ls_error_context("%s", path);
    if ((v = infotext_get(it, "Size"))) {
        char tail;
        if (sscanf(v, "%ldx%ld%c", &w, &h, &tail) != 2 || w < 1 || h < 1 || w > 1 << 14 || h > 1 << 14)
            return ls_set_error("%s: Size '%s' is not WIDTHxHEIGHT", path, v);
        p->width = (int)w, p->height = (int)h;
    }
    p->clip_skip = 1;
    if ((v = infotext_get(it, "Clip skip"))) {
        if (arg_int("Clip skip", v, 1, 64, &n) < 0) return ls_error_context("%s", path);
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
    if (arg_need(argc, argv, i) < 0) return LS_ERR;
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
    else if (!strcmp(a, "--dtype")) LS_TRY(arg_dtype(v, &o->dtype));
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
        LS_TRY(arg_int(a, v, 1, SCHED_MAX_STEPS, &n));
        p->steps = (int)n;
    } else if (!strcmp(a, "--cfg")) {
        LS_TRY(arg_float(a, v, &p->cfg));
    } else if (!strcmp(a, "--seed")) {
        LS_TRY(arg_int(a, v, -1, 4294967295L, &o->seed));
    } else if (!strcmp(a, "--width") || !strcmp(a, "-W")) {
        LS_TRY(arg_int(a, v, 1, 1 << 14, &n));
        p->width = (int)n;
    } else if (!strcmp(a, "--height") || !strcmp(a, "-H")) {
        LS_TRY(arg_int(a, v, 1, 1 << 14, &n));
        p->height = (int)n;
    } else if (!strcmp(a, "--batch")) {
        LS_TRY(arg_int(a, v, 1, 64, &n));
        p->batch = (int)n;
    } else if (!strcmp(a, "--clip-skip")) {
        LS_TRY(arg_int(a, v, 1, 64, &n));
        p->clip_skip = (int)n;
    }
    return 2;
}
