#!/usr/bin/env python3
"""Generate textenc/unicode_tables.c: the Unicode data lorastyle's CLIP tokenizer needs, as compact C tables.

The tokenizer must reproduce transformers 5.x's CLIPTokenizer, whose Rust `tokenizers` backend
(0.23.3 when this was written) normalizes with NFC, then `\\s+` -> " ", then lowercase, and
pre-tokenizes with an Oniguruma regex built on \\p{L}, \\p{N} and \\s. The C side needs:

  * a character class per code point: letter (\\p{L}), number (\\p{N}), space (\\s) or other;
  * the full lowercase mapping of one code point (Rust's char::to_lowercase == Python's per-character
    str.lower(): the unconditional SpecialCasing entries included, e.g. U+0130 -> "i\\u0307", and no
    context-dependent rule such as the Greek final sigma, which a single character never triggers);
  * NFC: canonical decompositions (applied recursively), canonical combining classes, the primary
    composite pairs; Hangul syllables are algorithmic in the C code.

Everything comes from the standard library's `unicodedata` (Python 3.13 -> Unicode 15.1), plus three
small lists *measured* against the installed `tokenizers` (see MEASURED_* below) because the three pieces
of the Rust stack do not share one Unicode version:
  - Oniguruma's \\p{L}/\\p{N} know Unicode 16.0 (letters and digits Python 3.13 calls unassigned);
  - Rust's char::to_lowercase knows Unicode 17.0 (a few more case pairs);
  - tokenizers' NFC (the `unicode-normalization-alignments` crate) still has Unicode 9.0 tables: marks
    encoded after 9.0 count as ccc 0 (no reordering) and U+11938 (Unicode 13) neither decomposes nor
    composes.
The measured additions are only applied to code points that the running Python calls unassigned, so a
newer Python does not double them; run this with Python 3.13 for exact parity (it warns otherwise).

Usage:  python3.13 scripts/gen_unicode_tables.py [out.c]    (default: textenc/unicode_tables.c)
"""
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "textenc", "unicode_tables.c")
MAX_CP = 0x110000

# ---- data measured against tokenizers 0.23.3 (transformers 5.23) -----------------------------------------
# Oniguruma (Unicode 16.0) letters / numbers that Python 3.13 (Unicode 15.1) has as unassigned.
MEASURED_LETTERS = [
    (0x1C89, 0x1C8A), (0xA7CB, 0xA7CD), (0xA7DA, 0xA7DC), (0x105C0, 0x105F3), (0x10D4A, 0x10D65),
    (0x10D6F, 0x10D85), (0x10EC2, 0x10EC4), (0x11380, 0x11389), (0x1138B, 0x1138B), (0x1138E, 0x1138E),
    (0x11390, 0x113B5), (0x113B7, 0x113B7), (0x113D1, 0x113D1), (0x113D3, 0x113D3), (0x11BC0, 0x11BE0),
    (0x13460, 0x143FA), (0x16100, 0x1611D), (0x16D40, 0x16D6C), (0x18CFF, 0x18CFF), (0x1E5D0, 0x1E5ED),
    (0x1E5F0, 0x1E5F0),
]
MEASURED_NUMBERS = [
    (0x10D40, 0x10D49), (0x116D0, 0x116E3), (0x11BF0, 0x11BF9), (0x16130, 0x16139), (0x16D70, 0x16D79),
    (0x1CCF0, 0x1CCF9), (0x1E5F1, 0x1E5FA),
]
# Rust char::to_lowercase (Unicode 17.0) pairs unknown to Python 3.13: (first, last, delta).
MEASURED_LOWER = [
    (0x1C89, 0x1C89, 1), (0xA7CB, 0xA7CB, 0x0264 - 0xA7CB), (0xA7CC, 0xA7CC, 1), (0xA7CE, 0xA7CE, 1),
    (0xA7D2, 0xA7D2, 1), (0xA7D4, 0xA7D4, 1), (0xA7DA, 0xA7DA, 1), (0xA7DC, 0xA7DC, 0x019B - 0xA7DC),
    (0x10D50, 0x10D65, 0x20), (0x16EA0, 0x16EB8, 0x1B),
]
# Marks whose combining class tokenizers' NFC does not know (encoded after Unicode 9.0): treated as ccc 0.
NFC_CCC_UNKNOWN = [
    (0x07FD, 0x07FD), (0x0898, 0x089F), (0x08CA, 0x08D3), (0x09FE, 0x09FE), (0x0C3C, 0x0C3C),
    (0x0D3B, 0x0D3C), (0x0EBA, 0x0EBA), (0x1715, 0x1715), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFA),
    (0xA82C, 0xA82C), (0x10D24, 0x10D27), (0x10EAB, 0x10EAC), (0x10EFD, 0x10EFF), (0x10F46, 0x10F50),
    (0x10F82, 0x10F85), (0x11070, 0x11070), (0x1133B, 0x1133B), (0x1145E, 0x1145E), (0x11839, 0x1183A),
    (0x1193D, 0x1193E), (0x11943, 0x11943), (0x119E0, 0x119E0), (0x11A34, 0x11A34), (0x11A47, 0x11A47),
    (0x11A99, 0x11A99), (0x11D42, 0x11D42), (0x11D44, 0x11D45), (0x11D97, 0x11D97), (0x11F41, 0x11F42),
    (0x16FF0, 0x16FF1), (0x1E08F, 0x1E08F), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF),
    (0x1E4EC, 0x1E4EF),
]
NFC_NO_DECOMP = [0x11938]  # DIVES AKURU VOWEL SIGN O (Unicode 13): no decomposition in tokenizers' NFC

# Oniguruma's \s on Unicode text: U+0009..U+000D, U+0085 and the Z* separators (== White_Space).
# (Python's str.isspace() differs: it also accepts U+001C..U+001F.)
CLS_OTHER, CLS_LETTER, CLS_NUMBER, CLS_SPACE = 0, 1, 2, 3


def in_ranges(cp, ranges):
    return any(a <= cp <= b for a, b in ranges)


def char_class(cp):
    ch = chr(cp)
    cat = unicodedata.category(ch)
    if 0x09 <= cp <= 0x0D or cp == 0x85 or cat in ("Zs", "Zl", "Zp"):
        return CLS_SPACE
    if cat[0] == "L":
        return CLS_LETTER
    if cat[0] == "N":
        return CLS_NUMBER
    if cat == "Cn" and in_ranges(cp, MEASURED_LETTERS):
        return CLS_LETTER
    if cat == "Cn" and in_ranges(cp, MEASURED_NUMBERS):
        return CLS_NUMBER
    return CLS_OTHER


def runs(values):
    """Collapse a per-code-point list (None = default) into [lo, hi, value] runs of equal values."""
    out = []
    for cp, v in enumerate(values):
        if v is None:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        else:
            out.append([cp, cp, v])
    return out


def lower_table():
    """Single-code-point lowercase mappings as (lo, hi, stride, delta) runs, plus multi-code-point ones."""
    single, multi = {}, {}
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        lo = chr(cp).lower()
        if lo == chr(cp):
            continue
        if len(lo) == 1:
            single[cp] = ord(lo) - cp
        else:
            multi[cp] = [ord(c) for c in lo]
    for a, b, d in MEASURED_LOWER:
        for cp in range(a, b + 1):
            if unicodedata.category(chr(cp)) == "Cn" or cp not in single:
                single.setdefault(cp, d)
    # Runs with a constant delta and a stride of 1 (A..Z) or 2 (Latin Extended-A's alternating pairs).
    out, cps = [], sorted(single)
    i = 0
    while i < len(cps):
        lo, d = cps[i], single[cps[i]]
        stride, hi, j = 1, lo, i + 1
        if j < len(cps) and single[cps[j]] == d and cps[j] - lo in (1, 2):
            stride = cps[j] - lo
            # Extend while the delta holds; a stride-2 run must not skip over a mapped code point, so that
            # runs never overlap (the lookup is a binary search).
            while (j < len(cps) and single[cps[j]] == d and cps[j] - hi == stride
                   and (stride == 1 or hi + 1 not in single)):
                hi = cps[j]
                j += 1
        else:
            j = i + 1
        out.append((lo, hi, stride, d))
        i = j
    return out, multi


def nfc_tables():
    ccc = [None] * MAX_CP
    decomp = []  # (cp, first, second or 0)
    for cp in range(MAX_CP):
        ch = chr(cp)
        c = unicodedata.combining(ch)
        if c and not in_ranges(cp, NFC_CCC_UNKNOWN):
            ccc[cp] = c
        d = unicodedata.decomposition(ch)
        if d and not d.startswith("<") and cp not in NFC_NO_DECOMP:
            parts = [int(x, 16) for x in d.split()]
            assert 1 <= len(parts) <= 2, hex(cp)
            decomp.append((cp, parts[0], parts[1] if len(parts) == 2 else 0))
    # Primary composites: a pair decomposition whose character survives NFC (no composition exclusion,
    # no non-starter decomposition). Singletons never compose.
    comp = sorted((a, b, cp) for cp, a, b in decomp if b and unicodedata.normalize("NFC", chr(cp)) == chr(cp))
    return runs(ccc), decomp, comp


def emit_rows(f, rows, fmt, per_line):
    for i in range(0, len(rows), per_line):
        f.write("    " + " ".join(fmt % tuple(r) for r in rows[i:i + per_line]) + "\n")


def emit_table(f, comment, decl, rows, fmt, per_line):
    """/* comment */ static const decl[len(rows)] = {rows, per_line to a line};"""
    f.write("/* %s */\n" % comment)
    f.write("static const %s[%d] = {\n" % (decl, len(rows)))
    emit_rows(f, rows, fmt, per_line)
    f.write("};\n")


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    if unicodedata.unidata_version != "15.1.0":
        print("warning: Python's unicodedata is %s; the MEASURED_* lists assume 15.1.0 (Python 3.13)"
              % unicodedata.unidata_version, file=sys.stderr)
    cls = runs([char_class(cp) or None for cp in range(MAX_CP)])
    low, low_multi = lower_table()
    ccc, decomp, comp = nfc_tables()
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("/* unicode_tables.c — GENERATED by scripts/gen_unicode_tables.py; do not edit by hand.\n"
                " * Source: Python %s unicodedata (Unicode %s) + lists measured against tokenizers 0.23.3\n"
                " * (see the script). The lookup code at the end is the script's C_CODE template. */\n"
                % (sys.version.split()[0], unicodedata.unidata_version))
        f.write(C_HEAD)
        f.write("const char uni_data_version[] = \"%s\";\n\n" % unicodedata.unidata_version)
        emit_table(f, "Character classes of the CLIP pre-tokenizer: [lo, hi, class]; gaps are UNI_OTHER.",
                   "UniRange class_ranges", cls, "{0x%X,0x%X,%d},", 6)
        f.write("\n")
        emit_table(f, "Lowercase: for cp in [lo, hi] with (cp - lo) %% stride == 0, lower(cp) = cp + delta.",
                   "UniLowerRun lower_runs", low, "{0x%X,0x%X,%d,%d},", 5)
        f.write("\n")
        multi = [(cp, *(seq + [0] * (3 - len(seq)))) for cp, seq in sorted(low_multi.items())]
        emit_table(f, "Lowercase mappings to more than one code point (SpecialCasing, unconditional).",
                   "UniLowerMulti lower_multi", multi, "{0x%X,{0x%X,0x%X,0x%X}},", 1)
        f.write("\n")
        emit_table(f, "Canonical combining classes (non-zero only): [lo, hi, ccc].", "UniRange ccc_ranges", ccc,
                   "{0x%X,0x%X,%d},", 6)
        f.write("\n")
        emit_table(f, "Canonical decompositions, one step (apply recursively): cp -> first [, second].",
                   "UniDecomp decomp_table", decomp, "{0x%X,0x%X,0x%X},", 5)
        f.write("\n")
        emit_table(f, "Primary composites sorted by (first, second): first + second -> composite.",
                   "UniDecomp comp_table", [(c, a, b) for a, b, c in comp], "{0x%X,0x%X,0x%X},", 5)
        f.write(C_CODE)
    print("wrote %s: %d class ranges, %d lower runs (+%d multi), %d ccc ranges, %d decompositions, %d compositions"
          % (out_path, len(cls), len(low), len(low_multi), len(ccc), len(decomp), len(comp)))


C_HEAD = r"""
#include "unicode_tables.h" /* defines: uni_class, uni_tolower, uni_nfc */

typedef struct { uint32_t lo, hi; uint8_t v; } UniRange;
typedef struct { uint32_t lo, hi; uint8_t stride; int32_t delta; } UniLowerRun;
typedef struct { uint32_t cp; uint32_t seq[3]; } UniLowerMulti;
typedef struct { uint32_t cp, a, b; } UniDecomp; /* comp_table: cp = composite, (a, b) the pair */

"""

# The lookup code, emitted after the tables (kept here so the generated file is self-contained).
C_CODE = r"""
/* ---- lookups ---------------------------------------------------------------------------------------- */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Binary search in sorted, non-overlapping [lo, hi] ranges; returns the entry or NULL. */
static const UniRange *range_find(const UniRange *r, size_t n, uint32_t cp) {
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (cp < r[m].lo) b = m;
        else if (cp > r[m].hi) a = m + 1;
        else return &r[m];
    }
    return NULL;
}

int uni_class(uint32_t cp) {
    const UniRange *r = range_find(class_ranges, COUNT(class_ranges), cp);
    return r ? r->v : UNI_OTHER;
}

int uni_tolower(uint32_t cp, uint32_t out[3]) {
    size_t a = 0, b = COUNT(lower_multi);
    while (a < b) { /* the multi-code-point list is tiny, but keep it a search */
        size_t m = a + (b - a) / 2;
        if (cp < lower_multi[m].cp) b = m;
        else if (cp > lower_multi[m].cp) a = m + 1;
        else {
            int n = 0;
            while (n < 3 && lower_multi[m].seq[n]) out[n] = lower_multi[m].seq[n], n++;
            return n;
        }
    }
    a = 0, b = COUNT(lower_runs);
    while (a < b) {
        size_t m = a + (b - a) / 2;
        const UniLowerRun *r = &lower_runs[m];
        if (cp < r->lo) b = m;
        else if (cp > r->hi) a = m + 1;
        else {
            out[0] = (cp - r->lo) % r->stride == 0 ? (uint32_t)((int32_t)cp + r->delta) : cp;
            return 1;
        }
    }
    out[0] = cp;
    return 1;
}

int uni_ccc(uint32_t cp) {
    const UniRange *r = range_find(ccc_ranges, COUNT(ccc_ranges), cp);
    return r ? r->v : 0;
}

/* ---- NFC (UAX #15: full canonical decomposition, canonical ordering, canonical composition) --------- */

/* Hangul syllables decompose/compose arithmetically (Unicode ch. 3.12). */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
       L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

static const UniDecomp *decomp_find(uint32_t cp) {
    size_t a = 0, b = COUNT(decomp_table);
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (cp < decomp_table[m].cp) b = m;
        else if (cp > decomp_table[m].cp) a = m + 1;
        else return &decomp_table[m];
    }
    return NULL;
}

/* Append the full canonical decomposition of cp to out[*n] (at most 4 code points per input one). */
static void decompose(uint32_t cp, uint32_t *out, size_t *n) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        out[(*n)++] = L_BASE + s / N_COUNT;
        out[(*n)++] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (s % T_COUNT) out[(*n)++] = T_BASE + s % T_COUNT;
        return;
    }
    const UniDecomp *d = decomp_find(cp);
    if (!d) {
        out[(*n)++] = cp;
        return;
    }
    decompose(d->a, out, n);
    if (d->b) decompose(d->b, out, n);
}

/* Composite of the pair (a, b), or 0 when they do not compose. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = COUNT(comp_table);
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        const UniDecomp *c = &comp_table[m];
        if (a < c->a || (a == c->a && b < c->b)) hi = m;
        else if (a > c->a || b > c->b) lo = m + 1;
        else return c->cp;
    }
    return 0;
}

size_t uni_nfc(const uint32_t *in, size_t n, uint32_t *buf) {
    size_t m = 0; /* decompose into buf (a canonical decomposition is at most 4 code points) */
    for (size_t i = 0; i < n; i++) decompose(in[i], buf, &m);

    /* Canonical ordering: stable insertion sort of each run of non-starters by combining class. */
    for (size_t i = 1; i < m; i++) {
        int c = uni_ccc(buf[i]);
        if (c == 0) continue;
        for (size_t j = i; j > 0 && uni_ccc(buf[j - 1]) > c; j--) {
            uint32_t t = buf[j];
            buf[j] = buf[j - 1];
            buf[j - 1] = t;
        }
    }

    /* Composition: each character combines with the last starter unless blocked, i.e. unless a character
     * between them (in the output so far) has ccc 0 or ccc >= its own. A starter directly after the last
     * starter may also combine (Hangul LV + T, some Indic vowel signs). */
    size_t w = 0;      /* write position (composition only shrinks) */
    long starter = -1; /* index of the last starter in buf[0..w) */
    int last_ccc = 0;  /* ccc of buf[w-1] */
    for (size_t i = 0; i < m; i++) {
        uint32_t cp = buf[i];
        int c = uni_ccc(cp);
        if (starter >= 0) {
            int adjacent = (size_t)starter == w - 1;
            if (adjacent || (last_ccc != 0 && last_ccc < c)) {
                uint32_t comp = compose(buf[starter], cp);
                if (comp) {
                    buf[starter] = comp;
                    continue;
                }
            }
        }
        if (c == 0) starter = (long)w;
        last_ccc = c;
        buf[w++] = cp;
    }
    return w;
}
"""

if __name__ == "__main__":
    main()
