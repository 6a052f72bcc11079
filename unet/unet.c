/* unet.c — UNet2DConditionModel (diffusers): config, build, and the one forward (order as
 * sd1-reference.md §2.7) that inference runs and training runs keeping its activations (unet_bwd.h). */
#include "unet.h"

#include <math.h>
#include <string.h>

#include "jsonutil.h" // defines: json_parse_file, json_get_*, json_diffusers_object, json_print_free
#include "unet_bwd.h" // defines: UNetActs, UNetLevelActs, unet_acts_free

/* ---------------- config ---------------- */

void unet_config_sd15(UNetConfig *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = c->out_channels = 4;
    c->n_levels = 4;
    int bo[4] = {320, 640, 1280, 1280}, da[4] = {1, 1, 1, 0}, ua[4] = {0, 1, 1, 1};
    for (int i = 0; i < 4; i++) {
        c->block_out[i] = bo[i];
        c->down_attn[i] = da[i];
        c->up_attn[i] = ua[i];
        c->heads[i] = 8;
    }
    c->layers_per_block = 2;
    c->cross_attention_dim = 768;
    c->norm_num_groups = 32;
    c->norm_eps = 1e-5f;
    c->transformer_layers = 1;
    c->sample_size = 64;
    c->flip_sin_to_cos = 1;
    c->freq_shift = 0;
    c->mid_attn = 1;
}

void unet_config_tiny(UNetConfig *c) {
    unet_config_sd15(c);
    c->n_levels = 2;
    c->block_out[0] = 32;
    c->block_out[1] = 64;
    c->down_attn[0] = 1;
    c->down_attn[1] = 0;
    c->up_attn[0] = 0;
    c->up_attn[1] = 1;
    c->heads[0] = c->heads[1] = 4;
    c->cross_attention_dim = 32;
    c->sample_size = 16;
}

/* Ranges for config.json values: far beyond any SD-family U-Net (SD1.5: 320..1280 channels, 2 layers per
 * block; SDXL: up to 10 transformer layers, cross_attention_dim 2048), tight enough that a typo cannot
 * ask unet_build for gigabytes of block structs. */
#define UNET_MAX_CHANNELS 8192
#define UNET_MAX_IO_CHANNELS 256
#define UNET_MAX_GROUPS 1024
#define UNET_MAX_SAMPLE 1024 /* latent pixels */

/* "<what>_block_types" (what: "down" or "up"), when present: per level 1 for attn_type, 0 for plain_type, into
 * attn[0..n) (absent: attn keeps its defaults). */
static int block_types(const cJSON *o, const char *path, const char *what, int n, const char *attn_type,
                       const char *plain_type, int *attn) {
    char key[32], types[UNET_MAX_LEVELS][64];
    snprintf(key, sizeof key, "%s_block_types", what);
    int nt = n;
    LS_TRY(json_get_string_array(o, path, key, types, UNET_MAX_LEVELS, &nt));
    if (!cJSON_GetObjectItem(o, key)) return LS_OK;
    if (nt != n) return ls_set_error("%s: %s has %d entries but block_out_channels has %d", path, key, nt, n);
    for (int i = 0; i < n; i++) {
        if (!strcmp(types[i], attn_type)) attn[i] = 1;
        else if (!strcmp(types[i], plain_type)) attn[i] = 0;
        else return ls_set_error("%s: unsupported %s block type '%s'", path, what, types[i]);
    }
    return LS_OK;
}

/* json_parse_file's parse for unet_config_load: absent keys take diffusers' class defaults, which match SD1.5
 * here. */
static int config_parse(const cJSON *o, const char *path, void *cfg) {
    UNetConfig *c = cfg;
    unet_config_sd15(c);
    c->n_levels = 0;
    int n = 0;
    LS_TRY(json_require(o, path, "block_out_channels"));
    LS_TRY(json_get_int_array(o, path, "block_out_channels", 1, UNET_MAX_CHANNELS, c->block_out, UNET_MAX_LEVELS,
                              &n, 0));
    c->n_levels = n;
    for (int i = 0; i < n; i++) c->down_attn[i] = i < n - 1;
    LS_TRY(block_types(o, path, "down", n, "CrossAttnDownBlock2D", "DownBlock2D", c->down_attn));
    for (int i = 0; i < n; i++) c->up_attn[i] = c->down_attn[n - 1 - i];
    LS_TRY(block_types(o, path, "up", n, "CrossAttnUpBlock2D", "UpBlock2D", c->up_attn));
    char mid[64] = "UNetMidBlock2DCrossAttn";
    LS_TRY(json_get_string(o, path, "mid_block_type", mid, sizeof mid));
    if (!strcmp(mid, "UNetMidBlock2DCrossAttn")) c->mid_attn = 1;
    else return ls_set_error("%s: unsupported mid_block_type '%s'", path, mid);
    /* heads: num_attention_heads wins over attention_head_dim (which SD1 misuses as the head count) */
    int hn = 0, heads[UNET_MAX_LEVELS];
    heads[0] = 8;
    const char *hkey = cJSON_GetObjectItem(o, "num_attention_heads") &&
                               !cJSON_IsNull(cJSON_GetObjectItem(o, "num_attention_heads"))
                           ? "num_attention_heads"
                           : "attention_head_dim";
    LS_TRY(json_get_int_array(o, path, hkey, 1, UNET_MAX_CHANNELS, heads, UNET_MAX_LEVELS, &hn, 1));
    if (hn > 0 && hn != n) return ls_set_error("%s: %s has %d entries, expected %d", path, hkey, hn, n);
    for (int i = 0; i < n; i++) c->heads[i] = hn > 0 ? heads[i] : heads[0];
    char act[32] = "silu";
    if (json_get_int(o, path, "in_channels", 1, UNET_MAX_IO_CHANNELS, &c->in_channels) < 0 ||
        json_get_int(o, path, "out_channels", 1, UNET_MAX_IO_CHANNELS, &c->out_channels) < 0 ||
        json_get_int(o, path, "layers_per_block", 1, UNET_MAX_LAYERS, &c->layers_per_block) < 0 ||
        json_get_int(o, path, "cross_attention_dim", 1, UNET_MAX_CHANNELS, &c->cross_attention_dim) < 0 ||
        json_get_int(o, path, "norm_num_groups", 1, UNET_MAX_GROUPS, &c->norm_num_groups) < 0 ||
        json_get_float(o, path, "norm_eps", &c->norm_eps) < 0 ||
        json_get_bool(o, path, "use_linear_projection", &c->use_linear_projection) < 0 ||
        json_get_int(o, path, "transformer_layers_per_block", 1, UNET_MAX_LAYERS, &c->transformer_layers) < 0 ||
        json_get_int(o, path, "sample_size", 1, UNET_MAX_SAMPLE, &c->sample_size) < 0 ||
        json_get_bool(o, path, "flip_sin_to_cos", &c->flip_sin_to_cos) < 0 ||
        json_get_float(o, path, "freq_shift", &c->freq_shift) < 0 ||
        json_get_string(o, path, "act_fn", act, sizeof act) < 0)
        return LS_ERR;
    if (strcmp(act, "silu") && strcmp(act, "swish")) return ls_set_error("%s: unsupported act_fn '%s'", path, act);
    if (!c->flip_sin_to_cos) return ls_set_error("%s: flip_sin_to_cos=false is not supported", path);
    if (!(c->norm_eps > 0)) return ls_set_error("%s: key 'norm_eps' must be positive", path);
    for (int i = 0; i < n; i++)
        if (c->block_out[i] % c->norm_num_groups || c->block_out[i] % c->heads[i])
            return ls_set_error("%s: block_out_channels[%d]=%d must be divisible by norm_num_groups "
                                "(%d) and the head count (%d)", path, i, c->block_out[i], c->norm_num_groups,
                                c->heads[i]);
    return LS_OK;
}

int unet_config_load(UNetConfig *c, const char *path) {
    return json_parse_file(path, config_parse, c);
}

char *unet_config_to_json(const UNetConfig *c) {
    cJSON *o = json_diffusers_object("UNet2DConditionModel");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    cJSON_AddItemToObject(o, "attention_head_dim", cJSON_CreateIntArray(c->heads, c->n_levels));
    cJSON_AddItemToObject(o, "block_out_channels", cJSON_CreateIntArray(c->block_out, c->n_levels));
    cJSON_AddBoolToObject(o, "center_input_sample", 0);
    cJSON_AddNumberToObject(o, "cross_attention_dim", c->cross_attention_dim);
    const char *dn[UNET_MAX_LEVELS], *up[UNET_MAX_LEVELS];
    for (int i = 0; i < c->n_levels; i++) {
        dn[i] = c->down_attn[i] ? "CrossAttnDownBlock2D" : "DownBlock2D";
        up[i] = c->up_attn[i] ? "CrossAttnUpBlock2D" : "UpBlock2D";
    }
    cJSON_AddItemToObject(o, "down_block_types", cJSON_CreateStringArray(dn, c->n_levels));
    cJSON_AddNumberToObject(o, "downsample_padding", 1);
    cJSON_AddBoolToObject(o, "flip_sin_to_cos", c->flip_sin_to_cos);
    cJSON_AddNumberToObject(o, "freq_shift", json_float(c->freq_shift));
    cJSON_AddNumberToObject(o, "in_channels", c->in_channels);
    cJSON_AddNumberToObject(o, "layers_per_block", c->layers_per_block);
    cJSON_AddNumberToObject(o, "mid_block_scale_factor", 1);
    cJSON_AddNumberToObject(o, "norm_eps", json_float(c->norm_eps));
    cJSON_AddNumberToObject(o, "norm_num_groups", c->norm_num_groups);
    cJSON_AddNumberToObject(o, "out_channels", c->out_channels);
    cJSON_AddNumberToObject(o, "sample_size", c->sample_size);
    cJSON_AddNumberToObject(o, "transformer_layers_per_block", c->transformer_layers);
    cJSON_AddBoolToObject(o, "use_linear_projection", c->use_linear_projection);
    cJSON_AddItemToObject(o, "up_block_types", cJSON_CreateStringArray(up, c->n_levels));
    return json_print_free(o);
}

/* ---------------- build ---------------- */

void unet_build(UNet *u, const UNetConfig *c) {
    memset(u, 0, sizeof *u);
    u->cfg = *c;
    wt_init(&u->wt);
    WeightTable *t = &u->wt;
    char name[LS_NAME_MAX];
    int n = c->n_levels, L = c->layers_per_block, G = c->norm_num_groups, C0 = c->block_out[0];
    int temb = 4 * C0, cross = c->cross_attention_dim, lp = c->use_linear_projection;
    float eps = c->norm_eps;

    conv_build(&u->conv_in, t, "conv_in", c->in_channels, C0, 3, 1, 1, 1);
    linear_build(&u->time_1, t, "time_embedding.linear_1", C0, temb, 1);
    linear_build(&u->time_2, t, "time_embedding.linear_2", temb, temb, 1);

    int out_ch = C0;
    for (int i = 0; i < n; i++) {
        UNetDown *d = &u->down[i];
        int in_ch = out_ch;
        out_ch = c->block_out[i];
        d->n = L;
        d->resnets = callocCheck((size_t)L, sizeof *d->resnets);
        if (c->down_attn[i]) d->attns = callocCheck((size_t)L, sizeof *d->attns);
        for (int j = 0; j < L; j++) {
            ls_fmt(name, "down_blocks.%d.resnets.%d", i, j);
            resblock_build(&d->resnets[j], t, name, j == 0 ? in_ch : out_ch, out_ch, temb, G, eps);
            if (d->attns) {
                ls_fmt(name, "down_blocks.%d.attentions.%d", i, j);
                transformer2d_build(&d->attns[j], t, name, out_ch, cross, c->heads[i],
                                    c->transformer_layers, G, lp);
            }
        }
        d->has_down = i < n - 1;
        if (d->has_down) {
            ls_fmt(name, "down_blocks.%d.downsamplers.0.conv", i);
            conv_build(&d->down, t, name, out_ch, out_ch, 3, 2, 1, 1);
        }
    }

    int Cm = c->block_out[n - 1];
    resblock_build(&u->mid_res[0], t, "mid_block.resnets.0", Cm, Cm, temb, G, eps);
    transformer2d_build(&u->mid_attn, t, "mid_block.attentions.0", Cm, cross, c->heads[n - 1],
                        c->transformer_layers, G, lp);
    resblock_build(&u->mid_res[1], t, "mid_block.resnets.1", Cm, Cm, temb, G, eps);

    /* == diffusers: prev_output_channel, output_channel, input_channel per up level */
    out_ch = c->block_out[n - 1];
    for (int i = 0; i < n; i++) {
        UNetUp *b = &u->up[i];
        int prev_out = out_ch;
        out_ch = c->block_out[n - 1 - i];
        int in_ch = c->block_out[LS_MAX(n - 2 - i, 0)];
        int heads = c->heads[n - 1 - i];
        b->n = L + 1;
        b->resnets = callocCheck((size_t)(L + 1), sizeof *b->resnets);
        if (c->up_attn[i]) b->attns = callocCheck((size_t)(L + 1), sizeof *b->attns);
        for (int j = 0; j <= L; j++) {
            int skip = j == L ? in_ch : out_ch;
            int rin = j == 0 ? prev_out : out_ch;
            ls_fmt(name, "up_blocks.%d.resnets.%d", i, j);
            resblock_build(&b->resnets[j], t, name, rin + skip, out_ch, temb, G, eps);
            if (b->attns) {
                ls_fmt(name, "up_blocks.%d.attentions.%d", i, j);
                transformer2d_build(&b->attns[j], t, name, out_ch, cross, heads, c->transformer_layers, G,
                                    lp);
            }
        }
        b->has_up = i < n - 1;
        if (b->has_up) {
            ls_fmt(name, "up_blocks.%d.upsamplers.0.conv", i);
            conv_build(&b->up, t, name, out_ch, out_ch, 3, 1, 1, 1);
        }
    }
    norm_build(&u->norm_out, t, "conv_norm_out", C0, G, eps);
    conv_build(&u->conv_out, t, "conv_out", C0, c->out_channels, 3, 1, 1, 1);
}

void unet_free(UNet *u) {
    for (int i = 0; i < u->cfg.n_levels; i++) {
        free(u->down[i].resnets);
        if (u->down[i].attns)
            for (int j = 0; j < u->down[i].n; j++) transformer2d_free(&u->down[i].attns[j]);
        free(u->down[i].attns);
        free(u->up[i].resnets);
        if (u->up[i].attns)
            for (int j = 0; j < u->up[i].n; j++) transformer2d_free(&u->up[i].attns[j]);
        free(u->up[i].attns);
    }
    transformer2d_free(&u->mid_attn);
    wt_free(&u->wt);
    memset(u, 0, sizeof *u);
}

/* ---------------- forward ---------------- */

/* A tensor the forward computes: kept for the backward when training (acts non-NULL: a saved buffer the
 * caller stores in acts), else pool scratch the forward gives back once the next layer has read it. */
static float *out_buf(UNetActs *acts, size_t n) { return acts ? acts_buf(n, &acts->bytes) : sbuf(n); }

/* A level's saved activations, set up for n blocks at H×W. */
static UNetLevelActs *level_alloc(UNetLevelActs *l, int n, int has_attn, int H, int W) {
    l->n = n;
    l->res = acts_array((size_t)n, sizeof *l->res);
    l->res_out = acts_array((size_t)n, sizeof *l->res_out);
    if (has_attn) {
        l->tr = acts_array((size_t)n, sizeof *l->tr);
        l->tr_out = acts_array((size_t)n, sizeof *l->tr_out);
    }
    l->H = l->Ho = H;
    l->W = l->Wo = W;
    return l;
}

/* Block j of a level on x (B,cin,H,W): the resnet, then the transformer when the level has one (tr).
 * x_scratch: x is pool scratch, given back once the resnet has read it. Returns the block's output
 * (B,cout,H,W), a new buffer (in inference the resnet's output is given back once the transformer read it). */
static float *level_block(const ResBlock *r, const Transformer2D *tr, UNetActs *acts, UNetLevelActs *l, int j,
                          float *x, int x_scratch, const float *emb, const float *ctx, int B, int H, int W, int Tc) {
    size_t n = (size_t)B * r->cout * H * W;
    float *y = out_buf(acts, n);
    resblock_forward(r, l ? &l->res[j] : NULL, y, x, emb, B, H, W);
    if (x_scratch) pool_free(x);
    if (l) l->res_out[j] = y, acts->bytes += l->res[j].bytes;
    if (!tr) return y;
    float *z = out_buf(acts, n);
    transformer2d_forward(tr, l ? &l->tr[j] : NULL, z, y, ctx, B, H, W, Tc);
    if (l) l->tr_out[j] = z, acts->bytes += l->tr[j].bytes;
    else pool_free(y);
    return z;
}

typedef struct {
    float *x;
    int C, H, W;
} Skip;

void unet_forward_train(const UNet *u, UNetActs *acts, float *out, const float *x, const float *t,
                        const float *ctx, int B, int H, int W, int Tc) {
    const UNetConfig *c = &u->cfg;
    int n = c->n_levels, C0 = c->block_out[0], temb = 4 * C0;
    size_t ne = (size_t)B * temb;
    if (acts) { /* copies of the inputs: the backward reads them */
        unet_acts_free(acts);
        acts->B = B, acts->H = H, acts->W = W, acts->Tc = Tc;
        x = acts->x = acts_copy(x, (size_t)B * c->in_channels * H * W, &acts->bytes);
        ctx = acts->ctx = acts_copy(ctx, (size_t)B * Tc * c->cross_attention_dim, &acts->bytes);
    }

    /* time embedding: emb = linear_2(silu(linear_1(sinusoid(t)))); each resnet uses silu(emb). Training
     * keeps each stage (the silus' inputs and outputs). */
    float *sin_emb = out_buf(acts, (size_t)B * C0), *e1 = out_buf(acts, ne), *emb = out_buf(acts, ne);
    op_timestep_embedding(sin_emb, t, B, C0, c->freq_shift);
    linear_forward(&u->time_1, e1, sin_emb, B);
    float *e1_silu = acts ? acts_copy(e1, ne, &acts->bytes) : e1;
    op_silu_inplace(e1_silu, ne);
    linear_forward(&u->time_2, emb, e1_silu, B);
    float *emb_silu = acts ? acts_copy(emb, ne, &acts->bytes) : emb;
    op_silu_inplace(emb_silu, ne); /* silu(emb), shared by all resnets */
    if (acts) {
        acts->sin_emb = sin_emb, acts->e1 = e1, acts->e1_silu = e1_silu;
        acts->emb = emb, acts->emb_silu = emb_silu;
    } else {
        pool_free(sin_emb);
        pool_free(e1);
    }

    Skip skips[UNET_MAX_SKIPS];
    int ns = 0;
    int C = C0;
    float *h = out_buf(acts, (size_t)B * C0 * H * W);
    conv_forward(&u->conv_in, h, x, B, H, W, NULL, NULL);
    if (acts) acts->h_in = h;
    skips[ns++] = (Skip){h, C, H, W};

    /* down path: every resnet/attention output and every downsample output is pushed */
    for (int i = 0; i < n; i++) {
        const UNetDown *d = &u->down[i];
        UNetLevelActs *l = acts ? level_alloc(&acts->down[i], d->n, d->attns != NULL, H, W) : NULL;
        for (int j = 0; j < d->n; j++) {
            h = level_block(&d->resnets[j], d->attns ? &d->attns[j] : NULL, acts, l, j, h, 0, emb_silu, ctx, B,
                            H, W, Tc);
            C = d->resnets[j].cout;
            skips[ns++] = (Skip){h, C, H, W};
        }
        if (d->has_down) {
            int Ho = op_conv2d_out(H, 3, 2, 1, 1), Wo = op_conv2d_out(W, 3, 2, 1, 1);
            float *y = out_buf(acts, (size_t)B * C * Ho * Wo);
            conv_forward(&d->down, y, h, B, H, W, NULL, NULL);
            if (l) l->sampler_out = y, l->Ho = Ho, l->Wo = Wo;
            H = Ho;
            W = Wo;
            h = y;
            skips[ns++] = (Skip){h, C, H, W};
        }
    }

    /* mid: resnet, transformer, resnet (h is owned by the skip stack; inference reuses m0 for the output) */
    {
        size_t nm = (size_t)B * C * H * W;
        float *m0 = out_buf(acts, nm), *m1 = out_buf(acts, nm), *m2 = acts ? out_buf(acts, nm) : m0;
        resblock_forward(&u->mid_res[0], acts ? &acts->mid_res[0] : NULL, m0, h, emb_silu, B, H, W);
        transformer2d_forward(&u->mid_attn, acts ? &acts->mid_tr : NULL, m1, m0, ctx, B, H, W, Tc);
        resblock_forward(&u->mid_res[1], acts ? &acts->mid_res[1] : NULL, m2, m1, emb_silu, B, H, W);
        if (acts) {
            acts->mid_out[0] = m0, acts->mid_out[1] = m1, acts->mid_out[2] = m2;
            acts->bytes += acts->mid_res[0].bytes + acts->mid_tr.bytes + acts->mid_res[1].bytes;
        } else {
            pool_free(m1);
        }
        h = m2;
    }

    /* up path: pop a skip (LIFO), concat [h, skip] on channels, resnet, attention; upsample to the size
     * of the next skip (== ×2 when sizes divide evenly, as diffusers' forward_upsample_size). The
     * concatenations and upsampled maps are not kept: the backward rebuilds them. */
    for (int i = 0; i < n; i++) {
        const UNetUp *b = &u->up[i];
        UNetLevelActs *l = acts ? level_alloc(&acts->up[i], b->n, b->attns != NULL, H, W) : NULL;
        for (int j = 0; j < b->n; j++) {
            Skip s = skips[--ns];
            LS_ASSERT(s.H == H && s.W == W);
            float *cat = sbuf((size_t)B * (C + s.C) * H * W);
            op_concat_channels(cat, h, s.x, B, C, s.C, H * W);
            if (!acts) {
                pool_free(h);
                pool_free(s.x);
            }
            h = level_block(&b->resnets[j], b->attns ? &b->attns[j] : NULL, acts, l, j, cat, 1, emb_silu, ctx, B,
                            H, W, Tc);
            C = b->resnets[j].cout;
        }
        if (b->has_up) {
            int Ho = skips[ns - 1].H, Wo = skips[ns - 1].W;
            float *upx = sbuf((size_t)B * C * Ho * Wo), *y = out_buf(acts, (size_t)B * C * Ho * Wo);
            op_upsample_nearest(upx, h, B, C, H, W, Ho, Wo);
            conv_forward(&b->up, y, upx, B, Ho, Wo, NULL, NULL);
            pool_free(upx);
            if (l) l->sampler_out = y, l->Ho = Ho, l->Wo = Wo;
            else pool_free(h);
            h = y;
            H = Ho;
            W = Wo;
        }
    }
    LS_ASSERT(ns == 0);

    /* out = conv_out(silu(conv_norm_out(h))) */
    if (acts) {
        acts->mean_out = acts_buf((size_t)B * u->norm_out.groups, &acts->bytes);
        acts->rstd_out = acts_buf((size_t)B * u->norm_out.groups, &acts->bytes);
    }
    norm_silu_conv_forward(&u->norm_out, &u->conv_out, out, acts ? acts->mean_out : NULL,
                           acts ? acts->rstd_out : NULL, h, B, H, W);
    if (!acts) {
        pool_free(h);
        pool_free(emb_silu);
    }
}

void unet_forward(const UNet *u, float *out, const float *x, const float *t, const float *ctx, int B, int H, int W,
                  int Tc) {
    unet_forward_train(u, NULL, out, x, t, ctx, B, H, W, Tc);
}
