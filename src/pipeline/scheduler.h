/* scheduler.h — noise schedule and samplers (== diffusers DDIMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler with dpmsolver++ order 2).
 *
 * Usage (txt2img):
 *   Sampler s; sampler_init(&s, &cfg, SAMPLER_EULER, steps, karras);
 *   x = noise * s.init_noise_sigma;
 *   for i in 0..s.n-1:  xin = sampler_scale_input(s, i, x); eps = unet(xin, s.timesteps[i]);
 *                       sampler_step(&s, i, x, eps, n, noise_i)   // noise_i only if sampler_needs_noise()
 */
#ifndef LS_SCHEDULER_H
#define LS_SCHEDULER_H

#include <stddef.h>

#define SCHED_MAX_TRAIN_T 1000
#define SCHED_MAX_STEPS 1000

typedef enum { SAMPLER_DDIM, SAMPLER_EULER, SAMPLER_EULER_A, SAMPLER_DPMPP_2M, SAMPLER_COUNT } SamplerKind;
typedef enum { PRED_EPSILON, PRED_V } PredictionType;

/* Short CLI names: "ddim", "euler", "euler_a", "dpmpp_2m". */
const char *sampler_name(SamplerKind k);
/* A1111-style display name, e.g. "Euler a", "DPM++ 2M Karras" (with karras; labels and messages). PNG
 * metadata writes A1111 >= 1.9's form instead: "Sampler: " sampler_display_name(k, 0) ", Schedule type: "
 * "Karras" or "Automatic". */
const char *sampler_display_name(SamplerKind k, int karras);
/* The inverse, from PNG metadata: A1111's sampler name ("DPM++ 2M", or the old combined "DPM++ 2M Karras")
 * and "Schedule type" ("Karras", "Automatic", or NULL/"" when absent), case-insensitive. LS_ERR naming the
 * sampler or schedule lorastyle does not have. */
int sampler_from_display_name(const char *sampler, const char *schedule, SamplerKind *k, int *karras);
/* Parses short names (case-insensitive; also accepts "dpmpp_2m_karras" and "euler_karras" → karras=1).
 * LS_ERR if unknown, with a message listing the valid names. */
int sampler_from_name(const char *name, SamplerKind *k, int *karras);

/* scheduler_config.json (fields absent from the file take the SD1.5 values below). */
typedef struct {
    int num_train_timesteps;     /* 1000 */
    float beta_start, beta_end;  /* 0.00085, 0.012 */
    int scaled_linear;           /* beta_schedule: 1 = "scaled_linear", 0 = "linear" */
    int steps_offset;            /* 1 */
    int set_alpha_to_one;        /* 0 */
    PredictionType prediction;   /* epsilon */
    char timestep_spacing[16];   /* "" = each sampler's own default (leading for DDIM, linspace else) */
    int rescale_zero_snr;        /* rescale_betas_zero_snr: ᾱ_T = 0 (Lin et al. 2023, Algorithm 1); 0 */
} SchedConfig;

void sched_config_default(SchedConfig *c);
/* Read path (a scheduler_config.json); missing keys keep defaults. LS_ERR on malformed JSON/values. */
int sched_config_load(SchedConfig *c, const char *path);

/* fp32 β / ᾱ tables as diffusers computes them (torch.linspace in float32, sequential cumprod), with
 * rescale_betas_zero_snr applied when set (then ᾱ[T−1] = 0 exactly). */
void sched_alphas_cumprod(const SchedConfig *c, float *alphas_cumprod /* num_train_timesteps */);

typedef struct {
    SamplerKind kind;
    int karras;
    SchedConfig cfg;
    int n;                                  /* number of steps */
    float alphas_cumprod[SCHED_MAX_TRAIN_T];
    float timesteps[SCHED_MAX_STEPS];       /* model timestep per step (float: Euler may be fractional) */
    float sigmas[SCHED_MAX_STEPS + 1];      /* Euler/DPM sigmas, sigmas[n] = 0 */
    float init_noise_sigma;
    /* multistep state (DPM++ 2M): previous data prediction */
    float *prev_x0;                         /* (prev_n) D of step prev_step; malloc'd on first DPM step */
    size_t prev_n;
    int prev_step;                          /* step whose D is in prev_x0, −1 if none (→ first order) */
} Sampler;

/* Zeroes *s and fills the tables; call sampler_free before re-initializing a used Sampler. LS_ERR for steps
 * outside [1, num_train_timesteps], karras with ddim/euler_a, or a bad spacing. */
int sampler_init(Sampler *s, const SchedConfig *c, SamplerKind kind, int steps, int karras);
void sampler_free(Sampler *s);
/* xin = x scaled for the model at step i (Euler family: x/sqrt(σ²+1); others: copy). */
void sampler_scale_input(const Sampler *s, int i, float *xin, const float *x, size_t n);
/* 1 if sampler_step needs a fresh N(0,1) noise tensor (Euler ancestral). */
int sampler_needs_noise(const Sampler *s);
/* One denoising step in place: x ← step(model_out, timesteps[i], x). noise: n values or NULL. */
void sampler_step(Sampler *s, int i, float *x, const float *model_out, size_t n, const float *noise);

#endif
