/* worker.h — the viewer's render thread. It owns the model session (GenSession with its adapters attached
 * unmerged) from worker_start to worker_stop: every model operation — rendering, setting adapter strengths,
 * loading dropped adapters — happens on this thread, so the UI thread never waits for the model.
 *
 * Requests: the UI posts the full settings (ViewRequest); only the newest one matters. Posting while a
 * render runs cancels it at the next step (GenParams.cancel), and the worker starts on the newest request.
 * Results come back as events, polled by the UI each frame (the worker also pushes an SDL user event to
 * wake an idle UI): progress, previews (the current x̂0 decoded every few steps), the finished image with
 * its A1111 parameters text, failures, adapters loaded or refused.
 */
#ifndef LS_GUI_WORKER_H
#define LS_GUI_WORKER_H

#include <stdint.h>

#include "lorastyle.h" // defines: GenSession, LS_MAX_LORAS

typedef struct {
    const char *prompt, *negative; /* copied by worker_request */
    float strength[LS_MAX_LORAS];  /* per adapter, U-Net and text encoder alike (A1111 <lora:NAME:S>) */
    int n_strength;                /* adapters the UI knows about; later ones keep their strength */
    int steps;
    float cfg;
    SamplerKind sampler;
    int karras;
    uint64_t seed;
} ViewRequest;

typedef enum {
    WEV_PROGRESS,       /* step/total of request id */
    WEV_PREVIEW,        /* img: the current estimate of the final image (after `step` steps) */
    WEV_IMAGE,          /* img: the finished image; text: its "parameters" text; render_s */
    WEV_FAILED,         /* text: why the render failed (the app keeps running) */
    WEV_ADAPTER,        /* text: the adapter's name; detail: format and modules; it has index `step` */
    WEV_ADAPTER_FAILED, /* text: why a dropped file was refused */
} WevKind;

typedef struct {
    WevKind kind;
    uint64_t id;        /* request id (0 for adapter events) */
    int step, total;
    Image img;          /* owned */
    char *text;         /* owned */
    char *detail;       /* owned */
    double render_s;    /* WEV_IMAGE: seconds of pipeline_generate */
    int full_preview;   /* WEV_PREVIEW: 1 = VAE-decoded, 0 = cheap latent approximation */
} WorkerEvent;

typedef struct Worker Worker;

/* Start the thread on an opened session (adapters attached, not merged). base supplies everything a
 * request does not (size, clip skip, init latent). wake_event: SDL event type pushed when events are
 * queued (0: none). NULL + ls_set_error on failure. */
Worker *worker_start(GenSession *s, const GenParams *base, int lenient, uint32_t wake_event);
/* Post the newest settings (copied); cancels any older render. Returns the request id (1, 2, ...). */
uint64_t worker_request(Worker *w, const ViewRequest *rq);
/* Queue an adapter file to load and attach (at strength 1) between renders. */
void worker_add_adapter(Worker *w, const char *path);
/* Pop the oldest event: 1 if one was returned (free it with worker_event_free), 0 if none. */
int worker_poll(Worker *w, WorkerEvent *ev);
void worker_event_free(WorkerEvent *ev);
/* 1 while anything is queued or running, or events wait to be polled. */
int worker_busy(Worker *w);
/* Cancel, join the thread and free the worker (the session stays open: close it after). */
void worker_stop(Worker *w);

/* A cheap preview of latents (C, h, w) without the VAE: a fixed linear map of the 4 SD latent channels to
 * RGB (other channel counts: channel 0 as gray), each latent pixel drawn as an f×f block. */
void worker_latent_preview(Image *img, const float *x0, int C, int h, int w, int f);

#endif
