/* session.c — see session.h. */
#include "session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h" // defines: ls_set_error, ls_is_dir, ls_time

const char *model_default_path(void) {
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

int model_missing_default(const char *path) {
    return ls_set_error("%s: the built-in model is not here (it ships in the repository's models/base; run from "
                        "the repository, set LORASTYLE_MODEL, or pass --model DIR|FILE)", path);
}

void genopts_init(GenOptions *o, const char *default_out) {
    memset(o, 0, sizeof *o);
    gen_params_init(&o->p);
    o->model = model_default_path();
    o->seed = -1;
    o->out = default_out;
    o->merge = -1; /* merged where possible */
    o->dtype = ST_DTYPE_COUNT;
}

void genopts_free(GenOptions *o) { infotext_free(&o->png); }

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
        if (!strcmp(o->model, model_default_path()) && !ls_is_dir(o->model)) model_missing_default(o->model);
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
