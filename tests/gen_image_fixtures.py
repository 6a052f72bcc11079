#!/usr/bin/env python3
"""Writes tests/fixtures/images/: small valid images (PNG, JPEG, BMP, TGA) and the reproducers of
issue 15 (bad or disguised files stb_image mishandled) that test_image_decode checks.

    python3 tests/gen_image_fixtures.py      # needs numpy and Pillow; the output is committed

Valid files carry a 48x32 pattern; pattern.rgb holds its raw RGB bytes, and <name>.ref.rgb holds what
Pillow (libjpeg-turbo) decodes from each JPEG, so the test needs no decoder of its own.
"""
import io
import os
import struct

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "images")
W, H = 48, 32


def put(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def encode(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def segments(jpeg):
    """(offset, marker, length) of each marker segment before the first scan's data, and the SOS ones."""
    p, out = 2, []
    while p < len(jpeg) - 4:
        assert jpeg[p] == 0xFF
        m = jpeg[p + 1]
        if m == 0xD9:
            break
        n = struct.unpack(">H", jpeg[p + 2:p + 4])[0]
        out.append((p, m, n))
        p += 2 + n
        if m == 0xDA:  # entropy-coded data up to the next marker that is not a stuffed 0xFF00 or RSTn
            while not (jpeg[p] == 0xFF and jpeg[p + 1] not in (0x00, *range(0xD0, 0xD8))):
                p += 1
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 5) % 256, (y * 8) % 256, ((x + y) * 3 + 40) % 256], -1).astype(np.uint8)
    rgb[8:24, 16:32] = (200, 30, 60)  # a flat block: the JPEG keeps it nearly exact
    img = Image.fromarray(rgb, "RGB")
    put("pattern.rgb", rgb.tobytes())

    # ---- valid files: must load with the right pixels ----
    png = encode(img, "PNG")
    put("ok.png", png)
    jpg = encode(img, "JPEG", quality=92)
    put("ok.jpg", jpg)
    put("ok.jpg.ref.rgb", np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB")).tobytes())
    prog = encode(img, "JPEG", quality=92, progressive=True)
    put("ok_progressive.jpg", prog)
    put("ok_progressive.jpg.ref.rgb", np.asarray(Image.open(io.BytesIO(prog)).convert("RGB")).tobytes())
    put("jpeg_named.png", jpg)  # content decides: a JPEG called .png loads as the JPEG it is
    put("ok.bmp", encode(img, "BMP"))
    put("ok.tga", encode(img, "TGA"))
    rle = encode(img, "TGA", compression="tga_rle")
    put("ok_rle.tga", rle)

    # a 4x2 8-bit BMP with a 2-entry palette: indices 0/1 load; an index of 5 would make stb read an
    # uninitialised palette entry, so it is refused
    def bmp8(indices):
        pal = bytes([0, 0, 255, 0, 0, 255, 0, 0])  # BGRx: red, green
        rows = b"".join(bytes(indices[r * 4:(r + 1) * 4]) for r in (1, 0))  # bottom-up, 4-byte rows
        off = 14 + 40 + len(pal)
        hdr = b"BM" + struct.pack("<IHHI", off + len(rows), 0, 0, off)
        hdr += struct.pack("<IiiHHIIiiII", 40, 4, 2, 1, 8, 0, len(rows), 2835, 2835, 2, 0)
        return hdr + pal + rows
    put("pal2.bmp", bmp8([0, 1, 0, 1, 1, 1, 0, 0]))
    put("bad_palette_index.bmp", bmp8([0, 1, 5, 1, 1, 1, 0, 0]))

    # ---- reproducers: must be refused with a clear message ----
    # DHT counts summing past 256: stb wrote out of bounds
    j = bytearray(jpg)
    off = next(p for p, m, _ in segments(jpg) if m == 0xC4)
    j[off + 5:off + 21] = bytes([255] * 16)  # the 16 code-length counts of the first table
    put("bad_dht.jpg", bytes(j))
    # a progressive JPEG cut in its scans, and one whose Huffman tables were removed
    put("truncated_progressive.jpg", prog[:len(prog) * 3 // 5])
    j = bytearray(prog)
    for p, m, n in reversed(segments(prog)):
        if m == 0xC4:
            del j[p:p + 2 + n]
    put("progressive_no_dht.jpg", bytes(j))
    # other formats under a supported name: stb decoded them by content anyway
    put("gif_named.png", encode(img.convert("P"), "GIF"))
    put("ppm_named.jpg", encode(img, "PPM"))
    put("psd_named.png", b"8BPS\x00\x01" + bytes(6) + struct.pack(">HIIHH", 3, H, W, 8, 3) + bytes(64))
    put("hdr_named.jpg", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 32 +X 48\n" + bytes(64))
    # TGA: an RLE file cut short (stb padded it with zeros), and a 689-byte RLE file claiming 5888x6179
    put("truncated_rle.tga", rle[:len(rle) // 2])
    put("truncated.tga", encode(img, "TGA")[:1500])
    hdr = struct.pack("<BBBHHBHHHHBB", 0, 0, 10, 0, 0, 0, 0, 0, 5888, 6179, 24, 0)
    packets = b"\xff\x10\x20\x30" * ((689 - 18) // 4)
    put("huge_rle.tga", (hdr + packets + bytes(689))[:689])
    # PNG: cut in the image data; and a header claiming 100000x100000
    put("truncated.png", png[:len(png) // 2])
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    import zlib
    put("huge.png", b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    put("truncated.bmp", encode(img, "BMP")[:2000])
    put("text_named.png", b"just some text, not an image\n")


if __name__ == "__main__":
    main()
