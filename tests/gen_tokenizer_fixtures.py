#!/usr/bin/env python3
"""Generate tests/fixtures/tokenizer_ids.json: transformers' CLIPTokenizer ids for test_tokenizer.c.

The tokenizer folders are written by lorastyle's own C code, through the test binary's helper modes:
    test_tokenizer --write-tiny DIR            the built-in 1000-id vocabulary (tokenizer_write_tiny)
    test_tokenizer --write-bpe BPE_FILE DIR    the real 49408-id vocabulary (tokenizer_write_from_bpe)
transformers' CLIPTokenizer.from_pretrained(DIR) then encodes every case string with
padding="max_length", max_length=77, truncation=True, exactly as the SD pipelines do; the JSON stores
the string and the 77 ids per vocabulary, and the transformers/tokenizers versions.

Run (after building; the bpe file comes with open_clip, or from scripts/fetch_clip_vocab.sh):
    python3 tests/gen_tokenizer_fixtures.py build/test_tokenizer \\
        [--bpe build/clip/bpe_simple_vocab_16e6.txt.gz] [--exhaustive]

--exhaustive additionally compares, without writing anything, the C encoder (test_tokenizer --encode)
with transformers on every Unicode scalar value (U+0001..U+10FFFF, surrogates excluded) in a few
contexts, combining-mark orderings and 100k random strings, for both folders; it takes ~3 minutes.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

import tokenizers
import transformers
from transformers import CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "tokenizer_ids.json")
MAX_LEN = 77

LONG_PROMPT = (
    "a breathtaking ultra detailed matte painting of an ancient elven city built into giant trees, "
    "glowing lanterns, misty waterfalls, golden hour light, volumetric fog, intricate architecture, "
    "by greg rutkowski and alphonse mucha, trending on artstation, 8k, octane render, cinematic "
    "composition, dramatic sky, vibrant colors, sharp focus, highly detailed, masterpiece, best quality, "
    "award winning photograph, hyperrealistic, unreal engine 5, ray tracing, depth of field, bokeh"
)

CASES = [
    # plain prompts, casing
    "a photo of a cat", "A Photo Of A Cat", "A PHOTO OF A CAT", "a photo of an astronaut riding a horse on mars",
    "a watercolor painting of a red fox in the snow", "portrait of a woman, oil on canvas, rembrandt lighting",
    "a cute corgi, studio ghibli style", "cyberpunk city at night, neon lights, rain, reflections",
    "an isometric pixel art castle", "a black and white photograph of paris in 1920",
    "ukiyo-e print of mount fuji", "a bowl of ramen, food photography, 50mm",
    "van gogh's starry night over new york", "the quick brown fox jumps over the lazy dog",
    "ThE qUiCk BrOwN fOx", "CamelCaseWordsAndMoreWords", "supercalifragilisticexpialidocious",
    # empty and whitespace
    "", " ", "   ", "\t", "\n", "  leading and trailing  ", "multiple     spaces    between", "a\tb\nc\r\nd",
    "tabs\t\tand\n\nnewlines\r\r", "\u00a0no-break\u00a0spaces\u00a0", "em\u2003space and ideographic\u3000space",
    "line\u2028separator\u2029paragraph", "next\u0085line", "\x0bvertical\x0ctab and form feed",
    "\x1cfile separator\x1f", "zero\u200bwidth\u200cjoiner\u200dtest", "\ufeffbyte order mark",
    # punctuation and symbols
    "hello, world!", "wow!!! really???", "(masterpiece:1.2), (best quality), [worst quality]",
    "{cat|dog} <lora:style:0.8>", "a+b=c; x*y/z", "e-mail@example.com", "https://example.com/path?q=1&r=2",
    "#hashtag ##double ###triple", "# # #", "50% off, $100.00 or 20\u20ac", "...", "!!!", "?!?!",
    "\"double quoted\" text", "'single quoted' text", "semi;colon:colon", "under_score__double",
    "back\\slash and /slash", "tilde~caret^grave`", "<angle brackets>", "a--b---c", "...!!!???",
    "@@@ $$$ %%% ^^^ &&& ***", "|pipe|", "\u00a9 \u00ae \u2122", "\u00bfqu\u00e9? \u00a1s\u00ed!",
    # contractions
    "don't", "DON'T", "Don't Stop", "it's a dog's life", "we're here", "they've gone", "I'm fine",
    "you'll see", "he'd go", "'s", "''s", "'''", "rock'n'roll", "'tis the season", "o'clock", "dogs' toys",
    "can't won't shouldn't've", "it'S mIxEd", "'ll'll'll", "x's y't z're",
    # digits and numbers
    "2024", "2024!!", "3.14159", "1,000,000", "4k 8k uhd", "35mm f/1.8 1/250s iso100", "x1.5 scale",
    "1st 2nd 3rd 4th", "\u0663\u0664\u0665 arabic-indic digits", "\u216b roman twelve", "\u00bd \u00be fractions",
    "\u2460\u2461\u2462 circled", "x\u00b2 + y\u00b3", "\uff11\uff12\uff13 full-width digits", "0x1F600",
    # accents, NFC, case mapping
    "caf\u00e9", "cafe\u0301", "na\u00efve r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m", "A\u030angstrom",
    "\u212b sign (singleton)", "\ufb01 ligature fi", "Stra\u00dfe", "\u03a3\u0391\u03a3 \u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3",
    "\u0130stanbul", "\u01c5 titlecase dz", "a\u0301\u0323 reorder", "q\u0307\u0323", "e\u0323\u0302",
    "\u1e9b\u0323", "\u0958 excluded", "\u0344 greek dialytika tonos", "\u1100\u1161\u11a8 jamo",
    "\ud55c\uad6d\uc5b4 \uace0\uc591\uc774", "\u0041\u030a\u0301", "o\u0308\u0304", "\u0b47\u0b3e oriya",
    # scripts
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e00\u53ea\u732b\u5728\u6c99\u53d1\u4e0a",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd", "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e44\u0e17\u0e22",
    "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8", "mixed \u82f1\u8a9e and \u65e5\u672c\u8a9e text",
    # emoji and symbols outside the BMP
    "emoji \U0001f431\U0001f3a8", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1ef\U0001f1f5 flag", "\u2764\ufe0f love", "\U0001d400\U0001d401 math bold",
    # full-width and typographic punctuation (no ftfy in transformers 5: kept as is)
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff26\uff35\uff2c\uff2c",
    "\u201ccurly quotes\u201d and \u2018single\u2019", "em\u2014dash \u2013 en", "\u2026ellipsis",
    "don\u2019t (curly apostrophe)", "&amp; &lt;html&gt; entities",
    # control characters
    "control\x01char", "del\x7fchar", "bell\x07", "nul-free \x1b[31mred\x1b[0m",
    # literal special tokens
    "<|endoftext|>", "<|startoftext|>", "a<|endoftext|>b", "<|ENDOFTEXT|>", "<|EndOfText|> mixed",
    "<|startoftext|>a photo<|endoftext|>", "<|endoftext|><|endoftext|>", "<|endof", "text|> <|",
    "x<|endoftext|>!!", "!<|endoftext|>", "!!<|startoftext|>!!", " <|endoftext|> spaced ",
    "<| endoftext |>", "<<|endoftext|>>",
    # long inputs (truncated to 75 tokens)
    LONG_PROMPT, LONG_PROMPT.upper(), " ".join(["cat"] * 75), " ".join(["cat"] * 76), " ".join(["cat"] * 74),
    "a " * 300, "ha" * 200, "!" * 200, ", ".join(["red", "green", "blue"] * 30),
    "word" + "s" * 150, "\u732b" * 100, "\U0001f431" * 60, "1234567890" * 10,
]


def write_folder(binary, args, what):
    r = subprocess.run([binary] + args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s %s failed: %s" % (binary, " ".join(args), r.stderr.strip()))
    print("wrote %s folder %s" % (what, args[-1]))


def encode_all(folder):
    tok = CLIPTokenizer.from_pretrained(folder)  # also checks that transformers loads our folder
    assert tok.model_max_length == MAX_LEN, tok.model_max_length
    out = []
    for text in CASES:
        ids = tok(text, padding="max_length", max_length=MAX_LEN, truncation=True).input_ids
        assert len(ids) == MAX_LEN
        out.append({"text": text, "ids": ids})
    return tok, out


def c_encode(binary, folder, texts):
    """Raw ids (no specials, no truncation) from the C tokenizer for many strings at once."""
    data = b"\0".join(t.encode("utf-8") for t in texts)
    r = subprocess.run([binary, "--encode", folder], input=data, capture_output=True, check=True)
    lines = r.stdout.decode().split("\n")[:-1]
    assert len(lines) == len(texts), (len(lines), len(texts))
    return [[int(x) for x in line.split()] if line != "ERR" else None for line in lines]


def exhaustive(binary, folder, tok):
    """Every code point in several contexts, then combining-mark orderings (NFC reordering/composition)."""
    texts = []
    for cp in range(1, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        # letter/number/space class, lowercase, NFC with a preceding base, punctuation runs
        texts.append("a%sb %s%s 1%s! e%s" % (c, c, c, c, c))
    marks = [cp for cp in range(0x300, 0x110000) if unicodedata.combining(chr(cp))][:2000]
    refs = [0x0301, 0x0323, 0x0334, 0x093C, 0x094D, 0x0327, 0x031B, 0x302C, 0x035C, 0x0345]
    for m in marks:
        for r in refs:
            texts.append("a%s%s o%s%s" % (chr(r), chr(m), chr(m), chr(r)))
    # Random strings from a pool that stresses BPE merge order (long words, repeats) and special splits.
    rng = random.Random(1234)
    pool = list("abcdefghijklmnopqrstuvwxyz    ''-.,!#<|>0123456789") + [
        "the", "ing", "tion", "<|endoftext|>", "<|startoftext|>", "'s", "\u00e9", "e\u0301", "\u00df",
        "\u732b", "\U0001f431", "\t", "\n", "\u00a0", "\u0130", "\u03a3", "A", "Q", "Z"]
    for _ in range(100000):
        texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 60))))
    print("exhaustive: %d strings" % len(texts))
    mine = c_encode(binary, folder, texts)
    bad = 0
    for i in range(0, len(texts), 20000):
        chunk = texts[i:i + 20000]
        ref = tok(chunk, add_special_tokens=False).input_ids
        for t, a, b in zip(chunk, ref, mine[i:i + 20000]):
            if a != b:
                bad += 1
                if bad <= 20:
                    print("  mismatch %r: transformers %s, ours %s" % (t, a, b))
    print("exhaustive: %d mismatches" % bad)
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("test_binary", help="path to the built test_tokenizer")
    ap.add_argument("--bpe", default=None, help="open_clip bpe_simple_vocab_16e6.txt.gz (default: open_clip's)")
    ap.add_argument("--exhaustive", action="store_true", help="also compare every code point (no output)")
    args = ap.parse_args()
    bpe = args.bpe
    if bpe is None:
        import open_clip
        bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")

    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir, clip_dir = os.path.join(tmp, "tiny"), os.path.join(tmp, "clip")
        write_folder(args.test_binary, ["--write-tiny", tiny_dir], "tiny")
        write_folder(args.test_binary, ["--write-bpe", bpe, clip_dir], "clip")
        tiny_tok, tiny = encode_all(tiny_dir)
        clip_tok, clip = encode_all(clip_dir)
        assert len(tiny_tok) == 1000 and len(clip_tok) == 49408, (len(tiny_tok), len(clip_tok))
        # sd1-reference.md §3: the real vocabulary must give these ids.
        assert clip[0]["ids"][:8] == [49406, 320, 1125, 539, 320, 2368, 49407, 49407], clip[0]["ids"][:8]
        if args.exhaustive:
            bad = exhaustive(args.test_binary, clip_dir, clip_tok) + exhaustive(args.test_binary, tiny_dir, tiny_tok)
            sys.exit(1 if bad else 0)

    doc = {
        "generated_by": "tests/gen_tokenizer_fixtures.py",
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "call": 'CLIPTokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids',
        "tiny": tiny,
        "clip": clip,
    }
    # One case per line keeps the file small and diffable.
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k in ("generated_by", "transformers_version", "tokenizers_version", "call"):
            f.write("  %s: %s,\n" % (json.dumps(k), json.dumps(doc[k])))
        for k in ("tiny", "clip"):
            f.write('  "%s": [\n' % k)
            f.write(",\n".join("    " + json.dumps(c, ensure_ascii=True, separators=(",", ":")) for c in doc[k]))
            f.write("\n  ]%s\n" % ("," if k == "tiny" else ""))
        f.write("}\n")
    json.load(open(OUT, encoding="utf-8"))
    print("wrote %s: %d tiny + %d clip cases, %d bytes" % (OUT, len(tiny), len(clip), os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
