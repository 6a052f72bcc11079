/* test_dataset.c — the training data module (datasets/): scanning the shipped sample set, every kind of
 * bad input (built in a temporary folder), resize/crop arithmetic, buckets, caption processing, epoch
 * order and the latent cache keys and files.
 *
 * Usage: test_dataset <fixtures_dir> [lorastyle_binary]   (the source tree is <fixtures_dir>/../..)
 */
#include "common.h"  /* defines: ls_last_error, ls_path_join, ls_read_file, ls_peak_rss */
#include "dataset.h" /* defines: Dataset, dataset_* */
#include "image.h"   /* defines: Image, image_write_png */
#include "safetensors.h"
#include "testutil.h" /* defines: CHECK, test_summary, test_scratch_dir, write_bytes */

#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char g_tmp[] = "/tmp/ls_dataset_XXXXXX";
static char g_sample[600]; /* datasets/sample_style */

/* ---------------------------------------------------------------------------------------------- */
/* helpers                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

static char *tmp(const char *name) { return ls_path_join(g_tmp, name); }

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

/* What dataset_report prints, as a string (caller frees). */
static char *report_of(const Dataset *d) {
    char *rep = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&rep, &len);
    LS_ASSERT(mf);
    dataset_report(d, mf);
    fclose(mf);
    return rep;
}

static void make_dir(const char *path) { LS_ASSERT(ls_mkdir_p(path) == LS_OK); }

/* An RGB PNG whose pixel (x, y, c) is f(x, y, c). */
static void write_png_fn(const char *path, int w, int h, int (*f)(int, int, int)) {
    Image img = {w, h, 3, malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) img.data[((size_t)y * w + x) * 3 + c] = (uint8_t)f(x, y, c);
    LS_ASSERT(image_write_png(path, &img, NULL, 0) == LS_OK);
    free(img.data);
}

/* An image and its caption: <dir>/<name>.png (w×h, pixel (x, y, c) = f(x, y, c)) and <dir>/<name>.txt holding
 * caption. */
static void write_captioned(const char *dir, const char *name, int w, int h, int (*f)(int, int, int),
                            const char *caption) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s.png", dir, name);
    write_png_fn(p, w, h, f);
    snprintf(p, sizeof p, "%s/%s.txt", dir, name);
    write_text(p, caption);
}

static int px_grey(int x, int y, int c) { return 128; }
static int px_pattern(int x, int y, int c) { return (x * 7 + y * 13 + c * 50) & 255; }

/* The first n bytes of src copied to dst (a truncated file). */
static void copy_prefix(const char *src, const char *dst, size_t n) {
    size_t len;
    char *b = ls_read_file(src, &len);
    LS_ASSERT(b);
    write_bytes(dst, b, n < len ? n : len);
    free(b);
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A PNG that is only a header: IHDR claiming w × h (8-bit gray) and IEND, with correct CRCs. */
static void write_png_header_only(const char *path, uint32_t w, uint32_t h) {
    uint8_t b[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *p = b + 8;
    be32(p, 13), memcpy(p + 4, "IHDR", 4), be32(p + 8, w), be32(p + 12, h);
    p[16] = 8, p[17] = 0, p[18] = p[19] = p[20] = 0;
    be32(p + 21, (uint32_t)crc32(0, p + 4, 17));
    p += 25;
    be32(p, 0), memcpy(p + 4, "IEND", 4), be32(p + 8, (uint32_t)crc32(0, p + 4, 4));
    write_bytes(path, b, sizeof b);
}

/* stderr capture, to check warnings. */
static int g_saved_fd = -1;
static void capture_begin(void) {
    char *p = tmp("stderr.txt");
    fflush(stderr);
    g_saved_fd = dup(2);
    int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    LS_ASSERT(fd >= 0);
    dup2(fd, 2);
    close(fd);
    free(p);
}
static char *capture_end(void) {
    fflush(stderr);
    dup2(g_saved_fd, 2);
    close(g_saved_fd);
    char *p = tmp("stderr.txt");
    size_t n;
    char *s = ls_read_file(p, &n);
    free(p);
    return s ? s : strdup("");
}

static int find_item(const Dataset *d, const char *base) {
    for (int i = 0; i < d->n_items; i++) {
        const char *s = strrchr(d->items[i].path, '/');
        if (strcmp(s ? s + 1 : d->items[i].path, base) == 0) return i;
    }
    return -1;
}

static int tag_count(const Dataset *d, int subset, const char *tag) {
    for (int k = 0; k < d->subsets[subset].n_tags; k++)
        if (strcmp(d->subsets[subset].tags[k].tag, tag) == 0) return d->subsets[subset].tags[k].count;
    return 0;
}

static DatasetOptions opts(int resolution) {
    DatasetOptions o;
    dataset_options_default(&o);
    o.resolution = resolution;
    return o;
}

/* ---------------------------------------------------------------------------------------------- */
/* the shipped sample set                                                                         */
/* ---------------------------------------------------------------------------------------------- */

static void test_sample_set(void) {
    static const struct {
        const char *name;
        int w, h;
    } files[] = {{"blocks.png", 96, 64},    {"fish.png", 128, 64},  {"flower.png", 128, 96},
                 {"heart.tga", 80, 64},     {"house.jpg", 96, 128}, {"moon.png", 80, 80},
                 {"mountains.png", 64, 96}, {"star.png", 96, 96},   {"sun.png", 64, 64},
                 {"tree.bmp", 64, 96}};
    DatasetOptions o = opts(64);
    Dataset d;
    capture_begin();
    int rc = dataset_scan(&d, g_sample, &o);
    char *err = capture_end();
    CHECK(rc == LS_OK, "scan %s: %s", g_sample, ls_last_error());
    if (rc != LS_OK) {
        free(err);
        return;
    }
    CHECK(err[0] == 0, "the sample set gives no warnings, got: %s", err);
    free(err);
    CHECK(d.n_items == 10 && d.n_found == 10 && d.n_skipped == 0, "items %d found %d skipped %d", d.n_items,
          d.n_found, d.n_skipped);
    CHECK(d.n_subsets == 1 && strcmp(d.subsets[0].name, "10_pastelshapes") == 0 &&
              d.subsets[0].repeats == 10 && strcmp(d.subsets[0].class_name, "pastelshapes") == 0,
          "one subset 10_pastelshapes");
    CHECK(d.n_samples == 100 && d.n_missing_captions == 0 && d.n_bad_utf8 == 0, "samples %lld",
          (long long)d.n_samples);
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        int i = find_item(&d, files[k].name);
        CHECK(i == (int)k, "%s at %d (sorted by path)", files[k].name, i);
        if (i < 0) continue;
        const DatasetItem *it = &d.items[i];
        CHECK(it->w == files[k].w && it->h == files[k].h, "%s: %dx%d", files[k].name, it->w, it->h);
        CHECK(it->repeats == 10 && it->caption_source == DS_CAPTION_FILE, "%s: repeats/caption",
              files[k].name);
        CHECK(strncmp(it->caption, "pastelshapes, ", 14) == 0 && strstr(it->caption, "flat colors"),
              "%s: caption '%s'", files[k].name, it->caption);
        CHECK(it->tw == 64 && it->th == 64 && it->bucket == 0, "%s: target", files[k].name);
    }
    CHECK(d.n_buckets == 1 && d.buckets[0].n_items == 10, "one 64x64 size");
    CHECK(tag_count(&d, 0, "pastelshapes") == 10 && tag_count(&d, 0, "thick outline") == 10 &&
              tag_count(&d, 0, "sky background") == 3 && tag_count(&d, 0, "sun") == 1,
          "tag frequencies");
    char *js = dataset_tag_frequency_json(&d);
    CHECK(strstr(js, "{\"10_pastelshapes\":{") == js && strstr(js, "\"pastelshapes\":10"), "json %s", js);
    free(js);

    /* every image loads into [-1, 1]; a few known colours survive the pipeline */
    float *x = malloc(3 * 64 * 64 * sizeof(float));
    for (int i = 0; i < d.n_items; i++) {
        CHECK(dataset_load_item(&d, i, x, 0) == LS_OK, "load %d: %s", i, ls_last_error());
        int ok = 1;
        for (int k = 0; k < 3 * 64 * 64; k++) ok &= x[k] >= -1.0f && x[k] <= 1.0f;
        CHECK(ok, "%s: values in [-1, 1]", d.items[i].path);
    }
    int star = find_item(&d, "star.png"), moon = find_item(&d, "moon.png"), sun = find_item(&d, "sun.png");
    dataset_load_item(&d, star, x, 0); /* transparent corner → white */
    CHECK(x[0] == 1.0f && x[4096] == 1.0f && x[8192] == 1.0f, "star corner %g %g %g", x[0], x[4096], x[8192]);
    dataset_load_item(&d, moon, x, 0);
    int grey = 1;
    for (int k = 0; k < 4096; k++) grey &= x[k] == x[4096 + k] && x[k] == x[8192 + k];
    CHECK(grey, "grayscale image has R = G = B");
    dataset_load_item(&d, sun, x, 0); /* 64x64 at 64: a pixel copy; centre is lemon (250, 232, 150) */
    int c = 32 * 64 + 32;
    CHECK(fabsf(x[c] - (250 / 127.5f - 1)) < 1e-6f && fabsf(x[4096 + c] - (232 / 127.5f - 1)) < 1e-6f &&
              fabsf(x[8192 + c] - (150 / 127.5f - 1)) < 1e-6f,
          "sun centre %g %g %g", x[c], x[4096 + c], x[8192 + c]);
    free(x);

    char *rep = report_of(&d);
    CHECK(strstr(rep, "10 images used (100 samples per epoch), 0 skipped") &&
              strstr(rep, "10_pastelshapes: 10 images x 10 repeats"),
          "report:\n%s", rep);
    free(rep);
    dataset_free(&d);

    /* with buckets the mixed shapes spread out, and each item sits in the bucket its shape asks for */
    o = opts(128);
    o.buckets = 1, o.bucket_step = 32, o.quiet = 1;
    CHECK(dataset_scan(&d, g_sample, &o) == LS_OK, "bucket scan: %s", ls_last_error());
    CHECK(d.n_buckets == 3, "%d buckets for mixed shapes (160x96, 128x128, 96x160)", d.n_buckets);
    for (int i = 0; i < d.n_items; i++) {
        int bw, bh;
        dataset_bucket_for(&o, d.items[i].w, d.items[i].h, &bw, &bh);
        const DatasetBucket *b = &d.buckets[d.items[i].bucket];
        CHECK(b->w == bw && b->h == bh && d.items[i].tw == bw && d.items[i].th == bh, "%s bucket",
              d.items[i].path);
        CHECK((d.items[i].w >= d.items[i].h) == (bw >= bh), "%s: orientation kept", d.items[i].path);
    }
    int fish = find_item(&d, "fish.png");
    CHECK(d.items[fish].tw == 160 && d.items[fish].th == 96, "fish 128x64 -> %dx%d", d.items[fish].tw,
          d.items[fish].th);
    float *y = malloc(3 * (size_t)d.items[fish].tw * d.items[fish].th * sizeof(float));
    CHECK(dataset_load_item(&d, fish, y, 1) == LS_OK, "load flipped: %s", ls_last_error());
    free(y);
    dataset_free(&d);

    /* pointing at the repeat folder itself: its name still gives the repeats */
    char direct[700];
    snprintf(direct, sizeof direct, "%s/10_pastelshapes/", g_sample);
    CHECK(dataset_scan(&d, direct, &o) == LS_OK && d.n_items == 10 && d.n_samples == 100 &&
              strcmp(d.subsets[0].name, "10_pastelshapes") == 0,
          "scan of the N_name folder itself: %s", ls_last_error());
    dataset_free(&d);
}

/* ---------------------------------------------------------------------------------------------- */
/* bad input                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

static void test_bad_folders(void) {
    DatasetOptions o = opts(64);
    o.quiet = 1;
    Dataset d;
    char *nope = tmp("does-not-exist");
    CHECK(dataset_scan(&d, nope, &o) == LS_ERR && strstr(ls_last_error(), nope) &&
              strstr(ls_last_error(), "cannot open dataset folder"),
          "missing folder: %s", ls_last_error());
    CHECK(d.n_items == 0 && d.items == NULL, "failed scan leaves an empty dataset");
    free(nope);

    char *file = tmp("plain.txt");
    write_text(file, "x");
    CHECK(dataset_scan(&d, file, &o) == LS_ERR && strstr(ls_last_error(), "not a folder"), "file: %s",
          ls_last_error());
    free(file);

    char *empty = tmp("empty");
    make_dir(empty);
    CHECK(dataset_scan(&d, empty, &o) == LS_ERR && strstr(ls_last_error(), empty) &&
              strstr(ls_last_error(), "no images found"),
          "empty folder: %s", ls_last_error());
    char *junk = tmp("empty/junk"); /* a folder that is not N_name does not count */
    make_dir(junk);
    CHECK(dataset_scan(&d, empty, &o) == LS_ERR && strstr(ls_last_error(), "subfolders were ignored"),
          "junk only: %s", ls_last_error());
    free(junk), free(empty);

    o.resolution = 100;
    char *s = tmp("x");
    CHECK(dataset_scan(&d, s, &o) == LS_ERR && strstr(ls_last_error(), "--resolution 100"),
          "bad resolution: %s", ls_last_error());
    free(s);

    /* a folder named like a year reads as that many repeats (kohya's rule), with a warning */
    o.resolution = 64, o.quiet = 0;
    char *year = tmp("2024_photos"), p[1024];
    make_dir(year);
    snprintf(p, sizeof p, "%s/a.png", year);
    write_png_fn(p, 64, 64, px_grey);
    capture_begin();
    int rc = dataset_scan(&d, year, &o);
    char *err = capture_end();
    CHECK(rc == LS_OK && d.items[0].repeats == 2024 && strstr(err, "read as 2024 repeats"), "2024_photos: %s", err);
    if (rc == LS_OK) dataset_free(&d);
    free(err), free(year);
}

/* Bad image files: "allbad" has only those (an error), "mixed" has them next to good images. */
static void make_bad_files(const char *dir) {
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/notimage.png", dir);
    write_text(p, "this is a text file, not a PNG\n");
    snprintf(p, sizeof p, "%s/zero.jpg", dir);
    write_bytes(p, "", 0);
    snprintf(p, sizeof p, "%s/full.png", g_tmp); /* a real PNG cut before its end */
    write_png_fn(p, 40, 40, px_pattern);
    snprintf(q, sizeof q, "%s/truncated.png", dir);
    copy_prefix(p, q, 200);
    snprintf(p, sizeof p, "%s/10_pastelshapes/house.jpg", g_sample);
    snprintf(q, sizeof q, "%s/truncated.jpg", dir);
    copy_prefix(p, q, 1500);
    snprintf(p, sizeof p, "%s/10_pastelshapes/tree.bmp", g_sample);
    snprintf(q, sizeof q, "%s/truncated.bmp", dir);
    copy_prefix(p, q, 4000);
    snprintf(p, sizeof p, "%s/10_pastelshapes/heart.tga", g_sample);
    snprintf(q, sizeof q, "%s/truncated.tga", dir);
    copy_prefix(p, q, 3000);
}

static void test_bad_images(void) {
    DatasetOptions o = opts(64);
    Dataset d;
    char *allbad = tmp("allbad");
    make_dir(allbad);
    make_bad_files(allbad);
    capture_begin();
    int rc = dataset_scan(&d, allbad, &o);
    char *err = capture_end();
    CHECK(rc == LS_ERR && strstr(ls_last_error(), allbad) &&
              strstr(ls_last_error(), "none of the 6 images") &&
              strstr(ls_last_error(), "6 corrupt or truncated"),
          "all bad: %s", ls_last_error());
    static const char *const names[] = {"notimage.png",  "zero.jpg",      "truncated.png",
                                        "truncated.jpg", "truncated.bmp", "truncated.tga"};
    for (int k = 0; k < 6; k++) {
        char want[600];
        snprintf(want, sizeof want, "%s/%s: skipped: ", allbad, names[k]);
        CHECK(strstr(err, want) != NULL, "warning for %s in:\n%s", names[k], err);
    }
    CHECK(strstr(err, "truncated JPEG") && strstr(err, "truncated BMP") && strstr(err, "truncated TGA") &&
              strstr(err, "truncated.png: skipped: corrupt PNG: truncated"),
          "truncation named:\n%s", err);
    free(err);

    /* mixed: the bad files, plus unsupported, unreadable, huge, ignored folders and two good images */
    char *mixed = tmp("mixed"), p[1024];
    make_dir(mixed);
    make_bad_files(mixed);
    write_captioned(mixed, "good", 80, 64, px_pattern, "good image, test");
    snprintf(p, sizeof p, "%s/photo.webp", mixed);
    write_text(p, "RIFF....WEBP");
    snprintf(p, sizeof p, "%s/notes.md", mixed); /* not an image: ignored, not counted */
    write_text(p, "# notes");
    snprintf(p, sizeof p, "%s/gone.png", mixed);
    LS_ASSERT(symlink("/nonexistent/lorastyle/gone.png", p) == 0);
    snprintf(p, sizeof p, "%s/huge_stb.png", mixed); /* beyond stb's own limit */
    write_png_header_only(p, 100000, 100000);
    snprintf(p, sizeof p, "%s/huge_side.png", mixed); /* one side above 16384 */
    write_png_header_only(p, 16385, 8);
    snprintf(p, sizeof p, "%s/huge_area.png", mixed); /* 81 Mpx: 324 MB if it were decoded */
    write_png_header_only(p, 9000, 9000);
    snprintf(p, sizeof p, "%s/huge.bmp", mixed); /* a BMP header claiming 70000 x 70000 */
    uint8_t bmp[54] = {'B', 'M'};
    bmp[10] = 54, bmp[14] = 40, bmp[26] = 1, bmp[28] = 24;
    bmp[18] = 0x70, bmp[19] = 0x11, bmp[20] = 0x01, bmp[22] = 0x70, bmp[23] = 0x11,
    bmp[24] = 0x01; /* 70000 */
    write_bytes(p, bmp, sizeof bmp);
    snprintf(p, sizeof p, "%s/folder.png", mixed); /* a folder named like an image: ignored */
    make_dir(p);
    snprintf(p, sizeof p, "%s/misc", mixed);
    make_dir(p);
    snprintf(p, sizeof p, "%s/0_none", mixed);
    make_dir(p);
    snprintf(p, sizeof p, "%s/3_extra", mixed);
    make_dir(p);
    write_captioned(mixed, "3_extra/more", 64, 64, px_grey, "more, test");
    size_t rss0 = ls_peak_rss();
    capture_begin();
    rc = dataset_scan(&d, mixed, &o);
    err = capture_end();
    size_t rss1 = ls_peak_rss();
    CHECK(rc == LS_OK, "mixed: %s", ls_last_error());
    if (rc == LS_OK) {
        CHECK(d.n_items == 2 && d.n_found == 14 && d.n_skipped == 12, "items %d found %d skipped %d",
              d.n_items, d.n_found, d.n_skipped);
        CHECK(d.skipped_by[DS_SKIP_CORRUPT] == 6 && d.skipped_by[DS_SKIP_HUGE] == 4 &&
                  d.skipped_by[DS_SKIP_UNREADABLE] == 1 && d.skipped_by[DS_SKIP_UNSUPPORTED] == 1,
              "reasons: corrupt %d huge %d unreadable %d unsupported %d", d.skipped_by[DS_SKIP_CORRUPT],
              d.skipped_by[DS_SKIP_HUGE], d.skipped_by[DS_SKIP_UNREADABLE],
              d.skipped_by[DS_SKIP_UNSUPPORTED]);
        CHECK(d.n_ignored_dirs == 3, "misc, 0_none and folder.png ignored: %d", d.n_ignored_dirs);
        int g = find_item(&d, "good.png"), m = find_item(&d, "more.png");
        CHECK(g >= 0 && d.items[g].repeats == 1 && strcmp(d.items[g].caption, "good image, test") == 0,
              "top-level image: repeats 1");
        CHECK(m >= 0 && d.items[m].repeats == 3 && strcmp(d.subsets[d.items[m].subset].name, "3_extra") == 0,
              "3_extra: repeats 3");
        CHECK(d.n_samples == 4, "samples %lld", (long long)d.n_samples);
        char *rep = report_of(&d);
        CHECK(
            strstr(rep, "2 images used (4 samples per epoch), 12 skipped") &&
                strstr(rep,
                       "skipped: 1 unreadable, 6 corrupt or truncated, 4 too large, 1 unsupported format") &&
                strstr(rep, "3 subfolders ignored"),
            "report:\n%s", rep);
        free(rep);
        dataset_free(&d);
    }
    CHECK(strstr(err, "huge_stb.png: skipped: 100000x100000 exceeds") &&
              strstr(err, "huge.bmp: skipped: 70000x70000 exceeds") &&
              strstr(err, "huge_side.png: skipped: 16385x8 exceeds") &&
              strstr(err, "huge_area.png: skipped: 9000x9000 exceeds") &&
              strstr(err, "gone.png: skipped: cannot open") &&
              strstr(err, "photo.webp: skipped: unsupported image format") && strstr(err, "misc: ignored") &&
              strstr(err, "0_none: ignored") && !strstr(err, "notes.md"),
          "warnings:\n%s", err);
    CHECK(rss1 - rss0 < (size_t)64 << 20, "huge images refused before decoding (peak RSS grew %zu MB)",
          (rss1 - rss0) >> 20);
    free(err);

    if (geteuid() != 0) { /* a file we may not read (root reads everything) */
        snprintf(p, sizeof p, "%s/3_extra/secret.png", mixed);
        write_png_fn(p, 8, 8, px_grey);
        chmod(p, 0);
        o.quiet = 1;
        CHECK(dataset_scan(&d, mixed, &o) == LS_OK && d.skipped_by[DS_SKIP_UNREADABLE] == 2,
              "unreadable file");
        dataset_free(&d);
        unlink(p);
    }
    free(allbad), free(mixed);
}

static void test_captions_missing_and_bad(void) {
    DatasetOptions o = opts(64);
    Dataset d;
    char *dir = tmp("cap"), p[1024];
    snprintf(p, sizeof p, "%s/5_red_foxes", dir);
    make_dir(p);
    snprintf(p, sizeof p, "%s/5_red_foxes/nocap.png", dir);
    write_png_fn(p, 64, 64, px_grey);
    write_captioned(dir, "5_red_foxes/emptycap", 64, 64, px_grey, "  \n");
    /* Latin-1 é, stray bytes, a cut sequence */
    write_captioned(dir, "5_red_foxes/utf8", 64, 64, px_grey,
                    "caf\xe9, ok\xff\xfe, \xe2\x82 end, good \xc3\xa9\xf0\x9f\x8e\xa8");
    /* BOM, CRLF, only the first line, a tab */
    write_captioned(dir, "5_red_foxes/multi", 64, 64, px_grey, "\xef\xbb\xbf first\tline , a \r\nsecond line\n");

    capture_begin();
    int rc = dataset_scan(&d, dir, &o);
    char *err = capture_end();
    CHECK(rc == LS_OK, "scan: %s", ls_last_error());
    if (rc == LS_OK) {
        int nc = find_item(&d, "nocap.png"), ec = find_item(&d, "emptycap.png");
        int u8 = find_item(&d, "utf8.png"), ml = find_item(&d, "multi.png");
        CHECK(
            strcmp(d.items[nc].caption, "red_foxes") == 0 && d.items[nc].caption_source == DS_CAPTION_FOLDER,
            "folder-name caption: '%s'", d.items[nc].caption);
        CHECK(strcmp(d.items[ec].caption, "red_foxes") == 0, "empty caption file → folder name");
        CHECK(d.n_missing_captions == 2, "missing %d", d.n_missing_captions);
        CHECK(strcmp(d.items[u8].caption,
                     "caf\xef\xbf\xbd, ok\xef\xbf\xbd\xef\xbf\xbd, \xef\xbf\xbd end, good "
                     "\xc3\xa9\xf0\x9f\x8e\xa8") == 0,
              "U+FFFD repair: '%s'", d.items[u8].caption);
        CHECK(d.n_bad_utf8 == 1, "bad utf8 count %d", d.n_bad_utf8);
        CHECK(strcmp(d.items[ml].caption, "first line , a") == 0, "first line: '%s'", d.items[ml].caption);
        dataset_free(&d);
    }
    CHECK(strstr(err, "nocap.png: no .txt caption file, using the folder name \"red_foxes\"") &&
              strstr(err, "emptycap.txt: empty caption") &&
              strstr(err, "utf8.txt: invalid UTF-8 in caption (4 sequences"),
          "warnings:\n%s", err);
    free(err);

    o.caption = "a fox";
    capture_begin();
    rc = dataset_scan(&d, dir, &o);
    err = capture_end();
    CHECK(rc == LS_OK, "scan --caption: %s", ls_last_error());
    if (rc == LS_OK) {
        int nc = find_item(&d, "nocap.png");
        CHECK(strcmp(d.items[nc].caption, "a fox") == 0 && d.items[nc].caption_source == DS_CAPTION_OPTION,
              "--caption fallback: '%s'", d.items[nc].caption);
        dataset_free(&d);
    }
    CHECK(strstr(err, "nocap.png: no .txt caption file, using --caption \"a fox\""), "warnings:\n%s", err);
    free(err);

    /* another caption extension, with kohya's missing-dot fix-up */
    o.caption = NULL, o.caption_ext = "caption", o.quiet = 1;
    snprintf(p, sizeof p, "%s/5_red_foxes/nocap.caption", dir);
    write_text(p, "from .caption");
    CHECK(dataset_scan(&d, dir, &o) == LS_OK, "scan .caption");
    CHECK(strcmp(d.items[find_item(&d, "nocap.png")].caption, "from .caption") == 0, "caption_ext");
    dataset_free(&d);
    /* ... and with the default .txt, that .caption file is pointed out, never silently ignored */
    o.caption_ext = NULL, o.quiet = 0;
    capture_begin();
    rc = dataset_scan(&d, dir, &o);
    err = capture_end();
    CHECK(rc == LS_OK && d.n_other_ext == 1, "other extension counted: %d", rc == LS_OK ? d.n_other_ext : -1);
    CHECK(strstr(err, "nocap.png: no .txt caption file") && strstr(err, "there is a .caption file"), "warning:\n%s",
          err);
    free(err);
    if (rc == LS_OK) {
        char *rep = report_of(&d);
        CHECK(strstr(rep, "pass --caption-ext .caption"), "report:\n%s", rep);
        free(rep);
        dataset_free(&d);
    }
    free(dir);
}

/* ---------------------------------------------------------------------------------------------- */
/* resize and crop                                                                                */
/* ---------------------------------------------------------------------------------------------- */

static uint8_t *gradient(int w, int h, int mul) { /* value = mul·x in every channel */
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) p[((size_t)y * w + x) * 3 + c] = (uint8_t)(mul * x);
    return p;
}

static float V(double v) { return (float)v / 127.5f - 1.0f; } /* the loader's mapping */

static void test_resize(void) {
    /* constants stay constant (down, up, mixed, non-square targets) */
    static const int sizes[][4] = {{100, 60, 64, 64}, {20, 30, 64, 64}, {300, 17, 64, 128}, {64, 64, 96, 32}};
    for (int s = 0; s < 4; s++) {
        int w = sizes[s][0], h = sizes[s][1], tw = sizes[s][2], th = sizes[s][3];
        uint8_t *img = malloc((size_t)w * h * 3);
        for (int i = 0; i < w * h; i++) img[3 * i] = 77, img[3 * i + 1] = 150, img[3 * i + 2] = 200;
        float *out = malloc((size_t)3 * tw * th * sizeof(float));
        dataset_resize_crop(img, w, h, tw, th, 0, out);
        double err = 0;
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < tw * th; k++)
                err = fmax(err, fabs(out[c * tw * th + k] - V(c == 0 ? 77 : c == 1 ? 150 : 200)));
        CHECK(err < 2e-6, "constant %dx%d -> %dx%d: max error %g", w, h, tw, th, err);
        free(img), free(out);
    }
    float *out = malloc(3 * 64 * 64 * sizeof(float)), *out2 = malloc(3 * 64 * 64 * sizeof(float));
    double err;
    /* 1:1 centre crop copies pixels: 256 wide → the middle 64 columns (offset 96) */
    uint8_t *g = gradient(256, 64, 1);
    dataset_resize_crop(g, 256, 64, 64, 64, 0, out);
    err = 0;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) err = fmax(err, fabs(out[y * 64 + x] - V(96 + x)));
    CHECK(err == 0, "1:1 crop exact, error %g", err);
    free(g);
    g = gradient(65, 64, 3); /* an odd overflow floors the offset: columns 0..63, no half-pixel blur */
    dataset_resize_crop(g, 65, 64, 64, 64, 0, out);
    err = 0;
    for (int x = 0; x < 64; x++) err = fmax(err, fabs(out[5 * 64 + x] - V(3 * x)));
    CHECK(err == 0, "odd overflow crop exact, error %g", err);
    free(g);
    /* area average, integer factor: 256 → 64, out[j] = mean(4j .. 4j+3) = 4j + 1.5 */
    g = gradient(256, 256, 1);
    dataset_resize_crop(g, 256, 256, 64, 64, 0, out);
    err = 0;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) err = fmax(err, fabs(out[y * 64 + x] - V(4 * x + 1.5)));
    CHECK(err < 1e-5, "area 4:1 error %g", err);
    free(g);
    /* area average, fractional factor 100 → 64 (1.5625 source px each): exact coverage integral */
    g = gradient(100, 100, 2);
    dataset_resize_crop(g, 100, 100, 64, 64, 0, out);
    err = 0;
    for (int j = 0; j < 64; j++) {
        double lo = j * 1.5625, hi = lo + 1.5625, acc = 0;
        for (int i = 0; i < 100; i++) acc += fmax(0, fmin(hi, i + 1.0) - fmax(lo, (double)i)) * 2 * i;
        err = fmax(err, fabs(out[17 * 64 + j] - V(acc / 1.5625)));
    }
    CHECK(err < 1e-5, "area 1.5625:1 error %g", err);
    free(g);
    /* bilinear 2× upscale: 32 → 64, half-pixel centres: value 8·((j+0.5)/2 − 0.5) inside, clamped edges */
    g = gradient(32, 32, 8);
    dataset_resize_crop(g, 32, 32, 64, 64, 0, out);
    err = 0;
    for (int j = 1; j < 63; j++) err = fmax(err, fabs(out[40 * 64 + j] - V(4.0 * j - 2.0)));
    CHECK(err < 1e-5 && out[0] == V(0) && out[63] == V(248), "bilinear 2x error %g, edges %g %g", err, out[0],
          out[63]);
    free(g);
    /* flip mirrors the crop; black → −1 and white → +1 exactly; random values stay in range */
    g = malloc(90 * 70 * 3);
    for (int i = 0; i < 90 * 70 * 3; i++) g[i] = (uint8_t)(i * 2654435761u >> 24);
    dataset_resize_crop(g, 90, 70, 64, 64, 0, out);
    dataset_resize_crop(g, 90, 70, 64, 64, 1, out2);
    int mirror = 1, range = 1;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++) {
                mirror &= out2[c * 4096 + y * 64 + x] == out[c * 4096 + y * 64 + 63 - x];
                range &= out[c * 4096 + y * 64 + x] >= -1 && out[c * 4096 + y * 64 + x] <= 1;
            }
    CHECK(mirror && range, "flip mirrors, values in range");
    memset(g, 0, 90 * 70 * 3);
    dataset_resize_crop(g, 90, 70, 64, 64, 0, out);
    CHECK(out[0] == -1.0f && out[3 * 4096 - 1] == -1.0f, "black → -1");
    memset(g, 255, 90 * 70 * 3);
    dataset_resize_crop(g, 90, 70, 64, 64, 0, out);
    CHECK(out[0] == 1.0f && out[3 * 4096 - 1] == 1.0f, "white → 1");
    free(g), free(out), free(out2);
}

/* ---------------------------------------------------------------------------------------------- */
/* buckets                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

static void test_buckets(void) {
    DatasetOptions o = opts(512);
    o.buckets = 1;
    int *list, n = dataset_bucket_list(&o, &list), ok = 1, has[7] = {0};
    static const int want[7][2] = {{512, 512},  {384, 640}, {448, 576}, {320, 768},
                                   {256, 1024}, {640, 384}, {1024, 256}};
    for (int i = 0; i < n; i++) {
        int w = list[2 * i], h = list[2 * i + 1];
        ok &= w % 64 == 0 && h % 64 == 0 && w >= 256 && h >= 256 && w <= 1024 && h <= 1024 &&
              w * h <= 512 * 512;
        for (int k = 0; k < 7; k++) has[k] |= w == want[k][0] && h == want[k][1];
    }
    CHECK(n == 17 && ok, "kohya's 512 list: %d buckets", n);
    for (int k = 0; k < 7; k++) CHECK(has[k], "bucket %dx%d listed", want[k][0], want[k][1]);
    free(list);

    static const int cases[][4] = {{512, 512, 512, 512},   {768, 512, 640, 384},  {512, 768, 384, 640},
                                   {1000, 250, 1024, 256}, {300, 1000, 256, 832}, {100, 100, 512, 512},
                                   {1920, 1080, 640, 384}, {1080, 1920, 384, 640}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int bw, bh;
        dataset_bucket_for(&o, cases[k][0], cases[k][1], &bw, &bh);
        CHECK(bw == cases[k][2] && bh == cases[k][3], "%dx%d -> %dx%d, want %dx%d", cases[k][0], cases[k][1],
              bw, bh, cases[k][2], cases[k][3]);
    }
    int sym = 1; /* a transposed image gets the transposed bucket */
    for (int w = 50; w < 2000; w += 37)
        for (int h = 50; h < 2000; h += 41) {
            int a, b, c, e;
            dataset_bucket_for(&o, w, h, &a, &b);
            dataset_bucket_for(&o, h, w, &c, &e);
            sym &= a == e && b == c;
        }
    CHECK(sym, "transpose symmetry");

    o.bucket_no_upscale = 1;
    static const int nu[][4] = {{100, 100, 64, 64},    {2000, 1000, 704, 320}, {30, 30, 64, 64},
                                {4000, 100, 1024, 64}, {512, 512, 512, 512},   {700, 300, 640, 256}};
    for (size_t k = 0; k < sizeof nu / sizeof *nu; k++) {
        int bw, bh;
        dataset_bucket_for(&o, nu[k][0], nu[k][1], &bw, &bh);
        CHECK(bw == nu[k][2] && bh == nu[k][3], "no_upscale %dx%d -> %dx%d, want %dx%d", nu[k][0], nu[k][1],
              bw, bh, nu[k][2], nu[k][3]);
    }
    o = opts(512);
    int bw, bh;
    dataset_bucket_for(&o, 300, 100, &bw, &bh);
    CHECK(bw == 512 && bh == 512, "no buckets: the square");

    o.buckets = 1, o.bucket_step = 60;
    CHECK(dataset_check_options(&o) == LS_ERR && strstr(ls_last_error(), "multiple of 8"), "step 60: %s",
          ls_last_error());
    o.bucket_step = 64, o.min_bucket = 768, o.max_bucket = 512;
    CHECK(dataset_check_options(&o) == LS_ERR, "min > max");
    o.min_bucket = 0, o.max_bucket = 0, o.keep_tokens = -1;
    CHECK(dataset_check_options(&o) == LS_ERR, "negative keep_tokens");
}

/* ---------------------------------------------------------------------------------------------- */
/* captions per step                                                                              */
/* ---------------------------------------------------------------------------------------------- */

static void test_caption_processing(void) {
    char *dir = tmp("10_style");
    make_dir(dir);
    write_captioned(dir, "a", 64, 64, px_grey,
                    "style, red, blue, green, yellow, purple, orange, tags with  spaces ,, ");
    write_captioned(dir, "b", 64, 64, px_grey, "red, sks, blue");
    write_captioned(dir, "c", 64, 64, px_grey, "a watercolor painting of a fox in the snow");

    DatasetOptions o = opts(64);
    Dataset d;
    char out[512];
    CHECK(dataset_scan(&d, dir, &o) == LS_OK && d.items[0].repeats == 10, "scan: %s", ls_last_error());
    const char *plain = "style, red, blue, green, yellow, purple, orange, tags with  spaces";
    CHECK(dataset_caption(&d, 0, 1, 2, out, sizeof out) == (int)strlen(plain) && strcmp(out, plain) == 0,
          "plain: '%s'", out);
    CHECK(dataset_caption(&d, 2, 1, 2, out, sizeof out) > 0 &&
              strcmp(out, "a watercolor painting of a fox in the snow") == 0,
          "sentence: '%s'", out);
    dataset_free(&d);

    o.trigger = " sks ";
    dataset_scan(&d, dir, &o);
    dataset_caption(&d, 0, 1, 2, out, sizeof out);
    CHECK(strncmp(out, "sks, style, red, ", 17) == 0, "trigger first: '%s'", out);
    dataset_caption(&d, 1, 1, 2, out, sizeof out);
    CHECK(strcmp(out, "sks, red, blue") == 0, "trigger moved, not doubled: '%s'", out);
    dataset_caption(&d, 2, 1, 2, out, sizeof out);
    CHECK(strcmp(out, "sks, a watercolor painting of a fox in the snow") == 0, "trigger + sentence: '%s'",
          out);
    dataset_free(&d);

    o.shuffle_tags = 1, o.keep_tokens = 1;
    dataset_scan(&d, dir, &o);
    static const char *const rest[] = {
        "red", "blue", "green", "yellow", "purple", "orange", "tags with  spaces"};
    int all_ok = 1, distinct = 0, moved = 0;
    char first[512] = "", again[512];
    for (uint64_t step = 0; step < 50; step++) {
        int len = dataset_caption(&d, 0, 42, step, out, sizeof out);
        all_ok &= len == (int)strlen("sks, ") + (int)strlen(plain) && strncmp(out, "sks, style, ", 12) == 0;
        for (int k = 0; k < 7; k++) { /* every tag exactly once */
            char pat[64];
            snprintf(pat, sizeof pat, ", %s", rest[k]);
            char *at = strstr(out, pat);
            all_ok &= at && (at[strlen(pat)] == ',' || at[strlen(pat)] == 0) && !strstr(at + 1, pat);
        }
        dataset_caption(&d, 0, 42, step, again, sizeof again);
        all_ok &= strcmp(out, again) == 0;
        if (step == 0) strcpy(first, out);
        else distinct += strcmp(out, first) != 0;
        moved += strncmp(out, "sks, style, red, blue", 21) != 0;
    }
    CHECK(all_ok, "shuffle keeps trigger + first tag, every tag once, deterministic");
    CHECK(distinct > 40 && moved > 40, "shuffle varies with the step (%d distinct of 49)", distinct);
    dataset_caption(&d, 0, 43, 0, again, sizeof again);
    CHECK(strcmp(first, again) != 0, "another seed, another order");
    /* a pinned value: the order is a portable function of (seed, step, item) */
    CHECK(strcmp(first, "sks, style, tags with  spaces, green, yellow, blue, red, orange, purple") == 0,
          "pinned order: '%s'", first);
    CHECK(dataset_caption(&d, 0, 42, 0, out, 20) == LS_ERR && strstr(ls_last_error(), "does not fit"),
          "small cap");
    int bound = dataset_caption_bound(&d, 0);
    CHECK(dataset_caption(&d, 0, 42, 0, out, bound) > 0, "bound %d suffices", bound);
    dataset_free(&d);

    o.keep_tokens = 20; /* more than there are tags: nothing moves */
    dataset_scan(&d, dir, &o);
    dataset_caption(&d, 0, 42, 7, out, sizeof out);
    CHECK(strcmp(out + 5, plain) == 0, "keep_tokens > tags: '%s'", out);
    dataset_free(&d);

    /* dropout: the whole caption (trigger too) with p = 0.3; tags after the kept one with p = 0.5 */
    o.keep_tokens = 1, o.caption_dropout = 0.3f, o.tag_dropout = 0.5f;
    CHECK(dataset_check_options(&o) == LS_OK, "dropout options valid");
    dataset_scan(&d, dir, &o);
    int empty = 0, tags = 0, kept_ok = 1, det = 1;
    for (uint64_t step = 0; step < 400; step++) {
        int len = dataset_caption(&d, 0, 42, step, out, sizeof out);
        dataset_caption(&d, 0, 42, step, again, sizeof again);
        det &= strcmp(out, again) == 0;
        if (len == 0) {
            empty++;
            continue;
        }
        kept_ok &= strncmp(out, "sks, style", 10) == 0; /* trigger and keep_tokens never dropped */
        for (const char *q = out; (q = strchr(q, ',')); q++) tags++;
    }
    /* 400 draws: 120 ± 4.3σ empty; of the 7 droppable tags, 3.5 ± … kept per non-empty caption */
    double mean_kept = (double)tags / (400 - empty) - 1.0; /* commas − 1 = droppable tags kept */
    CHECK(det && kept_ok && empty > 80 && empty < 160 && mean_kept > 3.0 && mean_kept < 4.0,
          "dropout: %d of 400 empty (p 0.3), %.2f of 7 tags kept (p 0.5), deterministic %d, kept first %d", empty,
          mean_kept, det, kept_ok);
    CHECK(dataset_caption(&d, 0, 42, DATASET_CAPTION_PLAIN, out, sizeof out) > 0 && strcmp(out + 5, plain) == 0,
          "DATASET_CAPTION_PLAIN: no shuffle, no dropout: '%s'", out);
    dataset_free(&d);
    o.caption_dropout = 1.5f;
    CHECK(dataset_check_options(&o) == LS_ERR && strstr(ls_last_error(), "--caption-dropout"), "bad rate: %s",
          ls_last_error());
    o.caption_dropout = 0, o.tag_dropout = 1;
    CHECK(dataset_check_options(&o) == LS_ERR && strstr(ls_last_error(), "--tag-dropout"), "bad rate: %s",
          ls_last_error());
    free(dir);
}

/* ---------------------------------------------------------------------------------------------- */
/* epoch order                                                                                    */
/* ---------------------------------------------------------------------------------------------- */

static void test_epoch(void) {
    char *dir = tmp("epoch"), p[1024];
    static const struct {
        const char *name;
        int w, h;
    } files[] = {{"2_sq/a.png", 64, 64},   {"2_sq/b.png", 70, 66},    {"2_sq/c.png", 80, 80},
                 {"3_wide/d.png", 96, 48}, {"3_wide/e.png", 120, 50}, {"1_tall/f.png", 48, 96}};
    for (size_t k = 0; k < 6; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[k].name);
        *strrchr(p, '/') = 0;
        make_dir(p);
        snprintf(p, sizeof p, "%s/%s", dir, files[k].name);
        write_png_fn(p, files[k].w, files[k].h, px_pattern);
    }
    DatasetOptions o = opts(64);
    o.buckets = 1, o.bucket_step = 32, o.quiet = 1;
    Dataset d;
    CHECK(dataset_scan(&d, dir, &o) == LS_OK, "scan: %s", ls_last_error());
    CHECK(d.n_items == 6 && d.n_samples == 13 && d.n_buckets == 3, "items %d samples %lld buckets %d",
          d.n_items, (long long)d.n_samples, d.n_buckets);
    DatasetEpoch e, e2, e3;
    CHECK(dataset_epoch(&d, 7, 0, 2, &e) == LS_OK, "epoch: %s", ls_last_error());
    CHECK(e.n == 13 && e.n_batches == 7 && e.batch_start[0] == 0 && e.batch_start[7] == 13,
          "13 samples in 7 batches (%d)", e.n_batches);
    int counts[6] = {0}, one_bucket = 1, flips = 0;
    for (int b = 0; b < e.n_batches; b++)
        for (int k = e.batch_start[b]; k < e.batch_start[b + 1]; k++) {
            counts[e.items[k]]++;
            one_bucket &= d.items[e.items[k]].bucket == d.items[e.items[e.batch_start[b]]].bucket;
            flips += e.flip[k];
        }
    int rep_ok = 1;
    for (int i = 0; i < 6; i++) rep_ok &= counts[i] == d.items[i].repeats;
    CHECK(rep_ok, "every item appears `repeats` times");
    CHECK(one_bucket, "each batch holds one bucket");
    CHECK(flips == 0, "no flips without --flip");
    dataset_epoch(&d, 7, 0, 2, &e2);
    dataset_epoch(&d, 7, 1, 2, &e3);
    CHECK(memcmp(e.items, e2.items, 13 * sizeof(int)) == 0 &&
              memcmp(e.batch_start, e2.batch_start, 8 * sizeof(int)) == 0,
          "same seed and epoch → same order");
    CHECK(memcmp(e.items, e3.items, 13 * sizeof(int)) != 0, "next epoch → another order");
    dataset_epoch_free(&e), dataset_epoch_free(&e2), dataset_epoch_free(&e3);
    CHECK(dataset_epoch(&d, 7, 0, 0, &e) == LS_ERR, "batch size 0");
    dataset_free(&d);

    o.flip = 1;
    dataset_scan(&d, dir, &o);
    dataset_epoch(&d, 7, 0, 4, &e);
    dataset_epoch(&d, 7, 0, 4, &e2);
    flips = 0;
    for (int k = 0; k < e.n; k++) flips += e.flip[k];
    CHECK(flips > 0 && flips < 13 && memcmp(e.flip, e2.flip, 13) == 0, "--flip draws %d of 13, deterministic",
          flips);
    CHECK(e.n_batches == 5, "batch 4: 2 + 2 + 1 batches (%d)", e.n_batches);
    dataset_epoch_free(&e), dataset_epoch_free(&e2);
    dataset_free(&d);

    /* validation hold-out: round(0.34·6) = 2 items, chosen by seed, in no epoch */
    o.flip = 0;
    dataset_scan(&d, dir, &o);
    int *held = NULL, nh = 0, *held2 = NULL, nh2 = 0;
    CHECK(dataset_hold_out(&d, 0.34, 5, &held, &nh) == LS_OK && nh == 2 && held[0] < held[1], "hold out: %d (%s)",
          nh, ls_last_error());
    int64_t want = 13;
    for (int j = 0; j < nh; j++) want -= (int64_t[]){1, 2, 2, 2, 3, 3}[held[j]] /* items in path order: 1_tall, 2_sq ×3, 3_wide ×2 */;
    CHECK(d.n_samples == want && d.n_held_out == 2, "samples %lld, expected %lld", (long long)d.n_samples,
          (long long)want);
    int leaked = 0;
    for (int ep = 0; ep < 3; ep++) {
        CHECK(dataset_epoch(&d, 7, (uint64_t)ep, 2, &e) == LS_OK && e.n == (int)want, "epoch %d: %d samples", ep, e.n);
        for (int k = 0; k < e.n; k++) leaked += e.items[k] == held[0] || e.items[k] == held[1];
        dataset_epoch_free(&e);
    }
    CHECK(leaked == 0, "held-out items never appear in an epoch (%d times)", leaked);
    Dataset d2;
    dataset_scan(&d2, dir, &o);
    CHECK(dataset_hold_out(&d2, 0.34, 5, &held2, &nh2) == LS_OK && nh2 == 2 && !memcmp(held, held2, 2 * sizeof(int)),
          "same seed, same hold-out");
    free(held2);
    dataset_free(&d2);
    dataset_scan(&d2, dir, &o);
    CHECK(dataset_hold_out(&d2, 0.9, 5, &held2, &nh2) == LS_OK && nh2 == 5, "0.9 of 6 → 5 held out (%d)", nh2);
    free(held2);
    dataset_free(&d2);
    dataset_scan(&d2, dir, &o);
    CHECK(dataset_hold_out(&d2, 0.99, 5, &held2, &nh2) == LS_ERR && strstr(ls_last_error(), "no training image"),
          "0.99 of 6 leaves nothing: %s", ls_last_error());
    CHECK(dataset_hold_out(&d2, 1.5, 5, &held2, &nh2) == LS_ERR && strstr(ls_last_error(), "(0, 1)"), "1.5: %s",
          ls_last_error());
    dataset_free(&d2);
    free(held);
    dataset_free(&d);
    free(dir);
}

/* ---------------------------------------------------------------------------------------------- */
/* cache                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

static void key_of(const char *dir, const DatasetOptions *o, const char *name, int flip, const char *model,
                   char key[65]) {
    Dataset d;
    LS_ASSERT(dataset_scan(&d, dir, o) == LS_OK);
    int i = find_item(&d, name);
    LS_ASSERT(i >= 0);
    LS_ASSERT(dataset_cache_key(&d, i, flip, model, key) == LS_OK);
    dataset_free(&d);
}

static void test_cache(void) {
    char *a = tmp("keys_a"), *b = tmp("keys_b/4_moved"), p[1024];
    make_dir(a), make_dir(b);
    write_captioned(a, "img", 80, 64, px_pattern, "pastel, fox");
    write_captioned(b, "other", 80, 64, px_pattern, "pastel, fox"); /* same bytes and caption, another path and name */

    DatasetOptions o = opts(64);
    o.quiet = 1;
    char k0[65], k[65];
    key_of(a, &o, "img.png", 0, "model-1", k0);
    CHECK(strlen(k0) == 64 && strspn(k0, "0123456789abcdef") == 64, "hex key %s", k0);
    key_of(a, &o, "img.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) == 0, "stable across scans");
    key_of(b, &o, "other.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) == 0, "path, name and repeats are not part of the key");
    DatasetOptions o2 = o;
    o2.trigger = "sks", o2.shuffle_tags = 1, o2.keep_tokens = 1, o2.flip = 1;
    key_of(a, &o2, "img.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) == 0, "per-step caption options are not part of it");
    key_of(a, &o, "img.png", 1, "model-1", k);
    CHECK(strcmp(k, k0) != 0, "flip changes it");
    key_of(a, &o, "img.png", 0, "model-2", k);
    CHECK(strcmp(k, k0) != 0, "model hash changes it");
    o2 = opts(128);
    o2.quiet = 1;
    key_of(a, &o2, "img.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) != 0, "resolution changes it");
    o2 = opts(64);
    o2.quiet = 1, o2.buckets = 1, o2.bucket_step = 32;
    key_of(a, &o2, "img.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) == 0, "buckets that give the same 64x64 target keep it");
    snprintf(p, sizeof p, "%s/img.txt", a);
    write_text(p, "pastel, cat");
    key_of(a, &o, "img.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) != 0, "caption changes it");
    write_text(p, "pastel, fox");
    key_of(a, &o, "img.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) == 0, "caption restored, key restored");
    snprintf(p, sizeof p, "%s/img.png", a); /* same pixels, different bytes (a text chunk) */
    Image img = {80, 64, 3, malloc(80 * 64 * 3)};
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 80; x++)
            for (int c = 0; c < 3; c++) img.data[(y * 80 + x) * 3 + c] = (uint8_t)px_pattern(x, y, c);
    const char *txt[2] = {"comment", "x"};
    image_write_png(p, &img, txt, 1);
    key_of(a, &o, "img.png", 0, "model-1", k);
    CHECK(strcmp(k, k0) != 0, "image bytes change it");
    free(img.data);

    /* round trip */
    float lat[4 * 8 * 6], back[4 * 8 * 6];
    for (int i = 0; i < 4 * 8 * 6; i++) lat[i] = sinf((float)i * 0.37f) * 3.0f;
    char *cdir = tmp("out/cache"), *path = dataset_cache_path(cdir, k0);
    CHECK(strstr(path, "/out/cache/") && strstr(path, k0) && strstr(path, ".safetensors"), "path %s", path);
    CHECK(dataset_cache_read(path, k0, back, 4, 8, 6) == 0, "absent → miss");
    CHECK(dataset_cache_write(path, k0, "img.png", lat, 4, 8, 6) == LS_OK, "write: %s", ls_last_error());
    memset(back, 0, sizeof back);
    CHECK(dataset_cache_read(path, k0, back, 4, 8, 6) == 1 && memcmp(back, lat, sizeof lat) == 0,
          "round trip");
    CHECK(dataset_cache_read(path, k, back, 4, 8, 6) == 0, "another key → miss");
    CHECK(dataset_cache_read(path, k0, back, 4, 6, 8) == 0, "another shape → miss");
    StFile f;
    CHECK(st_open(&f, path) == LS_OK, "cache file is safetensors");
    CHECK(st_meta_get(&f, "key") && strcmp(st_meta_get(&f, "key"), k0) == 0 &&
              st_meta_get(&f, "lorastyle_cache") && strcmp(st_meta_get(&f, "size"), "6x8") == 0,
          "metadata");
    st_close(&f);
    size_t len;
    char *raw = ls_read_file(path, &len);
    write_bytes(path, raw, len - 10); /* truncated: a miss with a warning, never a crash */
    free(raw);
    capture_begin();
    int hit = dataset_cache_read(path, k0, back, 4, 8, 6);
    char *err = capture_end();
    CHECK(hit == 0 && strstr(err, path) && strstr(err, "recomputing"), "corrupt → miss + warning: %s", err);
    free(err);
    free(path), free(cdir), free(a), free(b);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_dataset <fixtures_dir> [lorastyle]\n");
        return 2;
    }
    snprintf(g_sample, sizeof g_sample, "%s/../../datasets/sample_style", argv[1]);
    if (test_scratch_dir(g_tmp) < 0) return test_summary();
    double t0 = ls_time();
    test_sample_set();
    test_bad_folders();
    test_bad_images();
    test_captions_missing_and_bad();
    test_resize();
    test_buckets();
    test_caption_processing();
    test_epoch();
    test_cache();
    printf("(%.2f s)\n", ls_time() - t0);
    test_remove_dir(g_tmp);
    return test_summary();
}
