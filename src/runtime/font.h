/* font.h — a small built-in bitmap font (our own 5×9 glyphs for printable ASCII) for labelling images
 * without any font library: used by the sweep grid (grid.c) and available to anything that writes PNGs.
 *
 * Metrics at scale 1: each glyph is 5 pixels wide in a 6-pixel advance; cap height 7 rows, descenders
 * 2 more rows (9 in all); lines are 11 rows apart. Every metric multiplies by the integer scale.
 * Text is UTF-8: each code point outside printable ASCII (and each invalid byte) draws as one '?',
 * '\n' starts a new line, a tab draws as a space, other control characters as '?'.
 */
#ifndef LS_FONT_H
#define LS_FONT_H

#include <stdint.h>

#include "image.h"

#define FONT_GLYPH_W 5  /* glyph width in pixels at scale 1 */
#define FONT_GLYPH_H 9  /* glyph height incl. descender rows */
#define FONT_ADVANCE 6  /* horizontal distance between glyph origins */
#define FONT_LINE_H 11  /* vertical distance between line origins */

/* Draw text with its top-left corner at (x, y), clipped to the image (RGB, c == 3); pixels outside the
 * glyphs are left untouched. scale < 1 counts as 1. */
void font_draw_text(Image *img, int x, int y, const char *utf8, int scale, uint8_t r, uint8_t g, uint8_t b);

/* Width in pixels of the widest line of s as drawn at this scale (no trailing spacing; 0 if empty). */
int font_text_width(const char *s, int scale);

/* Distance in pixels between successive lines at this scale. */
int font_line_height(int scale);

/* Lines of text after word wrapping: each a malloc'd NUL-terminated string. */
typedef struct {
    char **lines;
    int n;
} FontLines;

/* Word-wrap utf8 so each line is at most max_width pixels wide at this scale. Lines break at spaces
 * (runs of spaces/tabs collapse) and at '\n'; a word wider than a line is split between characters; every
 * line holds at least one character, however narrow max_width. If more than max_lines lines result
 * (max_lines > 0), only max_lines are kept and the last one ends in "..." (shortened to fit). Empty text
 * gives n = 0. Free with font_lines_free. */
void font_wrap(FontLines *out, const char *utf8, int max_width, int scale, int max_lines);
void font_lines_free(FontLines *fl);

#endif
