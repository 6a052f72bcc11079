/* fuzz_tokenizer.c — reading tokenizer files: the first input byte picks the file the rest becomes —
 * tokenizer.json (transformers >= 5: model.vocab, model.merges as strings or pairs, added_tokens),
 * vocab.json + merges.txt (split at the first NUL byte), or tokenizer_config.json beside a valid vocabulary
 * — then tokenizer_load, and a loaded tokenizer encodes a fixed text and the input's own bytes. Must never
 * crash or leak, whatever ids, duplicates, missing specials or merges naming unknown symbols. */
#include "fuzz_util.h"   // defines: fuzz_dir, fuzz_write, fuzz_string
#include "tokenizer.h"   // defines: tokenizer_load, tokenizer_encode, tokenizer_write_tiny

#define MAX_LEN 77

enum { AS_TOKENIZER_JSON, AS_VOCAB_MERGES, AS_CONFIG, N_MODES };

/* dir/<mode>/ holds the input as that mode's files; AS_CONFIG's folder gets the tiny vocabulary once. */
static char *mode_dir(const char *dir, int mode) {
    char name[16];
    snprintf(name, sizeof name, "m%d", mode);
    char *d = ls_path_join(dir, name);
    if (!ls_is_dir(d) && (ls_mkdir_p(d) < 0 || (mode == AS_CONFIG && tokenizer_write_tiny(d) < 0))) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", ls_last_error());
        abort();
    }
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % N_MODES;
    data++, size--;
    char *d = mode_dir(fuzz_dir("tokenizer"), mode);
    if (mode == AS_TOKENIZER_JSON) {
        free(fuzz_write(d, "tokenizer.json", data, size));
    } else if (mode == AS_VOCAB_MERGES) {
        const uint8_t *nul = memchr(data, 0, size);
        size_t nv = nul ? (size_t)(nul - data) : size;
        free(fuzz_write(d, "vocab.json", data, nv));
        free(fuzz_write(d, "merges.txt", data + nv + (nul != NULL), size - nv - (nul != NULL)));
    } else {
        free(fuzz_write(d, "tokenizer_config.json", data, size));
    }
    Tokenizer *t = tokenizer_load(d);
    if (t) {
        int ids[MAX_LEN];
        tokenizer_encode(t, "a photo of a cat, <|endoftext|> sks style", ids, MAX_LEN, NULL);
        char *text = fuzz_string(data, size);
        tokenizer_encode(t, text, ids, MAX_LEN, NULL);
        free(text);
        tokenizer_free(t);
    }
    free(d);
    return 0;
}
