/* test_scheduler.c — noise schedule, samplers and RNG against diffusers.
 *
 *   test_scheduler <fixtures_dir> [lorastyle_binary]
 *
 * Reads <fixtures_dir>/scheduler.safetensors (tests/gen_scheduler_fixtures.py, diffusers 0.42.1) and checks:
 *   - alphas_cumprod (scaled_linear and linear) against torch, to 1e-6 relative (in practice bit exact);
 *   - timesteps (exact for integer ones, 1e-4 for Euler's fractional ones), sigmas and init_noise_sigma
 *     (1e-6 relative) for every sampler × spacing × karras × step count in the file;
 *   - scripted trajectories: sampler_scale_input and every sampler_step, fed diffusers' model outputs and
 *     ancestral noise, to 1e-5 of the tensor's max |value| per step;
 * plus Philox known answers, RNG chunking invariance and moments, sampler names, config loading errors.
 * Prints "N passed, M failed"; exits 1 on any failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"    // defines: ls_read_file, ls_last_error
#include "rng.h"       // defines: rng_normal, rng_uniform, rng_u32, rng_philox4x32_10
#include "scheduler.h" // defines: Sampler, SchedConfig, sampler_*, sched_*

#include "testutil.h" // defines: CHECK, g_pass, g_fail, test_summary

/* ------------------------------------------------------------------------------------------------------ */
/* A tiny private safetensors reader (F32 only), enough for the fixture file. */

typedef struct {
    char *buf;          /* whole file */
    size_t len;
    cJSON *header;      /* parsed JSON header */
    const char *data;   /* start of the data buffer */
    size_t data_len;
} Fixture;

static int fixture_open(Fixture *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->buf = ls_read_file(path, &f->len);
    if (!f->buf) return LS_ERR;
    uint64_t n = 0;
    if (f->len < 8) return ls_set_error("%s: too short", path);
    for (int i = 7; i >= 0; i--) n = (n << 8) | (unsigned char)f->buf[i]; /* u64 little endian */
    if (n > f->len - 8) return ls_set_error("%s: bad header length", path);
    f->header = cJSON_ParseWithLength(f->buf + 8, (size_t)n);
    if (!f->header) return ls_set_error("%s: bad JSON header", path);
    f->data = f->buf + 8 + n;
    f->data_len = f->len - 8 - n;
    return LS_OK;
}

static void fixture_close(Fixture *f) {
    cJSON_Delete(f->header);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

/* malloc'd copy of F32 tensor `name` (NULL if absent or malformed); *numel set. */
static float *fx_get(const Fixture *f, const char *name, size_t *numel) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->header, name);
    if (!e) return NULL;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") || cJSON_GetArraySize(off) != 2) return NULL;
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, en = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (b < 0 || en < b || en > (double)f->data_len || fmod(en - b, 4.0) != 0) return NULL;
    size_t nb = (size_t)(en - b);
    float *out = mallocCheck(nb ? nb : 4);
    memcpy(out, f->data + (size_t)b, nb);
    if (numel) *numel = nb / 4;
    return out;
}

/* ------------------------------------------------------------------------------------------------------ */
/* Comparison helpers */

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* max |a−b| / max(|ref|max, tiny): error relative to the tensor's scale. */
static double scaled_err(const float *a, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)ref[i]));
    return m / fmax(max_abs(ref, n), 1e-30);
}

/* max elementwise relative error (zeros must match exactly). */
static double rel_err(const float *a, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        m = fmax(m, ref[i] == 0 ? (d == 0 ? 0 : INFINITY) : d / fabs((double)ref[i]));
    }
    return m;
}

/* ------------------------------------------------------------------------------------------------------ */
/* RNG */

static void test_philox_kat(void) {
    /* Random123 kat_vectors for philox4x32-10: counter, key → output. */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        rng_philox4x32_10(kat[k], kat[k] + 4, out);
        CHECK(!memcmp(out, kat[k] + 6, sizeof out), "philox KAT %d: got %08x %08x %08x %08x", k, out[0], out[1],
              out[2], out[3]);
    }
    /* stream layout: index j → word j%4 of block j/4, counter (j/4 lo, j/4 hi, 0, 0), key (seed lo, hi) */
    uint64_t seed = 0x0123456789abcdefull, j = (5ull << 32) * 4 + 7;
    uint32_t ctr[4] = {(uint32_t)(j / 4), (uint32_t)((j / 4) >> 32), 0, 0}, key[2] = {0x89abcdef, 0x01234567};
    uint32_t out[4];
    rng_philox4x32_10(ctr, key, out);
    CHECK(rng_u32(seed, j) == out[3], "rng_u32 layout");
}

static void test_rng(void) {
    enum { N = 1001, CUT = 377 };
    float a[N], b[N];
    const uint64_t seed = 42;
    rng_normal(a, N, seed, 10);
    rng_normal(b, CUT, seed, 10);
    rng_normal(b + CUT, N - CUT, seed, 10 + CUT);
    CHECK(!memcmp(a, b, sizeof a), "rng_normal chunked != whole");
    for (int i = 0; i < 9; i++) { /* single elements at odd offsets */
        float one;
        rng_normal(&one, 1, seed, 10 + 101 * i + 3);
        CHECK(one == a[101 * i + 3], "rng_normal single element %d", i);
    }
    rng_uniform(a, N, seed, 3);
    rng_uniform(b, CUT, seed, 3);
    rng_uniform(b + CUT, N - CUT, seed, 3 + CUT);
    CHECK(!memcmp(a, b, sizeof a), "rng_uniform chunked != whole");
    int range_ok = 1, bits_ok = 1;
    for (int i = 0; i < N; i++) {
        range_ok &= a[i] >= 0.0f && a[i] < 1.0f;
        bits_ok &= a[i] == (float)(rng_u32(seed, 3 + (uint64_t)i) >> 8) * (1.0f / 16777216.0f);
    }
    CHECK(range_ok && bits_ok, "uniform range/definition");
    rng_normal(a, 64, seed, 0);
    rng_normal(b, 64, seed + (1ull << 32), 0);
    CHECK(memcmp(a, b, 64 * sizeof(float)) != 0, "seed high word ignored");

    size_t n = 1000000;
    float *z = mallocCheck(n * sizeof(float));
    rng_normal(z, n, 1234, 0);
    double s = 0, s2 = 0, s4 = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        finite &= isfinite(z[i]);
        s += z[i];
        s2 += (double)z[i] * z[i];
        s4 += (double)z[i] * z[i] * z[i] * z[i];
    }
    double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n;
    CHECK(finite && fabs(mean) < 0.005 && fabs(sqrt(var) - 1) < 0.005 && fabs(kurt - 3) < 0.05,
          "normal moments: mean %g std %g E[z^4] %g", mean, sqrt(var), kurt);
    printf("rng: 1e6 normals mean %.5f std %.5f E[z^4] %.4f\n", mean, sqrt(var), kurt);
    free(z);
}

/* ------------------------------------------------------------------------------------------------------ */
/* Names and config */

static void test_names(void) {
    SamplerKind k = SAMPLER_COUNT;
    int karras = -1;
    CHECK(sampler_from_name("bogus", &k, &karras) == LS_ERR && strstr(ls_last_error(), "dpmpp_2m"),
          "bogus sampler: %s", ls_last_error());
    CHECK(sampler_from_name("euler_a_karras", &k, &karras) == LS_ERR, "euler_a_karras accepted");
    CHECK(sampler_from_name("DPMPP_2M_Karras", &k, &karras) == LS_OK && k == SAMPLER_DPMPP_2M && karras == 1,
          "dpmpp_2m_karras");
    CHECK(!strcmp(sampler_display_name(SAMPLER_DPMPP_2M, 1), "DPM++ 2M Karras"), "display name");
    CHECK(!strcmp(sampler_display_name(SAMPLER_EULER_A, 0), "Euler a"), "display name");
    for (int i = 0; i < SAMPLER_COUNT; i++) {
        CHECK(sampler_from_name(sampler_name((SamplerKind)i), &k, &karras) == LS_OK && k == (SamplerKind)i &&
                  karras == 0,
              "round trip %s", sampler_name((SamplerKind)i));
    }
}

/* Writes text to a fresh temp file whose path goes to path[cap]. */
static void write_temp(char *path, size_t cap, const char *text) {
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, cap, "%s/ls_sched_XXXXXX", dir);
    int fd = mkstemp(path);
    LS_ASSERT(fd >= 0);
    LS_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static int load_text(SchedConfig *c, const char *text) {
    char path[1024];
    write_temp(path, sizeof path, text);
    sched_config_default(c);
    int rc = sched_config_load(c, path);
    unlink(path);
    return rc;
}

static void test_config(void) {
    SchedConfig c;
    /* SD1.5's file (diffusers 0.6), plus an unknown key */
    int rc = load_text(&c, "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\","
                           "\"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085,"
                           "\"num_train_timesteps\": 1000, \"set_alpha_to_one\": false, \"skip_prk_steps\": true,"
                           "\"steps_offset\": 1, \"trained_betas\": null, \"clip_sample\": false,"
                           "\"some_future_key\": [1, 2]}");
    CHECK(rc == LS_OK && c.num_train_timesteps == 1000 && c.scaled_linear && c.steps_offset == 1 &&
              !c.set_alpha_to_one && c.prediction == PRED_EPSILON && c.timestep_spacing[0] == 0,
          "SD1.5 config: %s", rc ? ls_last_error() : "wrong values");
    rc = load_text(&c, "{\"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"leading\", "
                       "\"beta_schedule\": \"linear\", \"steps_offset\": 0}");
    CHECK(rc == LS_OK && c.prediction == PRED_V && !strcmp(c.timestep_spacing, "leading") && !c.scaled_linear &&
              c.steps_offset == 0,
          "v config");
    rc = load_text(&c, "{\"prediction_type\": \"v_prediction\", \"rescale_betas_zero_snr\": true, "
                       "\"timestep_spacing\": \"trailing\"}");
    CHECK(rc == LS_OK && c.prediction == PRED_V && c.rescale_zero_snr && !strcmp(c.timestep_spacing, "trailing"),
          "zero-SNR config: %s", rc ? ls_last_error() : "wrong values");
    rc = load_text(&c, "{\"timestep_spacing\": \"leading\", \"_use_default_values\": [\"timestep_spacing\"]}");
    CHECK(rc == LS_OK && c.timestep_spacing[0] == 0, "_use_default_values not honoured");
    rc = load_text(&c, "{\"steps_offset\": \"1\"}");
    CHECK(rc == LS_ERR && strstr(ls_last_error(), "steps_offset") && strstr(ls_last_error(), "ls_sched_"),
          "wrong type message: %s", ls_last_error());
    rc = load_text(&c, "{\"set_alpha_to_one\": 1}");
    CHECK(rc == LS_ERR && strstr(ls_last_error(), "set_alpha_to_one"), "bool type: %s", ls_last_error());
    rc = load_text(&c, "{\"beta_schedule\": \"squaredcos_cap_v2\"}");
    CHECK(rc == LS_ERR && strstr(ls_last_error(), "beta_schedule"), "unsupported schedule: %s", ls_last_error());
    rc = load_text(&c, "{\"num_train_timesteps\": 1000,");
    CHECK(rc == LS_ERR, "malformed JSON accepted");
    sched_config_default(&c);
    CHECK(sched_config_load(&c, "/nonexistent/scheduler_config.json") == LS_ERR, "missing file accepted");

    Sampler s;
    sched_config_default(&c);
    CHECK(sampler_init(&s, &c, SAMPLER_DDIM, 0, 0) == LS_ERR, "0 steps accepted");
    CHECK(sampler_init(&s, &c, SAMPLER_DDIM, 20, 1) == LS_ERR, "ddim karras accepted");
    CHECK(sampler_init(&s, &c, SAMPLER_EULER, 1001, 0) == LS_ERR, "1001 steps accepted");
}

/* ------------------------------------------------------------------------------------------------------ */
/* Fixture comparisons */

static int kind_of(const char *name, SamplerKind *k) {
    int karras;
    return sampler_from_name(name, k, &karras) == LS_OK && !karras;
}

/* The sampler of fixture entry `name`: sampler samp (its kind to *kind) over config c with the entry's spacing
 * (unless "default"), n steps, karras sigmas or not. LS_OK, or LS_ERR with the failure counted. */
static int entry_sampler(Sampler *s, SamplerKind *kind, SchedConfig *c, const char *name, const char *samp,
                         const char *spacing, int n, int karras) {
    CHECK(kind_of(samp, kind), "unknown sampler in fixture %s", name);
    if (strcmp(spacing, "default")) snprintf(c->timestep_spacing, sizeof c->timestep_spacing, "%.15s", spacing);
    if (sampler_init(s, c, *kind, n, karras) == LS_OK) return LS_OK;
    CHECK(0, "%s: sampler_init: %s", name, ls_last_error());
    return LS_ERR;
}

static void test_alphas(const Fixture *f) {
    SchedConfig c;
    float ac[SCHED_MAX_TRAIN_T];
    for (int lin = 0; lin < 3; lin++) { /* SD1.5, linear, SD1.5 + rescale_betas_zero_snr */
        sched_config_default(&c);
        c.rescale_zero_snr = lin == 2;
        if (lin == 1) {
            c.scaled_linear = 0;
            c.beta_start = 0.0001f;
            c.beta_end = 0.02f;
        }
        size_t n = 0;
        static const char *const names[] = {"alphas_cumprod", "alphas_cumprod.linear", "alphas_cumprod.zsnr"};
        float *ref = fx_get(f, names[lin], &n);
        CHECK(ref && n == 1000, "alphas_cumprod fixture missing");
        if (!ref) continue;
        sched_alphas_cumprod(&c, ac);
        int exact = 0;
        for (size_t i = 0; i < n; i++) exact += ac[i] == ref[i];
        double e = rel_err(ac, ref, n);
        printf("%s: max rel err %.3g, %d/1000 bit exact\n", names[lin], e, exact);
        CHECK(e <= 1e-6, "%s rel err %g", names[lin], e);
        if (lin == 2) CHECK(ac[n - 1] == 0.0f && ref[n - 1] == 0.0f, "zero-SNR ᾱ_T %g (diffusers %g)", ac[n - 1], ref[n - 1]);
        free(ref);
    }
}

/* Every "sched.<sampler>.<spacing>.k<K>.n<N>.timesteps" entry. */
static void test_schedules(const Fixture *f) {
    int count = 0, ts_exact = 0, ts_total = 0;
    double worst_ts = 0, worst_sig = 0, worst_init = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, f->header) {
        char samp[32], spacing[32], rest[32];
        int karras, n;
        if (strncmp(e->string, "sched.", 6) || sscanf(e->string, "sched.%31[^.].%31[^.].k%d.n%d.%31s", samp,
                                                        spacing, &karras, &n, rest) != 5 ||
            strcmp(rest, "timesteps"))
            continue;
        SchedConfig c;
        sched_config_default(&c);
        SamplerKind kind;
        Sampler s;
        if (entry_sampler(&s, &kind, &c, e->string, samp, spacing, n, karras) < 0) continue;
        char key[160];
        size_t nt = 0, ns = 0, ni = 0;
        float *ts = fx_get(f, e->string, &nt);
        snprintf(key, sizeof key, "sched.%s.%s.k%d.n%d.sigmas", samp, spacing, karras, n);
        float *sig = fx_get(f, key, &ns);
        snprintf(key, sizeof key, "sched.%s.%s.k%d.n%d.init_noise_sigma", samp, spacing, karras, n);
        float *init = fx_get(f, key, &ni);
        CHECK(ts && nt == (size_t)n && init && ni == 1, "%s: fixture shape", e->string);
        if (ts && nt == (size_t)n) {
            int fractional = kind == SAMPLER_EULER || kind == SAMPLER_EULER_A;
            double d = 0;
            for (int i = 0; i < n; i++) {
                d = fmax(d, fabs((double)s.timesteps[i] - ts[i]));
                ts_exact += s.timesteps[i] == ts[i];
            }
            ts_total += n;
            worst_ts = fmax(worst_ts, d);
            CHECK(fractional ? d <= 1e-4 : d == 0, "%s: timesteps differ by %g (first %g vs %g)", e->string, d,
                  (double)s.timesteps[0], (double)ts[0]);
        }
        if (sig) {
            CHECK(ns == (size_t)n + 1, "%s sigma count", e->string);
            double r = ns == (size_t)n + 1 ? rel_err(s.sigmas, sig, ns) : INFINITY;
            worst_sig = fmax(worst_sig, r);
            CHECK(r <= 1e-6, "%s: sigmas rel err %g", e->string, r);
        }
        if (init && ni == 1) {
            double r = fabs(s.init_noise_sigma - init[0]) / init[0];
            worst_init = fmax(worst_init, r);
            CHECK(r <= 1e-6, "%s: init_noise_sigma %g vs %g", e->string, (double)s.init_noise_sigma, (double)init[0]);
        }
        free(ts);
        free(sig);
        free(init);
        sampler_free(&s);
        count++;
    }
    printf("schedules: %d configs; timesteps max |diff| %.3g (%d/%d bit exact), sigmas max rel err %.3g, "
           "init_noise_sigma max rel err %.3g\n",
           count, worst_ts, ts_exact, ts_total, worst_sig, worst_init);
    CHECK(count >= 100, "only %d schedule fixtures found", count);
}

/* Every "traj.<sampler>.<pred>.<spacing>.k<K>.n<N>.x_init" entry: replay the steps with the stored model
 * outputs (and noise) and compare the scaled input and the sample after every step. */
static void test_trajectories(const Fixture *f) {
    int count = 0;
    double worst_x = 0, worst_in = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, f->header) {
        char samp[32], pred[32], spacing[32], rest[32], key[200];
        int karras, n;
        if (strncmp(e->string, "traj.", 5) || sscanf(e->string, "traj.%31[^.].%31[^.].%31[^.].k%d.n%d.%31s", samp,
                                                       pred, spacing, &karras, &n, rest) != 6 ||
            strcmp(rest, "x_init"))
            continue;
        SchedConfig c;
        sched_config_default(&c);
        c.prediction = strcmp(pred, "v_prediction") && strcmp(pred, "vzsnr") ? PRED_EPSILON : PRED_V;
        c.rescale_zero_snr = !strcmp(pred, "vzsnr");
        SamplerKind kind;
        Sampler s;
        if (entry_sampler(&s, &kind, &c, e->string, samp, spacing, n, karras) < 0) continue;
        size_t m = 0, nx = 0, nin = 0, nmo = 0, nz = 0;
        float *x = fx_get(f, e->string, &m);
        const char *base_end = strrchr(e->string, '.');
        int bl = (int)(base_end - e->string);
        snprintf(key, sizeof key, "%.*s.x", bl, e->string);
        float *xs = fx_get(f, key, &nx);
        snprintf(key, sizeof key, "%.*s.xin", bl, e->string);
        float *xin_ref = fx_get(f, key, &nin);
        snprintf(key, sizeof key, "%.*s.model_out", bl, e->string);
        float *mo = fx_get(f, key, &nmo);
        snprintf(key, sizeof key, "%.*s.noise", bl, e->string);
        float *noise = fx_get(f, key, &nz);
        int ok = x && xs && xin_ref && mo && nx == m * n && nin == nx && nmo == nx &&
                 (!sampler_needs_noise(&s) || (noise && nz == nx));
        CHECK(ok, "%s: trajectory fixture incomplete", e->string);
        if (ok) {
            float *xin = mallocCheck(m * sizeof(float));
            double ex = 0, ein = 0;
            for (int i = 0; i < n; i++) {
                sampler_scale_input(&s, i, xin, x, m);
                ein = fmax(ein, scaled_err(xin, xin_ref + i * m, m));
                sampler_step(&s, i, x, mo + i * m, m, noise ? noise + i * m : NULL);
                double ei = scaled_err(x, xs + i * m, m);
                ex = fmax(ex, ei);
                if (ei > 1e-5) printf("  %s step %d: err %.3g\n", e->string, i, ei);
            }
            printf("traj %-40.*s: x max err %.3g, scaled input max err %.3g\n", bl, e->string, ex, ein);
            CHECK(ex <= 1e-5 && ein <= 1e-5, "%s: trajectory err %g, input err %g", e->string, ex, ein);
            worst_x = fmax(worst_x, ex);
            worst_in = fmax(worst_in, ein);
            free(xin);
            count++;
        }
        free(x);
        free(xs);
        free(xin_ref);
        free(mo);
        free(noise);
        sampler_free(&s);
    }
    printf("trajectories: %d runs; x max err %.3g, input max err %.3g (relative to each tensor's max |x|)\n",
           count, worst_x, worst_in);
    CHECK(count >= 15, "only %d trajectory fixtures found", count);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <fixtures_dir> [lorastyle_binary]\n", argv[0]);
        return 2;
    }
    test_philox_kat();
    test_rng();
    test_names();
    test_config();

    char *path = ls_path_join(argv[1], "scheduler.safetensors");
    Fixture f;
    if (fixture_open(&f, path) != LS_OK) {
        CHECK(0, "cannot read fixtures: %s", ls_last_error());
    } else {
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(f.header, "__metadata__");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(meta, "diffusers");
        printf("fixtures: %s (diffusers %s)\n", path, cJSON_IsString(ver) ? ver->valuestring : "?");
        test_alphas(&f);
        test_schedules(&f);
        test_trajectories(&f);
        fixture_close(&f);
    }
    free(path);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
