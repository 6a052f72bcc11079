/* ldm_names.c — see ldm_names.h. Mapping tables from sd1-reference.md §4.3; generalised to any
 * layers_per_block L: input_blocks index = 1 + b·(L+1) + l, output_blocks index = b·(L+1) + l. */
#include "ldm_names.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int emit(char *out, int cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int emit(char *out, int cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, (size_t)cap, fmt, ap);
    va_end(ap);
    return (n < 0 || n >= cap) ? -1 : 0;
}

/* Inside a U-Net resnet: diffusers leaf → LDM leaf. */
static const char *unet_res_leaf(const char *rest, char *buf, int cap) {
    static const char *map[][2] = {{"norm1.", "in_layers.0."},      {"conv1.", "in_layers.2."},
                                   {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
                                   {"conv2.", "out_layers.3."},     {"conv_shortcut.", "skip_connection."}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t n = strlen(map[i][0]);
        if (!strncmp(rest, map[i][0], n)) {
            snprintf(buf, (size_t)cap, "%s%s", map[i][1], rest + n);
            return buf;
        }
    }
    return NULL;
}

int ldm_unet_key(const char *key, char *out, int cap, const void *ctx) {
    const UNetConfig *c = ctx;
    const char *P = "model.diffusion_model.";
    int L = c->layers_per_block, b, l, off = 0;
    char leaf[256];
    const char *r;
    if (!strncmp(key, "time_embedding.linear_1.", 24)) return emit(out, cap, "%stime_embed.0.%s", P, key + 24);
    if (!strncmp(key, "time_embedding.linear_2.", 24)) return emit(out, cap, "%stime_embed.2.%s", P, key + 24);
    if (!strncmp(key, "conv_in.", 8)) return emit(out, cap, "%sinput_blocks.0.0.%s", P, key + 8);
    if (!strncmp(key, "conv_norm_out.", 14)) return emit(out, cap, "%sout.0.%s", P, key + 14);
    if (!strncmp(key, "conv_out.", 9)) return emit(out, cap, "%sout.2.%s", P, key + 9);
    if (sscanf(key, "down_blocks.%d.resnets.%d.%n", &b, &l, &off) == 2 && off) {
        if (!(r = unet_res_leaf(key + off, leaf, sizeof leaf))) return -1;
        return emit(out, cap, "%sinput_blocks.%d.0.%s", P, 1 + b * (L + 1) + l, r);
    }
    off = 0;
    if (sscanf(key, "down_blocks.%d.attentions.%d.%n", &b, &l, &off) == 2 && off)
        return emit(out, cap, "%sinput_blocks.%d.1.%s", P, 1 + b * (L + 1) + l, key + off);
    off = 0;
    if (sscanf(key, "down_blocks.%d.downsamplers.0.conv.%n", &b, &off) == 1 && off)
        return emit(out, cap, "%sinput_blocks.%d.0.op.%s", P, (b + 1) * (L + 1), key + off);
    if (!strncmp(key, "mid_block.resnets.0.", 20)) {
        if (!(r = unet_res_leaf(key + 20, leaf, sizeof leaf))) return -1;
        return emit(out, cap, "%smiddle_block.0.%s", P, r);
    }
    if (!strncmp(key, "mid_block.attentions.0.", 23))
        return emit(out, cap, "%smiddle_block.1.%s", P, key + 23);
    if (!strncmp(key, "mid_block.resnets.1.", 20)) {
        if (!(r = unet_res_leaf(key + 20, leaf, sizeof leaf))) return -1;
        return emit(out, cap, "%smiddle_block.2.%s", P, r);
    }
    off = 0;
    if (sscanf(key, "up_blocks.%d.resnets.%d.%n", &b, &l, &off) == 2 && off) {
        if (!(r = unet_res_leaf(key + off, leaf, sizeof leaf))) return -1;
        return emit(out, cap, "%soutput_blocks.%d.0.%s", P, b * (L + 1) + l, r);
    }
    off = 0;
    if (sscanf(key, "up_blocks.%d.attentions.%d.%n", &b, &l, &off) == 2 && off)
        return emit(out, cap, "%soutput_blocks.%d.1.%s", P, b * (L + 1) + l, key + off);
    off = 0;
    if (sscanf(key, "up_blocks.%d.upsamplers.0.conv.%n", &b, &off) == 1 && off && b < c->n_levels)
        return emit(out, cap, "%soutput_blocks.%d.%d.conv.%s", P, b * (L + 1) + L, c->up_attn[b] ? 2 : 1,
                    key + off);
    return -1;
}

/* Inside a VAE resnet only the shortcut is renamed. */
static const char *vae_res_leaf(const char *rest, char *buf, int cap) {
    if (!strncmp(rest, "conv_shortcut.", 14)) snprintf(buf, (size_t)cap, "nin_shortcut.%s", rest + 14);
    else snprintf(buf, (size_t)cap, "%s", rest);
    return buf;
}

int ldm_vae_key(const char *key, char *out, int cap, const void *ctx) {
    const VaeConfig *c = ctx;
    const char *P = "first_stage_model.";
    int i, j, off = 0;
    char leaf[256], root[16];
    if (sscanf(key, "encoder.down_blocks.%d.resnets.%d.%n", &i, &j, &off) == 2 && off)
        return emit(out, cap, "%sencoder.down.%d.block.%d.%s", P, i, j, vae_res_leaf(key + off, leaf, 256));
    off = 0;
    if (sscanf(key, "encoder.down_blocks.%d.downsamplers.0.conv.%n", &i, &off) == 1 && off)
        return emit(out, cap, "%sencoder.down.%d.downsample.conv.%s", P, i, key + off);
    off = 0;
    if (sscanf(key, "decoder.up_blocks.%d.resnets.%d.%n", &i, &j, &off) == 2 && off)
        return emit(out, cap, "%sdecoder.up.%d.block.%d.%s", P, c->n_levels - 1 - i, j,
                    vae_res_leaf(key + off, leaf, 256));
    off = 0;
    if (sscanf(key, "decoder.up_blocks.%d.upsamplers.0.conv.%n", &i, &off) == 1 && off)
        return emit(out, cap, "%sdecoder.up.%d.upsample.conv.%s", P, c->n_levels - 1 - i, key + off);
    off = 0;
    if (sscanf(key, "%15[a-z].mid_block.%n", root, &off) == 1 && off) {
        const char *r = key + off;
        if (!strncmp(r, "resnets.0.", 10))
            return emit(out, cap, "%s%s.mid.block_1.%s", P, root, vae_res_leaf(r + 10, leaf, 256));
        if (!strncmp(r, "resnets.1.", 10))
            return emit(out, cap, "%s%s.mid.block_2.%s", P, root, vae_res_leaf(r + 10, leaf, 256));
        static const char *attn[][2] = {{"attentions.0.group_norm.", "norm."}, {"attentions.0.to_q.", "q."},
                                        {"attentions.0.to_k.", "k."},          {"attentions.0.to_v.", "v."},
                                        {"attentions.0.to_out.0.", "proj_out."}};
        for (int k = 0; k < 5; k++) {
            size_t n = strlen(attn[k][0]);
            if (!strncmp(r, attn[k][0], n))
                return emit(out, cap, "%s%s.mid.attn_1.%s%s", P, root, attn[k][1], r + n);
        }
        return -1;
    }
    off = 0;
    if (sscanf(key, "%15[a-z].conv_norm_out.%n", root, &off) == 1 && off)
        return emit(out, cap, "%s%s.norm_out.%s", P, root, key + off);
    return emit(out, cap, "%s%s", P, key); /* conv_in, conv_out, quant_conv, post_quant_conv */
}

int ldm_prefix_key(const char *key, char *out, int cap, const void *ctx) {
    return emit(out, cap, "%s%s", (const char *)ctx, key);
}

int vae_legacy_attn_key(const char *key, char *out, int cap, const void *ctx) {
    static const char *map[][2] = {{"attentions.0.to_q.", "attentions.0.query."},
                                   {"attentions.0.to_k.", "attentions.0.key."},
                                   {"attentions.0.to_v.", "attentions.0.value."},
                                   {"attentions.0.to_out.0.", "attentions.0.proj_attn."}};
    for (int k = 0; k < 4; k++) {
        const char *p = strstr(key, map[k][0]);
        if (p) return emit(out, cap, "%.*s%s%s", (int)(p - key), key, map[k][1], p + strlen(map[k][0]));
    }
    return emit(out, cap, "%s", key);
}
