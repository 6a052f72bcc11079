/* test_image.c — PNG writing with text chunks, loading through libpng, error handling for unwritable
 * and corrupt files, and image_from_chw's rounding/clamping. Test PNGs in other formats (gray, RGBA,
 * 16-bit, text after IDAT) are made here with libpng directly, independently of image_write_png.
 *
 * Usage: test_image <fixtures_dir> [lorastyle_binary]   (prints "N passed, M failed")
 */
#include "common.h" /* defines: ls_last_error, ls_path_join, ls_read_file */
#include "image.h"  /* defines: Image, image_* */

#include <math.h>
#include <png.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testutil.h" // defines: CHECK, test_summary, test_scratch_dir, write_bytes

static char g_tmp[] = "/tmp/test_image.XXXXXX";

static char *tmp_path(const char *name) { return ls_path_join(g_tmp, name); }

static int count_temporaries(void) { return test_count_temporaries(g_tmp); }

/* 1 if the file contains a chunk of type `type` (4 chars) whose data starts with keyword `key` + NUL. */
static int has_chunk(const char *path, const char *type, const char *key) {
    size_t len;
    char *raw = ls_read_file(path, &len);
    char pat[96];
    size_t pl = (size_t)snprintf(pat, sizeof pat, "%s%s", type, key) + 1; /* include the NUL */
    int found = 0;
    for (size_t i = 0; raw && i + pl <= len && !found; i++) found = memcmp(raw + i, pat, pl) == 0;
    free(raw);
    return found;
}

/* Write a PNG with libpng's simplified API (format is a PNG_FORMAT_* value). */
static int write_simple_png(const char *path, int w, int h, unsigned format, const void *pixels) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = format;
    int ok = png_image_write_to_file(&im, path, 0, pixels, 0, NULL);
    png_image_free(&im);
    return ok;
}

/* An 8-bit RGB PNG whose only text chunk comes after the image data. */
static void write_png_text_after_idat(const char *path, const uint8_t *rgb, int w, int h, const char *key,
                                      const char *value) {
    FILE *fp = fopen(path, "wb");
    LS_ASSERT(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png), end = png_create_info_struct(png);
    LS_ASSERT(png && info && end);
    if (setjmp(png_jmpbuf(png))) LS_ASSERT(!"libpng failed writing a test file");
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * w * 3);
    png_text t = {0};
    t.compression = PNG_TEXT_COMPRESSION_zTXt;
    t.key = (png_charp)key;
    t.text = (png_charp)value;
    png_set_text(png, end, &t, 1);
    png_write_end(png, end);
    png_destroy_info_struct(png, &end);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
}

static uint8_t *random_rgb(int w, int h, unsigned seed) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

/* ---------------------------------------------------------------------------------------------- */

static const char *UTF8_VALUE = "\xe7\x8c\xab \xe2\x9c\x93 caf\xc3\xa9 \xf0\x9f\x8e\xa8"; /* 猫 ✓ café 🎨 */
static const char *LATIN_VALUE = "caf\xc3\xa9 na\xc3\xafve \xc2\xb1"; /* café naïve ± */
static const char *PARAMS = "a watercolor cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler, Seed: 42";

static void test_round_trip(void) {
    char *path = tmp_path("rt.png");
    Image img = {37, 23, 3, random_rgb(37, 23, 7)};
    const char *text[8] = {"parameters", PARAMS, "latin", LATIN_VALUE, "utf8", UTF8_VALUE, "empty", ""};
    CHECK(image_write_png(path, &img, text, 4) == LS_OK, "write: %s", ls_last_error());
    CHECK(count_temporaries() == 0, "temporary left behind");

    Image back;
    CHECK(image_load(&back, path) == LS_OK, "load: %s", ls_last_error());
    CHECK(back.w == 37 && back.h == 23 && back.c == 3, "dims %dx%dx%d", back.w, back.h, back.c);
    CHECK(back.data && memcmp(back.data, img.data, 37 * 23 * 3) == 0, "pixels differ");
    image_free(&back);
    CHECK(back.data == NULL && back.w == 0, "image_free zeroes");

    for (int i = 0; i < 4; i++) {
        char *v = image_png_get_text(path, text[2 * i]);
        CHECK(v && strcmp(v, text[2 * i + 1]) == 0, "text '%s' = '%s'", text[2 * i], v ? v : "(null)");
        free(v);
    }
    CHECK(has_chunk(path, "tEXt", "parameters"), "parameters should be tEXt");
    CHECK(has_chunk(path, "tEXt", "latin"), "Latin-1 value should be tEXt");
    CHECK(has_chunk(path, "iTXt", "utf8"), "non-Latin-1 value should be iTXt");

    ls_clear_error();
    char *v = image_png_get_text(path, "absent");
    CHECK(v == NULL, "absent key found");
    CHECK(strstr(ls_last_error(), path) && strstr(ls_last_error(), "absent"), "msg: %s", ls_last_error());
    free(v);

    /* overwrite in place; invalid keys are rejected */
    CHECK(image_write_png(path, &img, NULL, 0) == LS_OK, "rewrite: %s", ls_last_error());
    const char *badkey[2] = {" lead", "x"};
    CHECK(image_write_png(path, &img, badkey, 1) == LS_ERR && strstr(ls_last_error(), path), "bad key");
    free(img.data);
    unlink(path);
    free(path);
}

/* Text stored after IDAT (in an interlaced, zTXt-compressed file) is found too. */
static void test_text_after_idat(void) {
    char *path = tmp_path("late_text.png");
    uint8_t *rgb = random_rgb(9, 7, 3);
    write_png_text_after_idat(path, rgb, 9, 7, "parameters", "late \xe9 latin1"); /* raw Latin-1 é */
    char *v = image_png_get_text(path, "parameters");
    CHECK(v && strcmp(v, "late \xc3\xa9 latin1") == 0, "late text = %s (%s)", v ? v : "(null)", ls_last_error());
    free(v);
    Image img;
    CHECK(image_load(&img, path) == LS_OK && memcmp(img.data, rgb, 9 * 7 * 3) == 0, "interlaced load");
    image_free(&img);
    free(rgb);
    unlink(path);
    free(path);
}

static void test_write_errors(void) {
    uint8_t px[12] = {0};
    Image img = {2, 2, 3, px};
    const char *bad = "/nonexistent_dir/x.png";
    ls_clear_error();
    CHECK(image_write_png(bad, &img, NULL, 0) == LS_ERR, "wrote into a missing directory");
    CHECK(strstr(ls_last_error(), bad) != NULL, "msg: %s", ls_last_error());
    CHECK(access(bad, F_OK) != 0, "file exists");
    Image empty = {0, 0, 3, NULL};
    char *path = tmp_path("err.png");
    CHECK(image_write_png(path, &empty, NULL, 0) == LS_ERR && strstr(ls_last_error(), path), "empty image");

    /* a libpng write error midway (file size limit ⇒ EFBIG, like a full disk) leaves the old file intact */
    CHECK(image_write_png(path, &img, NULL, 0) == LS_OK, "%s", ls_last_error());
    size_t old_len;
    char *old = ls_read_file(path, &old_len);
    Image big = {512, 512, 3, random_rgb(512, 512, 11)}; /* noise: incompressible, ~768 KB */
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 100 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        ls_clear_error();
        int rc = image_write_png(path, &big, NULL, 0);
        setrlimit(RLIMIT_FSIZE, &saved);
        CHECK(rc == LS_ERR, "write past the size limit succeeded");
        CHECK(strstr(ls_last_error(), path) != NULL, "msg: %s", ls_last_error());
        size_t len;
        char *now = ls_read_file(path, &len);
        CHECK(now && len == old_len && memcmp(now, old, len) == 0, "target changed by a failed write");
        free(now);
        CHECK(count_temporaries() == 0, "temporary left behind after a failed write");
    } else {
        printf("note: setrlimit(RLIMIT_FSIZE) unavailable, write-failure test skipped\n");
    }
    signal(SIGXFSZ, prev);
    free(big.data);
    free(old);
    unlink(path);
    free(path);
}

static void expect_load_error(const char *path, const char *label) {
    Image img;
    memset(&img, 0x5a, sizeof img);
    ls_clear_error();
    CHECK(image_load(&img, path) == LS_ERR, "%s: loaded", label);
    CHECK(strstr(ls_last_error(), path) != NULL, "%s: msg: %s", label, ls_last_error());
    CHECK(img.data == NULL, "%s: data not NULL", label);
}

static void test_bad_inputs(void) {
    char *good = tmp_path("good.png"), *cut = tmp_path("cut.png"), *txt = tmp_path("notes.txt");
    char *missing = tmp_path("missing.png");
    Image img = {64, 64, 3, random_rgb(64, 64, 5)};
    const char *text[2] = {"parameters", PARAMS};
    CHECK(image_write_png(good, &img, text, 1) == LS_OK, "%s", ls_last_error());
    size_t len;
    char *raw = ls_read_file(good, &len);

    write_bytes(cut, raw, len / 2);
    expect_load_error(cut, "truncated PNG");
    ls_clear_error();
    char *v = image_png_get_text(cut, "absent"); /* must read into the cut image data, then fail */
    CHECK(v == NULL && strstr(ls_last_error(), cut), "truncated get_text: %s", ls_last_error());
    free(v);
    /* flipped bytes inside IDAT: stb alone would decode garbage; the chunk CRC catches it */
    char *flip = malloc(len);
    memcpy(flip, raw, len);
    for (size_t i = len / 2; i < len / 2 + 16; i++) flip[i] ^= 0x55;
    write_bytes(cut, flip, len);
    expect_load_error(cut, "corrupted IDAT");
    CHECK(strstr(ls_last_error(), "CRC") != NULL, "msg: %s", ls_last_error());
    free(flip);
    write_bytes(cut, raw, 20); /* inside IHDR */
    expect_load_error(cut, "PNG cut in IHDR");
    v = image_png_get_text(cut, "parameters");
    CHECK(v == NULL && strstr(ls_last_error(), cut), "IHDR-cut get_text: %s", ls_last_error());
    free(v);

    write_bytes(txt, "just some text, not an image\n", 29);
    expect_load_error(txt, "text file");
    v = image_png_get_text(txt, "parameters");
    CHECK(v == NULL && strstr(ls_last_error(), txt) && strstr(ls_last_error(), "not a PNG"), "msg: %s",
          ls_last_error());
    free(v);
    write_bytes(txt, "", 0);
    expect_load_error(txt, "empty file");
    expect_load_error(missing, "missing file");
    v = image_png_get_text(missing, "parameters");
    CHECK(v == NULL && strstr(ls_last_error(), missing), "missing get_text: %s", ls_last_error());
    free(v);
    expect_load_error(g_tmp, "directory");

    free(raw);
    free(img.data);
    unlink(good), unlink(cut), unlink(txt);
    free(good), free(cut), free(txt), free(missing);
}

/* Gray, gray 16-bit and RGBA files are loaded as RGB (alpha over white, 16 → 8 bits by the high byte). */
static void test_load_formats(void) {
    enum { W = 16, H = 4 };
    char *path = tmp_path("fmt.png");
    uint8_t gray[W * H], rgba[W * H * 4];
    uint16_t gray16[W * H];
    for (int i = 0; i < W * H; i++) {
        gray[i] = (uint8_t)(i * 4);
        gray16[i] = (uint16_t)(i * 1021);
        rgba[4 * i + 0] = (uint8_t)(i * 3);
        rgba[4 * i + 1] = (uint8_t)(255 - i);
        rgba[4 * i + 2] = 10;
        rgba[4 * i + 3] = (uint8_t)(i * 4); /* from transparent to opaque-ish */
    }
    Image img;

    CHECK(write_simple_png(path, W, H, PNG_FORMAT_GRAY, gray), "libpng gray");
    CHECK(image_load(&img, path) == LS_OK && img.c == 3 && img.w == W && img.h == H, "gray: %s", ls_last_error());
    int bad = 0;
    for (int i = 0; img.data && i < W * H; i++)
        for (int k = 0; k < 3; k++) bad += img.data[3 * i + k] != gray[i];
    CHECK(img.data && bad == 0, "gray expanded wrongly (%d)", bad);
    image_free(&img);

    CHECK(write_simple_png(path, W, H, PNG_FORMAT_LINEAR_Y, gray16), "libpng gray16");
    CHECK(image_load(&img, path) == LS_OK, "gray16: %s", ls_last_error());
    bad = 0;
    for (int i = 0; img.data && i < W * H; i++)
        for (int k = 0; k < 3; k++) bad += img.data[3 * i + k] != gray16[i] >> 8;
    CHECK(img.data && bad == 0, "16-bit reduced wrongly (%d)", bad);
    image_free(&img);

    CHECK(write_simple_png(path, W, H, PNG_FORMAT_RGBA, rgba), "libpng rgba");
    CHECK(image_load(&img, path) == LS_OK, "rgba: %s", ls_last_error());
    bad = 0;
    for (int i = 0; img.data && i < W * H; i++) {
        double a = rgba[4 * i + 3] / 255.0;
        for (int k = 0; k < 3; k++) {
            double want = rgba[4 * i + k] * a + 255.0 * (1 - a);
            bad += fabs(img.data[3 * i + k] - want) > 0.5 + 1e-9;
        }
    }
    CHECK(img.data && bad == 0, "alpha not flattened onto white (%d)", bad);
    CHECK(img.data && img.data[0] == 255 && img.data[1] == 255 && img.data[2] == 255, "transparent ⇒ white");
    image_free(&img);

    /* image_write_png accepts RGBA too; reading it back flattens the same way */
    Image in4 = {W, H, 4, rgba};
    CHECK(image_write_png(path, &in4, NULL, 0) == LS_OK, "%s", ls_last_error());
    Image a, b;
    CHECK(image_load(&a, path) == LS_OK, "%s", ls_last_error());
    CHECK(write_simple_png(path, W, H, PNG_FORMAT_RGBA, rgba), "libpng rgba");
    CHECK(image_load(&b, path) == LS_OK && a.data && memcmp(a.data, b.data, W * H * 3) == 0, "RGBA write");
    image_free(&a);
    image_free(&b);
    unlink(path);
    free(path);
}

static void test_from_chw(void) {
    enum { H = 2, W = 3 };
    /* planes R, G, B; pixel (y,x) = index y*W+x */
    const float x[3 * H * W] = {
        -1.0f, 1.0f, 0.0f, -2.0f, 3.0f, NAN,                              /* R: ends, mid, clamps, NaN */
        0.5f, -0.5f, 1.0f / 255.0f, -1.0f + 1.0f / 255.0f, 0.999f, 0.25f, /* G */
        0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f,                               /* B */
    };
    Image img;
    image_from_chw(&img, x, H, W);
    CHECK(img.w == W && img.h == H && img.c == 3 && img.data, "dims");
    for (int i = 0; img.data && i < H * W; i++)
        for (int c = 0; c < 3; c++) {
            float v = x[c * H * W + i] * 0.5f + 0.5f;
            v = isnan(v) ? 0.0f : v < 0 ? 0.0f : v > 1 ? 1.0f : v;
            int want = (int)lrintf(v * 255.0f);
            CHECK(img.data[3 * i + c] == want, "pixel %d ch %d = %d, want %d", i, c, img.data[3 * i + c], want);
        }
    if (img.data) {
        CHECK(img.data[0] == 0 && img.data[3] == 255 && img.data[6] == 128, "R: -1→0, 1→255, 0→128");
        CHECK(img.data[9] == 0 && img.data[12] == 255 && img.data[15] == 0, "R clamps and NaN→0");
        CHECK(img.data[1] == 191 && img.data[4] == 64, "G: 0.5→191 (191.25), -0.5→64 (63.75)");
    }
    image_free(&img);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv; /* all inputs are generated; fixtures_dir is not needed */
    if (test_scratch_dir(g_tmp) < 0) return test_summary();
    test_round_trip();
    test_text_after_idat();
    test_write_errors();
    test_bad_inputs();
    test_load_formats();
    test_from_chw();
    test_remove_dir(g_tmp);
    return test_summary();
}
