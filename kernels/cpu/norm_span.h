/* norm_span.h — the vectorised GroupNorm/LayerNorm pieces of norm.c, shared with the training variants
 * in norm_bwd.c (private to kernels/cpu). */
#ifndef LS_NORM_SPAN_H
#define LS_NORM_SPAN_H

#include <stddef.h>

/* mean and 1/sqrt(var + eps) of n floats (biased variance), two-pass, accumulated in double */
void norm_moments(const float *x, size_t n, float eps, double *mean_out, double *rstd_out);
/* y (n) = (x - m)*s + t, then silu if asked */
void norm_affine_span(float *y, const float *x, int n, float m, float s, float t, int silu);
/* one LayerNorm row: y (D) = (x - m)·rs·gamma + beta */
void norm_layernorm_row(float *y, const float *x, const float *gamma, const float *beta, int D, float m,
                        float rs);

#endif
