/* vae.c — AutoencoderKL (diffusers Encoder/Decoder; sd1-reference.md §2.8): config, build, and one encoder
 * and one decoder forward that inference runs and training runs keeping its activations (vae_bwd.h). The two
 * halves share the level and mid-block code. */
#include "vae.h"

#include <string.h>

#include "jsonutil.h" // defines: json_parse_file, json_get_*, json_diffusers_object, json_print_free
#include "vae_bwd.h"  // defines: VaeActs, VaeCoderActs, vae_coder_acts_free

void vae_config_sd15(VaeConfig *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = c->out_channels = 3;
    c->latent_channels = 4;
    c->n_levels = 4;
    int bo[4] = {128, 256, 512, 512};
    memcpy(c->block_out, bo, sizeof bo);
    c->layers_per_block = 2;
    c->norm_num_groups = 32;
    c->sample_size = 512;
    c->scaling_factor = 0.18215f;
    c->mid_attention = 1;
    c->use_quant_conv = c->use_post_quant_conv = 1;
}

void vae_config_tiny(VaeConfig *c) {
    vae_config_sd15(c);
    int bo[4] = {32, 32, 64, 64};
    memcpy(c->block_out, bo, sizeof bo);
    c->layers_per_block = 1;
    c->sample_size = 128;
}

/* Ranges for config.json values: far beyond any SD-family VAE (128..512 channels, 4 latent channels,
 * 512-1024 px samples), tight enough that a typo cannot ask vae_build for gigabytes. */
#define VAE_MAX_CHANNELS 8192
#define VAE_MAX_IO_CHANNELS 256
#define VAE_MAX_LAYERS 32
#define VAE_MAX_GROUPS 1024
#define VAE_MAX_SAMPLE 16384 /* pixels */

/* json_parse_file's parse for vae_config_load: the SD1.5 values and AutoencoderKL's class defaults, overridden
 * by the file's keys. */
static int config_parse(const cJSON *o, const char *path, void *cfg) {
    VaeConfig *c = cfg;
    vae_config_sd15(c);
    c->layers_per_block = 1; /* AutoencoderKL's class default */
    int n = 0;
    char types[VAE_MAX_LEVELS][64];
    if (json_require(o, path, "block_out_channels") < 0 ||
        json_get_int_array(o, path, "block_out_channels", 1, VAE_MAX_CHANNELS, c->block_out, VAE_MAX_LEVELS,
                           &n, 0) < 0)
        return LS_ERR;
    c->n_levels = n;
    int nt = 0;
    LS_TRY(json_get_string_array(o, path, "down_block_types", types, VAE_MAX_LEVELS, &nt));
    for (int i = 0; i < nt; i++)
        if (strcmp(types[i], "DownEncoderBlock2D"))
            return ls_set_error("%s: unsupported down block type '%s'", path, types[i]);
    LS_TRY(json_get_string_array(o, path, "up_block_types", types, VAE_MAX_LEVELS, &nt));
    for (int i = 0; i < nt; i++)
        if (strcmp(types[i], "UpDecoderBlock2D"))
            return ls_set_error("%s: unsupported up block type '%s'", path, types[i]);
    char act[32] = "silu";
    if (json_get_int(o, path, "in_channels", 1, VAE_MAX_IO_CHANNELS, &c->in_channels) < 0 ||
        json_get_int(o, path, "out_channels", 1, VAE_MAX_IO_CHANNELS, &c->out_channels) < 0 ||
        json_get_int(o, path, "latent_channels", 1, VAE_MAX_IO_CHANNELS, &c->latent_channels) < 0 ||
        json_get_int(o, path, "layers_per_block", 1, VAE_MAX_LAYERS, &c->layers_per_block) < 0 ||
        json_get_int(o, path, "norm_num_groups", 1, VAE_MAX_GROUPS, &c->norm_num_groups) < 0 ||
        json_get_int(o, path, "sample_size", 1, VAE_MAX_SAMPLE, &c->sample_size) < 0 ||
        json_get_float(o, path, "scaling_factor", &c->scaling_factor) < 0 ||
        json_get_bool(o, path, "mid_block_add_attention", &c->mid_attention) < 0 ||
        json_get_bool(o, path, "use_quant_conv", &c->use_quant_conv) < 0 ||
        json_get_bool(o, path, "use_post_quant_conv", &c->use_post_quant_conv) < 0 ||
        json_get_string(o, path, "act_fn", act, sizeof act) < 0)
        return LS_ERR;
    float shift = 0;
    LS_TRY(json_get_float(o, path, "shift_factor", &shift));
    if (shift != 0) return ls_set_error("%s: shift_factor is not supported (not an SD-1.x VAE)", path);
    if (strcmp(act, "silu") && strcmp(act, "swish")) return ls_set_error("%s: unsupported act_fn '%s'", path, act);
    if (!(c->scaling_factor > 0)) return ls_set_error("%s: key 'scaling_factor' must be positive", path);
    for (int i = 0; i < n; i++)
        if (c->block_out[i] % c->norm_num_groups)
            return ls_set_error("%s: block_out_channels[%d]=%d must be divisible by norm_num_groups (%d)", path,
                                i, c->block_out[i], c->norm_num_groups);
    return LS_OK;
}

int vae_config_load(VaeConfig *c, const char *path) {
    return json_parse_file(path, config_parse, c);
}

char *vae_config_to_json(const VaeConfig *c) {
    cJSON *o = json_diffusers_object("AutoencoderKL");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    cJSON_AddItemToObject(o, "block_out_channels", cJSON_CreateIntArray(c->block_out, c->n_levels));
    const char *dn[VAE_MAX_LEVELS], *up[VAE_MAX_LEVELS];
    for (int i = 0; i < c->n_levels; i++) {
        dn[i] = "DownEncoderBlock2D";
        up[i] = "UpDecoderBlock2D";
    }
    cJSON_AddItemToObject(o, "down_block_types", cJSON_CreateStringArray(dn, c->n_levels));
    cJSON_AddNumberToObject(o, "in_channels", c->in_channels);
    cJSON_AddNumberToObject(o, "latent_channels", c->latent_channels);
    cJSON_AddNumberToObject(o, "layers_per_block", c->layers_per_block);
    cJSON_AddNumberToObject(o, "norm_num_groups", c->norm_num_groups);
    cJSON_AddNumberToObject(o, "out_channels", c->out_channels);
    cJSON_AddNumberToObject(o, "sample_size", c->sample_size);
    cJSON_AddNumberToObject(o, "scaling_factor", json_float(c->scaling_factor));
    cJSON_AddItemToObject(o, "up_block_types", cJSON_CreateStringArray(up, c->n_levels));
    return json_print_free(o);
}

static void mid_build(VaeCoder *cd, WeightTable *t, const char *root, int C, int G, int attn) {
    char name[LS_NAME_MAX];
    ls_fmt(name, "%s.mid_block.resnets.0", root);
    resblock_build(&cd->mid_res[0], t, name, C, C, 0, G, 1e-6f);
    if (attn) {
        ls_fmt(name, "%s.mid_block.attentions.0", root);
        vae_attn_build(&cd->mid_attn, t, name, C, G);
    }
    ls_fmt(name, "%s.mid_block.resnets.1", root);
    resblock_build(&cd->mid_res[1], t, name, C, C, 0, G, 1e-6f);
}

void vae_build(Vae *v, const VaeConfig *c) {
    memset(v, 0, sizeof *v);
    v->cfg = *c;
    wt_init(&v->wt);
    WeightTable *t = &v->wt;
    char name[LS_NAME_MAX];
    int n = c->n_levels, G = c->norm_num_groups, Lt = c->latent_channels, Cl = c->block_out[n - 1];

    /* encoder */
    VaeCoder *e = &v->enc;
    conv_build(&e->conv_in, t, "encoder.conv_in", c->in_channels, c->block_out[0], 3, 1, 1, 1);
    int out_ch = c->block_out[0];
    for (int i = 0; i < n; i++) {
        VaeLevel *lv = &e->levels[i];
        int in_ch = out_ch;
        out_ch = c->block_out[i];
        lv->n = c->layers_per_block;
        lv->resnets = callocCheck((size_t)lv->n, sizeof *lv->resnets);
        for (int j = 0; j < lv->n; j++) {
            ls_fmt(name, "encoder.down_blocks.%d.resnets.%d", i, j);
            resblock_build(&lv->resnets[j], t, name, j == 0 ? in_ch : out_ch, out_ch, 0, G, 1e-6f);
        }
        lv->has_sample = i < n - 1;
        if (lv->has_sample) {
            ls_fmt(name, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            conv_build(&lv->sample, t, name, out_ch, out_ch, 3, 2, 0, 1); /* pad right/bottom only */
        }
    }
    mid_build(e, t, "encoder", Cl, G, c->mid_attention);
    norm_build(&e->norm_out, t, "encoder.conv_norm_out", Cl, G, 1e-6f);
    conv_build(&e->conv_out, t, "encoder.conv_out", Cl, 2 * Lt, 3, 1, 1, 1);
    if (c->use_quant_conv) conv_build(&v->quant_conv, t, "quant_conv", 2 * Lt, 2 * Lt, 1, 1, 0, 0);

    /* decoder */
    if (c->use_post_quant_conv) conv_build(&v->post_quant_conv, t, "post_quant_conv", Lt, Lt, 1, 1, 0, 0);
    VaeCoder *d = &v->dec;
    conv_build(&d->conv_in, t, "decoder.conv_in", Lt, Cl, 3, 1, 1, 1);
    mid_build(d, t, "decoder", Cl, G, c->mid_attention);
    out_ch = Cl;
    for (int i = 0; i < n; i++) {
        VaeLevel *lv = &d->levels[i];
        int prev = out_ch;
        out_ch = c->block_out[n - 1 - i];
        lv->n = c->layers_per_block + 1;
        lv->resnets = callocCheck((size_t)lv->n, sizeof *lv->resnets);
        for (int j = 0; j < lv->n; j++) {
            ls_fmt(name, "decoder.up_blocks.%d.resnets.%d", i, j);
            resblock_build(&lv->resnets[j], t, name, j == 0 ? prev : out_ch, out_ch, 0, G, 1e-6f);
        }
        lv->has_sample = i < n - 1;
        if (lv->has_sample) {
            ls_fmt(name, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            conv_build(&lv->sample, t, name, out_ch, out_ch, 3, 1, 1, 1);
        }
    }
    norm_build(&d->norm_out, t, "decoder.conv_norm_out", c->block_out[0], G, 1e-6f);
    conv_build(&d->conv_out, t, "decoder.conv_out", c->block_out[0], c->out_channels, 3, 1, 1, 1);
}

void vae_free(Vae *v) {
    for (int i = 0; i < v->cfg.n_levels; i++) {
        free(v->enc.levels[i].resnets);
        free(v->dec.levels[i].resnets);
    }
    wt_free(&v->wt);
    memset(v, 0, sizeof *v);
}

/* ---------------- forward ---------------- */

/* A tensor the forward computes: kept in a when training (a non-NULL), else pool scratch. */
static float *out_buf(VaeCoderActs *a, size_t n) { return a ? acts_buf(n, &a->bytes) : sbuf(n); }
/* A layer's input once the layer has read it: inference gives it back, training keeps it. */
static void drop(const VaeCoderActs *a, float *p) {
    if (!a) pool_free(p);
}

/* One level on h (B,*C,*H,*W): resnets, then the sampler (up: ×2 nearest upsample + conv; else: stride-2
 * conv, pad right/bottom). Updates *C, *H, *W; returns the output (h is dropped). l: the level's
 * activations (training) or NULL. */
static float *level_forward(const VaeLevel *lv, VaeCoderActs *a, VaeLevelActs *l, float *h, int up, int B, int *C,
                            int *H, int *W) {
    if (l) {
        l->n = lv->n;
        l->res = acts_array((size_t)lv->n, sizeof *l->res);
        l->res_out = acts_array((size_t)lv->n, sizeof *l->res_out);
        l->H = l->Ho = *H;
        l->W = l->Wo = *W;
    }
    for (int j = 0; j < lv->n; j++) {
        const ResBlock *r = &lv->resnets[j];
        float *y = out_buf(a, (size_t)B * r->cout * *H * *W);
        resblock_forward(r, l ? &l->res[j] : NULL, y, h, NULL, B, *H, *W);
        if (l) l->res_out[j] = y, a->bytes += l->res[j].bytes;
        drop(a, h);
        h = y;
        *C = r->cout;
    }
    if (!lv->has_sample) return h;
    int Ho = up ? 2 * *H : op_conv2d_out(*H, 3, 2, 0, 1), Wo = up ? 2 * *W : op_conv2d_out(*W, 3, 2, 0, 1);
    size_t no = (size_t)B * *C * Ho * Wo;
    float *y;
    if (up) { /* the upsampled map is not kept: the backward recomputes it */
        float *u = sbuf(no);
        y = out_buf(a, no);
        op_upsample_nearest(u, h, B, *C, *H, *W, Ho, Wo);
        conv_forward(&lv->sample, y, u, B, Ho, Wo, NULL, NULL);
        pool_free(u);
    } else {
        y = out_buf(a, no);
        conv_forward(&lv->sample, y, h, B, *H, *W, NULL, NULL);
    }
    drop(a, h);
    if (l) l->sampler_out = y, l->Ho = Ho, l->Wo = Wo;
    *H = Ho, *W = Wo;
    return y;
}

/* Mid block on h (B,C,H,W): resnet, attention (when configured), resnet. Returns the output (h dropped). */
static float *mid_forward(const VaeCoder *cd, const VaeConfig *c, VaeCoderActs *a, float *h, int B, int C, int H,
                          int W) {
    size_t n = (size_t)B * C * H * W;
    float *y = out_buf(a, n);
    resblock_forward(&cd->mid_res[0], a ? &a->mid_res[0] : NULL, y, h, NULL, B, H, W);
    drop(a, h);
    h = y;
    if (a) a->mid_out[0] = y;
    if (c->mid_attention) {
        y = out_buf(a, n);
        vae_attn_forward(&cd->mid_attn, a ? &a->mid_attn : NULL, y, h, B, H, W);
        drop(a, h);
        h = y;
        if (a) a->mid_out[1] = y;
    }
    y = out_buf(a, n);
    resblock_forward(&cd->mid_res[1], a ? &a->mid_res[1] : NULL, y, h, NULL, B, H, W);
    drop(a, h);
    if (a) a->mid_out[2] = y, a->bytes += a->mid_res[0].bytes + a->mid_attn.bytes + a->mid_res[1].bytes;
    return y;
}

/* y = conv_out(silu(conv_norm_out(x))), x (B,C,H,W); training keeps the norm's statistics. */
static void head_forward(const VaeCoder *cd, VaeCoderActs *a, float *y, const float *x, int B, int H, int W) {
    if (a) {
        a->mean_out = acts_buf((size_t)B * cd->norm_out.groups, &a->bytes);
        a->rstd_out = acts_buf((size_t)B * cd->norm_out.groups, &a->bytes);
    }
    norm_silu_conv_forward(&cd->norm_out, &cd->conv_out, y, a ? a->mean_out : NULL, a ? a->rstd_out : NULL, x, B,
                           H, W);
}

/* The encoder: moments from img; a: its activations (training) or NULL. Returns the latent size. */
static void encode(const Vae *v, VaeCoderActs *a, float *moments, const float *img, int B, int H, int W, int *ph,
                   int *pw) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *e = &v->enc;
    int C = c->block_out[0], n = c->n_levels, Lt2 = 2 * c->latent_channels;
    if (a) { /* a copy of the input: the backward reads it */
        vae_coder_acts_free(a);
        a->B = B, a->H = H, a->W = W;
        img = a->in = acts_copy(img, (size_t)B * c->in_channels * H * W, &a->bytes);
    }
    float *h = out_buf(a, (size_t)B * C * H * W);
    conv_forward(&e->conv_in, h, img, B, H, W, NULL, NULL);
    if (a) a->h_in = h;
    for (int i = 0; i < n; i++) h = level_forward(&e->levels[i], a, a ? &a->levels[i] : NULL, h, 0, B, &C, &H, &W);
    h = mid_forward(e, c, a, h, B, C, H, W);
    if (c->use_quant_conv) {
        float *m = out_buf(a, (size_t)B * Lt2 * H * W);
        head_forward(e, a, m, h, B, H, W);
        conv_forward(&v->quant_conv, moments, m, B, H, W, NULL, NULL);
        if (a) a->conv_out = m;
        else pool_free(m);
    } else {
        head_forward(e, a, moments, h, B, H, W);
    }
    drop(a, h);
    if (a) a->Hout = H, a->Wout = W;
    *ph = H;
    *pw = W;
}

/* The decoder: img from z; a: its activations (training) or NULL. */
static void decode(const Vae *v, VaeCoderActs *a, float *img, const float *z, int B, int H, int W) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *d = &v->dec;
    int n = c->n_levels, Lt = c->latent_channels, C = c->block_out[n - 1];
    size_t nz = (size_t)B * Lt * H * W;
    if (a) { /* a copy of the input: the backward reads it */
        vae_coder_acts_free(a);
        a->B = B, a->H = H, a->W = W;
        z = a->in = acts_copy(z, nz, &a->bytes);
    }
    const float *zin = z;
    float *pq = NULL;
    if (c->use_post_quant_conv) {
        pq = out_buf(a, nz);
        conv_forward(&v->post_quant_conv, pq, z, B, H, W, NULL, NULL);
        zin = pq;
    }
    float *h = out_buf(a, (size_t)B * C * H * W);
    conv_forward(&d->conv_in, h, zin, B, H, W, NULL, NULL);
    if (a) a->pq = pq, a->h_in = h;
    else pool_free(pq);
    h = mid_forward(d, c, a, h, B, C, H, W);
    for (int i = 0; i < n; i++) h = level_forward(&d->levels[i], a, a ? &a->levels[i] : NULL, h, 1, B, &C, &H, &W);
    head_forward(d, a, img, h, B, H, W);
    drop(a, h);
    if (a) a->Hout = H, a->Wout = W;
}

void vae_encode(const Vae *v, float *moments, const float *img, int B, int H, int W, int *ph, int *pw) {
    encode(v, NULL, moments, img, B, H, W, ph, pw);
}

void vae_encode_train(const Vae *v, VaeActs *acts, float *moments, const float *img, int B, int H, int W) {
    int h, w;
    encode(v, &acts->enc, moments, img, B, H, W, &h, &w);
}

void vae_decode(const Vae *v, float *img, const float *z, int B, int H, int W) { decode(v, NULL, img, z, B, H, W); }

void vae_decode_train(const Vae *v, VaeActs *acts, float *img, const float *z, int B, int h, int w) {
    decode(v, &acts->dec, img, z, B, h, w);
}
