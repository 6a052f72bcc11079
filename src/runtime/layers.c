/* layers.c — see layers.h. */
#include "layers.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ls_fmt(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, LS_NAME_MAX, fmt, ap);
    va_end(ap);
}

void linear_build(Linear *l, WeightTable *t, const char *prefix, int in, int out, int bias) {
    memset(l, 0, sizeof *l);
    wt_add_module(t, prefix, MOD_LINEAR, l);
    l->in = in;
    l->out = out;
    int64_t ws[2] = {out, in}, bs[1] = {out};
    wt_add(t, &l->w, WINIT_UNIFORM_FANIN, in, 2, ws, prefix, "weight");
    wt_set_grad(t, &l->dw);
    l->b = NULL;
    if (bias) {
        wt_add(t, &l->b, WINIT_UNIFORM_FANIN, in, 1, bs, prefix, "bias");
        wt_set_grad(t, &l->db);
    }
}

void linear_build_conv1x1(Linear *l, WeightTable *t, const char *prefix, int in, int out) {
    memset(l, 0, sizeof *l);
    wt_add_module(t, prefix, MOD_LINEAR, l);
    l->in = in;
    l->out = out;
    l->conv1x1 = 1;
    int64_t ws[4] = {out, in, 1, 1}, bs[1] = {out};
    wt_add(t, &l->w, WINIT_UNIFORM_FANIN, in, 4, ws, prefix, "weight");
    wt_set_grad(t, &l->dw);
    wt_add(t, &l->b, WINIT_UNIFORM_FANIN, in, 1, bs, prefix, "bias");
    wt_set_grad(t, &l->db);
}

void conv_build(Conv2d *c, WeightTable *t, const char *prefix, int cin, int cout, int k, int stride,
                int pad0, int pad1) {
    memset(c, 0, sizeof *c);
    wt_add_module(t, prefix, MOD_CONV, c);
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad0 = pad0;
    c->pad1 = pad1;
    int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    int64_t fan_in = (int64_t)cin * k * k;
    wt_add(t, &c->w, WINIT_UNIFORM_FANIN, fan_in, 4, ws, prefix, "weight");
    wt_set_grad(t, &c->dw);
    wt_add(t, &c->b, WINIT_UNIFORM_FANIN, fan_in, 1, bs, prefix, "bias");
    wt_set_grad(t, &c->db);
}

void norm_build(Norm *n, WeightTable *t, const char *prefix, int C, int groups, float eps) {
    n->C = C;
    n->groups = groups;
    n->eps = eps;
    int64_t s[1] = {C};
    wt_add(t, &n->g, WINIT_ONES, 0, 1, s, prefix, "weight");
    wt_set_grad(t, &n->dg);
    wt_add(t, &n->b, WINIT_ZEROS, 0, 1, s, prefix, "bias");
    wt_set_grad(t, &n->db);
}

/* Is this hook applied at run time? (unmerged and non-zero strength: strength 0 is exactly the base) */
static int hook_live(const LoraHook *h) { return !h->merged && *h->strength != 0.0f; }

/* y (M,N) ← y + c·up(gelu(down(y))) for one bottleneck adapter */
static void adapter_apply(const LoraHook *h, float *y, int M, int N) {
    float *t = sbuf((size_t)M * h->rank);
    op_linear(t, y, h->down, NULL, M, N, h->rank);                           /* t = y·downᵀ  (M,r) */
    op_gelu_inplace(t, (size_t)M * h->rank);
    op_gemm(y, t, h->up, M, N, h->rank, 0, 1, *h->strength * h->scale, 1.0f); /* y += c·t·upᵀ */
    pool_free(t);
}

/* base output + LoRA updates, without the bottleneck adapters */
static void linear_forward_base(const Linear *l, float *y, const float *x, int M) {
    op_linear(y, x, l->w, l->b, M, l->in, l->out);
    for (const LoraHook *h = l->lora; h; h = h->next) {
        if (!hook_live(h)) continue;
        if (h->delta) { /* y += c·x·deltaᵀ */
            op_gemm(y, x, h->delta, M, l->out, l->in, 0, 1, *h->strength * h->scale, 1.0f);
            continue;
        }
        float *t = sbuf((size_t)M * h->rank);
        op_linear(t, x, h->down, NULL, M, l->in, h->rank);                    /* t = x·downᵀ  (M,r) */
        op_gemm(y, t, h->up, M, l->out, h->rank, 0, 1, *h->strength * h->scale, 1.0f); /* y += c·t·upᵀ */
        pool_free(t);
    }
}

void linear_forward(const Linear *l, float *y, const float *x, int M) {
    linear_forward_base(l, y, x, M);
    for (const LoraHook *h = l->adapter; h; h = h->next)
        if (hook_live(h)) adapter_apply(h, y, M, l->out);
}

void conv_forward(const Conv2d *c, float *y, const float *x, int B, int H, int W, int *Ho, int *Wo) {
    op_conv2d(y, x, c->w, c->b, B, c->cin, H, W, c->cout, c->k, c->stride, c->pad0, c->pad1);
    int ho = op_conv2d_out(H, c->k, c->stride, c->pad0, c->pad1);
    int wo = op_conv2d_out(W, c->k, c->stride, c->pad0, c->pad1);
    for (const LoraHook *h = c->lora; h; h = h->next) {
        if (!hook_live(h)) continue;
        size_t hw = (size_t)ho * wo;
        if (h->delta) { /* y += c·conv(x, delta) */
            size_t ny = (size_t)B * c->cout * hw;
            float *t = sbuf(ny);
            op_conv2d(t, x, h->delta, NULL, B, c->cin, H, W, c->cout, c->k, c->stride, c->pad0, c->pad1);
            op_axpy(y, *h->strength * h->scale, t, ny);
            pool_free(t);
            continue;
        }
        float *t = sbuf((size_t)B * h->rank * hw);
        op_conv2d(t, x, h->down, NULL, B, c->cin, H, W, h->rank, c->k, c->stride, c->pad0, c->pad1);
        for (int b = 0; b < B; b++) /* y[b] (cout,HW) += c · up (cout,r) · t[b] (r,HW) */
            op_gemm(y + (size_t)b * c->cout * hw, h->up, t + (size_t)b * h->rank * hw, c->cout, (int)hw,
                    h->rank, 0, 0, *h->strength * h->scale, 1.0f);
        pool_free(t);
    }
    if (Ho) *Ho = ho;
    if (Wo) *Wo = wo;
}

/* ---------------- backward (training) ---------------- */

/* Does this hook take part in the backward's parameter gradients? */
static int hook_trainable(const LoraHook *h) { return hook_live(h) && (h->ddown || h->dup); }

int linear_needs_input(const Linear *l) {
    if (l->dw) return 1;
    for (const LoraHook *h = l->adapter; h; h = h->next)
        if (hook_live(h)) return 1;
    for (const LoraHook *h = l->lora; h; h = h->next)
        if (hook_trainable(h)) return 1;
    return 0;
}

int conv_needs_input(const Conv2d *c) {
    if (c->dw) return 1;
    for (const LoraHook *h = c->lora; h; h = h->next)
        if (hook_trainable(h)) return 1;
    return 0;
}

/* One bottleneck adapter's backward (layers.h): y (M,N) its input, g (M,N) on entry ∂loss/∂(its output),
 * on return ∂loss/∂y; ddown/dup += when present. */
static void adapter_backward(const LoraHook *h, float *g, const float *y, int M, int N) {
    int r = h->rank;
    float c = *h->strength * h->scale;
    float *t = sbuf((size_t)M * r), *a = sbuf((size_t)M * r), *dt = sbuf((size_t)M * r);
    op_linear(t, y, h->down, NULL, M, N, r);                           /* t (M,r) = y·downᵀ */
    memcpy(a, t, (size_t)M * r * sizeof(float));
    op_gelu_inplace(a, (size_t)M * r);                                 /* a = gelu(t) */
    if (h->dup) op_gemm(h->dup, g, a, N, r, M, 1, 0, c, 1.0f);         /* dup (N,r) += c·gᵀ·a */
    op_gemm(a, g, h->up, M, r, N, 0, 0, c, 0.0f);                      /* da (M,r) = c·g·up (into a) */
    op_gelu_backward(dt, a, t, (size_t)M * r);                         /* dt = gelu'(t) ⊙ da */
    if (h->ddown) op_gemm(h->ddown, dt, y, r, N, M, 1, 0, 1.0f, 1.0f); /* ddown (r,N) += dtᵀ·y */
    op_gemm(g, dt, h->down, M, N, r, 0, 0, 1.0f, 1.0f);                /* g += dt·down */
    pool_free(t);
    pool_free(a);
    pool_free(dt);
}

/* The gradient at the base+LoRA output: dy itself without live bottleneck adapters, else a new pool buffer
 * the caller gives back (the adapters' backwards, last first, on outputs recomputed from x). */
static float *adapters_backward(const Linear *l, const float *dy, const float *x, int M) {
    int n = 0, N = l->out;
    for (const LoraHook *h = l->adapter; h; h = h->next) n += hook_live(h);
    if (n == 0) return (float *)dy;
    const LoraHook **hs = pool_alloc((size_t)n * sizeof *hs);
    float **ys = pool_alloc((size_t)n * sizeof *ys); /* ys[k] = the input of live adapter k */
    n = 0;
    for (const LoraHook *h = l->adapter; h; h = h->next)
        if (hook_live(h)) hs[n++] = h;
    size_t ny = (size_t)M * N;
    ys[0] = sbuf(ny);
    linear_forward_base(l, ys[0], x, M);
    for (int k = 1; k < n; k++) {
        ys[k] = sbuf(ny);
        memcpy(ys[k], ys[k - 1], ny * sizeof(float));
        adapter_apply(hs[k - 1], ys[k], M, N);
    }
    float *g = sbuf(ny);
    memcpy(g, dy, ny * sizeof(float));
    for (int k = n - 1; k >= 0; k--) {
        adapter_backward(hs[k], g, ys[k], M, N);
        pool_free(ys[k]);
    }
    pool_free(hs);
    pool_free(ys);
    return g;
}

void linear_backward(const Linear *l, float *dx, const float *dy_out, const float *x, int M) {
    int K = l->in, N = l->out;
    float *dyb = adapters_backward(l, dy_out, x, M);
    const float *dy = dyb;
    /* base: dx = dy·w (overwrites); dw, db only for full fine-tuning (NULL: frozen, skipped) */
    op_linear_backward(dx, l->dw, l->db, dy, x, l->w, M, K, N);
    for (const LoraHook *h = l->lora; h; h = h->next) {
        if (!hook_live(h) || (!dx && !hook_trainable(h))) continue;
        int r = h->rank;
        float c = *h->strength * h->scale;
        if (h->delta) { /* full ΔW: dx += c·dy·delta (no parameter gradients) */
            op_gemm(dx, dy, h->delta, M, K, N, 0, 0, c, 1.0f);
            continue;
        }
        float *dt = sbuf((size_t)M * r);
        op_gemm(dt, dy, h->up, M, r, N, 0, 0, c, 0.0f);             /* dt (M,r) = c·dy (M,N)·up (N,r) */
        if (h->dup) {
            float *t = sbuf((size_t)M * r);
            op_linear(t, x, h->down, NULL, M, K, r);                  /* t (M,r) = x·downᵀ (recomputed) */
            op_gemm(h->dup, dy, t, N, r, M, 1, 0, c, 1.0f);           /* dup (N,r) += c·dyᵀ·t */
            pool_free(t);
        }
        if (h->ddown) op_gemm(h->ddown, dt, x, r, K, M, 1, 0, 1.0f, 1.0f); /* ddown (r,K) += dtᵀ·x */
        if (dx) op_gemm(dx, dt, h->down, M, K, r, 0, 0, 1.0f, 1.0f);       /* dx (M,K) += dt·down */
        pool_free(dt);
    }
    if (dyb != dy_out) pool_free(dyb);
}

void conv_backward(const Conv2d *c, float *dx, const float *dy, const float *x, int B, int H, int W) {
    int ho = op_conv2d_out(H, c->k, c->stride, c->pad0, c->pad1);
    int wo = op_conv2d_out(W, c->k, c->stride, c->pad0, c->pad1);
    size_t hw = (size_t)ho * wo, nx = (size_t)B * c->cin * H * W;
    op_conv2d_backward(dx, c->dw, c->db, dy, x, c->w, B, c->cin, H, W, c->cout, c->k, c->stride, c->pad0,
                       c->pad1);
    for (const LoraHook *h = c->lora; h; h = h->next) {
        if (!hook_live(h) || (!dx && !hook_trainable(h))) continue;
        int r = h->rank;
        float cs = *h->strength * h->scale;
        if (h->delta) { /* full ΔW: dx += c·(input gradient of conv(x, delta)) */
            size_t ny = (size_t)B * c->cout * hw;
            float *g = sbuf(ny), *dxl = sbuf(nx);
            for (size_t i = 0; i < ny; i++) g[i] = cs * dy[i];
            op_conv2d_backward(dxl, NULL, NULL, g, x, h->delta, B, c->cin, H, W, c->cout, c->k, c->stride,
                               c->pad0, c->pad1);
            op_add_inplace(dx, dxl, nx);
            pool_free(g);
            pool_free(dxl);
            continue;
        }
        float *dt = sbuf((size_t)B * r * hw); /* (B,r,Ho,Wo): gradient at the down conv's output */
        for (int b = 0; b < B; b++) /* dt[b] (r,HW) = c · up (cout,r)ᵀ · dy[b] (cout,HW) */
            op_gemm(dt + (size_t)b * r * hw, h->up, dy + (size_t)b * c->cout * hw, r, (int)hw, c->cout, 1,
                    0, cs, 0.0f);
        if (h->dup) {
            float *t = sbuf((size_t)B * r * hw); /* t = down(x), recomputed */
            op_conv2d(t, x, h->down, NULL, B, c->cin, H, W, r, c->k, c->stride, c->pad0, c->pad1);
            for (int b = 0; b < B; b++) /* dup (cout,r) += c · dy[b] (cout,HW) · t[b] (r,HW)ᵀ */
                op_gemm(h->dup, dy + (size_t)b * c->cout * hw, t + (size_t)b * r * hw, c->cout, r, (int)hw,
                        0, 1, cs, 1.0f);
            pool_free(t);
        }
        /* through the k×k down conv: ddown += its weight gradient, dx += its input gradient */
        float *dxl = dx ? sbuf(nx) : NULL;
        op_conv2d_backward(dxl, h->ddown, NULL, dt, x, h->down, B, c->cin, H, W, r, c->k, c->stride,
                           c->pad0, c->pad1);
        if (dxl) op_add_inplace(dx, dxl, nx);
        pool_free(dxl);
        pool_free(dt);
    }
}

int layers_full_grads_alloc(WeightTable *t, TrainSet *ts, const char *what) {
    for (int i = 0; i < t->n_mods; i++) { /* a merged adapter's weights are a modified copy */
        const ModuleSpec *s = &t->mods[i];
        const float *base = s->kind == MOD_LINEAR ? ((const Linear *)s->layer)->w_base
                                                  : ((const Conv2d *)s->layer)->w_base;
        if (base)
            return ls_set_error("%s module %s has a merged adapter: training it needs the plain base weights", what,
                                s->name);
    }
    if (wt_make_writable(t) < 0 || wt_grads_alloc(t) < 0) return ls_error_context("%s", what);
    for (int i = 0; i < t->n; i++)
        trainset_add(ts, t->v[i].name, *t->v[i].ptr, *t->v[i].gptr, (size_t)t->v[i].numel);
    return LS_OK;
}
