/* scheduler.c — noise schedule, timestep spacing and the four samplers (see scheduler.h).
 *
 * Reference: diffusers 0.42.1 DDIMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and
 * DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint), as built by `Class.from_config(pndm.config)`
 * from SD1.5's scheduler_config.json (sd1-reference.md §1.4, §5). The arithmetic mirrors diffusers' dtypes:
 *   - tables (β, ᾱ, σ) and every per-step coefficient are float32, as torch computes them on 0-d tensors;
 *   - timestep spacing and Karras sigmas are float64, as numpy computes them, rounded to float32 at the end;
 *   - the per-element updates keep diffusers' operation order, so results agree to a few ulp.
 * tests/test_scheduler.c checks all of it against tests/fixtures/scheduler.safetensors
 * (tests/gen_scheduler_fixtures.py).
 */
#include "scheduler.h" // defines: Sampler, SchedConfig, sampler_*, sched_*

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "common.h" // defines: ls_set_error, mallocCheck, LS_ASSERT
#include "ops.h"    // defines: op_sampler_step, op_divide (the element loops of each step)

/* ------------------------------------------------------------------------------------------------------ */
/* Names */

static const char *const k_names[SAMPLER_COUNT] = {"ddim", "euler", "euler_a", "dpmpp_2m"};
static const char *const k_display[SAMPLER_COUNT] = {"DDIM", "Euler", "Euler a", "DPM++ 2M"};

/* Karras sigmas exist for these two (diffusers: use_karras_sigmas on Euler and DPM-Solver). */
static int supports_karras(SamplerKind k) { return k == SAMPLER_EULER || k == SAMPLER_DPMPP_2M; }

const char *sampler_name(SamplerKind k) { return (unsigned)k < SAMPLER_COUNT ? k_names[k] : "?"; }

const char *sampler_display_name(SamplerKind k, int karras) {
    if ((unsigned)k >= SAMPLER_COUNT) return "?";
    if (karras && k == SAMPLER_EULER) return "Euler Karras";
    if (karras && k == SAMPLER_DPMPP_2M) return "DPM++ 2M Karras";
    return k_display[k];
}

int sampler_from_display_name(const char *sampler, const char *schedule, SamplerKind *k, int *karras) {
    char name[64];
    snprintf(name, sizeof name, "%s", sampler ? sampler : "");
    size_t n = strlen(name);
    int old_karras = n > 7 && !strcasecmp(name + n - 7, " Karras"); /* "DPM++ 2M Karras": A1111 < 1.9 */
    if (old_karras) name[n - 7] = 0;
    int want = old_karras;
    if (schedule && !strcasecmp(schedule, "Karras")) want = 1;
    else if (schedule && *schedule && strcasecmp(schedule, "Automatic"))
        return ls_set_error("schedule type '%s' is not available (lorastyle has Automatic and Karras)", schedule);
    for (int i = 0; i < SAMPLER_COUNT; i++) {
        if (strcasecmp(name, k_display[i])) continue;
        if (want && !supports_karras((SamplerKind)i))
            return ls_set_error("sampler '%s' with the Karras schedule is not available (Karras: Euler, DPM++ 2M)",
                                k_display[i]);
        *k = (SamplerKind)i;
        *karras = want;
        return LS_OK;
    }
    return ls_set_error("sampler '%s' is not available (lorastyle has DDIM, Euler, Euler a, DPM++ 2M)",
                        sampler ? sampler : "");
}

int sampler_from_name(const char *name, SamplerKind *k, int *karras) {
    static const char suffix[] = "_karras";
    if (!name) return ls_set_error("no sampler name given");
    size_t len = strlen(name), slen = sizeof suffix - 1;
    int want_karras = len > slen && strcasecmp(name + len - slen, suffix) == 0;
    size_t base_len = want_karras ? len - slen : len;
    for (int i = 0; i < SAMPLER_COUNT; i++) {
        if (strlen(k_names[i]) != base_len || strncasecmp(name, k_names[i], base_len) != 0) continue;
        if (want_karras && !supports_karras((SamplerKind)i)) break;
        *k = (SamplerKind)i;
        *karras = want_karras;
        return LS_OK;
    }
    return ls_set_error("unknown sampler '%s' (valid: ddim, euler, euler_karras, euler_a, dpmpp_2m, "
                        "dpmpp_2m_karras)", name);
}

/* ------------------------------------------------------------------------------------------------------ */
/* Config */

void sched_config_default(SchedConfig *c) {
    memset(c, 0, sizeof *c);
    c->num_train_timesteps = 1000;
    c->beta_start = 0.00085f;
    c->beta_end = 0.012f;
    c->scaled_linear = 1;
    c->steps_offset = 1;
    c->set_alpha_to_one = 0;
    c->prediction = PRED_EPSILON;
    c->timestep_spacing[0] = 0;
}

/* Item `key` of the JSON object, or NULL when absent, null, or listed in "_use_default_values" (diffusers
 * drops such keys when another class is built from the config, so the class default applies). */
static const cJSON *cfg_item(const cJSON *root, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return NULL;
    const cJSON *defaults = cJSON_GetObjectItemCaseSensitive(root, "_use_default_values");
    const cJSON *d;
    cJSON_ArrayForEach(d, defaults) {
        if (cJSON_IsString(d) && strcmp(d->valuestring, key) == 0) return NULL;
    }
    return it;
}

static int cfg_int(const cJSON *root, const char *key, const char *path, int lo, int hi, int *out) {
    const cJSON *it = cfg_item(root, key);
    if (!it) return LS_OK;
    double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(v == floor(v)) || v < lo || v > hi)
        return ls_set_error("%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)v;
    return LS_OK;
}

static int cfg_float(const cJSON *root, const char *key, const char *path, float *out) {
    const cJSON *it = cfg_item(root, key);
    if (!it) return LS_OK;
    if (!cJSON_IsNumber(it) || !(it->valuedouble > 0 && it->valuedouble < 1))
        return ls_set_error("%s: \"%s\" must be a number in (0, 1)", path, key);
    *out = (float)it->valuedouble;
    return LS_OK;
}

static int cfg_bool(const cJSON *root, const char *key, const char *path, int *out) {
    const cJSON *it = cfg_item(root, key);
    if (!it) return LS_OK;
    if (!cJSON_IsBool(it)) return ls_set_error("%s: \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return LS_OK;
}

/* String value that must be one of `allowed` (NULL-terminated); returns its index in *out. */
static int cfg_enum(const cJSON *root, const char *key, const char *path, const char *const *allowed,
                    int *out) {
    const cJSON *it = cfg_item(root, key);
    if (!it) return LS_OK;
    if (!cJSON_IsString(it)) return ls_set_error("%s: \"%s\" must be a string", path, key);
    for (int i = 0; allowed[i]; i++) {
        if (strcmp(it->valuestring, allowed[i]) == 0) {
            *out = i;
            return LS_OK;
        }
    }
    return ls_set_error("%s: unsupported %s \"%s\"", path, key, it->valuestring);
}

static int config_from_json(SchedConfig *c, const cJSON *root, const char *path) {
    static const char *const schedules[] = {"linear", "scaled_linear", NULL};
    static const char *const preds[] = {"epsilon", "v_prediction", NULL};
    static const char *const spacings[] = {"leading", "linspace", "trailing", NULL};
    int sched = c->scaled_linear, pred = c->prediction == PRED_V, spacing = -1, flag = 0;
    LS_TRY(cfg_int(root, "num_train_timesteps", path, 2, SCHED_MAX_TRAIN_T, &c->num_train_timesteps));
    LS_TRY(cfg_float(root, "beta_start", path, &c->beta_start));
    LS_TRY(cfg_float(root, "beta_end", path, &c->beta_end));
    LS_TRY(cfg_enum(root, "beta_schedule", path, schedules, &sched));
    LS_TRY(cfg_int(root, "steps_offset", path, 0, SCHED_MAX_TRAIN_T, &c->steps_offset));
    LS_TRY(cfg_bool(root, "set_alpha_to_one", path, &c->set_alpha_to_one));
    LS_TRY(cfg_enum(root, "prediction_type", path, preds, &pred));
    LS_TRY(cfg_enum(root, "timestep_spacing", path, spacings, &spacing));
    c->scaled_linear = sched;
    c->prediction = pred ? PRED_V : PRED_EPSILON;
    if (spacing >= 0) snprintf(c->timestep_spacing, sizeof c->timestep_spacing, "%s", spacings[spacing]);
    /* Options that would change the math and that SD1.x/2.x files leave off. */
    if (cfg_item(root, "trained_betas")) return ls_set_error("%s: \"trained_betas\" is not supported", path);
    LS_TRY(cfg_bool(root, "rescale_betas_zero_snr", path, &c->rescale_zero_snr));
    if (c->rescale_zero_snr && c->prediction == PRED_EPSILON)
        ls_warn("%s: rescale_betas_zero_snr with epsilon prediction: the last timestep (pure noise) cannot be "
                "sampled; zero-terminal-SNR models use \"prediction_type\": \"v_prediction\"", path);
    LS_TRY(cfg_bool(root, "clip_sample", path, &flag));
    if (flag) ls_warn("%s: clip_sample is ignored (no clipping of the predicted x0)", path);
    return LS_OK;
}

int sched_config_load(SchedConfig *c, const char *path) {
    size_t len;
    char *text = ls_read_file(path, &len);
    if (!text) return LS_ERR;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ls_set_error("%s: not a JSON object", path);
    }
    SchedConfig tmp = *c; /* on error *c is left untouched */
    int rc = config_from_json(&tmp, root, path);
    cJSON_Delete(root);
    if (rc == LS_OK) *c = tmp;
    return rc;
}

/* ------------------------------------------------------------------------------------------------------ */
/* Tables */

/* torch.linspace(start, end, T, dtype=float32) on CPU: a float step, the first half counted up from start
 * and the second half down from end, each element with one rounding (the kernel's fused multiply-add). */
static float torch_linspace_f32(float start, float end, int T, int i) {
    float step = (end - start) / (float)(T - 1);
    if (i < T / 2) return fmaf(step, (float)i, start);
    return fmaf(-step, (float)(T - 1 - i), end);
}

/* The decimal a float config value was written as (shortest "%.Ng" that reads back to the same float),
 * as a double: diffusers takes beta_start**0.5 of the Python (double) value, and sqrt of the float
 * 0.00085f instead would move √β by an ulp. Exact for any value written with ≤ 7 significant digits. */
static double float_as_written(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

void sched_alphas_cumprod(const SchedConfig *c, float *alphas_cumprod) {
    int T = c->num_train_timesteps;
    /* scaled_linear: linspace over sqrt(β) in float32, then square (== diffusers) */
    float b0 = c->scaled_linear ? (float)sqrt(float_as_written(c->beta_start)) : c->beta_start;
    float b1 = c->scaled_linear ? (float)sqrt(float_as_written(c->beta_end)) : c->beta_end;
    double acc = 1.0; /* torch.cumprod on CPU accumulates in double (acc_type<float>), rounding each output */
    for (int t = 0; t < T; t++) {
        float b = torch_linspace_f32(b0, b1, T, t);
        if (c->scaled_linear) b = b * b;
        acc *= (double)(1.0f - b);
        alphas_cumprod[t] = (float)acc;
    }
    if (!c->rescale_zero_snr) return;
    /* rescale_zero_terminal_snr (float32 tensors as diffusers): √ᾱ shifted so its last value is 0 and
     * scaled so its first stays; ᾱ = (√ᾱ)²; α_t = ᾱ_t/ᾱ_{t−1} (α_0 = ᾱ_0); β = 1 − α; then the cumprod
     * again from the new β. */
    float s0 = sqrtf(alphas_cumprod[0]), sT = sqrtf(alphas_cumprod[T - 1]);
    float k = s0 / (s0 - sT), prev = 0.0f;
    acc = 1.0;
    for (int t = 0; t < T; t++) {
        float sq = (sqrtf(alphas_cumprod[t]) - sT) * k, ab = sq * sq;
        float alpha = t == 0 ? ab : ab / prev, beta = 1.0f - alpha;
        prev = ab;
        acc *= (double)(1.0f - beta);
        alphas_cumprod[t] = (float)acc;
    }
}

/* σ(t) = sqrt((1−ᾱ)/ᾱ) in float32 (diffusers' sigma table, ascending in t). */
static float sigma_of_ac(float ac) { return sqrtf((1.0f - ac) / ac); }

/* ------------------------------------------------------------------------------------------------------ */
/* Timestep spacing (sd1-reference.md §5.2). All in double like numpy; x.round() is half-to-even. */

static double round_even(double x) { return nearbyint(x); } /* default FE_TONEAREST */

/* numpy.linspace(0, stop, num)[i]: i·(stop/(num−1)), the last element exactly stop; [0] when num == 1. */
static double np_linspace(double stop, int num, int i) {
    if (num == 1) return 0.0;
    if (i == num - 1) return stop;
    return (double)i * (stop / (double)(num - 1));
}

/* numpy.arange(T, 0, -T/n)[i]: numpy fills start + i·delta with delta = (start + step) − start. */
static double np_arange_trailing(int T, int n, int i) {
    double step = -(double)T / (double)n;
    double delta = ((double)T + step) - (double)T;
    return (double)T + (double)i * delta;
}

/* DDIM (and the integer part of DPM) timesteps, descending. */
static void timesteps_ddim(const char *spacing, int T, int n, int offset, float *ts) {
    for (int k = 0; k < n; k++) {
        double t;
        if (!strcmp(spacing, "linspace")) t = round_even(np_linspace(T - 1, n, n - 1 - k));
        else if (!strcmp(spacing, "trailing")) t = round_even(np_arange_trailing(T, n, k)) - 1;
        else t = (double)((n - 1 - k) * (T / n) + offset); /* leading */
        ts[k] = (float)t;
    }
}

/* Euler / Euler ancestral: linspace keeps float32 fractions. */
static void timesteps_euler(const char *spacing, int T, int n, int offset, float *ts) {
    for (int k = 0; k < n; k++) {
        if (!strcmp(spacing, "linspace")) ts[k] = (float)np_linspace(T - 1, n, n - 1 - k);
        else if (!strcmp(spacing, "trailing")) ts[k] = (float)round_even(np_arange_trailing(T, n, k)) - 1.0f;
        else ts[k] = (float)((n - 1 - k) * (T / n)) + (float)offset; /* leading */
    }
}

/* DPM-Solver: linspace over n+1 points and leading with ratio T div (n+1), both dropping the final 0. */
static void timesteps_dpm(const char *spacing, int T, int n, int offset, float *ts) {
    for (int k = 0; k < n; k++) {
        if (!strcmp(spacing, "linspace")) ts[k] = (float)round_even(np_linspace(T - 1, n + 1, n - k));
        else if (!strcmp(spacing, "trailing")) ts[k] = (float)(round_even(np_arange_trailing(T, n, k)) - 1);
        else ts[k] = (float)((n - k) * (T / (n + 1)) + offset); /* leading */
    }
}

/* np.interp(t, arange(T), σ_table) in double (numpy: slope·(x − x_j) + y_j, exact at grid points). */
static double sigma_interp(const float *sig, int T, double t) {
    if (t <= 0) return sig[0];
    if (t >= T - 1) return sig[T - 1];
    int j = (int)floor(t);
    if (t == (double)j) return sig[j];
    double slope = (double)sig[j + 1] - (double)sig[j];
    return slope * (t - (double)j) + (double)sig[j];
}

/* diffusers _sigma_to_t: the last table index whose log σ is ≤ log σ (0 if none, at most T−2), then
 * linear interpolation in log σ, with the weight clipped to [0, 1]. log_sig is float32 like numpy's. */
static double sigma_to_t(double sigma, const float *log_sig, int T) {
    double ls = log(fmax(sigma, 1e-10));
    int lo = 0;
    for (int i = 0; i < T; i++)
        if (ls - (double)log_sig[i] >= 0) lo = i;
    if (lo > T - 2) lo = T - 2;
    float low = log_sig[lo], high = log_sig[lo + 1];
    double w = ((double)low - ls) / (double)(low - high);
    w = fmin(fmax(w, 0.0), 1.0);
    return (1.0 - w) * lo + w * (lo + 1);
}

/* Karras et al. (2022) ρ = 7 schedule between sigma_max and sigma_min, n points, double like numpy. */
static double karras_sigma(double sigma_min, double sigma_max, int n, int k) {
    const double rho = 7.0;
    double ramp = np_linspace(1.0, n, k);
    double min_inv = pow(sigma_min, 1.0 / rho), max_inv = pow(sigma_max, 1.0 / rho);
    return pow(max_inv + ramp * (min_inv - max_inv), rho);
}

/* ------------------------------------------------------------------------------------------------------ */
/* Sampler setup */

static const char *resolve_spacing(const SchedConfig *c, SamplerKind kind) {
    if (c->timestep_spacing[0]) return c->timestep_spacing;
    return kind == SAMPLER_DDIM ? "leading" : "linspace"; /* class defaults (§5.2) */
}

/* Euler family: σ_i at the (fractional) timesteps, or Karras σ between the schedule's end points with
 * float timesteps from _sigma_to_t. */
static void setup_euler(Sampler *s, const float *sig, const float *log_sig, int T) {
    int n = s->n;
    if (s->karras) {
        double smax = sigma_interp(sig, T, s->timesteps[0]), smin = sigma_interp(sig, T, s->timesteps[n - 1]);
        for (int k = 0; k < n; k++) {
            double sk = karras_sigma(smin, smax, n, k);
            s->sigmas[k] = (float)sk;
            s->timesteps[k] = (float)sigma_to_t(sk, log_sig, T);
        }
    } else {
        for (int k = 0; k < n; k++) s->sigmas[k] = (float)sigma_interp(sig, T, s->timesteps[k]);
    }
    s->sigmas[n] = 0.0f;
    /* init_noise_sigma = max σ (linspace/trailing) or sqrt(max σ² + 1) (leading), in float32 */
    float mx = 0.0f;
    for (int k = 0; k <= n; k++) mx = fmaxf(mx, s->sigmas[k]);
    s->init_noise_sigma = strcmp(resolve_spacing(&s->cfg, s->kind), "leading") ? mx : sqrtf(mx * mx + 1.0f);
}

/* DPM-Solver: σ from the table at integer timesteps, or Karras σ over the full table with timesteps
 * rounded (half-to-even) from _sigma_to_t. Final σ = 0 (final_sigmas_type "zero"). */
static void setup_dpm(Sampler *s, const float *sig, const float *log_sig, int T) {
    int n = s->n;
    for (int k = 0; k < n; k++) {
        if (s->karras) {
            double sk = karras_sigma(sig[0], sig[T - 1], n, k);
            s->sigmas[k] = (float)sk;
            s->timesteps[k] = (float)round_even(sigma_to_t(sk, log_sig, T));
        } else {
            s->sigmas[k] = sig[(int)s->timesteps[k]];
        }
    }
    s->sigmas[n] = 0.0f;
    s->init_noise_sigma = 1.0f;
}

int sampler_init(Sampler *s, const SchedConfig *c, SamplerKind kind, int steps, int karras) {
    memset(s, 0, sizeof *s);
    int T = c->num_train_timesteps;
    if ((unsigned)kind >= SAMPLER_COUNT) return ls_set_error("invalid sampler kind %d", (int)kind);
    if (T < 2 || T > SCHED_MAX_TRAIN_T)
        return ls_set_error("num_train_timesteps %d out of range [2, %d]", T, SCHED_MAX_TRAIN_T);
    if (steps < 1 || steps > T || steps > SCHED_MAX_STEPS)
        return ls_set_error("steps %d out of range [1, %d]", steps, LS_MIN(T, SCHED_MAX_STEPS));
    if (karras && !supports_karras(kind))
        return ls_set_error("Karras sigmas are only available for euler and dpmpp_2m, not %s", sampler_name(kind));
    const char *spacing = resolve_spacing(c, kind);
    if (strcmp(spacing, "leading") && strcmp(spacing, "linspace") && strcmp(spacing, "trailing"))
        return ls_set_error("unsupported timestep_spacing \"%s\"", spacing);
    s->kind = kind;
    s->karras = karras ? 1 : 0;
    s->cfg = *c;
    s->n = steps;
    s->prev_step = -1;
    sched_alphas_cumprod(c, s->alphas_cumprod);
    /* ᾱ_T = 0 makes σ_T infinite: the σ-based samplers (Euler, Euler a, DPM++) take ᾱ_T = 2^-24 instead
     * (σ_T ≈ 4096), as diffusers does; DDIM uses ᾱ_T = 0 as it is (with v-prediction, x̂0 = −v there). */
    if (c->rescale_zero_snr && kind != SAMPLER_DDIM) s->alphas_cumprod[T - 1] = 0x1p-24f;

    float sigma_tab[SCHED_MAX_TRAIN_T], log_sigma_tab[SCHED_MAX_TRAIN_T];
    for (int t = 0; t < T; t++) {
        sigma_tab[t] = sigma_of_ac(s->alphas_cumprod[t]);
        log_sigma_tab[t] = (float)log((double)sigma_tab[t]); /* numpy float32 log */
    }
    switch (kind) {
    case SAMPLER_DDIM:
        timesteps_ddim(spacing, T, steps, c->steps_offset, s->timesteps);
        s->init_noise_sigma = 1.0f;
        break;
    case SAMPLER_EULER:
    case SAMPLER_EULER_A:
        timesteps_euler(spacing, T, steps, c->steps_offset, s->timesteps);
        setup_euler(s, sigma_tab, log_sigma_tab, T);
        break;
    case SAMPLER_DPMPP_2M:
        timesteps_dpm(spacing, T, steps, c->steps_offset, s->timesteps);
        setup_dpm(s, sigma_tab, log_sigma_tab, T);
        break;
    default: break;
    }
    for (int k = 0; k < steps; k++) {
        if (!(s->timesteps[k] >= 0 && s->timesteps[k] <= T - 1))
            return ls_set_error("%s with %d steps and %s spacing gives timestep %g outside [0, %d]",
                                sampler_name(kind), steps, spacing, (double)s->timesteps[k], T - 1);
    }
    return LS_OK;
}

void sampler_free(Sampler *s) {
    op_free(s->prev_x0);
    s->prev_x0 = NULL;
    s->prev_n = 0;
    s->prev_step = -1;
}

int sampler_needs_noise(const Sampler *s) { return s->kind == SAMPLER_EULER_A; }

void sampler_scale_input(const Sampler *s, int i, float *xin, const float *x, size_t n) {
    LS_ASSERT(i >= 0 && i < s->n);
    if (s->kind == SAMPLER_EULER || s->kind == SAMPLER_EULER_A) {
        float sigma = s->sigmas[i];
        float scale = sqrtf(sigma * sigma + 1.0f); /* x / (σ²+1)^0.5, a division as in diffusers */
        op_divide(xin, x, scale, n);
    } else if (xin != x) {
        op_sync(); /* x is the output of queued ops */
        memcpy(xin, x, n * sizeof *x);
    }
}

/* ------------------------------------------------------------------------------------------------------ */
/* Steps. Scalars are float32 (diffusers' 0-d tensors); element loops keep diffusers' operation order. */

/* == DDIMScheduler.step with eta = 0 (no clipping, no thresholding). */
static void step_ddim(const Sampler *s, int i, float *x, const float *mo, size_t n) {
    int T = s->cfg.num_train_timesteps;
    int t = (int)s->timesteps[i];
    int prev = t - T / s->n;
    float a_t = s->alphas_cumprod[t];
    float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : (s->cfg.set_alpha_to_one ? 1.0f : s->alphas_cumprod[0]);
    float b_t = 1.0f - a_t;
    float sa = sqrtf(a_t), sb = sqrtf(b_t);
    float sa_prev = sqrtf(a_prev), dir = sqrtf(1.0f - a_prev - 0.0f); /* σ_t = η·… = 0 */
    SamplerStepArgs a = {.family = OP_STEP_DDIM, .v = s->cfg.prediction == PRED_V, .sa = sa, .sb = sb,
                         .sa_prev = sa_prev, .dir = dir};
    op_sampler_step(&a, x, NULL, mo, NULL, n);
}

/* == EulerDiscreteScheduler.step with s_churn = 0 (σ̂ = σ), and EulerAncestralDiscreteScheduler.step
 * with the caller's N(0,1) noise. */
static void step_euler(const Sampler *s, int i, float *x, const float *mo, size_t n, const float *noise) {
    float sigma = s->sigmas[i], sigma_next = s->sigmas[i + 1];
    float s2p1 = sigma * sigma + 1.0f, cv = -sigma / sqrtf(s2p1);
    int v = s->cfg.prediction == PRED_V;
    float dt = sigma_next - sigma, sigma_up = 0.0f;
    if (s->kind == SAMPLER_EULER_A) {
        float f2 = sigma * sigma, t2 = sigma_next * sigma_next;
        sigma_up = sqrtf(t2 * (f2 - t2) / f2);
        float sigma_down = sqrtf(fmaxf(t2 - sigma_up * sigma_up, 0.0f));
        dt = sigma_down - sigma;
    }
    SamplerStepArgs a = {.family = OP_STEP_EULER, .v = v, .sigma = sigma, .cv = cv, .s2p1 = s2p1, .dt = dt,
                         .sigma_up = sigma_up};
    op_sampler_step(&a, x, NULL, mo, s->kind == SAMPLER_EULER_A ? noise : NULL, n);
}

/* VP-space (α, σ) of a VE sigma and λ = log α − log σ, as diffusers' _sigma_to_alpha_sigma_t. */
static void dpm_alpha_sigma(float sig, float *alpha, float *sigma, float *lambda) {
    *alpha = 1.0f / sqrtf(sig * sig + 1.0f);
    *sigma = sig * *alpha;
    *lambda = logf(*alpha) - logf(*sigma);
}

/* == DPMSolverMultistepScheduler.step (dpmsolver++, solver_order 2, midpoint, lower_order_final,
 * final_sigmas_type zero). First order on the first step of a run and on the last step; second order
 * otherwise, from the data prediction D of the previous step kept in s->prev_x0. */
static void step_dpm(Sampler *s, int i, float *x, const float *mo, size_t n) {
    float alpha_s0, sigma_s0, lambda_s0;
    dpm_alpha_sigma(s->sigmas[i], &alpha_s0, &sigma_s0, &lambda_s0);
    if (s->prev_n != n) {
        op_free(s->prev_x0);
        s->prev_x0 = op_alloc(n * sizeof(float)); /* the backend's memory: op_sampler_step reads and writes it */
        s->prev_n = n;
        s->prev_step = -1;
    }
    int second = s->prev_step == i - 1 && i >= 1 && i < s->n - 1;
    int v = s->cfg.prediction == PRED_V;
    float *prev = s->prev_x0;
    SamplerStepArgs a = {.family = OP_STEP_DPM, .v = v, .alpha = alpha_s0, .sigma = sigma_s0};
    if (s->sigmas[i + 1] == 0.0f) {
        /* σ_next = 0: first order collapses to x ← D (diffusers gets there through log(0) = −inf). */
        a.final = 1;
        op_sampler_step(&a, x, prev, mo, NULL, n);
        s->prev_step = i;
        return;
    }
    float alpha_t, sigma_t, lambda_t;
    dpm_alpha_sigma(s->sigmas[i + 1], &alpha_t, &sigma_t, &lambda_t);
    float h = lambda_t - lambda_s0;
    float cx = sigma_t / sigma_s0, cd = alpha_t * (expf(-h) - 1.0f);
    float inv_r0 = 0.0f, cd1 = 0.5f * cd;
    if (second) {
        float alpha_s1, sigma_s1, lambda_s1;
        dpm_alpha_sigma(s->sigmas[i - 1], &alpha_s1, &sigma_s1, &lambda_s1);
        float r0 = (lambda_s0 - lambda_s1) / h;
        inv_r0 = 1.0f / r0;
    }
    a.cx = cx, a.cd = cd, a.cd1 = cd1, a.inv_r0 = inv_r0, a.second = second;
    op_sampler_step(&a, x, prev, mo, NULL, n);
    s->prev_step = i;
}

void sampler_step(Sampler *s, int i, float *x, const float *model_out, size_t n, const float *noise) {
    LS_ASSERT(i >= 0 && i < s->n);
    LS_ASSERT(!sampler_needs_noise(s) || noise != NULL);
    switch (s->kind) {
    case SAMPLER_DDIM: step_ddim(s, i, x, model_out, n); break;
    case SAMPLER_EULER:
    case SAMPLER_EULER_A: step_euler(s, i, x, model_out, n, noise); break;
    case SAMPLER_DPMPP_2M: step_dpm(s, i, x, model_out, n); break;
    default: LS_ASSERT(0 && "bad sampler kind");
    }
}
