/* test_grid.c — the bitmap font (metrics, every glyph distinct, scaling, UTF-8 as '?', clipping), word
 * wrap and "..." truncation, and grid_compose: output size, exact cell placement, where label text lands,
 * errors for mismatched cells, and a PNG round trip.
 *
 * Usage: test_grid <fixtures_dir> [lorastyle_binary]   (prints "N passed, M failed")
 *        test_grid --write-example PATH                 (writes the sample grid, samples/grid_example.png)
 */
#include "common.h" /* defines: ls_last_error, ls_path_join */
#include "font.h"   /* defines: font_*, FontLines, FONT_* metrics */
#include "grid.h"   /* defines: grid_compose, grid_layout, GridLayout */
#include "image.h"  /* defines: Image, image_write_png, image_load, image_free */

#include <string.h>
#include <unistd.h>

#include "testutil.h" // defines: CHECK, test_summary

/* ---- helpers ---- */

static void image_new(Image *img, int w, int h, uint8_t fill) {
    img->w = w, img->h = h, img->c = 3;
    img->data = mallocCheck((size_t)w * h * 3);
    memset(img->data, fill, (size_t)w * h * 3);
}

static const uint8_t *px(const Image *img, int x, int y) { return img->data + ((size_t)y * img->w + x) * 3; }
static int is_white(const uint8_t *p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }
static int is_dark(const uint8_t *p) { return p[0] < 128 && p[1] < 128 && p[2] < 128; }

/* Synthetic cell: a gradient tinted by its index, never white, different for every cell. */
static void make_cell(Image *img, int w, int h, int index) {
    image_new(img, w, h, 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->data + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(40 + 180 * x / w);
            p[1] = (uint8_t)(40 + 180 * y / h);
            p[2] = (uint8_t)(30 + 45 * (index % 5));
        }
}

/* Count dark pixels in [x0,x1)×[y0,y1). */
static int count_dark(const Image *img, int x0, int y0, int x1, int y1) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) n += is_dark(px(img, x, y));
    return n;
}

/* Render s at scale on a fresh white image just large enough (plus a margin of one advance). */
static void render(Image *img, const char *s, int scale) {
    image_new(img, font_text_width(s, scale) + FONT_ADVANCE * scale, font_line_height(scale) * 2, 255);
    font_draw_text(img, 0, 0, s, scale, 0, 0, 0);
}

static int same_image(const Image *a, const Image *b) {
    return a->w == b->w && a->h == b->h && a->c == b->c && memcmp(a->data, b->data, (size_t)a->w * a->h * a->c) == 0;
}

/* Width in pixels of n characters at scale (independent of font.c's formula). */
static int nchars(int n, int scale) { return (n * FONT_ADVANCE - (FONT_ADVANCE - FONT_GLYPH_W)) * scale; }

/* ---- font ---- */

static void test_metrics(void) {
    CHECK(font_text_width("", 1) == 0, "empty");
    CHECK(font_text_width(NULL, 1) == 0, "NULL");
    CHECK(font_text_width("A", 1) == 5, "got %d", font_text_width("A", 1));
    CHECK(font_text_width("AB", 1) == 11, "got %d", font_text_width("AB", 1));
    CHECK(font_text_width("AB", 3) == 33, "got %d", font_text_width("AB", 3));
    CHECK(font_text_width("abc\nA", 1) == 17, "widest line: got %d", font_text_width("abc\nA", 1));
    CHECK(font_text_width("A\nabcd", 2) == nchars(4, 2), "got %d", font_text_width("A\nabcd", 2));
    CHECK(font_line_height(1) == 11 && font_line_height(2) == 22, "line height");
    CHECK(font_line_height(0) == 11, "scale < 1 counts as 1");
}

static void test_glyphs(void) {
    /* Each glyph rendered alone at scale 1 into a 6×11 box: its bitmap as 66 bytes. */
    enum { W = FONT_ADVANCE, H = FONT_LINE_H };
    static uint8_t bits[95][W * H];
    int outside = 0, empty = 0;
    for (int c = 32; c <= 126; c++) {
        char s[2] = {(char)c, 0};
        Image img;
        image_new(&img, W, H, 255);
        font_draw_text(&img, 0, 0, s, 1, 0, 0, 0);
        int ink = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int on = !is_white(px(&img, x, y));
                bits[c - 32][y * W + x] = (uint8_t)on;
                ink += on;
                if (on && (x >= FONT_GLYPH_W || y >= FONT_GLYPH_H)) outside++;
                if (on && !(px(&img, x, y)[0] == 0 && px(&img, x, y)[1] == 0 && px(&img, x, y)[2] == 0))
                    outside++; /* a pixel drawn in anything but the requested colour */
            }
        if ((c == ' ') != (ink == 0)) empty++;
        image_free(&img);
    }
    CHECK(outside == 0, "%d pixels outside the 5x9 glyph box or in the wrong colour", outside);
    CHECK(empty == 0, "%d glyphs: space should be blank and every other glyph visible", empty);
    int same = 0;
    for (int a = 0; a < 95; a++)
        for (int b = a + 1; b < 95; b++)
            if (memcmp(bits[a], bits[b], sizeof bits[a]) == 0) {
                same++;
                printf("  glyphs '%c' and '%c' are identical\n", a + 32, b + 32);
            }
    CHECK(same == 0, "%d pairs of identical glyphs among the 4465 pairs", same);
}

/* Scale k must be scale 1 with every pixel blown up to a k×k block. */
static void test_scaling(void) {
    const char *s = "Ag{y}";
    Image one, three;
    render(&one, s, 1);
    render(&three, s, 3);
    int bad = 0;
    for (int y = 0; y < three.h; y++)
        for (int x = 0; x < three.w; x++) bad += memcmp(px(&three, x, y), px(&one, x / 3, y / 3), 3) != 0;
    CHECK(three.w == 3 * one.w && three.h == 3 * one.h && bad == 0, "%d pixels differ from 3x nearest", bad);
    image_free(&one);
    image_free(&three);
}

/* Non-ASCII code points and invalid bytes draw as one '?' each. */
static void test_non_ascii(void) {
    Image q, t;
    render(&q, "?", 2);
    const char *cases[] = {"\xc3\xa9" /* é */, "\xe6\x97\xa5" /* 日 */, "\xf0\x9f\x98\x80" /* emoji */, "\xff",
                           "\x01"};
    for (int i = 0; i < 5; i++) {
        render(&t, cases[i], 2);
        CHECK(same_image(&q, &t), "case %d does not draw as '?'", i);
        CHECK(font_text_width(cases[i], 2) == nchars(1, 2), "case %d width %d", i, font_text_width(cases[i], 2));
        image_free(&t);
    }
    image_free(&q);
    CHECK(font_text_width("\xe6\x97\xa5\xe6\x9c\xac", 1) == nchars(2, 1), "two code points, two glyphs");
    CHECK(font_text_width("\xe6\x97", 1) == nchars(2, 1), "truncated sequence: each byte a '?'");
    Image a, b;
    render(&a, "a\tb", 1);
    render(&b, "a b", 1);
    CHECK(same_image(&a, &b), "tab draws as a space");
    image_free(&a);
    image_free(&b);
}

/* Drawing partly outside the image clips without touching memory outside it. */
static void test_clipping(void) {
    Image big, small;
    image_new(&big, 40, 30, 255);
    image_new(&small, 10, 8, 255);
    font_draw_text(&big, 10, 10, "W@g", 2, 0, 0, 0);
    font_draw_text(&small, -5, -6, "W@g", 2, 0, 0, 0); /* same text, shifted by (-15, -16) */
    int bad = 0;
    for (int y = 0; y < small.h; y++)
        for (int x = 0; x < small.w; x++) bad += memcmp(px(&small, x, y), px(&big, x + 15, y + 16), 3) != 0;
    CHECK(bad == 0, "%d clipped pixels differ", bad);
    font_draw_text(&small, 1000, -1000, "far away", 3, 0, 0, 0);
    font_draw_text(&small, -100000, 2, "far left", 3, 0, 0, 0);
    CHECK(1, "far-off text does not crash");
    image_free(&big);
    image_free(&small);
}

/* ---- wrap ---- */

static int lines_fit(const FontLines *fl, int max_width, int scale) {
    for (int i = 0; i < fl->n; i++)
        if (font_text_width(fl->lines[i], scale) > max_width) return 0;
    return 1;
}

static void test_wrap(void) {
    FontLines fl;
    font_wrap(&fl, "a b c", 1000, 1, 0);
    CHECK(fl.n == 1 && strcmp(fl.lines[0], "a b c") == 0, "short text stays on one line");
    font_lines_free(&fl);

    /* A prompt at 12 characters per line: greedy, within width, the words all kept in order. */
    const char *prompt = "a watercolor painting of a fox in the snow, highly detailed, soft light";
    int width = nchars(12, 2);
    font_wrap(&fl, prompt, width, 2, 0);
    char joined[256] = "";
    int greedy = 1;
    for (int i = 0; i < fl.n; i++) {
        if (i) strcat(joined, " ");
        strcat(joined, fl.lines[i]);
        if (i + 1 < fl.n) { /* the next line's first word would not have fitted */
            size_t first = strcspn(fl.lines[i + 1], " ");
            greedy &= strlen(fl.lines[i]) + 1 + first > 12;
        }
    }
    CHECK(fl.n == 6, "prompt wraps into %d lines", fl.n);
    CHECK(lines_fit(&fl, width, 2), "a line is wider than %d", width);
    CHECK(strcmp(joined, prompt) == 0, "rejoined: '%s'", joined);
    CHECK(greedy, "wrapping is not greedy");
    CHECK(fl.n >= 1 && strcmp(fl.lines[0], "a watercolor") == 0, "first line '%s'", fl.n ? fl.lines[0] : "");
    char first[64];
    snprintf(first, sizeof first, "%s", fl.n ? fl.lines[0] : "");
    font_lines_free(&fl);

    /* Too many lines: keep max_lines, end with "...", still within width. */
    font_wrap(&fl, prompt, width, 2, 2);
    CHECK(fl.n == 2, "truncated to %d lines", fl.n);
    if (fl.n == 2) {
        size_t len = strlen(fl.lines[1]);
        CHECK(len >= 3 && strcmp(fl.lines[1] + len - 3, "...") == 0, "last line '%s'", fl.lines[1]);
        CHECK(strcmp(fl.lines[0], first) == 0, "first line changed: '%s'", fl.lines[0]);
        CHECK(strcmp(fl.lines[1], "painting...") == 0, "last line '%s'", fl.lines[1]);
        CHECK(lines_fit(&fl, width, 2), "truncated line too wide");
    }
    font_lines_free(&fl);
    font_wrap(&fl, prompt, width, 2, 6);
    CHECK(fl.n == 6 && !strstr(fl.lines[5], "..."), "exactly max_lines: no ellipsis");
    font_lines_free(&fl);

    /* A word longer than a line is split between characters. */
    font_wrap(&fl, "abcdefghijklmnopqrstuvwxyz", nchars(10, 1), 1, 0);
    CHECK(fl.n == 3 && !strcmp(fl.lines[0], "abcdefghij") && !strcmp(fl.lines[1], "klmnopqrst") &&
              !strcmp(fl.lines[2], "uvwxyz"),
          "long word split into %d lines", fl.n);
    font_lines_free(&fl);

    /* Explicit newlines, blank lines, collapsing spaces, empty text. */
    font_wrap(&fl, "one\ntwo", 1000, 1, 0);
    CHECK(fl.n == 2 && !strcmp(fl.lines[0], "one") && !strcmp(fl.lines[1], "two"), "newline");
    font_lines_free(&fl);
    font_wrap(&fl, "a\n\nb\n", 1000, 1, 0);
    CHECK(fl.n == 3 && !strcmp(fl.lines[1], "") && !strcmp(fl.lines[2], "b"), "blank line kept, trailing dropped");
    font_lines_free(&fl);
    font_wrap(&fl, "  lots   of \t space  ", 1000, 1, 0);
    CHECK(fl.n == 1 && !strcmp(fl.lines[0], "lots of space"), "'%s'", fl.n ? fl.lines[0] : "");
    font_lines_free(&fl);
    font_wrap(&fl, "", 100, 1, 3);
    CHECK(fl.n == 0 && fl.lines == NULL, "empty text");
    font_lines_free(&fl);
    font_wrap(&fl, "  \n ", 100, 1, 3);
    CHECK(fl.n == 0, "blank text gives %d lines", fl.n);
    font_lines_free(&fl);

    /* Narrower than one glyph: still one character per line, never an endless loop. */
    font_wrap(&fl, "abc", 1, 4, 0);
    CHECK(fl.n == 3 && !strcmp(fl.lines[2], "c"), "1-pixel width: %d lines", fl.n);
    font_lines_free(&fl);
    /* Room for two characters only: the ellipsis itself shrinks. */
    font_wrap(&fl, "abcdefgh", nchars(2, 1), 1, 1);
    CHECK(fl.n == 1 && !strcmp(fl.lines[0], ".."), "'%s'", fl.n ? fl.lines[0] : "");
    font_lines_free(&fl);
    /* UTF-8 sequences are never cut in half. */
    font_wrap(&fl, "\xc3\xa9\xc3\xa9\xc3\xa9", nchars(2, 1), 1, 0);
    CHECK(fl.n == 2 && !strcmp(fl.lines[0], "\xc3\xa9\xc3\xa9") && !strcmp(fl.lines[1], "\xc3\xa9"), "utf-8 split");
    font_lines_free(&fl);
}

/* ---- grid ---- */

static void check_cells(const Image *out, const GridLayout *L, const Image *cells, int rows, int cols, const char *what) {
    int bad = 0;
    for (int i = 0; i < rows * cols; i++) {
        int x = L->x0 + (i % cols) * (L->cell_w + L->gap), y = L->y0 + (i / cols) * (L->cell_h + L->gap);
        for (int yy = 0; yy < L->cell_h; yy++)
            bad += memcmp(px(out, x, y + yy), px(&cells[i], 0, yy), (size_t)L->cell_w * 3) != 0;
    }
    CHECK(bad == 0, "%s: %d cell rows not copied exactly", what, bad);
}

static void test_grid_plain(void) {
    enum { R = 2, C = 3, W = 40, H = 30 };
    Image cells[R * C], out;
    for (int i = 0; i < R * C; i++) make_cell(&cells[i], W, H, i);
    GridLayout L;
    CHECK(grid_compose(&out, cells, R, C, NULL, NULL, NULL) == LS_OK, "%s", ls_last_error());
    CHECK(grid_layout(&L, W, H, R, C, NULL, NULL, NULL) == LS_OK, "%s", ls_last_error());
    CHECK(L.gap == 2 && L.label_w == 0 && L.header_h == 0 && L.title_h == 0, "no labels: no label areas");
    CHECK(out.w == 2 * 2 + C * W + (C - 1) * 2 && out.h == 2 * 2 + R * H + (R - 1) * 2 && out.c == 3,
          "size %dx%d", out.w, out.h);
    CHECK(out.w == L.w && out.h == L.h && L.x0 == 2 && L.y0 == 2, "layout agrees");
    check_cells(&out, &L, cells, R, C, "plain");
    /* Everything outside the cells is background white. */
    int nonwhite = 0, incell = 0;
    for (int y = 0; y < out.h; y++)
        for (int x = 0; x < out.w; x++) {
            int cx = x - L.x0, cy = y - L.y0;
            int in = cx >= 0 && cy >= 0 && cx % (W + L.gap) < W && cy % (H + L.gap) < H && cx < C * (W + L.gap) &&
                     cy < R * (H + L.gap);
            incell += in;
            if (!in) nonwhite += !is_white(px(&out, x, y));
        }
    CHECK(incell == R * C * W * H, "cell area %d", incell);
    CHECK(nonwhite == 0, "%d non-white background pixels", nonwhite);
    image_free(&out);
    for (int i = 0; i < R * C; i++) image_free(&cells[i]);
}

/* Labels and a title: sizes, exact cells, and ink only where labels belong. */
static void test_grid_labels(void) {
    enum { R = 2, C = 3, W = 96, H = 64 };
    const char *rows[R] = {"seed 1", "a fox in the snow, watercolor, highly detailed"};
    const char *cols[C] = {"scale 0", "scale 0.5", NULL};
    const char *title = "lorastyle sweep";
    Image cells[R * C], white[R * C], out;
    for (int i = 0; i < R * C; i++) make_cell(&cells[i], W, H, i), image_new(&white[i], W, H, 255);
    GridLayout L;
    CHECK(grid_layout(&L, W, H, R, C, rows, cols, title) == LS_OK, "%s", ls_last_error());
    CHECK(L.scale == 1 && L.title_scale == 2 && L.gap == 2, "scale %d title %d gap %d", L.scale, L.title_scale, L.gap);
    CHECK(L.label_w > 0 && L.label_w <= W * 3 / 4, "label column %d", L.label_w);
    CHECK(L.header_h == FONT_GLYPH_H + 2 * L.pad, "one-line header %d", L.header_h);
    CHECK(L.title_h == FONT_GLYPH_H * 2 + 2 * L.pad, "title band %d", L.title_h);
    CHECK(L.w == 2 * L.gap + L.label_w + C * W + (C - 1) * L.gap, "width %d", L.w);
    CHECK(L.h == 2 * L.gap + L.title_h + L.header_h + R * H + (R - 1) * L.gap, "height %d", L.h);
    CHECK(L.x0 == L.gap + L.label_w && L.y0 == L.gap + L.title_h + L.header_h, "origin");

    CHECK(grid_compose(&out, cells, R, C, rows, cols, title) == LS_OK, "%s", ls_last_error());
    CHECK(out.w == L.w && out.h == L.h, "size %dx%d vs layout %dx%d", out.w, out.h, L.w, L.h);
    check_cells(&out, &L, cells, R, C, "labelled");
    image_free(&out);

    /* With white cells every dark pixel is text: it must lie in the title band, over its column in the
     * header, or in the label column beside its row. */
    CHECK(grid_compose(&out, white, R, C, rows, cols, title) == LS_OK, "%s", ls_last_error());
    int header_top = L.gap + L.title_h, stray = 0;
    for (int y = 0; y < out.h; y++)
        for (int x = 0; x < out.w; x++) {
            if (!is_dark(px(&out, x, y))) continue;
            int in_title = y >= L.gap && y < header_top && x >= L.gap && x < out.w - L.gap;
            int cx = x - L.x0, cy = y - L.y0;
            int in_header = y >= header_top && y < L.y0 && cx >= 0 && cx % (W + L.gap) < W && cx / (W + L.gap) < 2;
            int in_label = x >= L.gap && x < L.x0 && cy >= 0 && cy % (H + L.gap) < H && cy < R * (H + L.gap);
            stray += !(in_title || in_header || in_label);
        }
    CHECK(stray == 0, "%d dark pixels outside the label areas (inside cells, gaps or margins)", stray);
    for (int c = 0; c < 2; c++) {
        int x = L.x0 + c * (W + L.gap);
        CHECK(count_dark(&out, x, header_top, x + W, L.y0) > 20, "column %d label has no ink", c);
    }
    CHECK(count_dark(&out, L.x0 + 2 * (W + L.gap), header_top, L.x0 + 3 * (W + L.gap), L.y0) == 0, "NULL label");
    for (int r = 0; r < R; r++) {
        int y = L.y0 + r * (H + L.gap);
        CHECK(count_dark(&out, L.gap, y, L.x0, y + H) > 20, "row %d label has no ink", r);
    }
    CHECK(count_dark(&out, L.gap, L.gap, out.w - L.gap, header_top) > 40, "title has no ink");
    /* The long row label is wrapped into several lines: ink spans more than two line heights. */
    int y = L.y0 + H + L.gap, top = -1, bottom = -1;
    for (int yy = y; yy < y + H; yy++)
        if (count_dark(&out, L.gap, yy, L.x0, yy + 1)) bottom = yy, top = top < 0 ? yy : top;
    CHECK(top >= 0 && bottom - top + 1 > 2 * FONT_LINE_H, "row label spans %d rows", bottom - top + 1);
    image_free(&out);
    for (int i = 0; i < R * C; i++) image_free(&cells[i]), image_free(&white[i]);
}

/* The header grows with wrapped column labels, up to a fixed number of lines, then "..." cuts it. */
static void test_grid_header_wrap(void) {
    const char *shortl[1] = {"x"};
    const char *two[1] = {"a fox in the snow"}; /* 9 chars per line at 64-6 = 58 px: "a fox in", "the snow" */
    char huge[2000];
    for (int i = 0; i < 1999; i++) huge[i] = (i % 6 == 5) ? ' ' : 'w';
    huge[1999] = 0;
    const char *many[1] = {huge};
    GridLayout a, b, c;
    CHECK(grid_layout(&a, 64, 64, 1, 1, NULL, shortl, NULL) == LS_OK, "%s", ls_last_error());
    CHECK(grid_layout(&b, 64, 64, 1, 1, NULL, two, NULL) == LS_OK, "%s", ls_last_error());
    CHECK(grid_layout(&c, 64, 64, 1, 1, NULL, many, NULL) == LS_OK, "%s", ls_last_error());
    CHECK(b.header_h == a.header_h + FONT_LINE_H, "2-line header %d vs 1-line %d", b.header_h, a.header_h);
    CHECK(c.header_h == a.header_h + 3 * FONT_LINE_H, "capped header %d", c.header_h);
    /* Larger cells → larger text. */
    GridLayout big;
    CHECK(grid_layout(&big, 512, 512, 1, 1, NULL, shortl, NULL) == LS_OK, "%s", ls_last_error());
    CHECK(big.scale == 4 && big.gap == 8, "512px cells: scale %d gap %d", big.scale, big.gap);
}

static void test_grid_errors(void) {
    Image cells[4], out;
    for (int i = 0; i < 4; i++) make_cell(&cells[i], 16, 16, i);
    image_free(&cells[2]);
    make_cell(&cells[2], 16, 17, 2);
    memset(&out, 0xab, sizeof out);
    CHECK(grid_compose(&out, cells, 2, 2, NULL, NULL, NULL) == LS_ERR, "mismatched sizes accepted");
    CHECK(strstr(ls_last_error(), "row 1, col 0") && strstr(ls_last_error(), "16x17") &&
              strstr(ls_last_error(), "same size"),
          "message: %s", ls_last_error());
    CHECK(out.data == NULL && out.w == 0, "output not left empty on error");
    image_free(&cells[2]);
    make_cell(&cells[2], 16, 16, 2);
    cells[3].c = 4;
    CHECK(grid_compose(&out, cells, 2, 2, NULL, NULL, NULL) == LS_ERR && strstr(ls_last_error(), "RGB"),
          "4-channel cell: %s", ls_last_error());
    cells[3].c = 3;
    CHECK(grid_compose(&out, cells, 0, 2, NULL, NULL, NULL) == LS_ERR, "zero rows accepted");
    CHECK(grid_compose(&out, NULL, 1, 1, NULL, NULL, NULL) == LS_ERR, "NULL cells accepted");
    GridLayout L;
    CHECK(grid_layout(&L, 60000, 60000, 2, 2, NULL, NULL, NULL) == LS_ERR && strstr(ls_last_error(), "too large"),
          "huge grid: %s", ls_last_error());
    CHECK(grid_layout(&L, 0, 10, 1, 1, NULL, NULL, NULL) == LS_ERR, "zero-width cells accepted");
    CHECK(grid_compose(&out, cells, 2, 2, NULL, NULL, NULL) == LS_OK, "valid again: %s", ls_last_error());
    image_free(&out);
    for (int i = 0; i < 4; i++) image_free(&cells[i]);
}

/* The example grid of samples/grid_example.png: 2 seeds × 4 strengths of 64×64 gradients. */
static int make_example(Image *out) {
    enum { R = 2, C = 4, S = 64 };
    const char *rows[R] = {"seed 1", "seed 2"};
    const char *cols[C] = {"scale 0", "scale 0.5", "scale 1", "scale 1.5"};
    Image cells[R * C];
    for (int i = 0; i < R * C; i++) {
        image_new(&cells[i], S, S, 0);
        int r = i / C, c = i % C;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) { /* warmer with strength, a different sweep per seed */
                uint8_t *p = cells[i].data + ((size_t)y * S + x) * 3;
                p[0] = (uint8_t)(40 + 45 * c + x); /* at most 238: no wrap-around */
                p[1] = (uint8_t)(r ? 40 + 2 * y : 40 + 2 * x);
                p[2] = (uint8_t)(220 - 45 * c - y);
            }
    }
    int rc = grid_compose(out, cells, R, C, rows, cols, "lorastyle sweep");
    for (int i = 0; i < R * C; i++) image_free(&cells[i]);
    return rc;
}

static void test_png_round_trip(void) {
    char dir[] = "/tmp/test_grid.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char *path = ls_path_join(dir, "grid.png");
    Image grid, back;
    CHECK(make_example(&grid) == LS_OK, "%s", ls_last_error());
    CHECK(image_write_png(path, &grid, NULL, 0) == LS_OK, "%s", ls_last_error());
    CHECK(image_load(&back, path) == LS_OK, "%s", ls_last_error());
    CHECK(same_image(&grid, &back), "PNG round trip changed the grid (%dx%d vs %dx%d)", grid.w, grid.h, back.w,
          back.h);
    image_free(&grid);
    image_free(&back);
    unlink(path);
    rmdir(dir);
    free(path);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-example") == 0) {
        Image grid;
        if (make_example(&grid) != LS_OK || image_write_png(argv[2], &grid, NULL, 0) != LS_OK) {
            fprintf(stderr, "test_grid: %s\n", ls_last_error());
            return 1;
        }
        printf("wrote %s (%dx%d)\n", argv[2], grid.w, grid.h);
        image_free(&grid);
        return 0;
    }
    test_metrics();
    test_glyphs();
    test_scaling();
    test_non_ascii();
    test_clipping();
    test_wrap();
    test_grid_plain();
    test_grid_labels();
    test_grid_header_wrap();
    test_grid_errors();
    test_png_round_trip();
    return test_summary();
}
