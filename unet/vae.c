/* vae.c — AutoencoderKL (diffusers Encoder/Decoder; sd1-reference.md §2.8). */
#include "vae.h"

#include <string.h>

#include "jsonutil.h" // defines: json_load_file, json_get_*

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

int vae_config_load(VaeConfig *c, const char *path) {
    cJSON *o = json_load_file(path);
    if (!o) return LS_ERR;
    vae_config_sd15(c);
    c->layers_per_block = 1; /* AutoencoderKL's class default */
    int rc = LS_ERR, n = 0;
    char types[VAE_MAX_LEVELS][64];
    if (json_require(o, path, "block_out_channels") < 0 ||
        json_get_int_array(o, path, "block_out_channels", 1, VAE_MAX_CHANNELS, c->block_out, VAE_MAX_LEVELS,
                           &n, 0) < 0)
        goto done;
    c->n_levels = n;
    int nt = 0;
    if (json_get_string_array(o, path, "down_block_types", types, VAE_MAX_LEVELS, &nt) < 0) goto done;
    for (int i = 0; i < nt; i++)
        if (strcmp(types[i], "DownEncoderBlock2D")) {
            ls_set_error("%s: unsupported down block type '%s'", path, types[i]);
            goto done;
        }
    if (json_get_string_array(o, path, "up_block_types", types, VAE_MAX_LEVELS, &nt) < 0) goto done;
    for (int i = 0; i < nt; i++)
        if (strcmp(types[i], "UpDecoderBlock2D")) {
            ls_set_error("%s: unsupported up block type '%s'", path, types[i]);
            goto done;
        }
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
        goto done;
    float shift = 0;
    if (json_get_float(o, path, "shift_factor", &shift) < 0) goto done;
    if (shift != 0) {
        ls_set_error("%s: shift_factor is not supported (not an SD-1.x VAE)", path);
        goto done;
    }
    if (strcmp(act, "silu") && strcmp(act, "swish")) {
        ls_set_error("%s: unsupported act_fn '%s'", path, act);
        goto done;
    }
    if (!(c->scaling_factor > 0)) {
        ls_set_error("%s: key 'scaling_factor' must be positive", path);
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (c->block_out[i] % c->norm_num_groups) {
            ls_set_error("%s: block_out_channels[%d]=%d must be divisible by norm_num_groups (%d)", path,
                         i, c->block_out[i], c->norm_num_groups);
            goto done;
        }
    rc = LS_OK;
done:
    cJSON_Delete(o);
    return rc;
}

char *vae_config_to_json(const VaeConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "AutoencoderKL");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.6.0");
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
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
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

/* Run a resnet on *h (B,C,H,W) and replace it with the output (B,cout,H,W). */
static void run_res(const ResBlock *r, float **h, int *C, int B, int H, int W) {
    float *y = sbuf((size_t)B * r->cout * H * W);
    resblock_forward(r, NULL, y, *h, NULL, B, H, W);
    pool_free(*h);
    *h = y;
    *C = r->cout;
}

static void run_mid(const VaeCoder *cd, const VaeConfig *c, float **h, int C, int B, int H, int W) {
    run_res(&cd->mid_res[0], h, &C, B, H, W);
    if (c->mid_attention) {
        float *y = sbuf((size_t)B * C * H * W);
        vae_attn_forward(&cd->mid_attn, NULL, y, *h, B, H, W);
        pool_free(*h);
        *h = y;
    }
    run_res(&cd->mid_res[1], h, &C, B, H, W);
}

void vae_encode(const Vae *v, float *moments, const float *img, int B, int H, int W, int *ph, int *pw) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *e = &v->enc;
    int C = c->block_out[0], n = c->n_levels, Lt2 = 2 * c->latent_channels;
    float *h = sbuf((size_t)B * C * H * W);
    conv_forward(&e->conv_in, h, img, B, H, W, NULL, NULL);
    for (int i = 0; i < n; i++) {
        const VaeLevel *lv = &e->levels[i];
        for (int j = 0; j < lv->n; j++) run_res(&lv->resnets[j], &h, &C, B, H, W);
        if (lv->has_sample) {
            int Ho = op_conv2d_out(H, 3, 2, 0, 1), Wo = op_conv2d_out(W, 3, 2, 0, 1);
            float *y = sbuf((size_t)B * C * Ho * Wo);
            conv_forward(&lv->sample, y, h, B, H, W, NULL, NULL);
            pool_free(h);
            h = y;
            H = Ho;
            W = Wo;
        }
    }
    run_mid(e, c, &h, C, B, H, W);
    float *a = sbuf((size_t)B * C * H * W);
    groupnorm_forward(&e->norm_out, a, NULL, NULL, h, B, H * W, 1);
    if (c->use_quant_conv) {
        float *m = sbuf((size_t)B * Lt2 * H * W);
        conv_forward(&e->conv_out, m, a, B, H, W, NULL, NULL);
        conv_forward(&v->quant_conv, moments, m, B, H, W, NULL, NULL);
        pool_free(m);
    } else {
        conv_forward(&e->conv_out, moments, a, B, H, W, NULL, NULL);
    }
    pool_free(a);
    pool_free(h);
    *ph = H;
    *pw = W;
}

void vae_decode(const Vae *v, float *img, const float *z, int B, int H, int W) {
    const VaeConfig *c = &v->cfg;
    const VaeCoder *d = &v->dec;
    int n = c->n_levels, Lt = c->latent_channels, C = c->block_out[n - 1];
    const float *zin = z;
    float *pq = NULL;
    if (c->use_post_quant_conv) {
        pq = sbuf((size_t)B * Lt * H * W);
        conv_forward(&v->post_quant_conv, pq, z, B, H, W, NULL, NULL);
        zin = pq;
    }
    float *h = sbuf((size_t)B * C * H * W);
    conv_forward(&d->conv_in, h, zin, B, H, W, NULL, NULL);
    pool_free(pq);
    run_mid(d, c, &h, C, B, H, W);
    for (int i = 0; i < n; i++) {
        const VaeLevel *lv = &d->levels[i];
        for (int j = 0; j < lv->n; j++) run_res(&lv->resnets[j], &h, &C, B, H, W);
        if (lv->has_sample) {
            float *u = sbuf((size_t)B * C * 4 * H * W), *y = sbuf((size_t)B * C * 4 * H * W);
            op_upsample_nearest(u, h, B, C, H, W, 2 * H, 2 * W);
            H *= 2;
            W *= 2;
            conv_forward(&lv->sample, y, u, B, H, W, NULL, NULL);
            pool_free(u);
            pool_free(h);
            h = y;
        }
    }
    float *a = sbuf((size_t)B * C * H * W);
    groupnorm_forward(&d->norm_out, a, NULL, NULL, h, B, H * W, 1);
    conv_forward(&d->conv_out, img, a, B, H, W, NULL, NULL);
    pool_free(a);
    pool_free(h);
}
