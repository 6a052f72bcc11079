/* train_eval.c — watching a run (train_internal.h): sample grids over adapter strengths, the
 * validation loss on held-out images, the loss curve. */
#include "train_internal.h"

#include "style_eval.h" // defines: style_curve, style_signature_of_dataset

#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"     // defines: arg_list
#include "common.h"   // defines: ls_set_error, ls_path_join, ls_mkdir_p
#include "grid.h"     // defines: grid_compose
#include "image.h"    // defines: Image, image_write_png
#include "pipeline.h" // defines: pipeline_generate, pipeline_encode_prompt
#include "rng.h"      // defines: rng_normal
#include "scheduler.h" // defines: sampler_from_name, SamplerKind
#include "unet.h"     // defines: unet_forward
#include "vae.h"      // defines: vae_scale_factor

int train_write_plot(Trainer *T) {
    char title[256];
    snprintf(title, sizeof title, "%s - loss, %d steps", T->o.name, T->step);
    return train_loss_plot(T->plot_path, T->hist, T->step, T->val_step, T->val_loss, T->n_val, title);
}

/* kohya's sample-prompt line: "prompt --n negative --d seed --s steps --l cfg --ss sampler". --w/--h
 * are not used (every cell of a grid has the training resolution) and unknown options are ignored, both
 * with a warning naming the line. */
static int parse_sample_line(SamplePrompt *sp, char *line, uint64_t seed0, int steps0, const char *file, int ln) {
    memset(sp, 0, sizeof *sp);
    sp->seed = seed0, sp->steps = steps0, sp->cfg = 7.5f, sp->sampler = -1;
    char *opt = strstr(line, " --");
    char *rest = opt;
    if (opt) *opt = 0;
    sp->prompt = strdupCheck(line);
    while (rest) {
        char *a = rest + 3; /* after " --" */
        char *next = strstr(a, " --");
        if (next) *next = 0;
        char *sp_ = strchr(a, ' ');
        const char *v = sp_ ? sp_ + 1 : "";
        if (sp_) *sp_ = 0; /* a = the option's name */
        int bad = 0;
        if (!strcmp(a, "n")) sp->negative = strdupCheck(v);
        else if (!strcmp(a, "d")) sp->seed = (uint64_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "s")) bad = (sp->steps = atoi(v)) < 1 || sp->steps > 1000;
        else if (!strcmp(a, "l")) bad = !((sp->cfg = (float)atof(v)) >= 0 && sp->cfg < 100);
        else if (!strcmp(a, "ss")) {
            SamplerKind k;
            bad = sampler_from_name(v, &k, &sp->karras) < 0;
            sp->sampler = (int)k;
        } else if (!strcmp(a, "w") || !strcmp(a, "h"))
            ls_warn("%s:%d: --%s not used: sample grids are drawn at the training resolution", file, ln, a);
        else ls_warn("%s:%d: unknown option --%s ignored (known: --n --d --s --l --ss)", file, ln, a);
        if (bad) return ls_set_error("%s:%d: bad --%s value '%s'", file, ln, a, v);
        rest = next;
    }
    return LS_OK;
}

static void free_prompts(SamplePrompt *sp, int n) {
    for (int i = 0; i < n; i++) free(sp[i].prompt), free(sp[i].negative);
}

/* Modification time of path in ns (0 when it cannot be read). */
static long long mtime_ns(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec : 0;
}

/* Parse the --sample-prompts file into sp[] (*n prompts); on error nothing is left allocated. */
static int read_prompts(const TrainOptions *o, SamplePrompt *sp, int *n) {
    size_t len;
    *n = 0;
    char *s = ls_read_file(o->sample_prompts, &len);
    if (!s) return ls_error_context("--sample-prompts");
    int ln = 0, rc = LS_OK;
    for (char *p = s, *nl; p && *p && rc == LS_OK; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        ln++;
        size_t l = strlen(p);
        while (l && (p[l - 1] == '\r' || p[l - 1] == ' ')) p[--l] = 0;
        if (!l || p[0] == '#') continue;
        if (*n == MAX_SAMPLE_PROMPTS) {
            ls_warn("%s: only the first %d prompts are sampled", o->sample_prompts, MAX_SAMPLE_PROMPTS);
            break;
        }
        rc = parse_sample_line(&sp[*n], p, 1234 + (uint64_t)*n, o->sample_steps, o->sample_prompts, ln);
        (*n)++;
    }
    free(s);
    if (rc == LS_OK && *n == 0) rc = ls_set_error("%s: no prompts in the file", o->sample_prompts);
    if (rc != LS_OK) free_prompts(sp, *n), *n = 0;
    return rc;
}

int train_load_sample_prompts(Trainer *T) {
    const TrainOptions *o = &T->o;
    T->n_str = arg_list("--sample-strengths", o->sample_strengths, T->strengths, MAX_STRENGTHS);
    if (T->n_str < 0) return LS_ERR;
    if (o->method == METHOD_FULL) T->strengths[0] = 1.0f, T->n_str = 1; /* no adapter to scale: one row */
    if (!o->sample_prompts) return LS_OK; /* the default prompt comes from the data (trainer_setup) */
    T->sp_mtime = mtime_ns(o->sample_prompts);
    return read_prompts(o, T->sp, &T->n_sp);
}

/* The prompts file may be edited while training runs: a changed file is read again before sampling (a
 * file that no longer parses is reported and the previous prompts are kept). */
static void reload_prompts(Trainer *T) {
    const TrainOptions *o = &T->o;
    long long mt;
    if (!o->sample_prompts || (mt = mtime_ns(o->sample_prompts)) == T->sp_mtime) return;
    T->sp_mtime = mt;
    SamplePrompt fresh[MAX_SAMPLE_PROMPTS];
    int n;
    if (read_prompts(o, fresh, &n) < 0) {
        ls_warn("%s; the previous sample prompts are kept", ls_last_error());
        return;
    }
    free_prompts(T->sp, T->n_sp);
    memcpy(T->sp, fresh, (size_t)n * sizeof *fresh);
    T->n_sp = n;
    if (!o->quiet) fprintf(stderr, "lorastyle: %s changed: %d sample prompt%s\n", o->sample_prompts, n, n == 1 ? "" : "s");
}

static int sample_cancel(void *user) {
    (void)user;
    return train_interrupted() != 0;
}

/* One grid: rows = adapter strengths, columns = prompts, at the training resolution. */
int train_write_samples(Trainer *T) {
    reload_prompts(T);
    int rows = T->n_str, cols = T->n_sp, rc = LS_OK;
    Image *cells = callocCheck((size_t)rows * cols, sizeof *cells);
    double t0 = ls_time();
    if (!T->o.quiet) {
        if (T->tty) fputc('\n', stderr);
        fprintf(stderr, "lorastyle: sampling %d images at step %d...\n", rows * cols, T->step);
    }
    for (int r = 0; r < rows && rc == LS_OK; r++) {
        if (T->lora.n_mods) lora_set_strength(&T->lora, T->strengths[r], T->strengths[r]);
        for (int c = 0; c < cols && rc == LS_OK; c++) {
            GenParams g;
            gen_params_init(&g);
            g.prompt = T->sp[c].prompt, g.negative = T->sp[c].negative, g.seed = T->sp[c].seed;
            g.steps = T->sp[c].steps, g.cfg = T->sp[c].cfg, g.clip_skip = T->o.clip_skip;
            if (T->sp[c].sampler >= 0) g.sampler = (SamplerKind)T->sp[c].sampler, g.karras = T->sp[c].karras;
            g.width = g.height = T->res;
            g.cancel = sample_cancel;
            if (gen_params_check(&T->m, &g) < 0 || pipeline_generate(&T->m, &g, &cells[r * cols + c], NULL) < 0)
                rc = LS_ERR;
        }
    }
    if (T->lora.n_mods) lora_set_strength(&T->lora, 1.0f, 1.0f);
    if (rc == LS_OK) {
        char **rl = callocCheck((size_t)rows, sizeof *rl), title[256], fn[64];
        const char **cl = callocCheck((size_t)cols, sizeof *cl);
        for (int r = 0; r < rows; r++)
            rl[r] = T->o.method == METHOD_FULL ? strdupCheck("fine-tuned") : train_fmt("strength %g", (double)T->strengths[r]);
        for (int c = 0; c < cols; c++) cl[c] = T->sp[c].prompt;
        snprintf(title, sizeof title, "%s - step %d", T->o.name, T->step);
        Image grid = {0};
        rc = grid_compose(&grid, cells, rows, cols, (const char *const *)rl, cl, title);
        if (rc == LS_OK) {
            snprintf(fn, sizeof fn, "step_%06d.png", T->step);
            char *path = ls_path_join(T->samples_dir, fn);
            const char *text[2] = {"lorastyle", title};
            rc = ls_mkdir_p(T->samples_dir);
            if (rc == LS_OK) rc = image_write_png(path, &grid, text, 1);
            if (rc == LS_OK && !T->o.quiet)
                fprintf(stderr, "lorastyle: wrote %s (%.1f s)\n", path, ls_time() - t0);
            free(path);
        }
        image_free(&grid);
        for (int r = 0; r < rows; r++) free(rl[r]);
        free(rl), free(cl);
    }
    for (int i = 0; i < rows * cols; i++) image_free(&cells[i]);
    free(cells);
    return rc;
}

/* The validation loss: every held-out image (unflipped, its fixed latent sample) at VAL_T fixed timesteps
 * with fixed noise, plain MSE against the target (no min-SNR weight, no noise offset), averaged — the same
 * draws at every evaluation, so the curve shows the model, not the sampling. Inference forward, no
 * gradients. With --train-text-encoder the caption is re-encoded through the current text encoder. */
static int validate(Trainer *T, double *out) {
    const TrainOptions *o = &T->o;
    int f = vae_scale_factor(&T->m.vae.cfg), C = T->C, L = T->dc.L;
    size_t nctx = (size_t)L * T->dc.D;
    float *ctx = mallocCheck(VAL_T * nctx * sizeof(float)), tf[VAL_T];
    double sum = 0.0;
    int rc = LS_OK;
    for (int j = 0; j < T->n_val_items && rc == LS_OK; j++) {
        int i = T->val_items[j], h, w;
        const DatasetItem *it = &T->d.items[i];
        size_t n = (size_t)C * (it->th / f) * (it->tw / f);
        float *x0 = mallocCheck(n * sizeof(float)), *noise = mallocCheck(VAL_T * n * sizeof(float));
        float *xt = mallocCheck(VAL_T * n * sizeof(float)), *pred = mallocCheck(VAL_T * n * sizeof(float));
        float *target = mallocCheck(VAL_T * n * sizeof(float));
        rc = datacache_latent(&T->dc, i, 0, x0, &h, &w);
        if (rc == LS_OK && dataset_caption(&T->d, i, o->seed, DATASET_CAPTION_PLAIN, T->captxt, T->capb + 1) < 0)
            rc = LS_ERR;
        if (rc == LS_OK)
            rc = T->capv ? pipeline_encode_prompt(&T->m, T->captxt, o->clip_skip, ctx) : datacache_ctx(&T->dc, T->captxt, ctx);
        if (rc == LS_OK) {
            for (int k = 1; k < VAL_T; k++) memcpy(ctx + k * nctx, ctx, nctx * sizeof(float));
            rng_normal(noise, VAL_T * n, train_stream(o->seed, (uint64_t)i, P_VAL), 0);
            for (int k = 0; k < VAL_T; k++) {
                int t = (int)((k + 0.5) * T->T / VAL_T);
                tf[k] = (float)t;
                train_noise_to(T, t, x0, noise + k * n, xt + k * n, target + k * n, n);
            }
            unet_forward(&T->m.unet, pred, xt, tf, ctx, VAL_T, h, w, L);
            for (int k = 0; k < VAL_T; k++) sum += unet_mse_loss(NULL, pred + k * n, target + k * n, n);
        }
        free(x0), free(noise), free(xt), free(pred), free(target);
    }
    free(ctx);
    *out = sum / ((double)T->n_val_items * VAL_T);
    return rc;
}

/* Validate now and log it (validation.csv, the in-memory history for the plot and the report). */
int train_record_validation(Trainer *T) {
    double v;
    LS_TRY(validate(T, &v));
    T->val_step[T->n_val] = T->step, T->val_loss[T->n_val] = (float)v, T->n_val++;
    fprintf(T->val_csv, "%d,%.6g\n", T->step, v);
    fflush(T->val_csv);
    if (!T->o.quiet && !T->tty) fprintf(stderr, "lorastyle: step %d  validation loss %.5f\n", T->step, v);
    return LS_OK;
}

/* ---------------- the style curve ---------------- */

int train_style_curve_n(const TrainOptions *o, int res) {
    if (o->method == METHOD_FULL) return 0; /* no strength to vary */
    return o->style_curve >= 0 ? o->style_curve : res <= 128 ? 4 : 0;
}

int train_style_curve(Trainer *T) {
    int n = train_style_curve_n(&T->o, T->res);
    if (n <= 0 || !T->lora.n_mods || T->o.buckets) return LS_OK;
    /* the captions: held-out images' when there are some, else the first distinct ones */
    char **caps = callocCheck((size_t)n, sizeof *caps);
    int k = 0;
    for (int pass = 0; pass < 2 && k < n; pass++) {
        int m = pass == 0 ? T->n_val_items : T->d.n_items;
        for (int j = 0; j < m && k < n; j++) {
            int item = pass == 0 ? T->val_items[j] : j;
            char *c = mallocCheck((size_t)T->capb + 1);
            dataset_caption(&T->d, item, T->o.seed, DATASET_CAPTION_PLAIN, c, T->capb + 1);
            int dup = 0;
            for (int q = 0; q < k; q++) dup |= !strcmp(caps[q], c);
            if (dup) free(c);
            else caps[k++] = c;
        }
    }
    double t0 = ls_time();
    QualityStyleSig *ref = mallocCheck(sizeof *ref);
    int size = 0, rc = style_signature_of_dataset(&T->d, 256, ref, &size);
    StylePoint pt[3];
    const float sc[3] = {0.0f, 0.5f, 1.0f};
    Image *cells = callocCheck((size_t)3 * k, sizeof *cells);
    if (rc == LS_OK) rc = style_curve(&T->m, &T->lora, NULL, ref, (const char *const *)caps, k, 4321, size, sc, 3, pt, cells, sample_cancel);
    lora_set_strength(&T->lora, 1.0f, 1.0f);
    if (rc == LS_OK) {
        for (int i = 0; i < 3; i++) T->curve[i] = pt[i].dist;
        T->n_curve = k;
        T->curve_same = 1;
        for (int i = 0; i < k; i++)
            T->curve_same &= !memcmp(cells[i].data, cells[2 * k + i].data, (size_t)size * size * 3);
        if (!T->o.quiet)
            fprintf(stderr, "lorastyle: style curve (%d captions, %.1f s): distance to the training images %.4f / "
                            "%.4f / %.4f at strength 0 / 0.5 / 1\n", k, ls_time() - t0, (double)T->curve[0],
                    (double)T->curve[1], (double)T->curve[2]);
        if (T->curve_same)
            ls_warn("the adapter has no effect: images at strength 1 are identical to the base model's (the "
                    "learning rate or the steps may be far too low)");
        else if (T->curve[2] > 0.97f * T->curve[0])
            ls_warn("the adapter has no measurable effect on style: at strength 1 its images are not closer to the "
                    "training images than the base model's (distance %.4f vs %.4f); train longer, raise --lr or "
                    "--rank, or check that the captions do not describe the style itself",
                    (double)T->curve[2], (double)T->curve[0]);
    }
    for (int i = 0; i < 3 * k; i++) image_free(&cells[i]);
    for (int i = 0; i < k; i++) free(caps[i]);
    free(cells), free(caps), free(ref);
    return rc;
}
