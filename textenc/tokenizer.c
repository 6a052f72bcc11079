/* tokenizer.c — CLIP byte-level BPE tokenizer, id-for-id equal to transformers 5.x's CLIPTokenizer.
 *
 * transformers 5 builds CLIPTokenizer on the Rust `tokenizers` library; this file reproduces that stack
 * (sd1-reference.md §3; measured against transformers 5.23 / tokenizers 0.23.3):
 *
 *   1. special-token split: the *raw* text is cut at literal "<|startoftext|>" / "<|endoftext|>" (exact,
 *      case-sensitive: they are added tokens with normalized=false); each becomes its id directly;
 *   2. each remaining segment is normalized on its own: NFC, every \s+ run → " ", lowercase (per code
 *      point, Rust char::to_lowercase: U+0130 → "i\u0307", no final-sigma rule). No ftfy, no strip;
 *   3. pre-tokenizer, the CLIP regex (Oniguruma, leftmost alternative wins at each position):
 *        <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 *      whitespace is dropped. Then the ByteLevel pre-tokenizer re-splits every piece with the GPT-2 regex;
 *      that only changes the two special-string pieces, which become "<|", "startoftext"/"endoftext", "|>";
 *   4. bytes_to_unicode on each piece's UTF-8 bytes, "</w>" glued to the last symbol;
 *   5. BPE with the Rust merge order: a heap of (rank, position), lowest rank first, leftmost on ties;
 *   6. [bos] + first (max_len-2) ids + [eos] + pad.
 *
 * Sections: hash maps · UTF-8 and bytes_to_unicode · normalization and pre-tokenizer · BPE · loading ·
 * encoding · writing vocab folders (tiny trainer, open_clip bpe file).
 */
#include "tokenizer.h"

#include "common.h"         /* defines: ls_set_error, mallocCheck, ls_read_file, ls_write_file_atomic */
#include "pool.h"           /* defines: pool_alloc, pool_free */
#include "unicode_tables.h" /* defines: uni_class, uni_tolower, uni_nfc */

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define BOS_TOKEN "<|startoftext|>"
#define EOS_TOKEN "<|endoftext|>"
#define EOW "</w>"            /* end-of-word suffix glued to the last symbol of each piece */
#define CLIP_N_MERGES 48894   /* 49152 - 256 - 2: merge lines of the open_clip file that CLIP uses */
#define MAX_SPECIALS 4        /* bos, eos, unk, pad (usually two distinct strings) */

static void *realloc_check(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "lorastyle: out of memory reallocating %zu bytes at %s:%d\n", n, __FILE__,
                __LINE__);
        abort();
    }
    return q;
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(mallocCheck(n), s, n);
}

/* ---- hash maps ------------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n) { /* FNV-1a, 64 bit */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* token string → id; open addressing, linear probing, power-of-two capacity, never more than half full. */
typedef struct {
    char **keys; /* (cap) owned NUL-terminated strings, NULL = empty slot */
    int *vals;   /* (cap) */
    size_t cap, n;
} StrMap;

static void strmap_init(StrMap *m, size_t expected) {
    m->cap = 16;
    while (m->cap < 2 * expected) m->cap *= 2;
    m->keys = callocCheck(m->cap, sizeof *m->keys);
    m->vals = mallocCheck(m->cap * sizeof *m->vals);
    m->n = 0;
}

static void strmap_free(StrMap *m) {
    for (size_t i = 0; m->keys && i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t strmap_slot(const StrMap *m, const char *s, size_t n) {
    size_t i = hash_bytes(s, n) & (m->cap - 1);
    while (m->keys[i] && !(strlen(m->keys[i]) == n && memcmp(m->keys[i], s, n) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Id of the n-byte string s, or -1. */
static int strmap_get(const StrMap *m, const char *s, size_t n) {
    size_t i = strmap_slot(m, s, n);
    return m->keys[i] ? m->vals[i] : -1;
}

/* Insert or overwrite (a later duplicate JSON key wins, as with Python's json.load). */
static void strmap_put(StrMap *m, const char *s, size_t n, int val) {
    if (2 * (m->n + 1) > m->cap) {
        StrMap bigger;
        strmap_init(&bigger, m->cap);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t j = strmap_slot(&bigger, m->keys[i], strlen(m->keys[i]));
            bigger.keys[j] = m->keys[i];
            bigger.vals[j] = m->vals[i];
            bigger.n++;
        }
        free(m->keys);
        free(m->vals);
        *m = bigger;
    }
    size_t i = strmap_slot(m, s, n);
    if (!m->keys[i]) {
        m->keys[i] = mallocCheck(n + 1);
        memcpy(m->keys[i], s, n);
        m->keys[i][n] = 0;
        m->n++;
    }
    m->vals[i] = val;
}

/* (left id, right id) → (merge rank, merged id). Key = left << 32 | right; all-ones marks an empty slot
 * (ids are < 2^31, so no real key has that value). */
typedef struct {
    uint64_t *keys; /* (cap) */
    int *rank;      /* (cap) */
    int *merged;    /* (cap) */
    size_t cap, n;
} PairMap;

#define PAIR_EMPTY UINT64_MAX
#define PAIR_KEY(a, b) (((uint64_t)(uint32_t)(a) << 32) | (uint32_t)(b))

static void pairmap_init(PairMap *m, size_t expected) {
    m->cap = 16;
    while (m->cap < 2 * expected) m->cap *= 2;
    m->keys = mallocCheck(m->cap * sizeof *m->keys);
    for (size_t i = 0; i < m->cap; i++) m->keys[i] = PAIR_EMPTY;
    m->rank = mallocCheck(m->cap * sizeof *m->rank);
    m->merged = mallocCheck(m->cap * sizeof *m->merged);
    m->n = 0;
}

static void pairmap_free(PairMap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

static size_t pairmap_slot(const PairMap *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: the top bits are well mixed */
    size_t i = (size_t)(h >> 20) & (m->cap - 1);
    while (m->keys[i] != PAIR_EMPTY && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

/* Slot index of (a, b), or -1 when the pair is not a merge. */
static long pairmap_find(const PairMap *m, int a, int b) {
    size_t i = pairmap_slot(m, PAIR_KEY(a, b));
    return m->keys[i] == PAIR_EMPTY ? -1 : (long)i;
}

static void pairmap_put(PairMap *m, int a, int b, int rank, int merged) {
    if (2 * (m->n + 1) > m->cap) {
        PairMap bigger;
        pairmap_init(&bigger, m->cap);
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i] == PAIR_EMPTY) continue;
            size_t j = pairmap_slot(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.rank[j] = m->rank[i];
            bigger.merged[j] = m->merged[i];
            bigger.n++;
        }
        pairmap_free(m);
        *m = bigger;
    }
    size_t i = pairmap_slot(m, PAIR_KEY(a, b));
    if (m->keys[i] == PAIR_EMPTY) m->n++;
    m->keys[i] = PAIR_KEY(a, b);
    m->rank[i] = rank; /* a repeated pair keeps its last rank, like the Rust HashMap it mirrors */
    m->merged[i] = merged;
}

/* ---- UTF-8 and bytes_to_unicode ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid (overlong forms, surrogates, > U+10FFFF,
 * truncated sequences and stray continuation bytes are all rejected). */
static int utf8_seq_len(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) return *cp = c, 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* Check that text[0..n) is valid UTF-8; LS_ERR naming the byte offset otherwise. */
static int utf8_validate(const char *text, size_t n) {
    const unsigned char *s = (const unsigned char *)text;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int len = utf8_seq_len(s + i, n - i, &cp);
        if (!len)
            return ls_set_error("tokenizer: text is not valid UTF-8 (bad byte 0x%02X at offset %zu)", s[i], i);
        i += (size_t)len;
    }
    return LS_OK;
}

/* Decode validated UTF-8 into out (room for n code points); returns the count. */
static size_t utf8_decode(const char *text, size_t n, uint32_t *out) {
    const unsigned char *s = (const unsigned char *)text;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        int len = utf8_seq_len(s + i, n - i, &out[m]);
        LS_ASSERT(len > 0);
        i += (size_t)len;
        m++;
    }
    return m;
}

/* Encode one code point; returns the byte count (1..4). */
static int utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2/CLIP bytes_to_unicode: the printable bytes 33..126, 161..172, 174..255 stand for themselves; the
 * other 68 (0..32, 127..160, 173), in increasing order, become U+0100.. U+0143 (space → U+0120). */
static int byte_is_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

/* Vocabulary index (0..255) of byte b's symbol: the 188 printable bytes first, then the 68 remapped. */
static int byte_index(int b) {
    int k = byte_is_printable(b) ? 0 : 188;
    for (int i = 0; i < b; i++) k += byte_is_printable(i) == byte_is_printable(b);
    return k;
}

static uint32_t byte_to_cp(int b) {
    return byte_is_printable(b) ? (uint32_t)b : 256u + (uint32_t)(byte_index(b) - 188);
}

/* Inverse of byte_index. */
static int byte_at_index(int i) {
    for (int b = 0; b < 256; b++)
        if (byte_index(b) == i) return b;
    LS_ASSERT(0);
    return -1;
}

/* The UTF-8 text of byte b's symbol, NUL-terminated (2 bytes at most). */
static int byte_symbol(int b, char out[8]) {
    int n = utf8_put(byte_to_cp(b), out);
    out[n] = 0;
    return n;
}

/* ---- normalization and pre-tokenizer ------------------------------------------------------------------- */

/* NFC, \s+ → " ", lowercase, on s[0..n) (valid UTF-8). Returns a code point array from the backend's pool
 * (pool_free; encoding a caption every training step then allocates nothing), *out_n its length. */
static uint32_t *normalize(const char *s, size_t n, size_t *out_n) {
    uint32_t *cp = pool_alloc((n + 1) * sizeof *cp);
    size_t m = utf8_decode(s, n, cp);
    uint32_t *nfc = pool_alloc((4 * m + 1) * sizeof *nfc);
    m = uni_nfc(cp, m, nfc);
    pool_free(cp);

    size_t w = 0; /* each run of \s characters becomes one " ", in place */
    for (size_t i = 0, in_space = 0; i < m; i++) {
        int space = uni_class(nfc[i]) == UNI_SPACE;
        if (!space) nfc[w++] = nfc[i];
        else if (!in_space) nfc[w++] = ' ';
        in_space = space;
    }
    m = w;

    uint32_t *low = pool_alloc((3 * m + 1) * sizeof *low);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) k += (size_t)uni_tolower(nfc[i], low + k);
    pool_free(nfc);
    *out_n = k;
    return low;
}

typedef void (*PieceFn)(const uint32_t *cp, size_t n, void *ctx);

/* Does cp[0..n) start with the ASCII string lit? */
static int starts_with(const uint32_t *cp, size_t n, const char *lit) {
    size_t k = strlen(lit);
    if (k > n) return 0;
    for (size_t i = 0; i < k; i++)
        if (cp[i] != (unsigned char)lit[i]) return 0;
    return 1;
}

/* The CLIP pre-tokenizer regex, hand-written: calls fn once per piece, left to right. At each position
 * the first alternative that matches wins, exactly as in the regex; whitespace matches nothing. */
static void pretokenize(const uint32_t *cp, size_t n, PieceFn fn, void *ctx) {
    static const char *const specials[2] = {BOS_TOKEN, EOS_TOKEN};
    static const char *const contractions[7] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t i = 0;
    while (i < n) {
        size_t len = 0;
        for (int s = 0; s < 2 && !len; s++) {
            if (!starts_with(cp + i, n - i, specials[s])) continue;
            /* ByteLevel's GPT-2 regex then splits the piece "<|name|>" into "<|", "name", "|>". */
            len = strlen(specials[s]);
            fn(cp + i, 2, ctx);
            fn(cp + i + 2, len - 4, ctx);
            fn(cp + i + len - 2, 2, ctx);
        }
        if (len) {
            i += len;
            continue;
        }
        for (int c = 0; c < 7 && !len; c++)
            if (starts_with(cp + i, n - i, contractions[c])) len = strlen(contractions[c]);
        int cls = uni_class(cp[i]);
        if (!len && cls == UNI_SPACE) {
            i++;
            continue;
        }
        if (!len) { /* \p{L}+ | \p{N} (one number character) | [^\s\p{L}\p{N}]+ */
            len = 1;
            if (cls != UNI_NUMBER)
                while (i + len < n && uni_class(cp[i + len]) == cls) len++;
        }
        fn(cp + i, len, ctx);
        i += len;
    }
}

/* ---- the tokenizer and BPE ----------------------------------------------------------------------------- */

struct Tokenizer {
    StrMap vocab;              /* token string → id (vocab.json) */
    PairMap merges;            /* (left id, right id) → (rank, merged id) (merges.txt) */
    int vocab_size;            /* max id + 1 */
    int byte_id[256];          /* id of byte b's symbol */
    int byte_eow_id[256];      /* id of byte b's symbol + "</w>" */
    int bos, eos, pad, unk;    /* ids */
    int max_len;               /* model_max_length */
    int n_specials;            /* distinct special-token strings split out of the raw text */
    char *special[MAX_SPECIALS];
    int special_id[MAX_SPECIALS];
};

/* Where encoded ids go: at most cap are stored, all are counted. */
typedef struct {
    const Tokenizer *t;
    int *ids;
    int cap, n;
} IdSink;

static void sink_push(IdSink *s, int id) {
    if (s->n < s->cap) s->ids[s->n] = id;
    s->n++;
}

typedef struct {
    int id, prev, next; /* prev/next: neighbour indices, -1 at the ends */
    int alive;          /* 0 once merged into its left neighbour */
} Symbol;

typedef struct {
    int rank, pos, merged;
} HeapItem;

/* Heap order of the Rust BPE: lowest rank first, then leftmost position. */
static int heap_before(HeapItem a, HeapItem b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

static void heap_push(HeapItem *h, int *n, HeapItem x) {
    int i = (*n)++;
    while (i > 0 && heap_before(x, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static HeapItem heap_pop(HeapItem *h, int *n) {
    HeapItem top = h[0], x = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_before(h[c + 1], h[c])) c++;
        if (!heap_before(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

/* Queue the merge of symbol pos with its right neighbour, if that pair is a merge. */
static void queue_pair(const Tokenizer *t, const Symbol *sym, int pos, HeapItem *heap, int *nh) {
    if (pos < 0 || sym[pos].next < 0) return;
    long k = pairmap_find(&t->merges, sym[pos].id, sym[sym[pos].next].id);
    if (k >= 0) heap_push(heap, nh, (HeapItem){t->merges.rank[k], pos, t->merges.merged[k]});
}

/* BPE one pre-tokenized piece and push its ids. Mirrors tokenizers' Word::merge_all: pop the best
 * (rank, pos) pair, skip it if stale (a side was merged away or the pair changed), merge, queue the two
 * new neighbour pairs. */
static void bpe_piece(const uint32_t *cp, size_t n, void *ctx) {
    IdSink *sink = ctx;
    const Tokenizer *t = sink->t;
    if (n == 0) return;
    unsigned char *bytes = pool_alloc(4 * n);
    int nb = 0;
    for (size_t i = 0; i < n; i++) nb += utf8_put(cp[i], (char *)bytes + nb);

    Symbol *sym = pool_alloc((size_t)nb * sizeof *sym);
    for (int i = 0; i < nb; i++) {
        int id = i == nb - 1 ? t->byte_eow_id[bytes[i]] : t->byte_id[bytes[i]];
        sym[i] = (Symbol){id >= 0 ? id : t->unk, i - 1, i + 1 < nb ? i + 1 : -1, 1};
    }
    HeapItem *heap = pool_alloc((size_t)(3 * nb + 1) * sizeof *heap); /* n-1 initial + 2 per merge */
    int nh = 0;
    for (int i = 0; i + 1 < nb; i++) queue_pair(t, sym, i, heap, &nh);
    while (nh > 0) {
        HeapItem top = heap_pop(heap, &nh);
        Symbol *s = &sym[top.pos];
        if (!s->alive || s->next < 0) continue;
        long k = pairmap_find(&t->merges, s->id, sym[s->next].id);
        if (k < 0 || t->merges.merged[k] != top.merged) continue; /* stale entry */
        Symbol *r = &sym[s->next];
        s->id = top.merged;
        r->alive = 0;
        s->next = r->next;
        if (r->next >= 0) sym[r->next].prev = top.pos;
        queue_pair(t, sym, s->prev, heap, &nh);
        queue_pair(t, sym, top.pos, heap, &nh);
    }
    for (int i = 0; i >= 0; i = sym[i].next) sink_push(sink, sym[i].id);
    pool_free(heap);
    pool_free(sym);
    pool_free(bytes);
}

/* Normalize, pre-tokenize and BPE one segment of raw text (no special tokens inside). */
static void encode_segment(IdSink *sink, const char *s, size_t n) {
    size_t m;
    uint32_t *cp = normalize(s, n, &m);
    pretokenize(cp, m, bpe_piece, sink);
    pool_free(cp);
}

/* ---- loading --------------------------------------------------------------------------------------------- */

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    strmap_free(&t->vocab);
    pairmap_free(&t->merges);
    for (int i = 0; i < t->n_specials; i++) free(t->special[i]);
    free(t);
}

/* The token → id object of vocab.json, or of tokenizer.json's "model" → "vocab". */
static int vocab_from_json(Tokenizer *t, const cJSON *obj, const char *path) {
    if (!cJSON_IsObject(obj)) return ls_set_error("%s: vocabulary is not a JSON object (expected token → id)", path);
    strmap_init(&t->vocab, (size_t)cJSON_GetArraySize(obj));
    t->vocab_size = 0;
    for (const cJSON *it = obj->child; it; it = it->next) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (v < 0 || v > 1e8 || v != (double)(int)v)
            return ls_set_error("%s: token \"%.40s\" has no valid integer id", path, it->string);
        strmap_put(&t->vocab, it->string, strlen(it->string), (int)v);
        t->vocab_size = LS_MAX(t->vocab_size, (int)v + 1);
    }
    if (t->vocab.n == 0) return ls_set_error("%s: empty vocabulary", path);
    return LS_OK;
}

static cJSON *read_json(const char *path) {
    size_t len;
    char *text = ls_read_file(path, &len);
    if (!text) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) ls_set_error("%s: not valid JSON", path);
    return root;
}

static int load_vocab(Tokenizer *t, const char *path) {
    cJSON *root = read_json(path);
    if (!root) return LS_ERR;
    int rc = vocab_from_json(t, root, path);
    cJSON_Delete(root);
    return rc;
}

/* Append merge (left, right) with the next rank; `where` names it in errors ("merges.txt:3"). */
static int add_merge(Tokenizer *t, const char *left, const char *right, int *rank, LsBuf *joined,
                     const char *where) {
    int a = strmap_get(&t->vocab, left, strlen(left));
    int b = strmap_get(&t->vocab, right, strlen(right));
    joined->len = 0;
    ls_buf_str(joined, left);
    ls_buf_str(joined, right);
    int m = strmap_get(&t->vocab, joined->s, joined->len);
    if (a < 0 || b < 0 || m < 0)
        return ls_set_error("%s: merge \"%s %s\" uses a token missing from the vocabulary", where, left, right);
    pairmap_put(&t->merges, a, b, (*rank)++, m);
    return LS_OK;
}

/* merges.txt as the Rust BPE reads it (BPE::read_file): lines starting with "#version" are skipped, every
 * other line must be exactly "left right" (one ASCII space), an empty line included; rank = order among
 * the kept lines. (So CLIP's real merges starting with '#', such as "# #</w>", are used.) */
static int load_merges(Tokenizer *t, const char *path) {
    size_t len;
    char *text = ls_read_file(path, &len);
    if (!text) return LS_ERR;
    pairmap_init(&t->merges, 1024);
    int rank = 0, lineno = 0, err = LS_OK;
    LsBuf joined = {0};
    char where[1100];
    for (char *line = text, *next; line && *line && err == LS_OK; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = 0; /* "\r\n" endings, as Rust's lines() */
        if (!strncmp(line, "#version", 8)) continue;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        char *sp = strchr(line, ' ');
        if (!sp || strchr(sp + 1, ' ')) {
            err = ls_set_error("%s: expected \"left right\" (two tokens, one space)", where);
            break;
        }
        *sp = 0;
        err = add_merge(t, line, sp + 1, &rank, &joined, where);
    }
    free(joined.s);
    free(text);
    return err;
}

/* tokenizer.json (HF tokenizers; what transformers >= 5 saves instead of vocab.json + merges.txt): the BPE
 * model's "vocab" object and "merges" list, each merge either a ["left", "right"] pair (tokenizers >= 0.20)
 * or a "left right" string (older files). The normalizer / pre-tokenizer are CLIP's fixed ones, not read. */
static int load_tokenizer_json(Tokenizer *t, const char *path) {
    cJSON *root = read_json(path);
    if (!root) return LS_ERR;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int err = LS_OK;
    if (!cJSON_IsObject(model) || (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "BPE"))))
        err = ls_set_error("%s: not a BPE tokenizer (\"model\": {\"type\": \"BPE\", ...} expected)", path);
    else if (!cJSON_IsArray(merges))
        err = ls_set_error("%s: the BPE model has no \"merges\" list", path);
    if (!err) err = vocab_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path);
    if (!err) pairmap_init(&t->merges, 1024);
    int rank = 0, i = 0;
    LsBuf joined = {0}, pair = {0};
    char where[1100];
    for (const cJSON *m = merges ? merges->child : NULL; m && !err; m = m->next, i++) {
        snprintf(where, sizeof where, "%s: merges[%d]", path, i);
        const cJSON *l = cJSON_GetArrayItem(m, 0), *r = cJSON_GetArrayItem(m, 1);
        if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(l) && cJSON_IsString(r)) {
            err = add_merge(t, l->valuestring, r->valuestring, &rank, &joined, where);
            continue;
        }
        const char *sp = cJSON_IsString(m) ? strchr(m->valuestring, ' ') : NULL;
        if (!sp || strchr(sp + 1, ' ')) {
            err = ls_set_error("%s: expected [\"left\", \"right\"] or \"left right\"", where);
            break;
        }
        pair.len = 0;
        ls_buf_add(&pair, m->valuestring, (size_t)(sp - m->valuestring)); /* NUL-terminated */
        err = add_merge(t, pair.s, sp + 1, &rank, &joined, where);
    }
    free(joined.s);
    free(pair.s);
    cJSON_Delete(root);
    return err;
}

/* A special token in tokenizer_config.json: a string or an AddedToken object {"content": ...}. */
static const char *config_token(const cJSON *cfg, const char *key, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* tokenizer_config.json is optional: model_max_length and the special tokens (CLIP defaults otherwise). */
static int load_config(Tokenizer *t, const char *path) {
    cJSON *cfg = NULL;
    if (ls_file_exists(path)) {
        size_t len;
        char *text = ls_read_file(path, &len);
        if (!text) return LS_ERR;
        cfg = cJSON_ParseWithLength(text, len);
        free(text);
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(cfg);
            return ls_set_error("%s: not a JSON object", path);
        }
    }
    t->max_len = 77;
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
    /* HF writes a huge float (1e30) for "no limit"; only a sensible integer replaces the default. */
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 2 && ml->valuedouble <= 1 << 20)
        t->max_len = (int)ml->valuedouble;

    const char *names[MAX_SPECIALS] = {config_token(cfg, "bos_token", BOS_TOKEN),
                                       config_token(cfg, "eos_token", EOS_TOKEN),
                                       config_token(cfg, "unk_token", EOS_TOKEN),
                                       config_token(cfg, "pad_token", EOS_TOKEN)};
    int ids[MAX_SPECIALS], err = LS_OK;
    for (int i = 0; i < MAX_SPECIALS && err == LS_OK; i++) {
        ids[i] = strmap_get(&t->vocab, names[i], strlen(names[i]));
        if (ids[i] < 0) {
            err = ls_set_error("%s: special token \"%s\" is not in the vocabulary", path, names[i]);
            break;
        }
        int dup = 0;
        for (int j = 0; j < t->n_specials; j++) dup |= strcmp(t->special[j], names[i]) == 0;
        if (!dup && names[i][0]) {
            t->special[t->n_specials] = str_dup(names[i]);
            t->special_id[t->n_specials++] = ids[i];
        }
    }
    cJSON_Delete(cfg);
    if (err) return err;
    t->bos = ids[0], t->eos = ids[1], t->unk = ids[2], t->pad = ids[3];
    return LS_OK;
}

Tokenizer *tokenizer_load(const char *dir) {
    Tokenizer *t = callocCheck(1, sizeof *t);
    char *vocab = ls_path_join(dir, "vocab.json");
    char *merges = ls_path_join(dir, "merges.txt");
    char *json = ls_path_join(dir, "tokenizer.json");
    char *config = ls_path_join(dir, "tokenizer_config.json");
    struct stat st;
    int has_vocab = stat(vocab, &st) == 0, err; /* any kind of file: a broken one is reported, not skipped */
    if (!has_vocab && ls_file_exists(json)) { /* transformers >= 5 writes only tokenizer.json */
        err = load_tokenizer_json(t, json);
    } else if (!has_vocab && stat(merges, &st) != 0) {
        err = ls_set_error("%s: no tokenizer files (vocab.json + merges.txt, or tokenizer.json)", dir);
    } else {
        err = load_vocab(t, vocab);
        if (!err) err = load_merges(t, merges);
    }
    if (!err) err = load_config(t, config);
    for (int b = 0; b < 256 && !err; b++) { /* ids of the initial symbols; -1 → unk at encode time */
        char s[16];
        int n = byte_symbol(b, s);
        t->byte_id[b] = strmap_get(&t->vocab, s, (size_t)n);
        memcpy(s + n, EOW, sizeof EOW);
        t->byte_eow_id[b] = strmap_get(&t->vocab, s, strlen(s));
    }
    free(vocab);
    free(merges);
    free(json);
    free(config);
    if (err) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }
int tokenizer_bos(const Tokenizer *t) { return t->bos; }
int tokenizer_eos(const Tokenizer *t) { return t->eos; }
int tokenizer_pad(const Tokenizer *t) { return t->pad; }
int tokenizer_max_length(const Tokenizer *t) { return t->max_len; }

/* ---- encoding -------------------------------------------------------------------------------------------- */

int tokenizer_encode_raw(const Tokenizer *t, const char *text, int *ids, int cap) {
    size_t n = strlen(text);
    LS_TRY(utf8_validate(text, n));
    IdSink sink = {t, ids, cap, 0};
    /* Cut the raw text at special-token strings (leftmost match; the longest on a tie). */
    size_t pos = 0;
    while (pos < n) {
        const char *best = NULL;
        int best_k = -1;
        for (int k = 0; k < t->n_specials; k++) {
            const char *hit = strstr(text + pos, t->special[k]);
            if (hit && (!best || hit < best ||
                        (hit == best && strlen(t->special[k]) > strlen(t->special[best_k]))))
                best = hit, best_k = k;
        }
        size_t end = best ? (size_t)(best - text) : n;
        if (end > pos) encode_segment(&sink, text + pos, end - pos);
        if (!best) break;
        sink_push(&sink, t->special_id[best_k]);
        pos = end + strlen(t->special[best_k]);
    }
    return sink.n;
}

int tokenizer_encode(const Tokenizer *t, const char *text, int *ids, int max_len, int *n_dropped) {
    if (max_len < 2) return ls_set_error("tokenizer: max_len %d leaves no room for bos/eos", max_len);
    int room = max_len - 2;
    int n = tokenizer_encode_raw(t, text, ids + 1, room);
    if (n < 0) return LS_ERR;
    int kept = LS_MIN(n, room);
    ids[0] = t->bos;
    ids[kept + 1] = t->eos;
    for (int i = kept + 2; i < max_len; i++) ids[i] = t->pad;
    if (n_dropped) *n_dropped = n - kept;
    return kept + 2;
}

/* ---- writing tokenizer folders --------------------------------------------------------------------------- */

/* The four files of an HF CLIPTokenizer folder. tokens[i] is the string of id i (n ids, the last two
 * being bos and eos); merges holds "a b\n" lines without the header. */
static int write_folder(const char *dir, char **tokens, int n, const LsBuf *merges) {
    LS_TRY(ls_mkdir_p(dir));
    cJSON *vocab = cJSON_CreateObject();
    for (int i = 0; i < n; i++) cJSON_AddNumberToObject(vocab, tokens[i], i);
    char *vocab_text = cJSON_PrintUnformatted(vocab);
    cJSON_Delete(vocab);

    LsBuf mtext = {0};
    ls_buf_str(&mtext, "#version: 0.2\n");
    ls_buf_add(&mtext, merges->s, merges->len);

    cJSON *map = cJSON_CreateObject();
    cJSON_AddStringToObject(map, "bos_token", BOS_TOKEN);
    cJSON_AddStringToObject(map, "eos_token", EOS_TOKEN);
    cJSON_AddStringToObject(map, "pad_token", EOS_TOKEN); /* SD1.x pads with <|endoftext|> (49407) */
    cJSON_AddStringToObject(map, "unk_token", EOS_TOKEN);
    char *map_text = cJSON_Print(map);
    cJSON *cfg = map; /* tokenizer_config.json: the same tokens plus the SD1.5 settings */
    cJSON_AddNumberToObject(cfg, "model_max_length", 77);
    cJSON_AddBoolToObject(cfg, "do_lower_case", 1);
    cJSON_AddBoolToObject(cfg, "add_prefix_space", 0);
    cJSON_AddStringToObject(cfg, "errors", "replace");
    cJSON_AddStringToObject(cfg, "tokenizer_class", "CLIPTokenizer");
    char *cfg_text = cJSON_Print(cfg);
    cJSON_Delete(cfg);

    const char *names[4] = {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"};
    const char *data[4] = {vocab_text, mtext.s, map_text, cfg_text};
    int err = LS_OK;
    for (int i = 0; i < 4 && !err; i++) {
        char *path = ls_path_join(dir, names[i]);
        err = ls_write_file_atomic(path, data[i], strlen(data[i]));
        free(path);
    }
    free(vocab_text);
    free(mtext.s);
    free(map_text);
    free(cfg_text);
    return err;
}

/* The 512 base symbols: byte symbols in bytes_to_unicode order, then the same with "</w>". */
static char **base_tokens(int total) {
    char **tok = callocCheck((size_t)total, sizeof *tok);
    for (int i = 0; i < 256; i++) {
        char s[16];
        int n = byte_symbol(byte_at_index(i), s);
        tok[i] = str_dup(s);
        memcpy(s + n, EOW, sizeof EOW);
        tok[256 + i] = str_dup(s);
    }
    return tok;
}

static void free_tokens(char **tok, int n) {
    for (int i = 0; tok && i < n; i++) free(tok[i]);
    free(tok);
}

int tokenizer_write_from_bpe(const char *bpe_path, const char *dir) {
    gzFile f = gzopen(bpe_path, "rb"); /* reads plain text too */
    if (!f) return ls_set_error("%s: cannot open", bpe_path);
    const int total = 512 + CLIP_N_MERGES + 2;
    char **tok = base_tokens(total);
    LsBuf merges = {0};
    char line[4096];
    int lineno = 0, n_merges = 0, err = LS_OK;
    StrMap seen;
    strmap_init(&seen, (size_t)total);
    for (int i = 0; i < 512; i++) strmap_put(&seen, tok[i], strlen(tok[i]), i);
    /* Line 0 is the file's own header; lines 1..48894 are the merges CLIP uses, in rank order. */
    while (n_merges < CLIP_N_MERGES && gzgets(f, line, sizeof line)) {
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            err = ls_set_error("%s:%d: line too long", bpe_path, lineno + 1);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (lineno++ == 0) continue;
        char *sp = strchr(line, ' ');
        if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' ')) {
            err = ls_set_error("%s:%d: expected \"left right\", got \"%.60s\"", bpe_path, lineno, line);
            break;
        }
        if (utf8_validate(line, len) < 0) {
            err = ls_set_error("%s:%d: not valid UTF-8", bpe_path, lineno);
            break;
        }
        ls_buf_add(&merges, line, len);
        ls_buf_str(&merges, "\n");
        int id = 512 + n_merges++;
        memmove(sp, sp + 1, strlen(sp)); /* the merged token: both halves without the space */
        if (strmap_get(&seen, line, strlen(line)) >= 0) {
            err = ls_set_error("%s:%d: merge result \"%s\" duplicates an earlier token", bpe_path, lineno, line);
            break;
        }
        strmap_put(&seen, line, strlen(line), id);
        tok[id] = str_dup(line);
    }
    int gz_errnum = 0;
    const char *gz_msg = gzerror(f, &gz_errnum);
    if (!err && gz_errnum < 0) err = ls_set_error("%s: read error (%s)", bpe_path, gz_msg);
    gzclose(f);
    if (!err && n_merges < CLIP_N_MERGES)
        err = ls_set_error("%s: only %d merge lines, CLIP needs %d", bpe_path, n_merges, CLIP_N_MERGES);
    if (!err) {
        tok[total - 2] = str_dup(BOS_TOKEN); /* 49406 */
        tok[total - 1] = str_dup(EOS_TOKEN); /* 49407 */
        err = write_folder(dir, tok, total, &merges);
    }
    strmap_free(&seen);
    free(merges.s);
    free_tokens(tok, total);
    return err;
}

/* ---- the built-in tiny vocabulary: a small BPE trainer over an embedded prompt corpus ---------------- */

/* A few hundred common and art-style words, as prompts. Word frequencies in this text drive the merges,
 * so frequent words ("a", "of", "the", "painting") become single tokens. ASCII only. */
static const char *const tiny_corpus[] = {
    "a photo of a cat", "a photo of a dog", "a photo of a cat sitting on a red chair",
    "a painting of a cat in the style of van gogh", "a watercolor painting of a small bird on a branch",
    "an oil painting of a mountain landscape at sunset", "a portrait of a woman with long red hair",
    "a portrait of an old man with a white beard, oil on canvas", "a cute corgi dog running on the beach",
    "a red fox in a snowy forest, digital art", "a black and white photo of a city street at night",
    "a blue house by the sea, watercolor", "a green field with yellow flowers under a blue sky",
    "a castle on a hill, fantasy art, highly detailed", "a cozy cabin in the woods, warm light",
    "an astronaut riding a horse on the moon", "a bowl of fruit on a wooden table, still life",
    "a vase of sunflowers, impressionist painting", "a pencil sketch of a young girl reading a book",
    "a charcoal drawing of a horse", "an ink drawing of a dragon, black ink on white paper",
    "a pixel art sprite of a knight", "anime style portrait of a boy with blue eyes",
    "a cartoon of a happy frog", "a 3d render of a glass sphere, studio lighting",
    "a cyberpunk city with neon lights in the rain", "a steampunk airship above the clouds",
    "a surreal dream landscape with floating islands", "an abstract painting with bold colors and shapes",
    "a minimalist poster of a mountain", "a vintage photograph of a train station",
    "a close up photo of a butterfly on a purple flower", "a macro photo of a dew drop on a green leaf",
    "a golden retriever puppy playing in the grass", "a white cat sleeping on a soft pillow",
    "a brown bear fishing in a river", "a lion resting under a tree in the savanna",
    "an owl perched on a branch at night", "a koi fish swimming in a pond",
    "a lighthouse on a rocky coast during a storm", "a sailing boat on a calm lake at dawn",
    "a waterfall in a tropical jungle", "a desert with sand dunes and a bright orange sun",
    "snow covered mountains reflected in a clear lake", "cherry blossoms in a japanese garden",
    "a medieval village with stone houses", "a modern kitchen with white walls and wooden floors",
    "a bedroom with large windows and soft morning light", "a library full of old books",
    "a cup of coffee on a table next to a window", "a slice of chocolate cake on a plate",
    "a plate of pasta with tomato sauce", "fresh bread and cheese on a rustic table",
    "a red apple and a green pear", "a bouquet of pink roses",
    "a portrait in the style of rembrandt, dramatic lighting", "a landscape in the style of monet",
    "a painting in the style of picasso, cubism", "a poster in the style of art nouveau",
    "ukiyo-e print of a great wave", "a mosaic of a peacock", "a stained glass window with a rose pattern",
    "a sculpture of a woman made of marble", "a bronze statue of a horse and rider",
    "a children's book illustration of a bear and a rabbit", "a comic book panel of a superhero flying",
    "concept art of a spaceship, trending on artstation", "matte painting of an alien planet",
    "a dark and moody forest with fog", "a bright and colorful market in the morning",
    "soft pastel colors, dreamy atmosphere", "high contrast black and white, film grain",
    "cinematic lighting, wide angle shot, 35mm film", "portrait photo, shallow depth of field, bokeh",
    "golden hour light, warm tones", "blue hour, cold tones, long exposure",
    "a girl with a red umbrella in the rain", "a boy flying a kite on a windy day",
    "two people walking on a bridge over a river", "a family having a picnic in the park",
    "a street musician playing a guitar", "a chef cooking in a busy kitchen",
    "a robot reading a newspaper in a cafe", "a wizard casting a spell with a glowing staff",
    "a princess in a silver dress", "a samurai standing in a bamboo forest",
    "a pirate ship on a stormy sea", "a hot air balloon over green hills",
    "an old car parked in front of a diner", "a red bicycle leaning against a brick wall",
    "a clock tower in a snowy town", "a bridge in paris at night", "the skyline of new york at sunset",
    "a beautiful detailed painting of a garden, trending, masterpiece, best quality",
    "watercolor, ink, pencil, charcoal, pastel, oil, acrylic, gouache, digital painting",
    "red, orange, yellow, green, blue, purple, pink, brown, black, white, gray, gold, silver",
    "light, dark, bright, soft, sharp, smooth, rough, shiny, matte, glowing",
    "style, art, artist, drawing, sketch, illustration, render, photo, photograph, picture, image",
    "realistic, photorealistic, hyperrealistic, stylized, abstract, impressionism, expressionism",
    "portrait, landscape, still life, character, scene, background, texture, pattern",
    "beautiful, detailed, intricate, elegant, simple, colorful, vibrant, muted, calm, dramatic",
    "man, woman, child, girl, boy, people, person, face, eyes, hands, hair, smile",
    "cat, dog, bird, horse, fish, fox, bear, rabbit, deer, wolf, tiger, lion, owl, dragon",
    "tree, flower, forest, mountain, river, lake, sea, ocean, sky, cloud, sun, moon, star, rain, snow",
    "house, city, street, road, garden, room, window, door, table, chair, car, boat, train",
    "morning, evening, night, spring, summer, autumn, winter, day",
    "big, small, large, tiny, tall, short, long, old, new, young, happy, sad, quiet",
    "in, on, at, by, with, of, the, and, under, over, near, behind, through, from, to, for",
};

typedef struct {
    int *sym;  /* current symbol ids */
    int n;     /* symbol count */
    int count; /* occurrences in the corpus */
} TrainWord;

/* Pre-tokenizer callback of the trainer: collect distinct pieces with their counts. */
typedef struct {
    StrMap index; /* piece UTF-8 → word index */
    TrainWord *w;
    int n, cap;
} TrainCorpus;

static void train_piece(const uint32_t *cp, size_t n, void *ctx) {
    TrainCorpus *c = ctx;
    char s[256];
    int nb = 0;
    for (size_t i = 0; i < n && nb < (int)sizeof s - 4; i++) nb += utf8_put(cp[i], s + nb);
    int k = strmap_get(&c->index, s, (size_t)nb);
    if (k >= 0) {
        c->w[k].count++;
        return;
    }
    if (c->n == c->cap) {
        c->cap = LS_MAX(64, 2 * c->cap);
        c->w = realloc_check(c->w, (size_t)c->cap * sizeof *c->w);
    }
    TrainWord *w = &c->w[c->n];
    w->sym = mallocCheck((size_t)nb * sizeof *w->sym);
    w->n = nb;
    w->count = 1;
    for (int i = 0; i < nb; i++) /* byte symbol ids; the last one carries "</w>" (+256) */
        w->sym[i] = (i == nb - 1 ? 256 : 0) + byte_index((unsigned char)s[i]);
    strmap_put(&c->index, s, (size_t)nb, c->n++);
}

/* Learn up to max_merges BPE merges from a corpus (most frequent adjacent pair first, as CLIP's own
 * vocabulary was made), stopping early when no pair is left; write the tokenizer folder with 512 byte tokens,
 * the merges, BOS and EOS. *vocab_size gets the total. */
static int write_trained(const char *dir, const char *const *corpus, size_t n_corpus, int max_merges,
                         int *vocab_size) {
    const int cap = 512 + max_merges + 2;
    TrainCorpus c = {0};
    strmap_init(&c.index, 512);
    for (size_t i = 0; i < n_corpus; i++) {
        size_t m;
        uint32_t *cp = normalize(corpus[i], strlen(corpus[i]), &m);
        pretokenize(cp, m, train_piece, &c);
        pool_free(cp);
    }
    char **tok = base_tokens(cap);
    StrMap vocab;
    strmap_init(&vocab, cap);
    for (int i = 0; i < 512; i++) strmap_put(&vocab, tok[i], strlen(tok[i]), i);
    LsBuf merges = {0}, joined = {0};
    PairMap counts;
    int n_merges = 0;

    for (int m = 0; m < max_merges; m++) {
        /* Count adjacent pairs weighted by word frequency; pick the most frequent, ties broken by the
         * token strings (strcmp on left, then right) so the result is platform-independent. Pairs whose
         * concatenation is already a token are skipped (vocab.json keys must stay unique). */
        pairmap_init(&counts, 4096);
        for (int w = 0; w < c.n; w++)
            for (int i = 0; i + 1 < c.w[w].n; i++) {
                long k = pairmap_find(&counts, c.w[w].sym[i], c.w[w].sym[i + 1]);
                if (k >= 0) counts.rank[k] += c.w[w].count;
                else pairmap_put(&counts, c.w[w].sym[i], c.w[w].sym[i + 1], c.w[w].count, 0);
            }
        int best_a = -1, best_b = -1, best_n = 0;
        for (size_t k = 0; k < counts.cap; k++) {
            if (counts.keys[k] == PAIR_EMPTY) continue;
            int a = (int)(counts.keys[k] >> 32), b = (int)(counts.keys[k] & 0xFFFFFFFFu), n = counts.rank[k];
            joined.len = 0;
            ls_buf_str(&joined, tok[a]);
            ls_buf_str(&joined, tok[b]);
            if (strmap_get(&vocab, joined.s, joined.len) >= 0) continue;
            int d = best_a < 0 ? -1 : n != best_n ? best_n - n : strcmp(tok[a], tok[best_a]);
            if (d == 0) d = strcmp(tok[b], tok[best_b]);
            if (d < 0) best_a = a, best_b = b, best_n = n;
        }
        pairmap_free(&counts);
        if (best_a < 0) break; /* every word of the corpus is one token */
        n_merges = m + 1;

        int id = 512 + m;
        ls_buf_str(&merges, tok[best_a]);
        ls_buf_str(&merges, " ");
        ls_buf_str(&merges, tok[best_b]);
        ls_buf_str(&merges, "\n");
        joined.len = 0;
        ls_buf_str(&joined, tok[best_a]);
        ls_buf_str(&joined, tok[best_b]);
        tok[id] = str_dup(joined.s);
        strmap_put(&vocab, joined.s, joined.len, id);
        for (int w = 0; w < c.n; w++) { /* apply the merge left to right, non-overlapping */
            TrainWord *tw = &c.w[w];
            int o = 0;
            for (int i = 0; i < tw->n; i++) {
                if (i + 1 < tw->n && tw->sym[i] == best_a && tw->sym[i + 1] == best_b) tw->sym[o++] = id, i++;
                else tw->sym[o++] = tw->sym[i];
            }
            tw->n = o;
        }
    }
    int total = 512 + n_merges + 2;
    tok[total - 2] = str_dup(BOS_TOKEN);
    tok[total - 1] = str_dup(EOS_TOKEN);
    int err = write_folder(dir, tok, total, &merges);
    if (vocab_size) *vocab_size = total;

    for (int w = 0; w < c.n; w++) free(c.w[w].sym);
    free(c.w);
    strmap_free(&c.index);
    strmap_free(&vocab);
    free(merges.s);
    free(joined.s);
    free_tokens(tok, cap);
    return err;
}

int tokenizer_write_tiny(const char *dir) {
    int total = 0;
    int rc = write_trained(dir, tiny_corpus, sizeof tiny_corpus / sizeof *tiny_corpus, 486, &total);
    LS_ASSERT(rc < 0 || total == 1000); /* the corpus has far more than 486 distinct pairs */
    return rc;
}

int tokenizer_write_trained(const char *dir, const char *const *corpus, size_t n, int max_merges,
                            int *vocab_size) {
    return write_trained(dir, corpus, n, max_merges, vocab_size);
}
