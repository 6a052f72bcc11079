#!/usr/bin/env python3
"""Generate datasets/sample_style/: a small, licence-clean style set for tests and demos.

The style ("pastelshapes") is flat pastel shapes with thick dark outlines. Every image is drawn here from
geometry (signed distances, 3x3 supersampled), so the set carries no third-party content. The files cover
the formats the dataset loader accepts, with mixed sizes and aspect ratios:

    name                       size     format
    sun.png                    64x64    PNG, 8-bit RGB
    blocks.png                 96x64    PNG, 8-bit RGB
    mountains.png              64x96    PNG, 8-bit RGB
    star.png                   96x96    PNG, 8-bit RGBA (transparent background -> flattened onto white)
    moon.png                   80x80    PNG, 8-bit grayscale
    fish.png                   128x64   PNG, 16-bit RGB
    flower.png                 128x96   PNG, palette
    house.jpg                  96x128   JPEG (baseline, 4:4:4, written by the small encoder below)
    tree.bmp                   64x96    BMP, 24-bit
    heart.tga                  80x64    TGA, 24-bit uncompressed

Each image has a same-name .txt caption (comma-separated tags, the style tag first). Only the standard
library is used (zlib, struct), so the output is identical on any machine.

Usage:  python3 scripts/make_sample_style.py [out_dir]   (default: datasets/sample_style/10_pastelshapes)
"""
import math
import os
import struct
import sys
import zlib

# ---------------------------------------------------------------------------------------------------------
# drawing: shapes as signed distance functions (negative inside), painted back to front
# ---------------------------------------------------------------------------------------------------------

INK = (58, 52, 74)  # the outline colour of the style


def sd_circle(cx, cy, r):
    return lambda x, y: math.hypot(x - cx, y - cy) - r


def sd_ellipse(cx, cy, rx, ry):
    # distance approximation: exact on the axes, good enough for thick outlines
    def f(x, y):
        k = math.hypot((x - cx) / rx, (y - cy) / ry)
        return (k - 1.0) * min(rx, ry)
    return f


def sd_box(x0, y0, x1, y1, r=0.0):
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 - r, (y1 - y0) / 2 - r

    def f(x, y):
        dx, dy = abs(x - cx) - hx, abs(y - cy) - hy
        return math.hypot(max(dx, 0), max(dy, 0)) + min(max(dx, dy), 0) - r
    return f


def sd_polygon(pts):
    n = len(pts)

    def f(x, y):
        d, inside = float("inf"), False
        for i in range(n):
            (ax, ay), (bx, by) = pts[i], pts[(i + 1) % n]
            ex, ey, wx, wy = bx - ax, by - ay, x - ax, y - ay
            t = max(0.0, min(1.0, (wx * ex + wy * ey) / (ex * ex + ey * ey)))
            d = min(d, math.hypot(wx - ex * t, wy - ey * t))
            if (ay > y) != (by > y) and x < ax + (y - ay) * ex / ey:
                inside = not inside
        return -d if inside else d
    return f


def sd_union(*fs):
    return lambda x, y: min(f(x, y) for f in fs)


def sd_subtract(a, b):
    return lambda x, y: max(a(x, y), -b(x, y))


def star_points(cx, cy, r_out, r_in, n=5):
    pts = []
    for k in range(2 * n):
        a = -math.pi / 2 + k * math.pi / n
        r = r_out if k % 2 == 0 else r_in
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def heart_points(cx, cy, s, n=72):
    """The classic parametric heart as one polygon (a union of circles would show seams in its outline)."""
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((cx + s * x, cy - s * y))
    return pts


def render(w, h, background, shapes, outline=3.0):
    """RGBA rows; background None = transparent. shapes: (sdf, fill rgb), back to front."""
    offs = [(i + 0.5) / 3 for i in range(3)]
    rows = []
    for py in range(h):
        row = []
        for px in range(w):
            acc = [0.0, 0.0, 0.0, 0.0]
            for oy in offs:
                for ox in offs:
                    x, y = px + ox, py + oy
                    col, a = background, 1.0 if background else 0.0
                    for sdf, fill in shapes:
                        d = sdf(x, y)
                        if d <= 0:
                            col, a = (INK if d > -outline else fill), 1.0
                    if col is None:
                        col = (0, 0, 0)
                    for c in range(3):
                        acc[c] += col[c] * a
                    acc[3] += a
            a = acc[3] / 9
            # un-premultiply the colour so anti-aliased edges keep their colour
            rgb = [acc[c] / acc[3] if acc[3] else 0.0 for c in range(3)]
            row.append((rgb[0], rgb[1], rgb[2], a))
        rows.append(row)
    return rows


def to8(v):
    return max(0, min(255, int(round(v))))


# ---------------------------------------------------------------------------------------------------------
# writers: PNG (zlib + struct), BMP, TGA, baseline JPEG
# ---------------------------------------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def write_png(path, w, h, raw_rows, color_type, bit_depth=8, palette=None):
    """raw_rows: bytes per row without the filter byte. color_type: 0 gray, 2 RGB, 3 palette, 6 RGBA."""
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    data = b"".join(b"\x00" + r for r in raw_rows)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    if palette is not None:
        out += png_chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    out += png_chunk(b"IDAT", zlib.compress(data, 9)) + png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def flatten(rows):
    """RGBA floats -> RGB floats over white (what the loader does), for formats without alpha."""
    return [[tuple(c * a + 255 * (1 - a) for c in (r, g, b)) for (r, g, b, a) in row] for row in rows]


def write_bmp(path, rgb_rows):
    h, w = len(rgb_rows), len(rgb_rows[0])
    stride = (w * 3 + 3) & ~3
    pix = b""
    for row in reversed(rgb_rows):  # bottom-up, BGR
        line = b"".join(bytes((to8(b), to8(g), to8(r))) for (r, g, b) in row)
        pix += line + b"\x00" * (stride - len(line))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pix), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pix), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + pix)


def write_tga(path, rgb_rows):
    h, w = len(rgb_rows), len(rgb_rows[0])
    header = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 24, 0x20)  # top-left origin
    pix = b"".join(bytes((to8(b), to8(g), to8(r))) for row in rgb_rows for (r, g, b) in row)
    with open(path, "wb") as f:
        f.write(header + pix)


ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,
          7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
          39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
# JPEG Annex K.1/K.2 quantisation tables (natural order) and K.3 luminance Huffman tables
Q_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
          14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
          49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
Q_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
            47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_VALS = list(range(12))
AC_BITS = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d]
AC_VALS = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
    0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
    0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
    0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3,
    0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa]


def huff_codes(bits, vals):
    """Canonical Huffman codes: symbol -> (code, length)."""
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return codes


def write_jpeg(path, rgb_rows, quality=90):
    """Baseline JPEG, 4:4:4, one scan; all three components share the luminance Huffman tables."""
    h, w = len(rgb_rows), len(rgb_rows[0])
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    qt = [[max(1, min(255, (q * scale + 50) // 100)) for q in base] for base in (Q_LUMA, Q_CHROMA)]
    dc, ac = huff_codes(DC_BITS, DC_VALS), huff_codes(AC_BITS, AC_VALS)
    cos_t = [[(math.sqrt(0.5) if u == 0 else 1.0) * math.cos((2 * x + 1) * u * math.pi / 16) / 2
              for x in range(8)] for u in range(8)]

    planes = [[[0.0] * w for _ in range(h)] for _ in range(3)]  # level-shifted Y, Cb, Cr
    for y in range(h):
        for x in range(w):
            r, g, b = (to8(v) for v in rgb_rows[y][x])
            planes[0][y][x] = 0.299 * r + 0.587 * g + 0.114 * b - 128
            planes[1][y][x] = -0.168736 * r - 0.331264 * g + 0.5 * b
            planes[2][y][x] = 0.5 * r - 0.418688 * g - 0.081312 * b

    out, acc, nacc = bytearray(), 0, 0

    def put(code, length):
        nonlocal acc, nacc
        acc, nacc = (acc << length) | code, nacc + length
        while nacc >= 8:
            byte = (acc >> (nacc - 8)) & 0xff
            out.append(byte)
            if byte == 0xff:
                out.append(0)  # byte stuffing
            nacc -= 8
        acc &= (1 << nacc) - 1

    def magnitude(v):
        n = abs(v).bit_length()
        return n, (v if v >= 0 else v + (1 << n) - 1)

    pred = [0, 0, 0]
    for by in range(0, h, 8):
        for bx in range(0, w, 8):
            for c in range(3):
                blk = [[planes[c][min(by + i, h - 1)][min(bx + j, w - 1)] for j in range(8)] for i in range(8)]
                tmp = [[sum(cos_t[u][x] * blk[i][x] for x in range(8)) for u in range(8)] for i in range(8)]
                coef = [sum(cos_t[v][i] * tmp[i][u] for i in range(8)) for v in range(8) for u in range(8)]
                q = [int(round(coef[ZIGZAG[k]] / qt[min(c, 1)][ZIGZAG[k]])) for k in range(64)]
                n, bits = magnitude(q[0] - pred[c])
                pred[c] = q[0]
                put(*dc[n])
                if n:
                    put(bits, n)
                run = 0
                for k in range(1, 64):
                    if q[k] == 0:
                        run += 1
                        continue
                    while run > 15:
                        put(*ac[0xf0])
                        run -= 16
                    n, bits = magnitude(q[k])
                    put(*ac[(run << 4) | n])
                    put(bits, n)
                    run = 0
                if run:
                    put(*ac[0x00])  # end of block
    if nacc:
        put((1 << (8 - nacc)) - 1, 8 - nacc)  # pad with ones

    def seg(marker, data):
        return bytes((0xff, marker)) + struct.pack(">H", len(data) + 2) + data

    head = b"\xff\xd8" + seg(0xe0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    for t in range(2):
        head += seg(0xdb, bytes([t]) + bytes(qt[t][ZIGZAG[k]] for k in range(64)))
    head += seg(0xc0, struct.pack(">BHHB", 8, h, w, 3) + bytes([1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1]))
    head += seg(0xc4, bytes([0x00] + DC_BITS + DC_VALS) + bytes([0x10] + AC_BITS + AC_VALS))
    head += seg(0xda, bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]))
    with open(path, "wb") as f:
        f.write(head + bytes(out) + b"\xff\xd9")


# ---------------------------------------------------------------------------------------------------------
# the set
# ---------------------------------------------------------------------------------------------------------

PINK, MINT, LILAC, PEACH = (246, 178, 196), (170, 226, 200), (204, 186, 240), (252, 204, 166)
SKY, LEMON = (168, 210, 240), (250, 232, 150)
CREAM, SAND = (252, 244, 226), (240, 226, 204)
STYLE = "pastelshapes"


def scenes():
    """(file, w, h, background, shapes, caption tags after the style tag)."""
    yield ("sun.png", 64, 64, CREAM, [(sd_circle(32, 32, 20), PINK), (sd_circle(32, 32, 8), LEMON)],
           "sun, pink circle, cream background")
    yield ("blocks.png", 96, 64, SAND, [(sd_box(10, 14, 46, 50, 6), MINT), (sd_box(50, 20, 86, 56, 6), LILAC)],
           "two blocks, mint square, lilac square, sand background")
    yield ("mountains.png", 64, 96, SKY,
           [(sd_polygon([(-4, 90), (24, 30), (52, 90)]), LILAC), (sd_polygon([(18, 90), (44, 46), (70, 90)]), MINT),
            (sd_circle(48, 18, 8), LEMON)],
           "mountains, lilac triangle, mint triangle, sky background")
    yield ("star.png", 96, 96, None, [(sd_polygon(star_points(48, 50, 42, 18)), LEMON)],
           "star, yellow star, white background")
    yield ("moon.png", 80, 80, (60, 60, 60),
           [(sd_subtract(sd_circle(40, 40, 28), sd_circle(54, 32, 24)), (235, 235, 235))],
           "moon, crescent, gray, night background")
    yield ("fish.png", 128, 64, SKY,
           [(sd_polygon([(88, 32), (122, 10), (122, 54)]), PEACH), (sd_ellipse(56, 32, 44, 22), PINK),
            (sd_circle(32, 28, 5), INK)],
           "fish, pink ellipse, peach tail, sky background")
    yield ("flower.png", 128, 96, MINT,
           [(sd_union(*[sd_circle(64 + 22 * math.cos(k * math.pi / 3), 48 + 22 * math.sin(k * math.pi / 3), 14)
                        for k in range(6)]), PINK), (sd_circle(64, 48, 12), LEMON)],
           "flower, pink petals, yellow center, mint background")
    yield ("house.jpg", 96, 128, SKY,
           [(sd_box(16, 56, 80, 116, 2), PEACH), (sd_polygon([(8, 60), (48, 20), (88, 60)]), PINK),
            (sd_box(38, 84, 58, 116, 2), LILAC)],
           "house, peach walls, pink roof, sky background")
    yield ("tree.bmp", 64, 96, CREAM,
           [(sd_box(26, 50, 38, 90, 2), PEACH), (sd_circle(32, 36, 24), MINT)],
           "tree, mint crown, peach trunk, cream background")
    yield ("heart.tga", 80, 64, CREAM,
           [(sd_polygon(heart_points(40, 28, 1.8)), PINK)],
           "heart, pink heart, cream background")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "datasets", "sample_style", "10_pastelshapes")
    os.makedirs(out, exist_ok=True)
    for name, w, h, bg, shapes, tags in scenes():
        rows = render(w, h, bg, shapes)
        path = os.path.join(out, name)
        if name == "star.png":  # RGBA with a transparent background
            raw = [bytes(v for (r, g, b, a) in row for v in (to8(r), to8(g), to8(b), to8(a * 255))) for row in rows]
            write_png(path, w, h, raw, 6)
        elif name == "moon.png":  # 8-bit grayscale
            write_png(path, w, h, [bytes(to8(px[0]) for px in row) for row in flatten(rows)], 0)
        elif name == "fish.png":  # 16-bit RGB: the full 16-bit range, not 8-bit values shifted
            raw = [b"".join(struct.pack(">HHH", *(max(0, min(65535, int(round(c * 257)))) for c in px))
                            for px in row) for row in flatten(rows)]
            write_png(path, w, h, raw, 2, bit_depth=16)
        elif name == "flower.png":  # palette: the flat colours plus the anti-aliased edge colours
            rgb = [[tuple(to8(c) for c in px) for px in row] for row in flatten(rows)]
            palette = sorted({px for row in rgb for px in row})
            if len(palette) > 256:  # keep the most common 256 by snapping edges to the nearest kept colour
                count = {}
                for row in rgb:
                    for px in row:
                        count[px] = count.get(px, 0) + 1
                palette = sorted(sorted(count, key=lambda c: -count[c])[:256])
            index = {c: i for i, c in enumerate(palette)}

            def nearest(px):
                if px in index:
                    return index[px]
                return min(range(len(palette)), key=lambda i: sum((a - b) ** 2 for a, b in zip(palette[i], px)))
            write_png(path, w, h, [bytes(nearest(px) for px in row) for row in rgb], 3, palette=palette)
        elif name.endswith(".jpg"):
            write_jpeg(path, flatten(rows))
        elif name.endswith(".bmp"):
            write_bmp(path, flatten(rows))
        elif name.endswith(".tga"):
            write_tga(path, flatten(rows))
        else:
            write_png(path, w, h, [bytes(to8(c) for px in row for c in px) for row in flatten(rows)], 2)
        with open(os.path.splitext(path)[0] + ".txt", "w", encoding="utf-8") as f:
            f.write(f"{STYLE}, {tags}, thick outline, flat colors\n")
        print(f"{path}: {w}x{h}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
