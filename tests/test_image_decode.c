/* test_image_decode.c — image_load decodes by content: valid PNG/JPEG/BMP/TGA files load with the right
 * pixels (whatever their name), and the reproducers of issue 15 — a JPEG with a bad DHT, truncated or
 * table-less progressive JPEGs, GIF/PPM/PSD/HDR files named .png/.jpg, truncated PNG/BMP/TGA files, a
 * TGA or PNG header claiming a huge size, a BMP palette index past its palette — are refused with a
 * one-line error naming the file and the problem. The files come from tests/gen_image_fixtures.py.
 * A training folder holding such files skips each one with a warning and keeps the good ones.
 *
 * Usage: test_image_decode <fixtures_dir> [lorastyle_binary]   (prints "N passed, M failed")
 * (also run under valgrind by ctest when valgrind is installed: nothing may read uninitialised memory)
 */
#include "common.h"  /* defines: ls_last_error, ls_path_join, ls_read_file, ls_peak_rss */
#include "dataset.h" /* defines: Dataset, dataset_scan, dataset_free */
#include "image.h"   /* defines: Image, image_load, image_probe */

#include <string.h>
#include <unistd.h>

#include "testutil.h" // defines: CHECK, g_pass, g_fail, test_summary

enum { W = 48, H = 32 };
static char g_dir[600]; /* fixtures/images */

static char *fixture(const char *name) { return ls_path_join(g_dir, name); }

/* Load name and compare with the raw RGB file ref (W x H): largest channel difference ≤ tol. */
static void expect_pixels(const char *name, const char *ref, int tol) {
    char *path = fixture(name), *refpath = fixture(ref);
    size_t n = 0;
    uint8_t *want = (uint8_t *)ls_read_file(refpath, &n);
    Image img;
    int rc = image_load(&img, path);
    CHECK(rc == LS_OK, "%s: %s", name, ls_last_error());
    CHECK(want && n == (size_t)W * H * 3, "%s: reference %s", name, ref);
    if (rc == LS_OK && want && n == (size_t)W * H * 3) {
        CHECK(img.w == W && img.h == H && img.c == 3, "%s: %dx%dx%d", name, img.w, img.h, img.c);
        int maxd = 0;
        for (size_t i = 0; img.w == W && img.h == H && i < n; i++)
            maxd = LS_MAX(maxd, abs(img.data[i] - want[i]));
        CHECK(maxd <= tol, "%s: pixels differ from %s by up to %d (tolerance %d)", name, ref, maxd, tol);
    }
    if (rc == LS_OK) image_free(&img);
    free(want), free(path), free(refpath);
}

/* image_load refuses name with one line naming the file and containing why. */
static void expect_refused(const char *name, const char *why) {
    char *path = fixture(name);
    Image img;
    memset(&img, 0x5a, sizeof img);
    ls_clear_error();
    int rc = image_load(&img, path);
    const char *e = ls_last_error();
    CHECK(rc == LS_ERR, "%s: loaded (%dx%d)", name, img.w, img.h);
    CHECK(img.data == NULL && img.w == 0, "%s: image not cleared", name);
    CHECK(strncmp(e, path, strlen(path)) == 0 && strstr(e, why) && !strchr(e, '\n'),
          "%s: message '%s' should name the file and say '%s'", name, e, why);
    if (rc == LS_OK) image_free(&img);
    free(path);
}

static void test_valid(void) {
    expect_pixels("ok.png", "pattern.rgb", 0);
    expect_pixels("ok.bmp", "pattern.rgb", 0);
    expect_pixels("ok.tga", "pattern.rgb", 0);
    expect_pixels("ok_rle.tga", "pattern.rgb", 0);
    /* JPEG: libjpeg-turbo as Pillow decodes it (islow IDCT, fancy upsampling); ±1 allows another
     * libjpeg-turbo build */
    expect_pixels("ok.jpg", "ok.jpg.ref.rgb", 1);
    expect_pixels("ok_progressive.jpg", "ok_progressive.jpg.ref.rgb", 1);
    expect_pixels("jpeg_named.png", "ok.jpg.ref.rgb", 1);

    Image img; /* a 2-colour palette BMP: red and green (bottom-up rows) */
    char *path = fixture("pal2.bmp");
    CHECK(image_load(&img, path) == LS_OK && img.w == 4 && img.h == 2, "pal2.bmp: %s", ls_last_error());
    static const uint8_t want[8] = {0, 1, 0, 1, 1, 1, 0, 0}; /* 0 = red, 1 = green, top row first */
    int bad = 0;
    for (int i = 0; img.data && i < 8; i++)
        bad += img.data[3 * i] != (want[i] ? 0 : 255) || img.data[3 * i + 1] != (want[i] ? 255 : 0);
    CHECK(img.data && bad == 0, "pal2.bmp: %d pixels wrong", bad);
    image_free(&img);
    free(path);
}

static void test_refused(void) {
    expect_refused("bad_dht.jpg", "corrupt JPEG: Bogus Huffman table");
    expect_refused("truncated_progressive.jpg", "truncated JPEG");
    expect_refused("progressive_no_dht.jpg", "corrupt JPEG");
    expect_refused("gif_named.png", "GIF data: unsupported image format");
    expect_refused("ppm_named.jpg", "PNM (PPM/PGM/PBM) data: unsupported image format");
    expect_refused("psd_named.png", "PSD data: unsupported image format");
    expect_refused("hdr_named.jpg", "HDR data: unsupported image format");
    expect_refused("truncated_rle.tga", "truncated TGA");
    expect_refused("truncated.tga", "truncated TGA");
    expect_refused("huge_rle.tga", "truncated TGA (run-length data is short)");
    expect_refused("truncated.png", "corrupt PNG: truncated");
    expect_refused("huge.png", "100000x100000 exceeds the limit");
    expect_refused("truncated.bmp", "truncated BMP");
    expect_refused("bad_palette_index.bmp", "outside the palette");
    expect_refused("text_named.png", "not a PNG, JPEG, BMP or TGA image");
    expect_refused("missing.png", "cannot open");

    /* the TGA claiming 5888x6179 is refused without allocating its 145 MB of pixels */
    size_t rss0 = ls_peak_rss();
    expect_refused("huge_rle.tga", "truncated TGA");
    CHECK(ls_peak_rss() - rss0 < (size_t)16 << 20, "huge_rle.tga: peak RSS grew %zu MB",
          (ls_peak_rss() - rss0) >> 20);

    /* image_probe: the size from the header, the format, and IMAGE_OTHER for a disguised GIF */
    ImageInfo info;
    char *path = fixture("huge_rle.tga");
    FILE *fp = fopen(path, "rb");
    CHECK(fp && image_probe(fp, path, &info) == LS_OK && info.format == IMAGE_TGA && info.w == 5888 &&
              info.h == 6179, "probe huge_rle.tga: %s", ls_last_error());
    if (fp) fclose(fp);
    free(path);
    path = fixture("gif_named.png");
    fp = fopen(path, "rb");
    CHECK(fp && image_probe(fp, path, &info) == LS_ERR && info.format == IMAGE_OTHER, "probe gif_named.png");
    if (fp) fclose(fp);
    free(path);
}

/* A training folder with good and bad files: each bad one is skipped with a warning naming it and why. */
static void test_dataset_skips(void) {
    char tmpl[] = "/tmp/lorastyle_imgdec_XXXXXX";
    LS_ASSERT(mkdtemp(tmpl));
    static const char *const files[] = {"ok.png",     "ok.jpg",        "ok_rle.tga",      "gif_named.png",
                                        "bad_dht.jpg", "huge_rle.tga", "truncated_progressive.jpg"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *src = fixture(files[i]), *dst = ls_path_join(tmpl, files[i]);
        size_t n;
        char *data = ls_read_file(src, &n);
        LS_ASSERT(data && ls_write_file_atomic(dst, data, n) == LS_OK);
        free(data), free(src), free(dst);
    }
    DatasetOptions o;
    dataset_options_default(&o);
    o.resolution = 64, o.quiet = 1;
    Dataset d;
    int rc = dataset_scan(&d, tmpl, &o);
    CHECK(rc == LS_OK, "scan: %s", ls_last_error());
    if (rc == LS_OK) {
        CHECK(d.n_items == 3 && d.n_skipped == 4, "items %d skipped %d", d.n_items, d.n_skipped);
        CHECK(d.skipped_by[DS_SKIP_UNSUPPORTED] == 1 && d.skipped_by[DS_SKIP_CORRUPT] == 3,
              "unsupported %d corrupt %d", d.skipped_by[DS_SKIP_UNSUPPORTED], d.skipped_by[DS_SKIP_CORRUPT]);
        static const char *const why[][2] = {{"gif_named.png", "GIF data: unsupported image format"},
                                             {"bad_dht.jpg", "corrupt JPEG"},
                                             {"huge_rle.tga", "truncated TGA"},
                                             {"truncated_progressive.jpg", "truncated JPEG"}};
        for (int k = 0; k < 4; k++) {
            char want[700];
            snprintf(want, sizeof want, "%s/%s: skipped: ", tmpl, why[k][0]);
            int found = 0;
            for (int i = 0; i < d.n_skipped; i++)
                found |= strncmp(d.skipped[i].message, want, strlen(want)) == 0 &&
                         strstr(d.skipped[i].message, why[k][1]) != NULL;
            CHECK(found, "no warning '%s...%s'", want, why[k][1]);
        }
        dataset_free(&d);
    }
    test_remove_dir(tmpl);
}

int main(int argc, char **argv) {
    snprintf(g_dir, sizeof g_dir, "%s/images", argc > 1 ? argv[1] : "tests/fixtures");
    test_valid();
    test_refused();
    test_dataset_skips();
    return test_summary();
}
