/* test_safetensors.c — safetensors reader/writer: round trips, a file written by the Python reference
 * package (tests/gen_io_fixtures.py → fixtures/io_small.safetensors), a catalogue of corrupt files that must
 * each fail cleanly with the path in the message, and bit-exact half-precision conversions.
 *
 * Usage: test_safetensors <fixtures_dir> [lorastyle_binary]   (prints "N passed, M failed")
 */
#include "common.h"      /* defines: ls_last_error, ls_path_join */
#include "safetensors.h" /* defines: StFile, StWriter, st_* */

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testutil.h" // defines: CHECK, test_summary, test_scratch_dir, write_bytes

static char g_tmp[] = "/tmp/test_safetensors.XXXXXX"; /* scratch directory, removed at exit */

static char *tmp_path(const char *name) { return ls_path_join(g_tmp, name); }

/* A safetensors file with the given header text (length field = strlen(json)) and n_data data bytes. */
static void make_st(const char *path, const char *json, size_t n_data) {
    size_t hl = strlen(json);
    unsigned char *buf = calloc(1, 8 + hl + n_data + 1);
    uint64_t n = hl;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, json, hl);
    write_bytes(path, buf, 8 + hl + n_data);
    free(buf);
}

static int count_temporaries(void) { return test_count_temporaries(g_tmp); }

/* st_open must fail, the message must name the file (and contain `what` when given), f must be zeroed. */
static void expect_open_error(const char *path, const char *what, const char *label) {
    StFile f;
    memset(&f, 0xAB, sizeof f);
    ls_clear_error();
    int rc = st_open(&f, path);
    const char *msg = ls_last_error();
    CHECK(rc == LS_ERR, "%s: st_open succeeded", label);
    CHECK(strstr(msg, path) != NULL, "%s: message lacks path: %s", label, msg);
    if (what) CHECK(strstr(msg, what) != NULL, "%s: message lacks '%s': %s", label, what, msg);
    CHECK(f.map == NULL && f.tensors == NULL && f.n_tensors == 0 && f.path == NULL, "%s: not zeroed", label);
    if (rc == LS_OK) st_close(&f);
}

/* ---------------------------------------------------------------------------------------------- */

static void test_round_trip(void) {
    char *path = tmp_path("rt.safetensors");
    float a[6] = {1.5f, -2.25f, 3.0f, 1e-8f, -0.0f, 65504.0f};
    float h[5] = {0.1f, -1.0f, 65504.0f, 6.0e-8f, 1e5f}; /* 1e5 overflows F16 → inf */
    float b[4] = {3.14159f, -1e30f, 1e-30f, 255.5f};
    float alpha = 4.0f;
    int64_t sa[2] = {2, 3}, sh[1] = {5}, sb[2] = {2, 2}, sz[2] = {0, 3};
    StWriter w;
    st_writer_init(&w);
    st_writer_add(&w, "zz.f32", ST_F32, 2, sa, a); /* added out of order: file must be sorted */
    st_writer_add(&w, "b.half", ST_F16, 1, sh, h);
    st_writer_add(&w, "c.bf16", ST_BF16, 2, sb, b);
    st_writer_add(&w, "alpha", ST_F32, 0, NULL, &alpha);
    st_writer_add(&w, "empty", ST_F32, 2, sz, NULL);
    st_writer_meta(&w, "format", "pt");
    st_writer_meta(&w, "tricky", "quote\" backslash\\ newline\n tab\t caf\xc3\xa9 \xe2\x9c\x93");
    st_writer_meta(&w, "ss_network_dim", "8");
    st_writer_meta(&w, "ss_network_dim", "4"); /* replaces */
    CHECK(st_writer_save(&w, path) == LS_OK, "save: %s", ls_last_error());
    st_writer_free(&w);
    CHECK(count_temporaries() == 0, "temporary left behind");

    /* raw layout: header length multiple of 8, __metadata__ first, space padding */
    size_t len;
    char *raw = ls_read_file(path, &len);
    uint64_t n;
    memcpy(&n, raw, 8);
    CHECK(n % 8 == 0 && n + 8 <= len, "header length %llu", (unsigned long long)n);
    CHECK(strncmp(raw + 8, "{\"__metadata__\":{", 17) == 0, "metadata not first: %.40s", raw + 8);
    CHECK(raw[8 + n - 1] == '}' || raw[8 + n - 1] == ' ', "padding");
    CHECK(strstr(raw + 8, "\"alpha\":{\"dtype\":\"F32\",\"shape\":[]") != NULL, "0-d shape not []");
    free(raw);

    StFile f;
    CHECK(st_open(&f, path) == LS_OK, "open: %s", ls_last_error());
    CHECK(f.n_tensors == 5, "n_tensors %d", f.n_tensors);
    const char *sorted[5] = {"alpha", "b.half", "c.bf16", "empty", "zz.f32"};
    for (int i = 0; i < 5 && i < f.n_tensors; i++)
        CHECK(strcmp(f.tensors[i].name, sorted[i]) == 0, "order %d: %s", i, f.tensors[i].name);
    for (int i = 1; i < f.n_tensors; i++)
        CHECK(f.tensors[i].data >= f.tensors[i - 1].data, "data not in name order at %d", i);

    float out[8];
    const StTensor *t = st_find(&f, "zz.f32");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3, "zz.f32 meta");
    if (t) {
        CHECK(st_to_f32(&f, t, out, 1) == LS_OK, "%s", ls_last_error());
        CHECK(memcmp(out, a, sizeof a) == 0, "F32 values differ");
    }
    t = st_find(&f, "b.half");
    CHECK(t && t->dtype == ST_F16 && t->numel == 5 && t->nbytes == 10, "b.half meta");
    if (t) {
        CHECK(st_to_f32(&f, t, out, 0) == LS_OK, "%s", ls_last_error());
        for (int i = 0; i < 5; i++)
            CHECK(out[i] == st_f16_to_f32(st_f32_to_f16(h[i])), "F16[%d] %g", i, out[i]);
        CHECK(isinf(out[4]), "1e5 should be inf in F16");
        CHECK(st_to_f32(&f, t, out, 1) == LS_ERR && strstr(ls_last_error(), "b.half"), "inf not caught");
    }
    t = st_find(&f, "c.bf16");
    CHECK(t && t->dtype == ST_BF16 && t->ndim == 2, "c.bf16 meta");
    if (t) {
        CHECK(st_to_f32(&f, t, out, 1) == LS_OK, "%s", ls_last_error());
        for (int i = 0; i < 4; i++) CHECK(out[i] == st_bf16_to_f32(st_f32_to_bf16(b[i])), "BF16[%d]", i);
    }
    t = st_find(&f, "alpha");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4, "alpha 0-d");
    if (t) CHECK(st_to_f32(&f, t, out, 1) == LS_OK && out[0] == 4.0f, "alpha value");
    t = st_find(&f, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0, "empty tensor");
    CHECK(st_find(&f, "missing") == NULL, "found a missing tensor");
    CHECK(st_meta_get(&f, "format") && strcmp(st_meta_get(&f, "format"), "pt") == 0, "meta format");
    CHECK(st_meta_get(&f, "ss_network_dim") && strcmp(st_meta_get(&f, "ss_network_dim"), "4") == 0, "meta dim");
    const char *tr = st_meta_get(&f, "tricky");
    CHECK(tr && strcmp(tr, "quote\" backslash\\ newline\n tab\t caf\xc3\xa9 \xe2\x9c\x93") == 0, "tricky: %s",
          tr ? tr : "(null)");
    CHECK(f.n_meta == 3, "n_meta %d", f.n_meta);
    st_close(&f);
    CHECK(f.map == NULL && f.tensors == NULL, "st_close zeroes");

    /* saving again over an existing file replaces it */
    st_writer_init(&w);
    st_writer_add(&w, "only", ST_F32, 0, NULL, &alpha);
    CHECK(st_writer_save(&w, path) == LS_OK, "resave: %s", ls_last_error());
    st_writer_free(&w);
    CHECK(st_open(&f, path) == LS_OK && f.n_tensors == 1 && f.n_meta == 0, "resaved file");
    st_close(&f);
    unlink(path);
    free(path);
}

/* Many tensors (hash table) and a tensor larger than the writer's conversion chunk. */
static void test_many_and_large(void) {
    char *path = tmp_path("many.safetensors");
    enum { NT = 1000, BIG = 200003 };
    float *big = malloc(BIG * sizeof(float)), vals[NT];
    for (int i = 0; i < BIG; i++) big[i] = sinf((float)i * 0.01f) * 100.0f;
    StWriter w;
    st_writer_init(&w);
    char name[64];
    for (int i = 0; i < NT; i++) {
        vals[i] = (float)(i % 200); /* exact in F16 and BF16 */
        snprintf(name, sizeof name, "layer.%d.weight", i);
        st_writer_add(&w, name, i % 3 == 0 ? ST_F32 : i % 3 == 1 ? ST_F16 : ST_BF16, 0, NULL, &vals[i]);
    }
    int64_t sb = BIG;
    st_writer_add(&w, "big", ST_F16, 1, &sb, big);
    CHECK(st_writer_save(&w, path) == LS_OK, "save: %s", ls_last_error());
    st_writer_free(&w);
    StFile f;
    CHECK(st_open(&f, path) == LS_OK, "open: %s", ls_last_error());
    int ok = 1;
    for (int i = 0; i < NT; i++) {
        snprintf(name, sizeof name, "layer.%d.weight", i);
        const StTensor *t = st_find(&f, name);
        float v = -1;
        if (!t || st_to_f32(&f, t, &v, 1) != LS_OK || v != vals[i]) ok = 0;
    }
    CHECK(ok, "hash lookup of %d tensors", NT);
    CHECK(st_find(&f, "layer.1000.weight") == NULL, "absent name found");
    const StTensor *t = st_find(&f, "big");
    CHECK(t && t->numel == BIG, "big");
    if (t) {
        float *out = malloc(BIG * sizeof(float));
        CHECK(st_to_f32(&f, t, out, 1) == LS_OK, "%s", ls_last_error());
        int bad = 0;
        for (int i = 0; i < BIG; i++) bad += out[i] != st_f16_to_f32(st_f32_to_f16(big[i]));
        CHECK(bad == 0, "%d big values differ", bad);
        free(out);
    }
    st_close(&f);
    free(big);
    unlink(path);
    free(path);
}

static int read_ref(const StFile *f, const char *name, float *out, int64_t numel) {
    const StTensor *t = st_find(f, name);
    if (!t || t->numel != numel) return 0;
    return st_to_f32(f, t, out, 1) == LS_OK;
}

/* A file written by the reference Python package (see tests/gen_io_fixtures.py). */
static void test_python_fixture(const char *fixtures) {
    char *path = ls_path_join(fixtures, "io_small.safetensors");
    StFile f;
    int rc = st_open(&f, path);
    CHECK(rc == LS_OK, "open python fixture: %s", ls_last_error());
    if (rc != LS_OK) {
        free(path);
        return;
    }
    CHECK(f.n_tensors == 11, "n_tensors %d", f.n_tensors);
    float v[16], ref[16];
    const StTensor *t = st_find(&f, "a_f32");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3, "a_f32 shape");
    if (t && st_to_f32(&f, t, v, 1) == LS_OK)
        for (int i = 0; i < 6; i++) CHECK(v[i] == (float)i * 0.5f - 1.0f, "a_f32[%d] = %g", i, v[i]);
    const char *halves[4] = {"b_f16", "c_bf16", "d_f64", "e_f16_special"};
    const StDtype dts[4] = {ST_F16, ST_BF16, ST_F64, ST_F16};
    for (int k = 0; k < 4; k++) {
        char rname[64];
        snprintf(rname, sizeof rname, "%s.ref", halves[k]);
        t = st_find(&f, halves[k]);
        CHECK(t && t->dtype == dts[k], "%s dtype", halves[k]);
        if (!t) continue;
        CHECK(st_to_f32(&f, t, v, 1) == LS_OK, "%s", ls_last_error());
        CHECK(read_ref(&f, rname, ref, t->numel), "%s missing", rname);
        for (int64_t i = 0; i < t->numel; i++)
            CHECK(memcmp(&v[i], &ref[i], 4) == 0, "%s[%d]: %g vs torch %g", halves[k], (int)i, v[i], ref[i]);
    }
    t = st_find(&f, "alpha");
    CHECK(t && t->ndim == 0 && t->numel == 1, "alpha 0-d");
    if (t) CHECK(st_to_f32(&f, t, v, 1) == LS_OK && v[0] == 8.0f, "alpha = %g", v[0]);
    t = st_find(&f, "ids");
    CHECK(t && t->dtype == ST_I64 && t->numel == 3, "ids");
    if (t) {
        ls_clear_error();
        CHECK(st_to_f32(&f, t, v, 0) == LS_ERR, "I64 converted to float");
        CHECK(strstr(ls_last_error(), path) && strstr(ls_last_error(), "ids"), "msg: %s", ls_last_error());
        int64_t ids[3];
        memcpy(ids, t->data, sizeof ids);
        CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3, "ids values");
    }
    const char *note = st_meta_get(&f, "note");
    CHECK(note && strcmp(note, "h\xc3\xa9llo \xe2\x9c\x93 \"quoted\"") == 0, "note = %s", note ? note : "(null)");
    CHECK(st_meta_get(&f, "format") && strcmp(st_meta_get(&f, "format"), "pt") == 0, "format");
    st_close(&f);
    free(path);
}

/* F32/F64 data at odd byte offsets must still be read correctly (memcpy, no aligned loads). */
static void test_unaligned(void) {
    char *path = tmp_path("unaligned.safetensors");
    const char *json = "{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]},"
                       "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[11,19]},"
                       "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[19,21]}}";
    size_t hl = strlen(json);
    unsigned char buf[1024] = {0};
    uint64_t n = hl;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, json, hl);
    unsigned char *d = buf + 8 + hl;
    float fv[2] = {1.25f, -7.5f};
    double dv = 0.1;
    uint16_t hv = 0x3c00; /* 1.0 */
    memcpy(d + 3, fv, 8);
    memcpy(d + 11, &dv, 8);
    memcpy(d + 19, &hv, 2);
    write_bytes(path, buf, 8 + hl + 21);
    StFile f;
    CHECK(st_open(&f, path) == LS_OK, "%s", ls_last_error());
    float out[2];
    const StTensor *t = st_find(&f, "f");
    CHECK(t && st_to_f32(&f, t, out, 1) == LS_OK && out[0] == 1.25f && out[1] == -7.5f, "unaligned F32");
    t = st_find(&f, "d");
    CHECK(t && st_to_f32(&f, t, out, 1) == LS_OK && out[0] == 0.1f, "unaligned F64");
    t = st_find(&f, "h");
    CHECK(t && st_to_f32(&f, t, out, 1) == LS_OK && out[0] == 1.0f, "unaligned F16");
    st_close(&f);
    unlink(path);
    free(path);
}

static void test_nan_detection(void) {
    char *path = tmp_path("nan.safetensors");
    float v[4] = {1, 2, NAN, 4}, out[4];
    int64_t s = 4;
    StWriter w;
    st_writer_init(&w);
    st_writer_add(&w, "w.f32", ST_F32, 1, &s, v);
    st_writer_add(&w, "w.f16", ST_F16, 1, &s, v);
    st_writer_add(&w, "w.bf16", ST_BF16, 1, &s, v);
    CHECK(st_writer_save(&w, path) == LS_OK, "%s", ls_last_error());
    st_writer_free(&w);
    StFile f;
    CHECK(st_open(&f, path) == LS_OK, "%s", ls_last_error());
    const char *names[3] = {"w.f32", "w.f16", "w.bf16"};
    for (int k = 0; k < 3; k++) {
        const StTensor *t = st_find(&f, names[k]);
        CHECK(t != NULL, "%s", names[k]);
        if (!t) continue;
        ls_clear_error();
        CHECK(st_to_f32(&f, t, out, 1) == LS_ERR, "%s: NaN not detected", names[k]);
        const char *msg = ls_last_error();
        CHECK(strstr(msg, path) && strstr(msg, names[k]) && strstr(msg, "NaN") && strstr(msg, "element 2"),
              "msg: %s", msg);
        CHECK(st_to_f32(&f, t, out, 0) == LS_OK && isnan(out[2]) && out[3] == 4.0f, "%s unchecked", names[k]);
    }
    st_close(&f);
    unlink(path);
    free(path);
}

/* ---------------------------------------------------------------------------------------------- */

static void test_bad_files(void) {
    char *p = tmp_path("bad.safetensors");
    const char *T = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

    char *missing = tmp_path("does_not_exist.safetensors");
    expect_open_error(missing, "cannot open", "missing file");
    free(missing);
    expect_open_error(g_tmp, NULL, "directory");

    write_bytes(p, "", 0);
    expect_open_error(p, "too short", "empty file");
    write_bytes(p, "\x10\x00\x00", 3);
    expect_open_error(p, "too short", "truncated length field");

    unsigned char hdr[16] = {0x40, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a'}; /* claims 64 bytes, has 8 */
    write_bytes(p, hdr, sizeof hdr);
    expect_open_error(p, "exceeds the file size", "header length > file");
    memset(hdr, 0xff, 8);
    write_bytes(p, hdr, sizeof hdr);
    expect_open_error(p, "exceeds the file size", "header length 2^64-1");

    make_st(p, "{\"t\":{\"dtype\":\"F32\",", 0);
    expect_open_error(p, "JSON", "truncated JSON");
    make_st(p, "{\"t\": nonsense}", 0);
    expect_open_error(p, "JSON", "invalid JSON");
    make_st(p, "[1,2,3]", 0);
    expect_open_error(p, "JSON object", "JSON array");
    make_st(p, "{} garbage", 0);
    expect_open_error(p, "trailing", "trailing bytes");
    make_st(p, "{\"t\":5}", 0);
    expect_open_error(p, "'t'", "entry not object");
    make_st(p, "{\"t\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_open_error(p, "unknown dtype 'F17'", "unknown dtype");
    make_st(p, "{\"t\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_open_error(p, "dtype", "numeric dtype");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8);
    expect_open_error(p, "shape", "missing shape");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8);
    expect_open_error(p, "shape", "string shape");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
    expect_open_error(p, "shape[0]", "negative dim");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", 8);
    expect_open_error(p, "shape[0]", "fractional dim");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 8);
    expect_open_error(p, "dimensions", "too many dims");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 8);
    expect_open_error(p, "overflow", "numel overflow");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8);
    expect_open_error(p, "data_offsets", "one offset");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8);
    expect_open_error(p, "data_offsets", "string offset");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
    expect_open_error(p, "begin > end", "begin > end");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8);
    expect_open_error(p, "past the data buffer", "offsets out of range");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", 8);
    expect_open_error(p, "data_offsets", "huge offset");
    make_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16);
    expect_open_error(p, "shape needs 12", "size mismatch");
    make_st(p, T, 5);
    expect_open_error(p, "past the data buffer", "truncated data");
    make_st(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[6,10]}}",
            16);
    expect_open_error(p, "overlap", "overlapping tensors");
    make_st(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
            16);
    expect_open_error(p, "twice", "duplicate name");
    make_st(p, "{\"__metadata__\":{\"format\":\"pt\",\"ss_network_dim\":4},"
               "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_open_error(p, "ss_network_dim", "non-string metadata");
    make_st(p, "{\"__metadata__\":[\"pt\"]}", 0);
    expect_open_error(p, "__metadata__", "metadata not an object");

    /* the same header shapes with good data are accepted (guards against over-strict checks) */
    StFile f;
    make_st(p, T, 8);
    CHECK(st_open(&f, p) == LS_OK, "good file rejected: %s", ls_last_error());
    st_close(&f);
    make_st(p, "{\"__metadata__\":{}}", 0);
    CHECK(st_open(&f, p) == LS_OK && f.n_tensors == 0, "empty model rejected: %s", ls_last_error());
    st_close(&f);
    unlink(p);
    free(p);
}

/* Every truncation of a valid file must fail cleanly; random header corruption must never crash. */
static void test_truncations_and_fuzz(void) {
    char *good = tmp_path("good.safetensors"), *p = tmp_path("cut.safetensors");
    float v[3] = {1, 2, 3};
    int64_t s = 3;
    StWriter w;
    st_writer_init(&w);
    st_writer_add(&w, "x", ST_F32, 1, &s, v);
    st_writer_add(&w, "y", ST_BF16, 1, &s, v);
    st_writer_meta(&w, "k", "v");
    CHECK(st_writer_save(&w, good) == LS_OK, "%s", ls_last_error());
    st_writer_free(&w);
    size_t len;
    char *raw = ls_read_file(good, &len);
    int bad = 0;
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes(p, raw, cut);
        StFile f;
        if (st_open(&f, p) == LS_OK) {
            bad++;
            st_close(&f);
        } else if (!strstr(ls_last_error(), p)) {
            bad++;
        }
    }
    CHECK(bad == 0, "%d truncations accepted or unnamed", bad);

    uint64_t hl;
    memcpy(&hl, raw, 8);
    unsigned rng = 12345;
    int opened = 0;
    for (int it = 0; it < 3000; it++) { /* flip 1-3 random header bytes */
        char *m = malloc(len);
        memcpy(m, raw, len);
        for (int k = 0; k < 1 + it % 3; k++) {
            rng = rng * 1103515245u + 12345u;
            size_t pos = 8 + (rng >> 8) % hl;
            rng = rng * 1103515245u + 12345u;
            m[pos] = (char)(rng >> 16);
        }
        write_bytes(p, m, len);
        StFile f;
        if (st_open(&f, p) == LS_OK) { /* accepted: every tensor must lie inside the mapping */
            opened++;
            for (int i = 0; i < f.n_tensors; i++) {
                const char *d = f.tensors[i].data, *base = f.map;
                if (d < base || d + f.tensors[i].nbytes > base + f.map_size) bad++;
            }
            st_close(&f);
        } else if (!strstr(ls_last_error(), p)) {
            bad++;
        }
        free(m);
    }
    CHECK(bad == 0, "fuzz: %d bad outcomes (%d opened)", bad, opened);
    free(raw);
    unlink(p);
    unlink(good);
    free(p);
    free(good);
}

/* Write errors: missing directory, and "disk full" simulated with RLIMIT_FSIZE (write → EFBIG). */
static void test_write_errors(void) {
    float v[4] = {0};
    int64_t s = 4;
    StWriter w;
    st_writer_init(&w);
    st_writer_add(&w, "t", ST_F32, 1, &s, v);
    const char *nodir = "/nonexistent_dir_lorastyle/x.safetensors";
    ls_clear_error();
    CHECK(st_writer_save(&w, nodir) == LS_ERR && strstr(ls_last_error(), nodir), "msg: %s", ls_last_error());
    st_writer_free(&w);

    char *path = tmp_path("full.safetensors");
    enum { N = 1 << 18 }; /* 1 MiB of F32 */
    float *big = calloc(N, sizeof(float));
    int64_t sb = N;
    st_writer_init(&w);
    st_writer_add(&w, "big", ST_F32, 1, &sb, big);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* make the over-limit write fail with EFBIG instead */
    int set = setrlimit(RLIMIT_FSIZE, &lim) == 0;
    if (set) {
        ls_clear_error();
        int rc = st_writer_save(&w, path);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(rc == LS_ERR, "save past the file size limit succeeded");
        CHECK(strstr(ls_last_error(), path) && strstr(ls_last_error(), "write failed"), "msg: %s",
              ls_last_error());
        CHECK(!ls_file_exists(path), "partial file left at the target path");
        CHECK(count_temporaries() == 0, "temporary left behind after a failed write");
    } else {
        printf("note: setrlimit(RLIMIT_FSIZE) unavailable, disk-full test skipped\n");
    }
    signal(SIGXFSZ, prev);
    st_writer_free(&w);

    /* unsupported output dtype is an error, not a crash */
    st_writer_init(&w);
    st_writer_add(&w, "t", ST_I64, 1, &s, v);
    CHECK(st_writer_save(&w, path) == LS_ERR && strstr(ls_last_error(), "I64"), "I64 write");
    st_writer_free(&w);
    st_writer_init(&w);
    st_writer_add(&w, "t", ST_F32, 1, &s, v);
    st_writer_add(&w, "t", ST_F32, 1, &s, v);
    CHECK(st_writer_save(&w, path) == LS_ERR && strstr(ls_last_error(), "twice"), "duplicate write");
    st_writer_free(&w);
    st_writer_init(&w);
    st_writer_add(&w, "__metadata__", ST_F32, 1, &s, v);
    CHECK(st_writer_save(&w, path) == LS_ERR && strstr(ls_last_error(), "reserved"), "__metadata__ tensor");
    st_writer_free(&w);
    CHECK(!ls_file_exists(path), "file written despite errors");
    free(big);
    free(path);
}

/* ---------------------------------------------------------------------------------------------- */

static void test_half_conversions(void) {
    /* f32 → f16 edge cases: value, expected bits */
    static const struct {
        float f;
        uint16_t h;
    } f16[] = {
        {0.0f, 0x0000},          {-0.0f, 0x8000},         {1.0f, 0x3c00},           {-2.0f, 0xc000},
        {65504.0f, 0x7bff},      {65519.99f, 0x7bff},     {65520.0f, 0x7c00},       {1e6f, 0x7c00},
        {INFINITY, 0x7c00},      {-INFINITY, 0xfc00},     {0x1p-14f, 0x0400},       {0x1p-24f, 0x0001},
        {0x1p-25f, 0x0000},      {0x1.000002p-25f, 0x0001}, {0x1.8p-24f, 0x0002},   {0x1.4p-24f, 0x0001},
        {0x1.8p-23f, 0x0003},    {0x1.ffcp-15f, 0x0400} /* rounds up into the smallest normal */,
        {1.0f + 0x1p-11f, 0x3c00} /* tie → even */,    {1.0f + 0x3p-11f, 0x3c02} /* tie → even (up) */,
        {1.0f + 0x1.01p-11f, 0x3c01}, {-0x1p-26f, 0x8000}, {0x1.ff8p-15f, 0x03ff} /* largest subnormal */,
    };
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
        uint16_t want = f16[i].h, got = st_f32_to_f16(f16[i].f);
        CHECK(got == want, "f32_to_f16(%a) = 0x%04x, want 0x%04x", (double)f16[i].f, got, want);
    }
    CHECK((st_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (st_f32_to_f16(NAN) & 0x3ff), "NaN → f16 NaN");
    CHECK((st_f32_to_f16(st_bits_f32(0x7f800001)) & 0x3ff) != 0, "signalling NaN must not become inf");
    CHECK(st_f16_to_f32(0x0001) == 0x1p-24f && st_f16_to_f32(0x03ff) == 0x1.ff8p-15f, "f16 subnormals");
    CHECK(st_f16_to_f32(0x7bff) == 65504.0f && isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0, "f16");
    CHECK(isnan(st_f16_to_f32(0x7e00)) && st_f32_bits(st_f16_to_f32(0x8000)) == 0x80000000u, "f16 nan/-0");

    /* every half value round-trips exactly through float */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        if (isnan(f) ? !((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) : st_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 values do not round-trip", bad);
#ifdef __FLT16_MAX__
    /* cross-check rounding against the compiler's _Float16 conversion on random and boundary floats */
    bad = 0;
    uint32_t x = 2463534242u;
    for (int i = 0; i < 2000000; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        uint32_t u = i & 1 ? x : (x & 0x807fffffu) | ((uint32_t)(100 + (x >> 3) % 45) << 23); /* near half range */
        float f = st_bits_f32(u);
        if (isnan(f)) continue;
        _Float16 r = (_Float16)f;
        uint16_t want;
        memcpy(&want, &r, 2);
        if (st_f32_to_f16(f) != want) bad++;
        float back = (float)r;
        if (memcmp(&back, &(float){st_f16_to_f32(want)}, 4) != 0) bad++;
    }
    CHECK(bad == 0, "%d mismatches against _Float16", bad);
#endif

    /* bf16 */
    CHECK(st_f32_to_bf16(1.0f) == 0x3f80 && st_f32_to_bf16(-2.0f) == 0xc000, "bf16 simple");
    CHECK(st_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "bf16 tie → even (down)");
    CHECK(st_f32_to_bf16(1.0f + 0x3p-8f) == 0x3f82, "bf16 tie → even (up)");
    CHECK(st_f32_to_bf16(1.0f + 0x1.01p-8f) == 0x3f81, "bf16 above tie");
    CHECK(st_f32_to_bf16(st_bits_f32(0x7f7fffff)) == 0x7f80, "bf16 FLT_MAX rounds to inf");
    CHECK(st_f32_to_bf16(INFINITY) == 0x7f80 && st_f32_to_bf16(-INFINITY) == 0xff80, "bf16 inf");
    CHECK(st_f32_to_bf16(st_bits_f32(0x00000001)) == 0x0000 && st_f32_to_bf16(st_bits_f32(0x00008000)) == 0x0000,
          "bf16 tiny subnormals round to zero (tie → even)");
    CHECK(st_f32_to_bf16(st_bits_f32(0x00018000)) == 0x0002, "bf16 subnormal tie → even (up)");
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))), "bf16 NaN");
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(st_bits_f32(0x7f800001)))), "bf16 low-payload NaN stays NaN");
    bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && st_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d bf16 values do not round-trip", bad);
    CHECK(st_dtype_size(ST_BF16) == 2 && strcmp(st_dtype_name(ST_F8_E4M3), "F8_E4M3") == 0, "dtype table");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <fixtures_dir> [lorastyle_binary]\n", argv[0]);
        return 2;
    }
    if (test_scratch_dir(g_tmp) < 0) return test_summary();
    test_round_trip();
    test_many_and_large();
    test_python_fixture(argv[1]);
    test_unaligned();
    test_nan_detection();
    test_bad_files();
    test_truncations_and_fuzz();
    test_write_errors();
    test_half_conversions();
    test_remove_dir(g_tmp);
    return test_summary();
}
