/* test_tokenizer.c — the CLIP tokenizer against transformers' CLIPTokenizer, id for id.
 *
 * fixtures/tokenizer_ids.json (tests/gen_tokenizer_fixtures.py) holds, for ~150 varied strings, the
 * 77 ids transformers gives with padding="max_length", max_length=77, truncation=True, for two folders:
 *   "tiny": the built-in 1000-id vocabulary (tokenizer_write_tiny), rebuilt here in a temp dir;
 *   "clip": the real 49408-id vocabulary, rebuilt here from open_clip's bpe_simple_vocab_16e6.txt.gz
 *           found via $LS_CLIP_BPE or <source>/build/clip/ (scripts/fetch_clip_vocab.sh puts it there).
 * Plus unit checks: invalid UTF-8, truncation count, empty prompt, the SD1.5 reference ids.
 *
 * Usage: test_tokenizer <fixtures_dir> [lorastyle_binary]    prints "N passed, M failed"; exit 1 on a
 *        failure, 77 (skip) when all ran checks pass but the bpe file for the "clip" part is absent.
 * Helper modes (used by gen_tokenizer_fixtures.py):
 *        test_tokenizer --write-tiny DIR
 *        test_tokenizer --write-bpe BPE_FILE DIR
 *        test_tokenizer --encode DIR   stdin: NUL-separated UTF-8 strings; stdout: per string one line of
 *                                      space-separated tokenizer_encode_raw ids, or "ERR"
 */
#include "common.h"    /* defines: ls_last_error, ls_path_join, ls_read_file, ls_file_exists */
#include "tokenizer.h" /* defines: Tokenizer, tokenizer_* */

#include <cjson/cJSON.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h" // defines: CHECK, g_pass, g_fail, test_summary

enum { MAX_LEN = 77 };

/* Remove a directory holding only plain files (the tokenizer folders written here). */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = ls_path_join(dir, e->d_name);
        unlink(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void print_ids(const char *label, const int *ids, int n) {
    printf("  %s:", label);
    for (int i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
}

/* Compare every case of fixture array `name` (objects {"text", "ids"}) with our encoding. */
static void check_fixture_cases(const Tokenizer *t, const cJSON *root, const char *name) {
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, name);
    CHECK(cJSON_IsArray(cases), "fixture has no \"%s\" array", name);
    int n_cases = 0, n_bad = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, n_cases++) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
        if (!cJSON_IsString(text) || !cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != MAX_LEN) {
            CHECK(0, "%s case %d is malformed", name, n_cases);
            continue;
        }
        int want[MAX_LEN], got[MAX_LEN], i = 0;
        for (const cJSON *v = ids->child; v; v = v->next) want[i++] = v->valueint;
        int r = tokenizer_encode(t, text->valuestring, got, MAX_LEN, NULL);
        int same = r >= 0 && memcmp(want, got, sizeof want) == 0;
        CHECK(same, "%s case %d: text \"%s\" (%s)", name, n_cases, text->valuestring,
              r < 0 ? ls_last_error() : "ids differ");
        if (!same) {
            n_bad++;
            print_ids("want", want, MAX_LEN);
            if (r >= 0) print_ids("got ", got, MAX_LEN);
        }
    }
    printf("%s: %d fixture cases, %d mismatches\n", name, n_cases, n_bad);
}

/* Checks that need no fixture file, on the tiny vocabulary. */
static void unit_checks(const Tokenizer *t) {
    CHECK(tokenizer_vocab_size(t) == 1000, "tiny vocab size %d", tokenizer_vocab_size(t));
    CHECK(tokenizer_bos(t) == 998 && tokenizer_eos(t) == 999 && tokenizer_pad(t) == 999,
          "tiny specials bos %d eos %d pad %d", tokenizer_bos(t), tokenizer_eos(t), tokenizer_pad(t));
    CHECK(tokenizer_max_length(t) == 77, "model_max_length %d", tokenizer_max_length(t));

    /* Empty prompt (the usual negative prompt) = [bos, eos, pad x 75]. */
    int ids[MAX_LEN], dropped = -1;
    int r = tokenizer_encode(t, "", ids, MAX_LEN, &dropped);
    int ok = r == 2 && dropped == 0 && ids[0] == 998;
    for (int i = 1; i < MAX_LEN; i++) ok &= ids[i] == 999;
    CHECK(ok, "empty prompt: r %d dropped %d ids[0..2] %d %d %d", r, dropped, ids[0], ids[1], ids[2]);
    CHECK(tokenizer_encode_raw(t, "", ids, MAX_LEN) == 0, "empty raw encoding is not empty");
    CHECK(tokenizer_encode_raw(t, " \t\n ", ids, MAX_LEN) == 0, "whitespace-only raw encoding not empty");

    /* Truncation: 100 words of one token each keep 75 and report 25 dropped; eos stays last. */
    char text[1024] = "";
    for (int i = 0; i < 100; i++) strcat(text, "a ");
    int raw = tokenizer_encode_raw(t, text, ids, 3); /* counts all, stores 3 */
    CHECK(raw == 100, "raw count %d for 100 x \"a\" (want 100; cap must not limit the count)", raw);
    r = tokenizer_encode(t, text, ids, MAX_LEN, &dropped);
    CHECK(r == MAX_LEN && dropped == 25 && ids[0] == 998 && ids[MAX_LEN - 1] == 999 && ids[1] == ids[75],
          "truncation: r %d dropped %d last %d", r, dropped, ids[MAX_LEN - 1]);
    r = tokenizer_encode(t, "a a a", ids, MAX_LEN, &dropped);
    CHECK(r == 5 && dropped == 0 && ids[4] == 999 && ids[5] == 999, "short prompt: r %d dropped %d", r, dropped);

    /* Invalid UTF-8 is an error with a clear message, wherever it sits. */
    const char *bad[] = {"\xff", "a photo \x80 of", "caf\xc3", "\xc0\xaf overlong", "\xe0\x80\xaf",
                         "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 too big", "\xf8\x88\x80\x80\x80",
                         "ok <|endoftext|> \xfe"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ls_clear_error();
        r = tokenizer_encode(t, bad[i], ids, MAX_LEN, NULL);
        CHECK(r == LS_ERR && strstr(ls_last_error(), "UTF-8"), "bad UTF-8 #%zu: r %d, error \"%s\"", i, r,
              ls_last_error());
        CHECK(tokenizer_encode_raw(t, bad[i], ids, MAX_LEN) == LS_ERR, "bad UTF-8 #%zu accepted by raw", i);
    }
    /* Valid edge sequences: U+FFFF, U+10FFFF, 4-byte emoji. */
    CHECK(tokenizer_encode(t, "\xef\xbf\xbf \xf4\x8f\xbf\xbf \xf0\x9f\x90\xb1", ids, MAX_LEN, NULL) > 2,
          "valid edge UTF-8 rejected: %s", ls_last_error());

    /* Literal special tokens in the text become their ids; case-changed ones do not. */
    r = tokenizer_encode_raw(t, "<|endoftext|>", ids, MAX_LEN);
    CHECK(r == 1 && ids[0] == 999, "literal <|endoftext|>: r %d id %d", r, ids[0]);
    r = tokenizer_encode_raw(t, "x<|startoftext|>", ids, MAX_LEN);
    CHECK(r >= 2 && ids[r - 1] == 998, "literal <|startoftext|>: r %d", r);
    r = tokenizer_encode_raw(t, "<|ENDOFTEXT|>", ids, MAX_LEN);
    CHECK(r > 1, "<|ENDOFTEXT|> must be split into ordinary tokens (r %d)", r);

    /* Loading errors name the file. */
    ls_clear_error();
    CHECK(tokenizer_load("/nonexistent/tokenizer") == NULL && strstr(ls_last_error(), "vocab.json"),
          "missing folder: \"%s\"", ls_last_error());
    ls_clear_error();
    CHECK(tokenizer_write_from_bpe("/nonexistent/bpe.txt.gz", "/tmp") == LS_ERR &&
              strstr(ls_last_error(), "/nonexistent/bpe.txt.gz"),
          "missing bpe file: \"%s\"", ls_last_error());
}

/* A hand-made folder with a broken merges.txt: the error names file and line. */
static void bad_folder_checks(const char *dir) {
    LS_ASSERT(ls_mkdir_p(dir) == LS_OK);
    char *vocab = ls_path_join(dir, "vocab.json"), *merges = ls_path_join(dir, "merges.txt");
    const char *v = "{\"a\": 0, \"b</w>\": 1, \"ab</w>\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}";
    LS_ASSERT(ls_write_file_atomic(vocab, v, strlen(v)) == LS_OK);
    const char *bad_merges[] = {"#version: 0.2\na c\n", "#version: 0.2\na b</w>\n\n", "a b c\n"};
    const char *want[] = {"merges.txt:2", "merges.txt:3", "merges.txt:1"};
    for (int i = 0; i < 3; i++) {
        LS_ASSERT(ls_write_file_atomic(merges, bad_merges[i], strlen(bad_merges[i])) == LS_OK);
        ls_clear_error();
        Tokenizer *t = tokenizer_load(dir);
        CHECK(t == NULL && strstr(ls_last_error(), want[i]), "bad merges #%d: \"%s\"", i, ls_last_error());
        tokenizer_free(t);
    }
    /* The same folder with a valid merge loads (no tokenizer_config.json: CLIP defaults apply). */
    const char *good = "#version: 0.2\na b</w>\n";
    LS_ASSERT(ls_write_file_atomic(merges, good, strlen(good)) == LS_OK);
    Tokenizer *t = tokenizer_load(dir);
    int ids[8];
    CHECK(t && tokenizer_encode_raw(t, "AB", ids, 8) == 1 && ids[0] == 2 && tokenizer_pad(t) == 4,
          "minimal folder: %s", t ? "wrong ids" : ls_last_error());
    tokenizer_free(t);
    free(vocab);
    free(merges);
}

/* The real vocabulary: the SD1.5 reference ids of sd1-reference.md §3 and its size. */
static void clip_checks(const Tokenizer *t) {
    CHECK(tokenizer_vocab_size(t) == 49408, "clip vocab size %d", tokenizer_vocab_size(t));
    CHECK(tokenizer_bos(t) == 49406 && tokenizer_eos(t) == 49407 && tokenizer_pad(t) == 49407,
          "clip specials %d %d %d", tokenizer_bos(t), tokenizer_eos(t), tokenizer_pad(t));
    int ids[MAX_LEN], dropped = -1;
    int r = tokenizer_encode(t, "a photo of a cat", ids, MAX_LEN, &dropped);
    const int want[7] = {49406, 320, 1125, 539, 320, 2368, 49407};
    int ok = r == 7 && dropped == 0 && memcmp(ids, want, sizeof want) == 0;
    for (int i = 7; i < MAX_LEN; i++) ok &= ids[i] == 49407;
    CHECK(ok, "\"a photo of a cat\" → %d %d %d %d %d %d %d", ids[0], ids[1], ids[2], ids[3], ids[4], ids[5],
          ids[6]);
}

/* Locate the open_clip bpe file: $LS_CLIP_BPE, else <fixtures>/../../build/clip/. NULL if absent. */
static char *find_bpe(const char *fixtures) {
    const char *env = getenv("LS_CLIP_BPE");
    if (env && *env) return ls_file_exists(env) ? strdup(env) : NULL;
    char *p = ls_path_join(fixtures, "../../build/clip/bpe_simple_vocab_16e6.txt.gz");
    if (ls_file_exists(p)) return p;
    free(p);
    return NULL;
}

/* --encode DIR: one line of raw ids per NUL-separated stdin string. */
static int encode_mode(const char *dir) {
    Tokenizer *t = tokenizer_load(dir);
    if (!t) return fprintf(stderr, "test_tokenizer: %s\n", ls_last_error()), 1;
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    int *ids = NULL, ids_cap = 0;
    for (int c;;) {
        c = getchar();
        if (c != EOF && c != 0) {
            if (n + 1 >= cap) s = realloc(s, cap *= 2);
            LS_ASSERT(s);
            s[n++] = (char)c;
            continue;
        }
        if (c == EOF && n == 0) break;
        s[n] = 0;
        int r = tokenizer_encode_raw(t, s, ids, ids_cap);
        if (r > ids_cap) {
            ids = realloc(ids, (size_t)r * sizeof *ids);
            LS_ASSERT(ids);
            ids_cap = r;
            r = tokenizer_encode_raw(t, s, ids, ids_cap);
        }
        if (r < 0) printf("ERR");
        for (int i = 0; i < r; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        n = 0;
        if (c == EOF) break;
    }
    free(s);
    free(ids);
    tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-tiny")) {
        if (tokenizer_write_tiny(argv[2]) < 0) return fprintf(stderr, "%s\n", ls_last_error()), 1;
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "--write-bpe")) {
        if (tokenizer_write_from_bpe(argv[2], argv[3]) < 0) return fprintf(stderr, "%s\n", ls_last_error()), 1;
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--encode")) return encode_mode(argv[2]);
    if (argc < 2) {
        fprintf(stderr, "usage: test_tokenizer <fixtures_dir> [lorastyle_binary]\n");
        return 2;
    }
    const char *fixtures = argv[1];

    char tmp[] = "/tmp/test_tokenizer.XXXXXX";
    LS_ASSERT(mkdtemp(tmp));
    char *tiny_dir = ls_path_join(tmp, "tiny"), *clip_dir = ls_path_join(tmp, "clip");
    char *bad_dir = ls_path_join(tmp, "bad");

    char *fixture_path = ls_path_join(fixtures, "tokenizer_ids.json");
    size_t len = 0;
    char *text = ls_read_file(fixture_path, &len);
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    CHECK(root != NULL, "cannot read %s: %s", fixture_path, text ? "bad JSON" : ls_last_error());
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "transformers_version");
    if (cJSON_IsString(ver)) printf("fixtures from transformers %s\n", ver->valuestring);

    /* Tiny vocabulary: written by our trainer, then compared with what transformers made of it. */
    double t0 = ls_time();
    int r = tokenizer_write_tiny(tiny_dir);
    CHECK(r == LS_OK, "tokenizer_write_tiny: %s", ls_last_error());
    Tokenizer *tiny = r == LS_OK ? tokenizer_load(tiny_dir) : NULL;
    CHECK(tiny != NULL, "load tiny: %s", ls_last_error());
    printf("tiny vocabulary written and loaded in %.2f s\n", ls_time() - t0);
    if (tiny) {
        unit_checks(tiny);
        if (root) check_fixture_cases(tiny, root, "tiny");
    }
    tokenizer_free(tiny);
    bad_folder_checks(bad_dir);

    /* Real CLIP vocabulary from the open_clip merges file. */
    int skipped = 0;
    char *bpe = find_bpe(fixtures);
    if (!bpe) {
        skipped = 1;
        printf("SKIP real-vocabulary part: bpe_simple_vocab_16e6.txt.gz not found (set LS_CLIP_BPE or run "
               "scripts/fetch_clip_vocab.sh to put it in build/clip/)\n");
    } else {
        t0 = ls_time();
        r = tokenizer_write_from_bpe(bpe, clip_dir);
        CHECK(r == LS_OK, "tokenizer_write_from_bpe(%s): %s", bpe, ls_last_error());
        Tokenizer *clip = r == LS_OK ? tokenizer_load(clip_dir) : NULL;
        CHECK(clip != NULL, "load clip: %s", ls_last_error());
        printf("clip vocabulary written from %s and loaded in %.2f s\n", bpe, ls_time() - t0);
        if (clip) {
            clip_checks(clip);
            if (root) check_fixture_cases(clip, root, "clip");
        }
        tokenizer_free(clip);
        free(bpe);
    }

    cJSON_Delete(root);
    free(text);
    free(fixture_path);
    remove_dir(tiny_dir);
    remove_dir(clip_dir);
    remove_dir(bad_dir);
    rmdir(tmp);
    free(bad_dir);
    free(tiny_dir);
    free(clip_dir);
    printf("%d passed, %d failed%s\n", g_pass, g_fail, skipped && !g_fail ? " (real vocabulary skipped)" : "");
    return g_fail ? 1 : skipped ? 77 : 0;
}
