/* cmd_generate.c — `lorastyle generate`, `sweep` and `merge`: text-to-image with adapters, labelled
 * strength grids, and merged checkpoints. */
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"    // defines: GenOptions, GenSession, cli_*
#include "common.h" // defines: ls_set_error, ls_time
#include "grid.h"   // defines: grid_compose
#include "ops.h"    // defines: op_num_threads

static uint64_t pick_seed(long seed) {
    return seed >= 0 ? (uint64_t)seed : (uint64_t)(time(NULL) ^ ((long)getpid() << 16)) % 4294967296ULL;
}

/* Parse argv into o; positional arguments go to *positional (at most one). LS_ERR on anything odd. */
static int parse_args(GenOptions *o, int argc, char **argv, const char *cmd, const char **positional,
                      int *help) {
    *help = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is_help(a)) {
            *help = 1;
            return 0;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (*positional)
                return ls_set_error("%s: more than one positional argument ('%s'); quote the prompt", cmd, a);
            *positional = a;
            continue;
        }
        int used = genopts_parse(o, argc, argv, i);
        if (used < 0) return LS_ERR;
        if (used == 0) return ls_set_error("%s: unknown option '%s'", cmd, a);
        i += used - 1;
    }
    return 0;
}

/* Write one image with its A1111 "parameters" text. */
static int write_png(GenSession *s, const GenParams *p, const Image *img, int b, const char *path) {
    GenParams q = *p;
    q.display_prompt = p->display_prompt ? p->display_prompt : s->display_prompt;
    q.extra_params = s->extra;
    char *params = pipeline_parameters_text(&s->m, &q, b);
    const char *text[2] = {"parameters", params};
    int rc = image_write_png(path, img, text, 1);
    free(params);
    return rc;
}

/* ---------------- generate ---------------- */

static int generate(GenOptions *o, int argc, char **argv) {
    const char *prompt = NULL;
    int help;
    if (parse_args(o, argc, argv, "generate", &prompt, &help) < 0) return arg_fail();
    if (help) {
        printf("usage: lorastyle generate \"prompt\" [options]  (see `lorastyle --help`)\n");
        return 0;
    }
    if (o->png_sampler_error[0]) {
        ls_set_error("%s", o->png_sampler_error);
        return arg_fail();
    }
    /* a prompt argument, else --prompt, else --params-from's (which may be empty, as A1111 allows) */
    if (!prompt) prompt = o->p.prompt && (o->p.prompt[0] || o->p.prompt == o->png.prompt) ? o->p.prompt : NULL;
    if (!prompt) {
        ls_set_error("generate: no prompt given (lorastyle generate \"a watercolor fox\")");
        return arg_fail();
    }
    o->p.seed = pick_seed(o->seed);
    if (cli_check_output(o->out, o->p.batch) < 0) return arg_fail();
    GenSession s;
    if (gensession_open(&s, o, prompt) < 0) return arg_fail();
    GenParams p = o->p;
    p.prompt = s.prompt;
    if (gen_params_check(&s.m, &p) < 0) {
        gensession_close(&s);
        return arg_fail();
    }
    Image *imgs = callocCheck((size_t)p.batch, sizeof *imgs);
    CliProgress pr = {ls_time(), isatty(2), NULL};
    p.on_step = cli_on_step;
    p.user = &pr;
    int rc = pipeline_generate(&s.m, &p, imgs, NULL);
    double t_gen = ls_time() - pr.t0;
    for (int b = 0; rc == 0 && b < p.batch; b++) {
        char *path = cli_batch_path(o->out, b);
        rc = write_png(&s, &p, &imgs[b], b, path);
        if (rc == 0) printf("%s\n", path);
        free(path);
    }
    if (rc == 0)
        fprintf(stderr, "lorastyle: %d image%s %dx%d, %d steps %s, seed %llu: load %.2f s, generate %.2f s "
                        "(%d threads)\n", p.batch, p.batch > 1 ? "s" : "", p.width, p.height, p.steps,
                sampler_display_name(p.sampler, p.karras), (unsigned long long)p.seed, s.t_load, t_gen,
                op_num_threads());
    for (int b = 0; b < p.batch; b++) image_free(&imgs[b]);
    free(imgs);
    gensession_close(&s);
    return rc < 0 ? arg_fail() : 0;
}

int cmd_generate(int argc, char **argv) {
    GenOptions o;
    genopts_init(&o, "out.png");
    o.params_from_ok = 1;
    int rc = generate(&o, argc, argv);
    genopts_free(&o);
    return rc;
}

/* ---------------- sweep ---------------- */

#define SWEEP_MAX 64

/* Prompts file: one prompt per non-empty line. */
static int read_prompts(const char *path, char ***out) {
    size_t len;
    char *text = ls_read_file(path, &len);
    if (!text) return LS_ERR;
    int n = 0;
    char **v = callocCheck(SWEEP_MAX, sizeof *v);
    for (char *line = strtok(text, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        while (*line == ' ' || *line == '\t') line++;
        if (!*line) continue;
        if (n == SWEEP_MAX) {
            ls_set_error("%s: more than %d prompts", path, SWEEP_MAX);
            n = LS_ERR;
            break;
        }
        if (strstr(line, "<lora:")) {
            ls_set_error("%s: <lora:...> tags are not supported in --prompts (use --lora)", path);
            n = LS_ERR;
            break;
        }
        v[n++] = strdup(line);
    }
    free(text);
    if (n == 0) n = ls_set_error("%s: no prompts in the file", path);
    if (n < 0) {
        for (int i = 0; i < SWEEP_MAX; i++) free(v[i]);
        free(v);
        return LS_ERR;
    }
    *out = v;
    return n;
}

/* Set the strengths of one cell, st[j] for adapter j. Merged adapters are unmerged first (which restores
 * the exact base weights) and merged again, so no cell carries rounding left by earlier cells: strength 0
 * gives exactly the base model's pixels, strength s exactly `generate --lora FILE:s`. */
static void sweep_set_strengths(GenSession *s, int merged, const float *st) {
    for (int i = s->n_lora - 1; merged && i >= 0; i--) lora_unmerge(&s->lora[i]);
    for (int i = 0; i < s->n_lora; i++) lora_set_strength(&s->lora[i], st[i], st[i]);
    for (int i = 0; merged && i < s->n_lora; i++) lora_merge(&s->lora[i]);
}

/* Error exit of sweep: remove the output folder if this run created it and it is still empty. */
static int sweep_fail(const char *dir, int created) {
    if (created) rmdir(dir); /* fails harmlessly when cells were written */
    return arg_fail();
}

int cmd_sweep(int argc, char **argv) {
    GenOptions o;
    genopts_init(&o, "sweep");
    const char *prompt = NULL;
    int help;
    if (parse_args(&o, argc, argv, "sweep", &prompt, &help) < 0) return arg_fail();
    if (help) {
        printf("usage: lorastyle sweep \"prompt\" --lora FILE [--lora B] [--scales 0,0.25,0.5,0.75,1,1.25]\n"
               "       [--scales-b LIST] [--seeds 1,2,3] [--prompts FILE] [-o DIR] [generate options]\n"
               "  rows: strengths of the first adapter (others keep theirs); columns: seeds x prompts, or\n"
               "  --scales-b: the second adapter's strengths (a grid per seed and prompt).\n"
               "  --compare: rows = each --lora alone at each --scales value (the others at 0), e.g. the\n"
               "  NAME-stepNNNNNNNN.safetensors files of one training run.\n");
        return 0;
    }
    if (!prompt && o.p.prompt && o.p.prompt[0]) prompt = o.p.prompt;
    float scales[SWEEP_MAX], scales_b[SWEEP_MAX], seeds_f[SWEEP_MAX];
    int ns = arg_list("--scales", o.scales ? o.scales : "0,0.25,0.5,0.75,1,1.25", scales, SWEEP_MAX);
    int nb = o.scales_b ? arg_list("--scales-b", o.scales_b, scales_b, SWEEP_MAX) : 0;
    int nseed = o.seeds ? arg_list("--seeds", o.seeds, seeds_f, SWEEP_MAX) : 1;
    if (ns < 0 || nb < 0 || nseed < 0) return arg_fail();
    uint64_t seeds[SWEEP_MAX];
    for (int i = 0; i < nseed; i++) {
        if (o.seeds && (seeds_f[i] < 0 || seeds_f[i] != floorf(seeds_f[i]) || seeds_f[i] > 4294967295.0f)) {
            ls_set_error("--seeds '%s': seeds must be whole numbers ≥ 0", o.seeds);
            return arg_fail();
        }
        seeds[i] = o.seeds ? (uint64_t)seeds_f[i] : pick_seed(o.seed);
    }
    char **prompts = NULL;
    int np = 1;
    if (o.prompts_file) {
        if ((np = read_prompts(o.prompts_file, &prompts)) < 0) return arg_fail();
    } else if (!prompt) {
        ls_set_error("sweep: no prompt given (a prompt or --prompts FILE)");
        return arg_fail();
    }
    if (o.p.batch != 1) {
        ls_set_error("sweep: --batch is not used by sweep (use --seeds)");
        return arg_fail();
    }
    int created = !ls_is_dir(o.out);
    if (ls_mkdir_p(o.out) < 0) return arg_fail();
    char *probe = ls_path_join(o.out, "grid.png");
    int ok = cli_check_output(probe, 1);
    free(probe);
    if (ok < 0) return sweep_fail(o.out, created);

    GenSession s;
    if (gensession_open(&s, &o, prompt ? prompt : "") < 0) return sweep_fail(o.out, created);
    int rc = 0;
    if (s.n_lora == 0) rc = ls_set_error("sweep: give the adapter to sweep with --lora FILE");
    else if (nb > 0 && s.n_lora < 2) rc = ls_set_error("sweep: --scales-b needs a second --lora");
    else if (o.compare && (s.n_lora < 2 || nb > 0))
        rc = ls_set_error("sweep: --compare needs two or more --lora files and no --scales-b");
    GenParams p = o.p;
    p.prompt = s.prompt;
    if (rc == 0) rc = gen_params_check(&s.m, &p);
    /* Rows = strengths of adapter A, so that down a column only the strength changes (same prompt, seed
     * and initial noise). Columns: 1-D, every (prompt, seed) pair (another adapter keeps its strength);
     * 2-D (--scales-b), the strengths of adapter B, with one grid per (prompt, seed). */
    int n_grids = nb > 0 ? np * nseed : 1, rows = o.compare ? s.n_lora * ns : ns, cols = nb > 0 ? nb : np * nseed;
    Lora *A = &s.lora[0], *Bl = s.n_lora > 1 ? &s.lora[1] : NULL;
    float given[LS_MAX_LORAS], st[LS_MAX_LORAS]; /* the strengths from the command line */
    for (int j = 0; j < s.n_lora; j++) given[j] = s.lora[j].strength[LORA_UNET];
    Image *cells = callocCheck((size_t)rows * cols, sizeof *cells);
    char **rl = callocCheck((size_t)rows, sizeof *rl), **cl = callocCheck((size_t)cols, sizeof *cl);
    for (int r = 0; r < rows; r++) {
        char lab[160];
        snprintf(lab, sizeof lab, "%s: %g", o.compare ? s.lora[r / ns].name : A->name, (double)scales[r % ns]);
        rl[r] = strdup(lab);
    }
    double t0 = ls_time();
    int total = n_grids * rows * cols, done = 0;
    for (int g = 0; rc == 0 && g < n_grids; g++) {
        for (int c = 0; rc == 0 && c < cols; c++) {
            int pi = nb > 0 ? g / nseed : c / nseed, si = nb > 0 ? g % nseed : c % nseed;
            p.prompt = prompts ? prompts[pi] : s.prompt;
            p.seed = seeds[si];
            const char *shown = prompts ? prompts[pi] : s.prompt;
            for (int r = 0; rc == 0 && r < rows; r++) {
                for (int j = 0; j < s.n_lora; j++) st[j] = o.compare ? 0.0f : given[j];
                if (o.compare) st[r / ns] = scales[r % ns];
                else st[0] = scales[r];
                if (nb > 0) st[1] = scales_b[c];
                sweep_set_strengths(&s, o.merge, st);
                char label[96];
                snprintf(label, sizeof label, "cell %d/%d", ++done, total);
                CliProgress pr = {ls_time(), isatty(2), label};
                p.on_step = cli_on_step;
                p.user = &pr;
                Image *img = &cells[r * cols + c];
                image_free(img);
                rc = pipeline_generate(&s.m, &p, img, NULL);
                if (rc < 0) break;
                /* the cell's own PNG, its metadata stating the strengths it was made with */
                char name[160], tags[512];
                int k = snprintf(tags, sizeof tags, "%s", shown);
                for (int j = 0; j < s.n_lora && k < (int)sizeof tags; j++) /* compare: only the one in use */
                    if (!o.compare || j == r / ns)
                        k += snprintf(tags + k, sizeof tags - (size_t)k, " <lora:%s:%g>", s.lora[j].name, (double)st[j]);
                GenParams q = p;
                q.display_prompt = tags;
                if (nb > 0) snprintf(name, sizeof name, "cell-g%02d-r%02d-c%02d.png", g, r, c);
                else snprintf(name, sizeof name, "cell-r%02d-c%02d.png", r, c);
                char *path = ls_path_join(o.out, name);
                rc = write_png(&s, &q, img, 0, path);
                free(path);
            }
            char lab[600];
            if (nb > 0) snprintf(lab, sizeof lab, "%s: %g", Bl->name, (double)scales_b[c]);
            else if (np > 1 && nseed > 1) snprintf(lab, sizeof lab, "%s (seed %llu)", shown, (unsigned long long)p.seed);
            else if (np > 1) snprintf(lab, sizeof lab, "%s", shown);
            else snprintf(lab, sizeof lab, "seed %llu", (unsigned long long)p.seed);
            free(cl[c]);
            cl[c] = strdup(lab);
        }
        if (rc < 0) break;
        char title[800], name[64];
        int pi = nb > 0 ? g / nseed : 0;
        if (nb > 0)
            snprintf(title, sizeof title, "%s | seed %llu | %s, %d steps, CFG %g",
                     prompts ? prompts[pi] : s.prompt, (unsigned long long)seeds[g % nseed],
                     sampler_display_name(p.sampler, p.karras), p.steps, (double)p.cfg);
        else
            snprintf(title, sizeof title, "%s | %s, %d steps, CFG %g", np > 1 ? "prompts" : s.prompt,
                     sampler_display_name(p.sampler, p.karras), p.steps, (double)p.cfg);
        if (n_grids > 1) snprintf(name, sizeof name, "grid-%02d.png", g);
        else snprintf(name, sizeof name, "grid.png");
        Image grid = {0};
        rc = grid_compose(&grid, cells, rows, cols, (const char *const *)rl, (const char *const *)cl, title);
        if (rc == 0) {
            char *path = ls_path_join(o.out, name);
            const char *text[2] = {"parameters", title};
            rc = image_write_png(path, &grid, text, 1);
            if (rc == 0) printf("%s\n", path);
            free(path);
        }
        image_free(&grid);
    }
    if (rc == 0)
        fprintf(stderr, "lorastyle: sweep of %d image%s (%d×%d%s) in %.1f s → %s\n", n_grids * rows * cols,
                n_grids * rows * cols == 1 ? "" : "s", rows, cols, n_grids > 1 ? " per grid" : "",
                ls_time() - t0, o.out);
    for (int i = 0; i < rows * cols; i++) image_free(&cells[i]);
    for (int i = 0; i < rows; i++) free(rl[i]);
    for (int i = 0; i < cols; i++) free(cl[i]);
    free(cells), free(rl), free(cl);
    if (prompts) {
        for (int i = 0; i < np; i++) free(prompts[i]);
        free(prompts);
    }
    gensession_close(&s);
    return rc < 0 ? sweep_fail(o.out, created) : 0;
}

/* ---------------- merge ---------------- */

int cmd_merge(int argc, char **argv) {
    GenOptions o;
    genopts_init(&o, NULL);
    const char *model = NULL;
    int help;
    if (parse_args(&o, argc, argv, "merge", &model, &help) < 0) return arg_fail();
    if (help) {
        printf("usage: lorastyle merge MODEL [--lora FILE[:SCALE] ...] -o OUT [--dtype f32|f16]\n"
               "(without --lora: a copy of MODEL, e.g. in f16)\n");
        return 0;
    }
    if (model) o.model = model;
    if (!o.out || !*o.out) {
        ls_set_error("merge: give the output with -o (a folder for a diffusers model, a .safetensors file "
                     "for a single-file one)");
        return arg_fail();
    }
    /* no --lora: a plain copy, e.g. in another --dtype (how the shipped f16 base model is written) */
    if (ls_file_exists(o.out) || ls_is_dir(o.out)) {
        ls_set_error("%s: already exists; choose a new output name", o.out);
        return arg_fail();
    }
    o.merge = 1;
    GenSession s;
    if (gensession_open(&s, &o, NULL) < 0) return arg_fail();
    StDtype dt = o.dtype;
    if (dt == ST_DTYPE_COUNT) { /* like the input */
        StDtype in = s.m.files[0].n_tensors ? s.m.files[0].tensors[0].dtype : ST_F32;
        dt = (in == ST_F16 || in == ST_BF16) ? in : ST_F32;
    }
    double t0 = ls_time();
    int rc;
    if (s.m.single_file) { /* a temporary file renamed into place (st_writer_save) */
        rc = model_save_single_file(&s.m, o.out, dt);
    } else { /* a folder: written into OUT.tmp.PID and renamed, so a full disk leaves no partial model */
        char *tmp = ls_dir_begin(o.out);
        rc = tmp ? ls_dir_commit(tmp, o.out, model_save_folder(&s.m, tmp, dt)) : LS_ERR;
    }
    if (rc == 0) {
        printf("%s\n", o.out);
        fprintf(stderr, "lorastyle: merged %d adapter%s into %s (%s, %s) in %.1f s\n", s.n_lora,
                s.n_lora == 1 ? "" : "s", o.out, s.m.single_file ? "single file" : "diffusers folder",
                st_dtype_name(dt), ls_time() - t0);
    }
    gensession_close(&s);
    return rc < 0 ? arg_fail() : 0;
}
