/* fuzz_infotext.c — the A1111 "parameters" text of a PNG (what `generate --params-from` reads): the
 * infotext parser, the lookups and sampler names the CLI applies to it, and the <lora:NAME:W> prompt tags
 * taken out of its prompt. Also: a PNG carrying the text as a tEXt chunk, read back with
 * image_png_get_text (the chunk writer and reader round trip). Must never crash or leak. */
#include "fuzz_util.h"   // defines: fuzz_dir, fuzz_string
#include "image.h"       // defines: image_write_png, image_png_get_text
#include "infotext.h"    // defines: infotext_parse, infotext_get
#include "lora.h"        // defines: lora_extract_prompt_tags, lora_parse_spec
#include "scheduler.h"   // defines: sampler_from_display_name

#define MAX_TAGS 8

static void check_prompt_tags(const char *prompt) {
    char *p = strdup(prompt);
    char *names[MAX_TAGS];
    float te[MAX_TAGS], unet[MAX_TAGS];
    int n = lora_extract_prompt_tags(p, names, te, unet, MAX_TAGS);
    for (int i = 0; i < n; i++) free(names[i]);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_string(data, size);
    InfoText it;
    if (infotext_parse(&it, text) == 0) {
        SamplerKind k;
        int karras;
        const char *sampler = infotext_get(&it, "Sampler");
        if (sampler) sampler_from_display_name(sampler, infotext_get(&it, "Schedule type"), &k, &karras);
        for (int i = 0; i < it.n; i++) free(infotext_quote(it.value[i]));
        check_prompt_tags(it.prompt);
        check_prompt_tags(it.negative);
    }
    infotext_free(&it);
    char path[4096];
    float unet, te;
    lora_parse_spec(text, path, sizeof path, &unet, &te);
    /* a short text also through a real PNG chunk (the write costs too much to do for every input) */
    if (size <= 256 && size % 4 == 0) {
        const char *dir = fuzz_dir("infotext");
        char *png = ls_path_join(dir, "p.png");
        uint8_t px[3] = {255, 0, 0};
        Image img = {1, 1, 3, px};
        const char *kv[2] = {"parameters", text};
        if (image_write_png(png, &img, kv, 1) == 0) {
            char *back = image_png_get_text(png, "parameters");
            /* ASCII must come back as written (other bytes may be read back as Latin-1: image.c) */
            int ascii = 1;
            for (size_t i = 0; i < size && data[i]; i++) ascii &= data[i] < 0x80;
            if (!back || (ascii && strcmp(back, text))) abort();
            free(back);
        }
        free(png);
    }
    free(text);
    return 0;
}
