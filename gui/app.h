/* app.h — the viewer's state and the operations its parts share:
 *   view.c    command line, window, event loop, talking to the render worker, saving
 *   panel.c   layout (where every widget is, for any window size) and drawing a frame
 *   script.c  the scripted mode (--script / --screenshot) for tests, docs and benchmarks
 * Everything in App belongs to the UI thread; the model belongs to the worker (worker.h).
 */
#ifndef LS_GUI_APP_H
#define LS_GUI_APP_H

#include <SDL.h>

#include "lorastyle.h" // defines: GenOptions, GenSession, genopts_parse, LS_MAX_LORAS
#include "widgets.h" // defines: Ui
#include "worker.h"  // defines: Worker

#define APP_TEXT_CAP 2048
#define SLIDER_MIN (-1.0f)
#define SLIDER_MAX 2.0f
#define SLIDER_STEP 0.05f

/* Focus targets: the two text fields, then adapter slider i at FOCUS_SLIDER + i. */
enum { FOCUS_NONE = -1, FOCUS_PROMPT = 0, FOCUS_NEGATIVE = 1, FOCUS_SLIDER = 2 };

/* Where everything is for the current window size (panel.c). */
typedef struct {
    int W, H;
    int too_small;               /* the controls do not fit: only the status bar is drawn */
    int min_w, min_h;            /* the size they need */
    int pref_h;                  /* the height that also shows the key hints */
    SDL_Rect image_area, image;  /* the panel, and the image inside it (integer scale when it fits) */
    float scale;
    SDL_Rect caption, progress;  /* under the image: text and progress bar */
    SDL_Rect prompt, negative;   /* text fields */
    SDL_Rect prompt_label, negative_label, adapters_label;
    SDL_Rect slider_label[LS_MAX_LORAS], slider[LS_MAX_LORAS]; /* name+value row, slider row */
    SDL_Rect seed_row, steps_row, cfg_row, sampler_row;
    SDL_Rect seed_minus, seed_plus, seed_random, steps_minus, steps_plus, cfg_minus, cfg_plus, sampler;
    SDL_Rect render, save, keys; /* keys: two lines of key hints */
    SDL_Rect status;
} Layout;

typedef struct {
    char name[128];
    float v;
} AdapterSlider;

typedef struct {
    /* model and settings */
    GenOptions o;
    GenSession s;        /* owned by the worker thread while it runs */
    Worker *w;
    char backend[128];   /* e.g. "CPU · OpenMP 2 threads" */
    int img_w, img_h;    /* image size of every render */
    char prompt[APP_TEXT_CAP], negative[APP_TEXT_CAP];
    AdapterSlider sl[LS_MAX_LORAS];
    int n_sl;
    uint64_t seed;
    int steps;
    float cfg;
    int sampler;         /* index into the sampler list (view.c) */
    /* window */
    SDL_Window *win;
    SDL_Renderer *ren;
    Ui ui;
    uint32_t wake_event;
    SDL_Texture *tex;    /* the shown image */
    int tex_w, tex_h;
    int have_image, shown_preview, shown_step, shown_total;
    int focus, drag;     /* drag: slider index being dragged, −1 none */
    int mouse_x, mouse_y;
    double caret_t0;
    Layout L;
    /* results */
    Image final_img;     /* last finished image (saved by Ctrl+S) */
    char *final_params;  /* its A1111 parameters text */
    double last_render_s;
    uint64_t latest;     /* newest request id */
    int prog_step, prog_total;
    /* status line */
    char status[512];
    int status_err;
    double status_t;
    /* timing of the newest request (logged in scripted mode; BENCHMARKS.md) */
    double t_post;
    double first_pixels_s, image_s; /* −1 until seen */
    int frames;          /* frames drawn while it rendered */
    double loop_gap_max; /* longest time between two passes of the event loop while it rendered */
    char what[96];       /* what caused the newest request, for the log */
    /* the whole session: frames drawn, their cost, and the pace of the loop while the worker was busy */
    int n_frames, busy_frames, busy_loops, busy_slow;
    double draw_total, busy_t, busy_gap_max, last_busy_t, last_loop_t;
    /* redraw only when needed (view.c: frame) */
    int dirty, progress_dirty, caret_on, drawn_w, drawn_h;
    double last_draw_t;
    /* scripted mode */
    struct Script *script;
    const char *screenshot_path; /* --screenshot: after the script (or the first render) */
    char *pending_shot;          /* screenshot to take after the next frame is drawn */
    int script_failed;
    int log;                     /* print status and timings to stderr */
    int quit;
} App;

/* view.c */
void app_status(App *a, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void app_request(App *a, const char *why);           /* post the current settings (empty prompt: message) */
void app_set_slider(App *a, int i, float v);         /* clamp, store, re-render when changed */
int app_save(App *a);                                /* Ctrl+S; LS_ERR (status set) on failure */
int app_idle(App *a);                                /* no request running or queued, no events pending */
void app_fit_window(App *a);                         /* grow the window to what the controls need */
const char *app_sampler_name(int idx);

/* panel.c */
void panel_layout(App *a, int W, int H);
/* The window size that shows the image at its largest integer scale up to 512 px and every control. */
void panel_window_size(App *a, int *W, int *H);
void panel_draw(App *a);
/* Layout as text ("key x y w h" lines) for the screenshot PNG's "layout" chunk; malloc'd. */
char *panel_layout_text(const App *a);
/* The rect a script's `click NAME` means (prompt, negative, sliderI, seed-, seed+, random, steps-, steps+,
 * cfg-, cfg+, sampler, render, save); 0 if unknown. */
int panel_named_rect(const App *a, const char *name, SDL_Rect *r);

/* script.c */
struct Script;
/* Parse a script file (format in script.c and README): LS_ERR naming the file and line on a bad line. */
int script_load(struct Script **out, const char *path);
void script_free(struct Script *s);
/* Run the script for one frame (one command, or one step of a command that spans frames). Returns 1 when
 * the script has finished (the caller ends the app). */
int script_step(App *a);

#endif
