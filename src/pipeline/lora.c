/* lora.c — see lora.h. */
#include "lora.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common.h" // defines: ls_set_error, ls_warn, mallocCheck
#include "lycoris.h" // defines: lyco_loha_delta, lyco_lokr_delta, lyco_dora_update
#include "ops.h"    // defines: op_gemm
#include "sha256.h" // defines: Sha256

const char *lora_module_kind(const LoraModule *m) {
    if (m->bottleneck) return "bottleneck";
    static const char *const kinds[3][2] = {{"LoRA", "LoRA+DoRA"}, {"LoHa", "LoHa+DoRA"}, {"LoKr", "LoKr+DoRA"}};
    if (m->algo == LORA_ALGO_LORA && m->k > 1) return m->dora ? "LoCon+DoRA" : "LoCon";
    return kinds[m->algo][m->dora != NULL];
}

void lora_kind_summary(const Lora *a, char *buf, int cap) {
    const char *kinds[16];
    int counts[16], nk = 0;
    for (int i = 0; i < a->n_mods; i++) {
        const char *k = lora_module_kind(&a->mods[i]);
        int j = 0;
        while (j < nk && strcmp(kinds[j], k)) j++;
        if (j == nk && nk < 16) kinds[nk] = k, counts[nk++] = 0;
        if (j < nk) counts[j]++;
    }
    int len = 0;
    buf[0] = 0;
    for (int j = 0; j < nk && len < cap; j++)
        len += snprintf(buf + len, (size_t)(cap - len), "%s%s %d", j ? ", " : "", kinds[j], counts[j]);
}

const char *lora_format_name(LoraFormat f) {
    switch (f) {
    case LORA_KOHYA: return "kohya/A1111/LyCORIS (lora_unet_/lora_te_ keys)";
    case LORA_PEFT: return "diffusers/PEFT (lora_A/lora_B)";
    case LORA_DIFFUSERS_OLD: return "diffusers attention processors (old format)";
    case LORA_ADAPTER: return "lorastyle bottleneck adapter (adapter_down/adapter_up/alpha)";
    case LORA_MIXED: return "mixed kohya/A1111 and diffusers/PEFT keys";
    }
    return "?";
}

/* ---------------- key classification ---------------- */

enum {
    PART_DOWN, PART_UP, PART_ALPHA, PART_DORA,
    PART_HADA_W1A, PART_HADA_W1B, PART_HADA_W2A, PART_HADA_W2B, PART_HADA_T1, PART_HADA_T2,
    PART_LOKR_W1, PART_LOKR_W1A, PART_LOKR_W1B, PART_LOKR_W2, PART_LOKR_W2A, PART_LOKR_W2B, PART_LOKR_T2,
    N_PARTS
};
/* LyCORIS tensor names after "<kohya name>.", PART_DORA .. N_PARTS - 1 */
static const char *const lyco_parts[N_PARTS] = {
    [PART_DORA] = "dora_scale",
    [PART_HADA_W1A] = "hada_w1_a", [PART_HADA_W1B] = "hada_w1_b", [PART_HADA_W2A] = "hada_w2_a",
    [PART_HADA_W2B] = "hada_w2_b", [PART_HADA_T1] = "hada_t1", [PART_HADA_T2] = "hada_t2",
    [PART_LOKR_W1] = "lokr_w1", [PART_LOKR_W1A] = "lokr_w1_a", [PART_LOKR_W1B] = "lokr_w1_b",
    [PART_LOKR_W2] = "lokr_w2", [PART_LOKR_W2A] = "lokr_w2_a", [PART_LOKR_W2B] = "lokr_w2_b",
    [PART_LOKR_T2] = "lokr_t2",
};

/* Split a file key into (component, module key, part). Module key: kohya's flat name without the
 * lora_unet_/lora_te_/lora_te1_ prefix (*prefix) is kept as is ("down_blocks_0_..."), PEFT/old keys become
 * dotted module paths. Returns 1 if recognised, 0 if not a LoRA key, LS_ERR for a recognised-but-unsupported
 * one. */
static int classify(const char *key, LoraFormat *fmt, int *comp, char *mod, int cap, int *part,
                    const char **prefix) {
    const char *dot = strchr(key, '.');
    static const char *const kohya[] = {"lora_unet_", "lora_te_", "lora_te1_"}; /* te1: SDXL-era name of SD1's */
    int kp = -1;
    for (int i = 0; i < 3; i++)
        if (!strncmp(key, kohya[i], strlen(kohya[i]))) kp = i;
    if (!strncmp(key, "lora_te2_", 9))
        return ls_set_error("key %s: lora_te2_ is SDXL's second text encoder (not SD-1.x)", key);
    if (kp >= 0) {
        if (!dot) return 0;
        *fmt = LORA_KOHYA;
        *comp = kp == 0 ? LORA_UNET : LORA_TE;
        *prefix = kohya[kp];
        const char *flat = key + strlen(kohya[kp]);
        snprintf(mod, (size_t)cap, "%.*s", (int)(dot - flat), flat);
        const char *suf = dot + 1;
        if (!strcmp(suf, "lora_down.weight")) *part = PART_DOWN;
        else if (!strcmp(suf, "lora_up.weight")) *part = PART_UP;
        else if (!strcmp(suf, "alpha")) *part = PART_ALPHA;
        else {
            for (int p = PART_DORA; p < N_PARTS; p++)
                if (!strcmp(suf, lyco_parts[p])) {
                    *part = p;
                    return 1;
                }
            if (!strcmp(suf, "lora_mid.weight"))
                return ls_set_error("key %s: LoCon with a CP-decomposed lora_mid is not supported yet", key);
            return ls_set_error("key %s: unsupported adapter tensor '%s' (lorastyle reads LoRA/LoCon, LoHa, LoKr "
                                "and DoRA)", key, suf);
        }
        return 1;
    }
    /* lorastyle bottleneck adapter: adapter_unet_<flat>.{adapter_down.weight, adapter_up.weight, alpha} */
    if (!strncmp(key, "adapter_unet_", 13) && dot) {
        *fmt = LORA_ADAPTER;
        *comp = LORA_UNET;
        *prefix = "adapter_unet_";
        snprintf(mod, (size_t)cap, "%.*s", (int)(dot - (key + 13)), key + 13);
        const char *suf = dot + 1;
        if (!strcmp(suf, "adapter_down.weight")) *part = PART_DOWN;
        else if (!strcmp(suf, "adapter_up.weight")) *part = PART_UP;
        else if (!strcmp(suf, "alpha")) *part = PART_ALPHA;
        else return ls_set_error("key %s: unsupported bottleneck-adapter tensor '%s'", key, suf);
        return 1;
    }
    /* PEFT: <unet|text_encoder>.<module>.lora_<A|B>.weight */
    const char *ab = strstr(key, ".lora_A.weight");
    if (!ab) ab = strstr(key, ".lora_B.weight");
    if (ab && ab[14] == 0) {
        *fmt = LORA_PEFT;
        *part = ab[6] == 'A' ? PART_DOWN : PART_UP;
        const char *m = key;
        if (!strncmp(key, "unet.", 5)) *comp = LORA_UNET, m += 5;
        else if (!strncmp(key, "text_encoder.", 13)) *comp = LORA_TE, m += 13;
        else if (!strncmp(key, "text_model.", 11)) *comp = LORA_TE; /* bare text-encoder key */
        else *comp = LORA_UNET;                                       /* bare U-Net key */
        snprintf(mod, (size_t)cap, "%.*s", (int)(ab - m), m);
        return 1;
    }
    /* PEFT DoRA: <unet|text_encoder>.<module>.lora_magnitude_vector[.weight] */
    const char *mv = strstr(key, ".lora_magnitude_vector");
    if (mv && (mv[22] == 0 || !strcmp(mv + 22, ".weight"))) {
        *fmt = LORA_PEFT;
        *part = PART_DORA;
        const char *m = key;
        if (!strncmp(key, "unet.", 5)) *comp = LORA_UNET, m += 5;
        else if (!strncmp(key, "text_encoder.", 13)) *comp = LORA_TE, m += 13;
        else if (!strncmp(key, "text_model.", 11)) *comp = LORA_TE;
        else *comp = LORA_UNET;
        snprintf(mod, (size_t)cap, "%.*s", (int)(mv - m), m);
        return 1;
    }
    /* old diffusers: …attn1.processor.to_q_lora.down.weight, …self_attn.to_q_lora.up.weight,
     * …mlp.fc1.lora_linear_layer.down.weight */
    const char *lp = strstr(key, "_lora.");
    const char *ll = strstr(key, ".lora_linear_layer.");
    if (lp || ll) {
        *fmt = LORA_DIFFUSERS_OLD;
        const char *m = key;
        *comp = LORA_UNET;
        if (!strncmp(key, "unet.", 5)) m += 5;
        else if (!strncmp(key, "text_encoder.", 13)) *comp = LORA_TE, m += 13;
        char buf[256];
        const char *tail = lp ? lp + 6 : ll + 19;
        if (!strcmp(tail, "down.weight")) *part = PART_DOWN;
        else if (!strcmp(tail, "up.weight")) *part = PART_UP;
        else return ls_set_error("key %s: unsupported adapter tensor", key);
        if (ll) {
            snprintf(mod, (size_t)cap, "%.*s", (int)(ll - m), m);
            return 1;
        }
        /* "<path>.[processor.]to_X_lora" → "<path>.to_X" (U-Net) or q/k/v/out_proj (text encoder) */
        const char *start = lp; /* points at "_lora." */
        const char *name = start;
        while (name > m && name[-1] != '.') name--;
        int plen = (int)(name - m); /* includes trailing '.' */
        snprintf(buf, sizeof buf, "%.*s", plen, m);
        char *proc = strstr(buf, ".processor.");
        if (proc) memmove(proc, proc + 10, strlen(proc + 10) + 1);
        char proj[32];
        snprintf(proj, sizeof proj, "%.*s", (int)(start - name), name); /* to_q, to_k, to_v, to_out */
        const char *leaf = proj;
        if (*comp == LORA_TE) {
            if (!strcmp(proj, "to_q")) leaf = "q_proj";
            else if (!strcmp(proj, "to_k")) leaf = "k_proj";
            else if (!strcmp(proj, "to_v")) leaf = "v_proj";
            else if (!strcmp(proj, "to_out")) leaf = "out_proj";
        } else if (!strcmp(proj, "to_out")) leaf = "to_out.0";
        if (snprintf(mod, (size_t)cap, "%.200s%s", buf, leaf) >= cap)
            return ls_set_error("key %s: name too long", key);
        return 1;
    }
    return 0;
}

/* ---------------- load ---------------- */

static LoraModule *find_or_add(Lora *a, int *cap, int comp, LoraFormat fmt, const char *key) {
    for (int i = 0; i < a->n_mods; i++)
        if (a->mods[i].component == comp && a->mods[i].format == fmt && !strcmp(a->mods[i].module, key))
            return &a->mods[i];
    if (a->n_mods == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        a->mods = realloc(a->mods, (size_t)*cap * sizeof *a->mods);
        LS_ASSERT(a->mods);
    }
    LoraModule *m = &a->mods[a->n_mods++];
    memset(m, 0, sizeof *m);
    m->module = strdup(key);
    m->component = comp;
    m->format = fmt;
    m->alpha = NAN; /* unset */
    return m;
}

/* PEFT alpha from diffusers' __metadata__["lora_adapter_metadata"] (flattened "<comp>.lora_alpha"). */
static void peft_alpha(const StFile *f, float alpha[2]) {
    alpha[0] = alpha[1] = NAN;
    const char *js = st_meta_get(f, "lora_adapter_metadata");
    if (!js) return;
    cJSON *o = cJSON_Parse(js);
    if (!o) {
        ls_warn("%s: unreadable lora_adapter_metadata; using alpha = rank", f->path);
        return;
    }
    const char *keys[2] = {"unet.lora_alpha", "text_encoder.lora_alpha"};
    for (int c = 0; c < 2; c++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[c]);
        if (cJSON_IsNumber(v) && v->valuedouble > 0) alpha[c] = (float)v->valuedouble;
    }
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "unet.alpha_pattern");
    if (cJSON_IsObject(pat) && pat->child)
        ls_warn("%s: per-module alpha_pattern is not applied (uses lora_alpha for every module)", f->path);
    cJSON_Delete(o);
}

static void short_hash(Lora *a) {
    const uint8_t *p = a->file.map;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)p[i] << (8 * i);
    Sha256 s;
    sha256_init(&s);
    sha256_update(&s, p + 8 + n, a->file.map_size - 8 - n);
    uint8_t d[32];
    char hex[65];
    sha256_final(&s, d);
    sha256_hex(d, hex);
    snprintf(a->hash, sizeof a->hash, "%.12s", hex);
}

/* A tensor of m as float32 (malloc'd) with its shape, for lycoris.c; ndim 0 when absent. */
static int factor_read(const StFile *f, const StTensor *t, LycoFactor *out, float **buf) {
    memset(out, 0, sizeof *out);
    *buf = NULL;
    if (!t) return 0;
    if (t->ndim > 4) return ls_set_error("%s: %s has %d dimensions", f->path, t->name, t->ndim);
    *buf = mallocCheck((size_t)t->numel * sizeof(float));
    if (st_to_f32(f, t, *buf, 1) < 0) return LS_ERR;
    out->d = *buf;
    out->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) out->shape[i] = t->shape[i];
    return 0;
}

/* LoHa / LoKr: materialise ΔW·scale into m->delta (lycoris.h). */
static int module_read_lyco(Lora *a, LoraModule *m, const StTensor *const *pt, const char *pre) {
    const StFile *f = &a->file;
    int loha = m->algo == LORA_ALGO_LOHA, first = loha ? PART_HADA_W1A : PART_LOKR_W1;
    int last = loha ? PART_HADA_T2 : PART_LOKR_T2, rc = 0;
    if (loha)
        for (int p = PART_HADA_W1A; p <= PART_HADA_W2B; p++)
            if (!pt[p]) return ls_set_error("%s: %s module %s (LoHa) has no %s", f->path, pre, m->module, lyco_parts[p]);
    LycoFactor fac[N_PARTS];
    float *buf[N_PARTS] = {0};
    for (int p = first; p <= last && rc == 0; p++) {
        rc = factor_read(f, pt[p], &fac[p], &buf[p]);
        if (pt[p]) a->n_params += pt[p]->numel;
    }
    char why[200] = "";
    if (rc == 0 && loha)
        rc = lyco_loha_delta(&fac[PART_HADA_W1A], &fac[PART_HADA_W1B], &fac[PART_HADA_W2A], &fac[PART_HADA_W2B],
                             &fac[PART_HADA_T1], &fac[PART_HADA_T2], &m->delta, &m->out, &m->in, &m->k, why,
                             sizeof why);
    else if (rc == 0)
        rc = lyco_lokr_delta(&fac[PART_LOKR_W1], &fac[PART_LOKR_W1A], &fac[PART_LOKR_W1B], &fac[PART_LOKR_W2],
                             &fac[PART_LOKR_W2A], &fac[PART_LOKR_W2B], &fac[PART_LOKR_T2], &m->delta, &m->out,
                             &m->in, &m->k, why, sizeof why);
    for (int p = first; p <= last; p++) free(buf[p]);
    if (rc < 0 && why[0])
        return ls_set_error("%s: %s module %s (%s): %s", f->path, pre, m->module, loha ? "LoHa" : "LoKr", why);
    if (rc < 0) return rc;
    /* rank as A1111/ComfyUI take it: LoHa hada_w1_b's rows; LoKr lokr_w2_b's, else lokr_w1_b's, else none */
    const StTensor *rk = loha ? pt[PART_HADA_W1B] : pt[PART_LOKR_W2B] ? pt[PART_LOKR_W2B] : pt[PART_LOKR_W1B];
    m->rank = rk ? (int)rk->shape[0] : 0;
    m->flat = m->k == 1; /* a 1×1 kernel or factors that do not say k: attach matches in·k·k */
    float scale = 1.0f;
    if (m->rank > 0 && !isnan(m->alpha) && m->alpha != 0.0f) scale = m->alpha / (float)m->rank;
    if (!isfinite(scale)) return ls_set_error("%s: %s module %s has a non-finite alpha", f->path, pre, m->module);
    if (isnan(m->alpha) || m->alpha == 0.0f) m->alpha = (float)m->rank;
    size_t n = (size_t)m->out * m->in * m->k * m->k;
    for (size_t i = 0; i < n; i++) m->delta[i] *= scale;
    float *dev = op_alloc(n * sizeof(float)); /* built on the host (lycoris.c); the ops read it from the backend */
    memcpy(dev, m->delta, n * sizeof(float));
    free(m->delta);
    m->delta = dev;
    return 0;
}

/* Check and read one module's tensors (pt: by part) into m. LS_ERR naming the file and module. */
static int module_read(Lora *a, LoraModule *m, const StTensor *const *pt, const float palpha[2]) {
    const StFile *f = &a->file;
    const char *path = f->path, *pre = m->component == LORA_UNET ? "unet" : "text encoder";
    int has_lora = pt[PART_DOWN] || pt[PART_UP], has_loha = 0, has_lokr = 0;
    for (int p = PART_HADA_W1A; p <= PART_HADA_T2; p++) has_loha |= pt[p] != NULL;
    for (int p = PART_LOKR_W1; p <= PART_LOKR_T2; p++) has_lokr |= pt[p] != NULL;
    if (has_lora + has_loha + has_lokr > 1)
        return ls_set_error("%s: %s module %s mixes %s tensors", path, pre, m->module,
                            has_loha && has_lokr ? "LoHa and LoKr" : has_loha ? "LoRA and LoHa" : "LoRA and LoKr");
    if (!has_lora && !has_loha && !has_lokr)
        return ls_set_error("%s: %s module %s has only %s", path, pre, m->module,
                            pt[PART_DORA] ? "a DoRA magnitude (no down/up, LoHa or LoKr tensors)" : "an alpha");
    if (pt[PART_DORA] && m->format == LORA_ADAPTER)
        return ls_set_error("%s: bottleneck module %s cannot have a DoRA magnitude", path, m->module);
    int rc = 0;
    if (has_loha || has_lokr) {
        m->algo = has_loha ? LORA_ALGO_LOHA : LORA_ALGO_LOKR;
        rc = module_read_lyco(a, m, pt, pre);
    } else {
        const StTensor *d = pt[PART_DOWN], *u = pt[PART_UP];
        if (!d || !u)
            return ls_set_error("%s: %s module %s has no %s matrix", path, pre, m->module,
                                d ? "up (lora_up / lora_B)" : "down (lora_down / lora_A)");
        if (m->format == LORA_ADAPTER &&
            (d->ndim != 2 || u->ndim != 2 || d->shape[1] != u->shape[0] || d->shape[0] != u->shape[1]))
            return ls_set_error("%s: bottleneck module %s: down %s / up %s are not a (r, C) / (C, r) pair", path,
                                m->module, d->name, u->name);
        m->bottleneck = m->format == LORA_ADAPTER;
        int conv = d->ndim == 4;
        int ok = (d->ndim == 2 || (conv && d->shape[2] == d->shape[3])) &&
                 (u->ndim == 2 || (u->ndim == 4 && u->shape[2] == 1 && u->shape[3] == 1)) &&
                 d->shape[0] == u->shape[1] && d->shape[0] > 0;
        if (!ok)
            return ls_set_error("%s: %s module %s: down %s / up %s shapes are not a rank-r pair", path, pre,
                                m->module, d->name, u->name);
        m->rank = (int)d->shape[0];
        m->in = d->shape[1];
        m->k = conv ? (int)d->shape[2] : 1;
        m->as_conv = conv;
        m->out = u->shape[0];
        if (m->format == LORA_PEFT && !isnan(palpha[m->component])) m->alpha = palpha[m->component];
        if (isnan(m->alpha) || m->alpha == 0.0f) m->alpha = (float)m->rank; /* missing/0 → scale 1 */
        if (!isfinite(m->alpha))
            return ls_set_error("%s: %s module %s has a non-finite alpha", path, pre, m->module);
        m->down = op_alloc((size_t)d->numel * sizeof(float)); /* the backend's memory: the ops read them */
        m->up = op_alloc((size_t)u->numel * sizeof(float));
        if (st_to_f32(f, d, m->down, 1) < 0 || st_to_f32(f, u, m->up, 1) < 0) rc = LS_ERR;
        a->n_params += d->numel + u->numel;
    }
    if (rc < 0 || !pt[PART_DORA]) return rc;
    /* DoRA magnitude: PEFT's is per output row; kohya/LyCORIS dora_scale is (out, 1, …) per output row or
     * (1, in, …) per input channel (the first dimension tells, as ComfyUI reads it) */
    const StTensor *t = pt[PART_DORA];
    m->dora_axis = m->format == LORA_PEFT ? 0 : !(t->shape[0] == m->out && t->numel == m->out);
    int64_t want = m->dora_axis == 0 ? m->out : m->flat ? -1 : m->in;
    if ((want >= 0 && t->numel != want) || (m->dora_axis == 1 && t->ndim > 0 && t->shape[0] != 1))
        return ls_set_error("%s: %s module %s: DoRA magnitude %s has %lld values, not one per %s (%lld)", path, pre,
                            m->module, t->name, (long long)t->numel, m->dora_axis ? "input channel" : "output row",
                            (long long)(m->dora_axis ? m->in : m->out));
    m->n_dora = t->numel;
    m->dora = op_alloc((size_t)t->numel * sizeof(float));
    if (st_to_f32(f, t, m->dora, 1) < 0) return LS_ERR;
    a->n_params += t->numel;
    return 0;
}

int lora_load(Lora *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->strength[0] = a->strength[1] = 1.0f;
    a->path = strdup(path);
    const char *b = strrchr(path, '/');
    snprintf(a->name, sizeof a->name, "%s", b ? b + 1 : path);
    char *dot = strstr(a->name, ".safetensors");
    if (dot && dot[12] == 0) *dot = 0;
    if (st_open(&a->file, path) < 0) {
        char e[1024];
        snprintf(e, sizeof e, "%s", ls_last_error());
        lora_free(a);
        return ls_set_error("%s", e);
    }
    StFile *f = &a->file;
    const char *ckfmt = st_meta_get(f, "format");
    if (train_is_checkpoint_format(ckfmt)) { /* OUT/checkpoint.safetensors of `lorastyle train` */
        lora_free(a);
        return ls_set_error("%s: a training checkpoint (for `lorastyle train --resume`), not an adapter: use the "
                            "NAME.safetensors beside it", path);
    }
    int cap = 0, have_fmt = 0, rc = 0;
    char mod[512];
    const StTensor *(*pt)[N_PARTS] = NULL; /* per module: its tensors by part */
    for (int i = 0; i < f->n_tensors && rc == 0; i++) {
        const StTensor *t = &f->tensors[i];
        LoraFormat fmt = LORA_KOHYA;
        int comp = 0, part = 0;
        const char *prefix = NULL;
        int k = classify(t->name, &fmt, &comp, mod, sizeof mod, &part, &prefix);
        if (k < 0) {
            rc = ls_error_context("%s", path);
            break;
        }
        if (k == 0) {
            rc = ls_set_error("%s: key %s is not a LoRA tensor (not an SD-1.x LoRA/LoCon file?)", path,
                              t->name);
            break;
        }
        /* kohya, PEFT and old diffusers keys may share a file (A1111 and ComfyUI read them key by key); a
         * bottleneck adapter is lorastyle's own format and comes alone */
        if (have_fmt && fmt != a->format && (fmt == LORA_ADAPTER || a->format == LORA_ADAPTER)) {
            rc = ls_set_error("%s: key %s mixes a bottleneck adapter with LoRA keys", path, t->name);
            break;
        }
        a->format = have_fmt && fmt != a->format ? LORA_MIXED : fmt;
        have_fmt = 1;
        int before = a->n_mods;
        LoraModule *m = find_or_add(a, &cap, comp, fmt, mod);
        m->prefix = prefix;
        if (a->n_mods != before) { /* grew: keep the tensor pointer array in step */
            pt = realloc(pt, (size_t)cap * sizeof *pt);
            LS_ASSERT(pt);
            memset(pt[a->n_mods - 1], 0, sizeof pt[0]);
        }
        int idx = (int)(m - a->mods);
        if (part == PART_ALPHA) {
            if (t->numel != 1) {
                rc = ls_set_error("%s: %s must hold one value", path, t->name);
                break;
            }
            float v;
            if (st_to_f32(f, t, &v, 1) < 0) rc = LS_ERR;
            m->alpha = v;
        } else {
            pt[idx][part] = t;
        }
    }
    if (rc == 0 && a->n_mods == 0) rc = ls_set_error("%s: no LoRA tensors in this file", path);
    float palpha[2] = {NAN, NAN};
    if (rc == 0 && (a->format == LORA_PEFT || a->format == LORA_MIXED)) peft_alpha(f, palpha);
    for (int i = 0; rc == 0 && i < a->n_mods; i++) {
        LoraModule *m = &a->mods[i];
        rc = module_read(a, m, pt[i], palpha);
        if (rc < 0) break;
        if (m->component == LORA_UNET) a->n_unet++;
        else a->n_te++;
        if (m->k > 1) a->n_conv++;
    }
    free(pt);
    if (rc < 0) {
        char e[1024];
        snprintf(e, sizeof e, "%s", ls_last_error());
        lora_free(a);
        return ls_set_error("%s", e);
    }
    short_hash(a);
    return LS_OK;
}

void lora_free(Lora *a) {
    if (a->attached) lora_detach(a);
    for (int i = 0; i < a->n_mods; i++) {
        free(a->mods[i].module);
        op_free(a->mods[i].down);
        op_free(a->mods[i].up);
        op_free(a->mods[i].ddown);
        op_free(a->mods[i].dup);
        op_free(a->mods[i].delta);
        op_free(a->mods[i].dora);
        op_free(a->mods[i].dora_delta);
    }
    free(a->mods);
    free(a->path);
    st_close(&a->file);
    memset(a, 0, sizeof *a);
}

/* ---------------- attach / merge ---------------- */

/* kohya flat name of a module path: '.' → '_' */
static void flatten(const char *path, char *out, int cap) {
    snprintf(out, (size_t)cap, "%s", path);
    for (char *p = out; *p; p++)
        if (*p == '.') *p = '_';
}

static const ModuleSpec *resolve(const LoraModule *lm, const Model *m) {
    const WeightTable *t = lm->component == LORA_UNET ? &m->unet.wt : &m->clip.wt;
    if (lm->format == LORA_KOHYA || lm->format == LORA_ADAPTER) {
        char flat[512];
        for (int i = 0; i < t->n_mods; i++) {
            flatten(t->mods[i].name, flat, sizeof flat);
            if (!strcmp(flat, lm->module)) return &t->mods[i];
        }
        return NULL;
    }
    const ModuleSpec *s = wt_find_module(t, lm->module);
    if (!s && lm->component == LORA_TE) { /* PEFT keys from flattened CLIPTextModel lack text_model. */
        char buf[512];
        snprintf(buf, sizeof buf, "text_model.%s", lm->module);
        s = wt_find_module(t, buf);
    }
    return s;
}

static LoraHook **hook_list(LoraModule *lm) {
    if (lm->bottleneck) return &((Linear *)lm->layer)->adapter;
    return lm->kind == MOD_LINEAR ? &((Linear *)lm->layer)->lora : &((Conv2d *)lm->layer)->lora;
}

/* The layer's weights before any adapter was merged into it. */
static const float *base_weights(const LoraModule *lm) {
    if (lm->kind == MOD_LINEAR) {
        const Linear *l = lm->layer;
        return l->w_base ? l->w_base : l->w;
    }
    const Conv2d *c = lm->layer;
    return c->w_base ? c->w_base : c->w;
}

/* DoRA: dora_delta = D − W at strength 1 (lora.h), against the attached layer's base weights. */
static void dora_prepare(LoraModule *lm) {
    int kk = lm->k * lm->k;
    size_t n = (size_t)lm->out * lm->in * kk;
    op_free(lm->dora_delta);
    lm->dora_delta = op_alloc(n * sizeof(float));
    if (lm->delta) memcpy(lm->dora_delta, lm->delta, n * sizeof(float));
    else /* ΔW = scale·up·down */
        op_gemm(lm->dora_delta, lm->up, lm->down, (int)lm->out, (int)(lm->in * kk), lm->rank, 0, 0,
                lm->alpha / (float)lm->rank, 0.0f);
    op_sync(); /* the update below runs on the host */
    lyco_dora_update(lm->dora_delta, base_weights(lm), lm->dora, lm->out, lm->in, kk, lm->dora_axis);
}

int lora_attach(Lora *a, Model *m, int lenient) {
    if (a->attached) return ls_set_error("%s: adapter is already attached", a->path);
    int kept = 0;
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *lm = &a->mods[i];
        const char *pre = lm->prefix ? lm->prefix : "";
        const ModuleSpec *s = resolve(lm, m);
        char why[256] = "";
        int twin = -1; /* an earlier module of this file on the same layer (the same module in two key styles) */
        for (int j = 0; s && j < i; j++)
            if (a->mods[j].layer == s->layer && a->mods[j].bottleneck == lm->bottleneck) twin = j;
        if (!s) snprintf(why, sizeof why, "matches no module of the model");
        else if (twin >= 0)
            snprintf(why, sizeof why, "adapts %s, as module %s%s of this file already does (one layer in two key "
                     "styles)", s->name, a->mods[twin].prefix ? a->mods[twin].prefix : "", a->mods[twin].module);
        else if (lm->bottleneck) {
            const Linear *l = s->layer;
            if (s->kind != MOD_LINEAR) snprintf(why, sizeof why, "is a bottleneck adapter but %s is a conv", s->name);
            else if (lm->in != l->out)
                snprintf(why, sizeof why, "is a %lld-wide bottleneck adapter but %s outputs %d", (long long)lm->in,
                         s->name, l->out);
        } else if (s->kind == MOD_LINEAR) {
            const Linear *l = s->layer;
            if (lm->k != 1 || lm->in != l->in || lm->out != l->out)
                snprintf(why, sizeof why, "is %lld→%lld (k=%d) but %s is Linear %d→%d", (long long)lm->in,
                         (long long)lm->out, lm->k, s->name, l->in, l->out);
        } else {
            const Conv2d *c = s->layer;
            if (lm->flat && lm->k == 1 && c->k > 1 && lm->in == (int64_t)c->cin * c->k * c->k && lm->out == c->cout)
                lm->in = c->cin, lm->k = c->k, lm->flat = 0; /* LoHa/LoKr factors flattened (r, in·k·k) */
            if ((lm->k != c->k) || lm->in != c->cin || lm->out != c->cout)
                snprintf(why, sizeof why, "is %lld→%lld (k=%d) but %s is a %d×%d conv %d→%d", (long long)lm->in,
                         (long long)lm->out, lm->k, s->name, c->k, c->k, c->cin, c->cout);
        }
        if (!why[0] && lm->dora && lm->dora_axis == 1 && lm->n_dora != lm->in)
            snprintf(why, sizeof why, "has a DoRA magnitude of %lld values but %s has %lld input channels",
                     (long long)lm->n_dora, s->name, (long long)lm->in);
        if (why[0]) {
            if (!lenient) {
                /* undo what was attached so far */
                for (int j = 0; j < i; j++)
                    if (a->mods[j].layer) {
                        LoraHook **pp = hook_list(&a->mods[j]);
                        while (*pp && *pp != &a->mods[j].hook) pp = &(*pp)->next;
                        if (*pp) *pp = a->mods[j].hook.next;
                        a->mods[j].layer = NULL;
                    }
                return ls_set_error("%s: module %s%s %s%s", a->path, pre, lm->module, why,
                                    twin >= 0 ? "" : " (another architecture? --lenient skips such keys)");
            }
            ls_warn("%s: skipping module %s: %s", a->path, lm->module, why);
            lm->layer = NULL;
            continue;
        }
        lm->layer = s->layer;
        lm->kind = s->kind;
        lm->hook = (LoraHook){.down = lm->down, .up = lm->up, .rank = lm->rank, .delta = lm->delta,
                              .scale = lm->delta ? 1.0f : lm->alpha / (float)lm->rank,
                              .strength = &a->strength[lm->component], .ddown = lm->ddown, .dup = lm->dup};
        if (lm->dora) {
            dora_prepare(lm);
            lm->hook.delta = lm->dora_delta;
            lm->hook.scale = 1.0f;
        }
        LoraHook **head = hook_list(lm);
        lm->hook.next = *head;
        *head = &lm->hook;
        kept++;
    }
    if (kept == 0) return ls_set_error("%s: no module of this adapter matches the model", a->path);
    a->attached = 1;
    return LS_OK;
}

/* w (out, in·k·k) += c · up (out, r) · down (r, in·k·k), or += c · the hook's full ΔW */
static void add_delta(LoraModule *lm, float c) {
    float *w = lm->kind == MOD_LINEAR ? ((Linear *)lm->layer)->w : ((Conv2d *)lm->layer)->w;
    if (lm->hook.delta) {
        size_t n = (size_t)lm->out * lm->in * lm->k * lm->k;
        for (size_t i = 0; i < n; i++) w[i] += c * lm->hook.delta[i];
        return;
    }
    op_gemm(w, lm->up, lm->down, (int)lm->out, (int)(lm->in * lm->k * lm->k), lm->rank, 0, 0, c, 1.0f);
}

static float **layer_w(LoraModule *lm, float ***base) {
    if (lm->kind == MOD_LINEAR) {
        Linear *l = lm->layer;
        *base = &l->w_base;
        return &l->w;
    }
    Conv2d *c = lm->layer;
    *base = &c->w_base;
    return &c->w;
}

void lora_merge(Lora *a) {
    if (!a->attached || a->merged) return;
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *lm = &a->mods[i];
        if (!lm->layer || lm->bottleneck) continue; /* nonlinear: stays live */
        float **base, **w = layer_w(lm, &base);
        if (!*base) { /* first merge into this layer: work on a private copy of its weights */
            size_t n = (size_t)lm->out * lm->in * lm->k * lm->k;
            float *copy = op_alloc(n * sizeof(float));
            op_sync(); /* an earlier merge's ops may still write *w */
            memcpy(copy, *w, n * sizeof(float));
            *base = *w;
            *w = copy;
        }
        lm->hook.merged_strength = a->strength[lm->component];
        if (lm->hook.merged_strength != 0.0f) add_delta(lm, lm->hook.merged_strength * lm->hook.scale);
        lm->hook.merged = 1;
    }
    a->merged = 1;
}

void lora_unmerge(Lora *a) {
    if (!a->merged) return;
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *lm = &a->mods[i];
        if (!lm->layer || lm->bottleneck) continue;
        lm->hook.merged = 0;
        /* restore exactly when no other adapter is still merged into this layer */
        int others = 0;
        for (LoraHook *h = *hook_list(lm); h; h = h->next) others |= h->merged;
        float **base, **w = layer_w(lm, &base);
        if (!others) {
            op_free(*w);
            *w = *base;
            *base = NULL;
        } else if (lm->hook.merged_strength != 0.0f) {
            add_delta(lm, -lm->hook.merged_strength * lm->hook.scale);
        }
    }
    a->merged = 0;
}

int lora_is_mergeable(const Lora *a) {
    for (int i = 0; i < a->n_mods; i++)
        if (a->mods[i].bottleneck) return 0;
    return 1;
}

void lora_detach(Lora *a) {
    if (!a->attached) return;
    lora_unmerge(a);
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *lm = &a->mods[i];
        if (!lm->layer) continue;
        LoraHook **pp = hook_list(lm);
        while (*pp && *pp != &lm->hook) pp = &(*pp)->next;
        if (*pp) *pp = lm->hook.next;
        lm->layer = NULL;
    }
    a->attached = 0;
}

void lora_set_strength(Lora *a, float unet, float te) {
    a->strength[LORA_UNET] = unet;
    a->strength[LORA_TE] = te;
    if (!a->merged) return; /* unmerged: the hooks read the new value on the next call */
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *lm = &a->mods[i];
        if (!lm->layer || lm->bottleneck) continue;
        float s = a->strength[lm->component], d = s - lm->hook.merged_strength;
        if (d != 0.0f) add_delta(lm, d * lm->hook.scale);
        lm->hook.merged_strength = s;
    }
}

/* ---------------- specs and prompt tags ---------------- */

static int parse_scale(const char *s, size_t n, float *out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    float v = strtof(buf, &end);
    if (errno || *end || end == buf || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int lora_parse_spec(const char *spec, char *path, int cap, float *unet, float *te) {
    *unet = *te = 1.0f;
    if ((int)strlen(spec) >= cap) return ls_set_error("--lora %s: path too long", spec);
    if (ls_file_exists(spec)) {
        snprintf(path, (size_t)cap, "%s", spec);
        return 0;
    }
    const char *c1 = strrchr(spec, ':');
    if (!c1) {
        snprintf(path, (size_t)cap, "%s", spec);
        return 0;
    }
    float v1, v2;
    if (parse_scale(c1 + 1, strlen(c1 + 1), &v1) < 0)
        return ls_set_error("--lora %s: malformed scale '%s' (use FILE[:SCALE[:TE_SCALE]])", spec, c1 + 1);
    const char *c0 = c1;
    while (c0 > spec && c0[-1] != ':') c0--;
    if (c0 > spec && parse_scale(c0, (size_t)(c1 - c0), &v2) == 0) { /* FILE:SCALE:TE_SCALE */
        *unet = v2;
        *te = v1;
        snprintf(path, (size_t)cap, "%.*s", (int)(c0 - 1 - spec), spec);
    } else {
        *unet = *te = v1;
        snprintf(path, (size_t)cap, "%.*s", (int)(c1 - spec), spec);
    }
    return 0;
}

static int tags_fail(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    return LS_ERR;
}

int lora_extract_prompt_tags(char *prompt, char **names, float *te, float *unet, int cap) {
    int n = 0;
    char *p;
    while ((p = strstr(prompt, "<lora:"))) {
        char *end = strchr(p, '>');
        if (!end) return ls_set_error("prompt: unterminated <lora:...> tag"), tags_fail(names, n);
        if (n == cap) return ls_set_error("prompt: more than %d <lora:...> tags", cap), tags_fail(names, n);
        /* fields between ':' inside the tag */
        char body[512];
        size_t len = (size_t)(end - (p + 6));
        if (len >= sizeof body) return ls_set_error("prompt: <lora:...> tag too long"), tags_fail(names, n);
        memcpy(body, p + 6, len);
        body[len] = 0;
        char *field[8];
        int nf = 0;
        for (char *s = body, *c; nf < 8; s = c + 1) {
            field[nf++] = s;
            if (!(c = strchr(s, ':'))) break;
            *c = 0;
        }
        if (!field[0][0]) return ls_set_error("prompt: <lora:...> tag without a name"), tags_fail(names, n);
        float t = 1.0f, u = NAN;
        int pos = 0;
        for (int i = 1; i < nf; i++) {
            const char *v = field[i];
            float *dst = NULL;
            if (!strncmp(v, "te=", 3)) dst = &t, v += 3;
            else if (!strncmp(v, "unet=", 5)) dst = &u, v += 5;
            else dst = pos++ == 0 ? &t : &u; /* A1111: first number = te multiplier, second = unet */
            if (parse_scale(v, strlen(v), dst) < 0)
                return ls_set_error("prompt: <lora:%s:...>: malformed scale '%s'", field[0], field[i]),
                       tags_fail(names, n);
        }
        if (isnan(u)) u = t; /* A1111: unet defaults to the te multiplier */
        names[n] = strdup(field[0]);
        te[n] = t;
        unet[n] = u;
        n++;
        memmove(p, end + 1, strlen(end + 1) + 1); /* remove the tag from the prompt text */
    }
    return n;
}
