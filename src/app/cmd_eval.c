/* cmd_eval.c — `lorastyle eval content|style`: what a model (and its adapters) draws, scored against the scene
 * grammar's ground truth with datasets/quality.h — no pretrained network needed.
 *   content  single-object prompts (the held-out colour×shape×position combinations pre-training never saw,
 *            or seen ones): how often the named colour, shape and position come out.
 *   style    an adapter's style curve: the style distance of generated images to a style folder at each
 *            strength, the floor (fresh images of the same style drawn by the scene renderer: the best an
 *            adapter can do) and the content adherence of the same images (forgetting). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"        // defines: GenOptions, GenSession, cli_*
#include "common.h"     // defines: ls_set_error, ls_path_join, ls_time
#include "dataset.h"    // defines: Dataset, dataset_scan
#include "grid.h"       // defines: grid_compose
#include "image.h"      // defines: Image, image_from_chw
#include "scenes.h"     // defines: Scene, scene_sample, scene_caption, scene_render
#include "style_eval.h" // defines: style_curve, StylePoint

#define EVAL_MAX 256

static int usage(FILE *f) {
    fprintf(f,
            "usage: lorastyle eval content [--model M] [--lora FILE[:S]]... [--set heldout|single] [-n 32] [--seed 1]\n"
            "                              [-o grid.png]\n"
            "       lorastyle eval style DIR --lora FILE [--model M] [--style NAME] [--scales 0,0.25,0.5,0.75,1]\n"
            "                              [-n 16] [--seed 1] [-o OUTDIR]\n"
            "content: n single-object prompts of the scene grammar (held-out combinations by default), one image\n"
            "each; prints how often the named colour, shape and position come out, and the ceiling the VAE sets\n"
            "(the same scenes rendered, encoded and decoded, scored alike).\n"
            "style: the adapter's style curve against the images in DIR (a training folder): style distance per\n"
            "strength, the floor (fresh images of DIR's style, --style, default DIR's name), the share of the\n"
            "base-to-floor gap closed, and content adherence at each strength (forgetting). OUTDIR gets\n"
            "style_curve.csv and grid.png (rows: strengths).\n");
    return f == stderr ? 2 : 0;
}

static double pct(int a, int b) { return b > 0 ? 100.0 * a / b : 0.0; }
/* The share of the base-to-floor style distance gap that distance d closes (NaN without a gap). */
static double gap_closed(double base, double floor_d, double d) {
    return isfinite(base) && base > floor_d ? 100.0 * (base - d) / (base - floor_d) : NAN;
}

/* n single-object captions from `set` (seed): the prompts of both modes. */
static char **make_prompts(SceneSet set, uint64_t seed, int n) {
    char **p = callocCheck((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) {
        Scene s;
        char cap[256];
        scene_sample(&s, set, seed, (uint64_t)i);
        scene_caption(&s, cap, sizeof cap);
        p[i] = strdupCheck(cap);
    }
    return p;
}

/* Scene i of (set, seed) drawn by the renderer in style (render seed rseed), then encoded and decoded by the
 * VAE (latent means): what the VAE can give back of it. */
static Image vae_roundtrip(const Vae *v, SceneSet set, uint64_t seed, uint64_t rseed, int style, int i, int size,
                           Scene *sc) {
    int f = vae_scale_factor(&v->cfg), h = size / f, L = v->cfg.latent_channels, hh, ww;
    float *chw = mallocCheck((size_t)3 * size * size * sizeof(float)), *rec = mallocCheck((size_t)3 * size * size * sizeof(float));
    float *mom = mallocCheck((size_t)2 * L * h * h * sizeof(float));
    scene_sample(sc, set, seed, (uint64_t)i);
    scene_render_chw(sc, style, rseed, (uint64_t)i, chw, size);
    vae_encode(v, mom, chw, 1, size, size, &hh, &ww);
    vae_decode(v, rec, mom, 1, hh, ww);
    Image img;
    image_from_chw(&img, rec, size, size);
    free(chw), free(rec), free(mom);
    return img;
}

/* The ceiling the model's VAE puts on content adherence: the scenes of make_prompts(set, seed, n) drawn
 * by the renderer, encoded and decoded by the VAE, scored like generated images. */
static void vae_ceiling(const Vae *v, SceneSet set, uint64_t seed, int n, int size, int ok[3], int *scored) {
    ok[0] = ok[1] = ok[2] = *scored = 0;
    for (int i = 0; i < n; i++) {
        Scene sc;
        char cap[256];
        Image img = vae_roundtrip(v, set, seed, seed + 4000, SCENE_STYLE_PLAIN, i, size, &sc);
        scene_caption(&sc, cap, sizeof cap);
        QualityResult r;
        if (quality_score_caption(img.data, size, cap, 0, &r) == LS_OK)
            ok[0] += r.colour_ok, ok[1] += r.shape_ok, ok[2] += r.pos_ok, (*scored)++;
        else
            ls_clear_error(); /* as style_curve: an unscored scene is not an error */
        image_free(&img);
    }
}

static void free_prompts(char **p, int n) {
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
}

static int write_grid(const char *path, Image *cells, int rows, int cols, char **rl, char **cl, const char *title) {
    Image g = {0};
    int rc = grid_compose(&g, cells, rows, cols, (const char *const *)rl, (const char *const *)cl, title);
    if (rc == 0) rc = image_write_png(path, &g, NULL, 0);
    image_free(&g);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    if (argc < 1 || arg_is_help(argv[0])) return usage(argc < 1 ? stderr : stdout);
    int style_mode = !strcmp(argv[0], "style");
    if (!style_mode && strcmp(argv[0], "content")) {
        ls_set_error("eval: unknown mode '%s' (content or style)", argv[0]);
        return arg_fail();
    }
    GenOptions o;
    genopts_init(&o, NULL);
    const char *dir = NULL, *style_name = NULL, *set_name = "heldout", *scales_s = "0,0.25,0.5,0.75,1";
    long n = style_mode ? 16 : 32, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is_help(a)) return usage(stdout);
        if (a[0] != '-') {
            if (!style_mode || dir) {
                ls_set_error("eval: unexpected argument '%s'", a);
                return arg_fail();
            }
            dir = a;
            continue;
        }
        if (!strcmp(a, "-n") || !strcmp(a, "--seed") || !strcmp(a, "--style") || !strcmp(a, "--set") ||
            !strcmp(a, "--scales")) {
            if (arg_need(argc, argv, i) < 0) return arg_fail();
            const char *v = argv[++i];
            int rc = 0;
            if (!strcmp(a, "-n")) rc = arg_int(a, v, 2, EVAL_MAX, &n);
            else if (!strcmp(a, "--seed")) rc = arg_int(a, v, 0, 0x7fffffffL, &seed);
            else if (!strcmp(a, "--style")) style_name = v;
            else if (!strcmp(a, "--set")) set_name = v;
            else scales_s = v;
            if (rc < 0) return arg_fail();
            continue;
        }
        int used = genopts_parse(&o, argc, argv, i);
        if (used < 0) return arg_fail();
        if (used == 0) {
            ls_set_error("eval: unknown option '%s' (lorastyle eval --help)", a);
            return arg_fail();
        }
        i += used - 1;
    }
    SceneSet set = !strcmp(set_name, "heldout") ? SCENE_HELDOUT : !strcmp(set_name, "single") ? SCENE_SINGLE : (SceneSet)-1;
    if ((int)set < 0) {
        ls_set_error("eval: --set '%s': heldout or single", set_name);
        return arg_fail();
    }
    float scales[16];
    int ns = arg_list("--scales", scales_s, scales, 16);
    if (ns < 0) return arg_fail();
    int style = -1;
    Dataset d = {0};
    if (style_mode) {
        if (!dir) {
            ls_set_error("eval style: give the style folder (e.g. datasets/styles/ink)");
            return arg_fail();
        }
        if (o.n_lora > 1) {
            ls_set_error("eval style: give one adapter with --lora FILE (or none: the model itself, e.g. a fully "
                         "fine-tuned one, at one point)");
            return arg_fail();
        }
        if (!style_name) { /* the folder's name */
            const char *b = strrchr(dir, '/');
            while (b && b[1] == 0 && b > dir) { /* trailing slash */
                const char *q = b - 1;
                while (q > dir && *q != '/') q--;
                b = q;
            }
            style_name = b ? b + (*b == '/') : dir;
        }
        char sn[64];
        snprintf(sn, sizeof sn, "%s", style_name);
        sn[strcspn(sn, "/")] = 0;
        if ((style = scene_style_from_name(sn)) < 0) {
            ls_set_error("eval style: '%s' is not a style of the scene renderer (give --style ink|neon|mosaic|"
                         "watercolour|plain for the floor)", sn);
            return arg_fail();
        }
    }
    o.merge = 0; /* strengths change between rows: live adapters */
    GenSession s;
    if (gensession_open(&s, &o, "") < 0) return arg_fail();
    int size = s.m.unet.cfg.sample_size * vae_scale_factor(&s.m.vae.cfg), rc = LS_OK;
    char **prompts = make_prompts(style_mode ? SCENE_SINGLE : set, (uint64_t)seed + 1000, (int)n);
    double t0 = ls_time();
    if (!style_mode) {
        StylePoint pt;
        QualityStyleSig *dummy = callocCheck(1, sizeof *dummy);
        Image *cells = callocCheck((size_t)n, sizeof *cells);
        float one = 1.0f;
        rc = style_curve(&s.m, NULL, &o.p, dummy, (const char *const *)prompts, (int)n, (uint64_t)seed, size, &one, 1, &pt, cells, NULL);
        if (rc == LS_OK) {
            printf("model %s%s, %ld %s single-object prompts, %dx%d, seeds %ld..%ld\n", o.model,
                   s.n_lora ? " + adapters" : "", n, set == SCENE_HELDOUT ? "held-out" : "seen", size, size, seed,
                   seed + n - 1);
            printf("colour %.1f%%  shape %.1f%%  position %.1f%%  background %.1f%%  (%d scored)\n",
                   pct(pt.colour_ok, pt.scored), pct(pt.shape_ok, pt.scored), pct(pt.pos_ok, pt.scored),
                   pct(pt.bg_ok, pt.scored), pt.scored);
            int ok[3], sc;
            vae_ceiling(&s.m.vae, set, (uint64_t)seed + 1000, (int)n, size, ok, &sc);
            printf("VAE ceiling: colour %.1f%%  shape %.1f%%  position %.1f%%  (the same scenes drawn by the "
                   "renderer through the model's VAE: the most its U-Net can reach)\n",
                   pct(ok[0], sc), pct(ok[1], sc), pct(ok[2], sc));
            if (o.out) {
                /* (at most) 8 prompts per grid row; a single row gets the prompts as column labels */
                int cols = (int)n < 8 ? (int)n : 8, rows = ((int)n + cols - 1) / cols;
                Image *g = callocCheck((size_t)rows * cols, sizeof *g);
                for (int i = 0; i < rows * cols; i++) g[i] = i < n ? cells[i] : cells[0];
                char **cl = callocCheck((size_t)cols, sizeof *cl);
                for (int c = 0; c < cols; c++) cl[c] = prompts[c];
                rc = write_grid(o.out, g, rows, cols, NULL, rows == 1 ? cl : NULL, "eval content");
                free(cl);
                free(g);
            }
        }
        for (int i = 0; i < n; i++) image_free(&cells[i]);
        free(cells), free(dummy);
    } else {
        DatasetOptions dopt;
        dataset_options_default(&dopt);
        dopt.resolution = size;
        dopt.quiet = 1;
        QualityStyleSig *ref = mallocCheck(sizeof *ref), *sig = mallocCheck(sizeof *sig); /* the floor's, then the VAE's */
        int rs = 0;
        rc = dataset_scan(&d, dir, &dopt);
        if (rc == LS_OK) rc = style_signature_of_dataset(&d, EVAL_MAX, ref, &rs);
        /* the floor: fresh images of the style for the same prompts (never seen by the adapter) */
        Image *fl = callocCheck((size_t)n, sizeof *fl);
        int fl_ok[3] = {0, 0, 0}, fl_scored = 0;
        for (int i = 0; rc == LS_OK && i < n; i++) {
            Scene sc;
            scene_sample(&sc, SCENE_SINGLE, (uint64_t)seed + 1000, (uint64_t)i);
            fl[i] = (Image){size, size, 3, mallocCheck((size_t)size * size * 3)};
            scene_render(&sc, style, (uint64_t)seed + 5000, (uint64_t)i, fl[i].data, size);
            QualityResult r; /* the style's own adherence: how much colour, shape and position survive it */
            if (quality_score(fl[i].data, size, &sc, 0, &r) == LS_OK)
                fl_ok[0] += r.colour_ok, fl_ok[1] += r.shape_ok, fl_ok[2] += r.pos_ok, fl_scored++;
            else
                ls_clear_error();
        }
        float floor_d = 0, vae_d = NAN;
        if (rc == LS_OK && (rc = style_signature_of(fl, (int)n, size, sig)) == LS_OK)
            floor_d = quality_style_distance(sig, ref).total;
        /* the VAE's share: the same fresh images encoded and decoded. Not a hard ceiling (an adapter may find
         * latents the encoder does not produce: on mosaic, whose tiles the VAE blurs, adapters close more of
         * the gap than the round trip), but a low share says the VAE, not the adapter, limits the style. */
        if (rc == LS_OK) {
            Image *vr = callocCheck((size_t)n, sizeof *vr);
            for (int i = 0; i < n; i++) {
                Scene sc;
                vr[i] = vae_roundtrip(&s.m.vae, SCENE_SINGLE, (uint64_t)seed + 1000, (uint64_t)seed + 5000, style, i, size, &sc);
            }
            if ((rc = style_signature_of(vr, (int)n, size, sig)) == LS_OK)
                vae_d = quality_style_distance(sig, ref).total;
            for (int i = 0; i < n; i++) image_free(&vr[i]);
            free(vr);
        }
        StylePoint pts[16];
        Image *cells = callocCheck((size_t)ns * n, sizeof *cells);
        if (rc == LS_OK)
            rc = style_curve(&s.m, s.n_lora ? &s.lora[0] : NULL, &o.p, ref, (const char *const *)prompts, (int)n, (uint64_t)seed, size, scales,
                             ns, pts, cells, NULL);
        if (!s.n_lora) ns = 1;
        if (rc == LS_OK) {
            int i0 = -1;
            for (int k = 0; k < ns; k++)
                if (scales[k] == 0.0f) i0 = k;
            float base = i0 >= 0 ? pts[i0].dist : NAN;
            printf("style %s (%s, %d images), adapter %s, %ld single-object prompts, %dx%d\n", scene_style_names[style],
                   dir, d.n_items, s.n_lora ? s.lora[0].name : "(none: the model itself)", n, size, size);
            printf("strength  distance  gap closed  colour  shape  position\n");
            char *csv = NULL;
            size_t cl = 0;
            FILE *cf = open_memstream(&csv, &cl);
            fprintf(cf, "strength,distance,gap_closed,colour,shape,position\n");
            for (int k = 0; k < ns; k++) {
                double gap = gap_closed(base, floor_d, pts[k].dist);
                printf("%8g  %8.4f  %9.1f%%  %5.1f%%  %4.1f%%  %7.1f%%\n", (double)pts[k].scale, (double)pts[k].dist, gap,
                       pct(pts[k].colour_ok, pts[k].scored), pct(pts[k].shape_ok, pts[k].scored),
                       pct(pts[k].pos_ok, pts[k].scored));
                fprintf(cf, "%g,%.5f,%.2f,%.2f,%.2f,%.2f\n", (double)pts[k].scale, (double)pts[k].dist, gap,
                        pct(pts[k].colour_ok, pts[k].scored), pct(pts[k].shape_ok, pts[k].scored),
                        pct(pts[k].pos_ok, pts[k].scored));
            }
            printf("   floor  %8.4f  %10s  %5.1f%%  %4.1f%%  %7.1f%%  (fresh %s images drawn by the scene renderer)\n",
                   (double)floor_d, "", pct(fl_ok[0], fl_scored), pct(fl_ok[1], fl_scored), pct(fl_ok[2], fl_scored),
                   scene_style_names[style]);
            double vgap = gap_closed(base, floor_d, vae_d);
            printf("     VAE  %8.4f  %9.1f%%  (the same images encoded and decoded by the model's VAE: how much "
                   "of the style its decoder draws back from the encoder's latents)\n", (double)vae_d, vgap);
            fprintf(cf, "floor,%.5f,,%.2f,%.2f,%.2f\n", (double)floor_d, pct(fl_ok[0], fl_scored), pct(fl_ok[1], fl_scored),
                    pct(fl_ok[2], fl_scored));
            fprintf(cf, "vae,%.5f,%.2f,,,\n", (double)vae_d, vgap);
            fclose(cf);
            if (o.out) {
                rc = ls_mkdir_p(o.out);
                char *p = ls_path_join(o.out, "style_curve.csv");
                if (rc == 0) rc = ls_write_file_atomic(p, csv, cl);
                free(p);
                int cols = (int)n < 8 ? (int)n : 8;
                Image *g = callocCheck((size_t)ns * cols, sizeof *g);
                char **rl = callocCheck((size_t)ns, sizeof *rl);
                for (int k = 0; k < ns; k++) {
                    char b[32];
                    snprintf(b, sizeof b, "%g", (double)scales[k]);
                    rl[k] = strdupCheck(b);
                    for (int c = 0; c < cols; c++) g[k * cols + c] = cells[k * n + c];
                }
                p = ls_path_join(o.out, "grid.png");
                if (rc == 0) rc = write_grid(p, g, ns, cols, rl, NULL, "strength");
                free(p);
                for (int k = 0; k < ns; k++) free(rl[k]);
                free(rl), free(g);
            }
            free(csv);
        }
        for (int i = 0; i < ns * n; i++) image_free(&cells[i]);
        for (int i = 0; i < n; i++) image_free(&fl[i]);
        free(cells), free(fl), free(ref), free(sig);
        dataset_free(&d);
    }
    if (rc == LS_OK) fprintf(stderr, "lorastyle: eval done in %.1f s\n", ls_time() - t0);
    free_prompts(prompts, (int)n);
    gensession_close(&s);
    return rc == LS_OK ? 0 : arg_fail();
}
