/* worker.c — see worker.h. */
#include "worker.h"

#include <SDL.h>
#include <math.h>
#include <string.h>

#include "common.h" // defines: ls_time, ls_set_error, mallocCheck

#define MAX_DROPS 16
#define PREVIEW_TARGET_S 0.25 /* aim for a preview about this often */
#define FULL_PREVIEW_MAX_S 0.2 /* VAE-decode previews when a decode takes at most this long */

struct Worker {
    GenSession *s;
    GenParams base;
    int lenient;
    uint32_t wake_event;
    SDL_Thread *thread;
    SDL_mutex *mu;
    SDL_cond *cv;
    SDL_atomic_t latest;  /* id of the newest request (the running one is cancelled when it differs) */
    SDL_atomic_t quit;
    SDL_atomic_t wake_sent;
    /* under mu */
    int has_req;
    ViewRequest req;      /* with owned prompt/negative copies */
    char *drops[MAX_DROPS];
    int n_drops;
    int running;
    WorkerEvent *events;
    int n_events, cap_events;
    /* worker thread only */
    double step_s;        /* measured seconds per step (0: unknown) */
    double decode_s;      /* measured seconds per VAE decode (−1: unknown) */
};

/* Context of the running render, passed to the pipeline callbacks. */
typedef struct {
    Worker *w;
    uint64_t id;
    double t_start, t_last_step;
} RenderCtx;

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

static void push_event(Worker *w, WorkerEvent *ev) {
    SDL_LockMutex(w->mu);
    WorkerEvent *last = w->n_events ? &w->events[w->n_events - 1] : NULL;
    if (ev->kind == WEV_PROGRESS && last && last->kind == WEV_PROGRESS && last->id == ev->id) {
        *last = *ev; /* coalesce progress the UI has not seen yet */
    } else {
        if (w->n_events == w->cap_events) {
            w->cap_events = w->cap_events ? 2 * w->cap_events : 32;
            w->events = realloc(w->events, (size_t)w->cap_events * sizeof *w->events);
            LS_ASSERT(w->events);
        }
        w->events[w->n_events++] = *ev;
    }
    SDL_UnlockMutex(w->mu);
    if (w->wake_event && SDL_AtomicCAS(&w->wake_sent, 0, 1)) {
        SDL_Event e;
        SDL_zero(e);
        e.type = w->wake_event;
        if (SDL_PushEvent(&e) != 1) SDL_AtomicSet(&w->wake_sent, 0); /* queue full or filtered: UI polls */
    }
}

static void push_simple(Worker *w, WevKind kind, uint64_t id, const char *text, const char *detail) {
    WorkerEvent ev = {.kind = kind, .id = id, .text = text ? strdup(text) : NULL,
                      .detail = detail ? strdup(detail) : NULL};
    push_event(w, &ev);
}

void worker_event_free(WorkerEvent *ev) {
    image_free(&ev->img);
    free(ev->text);
    free(ev->detail);
    memset(ev, 0, sizeof *ev);
}

int worker_poll(Worker *w, WorkerEvent *ev) {
    SDL_AtomicSet(&w->wake_sent, 0);
    SDL_LockMutex(w->mu);
    int got = w->n_events > 0;
    if (got) {
        *ev = w->events[0];
        memmove(w->events, w->events + 1, (size_t)(w->n_events - 1) * sizeof *w->events);
        w->n_events--;
    }
    SDL_UnlockMutex(w->mu);
    return got;
}

int worker_busy(Worker *w) {
    SDL_LockMutex(w->mu);
    int busy = w->has_req || w->n_drops || w->running || w->n_events;
    SDL_UnlockMutex(w->mu);
    return busy;
}

/* ---------------- previews ---------------- */

void worker_latent_preview(Image *img, const float *x0, int C, int h, int w, int f) {
    /* Approximate SD-1.x latent → RGB factors (a linear fit commonly used for live previews). */
    static const float k[4][3] = {
        {0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f}, {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};
    img->w = w * f;
    img->h = h * f;
    img->c = 3;
    img->data = mallocCheck((size_t)img->w * img->h * 3);
    size_t hw = (size_t)h * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float rgb[3] = {0, 0, 0};
            for (int c = 0; c < 3; c++) {
                if (C == 4)
                    for (int l = 0; l < 4; l++) rgb[c] += k[l][c] * x0[l * hw + (size_t)y * w + x];
                else rgb[c] = x0[(size_t)y * w + x];
            }
            uint8_t px[3];
            for (int c = 0; c < 3; c++) {
                float v = (rgb[c] + 1.0f) * 127.5f;
                px[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lroundf(v));
            }
            for (int dy = 0; dy < f; dy++)
                for (int dx = 0; dx < f; dx++)
                    memcpy(img->data + (((size_t)(y * f + dy) * img->w) + (size_t)(x * f + dx)) * 3, px, 3);
        }
}

static int cb_cancel(void *user) {
    RenderCtx *c = user;
    return SDL_AtomicGet(&c->w->quit) || (uint64_t)SDL_AtomicGet(&c->w->latest) != c->id;
}

static void cb_step(int step, int total, void *user) {
    RenderCtx *c = user;
    c->t_last_step = ls_time();
    WorkerEvent ev = {.kind = WEV_PROGRESS, .id = c->id, .step = step, .total = total};
    push_event(c->w, &ev);
}

static void cb_latents(int step, int total, const float *x0, int C, int h, int w, void *user) {
    RenderCtx *c = user;
    Worker *wk = c->w;
    if (cb_cancel(c)) return; /* the next step check stops the run; do not spend a decode on it */
    WorkerEvent ev = {.kind = WEV_PREVIEW, .id = c->id, .step = step, .total = total,
                      .full_preview = wk->decode_s >= 0 && wk->decode_s <= FULL_PREVIEW_MAX_S};
    double t0 = ls_time();
    if (ev.full_preview) pipeline_decode(&wk->s->m, x0, 1, h, w, &ev.img);
    else worker_latent_preview(&ev.img, x0, C, h, w, vae_scale_factor(&wk->s->m.vae.cfg));
    if (ev.full_preview) wk->decode_s = ls_time() - t0;
    push_event(wk, &ev);
}

/* ---------------- work ---------------- */

static void sappendf(char *buf, size_t cap, const char *fmt, const char *name, double v) {
    size_t k = strlen(buf);
    if (k < cap) snprintf(buf + k, cap - k, fmt, name, v);
}

static void render(Worker *w, const ViewRequest *rq, uint64_t id) {
    GenSession *s = w->s;
    for (int i = 0; i < s->n_lora; i++) {
        float v = i < rq->n_strength ? rq->strength[i] : s->lora[i].strength[LORA_UNET];
        lora_set_strength(&s->lora[i], v, v); /* unmerged: a scalar store */
    }
    GenParams p = w->base;
    p.prompt = rq->prompt;
    p.negative = rq->negative;
    p.steps = rq->steps;
    p.cfg = rq->cfg;
    p.sampler = rq->sampler;
    p.karras = rq->karras;
    p.seed = rq->seed;
    p.batch = 1;
    /* the PNG's prompt line: the text plus a tag per adapter at its strength, and "Lora hashes" */
    size_t cap = strlen(rq->prompt) + 256 * (size_t)(s->n_lora + 1);
    char *display = mallocCheck(cap), *extra = mallocCheck(cap);
    snprintf(display, cap, "%s", rq->prompt);
    extra[0] = 0;
    for (int i = 0; i < s->n_lora; i++) {
        sappendf(display, cap, " <lora:%s:%g>", s->lora[i].name, (double)s->lora[i].strength[LORA_UNET]);
        size_t k = strlen(extra);
        snprintf(extra + k, cap - k, "%s%s: %s", i ? ", " : ", Lora hashes: \"", s->lora[i].name, s->lora[i].hash);
    }
    if (s->n_lora) strncat(extra, "\"", cap - strlen(extra) - 1);
    p.display_prompt = display;
    p.extra_params = extra;

    RenderCtx c = {w, id, ls_time(), 0};
    p.on_step = cb_step;
    p.cancel = cb_cancel;
    p.on_latents = cb_latents;
    p.user = &c;
    int every = w->step_s > 0 ? (int)lround(PREVIEW_TARGET_S / w->step_s) : 5;
    p.preview_every = LS_MAX(every, 1);
    if (w->decode_s < 0 && gen_params_check(&s->m, &p) == 0)
        w->decode_s = (double)p.width * p.height <= 256.0 * 256.0 ? 0 : 1e9; /* first guess until measured */

    Image img = {0};
    int rc = pipeline_generate(&s->m, &p, &img, NULL);
    double t_end = ls_time();
    if (rc == 0) {
        if (c.t_last_step > c.t_start) {
            w->step_s = (c.t_last_step - c.t_start) / p.steps;
            w->decode_s = t_end - c.t_last_step;
        }
        WorkerEvent ev = {.kind = WEV_IMAGE, .id = id, .img = img, .step = p.steps, .total = p.steps,
                          .text = pipeline_parameters_text(&s->m, &p, 0), .render_s = t_end - c.t_start};
        push_event(w, &ev);
    } else if (rc != LS_CANCELLED) {
        push_simple(w, WEV_FAILED, id, ls_last_error(), NULL);
    }
    free(display);
    free(extra);
}

static void add_adapter(Worker *w, const char *path) {
    GenSession *s = w->s;
    for (int i = 0; i < s->n_lora; i++)
        if (!strcmp(s->lora[i].path, path)) {
            ls_set_error("%s: this adapter is already loaded", path);
            push_simple(w, WEV_ADAPTER_FAILED, 0, ls_last_error(), NULL);
            return;
        }
    if (s->n_lora == LS_MAX_LORAS) {
        ls_set_error("%s: at most %d adapters", path, LS_MAX_LORAS);
        push_simple(w, WEV_ADAPTER_FAILED, 0, ls_last_error(), NULL);
        return;
    }
    Lora *a = &s->lora[s->n_lora];
    if (lora_load(a, path) < 0) {
        push_simple(w, WEV_ADAPTER_FAILED, 0, ls_last_error(), NULL);
        return;
    }
    if (lora_attach(a, &s->m, w->lenient) < 0) {
        char err[1024];
        snprintf(err, sizeof err, "%s", ls_last_error());
        lora_free(a);
        push_simple(w, WEV_ADAPTER_FAILED, 0, err, NULL);
        return;
    }
    char detail[256];
    snprintf(detail, sizeof detail, "%s, %d U-Net + %d text-encoder modules", lora_format_name(a->format),
             a->n_unet, a->n_te);
    s->n_lora++;
    WorkerEvent ev = {.kind = WEV_ADAPTER, .step = s->n_lora - 1, .text = strdup(a->name), .detail = strdup(detail)};
    push_event(w, &ev);
}

static int worker_main(void *arg) {
    Worker *w = arg;
    for (;;) {
        SDL_LockMutex(w->mu);
        while (!SDL_AtomicGet(&w->quit) && !w->has_req && !w->n_drops) SDL_CondWait(w->cv, w->mu);
        if (SDL_AtomicGet(&w->quit)) {
            SDL_UnlockMutex(w->mu);
            break;
        }
        char *drops[MAX_DROPS];
        int nd = w->n_drops;
        memcpy(drops, w->drops, sizeof drops);
        w->n_drops = 0;
        int has = w->has_req;
        ViewRequest rq = w->req;
        uint64_t id = (uint64_t)SDL_AtomicGet(&w->latest);
        w->has_req = 0;
        w->req.prompt = w->req.negative = NULL; /* ownership moves to rq */
        w->running = 1;
        SDL_UnlockMutex(w->mu);

        for (int i = 0; i < nd; i++) {
            add_adapter(w, drops[i]);
            free(drops[i]);
        }
        if (has) {
            render(w, &rq, id);
            free((char *)rq.prompt);
            free((char *)rq.negative);
        }
        SDL_LockMutex(w->mu);
        w->running = 0;
        SDL_UnlockMutex(w->mu);
    }
    return 0;
}

Worker *worker_start(GenSession *s, const GenParams *base, int lenient, uint32_t wake_event) {
    Worker *w = callocCheck(1, sizeof *w);
    w->s = s;
    w->base = *base;
    w->lenient = lenient;
    w->wake_event = wake_event;
    w->decode_s = -1;
    w->mu = SDL_CreateMutex();
    w->cv = SDL_CreateCond();
    if (!w->mu || !w->cv) {
        ls_set_error("view: cannot create a mutex/condition variable: %s", SDL_GetError());
        goto fail;
    }
    w->thread = SDL_CreateThread(worker_main, "lorastyle-render", w);
    if (!w->thread) {
        ls_set_error("view: cannot start the render thread: %s", SDL_GetError());
        goto fail;
    }
    return w;
fail:
    if (w->cv) SDL_DestroyCond(w->cv);
    if (w->mu) SDL_DestroyMutex(w->mu);
    free(w);
    return NULL;
}

uint64_t worker_request(Worker *w, const ViewRequest *rq) {
    SDL_LockMutex(w->mu);
    free((char *)w->req.prompt);
    free((char *)w->req.negative);
    w->req = *rq;
    w->req.prompt = dupstr(rq->prompt);
    w->req.negative = dupstr(rq->negative);
    w->has_req = 1;
    uint64_t id = (uint64_t)SDL_AtomicGet(&w->latest) + 1;
    SDL_AtomicSet(&w->latest, (int)id); /* the running render sees this at its next step and stops */
    SDL_CondSignal(w->cv);
    SDL_UnlockMutex(w->mu);
    return id;
}

void worker_add_adapter(Worker *w, const char *path) {
    SDL_LockMutex(w->mu);
    int queued = w->n_drops < MAX_DROPS;
    if (queued) w->drops[w->n_drops++] = strdup(path);
    SDL_CondSignal(w->cv);
    SDL_UnlockMutex(w->mu);
    if (!queued) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: more than %d files dropped at once; drop it again", path, MAX_DROPS);
        push_simple(w, WEV_ADAPTER_FAILED, 0, msg, NULL);
    }
}

void worker_stop(Worker *w) {
    if (!w) return;
    SDL_AtomicSet(&w->quit, 1);
    SDL_LockMutex(w->mu);
    SDL_CondSignal(w->cv);
    SDL_UnlockMutex(w->mu);
    SDL_WaitThread(w->thread, NULL);
    for (int i = 0; i < w->n_drops; i++) free(w->drops[i]);
    for (int i = 0; i < w->n_events; i++) worker_event_free(&w->events[i]);
    free(w->events);
    free((char *)w->req.prompt);
    free((char *)w->req.negative);
    SDL_DestroyCond(w->cv);
    SDL_DestroyMutex(w->mu);
    free(w);
}
