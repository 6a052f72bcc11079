/* grid.c — see grid.h. Sizes follow the cells: text is about 1/16 of the cell side (cap height
 * 7*scale), the gap about 1/64 of it; the row-label column is at most 3/4 of a cell wide, as in
 * A1111's X/Y plot, and shrinks to its widest label. */
#include "grid.h"

#include <string.h>

#include "common.h" /* defines: ls_set_error, mallocCheck, callocCheck, LS_MAX/LS_MIN */
#include "font.h"   /* defines: font_wrap, font_draw_text, FontLines, FONT_* metrics */

#define GRID_COL_MAX_LINES 4   /* column labels (often prompts) beyond this end in "..." */
#define GRID_TITLE_MAX_LINES 2 /* likewise for the title */
#define GRID_MAX_SIDE 65535    /* per side of the output image */
#define GRID_MAX_PIXELS (1LL << 28)

/* Width of the widest space-separated word of text (words of at most 63 bytes are measured whole). */
static int widest_word(const char *text, int scale) {
    int best = 0;
    while (*text) {
        while (*text == ' ') text++;
        char word[64];
        int n = 0;
        while (text[n] && text[n] != ' ') n++;
        snprintf(word, sizeof word, "%.*s", LS_MIN(n, 63), text);
        best = LS_MAX(best, font_text_width(word, scale));
        text += n;
    }
    return best;
}

/* The layout plus the wrapped text it was computed from. */
typedef struct {
    GridLayout L;
    FontLines *row_text; /* rows entries, or NULL without row labels */
    FontLines *col_text; /* cols entries, or NULL without column labels */
    FontLines title;
    int rows, cols;
} Plan;

/* Height in pixels of n lines of text: no spacing below the last line's descenders. */
static int block_height(int n, int scale) {
    return n > 0 ? (n * FONT_LINE_H - (FONT_LINE_H - FONT_GLYPH_H)) * scale : 0;
}

static void plan_free(Plan *P) {
    for (int i = 0; P->row_text && i < P->rows; i++) font_lines_free(&P->row_text[i]);
    for (int i = 0; P->col_text && i < P->cols; i++) font_lines_free(&P->col_text[i]);
    font_lines_free(&P->title);
    free(P->row_text);
    free(P->col_text);
    memset(P, 0, sizeof *P);
}

static int plan_grid(Plan *P, int cell_w, int cell_h, int rows, int cols, const char *const *row_labels,
                     const char *const *col_labels, const char *title) {
    memset(P, 0, sizeof *P);
    if (rows < 1 || cols < 1) return ls_set_error("grid: need at least one row and one column, got %dx%d", rows, cols);
    if (cell_w < 1 || cell_h < 1 || cell_w > GRID_MAX_SIDE || cell_h > GRID_MAX_SIDE)
        return ls_set_error("grid: bad cell size %dx%d", cell_w, cell_h);
    P->rows = rows, P->cols = cols;
    GridLayout *L = &P->L;
    int side = LS_MIN(cell_w, cell_h);
    L->cell_w = cell_w, L->cell_h = cell_h;
    L->gap = LS_MAX(2, side / 64);
    L->scale = LS_MAX(1, side / (16 * 7)); /* cap height 7*scale ≈ side/16 */
    L->title_scale = L->scale + 1;
    L->pad = 3 * L->scale;
    int line_h = font_line_height(L->scale);

    if (col_labels) { /* wrap to the cell width; the header is as tall as the tallest label */
        P->col_text = callocCheck((size_t)cols, sizeof(FontLines));
        int most = 1;
        for (int c = 0; c < cols; c++) {
            font_wrap(&P->col_text[c], col_labels[c], cell_w - 2 * L->pad, L->scale, GRID_COL_MAX_LINES);
            most = LS_MAX(most, P->col_text[c].n);
        }
        L->header_h = block_height(most, L->scale) + 2 * L->pad;
    }
    if (row_labels) { /* wrap to 3/4 of a cell; as many lines as fit in the row's height */
        P->row_text = callocCheck((size_t)rows, sizeof(FontLines));
        int max_lines = LS_MAX(1, (cell_h + (FONT_LINE_H - FONT_GLYPH_H) * L->scale) / line_h);
        int widest = 0;
        for (int r = 0; r < rows; r++) {
            FontLines *t = &P->row_text[r];
            /* never narrower than the label's longest word: small cells must not split "strength" */
            font_wrap(t, row_labels[r], LS_MAX(cell_w * 3 / 4 - 2 * L->pad, widest_word(row_labels[r], L->scale)),
                      L->scale, max_lines);
            for (int i = 0; i < t->n; i++) widest = LS_MAX(widest, font_text_width(t->lines[i], L->scale));
        }
        L->label_w = widest + 2 * L->pad;
    }

    long long w = 2LL * L->gap + L->label_w + (long long)cols * cell_w + (long long)(cols - 1) * L->gap;
    if (title && *title) { /* wrap to the whole width (needs label_w, hence last) */
        int width = (int)LS_MIN(w, GRID_MAX_SIDE) - 2 * L->gap - 2 * L->pad;
        font_wrap(&P->title, title, width, L->title_scale, GRID_TITLE_MAX_LINES);
        L->title_h = block_height(LS_MAX(1, P->title.n), L->title_scale) + 2 * L->pad;
    }
    long long h = 2LL * L->gap + L->title_h + L->header_h + (long long)rows * cell_h + (long long)(rows - 1) * L->gap;
    if (w > GRID_MAX_SIDE || h > GRID_MAX_SIDE || w * h > GRID_MAX_PIXELS) {
        plan_free(P);
        return ls_set_error("grid: %dx%d cells of %dx%d make a %lldx%lld image, too large", rows, cols, cell_w,
                            cell_h, w, h);
    }
    L->w = (int)w, L->h = (int)h;
    L->x0 = L->gap + L->label_w;
    L->y0 = L->gap + L->title_h + L->header_h;
    return LS_OK;
}

int grid_layout(GridLayout *L, int cell_w, int cell_h, int rows, int cols, const char *const *row_labels,
                const char *const *col_labels, const char *title) {
    Plan P;
    memset(L, 0, sizeof *L);
    LS_TRY(plan_grid(&P, cell_w, cell_h, rows, cols, row_labels, col_labels, title));
    *L = P.L;
    plan_free(&P);
    return LS_OK;
}

/* Draw lines of text as a block whose top is at y, each line centred horizontally on center_x. */
static void draw_block(Image *img, const FontLines *t, int center_x, int y, int scale) {
    for (int i = 0; i < t->n; i++) {
        int x = center_x - font_text_width(t->lines[i], scale) / 2;
        font_draw_text(img, x, y + i * font_line_height(scale), t->lines[i], scale, 0, 0, 0);
    }
}

int grid_compose(Image *out, const Image *cells, int rows, int cols, const char *const *row_labels,
                 const char *const *col_labels, const char *title) {
    memset(out, 0, sizeof *out);
    if (!cells || rows < 1 || cols < 1)
        return ls_set_error("grid: need at least one row and one column of cells, got %dx%d", rows, cols);
    /* Plan from cell (0, 0) first: that also bounds rows*cols before the loop below. */
    Plan P;
    LS_TRY(plan_grid(&P, cells[0].w, cells[0].h, rows, cols, row_labels, col_labels, title));
    for (int i = 0; i < rows * cols; i++) {
        const Image *c = &cells[i];
        int rc = LS_OK;
        if (!c->data || c->c != 3)
            rc = ls_set_error("grid: cell (row %d, col %d) is not an RGB image", i / cols, i % cols);
        else if (c->w != cells[0].w || c->h != cells[0].h)
            rc = ls_set_error("grid: cell (row %d, col %d) is %dx%d but cell (0, 0) is %dx%d; all cells must "
                              "be the same size", i / cols, i % cols, c->w, c->h, cells[0].w, cells[0].h);
        if (rc != LS_OK) {
            plan_free(&P);
            return rc;
        }
    }
    const GridLayout *L = &P.L;
    out->w = L->w, out->h = L->h, out->c = 3;
    out->data = mallocCheck((size_t)L->w * (size_t)L->h * 3);
    memset(out->data, 255, (size_t)L->w * (size_t)L->h * 3);

    /* Text first, cells last: a glyph that spills over (only possible for tiny cells) can't mark a cell. */
    int pitch_x = L->cell_w + L->gap, pitch_y = L->cell_h + L->gap;
    if (P.title.n > 0)
        draw_block(out, &P.title, L->w / 2, L->gap + L->pad, L->title_scale);
    for (int c = 0; P.col_text && c < cols; c++) {
        int top = L->gap + L->title_h + (L->header_h - block_height(P.col_text[c].n, L->scale)) / 2;
        draw_block(out, &P.col_text[c], L->x0 + c * pitch_x + L->cell_w / 2, top, L->scale);
    }
    for (int r = 0; P.row_text && r < rows; r++) {
        int top = L->y0 + r * pitch_y + (L->cell_h - block_height(P.row_text[r].n, L->scale)) / 2;
        draw_block(out, &P.row_text[r], L->gap + L->label_w / 2, top, L->scale);
    }
    for (int i = 0; i < rows * cols; i++) {
        int x = L->x0 + (i % cols) * pitch_x, y = L->y0 + (i / cols) * pitch_y;
        size_t row_bytes = (size_t)L->cell_w * 3;
        for (int yy = 0; yy < L->cell_h; yy++)
            memcpy(out->data + ((size_t)(y + yy) * L->w + x) * 3, cells[i].data + yy * row_bytes, row_bytes);
    }
    plan_free(&P);
    return LS_OK;
}
