/* widgets.c — see widgets.h. */
#include "widgets.h"

#include <math.h>
#include <string.h>

#include "common.h" // defines: mallocCheck
#include "font.h"   // defines: font_draw_text, font_text_width (fallback text)

const SDL_Color UI_BG = {30, 31, 36, 255}, UI_PANEL = {42, 44, 52, 255}, UI_TEXT = {232, 232, 236, 255},
                UI_DIM = {150, 153, 166, 255}, UI_ACCENT = {86, 156, 245, 255}, UI_TRACK = {78, 81, 94, 255},
                UI_KNOB = {240, 240, 246, 255}, UI_FIELD = {20, 21, 25, 255}, UI_ERROR = {255, 112, 100, 255},
                UI_STATUS_BG = {22, 23, 27, 255}, UI_BUTTON = {62, 65, 78, 255},
                UI_BUTTON_HOT = {80, 84, 102, 255};

#define BITMAP_SCALE 2

void ui_init(Ui *ui, SDL_Renderer *r, int ttf_ok, const char *font_path, int pt) {
    memset(ui, 0, sizeof *ui);
    ui->r = r;
    if (ttf_ok) {
        ui->font = TTF_OpenFont(font_path, pt);
        if (ui->font) {
            ui->line_h = TTF_FontHeight(ui->font);
            snprintf(ui->font_note, sizeof ui->font_note, "font %s %dpt", font_path, pt);
            return;
        }
        snprintf(ui->font_note, sizeof ui->font_note, "cannot open %s (%s): using the built-in bitmap font",
                 font_path, TTF_GetError());
    } else {
        snprintf(ui->font_note, sizeof ui->font_note, "SDL2_ttf unavailable: using the built-in bitmap font");
    }
    ui->line_h = font_line_height(BITMAP_SCALE);
}

static void drop_entry(UiText *t) {
    if (t->tex) SDL_DestroyTexture(t->tex);
    free(t->text);
    memset(t, 0, sizeof *t);
}

void ui_free(Ui *ui) {
    for (int i = 0; i < UI_TEXT_CACHE; i++) drop_entry(&ui->cache[i]);
    if (ui->font) TTF_CloseFont(ui->font);
    ui->font = NULL;
}

void ui_end_frame(Ui *ui) {
    ui->frame++;
    for (int i = 0; i < UI_TEXT_CACHE; i++)
        if (ui->cache[i].text && ui->frame - ui->cache[i].used > 300) drop_entry(&ui->cache[i]);
}

/* White-on-transparent surface of s drawn with the bitmap font. */
static SDL_Surface *bitmap_surface(const char *s) {
    int w = font_text_width(s, BITMAP_SCALE), h = FONT_GLYPH_H * BITMAP_SCALE;
    if (w <= 0) return NULL;
    Image img = {w, h, 3, callocCheck((size_t)w * h * 3, 1)};
    font_draw_text(&img, 0, 0, s, BITMAP_SCALE, 255, 255, 255);
    SDL_Surface *surf = SDL_CreateRGBSurfaceWithFormat(0, w, h, 32, SDL_PIXELFORMAT_ARGB8888);
    if (surf) {
        for (int y = 0; y < h; y++) {
            uint32_t *row = (uint32_t *)((uint8_t *)surf->pixels + (size_t)y * surf->pitch);
            for (int x = 0; x < w; x++) row[x] = ((uint32_t)img.data[((size_t)y * w + x) * 3] << 24) | 0xFFFFFFu;
        }
    }
    free(img.data);
    return surf;
}

/* Cached texture for s (NULL for empty text or on failure). */
static UiText *text_get(Ui *ui, const char *s) {
    if (!s || !*s) return NULL;
    int slot = -1; /* an empty entry, else the least recently used one */
    for (int i = 0; i < UI_TEXT_CACHE; i++) {
        UiText *t = &ui->cache[i];
        if (t->text && !strcmp(t->text, s)) {
            t->used = ui->frame;
            return t->tex ? t : NULL;
        }
        if (slot < 0 || (ui->cache[slot].text && (!t->text || t->used < ui->cache[slot].used))) slot = i;
    }
    UiText *t = &ui->cache[slot];
    drop_entry(t);
    SDL_Surface *surf;
    if (ui->font) {
        SDL_Color white = {255, 255, 255, 255};
        surf = TTF_RenderUTF8_Blended(ui->font, s, white);
    } else {
        surf = bitmap_surface(s);
    }
    t->text = strdup(s);
    t->used = ui->frame;
    if (!surf) return NULL; /* remembered as "cannot draw" so the failure is not retried every frame */
    t->tex = SDL_CreateTextureFromSurface(ui->r, surf);
    t->w = surf->w;
    t->h = surf->h;
    SDL_FreeSurface(surf);
    if (!t->tex) return NULL;
    SDL_SetTextureBlendMode(t->tex, SDL_BLENDMODE_BLEND);
    return t;
}

void ui_fill(Ui *ui, SDL_Rect r, SDL_Color c) {
    SDL_SetRenderDrawColor(ui->r, c.r, c.g, c.b, c.a);
    SDL_RenderFillRect(ui->r, &r);
}

void ui_outline(Ui *ui, SDL_Rect r, SDL_Color c) {
    SDL_SetRenderDrawColor(ui->r, c.r, c.g, c.b, c.a);
    SDL_RenderDrawRect(ui->r, &r);
}

int ui_text_width(Ui *ui, const char *s) {
    UiText *t = text_get(ui, s);
    return t ? t->w : 0;
}

int ui_text(Ui *ui, int x, int y, const char *s, SDL_Color c) {
    UiText *t = text_get(ui, s);
    if (!t) return 0;
    SDL_SetTextureColorMod(t->tex, c.r, c.g, c.b);
    SDL_Rect dst = {x, y, t->w, t->h};
    SDL_RenderCopy(ui->r, t->tex, NULL, &dst);
    return t->w;
}

int ui_text_in(Ui *ui, SDL_Rect box, const char *s, SDL_Color c, int tail) {
    UiText *t = text_get(ui, s);
    if (!t || box.w <= 0 || box.h <= 0) return box.x;
    int w = LS_MIN(t->w, box.w), h = LS_MIN(t->h, box.h);
    SDL_Rect src = {tail ? t->w - w : 0, (t->h - h) / 2, w, h};
    SDL_Rect dst = {box.x, box.y + (box.h - h) / 2, w, h};
    SDL_SetTextureColorMod(t->tex, c.r, c.g, c.b);
    SDL_RenderCopy(ui->r, t->tex, &src, &dst);
    return box.x + w;
}

int ui_hit(SDL_Rect r, int x, int y) { return x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h; }

/* ---------------- widgets ---------------- */

#define KNOB_W 10
#define BAR_H 6

SDL_Rect ui_slider_bar(SDL_Rect row) {
    SDL_Rect b = {row.x + KNOB_W / 2 + 1, row.y + row.h / 2 - BAR_H / 2, row.w - KNOB_W - 2, BAR_H};
    return b;
}

int ui_slider_x(SDL_Rect row, float lo, float hi, float v) {
    SDL_Rect b = ui_slider_bar(row);
    float t = (v - lo) / (hi - lo);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return b.x + (int)lroundf(t * (float)(b.w - 1));
}

float ui_slider_value(SDL_Rect row, float lo, float hi, int x) {
    SDL_Rect b = ui_slider_bar(row);
    float t = b.w > 1 ? (float)(x - b.x) / (float)(b.w - 1) : 0.0f;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return roundf((lo + t * (hi - lo)) * 100.0f) / 100.0f;
}

void ui_slider(Ui *ui, SDL_Rect row, float lo, float hi, float v, int focused) {
    SDL_Rect b = ui_slider_bar(row);
    ui_fill(ui, b, UI_TRACK);
    int xv = ui_slider_x(row, lo, hi, v);
    if (lo < 0 && hi > 0) {
        int x0 = ui_slider_x(row, lo, hi, 0.0f);
        SDL_Rect fill = {LS_MIN(x0, xv), b.y, abs(xv - x0) + 1, b.h};
        ui_fill(ui, fill, UI_ACCENT);
        SDL_Rect mark = {x0 - 1, row.y + 2, 2, row.h - 4};
        ui_fill(ui, mark, UI_DIM);
    }
    if (focused) ui_outline(ui, row, UI_ACCENT);
    SDL_Rect knob = {xv - KNOB_W / 2, row.y + 3, KNOB_W, row.h - 6};
    ui_fill(ui, knob, UI_KNOB);
}

void ui_button(Ui *ui, SDL_Rect r, const char *label, int hot) {
    ui_fill(ui, r, hot ? UI_BUTTON_HOT : UI_BUTTON);
    ui_outline(ui, r, UI_TRACK);
    int w = ui_text_width(ui, label);
    SDL_Rect box = {r.x + LS_MAX(4, (r.w - w) / 2), r.y, r.w - 8, r.h};
    ui_text_in(ui, box, label, UI_TEXT, 0);
}

void ui_textfield(Ui *ui, SDL_Rect r, const char *text, const char *placeholder, int focused, int caret) {
    ui_fill(ui, r, UI_FIELD);
    ui_outline(ui, r, focused ? UI_ACCENT : UI_TRACK);
    SDL_Rect box = {r.x + 6, r.y, r.w - 14, r.h};
    int end = box.x;
    if (text && *text) end = ui_text_in(ui, box, text, UI_TEXT, 1);
    else if (!focused && placeholder) ui_text_in(ui, box, placeholder, UI_DIM, 0);
    if (focused && caret) {
        SDL_Rect c = {end + 1, r.y + 5, 2, r.h - 10};
        ui_fill(ui, c, UI_TEXT);
    }
}
