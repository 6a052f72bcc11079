/* layers.c — see layers.h. */
#include "layers.h"

#include <stdarg.h>
#include <stdio.h>

void ls_fmt(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, LS_NAME_MAX, fmt, ap);
    va_end(ap);
}

void linear_build(Linear *l, WeightTable *t, const char *prefix, int in, int out, int bias) {
    l->in = in;
    l->out = out;
    int64_t ws[2] = {out, in}, bs[1] = {out};
    wt_add(t, &l->w, WINIT_UNIFORM_FANIN, in, 2, ws, prefix, "weight");
    l->b = NULL;
    if (bias) wt_add(t, &l->b, WINIT_UNIFORM_FANIN, in, 1, bs, prefix, "bias");
}

void linear_build_conv1x1(Linear *l, WeightTable *t, const char *prefix, int in, int out) {
    l->in = in;
    l->out = out;
    int64_t ws[4] = {out, in, 1, 1}, bs[1] = {out};
    wt_add(t, &l->w, WINIT_UNIFORM_FANIN, in, 4, ws, prefix, "weight");
    wt_add(t, &l->b, WINIT_UNIFORM_FANIN, in, 1, bs, prefix, "bias");
}

void conv_build(Conv2d *c, WeightTable *t, const char *prefix, int cin, int cout, int k, int stride,
                int pad0, int pad1) {
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad0 = pad0;
    c->pad1 = pad1;
    int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    int64_t fan_in = (int64_t)cin * k * k;
    wt_add(t, &c->w, WINIT_UNIFORM_FANIN, fan_in, 4, ws, prefix, "weight");
    wt_add(t, &c->b, WINIT_UNIFORM_FANIN, fan_in, 1, bs, prefix, "bias");
}

void norm_build(Norm *n, WeightTable *t, const char *prefix, int C, int groups, float eps) {
    n->C = C;
    n->groups = groups;
    n->eps = eps;
    int64_t s[1] = {C};
    wt_add(t, &n->g, WINIT_ONES, 0, 1, s, prefix, "weight");
    wt_add(t, &n->b, WINIT_ZEROS, 0, 1, s, prefix, "bias");
}

void conv_forward(const Conv2d *c, float *y, const float *x, int B, int H, int W, int *Ho, int *Wo) {
    op_conv2d(y, x, c->w, c->b, B, c->cin, H, W, c->cout, c->k, c->stride, c->pad0, c->pad1);
    if (Ho) *Ho = op_conv2d_out(H, c->k, c->stride, c->pad0, c->pad1);
    if (Wo) *Wo = op_conv2d_out(W, c->k, c->stride, c->pad0, c->pad1);
}
