/* lora_train.c — LoRA and bottleneck-adapter training: gradient buffers, new adapters, saving (see lora.h,
 * "training"). */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "common.h" // defines: callocCheck, ls_set_error
#include "lora.h"   // defines: Lora, LoraModule
#include "ops.h"    // defines: op_alloc, op_zalloc, op_sync
#include "rng.h"    // defines: rng_uniform, rng_mix64
#include "sha256.h" // defines: sha256_file_kohya

static size_t down_numel(const LoraModule *m) { return (size_t)m->rank * m->in * m->k * m->k; }
static size_t up_numel(const LoraModule *m) { return (size_t)m->out * m->rank; }

/* The file key of a module's down (part 0), up (1) or alpha (2): kohya's lora_unet_/lora_te_ names, or
 * adapter_unet_ names for a bottleneck module. */
static void module_key(const LoraModule *lm, int part, char *key, int cap) {
    static const char *const lora_parts[3] = {"lora_down.weight", "lora_up.weight", "alpha"};
    static const char *const adapter_parts[3] = {"adapter_down.weight", "adapter_up.weight", "alpha"};
    const char *pre = lm->bottleneck ? "adapter_unet_" : lm->component == LORA_UNET ? "lora_unet_" : "lora_te_";
    snprintf(key, (size_t)cap, "%s%s.%s", pre, lm->module, (lm->bottleneck ? adapter_parts : lora_parts)[part]);
}

int lora_grads_alloc(Lora *a) {
    if (!a->attached) return ls_set_error("%s: attach the adapter before allocating gradients", a->path);
    if (a->merged) return ls_set_error("%s: a merged adapter cannot be trained (unmerge it)", a->path);
    for (int i = 0; i < a->n_mods; i++)
        if (a->mods[i].algo != LORA_ALGO_LORA || a->mods[i].dora)
            return ls_set_error("%s: module %s is %s: only LoRA/LoCon and bottleneck adapters can be trained", a->path,
                                a->mods[i].module, lora_module_kind(&a->mods[i]));
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *m = &a->mods[i];
        if (!m->ddown) m->ddown = op_zalloc(down_numel(m) * sizeof(float)); /* the backend's memory */
        if (!m->dup) m->dup = op_zalloc(up_numel(m) * sizeof(float));
        m->hook.ddown = m->ddown; /* the hook is what the layers see */
        m->hook.dup = m->dup;
    }
    return LS_OK;
}

void lora_grads_zero(Lora *a) {
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *m = &a->mods[i];
        if (m->ddown) memset(m->ddown, 0, down_numel(m) * sizeof(float));
        if (m->dup) memset(m->dup, 0, up_numel(m) * sizeof(float));
    }
}

double lora_grads_sumsq(const Lora *a) {
    double s = 0;
    for (int i = 0; i < a->n_mods; i++) {
        const LoraModule *m = &a->mods[i];
        size_t nd = m->ddown ? down_numel(m) : 0, nu = m->dup ? up_numel(m) : 0;
        for (size_t j = 0; j < nd; j++) s += (double)m->ddown[j] * m->ddown[j];
        for (size_t j = 0; j < nu; j++) s += (double)m->dup[j] * m->dup[j];
    }
    return s;
}

/* ---------------- new adapters (lora_create) and kohya output (lora_save_kohya) ---------------- */

/* The --targets groups (lora.h): module-path suffixes, NULL-terminated ("all" = every group). conv1/conv2
 * are the resnets' (no other U-Net layer has those names). */
typedef struct {
    const char *name;
    const char *suffixes[9];
} TargetGroup;
static const TargetGroup k_groups[] = {
    {"attn", {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
              "attn2.to_out.0"}},
    {"ff", {"ff.net.0.proj", "ff.net.2"}},
    {"proj", {"proj_in", "proj_out"}},
    {"conv", {"conv1", "conv2", "downsamplers.0.conv", "upsamplers.0.conv"}},
};
#define N_GROUPS ((int)(sizeof k_groups / sizeof *k_groups))
#define MAX_TARGETS 64

/* 1 if name is suffix or ends with "." suffix */
static int ends_with_part(const char *name, const char *suffix) {
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && !strcmp(name + n - s, suffix) && (n == s || name[n - s - 1] == '.');
}

static int in_group(const TargetGroup *g, const char *name) {
    for (const char *const *suf = g->suffixes; *suf; suf++)
        if (ends_with_part(name, *suf)) return 1;
    return 0;
}

/* 1 if the --targets entry e (a group name, "all" or a module-path suffix) selects the module name */
static int target_matches(const char *e, const char *name) {
    for (int g = 0; g < N_GROUPS; g++)
        if (!strcmp(e, k_groups[g].name)) return in_group(&k_groups[g], name);
    if (strcmp(e, "all")) return ends_with_part(name, e);
    for (int g = 0; g < N_GROUPS; g++)
        if (in_group(&k_groups[g], name)) return 1;
    return 0;
}

/* Split targets at commas into buf, trimming spaces: the entries in e (at most MAX_TARGETS). */
static int split_targets(const char *targets, char *buf, size_t cap, const char **e, int *n) {
    if (strlen(targets) >= cap) return ls_set_error("--targets: too long (%zu characters)", strlen(targets));
    memcpy(buf, targets, strlen(targets) + 1);
    *n = 0;
    for (char *p = buf;;) {
        char *end = strchr(p, ','), *q;
        if (end) *end = 0;
        while (*p == ' ') p++;
        for (q = p + strlen(p); q > p && q[-1] == ' ';) *--q = 0;
        if (!*p) return ls_set_error("--targets '%s': an empty entry", targets);
        if (*n == MAX_TARGETS) return ls_set_error("--targets: more than %d entries", MAX_TARGETS);
        e[(*n)++] = p;
        if (!end) return LS_OK;
        p = end + 1;
    }
}


/* kohya's initialisation of a new module: down ~ U(±1/√fan_in) (kaiming_uniform(a=√5), fan_in = in·k·k)
 * from the portable RNG, one stream per module keyed by seed and its index; up = 0, so the attached
 * adapter starts as the identity. */
static void lora_init_module(LoraModule *lm, uint64_t seed, int index) {
    size_t nd = down_numel(lm), nu = up_numel(lm);
    lm->down = op_alloc(nd * sizeof(float));
    lm->up = op_zalloc(nu * sizeof(float));
    float bound = 1.0f / sqrtf((float)(lm->in * lm->k * lm->k));
    rng_uniform(lm->down, nd, rng_mix64(seed ^ rng_mix64(0x4c6f5241ULL + (uint64_t)index)), 0);
    for (size_t j = 0; j < nd; j++) lm->down[j] = (2.0f * lm->down[j] - 1.0f) * bound;
}

/* Append a new U-Net module lm (in, out, k, bottleneck set) for the model module `path`: kohya flat name,
 * rank r, alpha al (≤ 0: r), down initialised, up = 0. */
static void push_module(Lora *a, int *cap, const char *path, LoraModule lm, int r, float al, uint64_t seed) {
    if (a->n_mods == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        a->mods = realloc(a->mods, (size_t)*cap * sizeof *a->mods);
        LS_ASSERT(a->mods);
    }
    char flat[512];
    snprintf(flat, sizeof flat, "%s", path);
    for (char *p = flat; *p; p++)
        if (*p == '.') *p = '_';
    lm.module = strdupCheck(flat);
    lm.component = LORA_UNET;
    lm.format = lm.bottleneck ? LORA_ADAPTER : LORA_KOHYA;
    lm.prefix = lm.bottleneck ? "adapter_unet_" : "lora_unet_";
    lm.rank = r;
    lm.alpha = al > 0 ? al : (float)r;
    size_t nd = down_numel(&lm), nu = up_numel(&lm);
    lora_init_module(&lm, seed, a->n_mods);
    a->n_params += (int64_t)(nd + nu);
    a->n_unet++;
    if (lm.k > 1) a->n_conv++;
    a->mods[a->n_mods++] = lm;
}

/* what an adapter made here (not loaded from a file) starts as: no modules, strength 1 */
static void new_adapter(Lora *a, LoraFormat format) {
    a->strength[0] = a->strength[1] = 1.0f;
    a->path = strdupCheck("(new adapter)");
    snprintf(a->name, sizeof a->name, "new");
    a->format = format;
}

int lora_create(Lora *a, Model *m, const char *targets, int rank, float alpha, int conv_rank, float conv_alpha,
                uint64_t seed) {
    memset(a, 0, sizeof *a);
    if (rank < 1) return ls_set_error("LoRA rank must be at least 1 (got %d)", rank);
    if (conv_rank < 0) return ls_set_error("LoCon rank must be at least 0 (got %d)", conv_rank);
    char buf[1024];
    const char *e[MAX_TARGETS];
    int n_e = 0, hits[MAX_TARGETS] = {0};
    LS_TRY(split_targets(targets ? targets : "all", buf, sizeof buf, e, &n_e));
    new_adapter(a, LORA_KOHYA);
    const WeightTable *t = &m->unet.wt;
    int cap = 0;
    for (int i = 0; i < t->n_mods; i++) { /* in table order: a module's RNG stream is its index */
        const ModuleSpec *s = &t->mods[i];
        int by = -1; /* the entry that selects s: one naming it rather than "all" */
        for (int j = 0; j < n_e; j++)
            if (target_matches(e[j], s->name)) {
                hits[j]++;
                if (by < 0 || !strcmp(e[by], "all")) by = j;
            }
        if (by < 0) continue;
        LoraModule lm = {0};
        lm.kind = s->kind;
        int r = rank;
        float al = alpha;
        if (s->kind == MOD_LINEAR) {
            const Linear *l = s->layer;
            lm.in = l->in, lm.out = l->out, lm.k = 1;
            lm.as_conv = l->conv1x1; /* kohya/diffusers store a 1×1 conv's LoRA as 4-d tensors */
        } else {
            if (conv_rank == 0) { /* no convolutions: "all" leaves them out; naming one is an error */
                if (!strcmp(e[by], "all")) continue;
                lora_free(a);
                return ls_set_error("--targets '%s' names the convolution %s, but --conv-rank 0 means no "
                                    "convolutions: give them a rank with --conv-rank R", e[by], s->name);
            }
            const Conv2d *c = s->layer;
            r = conv_rank, al = conv_alpha;
            lm.in = c->cin, lm.out = c->cout, lm.k = c->k;
            lm.as_conv = 1;
        }
        push_module(a, &cap, s->name, lm, r, al, seed);
    }
    for (int j = 0; j < n_e; j++)
        if (!hits[j]) {
            lora_free(a);
            return ls_set_error("--targets '%s': matches no U-Net module (groups: attn, ff, proj, conv, all; or "
                                "module-path suffixes such as attn2.to_k)", e[j]);
        }
    if (a->n_mods == 0) {
        lora_free(a);
        return ls_set_error("--targets '%s': no U-Net module left once --conv-rank 0 leaves the convolutions out",
                            targets ? targets : "all");
    }
    return LS_OK;
}

/* kohya's text-encoder targets (CLIPAttention / CLIPMLP Linear children) */
static const char *const k_te_targets[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                           "self_attn.out_proj", "mlp.fc1", "mlp.fc2"};

int lora_add_te(Lora *a, Model *m, int rank, float alpha, uint64_t seed) {
    if (a->attached) return ls_set_error("%s: add text-encoder modules before attaching", a->path);
    if (rank < 1) return ls_set_error("LoRA rank must be at least 1 (got %d)", rank);
    const WeightTable *t = &m->clip.wt;
    int n = 0;
    for (int pass = 0; pass < 2; pass++) { /* pass 0 counts, pass 1 fills */
        for (int i = 0; i < t->n_mods; i++) {
            const ModuleSpec *s = &t->mods[i];
            int hit = 0;
            for (size_t j = 0; j < sizeof k_te_targets / sizeof *k_te_targets; j++)
                hit |= s->kind == MOD_LINEAR && ends_with_part(s->name, k_te_targets[j]);
            if (!hit) continue;
            if (pass == 0) {
                n++;
                continue;
            }
            const Linear *l = s->layer;
            LoraModule lm = {0};
            lm.in = l->in, lm.out = l->out, lm.k = 1;
            lm.module = strdupCheck(s->name); /* kohya flat name: text_model_encoder_layers_0_self_attn_q_proj */
            for (char *p = lm.module; *p; p++)
                if (*p == '.') *p = '_';
            lm.component = LORA_TE;
            lm.prefix = "lora_te_";
            lm.rank = rank;
            lm.alpha = alpha > 0 ? alpha : (float)rank;
            lora_init_module(&lm, seed, a->n_mods);
            a->n_params += (int64_t)(down_numel(&lm) + up_numel(&lm));
            a->n_te++;
            a->mods[a->n_mods++] = lm;
        }
        if (pass == 0) {
            if (n == 0) return ls_set_error("the text encoder has no q/k/v/out_proj or fc1/fc2 Linear layers");
            LoraModule *mods = callocCheck((size_t)(a->n_mods + n), sizeof *mods);
            if (a->n_mods) memcpy(mods, a->mods, (size_t)a->n_mods * sizeof *mods);
            free(a->mods);
            a->mods = mods;
        }
    }
    return LS_OK;
}

int lora_create_bottleneck(Lora *a, Model *m, int rank, float alpha, uint64_t seed) {
    memset(a, 0, sizeof *a);
    if (rank < 1) return ls_set_error("adapter rank must be at least 1 (got %d)", rank);
    new_adapter(a, LORA_ADAPTER);
    const WeightTable *t = &m->unet.wt;
    int cap = 0;
    for (int i = 0; i < t->n_mods; i++) {
        const ModuleSpec *s = &t->mods[i];
        if (s->kind != MOD_LINEAR || !(ends_with_part(s->name, "attn1.to_out.0") ||
                                       ends_with_part(s->name, "attn2.to_out.0") || ends_with_part(s->name, "ff.net.2")))
            continue;
        const Linear *l = s->layer;
        LoraModule lm = {0};
        lm.in = lm.out = l->out; /* down (r, C), up (C, r) on the output */
        lm.k = 1;
        lm.bottleneck = 1;
        push_module(a, &cap, s->name, lm, rank, alpha, seed);
    }
    if (a->n_mods == 0) {
        lora_free(a);
        return ls_set_error("the U-Net has no transformer blocks for bottleneck adapters");
    }
    return LS_OK;
}

int lora_save_kohya(const Lora *a, const char *path, const char *const *meta, int n_meta) {
    op_sync(); /* the tensors are read on the host */
    StWriter w;
    st_writer_init(&w);
    float *alphas = mallocCheck((size_t)a->n_mods * sizeof(float));
    char key[640];
    int bottleneck = 0, has_method = 0;
    for (int i = 0; i < a->n_mods; i++) {
        const LoraModule *lm = &a->mods[i];
        int64_t ds[4] = {lm->rank, lm->in, lm->k, lm->k}, us[4] = {lm->out, lm->rank, 1, 1};
        int conv = !lm->bottleneck && (lm->as_conv || lm->kind == MOD_CONV || lm->k > 1);
        bottleneck |= lm->bottleneck;
        module_key(lm, 0, key, sizeof key);
        st_writer_add(&w, key, ST_F32, conv ? 4 : 2, ds, lm->down);
        module_key(lm, 1, key, sizeof key);
        st_writer_add(&w, key, ST_F32, conv ? 4 : 2, us, lm->up);
        alphas[i] = lm->alpha;
        module_key(lm, 2, key, sizeof key);
        st_writer_add(&w, key, ST_F32, 0, NULL, &alphas[i]);
    }
    /* sshs_model_hash / sshs_legacy_hash, as sd-scripts' save_weights precalculates them for the
     * additional-networks extension (precalculate_safetensors_hashes): the file written with its ss_* keys
     * only, its data part hashed, and its 64 KiB at 1 MiB (so the legacy one shifts with those keys). */
    for (int i = 0; i + 1 < 2 * n_meta; i += 2)
        if (!strncmp(meta[i], "ss_", 3)) st_writer_meta(&w, meta[i], meta[i + 1]);
    size_t tl = strlen(path) + 32;
    char *tmp = mallocCheck(tl), hex[65], legacy[9];
    snprintf(tmp, tl, "%s.sshs.%d", path, (int)getpid());
    int rc = st_writer_save(&w, tmp);
    if (rc == LS_OK) rc = sha256_file_kohya(tmp, 1, hex, legacy);
    unlink(tmp);
    free(tmp);
    for (int i = 0; i + 1 < 2 * n_meta; i += 2) {
        if (strncmp(meta[i], "ss_", 3)) st_writer_meta(&w, meta[i], meta[i + 1]);
        has_method |= !strcmp(meta[i], "lorastyle_method");
    }
    if (bottleneck && !has_method) st_writer_meta(&w, "lorastyle_method", "adapter");
    if (rc == LS_OK) {
        st_writer_meta(&w, "sshs_model_hash", hex);
        st_writer_meta(&w, "sshs_legacy_hash", legacy);
        rc = st_writer_save(&w, path);
    }
    st_writer_free(&w);
    free(alphas);
    return rc;
}

void lora_trainset(Lora *a, TrainSet *ts) {
    char key[640];
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *lm = &a->mods[i];
        if (!lm->ddown) continue;
        module_key(lm, 0, key, sizeof key);
        trainset_add(ts, key, lm->down, lm->ddown, down_numel(lm));
        module_key(lm, 1, key, sizeof key);
        trainset_add(ts, key, lm->up, lm->dup, up_numel(lm));
    }
}
