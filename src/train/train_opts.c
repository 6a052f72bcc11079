/* train_opts.c — the training options as one table: command-line flag, config.json key, type and range.
 * The CLI (src/app/cmd_train.c), `--config FILE`, `--resume` (which reads OUT/config.json) and the config.json
 * written next to the adapter all go through it, so the three always agree. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "args.h"     // defines: arg_int, arg_float, arg_list
#include "session.h"  // defines: model_default_path
#include "common.h"   // defines: ls_set_error, ls_error_context
#include "jsonutil.h" // defines: json_load_file, json_float
#include "train.h"

typedef enum { K_STR, K_INT, K_FLOAT, K_BOOL, K_NOBOOL, K_SEED, K_SCHED, K_METHOD, K_PREC, K_LIST } Kind;

typedef struct {
    const char *key;  /* config.json key (NULL: command line only) */
    const char *flag; /* command-line flag (NULL: config only) */
    Kind kind;
    size_t off;
    long lo, hi; /* K_INT range */
} Field;

#define F(k, fl, kind, field, lo, hi) {k, fl, kind, offsetof(TrainOptions, field), lo, hi}
static const Field FIELDS[] = {
    F("data_dir", NULL, K_STR, data_dir, 0, 0),
    F("model", "--model", K_STR, model, 0, 0),
    F("model_config", "--model-config", K_STR, config_dir, 0, 0),
    F("tokenizer", "--tokenizer", K_STR, tokenizer_dir, 0, 0),
    F("output", "-o", K_STR, out, 0, 0),
    F("name", "--name", K_STR, name, 0, 0),
    F("method", "--method", K_METHOD, method, 0, 0),
    F("train_text_encoder", "--train-text-encoder", K_BOOL, train_text_encoder, 0, 0),
    F("text_encoder_lr", "--text-encoder-lr", K_FLOAT, text_encoder_lr, 0, 0),
    F("save_precision", "--save-precision", K_PREC, save_precision, 0, 0),
    F("steps", "--steps", K_INT, steps, 1, 100000000),
    F("epochs", "--epochs", K_INT, epochs, 0, 1000000),
    F("batch", "--batch", K_INT, batch, 1, 1024),
    F("grad_accum", "--grad-accum", K_INT, grad_accum, 1, 1024),
    F("lr", "--lr", K_FLOAT, lr, 0, 0),
    F("lr_scheduler", "--lr-scheduler", K_SCHED, lr_schedule, 0, 0),
    F("warmup", "--warmup", K_INT, warmup, 0, 100000000),
    F("rank", "--rank", K_INT, rank, 1, 4096),
    F("alpha", "--alpha", K_FLOAT, alpha, 0, 0),
    F("conv_rank", "--conv-rank", K_INT, conv_rank, 0, 4096),
    F("conv_alpha", "--conv-alpha", K_FLOAT, conv_alpha, 0, 0),
    F("targets", "--targets", K_STR, targets, 0, 0),
    F("resolution", "--resolution", K_INT, resolution, 0, 16384),
    F("buckets", "--buckets", K_BOOL, buckets, 0, 0),
    F("bucket_step", "--bucket-step", K_INT, bucket_step, 0, 4096),
    F("min_bucket", "--min-bucket", K_INT, min_bucket, 0, 16384),
    F("max_bucket", "--max-bucket", K_INT, max_bucket, 0, 16384),
    F("bucket_no_upscale", "--bucket-no-upscale", K_BOOL, bucket_no_upscale, 0, 0),
    F("seed", "--seed", K_SEED, seed, 0, 0),
    F("clip_skip", "--clip-skip", K_INT, clip_skip, 1, 12),
    F("caption", "--caption", K_STR, caption, 0, 0),
    F("caption_ext", "--caption-ext", K_STR, caption_ext, 0, 0),
    F("trigger", "--trigger", K_STR, trigger, 0, 0),
    F("shuffle_tags", "--shuffle-tags", K_BOOL, shuffle_tags, 0, 0),
    F("keep_tokens", "--keep-tokens", K_INT, keep_tokens, 0, 1000),
    F("flip", "--flip", K_BOOL, flip, 0, 0),
    F("caption_dropout", "--caption-dropout", K_FLOAT, caption_dropout, 0, 0),
    F("tag_dropout", "--tag-dropout", K_FLOAT, tag_dropout, 0, 0),
    F("min_snr_gamma", "--min-snr-gamma", K_FLOAT, min_snr_gamma, 0, 0),
    F("noise_offset", "--noise-offset", K_FLOAT, noise_offset, 0, 0),
    F("max_grad_norm", "--max-grad-norm", K_FLOAT, max_grad_norm, 0, 0),
    F("save_every", "--save-every", K_INT, save_every, 0, 100000000),
    F("checkpoint_every", "--checkpoint-every", K_INT, checkpoint_every, 0, 100000000),
    F("validation_split", "--validation-split", K_FLOAT, validation_split, 0, 0),
    F("validate_every", "--validate-every", K_INT, validate_every, 0, 100000000),
    F("samples", "--no-samples", K_NOBOOL, samples, 0, 0),
    F("sample_every", "--sample-every", K_INT, sample_every, 0, 100000000),
    F("sample_prompts", "--sample-prompts", K_STR, sample_prompts, 0, 0),
    F("sample_steps", "--sample-steps", K_INT, sample_steps, 1, 1000),
    F("sample_strengths", "--sample-strengths", K_LIST, sample_strengths, 0, 0),
    F("style_curve", "--style-curve", K_INT, style_curve, -1, 64),
    F("cache", "--no-cache", K_NOBOOL, cache, 0, 0),
    F("cache_dir", "--cache-dir", K_STR, cache_dir, 0, 0),
    F(NULL, "--force", K_BOOL, force, 0, 0),
    F(NULL, "--resume", K_BOOL, resume, 0, 0),
    F(NULL, "--quiet", K_BOOL, quiet, 0, 0),
};
#undef F
#define N_FIELDS ((int)(sizeof FIELDS / sizeof FIELDS[0]))

void train_options_default(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->model = model_default_path();
    o->method = METHOD_LORA;
    /* measured on the built-in base model and its style sets (README "Training", BENCHMARKS.md): rank 8
     * (alpha = rank) LoCon on attention, feed-forward, proj and 3×3 convs, 1000 steps of 4 at 2e-3 with 10%
     * empty captions (so the unconditional branch that classifier-free guidance subtracts learns the
     * style too) — a style in about 3.5 minutes on one core. For SD1.5-sized models kohya's usual 1e-4 and
     * batch 1 apply (give --lr/--batch). */
    o->steps = 1000;
    o->batch = 4;
    o->grad_accum = 1;
    o->lr = 2e-3f;
    o->rank = 8;
    o->caption_dropout = 0.1f;
    o->conv_rank = -1; /* = rank */
    o->clip_skip = 1;
    o->max_grad_norm = 1.0f;
    o->lr_schedule = LR_CONSTANT;
    o->checkpoint_every = 100;
    o->samples = 1;
    o->sample_steps = 20;
    o->sample_strengths = "0,0.5,1";
    o->style_curve = -1;
    o->cache = 1;
    o->fixed_t = -1;
}

void train_options_free(TrainOptions *o) {
    for (int i = 0; i < o->n_owned; i++) free(o->owned[i]);
    o->n_owned = 0;
}

static const Field *find_field(const char *s) {
    for (int i = 0; i < N_FIELDS; i++)
        if ((FIELDS[i].flag && !strcmp(s, FIELDS[i].flag)) || (FIELDS[i].key && !strcmp(s, FIELDS[i].key)))
            return &FIELDS[i];
    if (!strcmp(s, "--output")) return find_field("-o");
    return NULL;
}

static const char *const METHODS[] = {"lora", "locon", "full", "adapter"}; /* TrainMethod order */
static const char *const PRECISIONS[] = {"fp32", "fp16", "bf16"};         /* SavePrecision order */

const char *train_method_name(TrainMethod m) { return METHODS[m]; }

int train_option_takes_value(const char *flag) {
    const Field *f = find_field(flag);
    if (!f || !f->flag || f->flag[0] != '-') return -1;
    return f->kind != K_BOOL && f->kind != K_NOBOOL;
}

/* Parse a truth value: from the CLI (value NULL) a flag means "on" (K_NOBOOL: "off"). */
static int parse_bool(const char *name, const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "1")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0")) *out = 0;
    else return ls_set_error("%s: expected true or false, got '%s'", name, v);
    return LS_OK;
}

static int set_field(TrainOptions *o, const Field *f, const char *name, const char *v, int *consumed) {
    void *p = (char *)o + f->off;
    *consumed = 0;
    if (f->kind == K_BOOL || f->kind == K_NOBOOL) {
        int b = 1;
        if (v) {
            LS_TRY(parse_bool(name, v, &b));
            *consumed = 1;
        }
        else if (f->kind == K_NOBOOL) b = 0; /* "--no-samples" */
        *(int *)p = b;
        return LS_OK;
    }
    if (!v) return ls_set_error("%s: needs a value", name);
    *consumed = 1;
    long n = 0;
    switch (f->kind) {
    case K_STR:
    case K_LIST:
        if (f->kind == K_LIST) {
            float tmp[64];
            if (arg_list(name, v, tmp, 64) < 0) return LS_ERR;
        }
        *(const char **)p = v;
        return LS_OK;
    case K_INT:
        LS_TRY(arg_int(name, v, f->lo, f->hi, &n));
        *(int *)p = (int)n;
        return LS_OK;
    case K_SEED:
        LS_TRY(arg_int(name, v, 0, 2147483647L, &n));
        *(uint64_t *)p = (uint64_t)n;
        return LS_OK;
    case K_FLOAT: {
        float x;
        LS_TRY(arg_float(name, v, &x));
        if (!isfinite(x) || x < 0) return ls_set_error("%s: must be a finite number ≥ 0, got '%s'", name, v);
        if (!strcmp(f->key, "lr") && !(x > 0)) return ls_set_error("%s: must be positive, got '%s'", name, v);
        *(float *)p = x;
        return LS_OK;
    }
    case K_SCHED: {
        LrSchedule s;
        if (train_lr_schedule_from_name(v, &s) < 0) return ls_set_error("%s: unknown schedule '%s' (constant, cosine, linear)", name, v);
        *(LrSchedule *)p = s;
        return LS_OK;
    }
    case K_METHOD:
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, METHODS[i])) {
                *(TrainMethod *)p = (TrainMethod)i;
                return LS_OK;
            }
        return ls_set_error("%s: unknown method '%s' (lora, locon, full, adapter)", name, v);
    case K_PREC:
        for (int i = 0; i < 3; i++)
            if (!strcmp(v, PRECISIONS[i]) || (i == 0 && (!strcmp(v, "float") || !strcmp(v, "fp32")))) {
                *(SavePrecision *)p = (SavePrecision)i;
                return LS_OK;
            }
        return ls_set_error("%s: unknown precision '%s' (fp32, fp16, bf16)", name, v);
    default: return ls_set_error("%s: internal: bad option kind", name);
    }
}

int train_option_set(TrainOptions *o, const char *flag_or_key, const char *value, int *consumed) {
    const Field *f = find_field(flag_or_key);
    if (!f) return ls_set_error("train: unknown option '%s' (see lorastyle train --help)", flag_or_key);
    return set_field(o, f, flag_or_key, value, consumed);
}

int train_options_load_json(TrainOptions *o, const char *path) {
    cJSON *j = json_load_file(path);
    if (!j) return LS_ERR;
    int rc = LS_OK;
    if (!cJSON_IsObject(j)) {
        rc = ls_set_error("%s: a training config must be a JSON object of options", path);
        goto out;
    }
    for (cJSON *it = j->child; it && rc == LS_OK; it = it->next) {
        const Field *f = NULL;
        for (int i = 0; i < N_FIELDS && !f; i++)
            if (FIELDS[i].key && !strcmp(FIELDS[i].key, it->string)) f = &FIELDS[i];
        if (!f) {
            /* informative keys config.json also holds */
            if (!strcmp(it->string, "optimizer") || !strcmp(it->string, "lorastyle")) continue;
            rc = ls_set_error("%s: unknown option \"%s\"", path, it->string);
            break;
        }
        if (cJSON_IsNull(it)) continue;
        char num[64];
        const char *v;
        if (cJSON_IsString(it)) v = it->valuestring;
        else if (cJSON_IsBool(it)) v = cJSON_IsTrue(it) ? "true" : "false";
        else if (cJSON_IsNumber(it)) {
            if (f->kind == K_INT || f->kind == K_SEED) snprintf(num, sizeof num, "%.0f", it->valuedouble);
            else snprintf(num, sizeof num, "%.9g", it->valuedouble);
            if ((f->kind == K_INT || f->kind == K_SEED) && it->valuedouble != floor(it->valuedouble)) {
                rc = ls_set_error("%s: \"%s\" must be a whole number", path, it->string);
                break;
            }
            v = num;
        } else {
            rc = ls_set_error("%s: \"%s\" has an unsupported JSON type", path, it->string);
            break;
        }
        if (f->kind == K_NOBOOL) { /* "samples": true/false (the flag is its negation) */
            int b;
            if (parse_bool(it->string, v, &b) < 0) rc = ls_error_context("%s", path);
            else *(int *)((char *)o + f->off) = b;
            continue;
        }
        if (f->kind == K_STR || f->kind == K_LIST) {
            if (o->n_owned == TRAIN_MAX_OWNED) {
                rc = ls_set_error("%s: too many string options", path);
                break;
            }
            v = o->owned[o->n_owned++] = strdupCheck(v);
        }
        int used;
        if (set_field(o, f, it->string, v, &used) < 0) rc = ls_error_context("%s", path);
    }
out:
    cJSON_Delete(j);
    return rc;
}

char *train_options_to_json(const TrainOptions *o, int resolution) {
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < N_FIELDS; i++) {
        const Field *f = &FIELDS[i];
        if (!f->key) continue;
        const void *p = (const char *)o + f->off;
        switch (f->kind) {
        case K_STR:
        case K_LIST:
            if (*(const char *const *)p) cJSON_AddStringToObject(j, f->key, *(const char *const *)p);
            else cJSON_AddNullToObject(j, f->key);
            break;
        case K_INT: /* below its range: unset (conv_rank's "= rank") */
            if (*(const int *)p < f->lo) cJSON_AddNullToObject(j, f->key);
            else cJSON_AddNumberToObject(j, f->key, !strcmp(f->key, "resolution") ? resolution : *(const int *)p);
            break;
        case K_SEED: cJSON_AddNumberToObject(j, f->key, (double)*(const uint64_t *)p); break;
        case K_FLOAT: cJSON_AddNumberToObject(j, f->key, json_float(*(const float *)p)); break;
        case K_BOOL:
        case K_NOBOOL: cJSON_AddBoolToObject(j, f->key, *(const int *)p); break;
        case K_SCHED: cJSON_AddStringToObject(j, f->key, train_lr_schedule_name(*(const LrSchedule *)p)); break;
        case K_METHOD: cJSON_AddStringToObject(j, f->key, METHODS[*(const TrainMethod *)p]); break;
        case K_PREC: cJSON_AddStringToObject(j, f->key, PRECISIONS[*(const SavePrecision *)p]); break;
        }
    }
    cJSON_AddStringToObject(j, "optimizer", "AdamW beta1=0.9 beta2=0.999 eps=1e-8 weight_decay=0.01 (fp32 state)");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    size_t len = strlen(s);
    s = realloc(s, len + 2);
    LS_ASSERT(s);
    s[len] = '\n', s[len + 1] = 0;
    return s;
}

int train_options_diff(const char *was, const char *now, char *out, size_t cap) {
    cJSON *a = cJSON_Parse(was), *b = cJSON_Parse(now);
    int n = 0;
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; a && b && i < N_FIELDS; i++) {
        const char *k = FIELDS[i].key;
        if (!k || !strcmp(k, "output") || !strcmp(k, "cache_dir")) continue;
        cJSON *x = cJSON_GetObjectItemCaseSensitive(a, k), *y = cJSON_GetObjectItemCaseSensitive(b, k);
        if (!x || !y || cJSON_Compare(x, y, 1)) continue;
        char *xs = cJSON_PrintUnformatted(x), *ys = cJSON_PrintUnformatted(y);
        if (o < cap) o += (size_t)snprintf(out + o, cap - o, "%s%s: %s → %s", n ? "; " : "", k, xs, ys);
        free(xs), free(ys);
        n++;
    }
    cJSON_Delete(a), cJSON_Delete(b);
    return n;
}
