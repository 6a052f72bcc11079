/* panel.c — the viewer's layout and frame drawing (see app.h).
 *
 *   +--------------------------------+  Prompt            (text field)
 *   |                                |  Negative prompt   (text field)
 *   |   image, scaled by an integer  |  Adapters: name, value, slider (-1..2) per adapter
 *   |   factor (nearest neighbour)   |  Seed  [-] [+] [Random]
 *   |                                |  Steps [-] [+]   CFG [-] [+]   Sampler [name]
 *   +--------------------------------+  [Render (Enter)] [Save PNG (Ctrl+S)]
 *   caption                progress
 *   status line: messages on the left, backend and render time on the right
 *
 * All UI text is ASCII so the bitmap fallback font draws it too.
 */
#include <math.h>
#include <string.h>

#include "app.h"
#include "common.h" // defines: LS_MIN, LS_MAX, mallocCheck

#define M 12        /* outer margin */
#define RP 400      /* width of the controls column */
#define SB 28       /* status bar height */
#define CAP_H 26    /* caption row under the image */
#define ROW_H 30    /* button rows */
#define SLIDER_H 22 /* slider rows */
#define BTN_W 34    /* - and + buttons */

/* Key hints under the buttons; each short enough for the bitmap fallback font (12 px per character). */
static const char *const HINTS[] = {"arrows: nudge slider (Shift: x5)", "right-click a slider: back to 1",
                                    "Tab: next field   Esc: quit", "drop .safetensors: add adapter"};
#define N_HINTS 4

static SDL_Rect rect(int x, int y, int w, int h) {
    SDL_Rect r = {x, y, w, h};
    return r;
}

/* A row with a label on the left and [-][+] buttons on the right (plus an optional wider button). */
static void row_with_buttons(SDL_Rect *row, SDL_Rect *minus, SDL_Rect *plus, int rx, int y, int extra_w) {
    *row = rect(rx, y, RP, ROW_H);
    int right = rx + RP - (extra_w ? extra_w + 6 : 0);
    *plus = rect(right - BTN_W, y, BTN_W, ROW_H);
    *minus = rect(plus->x - 4 - BTN_W, y, BTN_W, ROW_H);
}

void panel_layout(App *a, int W, int H) {
    Layout *L = &a->L;
    memset(L, 0, sizeof *L);
    L->W = W;
    L->H = H;
    int lh = a->ui.line_h, fh = lh + 12, rx = W - M - RP, y = M;
    L->prompt_label = rect(rx, y, RP, lh);
    y += lh + 4;
    L->prompt = rect(rx, y, RP, fh);
    y += fh + 10;
    L->negative_label = rect(rx, y, RP, lh);
    y += lh + 4;
    L->negative = rect(rx, y, RP, fh);
    y += fh + 12;
    L->adapters_label = rect(rx, y, RP, lh);
    y += lh + 6;
    for (int i = 0; i < a->n_sl; i++) {
        L->slider_label[i] = rect(rx, y, RP, lh);
        y += lh + 2;
        L->slider[i] = rect(rx, y, RP, SLIDER_H);
        y += SLIDER_H + 8;
    }
    if (a->n_sl == 0) y += lh + 8; /* the "drop adapters here" hint */
    y += 4;
    row_with_buttons(&L->seed_row, &L->seed_minus, &L->seed_plus, rx, y, 84);
    L->seed_random = rect(rx + RP - 84, y, 84, ROW_H);
    y += ROW_H + 8;
    row_with_buttons(&L->steps_row, &L->steps_minus, &L->steps_plus, rx, y, 0);
    y += ROW_H + 8;
    row_with_buttons(&L->cfg_row, &L->cfg_minus, &L->cfg_plus, rx, y, 0);
    y += ROW_H + 8;
    L->sampler_row = rect(rx, y, RP, ROW_H);
    L->sampler = rect(rx + RP - 190, y, 190, ROW_H);
    y += ROW_H + 14;
    int bw = (RP - 10) / 2;
    L->render = rect(rx, y, bw, 34);
    L->save = rect(rx + bw + 10, y, RP - bw - 10, 34);
    y += 34;
    L->status = rect(0, H - SB, W, SB);
    L->min_w = RP + 3 * M + 96;
    L->min_h = LS_MAX(y + M, M + 96 + CAP_H + M) + SB;
    int hints_h = N_HINTS * (lh + 2);
    L->pref_h = LS_MAX(L->min_h, y + 10 + hints_h + M + SB);
    L->keys = rect(rx, y + 10, RP, y + 10 + hints_h + M <= H - SB ? hints_h : 0); /* only when they fit */
    L->too_small = W < L->min_w || H < L->min_h;

    int AW = LS_MAX(W - RP - 3 * M, 1), AH = LS_MAX(H - SB - 2 * M - CAP_H, 1);
    L->image_area = rect(M, M, AW, AH);
    L->caption = rect(M, M + AH + 2, AW, CAP_H - 4);
    int pw = LS_MIN(160, AW / 3);
    L->progress = rect(M + AW - pw, L->caption.y + L->caption.h / 2 - 3, pw, 6);
    int iw = a->tex ? a->tex_w : a->img_w, ih = a->tex ? a->tex_h : a->img_h;
    if (iw <= 0 || ih <= 0) iw = ih = 1;
    if (iw <= AW && ih <= AH) { /* crisp: the largest integer factor that fits */
        int k = LS_MIN(AW / iw, AH / ih);
        L->scale = (float)k;
        L->image = rect(M + (AW - iw * k) / 2, M + (AH - ih * k) / 2, iw * k, ih * k);
    } else {
        float s = fminf((float)AW / iw, (float)AH / ih);
        int w = LS_MAX(1, (int)(iw * s)), h = LS_MAX(1, (int)(ih * s));
        L->scale = s;
        L->image = rect(M + (AW - w) / 2, M + (AH - h) / 2, w, h);
    }
}

void panel_window_size(App *a, int *W, int *H) {
    int big = LS_MAX(a->img_w, a->img_h);
    float k = big <= 512 ? (float)(512 / big) : big <= 768 ? 1.0f : 768.0f / big;
    int aw = (int)(a->img_w * k), ah = (int)(a->img_h * k);
    Layout keep = a->L;
    panel_layout(a, 4000, 4000);
    *W = LS_MAX(aw + RP + 3 * M, a->L.min_w);
    *H = LS_MAX(ah + 2 * M + CAP_H + SB, a->L.pref_h);
    a->L = keep;
}

static int hot(const App *a, SDL_Rect r) { return ui_hit(r, a->mouse_x, a->mouse_y); }

/* "Label   value" on the left part of a row. */
static void row_label(App *a, SDL_Rect row, const char *label, const char *value) {
    SDL_Rect box = rect(row.x, row.y, 90, row.h);
    ui_text_in(&a->ui, box, label, UI_DIM, 0);
    if (value) {
        SDL_Rect vb = rect(row.x + 90, row.y, 150, row.h);
        ui_text_in(&a->ui, vb, value, UI_TEXT, 0);
    }
}

static void draw_controls(App *a) {
    Layout *L = &a->L;
    Ui *ui = &a->ui;
    int caret = a->caret_on;
    ui_text_in(ui, L->prompt_label, "Prompt", UI_DIM, 0);
    ui_textfield(ui, L->prompt, a->prompt, "type a prompt, then Enter", a->focus == FOCUS_PROMPT, caret);
    ui_text_in(ui, L->negative_label, "Negative prompt", UI_DIM, 0);
    ui_textfield(ui, L->negative, a->negative, "(optional)", a->focus == FOCUS_NEGATIVE, caret);
    char buf[160];
    ui_text_in(ui, L->adapters_label, a->n_sl ? "Adapters: strength -1 .. 2" : "Adapters", UI_DIM, 0);
    if (a->n_sl == 0) {
        SDL_Rect hint = rect(L->adapters_label.x, L->adapters_label.y + L->adapters_label.h + 6, RP, a->ui.line_h);
        ui_text_in(ui, hint, "drop .safetensors files here", UI_DIM, 0);
    }
    for (int i = 0; i < a->n_sl; i++) {
        SDL_Rect lb = L->slider_label[i];
        snprintf(buf, sizeof buf, "%.2f", (double)a->sl[i].v);
        int vw = ui_text_width(ui, buf);
        ui_text(ui, lb.x + lb.w - vw, lb.y, buf, UI_TEXT);
        SDL_Rect nb = rect(lb.x, lb.y, lb.w - vw - 12, lb.h);
        ui_text_in(ui, nb, a->sl[i].name, a->focus == FOCUS_SLIDER + i ? UI_ACCENT : UI_TEXT, 0);
        ui_slider(ui, L->slider[i], SLIDER_MIN, SLIDER_MAX, a->sl[i].v, a->focus == FOCUS_SLIDER + i);
    }
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)a->seed);
    row_label(a, L->seed_row, "Seed", buf);
    ui_button(ui, L->seed_minus, "-", hot(a, L->seed_minus));
    ui_button(ui, L->seed_plus, "+", hot(a, L->seed_plus));
    ui_button(ui, L->seed_random, "Random", hot(a, L->seed_random));
    snprintf(buf, sizeof buf, "%d", a->steps);
    row_label(a, L->steps_row, "Steps", buf);
    ui_button(ui, L->steps_minus, "-", hot(a, L->steps_minus));
    ui_button(ui, L->steps_plus, "+", hot(a, L->steps_plus));
    snprintf(buf, sizeof buf, "%g", (double)a->cfg);
    row_label(a, L->cfg_row, "CFG", buf);
    ui_button(ui, L->cfg_minus, "-", hot(a, L->cfg_minus));
    ui_button(ui, L->cfg_plus, "+", hot(a, L->cfg_plus));
    row_label(a, L->sampler_row, "Sampler", NULL);
    ui_button(ui, L->sampler, app_sampler_name(a->sampler), hot(a, L->sampler));
    ui_button(ui, L->render, "Render (Enter)", hot(a, L->render));
    ui_button(ui, L->save, "Save (Ctrl+S)", hot(a, L->save));
    for (int i = 0; i < N_HINTS && L->keys.h > 0; i++) {
        SDL_Rect line = rect(L->keys.x, L->keys.y + i * (ui->line_h + 2), L->keys.w, ui->line_h);
        ui_text_in(ui, line, HINTS[i], UI_DIM, 0);
    }
}

static void draw_image(App *a) {
    Layout *L = &a->L;
    Ui *ui = &a->ui;
    ui_fill(ui, L->image_area, UI_PANEL);
    if (a->have_image && a->tex) {
        SDL_RenderCopy(a->ren, a->tex, NULL, &L->image);
    } else {
        const char *msg = a->prog_total ? "rendering..." : "no image yet";
        int w = ui_text_width(ui, msg);
        ui_text(ui, L->image_area.x + (L->image_area.w - w) / 2, L->image_area.y + L->image_area.h / 2 - ui->line_h / 2,
                msg, UI_DIM);
    }
    char cap[160];
    if (a->have_image && a->shown_preview)
        snprintf(cap, sizeof cap, "preview after step %d/%d", a->shown_step, a->shown_total);
    else if (a->have_image)
        snprintf(cap, sizeof cap, "%dx%d, shown x%g", a->tex_w, a->tex_h, (double)L->scale);
    else cap[0] = 0;
    SDL_Rect cb = L->caption;
    cb.w = L->progress.x - cb.x - 8;
    ui_text_in(ui, cb, cap, UI_DIM, 0);
    if (a->prog_total > 0 && !app_idle(a)) {
        ui_fill(ui, L->progress, UI_TRACK);
        SDL_Rect done = L->progress;
        done.w = L->progress.w * a->prog_step / a->prog_total;
        ui_fill(ui, done, UI_ACCENT);
    }
}

static void draw_status(App *a) {
    Layout *L = &a->L;
    Ui *ui = &a->ui;
    ui_fill(ui, L->status, UI_STATUS_BG);
    char right[256];
    if (a->last_render_s > 0)
        snprintf(right, sizeof right, "%s | last render %.2f s", a->backend, a->last_render_s);
    else snprintf(right, sizeof right, "%s", a->backend);
    int rw = ui_text_width(ui, right);
    int left_w = L->W - 24 - (rw + 16 < L->W / 2 ? rw + 16 : 0);
    if (rw + 16 < L->W / 2) ui_text_in(ui, rect(L->W - 8 - rw, L->status.y, rw, L->status.h), right, UI_DIM, 0);
    ui_text_in(ui, rect(8, L->status.y, left_w, L->status.h), a->status, a->status_err ? UI_ERROR : UI_TEXT, 0);
}

void panel_draw(App *a) {
    Layout *L = &a->L;
    SDL_SetRenderDrawColor(a->ren, UI_BG.r, UI_BG.g, UI_BG.b, 255);
    SDL_RenderClear(a->ren);
    if (!L->too_small) {
        draw_image(a);
        draw_controls(a);
    } else { /* the status line may be cut: say it in short lines too */
        char need[96];
        snprintf(need, sizeof need, "%dx%d, needs %dx%d", L->W, L->H, L->min_w, L->min_h);
        ui_text(&a->ui, 8, 6, "window too small:", UI_ERROR);
        ui_text(&a->ui, 8, 8 + a->ui.line_h, need, UI_ERROR);
    }
    draw_status(a);
}

/* ---------------- for scripts and tests ---------------- */

static void put(char **s, size_t *cap, size_t *len, const char *key, int i, SDL_Rect r) {
    if (*len + 128 > *cap) {
        *cap = 2 * *cap + 256;
        *s = realloc(*s, *cap);
        LS_ASSERT(*s);
    }
    if (i >= 0) *len += (size_t)snprintf(*s + *len, *cap - *len, "%s %d %d %d %d %d\n", key, i, r.x, r.y, r.w, r.h);
    else *len += (size_t)snprintf(*s + *len, *cap - *len, "%s %d %d %d %d\n", key, r.x, r.y, r.w, r.h);
}

char *panel_layout_text(const App *a) {
    const Layout *L = &a->L;
    size_t cap = 4096, len = 0;
    char *s = mallocCheck(cap);
    len += (size_t)snprintf(s, cap, "window %d %d\ntoo-small %d\nscale %g\nimage-size %d %d\n", L->W, L->H,
                            L->too_small, (double)L->scale, a->have_image ? a->tex_w : 0, a->have_image ? a->tex_h : 0);
    put(&s, &cap, &len, "image", -1, L->image);
    put(&s, &cap, &len, "status", -1, L->status);
    for (int i = 0; i < a->n_sl; i++) {
        put(&s, &cap, &len, "slider", i, L->slider[i]);
        put(&s, &cap, &len, "slider-bar", i, ui_slider_bar(L->slider[i]));
        SDL_Rect knob = {ui_slider_x(L->slider[i], SLIDER_MIN, SLIDER_MAX, a->sl[i].v), L->slider[i].y, 1, 1};
        put(&s, &cap, &len, "slider-knob", i, knob);
        if (len + 64 > cap) {
            cap *= 2;
            s = realloc(s, cap);
            LS_ASSERT(s);
        }
        len += (size_t)snprintf(s + len, cap - len, "slider-value %d %.2f\n", i, (double)a->sl[i].v);
    }
    return s;
}

int panel_named_rect(const App *a, const char *name, SDL_Rect *r) {
    const Layout *L = &a->L;
    static const char *const names[] = {"prompt", "negative", "seed-", "seed+", "random", "steps-", "steps+",
                                        "cfg-", "cfg+", "sampler", "render", "save", NULL};
    const SDL_Rect *rects[] = {&L->prompt, &L->negative, &L->seed_minus, &L->seed_plus, &L->seed_random,
                               &L->steps_minus, &L->steps_plus, &L->cfg_minus, &L->cfg_plus, &L->sampler,
                               &L->render, &L->save};
    for (int i = 0; names[i]; i++)
        if (!strcmp(name, names[i])) {
            *r = *rects[i];
            return 1;
        }
    int k;
    char extra;
    if (sscanf(name, "slider%d%c", &k, &extra) == 1 && k >= 0 && k < a->n_sl) {
        *r = L->slider[k];
        return 1;
    }
    return 0;
}
