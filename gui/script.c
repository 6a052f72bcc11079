/* script.c — the viewer's scripted mode (`lorastyle view --script FILE`), for tests, docs and benchmarks.
 *
 * One command per line; blank lines and lines starting with '#' are ignored. Each command takes at least
 * one frame, so the events it sends are handled before the next command runs. The script ends the app
 * after its last line (exit status 1 if a command failed).
 *
 *   slider I V            set adapter I's strength to V (clamped to -1..2), re-rendering as a drag does
 *   drag I FROM TO MS     drag slider I with the mouse from FROM to TO over MS milliseconds
 *   key NAME              press a key: enter, escape, tab, backspace, left, right, up, down, home, end, a, ...
 *                         with modifiers: ctrl+s, shift+right, shift+tab
 *   type TEXT             type TEXT (the rest of the line) into the focused text field
 *   click NAME            click a widget: prompt, negative, sliderI, seed-, seed+, random, steps-, steps+,
 *                         cfg-, cfg+, sampler, render, save
 *   focus NAME            focus prompt, negative or sliderI without clicking
 *   drop FILE             drop FILE onto the window (as SDL_DROPFILE)
 *   resize W H            resize the window
 *   wait-render           wait until no render is running or queued (at most 600 s)
 *   wait MS               keep the app running for MS milliseconds
 *   screenshot FILE       write the whole window as PNG (with a "layout" text chunk: where things are)
 *   expect-status TEXT    fail unless the status line contains TEXT
 *   quit                  end the script here
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "app.h"
#include "common.h" // defines: ls_read_file, ls_set_error, ls_time

#define WAIT_RENDER_MAX_S 600.0

typedef enum {
    SC_SLIDER, SC_DRAG, SC_KEY, SC_TYPE, SC_CLICK, SC_FOCUS, SC_DROP, SC_RESIZE, SC_WAIT_RENDER, SC_WAIT,
    SC_SCREENSHOT, SC_EXPECT_STATUS, SC_QUIT
} ScKind;

typedef struct {
    ScKind kind;
    int line;
    int i, w, h;     /* slider index / resize size */
    float v, v2, ms; /* values, duration */
    char *s;         /* text argument */
    SDL_Keycode key;
    Uint16 mod;
} ScCmd;

struct Script {
    char *path;
    ScCmd *cmd;
    int n, pc;
    int started;     /* the current command has begun (multi-frame commands) */
    double t0;
    int frames0;     /* drag: frames drawn and newest request when it began */
    uint64_t req0;
};

static const struct {
    const char *name;
    ScKind kind;
    int nargs;       /* numeric arguments; −1: the rest of the line is text */
} COMMANDS[] = {{"slider", SC_SLIDER, 2}, {"drag", SC_DRAG, 4}, {"key", SC_KEY, -1}, {"type", SC_TYPE, -1},
                {"click", SC_CLICK, -1}, {"focus", SC_FOCUS, -1}, {"drop", SC_DROP, -1},
                {"resize", SC_RESIZE, 2}, {"wait-render", SC_WAIT_RENDER, 0}, {"wait", SC_WAIT, 1},
                {"screenshot", SC_SCREENSHOT, -1}, {"expect-status", SC_EXPECT_STATUS, -1}, {"quit", SC_QUIT, 0}};

/* "ctrl+shift+s" → key and modifiers. */
static int parse_key(const char *spec, SDL_Keycode *key, Uint16 *mod) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", spec);
    *mod = 0;
    char *p = buf, *plus;
    while ((plus = strchr(p, '+')) && plus[1]) {
        *plus = 0;
        if (!SDL_strcasecmp(p, "ctrl")) *mod |= KMOD_LCTRL;
        else if (!SDL_strcasecmp(p, "shift")) *mod |= KMOD_LSHIFT;
        else if (!SDL_strcasecmp(p, "alt")) *mod |= KMOD_LALT;
        else return ls_set_error("unknown modifier '%s' (ctrl, shift, alt)", p);
        p = plus + 1;
    }
    const char *name = !SDL_strcasecmp(p, "enter") ? "Return" : !SDL_strcasecmp(p, "esc") ? "Escape" : p;
    *key = SDL_GetKeyFromName(name);
    if (*key == SDLK_UNKNOWN) return ls_set_error("unknown key '%s'", p);
    return LS_OK;
}

static int parse_line(ScCmd *c, char *line) {
    char *word = line, *rest = line + strcspn(line, " \t");
    if (*rest) *rest++ = 0;
    rest += strspn(rest, " \t");
    size_t k = 0, nc = sizeof COMMANDS / sizeof COMMANDS[0];
    while (k < nc && strcmp(COMMANDS[k].name, word)) k++;
    if (k == nc) return ls_set_error("unknown command '%s'", word);
    c->kind = COMMANDS[k].kind;
    if (COMMANDS[k].nargs < 0) {
        if (!*rest) return ls_set_error("%s needs an argument", word);
        c->s = strdup(rest);
        if (c->kind == SC_KEY) return parse_key(rest, &c->key, &c->mod);
        return LS_OK;
    }
    float v[4] = {0};
    int n = 0;
    for (char *tok = strtok(rest, " \t"); tok; tok = strtok(NULL, " \t")) {
        char *end;
        errno = 0;
        if (n == 4) return ls_set_error("%s: too many arguments", word);
        v[n] = strtof(tok, &end);
        if (errno || *end || !isfinite(v[n])) return ls_set_error("%s: '%s' is not a number", word, tok);
        n++;
    }
    if (n != COMMANDS[k].nargs) return ls_set_error("%s takes %d number%s", word, COMMANDS[k].nargs,
                                                    COMMANDS[k].nargs == 1 ? "" : "s");
    switch (c->kind) {
    case SC_SLIDER: c->i = (int)v[0], c->v = v[1]; break;
    case SC_DRAG: c->i = (int)v[0], c->v = v[1], c->v2 = v[2], c->ms = v[3]; break;
    case SC_RESIZE: c->w = (int)v[0], c->h = (int)v[1]; break;
    case SC_WAIT: c->ms = v[0]; break;
    default: break;
    }
    if ((c->kind == SC_SLIDER || c->kind == SC_DRAG) && (v[0] < 0 || v[0] != floorf(v[0])))
        return ls_set_error("%s: the slider index must be 0, 1, ...", word);
    if (c->kind == SC_RESIZE && (c->w < 1 || c->h < 1 || c->w > 16384 || c->h > 16384))
        return ls_set_error("resize: size must be between 1 and 16384");
    return LS_OK;
}

int script_load(struct Script **out, const char *path) {
    size_t len;
    char *text = ls_read_file(path, &len);
    if (!text) return ls_error_context("--script");
    struct Script *s = callocCheck(1, sizeof *s);
    s->path = strdup(path);
    int cap = 0, lineno = 0, rc = LS_OK;
    for (char *p = text; rc == 0 && *p;) {
        char *line = p, *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = 0;
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
        line += strspn(line, " \t");
        if (!*line || *line == '#') continue;
        if (s->n == cap) {
            cap = cap ? 2 * cap : 16;
            s->cmd = realloc(s->cmd, (size_t)cap * sizeof *s->cmd);
            LS_ASSERT(s->cmd);
        }
        ScCmd *c = &s->cmd[s->n++];
        memset(c, 0, sizeof *c);
        c->line = lineno;
        if (parse_line(c, line) < 0) rc = ls_error_context("%s:%d", path, lineno);
    }
    free(text);
    if (rc < 0) {
        script_free(s);
        return LS_ERR;
    }
    *out = s;
    return LS_OK;
}

void script_free(struct Script *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->cmd[i].s);
    free(s->cmd);
    free(s->path);
    free(s);
}

/* ---------------- synthetic input ---------------- */

static void push(SDL_Event *e) {
    if (SDL_PushEvent(e) != 1) fprintf(stderr, "lorastyle: view: script: event dropped: %s\n", SDL_GetError());
}

static void push_key(App *a, SDL_Keycode key, Uint16 mod) {
    SDL_Event e;
    SDL_zero(e);
    e.type = SDL_KEYDOWN;
    e.key.windowID = SDL_GetWindowID(a->win);
    e.key.state = SDL_PRESSED;
    e.key.keysym.sym = key;
    e.key.keysym.scancode = SDL_GetScancodeFromKey(key);
    e.key.keysym.mod = mod;
    push(&e);
    e.type = SDL_KEYUP;
    e.key.state = SDL_RELEASED;
    push(&e);
}

static void push_text(App *a, const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        size_t k = n < SDL_TEXTINPUTEVENT_TEXT_SIZE - 1 ? n : SDL_TEXTINPUTEVENT_TEXT_SIZE - 1;
        while (k < n && k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--; /* whole UTF-8 sequences */
        SDL_Event e;
        SDL_zero(e);
        e.type = SDL_TEXTINPUT;
        e.text.windowID = SDL_GetWindowID(a->win);
        memcpy(e.text.text, s, k);
        push(&e);
        s += k;
        n -= k;
    }
}

static void push_mouse(App *a, Uint32 type, int x, int y) {
    SDL_Event e;
    SDL_zero(e);
    e.type = type;
    if (type == SDL_MOUSEMOTION) {
        e.motion.windowID = SDL_GetWindowID(a->win);
        e.motion.x = x;
        e.motion.y = y;
        e.motion.state = a->drag >= 0 ? SDL_BUTTON_LMASK : 0;
    } else {
        e.button.windowID = SDL_GetWindowID(a->win);
        e.button.button = SDL_BUTTON_LEFT;
        e.button.state = type == SDL_MOUSEBUTTONDOWN ? SDL_PRESSED : SDL_RELEASED;
        e.button.clicks = 1;
        e.button.x = x;
        e.button.y = y;
    }
    push(&e);
}

/* ---------------- running ---------------- */

static void fail(App *a, const ScCmd *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(App *a, const ScCmd *c, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    app_status(a, 1, "script %s:%d: %s", a->script->path, c->line, msg);
    a->script_failed = 1;
    a->quit = 1;
}

/* Run one step of command c. Returns 1 when it is finished. */
static int run_cmd(App *a, ScCmd *c, double t) {
    struct Script *S = a->script;
    SDL_Rect r;
    switch (c->kind) {
    case SC_SLIDER:
        if (c->i >= a->n_sl) fail(a, c, "slider: no slider %d (there are %d)", c->i, a->n_sl);
        else app_set_slider(a, c->i, c->v);
        return 1;
    case SC_DRAG: {
        if (c->i >= a->n_sl) {
            fail(a, c, "drag: no slider %d (there are %d)", c->i, a->n_sl);
            return 1;
        }
        SDL_Rect row = a->L.slider[c->i];
        float f = c->ms > 0 ? (float)((t - S->t0) * 1000.0 / c->ms) : 1.0f;
        f = f > 1 ? 1 : f;
        int x = ui_slider_x(row, SLIDER_MIN, SLIDER_MAX, c->v + (c->v2 - c->v) * f), y = row.y + row.h / 2;
        if (!S->started) {
            push_mouse(a, SDL_MOUSEBUTTONDOWN, x, y);
            S->frames0 = a->n_frames;
            S->req0 = a->latest;
        } else {
            push_mouse(a, SDL_MOUSEMOTION, x, y);
        }
        if (S->started && f >= 1) {
            push_mouse(a, SDL_MOUSEBUTTONUP, x, y);
            double dt = t - S->t0;
            fprintf(stderr, "lorastyle: view: timing: drag slider %d from %.2f to %.2f: %d frames drawn in %.2f s = "
                            "%.1f fps, %d renders requested\n", c->i, (double)c->v, (double)c->v2,
                    a->n_frames - S->frames0, dt, (a->n_frames - S->frames0) / (dt > 0 ? dt : 1e-9),
                    (int)(a->latest - S->req0));
            return 1;
        }
        return 0;
    }
    case SC_KEY: push_key(a, c->key, c->mod); return 1;
    case SC_TYPE: push_text(a, c->s); return 1;
    case SC_CLICK:
        if (!panel_named_rect(a, c->s, &r)) fail(a, c, "click: no widget '%s'", c->s);
        else {
            push_mouse(a, SDL_MOUSEMOTION, r.x + r.w / 2, r.y + r.h / 2);
            push_mouse(a, SDL_MOUSEBUTTONDOWN, r.x + r.w / 2, r.y + r.h / 2);
            push_mouse(a, SDL_MOUSEBUTTONUP, r.x + r.w / 2, r.y + r.h / 2);
        }
        return 1;
    case SC_FOCUS: {
        int k;
        char extra;
        if (!strcmp(c->s, "prompt")) a->focus = FOCUS_PROMPT;
        else if (!strcmp(c->s, "negative")) a->focus = FOCUS_NEGATIVE;
        else if (sscanf(c->s, "slider%d%c", &k, &extra) == 1 && k >= 0 && k < a->n_sl) a->focus = FOCUS_SLIDER + k;
        else fail(a, c, "focus: no widget '%s' (prompt, negative, sliderI)", c->s);
        return 1;
    }
    case SC_DROP: {
        SDL_Event e;
        SDL_zero(e);
        e.type = SDL_DROPFILE;
        e.drop.windowID = SDL_GetWindowID(a->win);
        e.drop.file = SDL_strdup(c->s); /* freed by the handler, as SDL's own drops */
        push(&e);
        return 1;
    }
    case SC_RESIZE: SDL_SetWindowSize(a->win, c->w, c->h); return 1;
    case SC_WAIT_RENDER:
        if (app_idle(a)) return 1;
        if (t - S->t0 > WAIT_RENDER_MAX_S) {
            fail(a, c, "wait-render: still busy after %.0f s", WAIT_RENDER_MAX_S);
            return 1;
        }
        return 0;
    case SC_WAIT: return (t - S->t0) * 1000.0 >= c->ms;
    case SC_SCREENSHOT:
        free(a->pending_shot);
        a->pending_shot = strdup(c->s); /* taken when this frame has been drawn */
        return 1;
    case SC_EXPECT_STATUS:
        if (!strstr(a->status, c->s)) {
            fail(a, c, "expected the status line to contain '%.100s', it says '%.200s'", c->s, a->status);
        }
        return 1;
    case SC_QUIT: S->pc = S->n; return 1;
    }
    return 1;
}

int script_step(App *a) {
    struct Script *S = a->script;
    if (S->pc >= S->n) return 1;
    ScCmd *c = &S->cmd[S->pc];
    double t = ls_time();
    if (!S->started) S->t0 = t;
    int done = run_cmd(a, c, t);
    S->started = 1;
    if (done) {
        a->dirty = 1; /* show its effect (focus changes, screenshots) in the next frame */
        if (c->kind != SC_QUIT) S->pc++;
        S->started = 0;
    }
    return S->pc >= S->n;
}
