/* grid.h — compose equally sized images into one labelled grid, laid out like AUTOMATIC1111's X/Y plot:
 * an optional title band on top, a header row with each column's label centred above it, a left column
 * with each row's label, white background, black text (font.h), cells separated by a small gap.
 * `lorastyle sweep` uses it with, e.g., columns = LoRA strengths and rows = seeds or prompts.
 *
 *   +---------------------------------------------+
 *   |               title (optional)              |
 *   |          | col label 0 |   | col label 1 |  |
 *   | row lbl 0|   cell 0,0  |gap|   cell 0,1  |  |
 *   |          |             |   |             |  |
 *   |                      gap                    |
 *   | row lbl 1|   cell 1,0  |   |   cell 1,1  |  |
 *   +---------------------------------------------+
 */
#ifndef LS_GRID_H
#define LS_GRID_H

#include "image.h"

/* Where everything goes, all in pixels. Cell (r, c) starts at (x0 + c*(cell_w+gap), y0 + r*(cell_h+gap)),
 * and w = gap + label_w + cols*cell_w + (cols-1)*gap + gap,
 *     h = gap + title_h + header_h + rows*cell_h + (rows-1)*gap + gap. */
typedef struct {
    int cell_w, cell_h;     /* every cell's size */
    int gap;                /* between cells, and the margin around the whole grid */
    int scale, title_scale; /* integer font scales of the labels and of the title */
    int pad;                /* between label text and the edges of its area */
    int title_h;            /* height of the title band (0 without a title) */
    int header_h;           /* height of the column-label row (0 without column labels) */
    int label_w;            /* width of the row-label column (0 without row labels) */
    int x0, y0;             /* top-left corner of cell (0, 0) */
    int w, h;               /* size of the whole grid image */
} GridLayout;

/* Compute the layout for rows×cols cells of cell_w×cell_h with these labels (same meaning as in
 * grid_compose). LS_ERR + message on bad sizes or a grid too large to allocate. */
int grid_layout(GridLayout *L, int cell_w, int cell_h, int rows, int cols, const char *const *row_labels,
                const char *const *col_labels, const char *title);

/* Build the grid image into *out (RGB; free with image_free). cells: rows*cols RGB images, row-major, all
 * the same size (else LS_ERR naming the odd cell). row_labels (rows entries) / col_labels (cols entries)
 * may be NULL for no label column / no header row; a NULL entry is an empty label. Long labels are
 * word-wrapped to their area and cut with "..." past its line budget. title may be NULL or "" (no title).
 * Cells are copied exactly; text never overlaps them. On error *out is left empty. */
int grid_compose(Image *out, const Image *cells, int rows, int cols, const char *const *row_labels,
                 const char *const *col_labels, const char *title);

#endif
