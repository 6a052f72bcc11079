/* view.c — `lorastyle view`: an SDL2 window to preview a model with its adapters live.
 *
 * The UI thread (this file) owns the window and the settings; a worker thread (worker.c) owns the model
 * and renders. Adapters stay unmerged, so moving a strength slider is a scalar store and the re-render uses
 * the same seed and initial noise: only the strength changes. A newer request cancels the running render
 * at its next step, previews of the current x̂0 arrive every few steps, and the last finished image stays
 * on screen until a newer one (or a preview of it) replaces it. Layout and drawing are in panel.c, the
 * scripted mode (--script, --screenshot) in script.c.
 */
#include <SDL.h>
#include <SDL_ttf.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "common.h" // defines: ls_time, ls_set_error, ls_file_exists
#include "ops.h"    // defines: op_num_threads

static const struct {
    SamplerKind kind;
    int karras;
} SAMPLERS[] = {{SAMPLER_EULER_A, 0}, {SAMPLER_EULER, 0}, {SAMPLER_EULER, 1}, {SAMPLER_DDIM, 0},
                {SAMPLER_DPMPP_2M, 0}, {SAMPLER_DPMPP_2M, 1}};
#define N_SAMPLERS ((int)(sizeof SAMPLERS / sizeof SAMPLERS[0]))

const char *app_sampler_name(int idx) { return sampler_display_name(SAMPLERS[idx].kind, SAMPLERS[idx].karras); }

static int usage(void) {
    printf("usage: lorastyle view [--model DIR|FILE] [--lora FILE[:SCALE]]... [--prompt TEXT] [--negative TEXT]\n"
           "                      [--steps N] [--cfg X] [--seed N] [--sampler NAME] [--width W --height H]\n"
           "                      [-o SAVE.png] [--font FILE.ttf] [--script FILE] [--screenshot FILE.png]\n"
           "Keys: arrows nudge the focused slider (Shift: 5x), Tab moves the focus, Enter renders,\n"
           "Ctrl+S saves the image with its settings, Esc quits. Drop .safetensors adapters onto the window.\n"
           "--script FILE replays commands (see README), --screenshot FILE renders once, saves the window, exits.\n");
    return 0;
}

/* ---------------- status ---------------- */

static void set_status(App *a, int err, int quiet, const char *msg) {
    /* progress ("step 3/20") does not hide an error for its first 3 seconds */
    if (quiet && !err && a->status_err && ls_time() - a->status_t < 3.0) return;
    if (strcmp(a->status, msg) || a->status_err != err) { /* redraw now, or with the next progress frame */
        if (quiet) a->progress_dirty = 1;
        else a->dirty = 1;
    }
    snprintf(a->status, sizeof a->status, "%s", msg);
    a->status_err = err;
    a->status_t = ls_time();
    if (!quiet) fprintf(stderr, "lorastyle: view: %s%s\n", err ? "error: " : "", msg);
}

void app_status(App *a, int err, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    set_status(a, err, 0, buf);
}

/* ---------------- requests ---------------- */

static int blank(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return *s == 0;
}

void app_request(App *a, const char *why) {
    if (blank(a->prompt)) {
        app_status(a, 1, "empty prompt: type a prompt, then press Enter");
        return;
    }
    ViewRequest rq;
    memset(&rq, 0, sizeof rq);
    rq.prompt = a->prompt;
    rq.negative = a->negative;
    rq.n_strength = a->n_sl;
    for (int i = 0; i < a->n_sl; i++) rq.strength[i] = a->sl[i].v;
    rq.steps = a->steps;
    rq.cfg = a->cfg;
    rq.sampler = SAMPLERS[a->sampler].kind;
    rq.karras = SAMPLERS[a->sampler].karras;
    rq.seed = a->seed;
    a->latest = worker_request(a->w, &rq);
    a->t_post = ls_time();
    a->first_pixels_s = a->image_s = -1;
    a->frames = 0;
    a->loop_gap_max = 0;
    a->dirty = 1;
    a->prog_step = 0;
    a->prog_total = a->steps;
    snprintf(a->what, sizeof a->what, "%s", why);
}

void app_set_slider(App *a, int i, float v) {
    if (i < 0 || i >= a->n_sl) return;
    v = v < SLIDER_MIN ? SLIDER_MIN : v > SLIDER_MAX ? SLIDER_MAX : v;
    v = roundf(v * 100.0f) / 100.0f;
    if (v == a->sl[i].v) return;
    a->sl[i].v = v;
    char why[96];
    snprintf(why, sizeof why, "slider %d = %.2f", i, (double)v);
    app_request(a, why);
}

int app_idle(App *a) { return !worker_busy(a->w); }

int app_save(App *a) {
    if (!a->final_img.data) {
        app_status(a, 1, "nothing to save yet: no image has finished rendering");
        return LS_ERR;
    }
    char path[1024];
    if (a->o.out) {
        snprintf(path, sizeof path, "%s", a->o.out);
    } else {
        for (int k = 1; k < 100000; k++) {
            snprintf(path, sizeof path, "view-%04d.png", k);
            if (!ls_file_exists(path)) break;
        }
    }
    const char *text[2] = {"parameters", a->final_params};
    if (image_write_png(path, &a->final_img, text, 1) < 0) {
        app_status(a, 1, "save failed: %s", ls_last_error());
        return LS_ERR;
    }
    app_status(a, 0, "saved %s", path);
    return LS_OK;
}

/* ---------------- worker events ---------------- */

static void show_image(App *a, const Image *img, int preview, int step, int total) {
    if (!a->tex || a->tex_w != img->w || a->tex_h != img->h) {
        if (a->tex) SDL_DestroyTexture(a->tex);
        a->tex = SDL_CreateTexture(a->ren, SDL_PIXELFORMAT_RGB24, SDL_TEXTUREACCESS_STREAMING, img->w, img->h);
        a->have_image = 0;
        if (!a->tex) {
            app_status(a, 1, "cannot create a %dx%d texture: %s", img->w, img->h, SDL_GetError());
            return;
        }
        a->tex_w = img->w;
        a->tex_h = img->h;
    }
    if (SDL_UpdateTexture(a->tex, NULL, img->data, img->w * 3) != 0) {
        app_status(a, 1, "cannot update the image texture: %s", SDL_GetError());
        return;
    }
    a->have_image = 1;
    a->shown_preview = preview;
    a->shown_step = step;
    a->shown_total = total;
}

static void log_timing(App *a) {
    fprintf(stderr, "lorastyle: view: timing: %s: first pixels %.0f ms, image %.0f ms; UI: longest loop gap %.0f ms, "
                    "%d frames drawn\n", a->what, 1e3 * a->first_pixels_s, 1e3 * a->image_s, 1e3 * a->loop_gap_max,
            a->frames);
}

static void poll_worker(App *a) {
    WorkerEvent ev;
    while (worker_poll(a->w, &ev)) {
        int newest = ev.id == a->latest;
        switch (ev.kind) {
        case WEV_PROGRESS:
            if (newest) {
                a->prog_step = ev.step;
                a->prog_total = ev.total;
                char msg[96];
                snprintf(msg, sizeof msg, "rendering: step %d/%d", ev.step, ev.total);
                set_status(a, 0, 1, msg);
            }
            break;
        case WEV_PREVIEW:
            a->dirty = 1;
            if (newest) {
                show_image(a, &ev.img, 1, ev.step, ev.total);
                if (a->first_pixels_s < 0) a->first_pixels_s = ls_time() - a->t_post; /* drawn this pass */
            }
            break;
        case WEV_IMAGE:
            a->dirty = 1;
            image_free(&a->final_img);
            free(a->final_params);
            a->final_img = ev.img;
            a->final_params = ev.text;
            ev.img.data = NULL;
            ev.text = NULL;
            a->last_render_s = ev.render_s;
            if (newest || !a->shown_preview) show_image(a, &a->final_img, 0, ev.step, ev.total);
            if (newest) {
                a->image_s = ls_time() - a->t_post;
                if (a->first_pixels_s < 0) a->first_pixels_s = a->image_s;
                app_status(a, 0, "done: %d steps in %.2f s", ev.total, ev.render_s);
                if (a->log) log_timing(a);
            }
            break;
        case WEV_FAILED:
            if (newest) app_status(a, 1, "render failed: %s", ev.text);
            break;
        case WEV_ADAPTER:
            if (ev.step == a->n_sl && a->n_sl < LS_MAX_LORAS) {
                AdapterSlider *s = &a->sl[a->n_sl++];
                snprintf(s->name, sizeof s->name, "%s", ev.text);
                s->v = 1.0f;
                app_status(a, 0, "added adapter %s (%s)", ev.text, ev.detail);
                app_fit_window(a);
                app_request(a, "adapter added");
            }
            break;
        case WEV_ADAPTER_FAILED:
            app_status(a, 1, "adapter not loaded: %s", ev.text);
            break;
        }
        worker_event_free(&ev);
    }
}

/* ---------------- input ---------------- */

static void set_focus(App *a, int f) {
    int was_text = a->focus == FOCUS_PROMPT || a->focus == FOCUS_NEGATIVE;
    int is_text = f == FOCUS_PROMPT || f == FOCUS_NEGATIVE;
    a->focus = f;
    a->caret_t0 = ls_time();
    if (is_text && !was_text) SDL_StartTextInput();
    if (!is_text && was_text) SDL_StopTextInput();
}

static char *focused_text(App *a) {
    return a->focus == FOCUS_PROMPT ? a->prompt : a->focus == FOCUS_NEGATIVE ? a->negative : NULL;
}

static void text_append(App *a, const char *s) {
    char *t = focused_text(a);
    if (!t) return;
    size_t len = strlen(t);
    for (; *s; s++) {
        if (len + 1 >= APP_TEXT_CAP) {
            app_status(a, 1, "text too long (at most %d bytes)", APP_TEXT_CAP - 1);
            break;
        }
        t[len++] = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
    }
    t[len] = 0;
    a->caret_t0 = ls_time();
}

static void text_backspace(App *a) {
    char *t = focused_text(a);
    if (!t) return;
    size_t len = strlen(t);
    while (len > 0 && ((unsigned char)t[len - 1] & 0xC0) == 0x80) len--; /* UTF-8 continuation bytes */
    if (len > 0) len--;
    t[len] = 0;
    a->caret_t0 = ls_time();
}

static uint64_t random_seed(void) {
    uint64_t x = SDL_GetPerformanceCounter() ^ ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x % 4294967296ULL;
}

static void handle_key(App *a, const SDL_Keysym *k) {
    int ctrl = (k->mod & KMOD_CTRL) != 0, shift = (k->mod & KMOD_SHIFT) != 0;
    int sl = a->focus >= FOCUS_SLIDER ? a->focus - FOCUS_SLIDER : -1;
    switch (k->sym) {
    case SDLK_ESCAPE: a->quit = 1; return;
    case SDLK_RETURN:
    case SDLK_KP_ENTER: app_request(a, "Enter"); return;
    case SDLK_TAB: { /* prompt → negative → sliders → prompt (Shift: backwards) */
        int n = FOCUS_SLIDER + a->n_sl;
        set_focus(a, a->focus < 0 ? (shift ? n - 1 : 0) : (a->focus + (shift ? n - 1 : 1)) % n);
        return;
    }
    default: break;
    }
    if (ctrl && k->sym == SDLK_s) {
        app_save(a);
        return;
    }
    if (focused_text(a)) {
        if (k->sym == SDLK_BACKSPACE) text_backspace(a);
        else if (ctrl && k->sym == SDLK_u) focused_text(a)[0] = 0;
        else if (ctrl && k->sym == SDLK_v && SDL_HasClipboardText()) {
            char *clip = SDL_GetClipboardText();
            if (clip) text_append(a, clip);
            SDL_free(clip);
        } else if (k->sym == SDLK_DOWN) set_focus(a, a->focus == FOCUS_PROMPT ? FOCUS_NEGATIVE
                                                      : a->n_sl ? FOCUS_SLIDER : FOCUS_NEGATIVE);
        else if (k->sym == SDLK_UP) set_focus(a, FOCUS_PROMPT);
        return;
    }
    if (sl < 0 && a->n_sl && (k->sym == SDLK_LEFT || k->sym == SDLK_RIGHT)) { /* nothing focused: slider 0 */
        sl = 0;
        set_focus(a, FOCUS_SLIDER);
    }
    float step = shift ? 5 * SLIDER_STEP : SLIDER_STEP;
    if (sl >= 0 && k->sym == SDLK_LEFT) app_set_slider(a, sl, a->sl[sl].v - step);
    else if (sl >= 0 && k->sym == SDLK_RIGHT) app_set_slider(a, sl, a->sl[sl].v + step);
    else if (sl >= 0 && k->sym == SDLK_HOME) app_set_slider(a, sl, SLIDER_MIN);
    else if (sl >= 0 && k->sym == SDLK_END) app_set_slider(a, sl, SLIDER_MAX);
    else if (k->sym == SDLK_UP) set_focus(a, sl > 0 ? FOCUS_SLIDER + sl - 1 : FOCUS_NEGATIVE);
    else if (k->sym == SDLK_DOWN && a->n_sl) set_focus(a, FOCUS_SLIDER + (sl < 0 ? 0 : LS_MIN(sl + 1, a->n_sl - 1)));
}

static void click(App *a, int x, int y, int button) {
    const Layout *L = &a->L;
    if (L->too_small) return;
    if (ui_hit(L->prompt, x, y) || ui_hit(L->negative, x, y)) {
        set_focus(a, ui_hit(L->prompt, x, y) ? FOCUS_PROMPT : FOCUS_NEGATIVE);
        return;
    }
    for (int i = 0; i < a->n_sl; i++)
        if (ui_hit(L->slider[i], x, y)) {
            set_focus(a, FOCUS_SLIDER + i);
            if (button == SDL_BUTTON_RIGHT) {
                app_set_slider(a, i, 1.0f);
            } else {
                a->drag = i;
                app_set_slider(a, i, ui_slider_value(L->slider[i], SLIDER_MIN, SLIDER_MAX, x));
            }
            return;
        }
    int step_mul = (SDL_GetModState() & KMOD_SHIFT) ? 5 : 1;
    if (ui_hit(L->seed_minus, x, y)) {
        if (a->seed > 0) a->seed--;
        app_request(a, "seed -");
    } else if (ui_hit(L->seed_plus, x, y)) {
        a->seed = (a->seed + 1) % 4294967296ULL;
        app_request(a, "seed +");
    } else if (ui_hit(L->seed_random, x, y)) {
        a->seed = random_seed();
        app_request(a, "random seed");
    } else if (ui_hit(L->steps_minus, x, y) || ui_hit(L->steps_plus, x, y)) {
        int s = a->steps + (ui_hit(L->steps_plus, x, y) ? step_mul : -step_mul);
        a->steps = s < 1 ? 1 : s > 150 ? 150 : s;
        app_request(a, "steps");
    } else if (ui_hit(L->cfg_minus, x, y) || ui_hit(L->cfg_plus, x, y)) {
        float c = a->cfg + (ui_hit(L->cfg_plus, x, y) ? 0.5f : -0.5f) * step_mul;
        a->cfg = c < 0 ? 0 : c > 30 ? 30 : c;
        app_request(a, "cfg");
    } else if (ui_hit(L->sampler, x, y)) {
        a->sampler = (a->sampler + (button == SDL_BUTTON_RIGHT ? N_SAMPLERS - 1 : 1)) % N_SAMPLERS;
        app_request(a, "sampler");
    } else if (ui_hit(L->render, x, y)) {
        app_request(a, "Render button");
    } else if (ui_hit(L->save, x, y)) {
        app_save(a);
    }
}

static void handle_event(App *a, const SDL_Event *e) {
    switch (e->type) {
    case SDL_QUIT: a->quit = 1; break;
    case SDL_KEYDOWN: handle_key(a, &e->key.keysym); break;
    case SDL_TEXTINPUT: text_append(a, e->text.text); break;
    case SDL_MOUSEBUTTONDOWN:
        a->mouse_x = e->button.x;
        a->mouse_y = e->button.y;
        click(a, e->button.x, e->button.y, e->button.button);
        break;
    case SDL_MOUSEBUTTONUP: a->drag = -1; break;
    case SDL_MOUSEMOTION:
        a->mouse_x = e->motion.x;
        a->mouse_y = e->motion.y;
        if (a->drag >= 0 && a->drag < a->n_sl)
            app_set_slider(a, a->drag, ui_slider_value(a->L.slider[a->drag], SLIDER_MIN, SLIDER_MAX, e->motion.x));
        break;
    case SDL_MOUSEWHEEL:
        for (int i = 0; i < a->n_sl; i++)
            if (ui_hit(a->L.slider[i], a->mouse_x, a->mouse_y))
                app_set_slider(a, i, a->sl[i].v + SLIDER_STEP * (float)e->wheel.y);
        break;
    case SDL_DROPFILE:
        if (e->drop.file) {
            app_status(a, 0, "loading adapter %s", e->drop.file);
            worker_add_adapter(a->w, e->drop.file);
            SDL_free(e->drop.file);
        }
        break;
    default: break;
    }
}

/* ---------------- frames ---------------- */

static void take_screenshot(App *a) {
    int W = a->L.W, H = a->L.H;
    Image img = {W, H, 3, mallocCheck((size_t)W * H * 3)};
    if (SDL_RenderReadPixels(a->ren, NULL, SDL_PIXELFORMAT_RGB24, img.data, W * 3) != 0) {
        app_status(a, 1, "screenshot %s: cannot read the window's pixels: %s", a->pending_shot, SDL_GetError());
        a->script_failed = 1;
    } else {
        char *layout = panel_layout_text(a);
        const char *text[4] = {"Software", "lorastyle view", "layout", layout};
        if (image_write_png(a->pending_shot, &img, text, 2) < 0) {
            app_status(a, 1, "screenshot failed: %s", ls_last_error());
            a->script_failed = 1;
        } else {
            app_status(a, 0, "screenshot %s (%dx%d)", a->pending_shot, W, H);
        }
        free(layout);
    }
    image_free(&img);
    free(a->pending_shot);
    a->pending_shot = NULL;
}

/* Draw and present only when something changed (input, results, status, caret blink), and for progress
 * alone at most 15 times a second: a present costs several ms (about 10 under Xvfb on 2 cores), taken from
 * the render otherwise. Input is still read 60 times a second while anything moves. */
static void frame(App *a, double now) {
    int W, H;
    if (SDL_GetRendererOutputSize(a->ren, &W, &H) != 0) SDL_GetWindowSize(a->win, &W, &H);
    int was_small = a->L.too_small;
    panel_layout(a, W, H);
    if (W != a->drawn_w || H != a->drawn_h) a->dirty = 1;
    if (a->L.too_small && !was_small)
        app_status(a, 1, "window too small (%dx%d): enlarge it to at least %dx%d", W, H, a->L.min_w, a->L.min_h);
    else if (!a->L.too_small && was_small)
        app_status(a, 0, "window %dx%d", W, H);
    int caret = a->focus >= 0 && fmod(now - a->caret_t0, 1.0) < 0.6;
    if (caret != a->caret_on) a->caret_on = caret, a->dirty = 1;
    if (!a->dirty && !a->pending_shot && !(a->progress_dirty && now - a->last_draw_t >= 1.0 / 15)) return;
    if (a->tex)
        SDL_SetTextureScaleMode(a->tex, a->L.scale >= 1.0f ? SDL_ScaleModeNearest : SDL_ScaleModeLinear);
    panel_draw(a);
    if (a->pending_shot) take_screenshot(a);
    SDL_RenderPresent(a->ren);
    ui_end_frame(&a->ui);
    a->dirty = a->progress_dirty = 0;
    a->drawn_w = W;
    a->drawn_h = H;
    a->last_draw_t = ls_time();
    a->n_frames++;
    a->draw_total += a->last_draw_t - now;
    if (a->t_post > 0 && a->image_s < 0) a->frames++;
    if (!app_idle(a)) a->busy_frames++;
}

/* Pace of the loop (input handling) while the worker is busy, for the log and BENCHMARKS.md. */
static void loop_stats(App *a, double now) {
    double gap = now - a->last_loop_t;
    if (a->t_post > 0 && a->image_s < 0 && a->last_loop_t > 0) a->loop_gap_max = fmax(a->loop_gap_max, gap);
    if (!app_idle(a)) {
        if (a->last_busy_t > 0) {
            a->busy_t += now - a->last_busy_t;
            a->busy_gap_max = fmax(a->busy_gap_max, now - a->last_busy_t);
            a->busy_slow += now - a->last_busy_t > 1.0 / 30;
            a->busy_loops++;
        }
        a->last_busy_t = now;
    } else {
        a->last_busy_t = 0;
    }
    a->last_loop_t = now;
}

static void run(App *a) {
    double next = ls_time();
    int shot_taken = 0;
    a->dirty = 1;
    while (!a->quit) {
        SDL_Event e;
        while (SDL_PollEvent(&e)) {
            handle_event(a, &e);
            if (e.type != a->wake_event) a->dirty = 1;
        }
        poll_worker(a);
        if (a->script && !a->quit) {
            if (script_step(a)) {
                script_free(a->script);
                a->script = NULL;
                if (!a->screenshot_path) a->quit = 1;
            }
        } else if (a->screenshot_path && !a->quit) { /* --screenshot: after the first render (and script) */
            if (shot_taken && !a->pending_shot) a->quit = 1;
            else if (!shot_taken && app_idle(a)) {
                a->pending_shot = strdup(a->screenshot_path);
                shot_taken = 1;
            }
        }
        double now = ls_time();
        loop_stats(a, now);
        frame(a, now);
        /* 60 loops/s while anything moves; otherwise sleep until an event (the worker wakes us too) */
        int active = a->drag >= 0 || a->script || a->screenshot_path || !app_idle(a);
        now = ls_time();
        if (active) {
            next += 1.0 / 60;
            if (next < now) next = now;
            else SDL_Delay((Uint32)((next - now) * 1000));
        } else {
            SDL_WaitEventTimeout(NULL, focused_text(a) ? 300 : 1000);
            next = ls_time();
        }
    }
}

/* ---------------- setup ---------------- */

static int parse(App *a, int argc, char **argv, const char **prompt, const char **font, const char **script) {
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--screenshot") || !strcmp(s, "--script") || !strcmp(s, "--font")) {
            if (arg_need(argc, argv, i) < 0) return LS_ERR;
            if (!strcmp(s, "--screenshot")) a->screenshot_path = argv[++i];
            else if (!strcmp(s, "--script")) *script = argv[++i];
            else *font = argv[++i];
            continue;
        }
        if (s[0] != '-') {
            if (*prompt) return ls_set_error("view: more than one prompt ('%s'); quote the prompt", s);
            *prompt = s;
            continue;
        }
        int used = genopts_parse(&a->o, argc, argv, i);
        if (used < 0) return LS_ERR;
        if (used == 0) return ls_set_error("view: unknown option '%s' (see lorastyle view --help)", s);
        i += used - 1;
    }
    if (!*prompt && a->o.p.prompt && a->o.p.prompt[0]) *prompt = a->o.p.prompt;
    if (a->o.p.batch != 1) ls_warn("view renders one image at a time; --batch is ignored");
    a->o.merge = 0; /* live sliders need unmerged adapters (a strength change is a store); --lora-mode is ignored */
    return LS_OK;
}

void app_fit_window(App *a) {
    int W, H;
    SDL_GetWindowSize(a->win, &W, &H);
    Layout keep = a->L;
    panel_layout(a, W, 4000); /* the height the controls need at this width */
    int need = a->L.pref_h;
    a->L = keep;
    SDL_Rect usable;
    if (SDL_GetDisplayUsableBounds(0, &usable) == 0) need = LS_MIN(need, usable.h);
    if (H < need) SDL_SetWindowSize(a->win, W, need);
}

static int open_window(App *a, const char *font) {
    int ttf_ok = TTF_Init() == 0;
    if (!ttf_ok) ls_warn("view: TTF_Init failed (%s); using the built-in bitmap font", TTF_GetError());
    ui_init(&a->ui, NULL, ttf_ok, font, 14); /* the font first: the layout needs its line height */
    if (!a->ui.font) ls_warn("view: %s", a->ui.font_note);
    int W, H;
    panel_window_size(a, &W, &H);
    SDL_Rect usable;
    if (SDL_GetDisplayUsableBounds(0, &usable) == 0) {
        W = LS_MIN(W, usable.w);
        H = LS_MIN(H, usable.h);
    }
    char title[256];
    snprintf(title, sizeof title, "lorastyle view - %s", a->s.m.name);
    a->win = SDL_CreateWindow(title, SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, W, H, SDL_WINDOW_RESIZABLE);
    if (!a->win) return ls_set_error("view: cannot create a %dx%d window: %s", W, H, SDL_GetError());
    /* SDL's software renderer unless SDL_RENDER_DRIVER says otherwise: this UI is a few rectangles and one
     * texture, it gives identical pixels everywhere (tests), and it leaves the GPU or the CPU threads of a
     * GL emulation (llvmpipe under Xvfb) to the model. */
    SDL_SetHintWithPriority(SDL_HINT_RENDER_DRIVER, "software", SDL_HINT_DEFAULT);
    a->ren = SDL_CreateRenderer(a->win, -1, 0);
    if (!a->ren) a->ren = SDL_CreateRenderer(a->win, -1, SDL_RENDERER_SOFTWARE);
    if (!a->ren) return ls_set_error("view: cannot create a renderer: %s", SDL_GetError());
    a->ui.r = a->ren;
    SDL_RendererInfo ri;
    const char *rname = SDL_GetRendererInfo(a->ren, &ri) == 0 ? ri.name : "?";
    snprintf(a->backend, sizeof a->backend, "CPU, OpenMP %d threads | %s", op_num_threads(), rname);
    return LS_OK;
}

static void close_app(App *a, int have_session) {
    worker_stop(a->w);
    a->w = NULL;
    if (a->script) script_free(a->script);
    if (a->tex) SDL_DestroyTexture(a->tex);
    ui_free(&a->ui);
    if (TTF_WasInit()) TTF_Quit();
    if (a->ren) SDL_DestroyRenderer(a->ren);
    if (a->win) SDL_DestroyWindow(a->win);
    SDL_Quit();
    image_free(&a->final_img);
    free(a->final_params);
    free(a->pending_shot);
    if (have_session) gensession_close(&a->s);
}

int cmd_view(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (arg_is_help(argv[i])) return usage();
    static App app; /* large (text buffers); one per process */
    App *a = &app;
    memset(a, 0, sizeof *a);
    genopts_init(&a->o, NULL);
    a->focus = FOCUS_NONE;
    a->drag = -1;
    const char *prompt = NULL, *font = UI_FONT_PATH, *script = NULL;
    if (parse(a, argc, argv, &prompt, &font, &script) < 0) return arg_fail();
    if (script && script_load(&a->script, script) < 0) return arg_fail();
    a->log = script || a->screenshot_path;
    if (SDL_Init(SDL_INIT_VIDEO) != 0) {
        ls_set_error("view: cannot open a window: %s (no display? run it under X11/Wayland, or xvfb-run in CI)",
                     SDL_GetError());
        if (a->script) script_free(a->script);
        return arg_fail();
    }
    const char *driver = SDL_GetCurrentVideoDriver();
    if (!a->log && driver && (!strcmp(driver, "offscreen") || !strcmp(driver, "dummy")) && !getenv("SDL_VIDEODRIVER")) {
        ls_set_error("view: no display found (SDL fell back to its '%s' video driver, nothing would be shown): run "
                     "it on a desktop, or under xvfb-run with --script/--screenshot", driver);
        SDL_Quit();
        return arg_fail();
    }
    int rc = LS_ERR, have_session = 0;
    if (gensession_open(&a->s, &a->o, prompt) < 0) goto out;
    have_session = 1;
    GenParams base = a->o.p;
    base.prompt = a->s.prompt;
    base.batch = 1;
    if (gen_params_check(&a->s.m, &base) < 0) goto out;
    a->img_w = base.width;
    a->img_h = base.height;
    snprintf(a->prompt, sizeof a->prompt, "%s", a->s.prompt);
    snprintf(a->negative, sizeof a->negative, "%s", base.negative);
    if (strlen(a->s.prompt) >= sizeof a->prompt) ls_warn("view: the prompt was cut to %d bytes", APP_TEXT_CAP - 1);
    a->seed = a->o.seed >= 0 ? (uint64_t)a->o.seed : random_seed();
    a->steps = base.steps;
    a->cfg = base.cfg;
    for (int k = 0; k < N_SAMPLERS; k++)
        if (SAMPLERS[k].kind == base.sampler && SAMPLERS[k].karras == base.karras) a->sampler = k;
    for (int i = 0; i < a->s.n_lora; i++) {
        snprintf(a->sl[i].name, sizeof a->sl[i].name, "%s", a->s.lora[i].name);
        float v = a->s.lora[i].strength[LORA_UNET];
        a->sl[i].v = v < SLIDER_MIN ? SLIDER_MIN : v > SLIDER_MAX ? SLIDER_MAX : v;
    }
    a->n_sl = a->s.n_lora;
    if (open_window(a, font) < 0) goto out;
    a->wake_event = SDL_RegisterEvents(1);
    a->w = worker_start(&a->s, &base, a->o.lenient, a->wake_event == (uint32_t)-1 ? 0 : a->wake_event);
    if (!a->w) goto out;
    set_focus(a, a->n_sl && !blank(a->prompt) ? FOCUS_SLIDER : FOCUS_PROMPT);
    if (blank(a->prompt)) app_status(a, 0, "type a prompt, then press Enter");
    else app_request(a, "start");
    fprintf(stderr, "lorastyle: view: %s, %dx%d, %s, video %s\n", a->s.m.name, a->img_w, a->img_h, a->backend,
            driver ? driver : "?");
    run(a);
    if (a->log && a->n_frames)
        fprintf(stderr, "lorastyle: view: frames: %d drawn, %.1f ms each (draw + present); while rendering: UI loop "
                        "%.1f/s, %d of %d passes over 33 ms, longest %.0f ms; %.1f frames drawn/s\n", a->n_frames,
                1e3 * a->draw_total / a->n_frames, a->busy_t > 0 ? a->busy_loops / a->busy_t : 0.0, a->busy_slow,
                a->busy_loops, 1e3 * a->busy_gap_max, a->busy_t > 0 ? a->busy_frames / a->busy_t : 0.0);
    rc = a->script_failed ? LS_ERR : LS_OK;
    if (rc < 0) ls_set_error("view: the script failed (see the messages above)");
out:
    if (rc < 0) arg_fail();
    close_app(a, have_session);
    return rc < 0 ? 1 : 0;
}
