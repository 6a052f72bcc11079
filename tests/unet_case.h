/* unet_case.h — one U-Net loss case for the gradient tests (test_unet_grad, test_unet_full_grad,
 * test_adapter): the inputs x, t, ctx and the target, read from a PyTorch fixture, and the MSE loss through
 * the inference forward (what finite differences perturb) or through forward_train + backward. */
#ifndef LS_TEST_UNET_CASE_H
#define LS_TEST_UNET_CASE_H

#include "testutil.h"
#include "unet_bwd.h"

typedef struct {
    float *x, *t, *ctx, *target; /* (B,C,H,W), (B), (B,Tc,Cc), like x */
    int B, H, W, Tc, Cc;
    size_t nout; /* numel of x (= of the output) */
} UNetCase;

/* Read the tensors "x", "t", "ctx" and "target" of a fixture (exits with FAIL when one is missing). */
static inline void unet_case_load(UNetCase *c, const StFile *ref) {
    const StTensor *xm, *cm;
    c->x = fixture_get(ref, "x", &c->nout, &xm);
    c->t = fixture_get(ref, "t", NULL, NULL);
    c->ctx = fixture_get(ref, "ctx", NULL, &cm);
    c->target = fixture_get(ref, "target", NULL, NULL);
    c->B = (int)xm->shape[0], c->H = (int)xm->shape[2], c->W = (int)xm->shape[3];
    c->Tc = (int)cm->shape[1], c->Cc = (int)cm->shape[2];
}

static inline void unet_case_free(UNetCase *c) { free(c->x), free(c->t), free(c->ctx), free(c->target); }

/* Loss of the inference forward; out_copy (optional) gets the output. */
static inline double unet_case_loss(const UNet *u, const UNetCase *c, float *out_copy) {
    float *out = fbuf(c->nout);
    unet_forward(u, out, c->x, c->t, c->ctx, c->B, c->H, c->W, c->Tc);
    double l = unet_mse_loss(NULL, out, c->target, c->nout);
    if (out_copy) memcpy(out_copy, out, c->nout * sizeof(float));
    free(out);
    return l;
}

/* forward_train + backward (parameter gradients ACCUMULATE: the caller zeroes them); returns the loss.
 * out_copy (optional) gets the output, dctx (optional) the context gradient. */
static inline double unet_case_loss_grad(const UNet *u, const UNetCase *c, float *out_copy, float *dctx) {
    UNetActs acts = {0};
    float *out = fbuf(c->nout), *dout = fbuf(c->nout);
    unet_forward_train(u, &acts, out, c->x, c->t, c->ctx, c->B, c->H, c->W, c->Tc);
    double l = unet_mse_loss(dout, out, c->target, c->nout);
    unet_backward(u, &acts, dctx, dout);
    if (out_copy) memcpy(out_copy, out, c->nout * sizeof(float));
    unet_acts_free(&acts);
    free(out);
    free(dout);
    return l;
}

#endif
