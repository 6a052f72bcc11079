/* fuzz_caption.c — captions and the tokenizer: the input is the caption file (img.txt) of a one-image
 * dataset folder, read by dataset_scan (first line, BOM, control characters, UTF-8 repair, 64 KiB cap,
 * tag counting), turned into training-step captions by dataset_caption (trigger word, kept tokens, tag
 * shuffling and dropout) and tokenized with the built-in tiny CLIP vocabulary, as training does; the raw
 * bytes are also tokenized directly (invalid UTF-8 must be an error, not a crash). The image (1×1 PNG) and
 * the vocabulary are written once per process. */
#include "dataset.h"     // defines: dataset_scan, dataset_caption, dataset_tag_frequency_json
#include "fuzz_util.h"   // defines: fuzz_dir, fuzz_write, fuzz_string
#include "image.h"       // defines: image_write_png
#include "tokenizer.h"   // defines: tokenizer_write_tiny, tokenizer_load, tokenizer_encode

#define MAX_LEN 77

/* dir/ds/img.png and the tiny tokenizer in dir/tok, made on the first call. */
static Tokenizer *fuzz_setup(const char *dir) {
    static Tokenizer *tok;
    if (tok) return tok;
    char *ds = ls_path_join(dir, "ds"), *png = ls_path_join(ds, "img.png"), *td = ls_path_join(dir, "tok");
    uint8_t px[3] = {10, 20, 30};
    Image img = {1, 1, 3, px};
    if (ls_mkdir_p(ds) < 0 || image_write_png(png, &img, NULL, 0) < 0 || tokenizer_write_tiny(td) < 0 ||
        !(tok = tokenizer_load(td))) {
        fprintf(stderr, "fuzz_caption: %s\n", ls_last_error());
        abort();
    }
    free(ds), free(png), free(td);
    return tok;
}

static void tokenize(const Tokenizer *tok, const char *text) {
    int ids[MAX_LEN], dropped;
    tokenizer_encode(tok, text, ids, MAX_LEN, &dropped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir("caption");
    Tokenizer *tok = fuzz_setup(dir);
    char *ds = ls_path_join(dir, "ds");
    free(fuzz_write(ds, "img.txt", data, size));
    DatasetOptions o;
    dataset_options_default(&o);
    o.resolution = 64;
    o.trigger = "sks style";
    o.keep_tokens = 1;
    o.shuffle_tags = 1;
    o.tag_dropout = 0.3f;
    o.caption_dropout = 0.1f;
    o.quiet = 1;
    Dataset d;
    if (dataset_scan(&d, ds, &o) == 0) {
        int cap = dataset_caption_bound(&d, 0);
        char *caption = malloc((size_t)cap);
        if (!caption) abort();
        for (uint64_t step = 0; step < 3; step++)
            if (dataset_caption(&d, 0, 7, step, caption, cap) >= 0) tokenize(tok, caption);
        if (dataset_caption(&d, 0, 7, DATASET_CAPTION_PLAIN, caption, cap) >= 0) tokenize(tok, caption);
        free(caption);
        free(dataset_tag_frequency_json(&d));
        dataset_free(&d);
    }
    char *text = fuzz_string(data, size);
    int n = tokenizer_encode_raw(tok, text, NULL, 0);
    if (n > 0) {
        int *ids = malloc((size_t)n * sizeof *ids);
        if (!ids || tokenizer_encode_raw(tok, text, ids, n) != n) abort(); /* counting and encoding agree */
        free(ids);
    }
    tokenize(tok, text);
    free(text);
    free(ds);
    return 0;
}
