/* tokenizer.h — CLIP byte-level BPE tokenizer (== transformers CLIPTokenizer for SD1.x).
 *
 * Loads vocab.json + merges.txt, or tokenizer.json (what transformers >= 5 saves), and tokenizer_config.json
 * for model_max_length and the special tokens, if present. Pipeline:
 * NFC → whitespace collapse/strip → lowercase → special-token split → CLIP pre-tokenizer regex →
 * bytes_to_unicode → BPE by merge rank → ids. Sequences are [bos] + tokens[:max_len-2] + [eos] + pad.
 */
#ifndef LS_TOKENIZER_H
#define LS_TOKENIZER_H

#include <stddef.h>

typedef struct Tokenizer Tokenizer;

/* dir holds vocab.json and merges.txt, or tokenizer.json. NULL + error naming the file on failure. */
Tokenizer *tokenizer_load(const char *dir);
void tokenizer_free(Tokenizer *t);

int tokenizer_vocab_size(const Tokenizer *t);
int tokenizer_bos(const Tokenizer *t); /* id of <|startoftext|> */
int tokenizer_eos(const Tokenizer *t); /* id of <|endoftext|> */
int tokenizer_pad(const Tokenizer *t); /* == eos for SD1.x */
int tokenizer_max_length(const Tokenizer *t); /* model_max_length, 77 */

/* Token ids of text without specials, truncation or padding. Returns count (may be 0), writes at most
 * cap ids (the count is the full one even when it exceeds cap; ids may be NULL with cap 0 to count);
 * LS_ERR on invalid UTF-8 input (message says so). */
int tokenizer_encode_raw(const Tokenizer *t, const char *text, int *ids, int cap);

/* Full SD encoding to exactly max_len ids: [bos] + first (max_len-2) tokens + [eos] + pad.
 * *n_dropped (may be NULL) receives how many tokens were cut off (callers warn). Returns the number of
 * ids before the padding (kept tokens + 2); LS_ERR on bad UTF-8 or max_len < 2. */
int tokenizer_encode(const Tokenizer *t, const char *text, int *ids, int max_len, int *n_dropped);

/* Write the built-in tiny vocabulary (1000 ids: 256 byte symbols, 256 with </w>, 486 merges learnt by
 * lorastyle's own BPE trainer on an embedded word list, then <|startoftext|>, <|endoftext|>) into dir as
 * vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json. */
int tokenizer_write_tiny(const char *dir);
/* A vocabulary of its own for a small model: up to max_merges BPE merges learnt from corpus (stops early once
 * every word is one token), over CLIP's 512 byte-level base tokens, so any text still tokenizes; BOS and EOS
 * last. *vocab_size (may be NULL) gets the number of tokens. */
int tokenizer_write_trained(const char *dir, const char *const *corpus, size_t n, int max_merges,
                            int *vocab_size);

/* Write a full CLIP tokenizer folder from OpenAI/open_clip's bpe_simple_vocab_16e6.txt(.gz) merges file
 * (vocab order: bytes, bytes+</w>, first 48894 merges, specials → 49408 ids). */
int tokenizer_write_from_bpe(const char *bpe_path, const char *dir);

#endif
