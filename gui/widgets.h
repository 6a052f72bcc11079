/* widgets.h — drawing for the viewer: filled/outlined rectangles, text (SDL2_ttf with DejaVu Sans, or the
 * built-in bitmap font of src/runtime/font.h when the TTF is missing), a small cache of text textures, and the
 * immediate-mode widgets the viewer uses (slider, button, text field) with their hit-testing.
 *
 * Everything here runs on the UI thread and only draws; state (values, focus, text) belongs to the caller.
 */
#ifndef LS_GUI_WIDGETS_H
#define LS_GUI_WIDGETS_H

#include <SDL.h>
#include <SDL_ttf.h>

#define UI_FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define UI_TEXT_CACHE 192

/* Colours of the dark theme (also used by the tests through the layout text, see view.c). */
extern const SDL_Color UI_BG, UI_PANEL, UI_TEXT, UI_DIM, UI_ACCENT, UI_TRACK, UI_KNOB, UI_FIELD, UI_ERROR,
    UI_STATUS_BG, UI_BUTTON, UI_BUTTON_HOT;

typedef struct {
    char *text;
    SDL_Texture *tex; /* white glyphs on transparent; colour comes from SDL_SetTextureColorMod */
    int w, h;
    uint64_t used;    /* frame number of the last use */
} UiText;

typedef struct {
    SDL_Renderer *r;
    TTF_Font *font;      /* NULL: bitmap font (font.h) at scale 2 */
    int line_h;          /* height of one line of text in pixels */
    UiText cache[UI_TEXT_CACHE];
    uint64_t frame;
    char font_note[160]; /* which font is in use, for the log */
} Ui;

/* Open the font (TTF_Init must have succeeded, else pass ttf_ok = 0 to use the bitmap font). Never fails:
 * a missing or unreadable TTF falls back to the bitmap font with a note in ui->font_note. r may be NULL
 * until the renderer exists (set ui->r before drawing): the font's metrics are known at once. */
void ui_init(Ui *ui, SDL_Renderer *r, int ttf_ok, const char *font_path, int pt);
void ui_free(Ui *ui);
/* Call once per frame after drawing: frees cached text not used for a while. */
void ui_end_frame(Ui *ui);

void ui_fill(Ui *ui, SDL_Rect r, SDL_Color c);
void ui_outline(Ui *ui, SDL_Rect r, SDL_Color c);
/* Draw one line of UTF-8 text with its top-left at (x, y); returns its width. */
int ui_text(Ui *ui, int x, int y, const char *s, SDL_Color c);
int ui_text_width(Ui *ui, const char *s);
/* Text clipped to box (vertically centred); tail = 1 shows the end of a text that is too wide (text
 * fields), 0 its start (labels, status). Returns the x just after the last visible glyph. */
int ui_text_in(Ui *ui, SDL_Rect box, const char *s, SDL_Color c, int tail);

int ui_hit(SDL_Rect r, int x, int y);

/* Slider over [lo, hi]: track is the whole clickable row; the bar is drawn centred in it with a mark at
 * 0 (when inside the range), an accent fill from 0 to the value and a knob at the value. */
void ui_slider(Ui *ui, SDL_Rect row, float lo, float hi, float v, int focused);
/* x position of value v in the slider row, and the value under mouse x (clamped, rounded to 0.01). */
int ui_slider_x(SDL_Rect row, float lo, float hi, float v);
float ui_slider_value(SDL_Rect row, float lo, float hi, int x);
/* Geometry of the drawn bar (for tests: the layout text reports it). */
SDL_Rect ui_slider_bar(SDL_Rect row);

void ui_button(Ui *ui, SDL_Rect r, const char *label, int hot);
void ui_textfield(Ui *ui, SDL_Rect r, const char *text, const char *placeholder, int focused, int caret);

#endif
