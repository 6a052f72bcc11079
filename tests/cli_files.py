"""cli_files.py — the file formats the command-line tests (tests/test_cli*.sh) read and craft, with Python's
standard library only: safetensors (header and data buffer) and PNG (chunks, image data, 8-bit pixels, text).
Their helper scripts import it with PYTHONPATH set to tests/."""
import json, struct, zlib


def st_read(path):
    """(header dict, data bytes) of a safetensors file"""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_write(path, hdr, data):
    """a safetensors file of header hdr (compact JSON, padded to 8 bytes) and data"""
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)


def png_chunks(path):
    """(type, data) of each chunk of a PNG file"""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", path + ": not a PNG"
    i = 8
    while i + 8 <= len(b):
        n, typ = struct.unpack(">I4s", b[i:i + 8])
        yield typ, b[i + 8:i + 8 + n]
        i += 12 + n


def png_data(path):
    """the decompressed image data (filtered scanlines) of a PNG"""
    return zlib.decompress(b"".join(d for typ, d in png_chunks(path) if typ == b"IDAT"))


def png_pixels(path):
    """(w, h, bytes) of an 8-bit gray/RGB/RGBA PNG without interlace, unfiltered"""
    for typ, d in png_chunks(path):
        if typ == b"IHDR":
            w, h, depth, ctype, _, _, lace = struct.unpack(">IIBBBBB", d)
            assert depth == 8 and lace == 0, path + ": unsupported PNG"
            bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw, stride, out, prev = png_data(path), w * bpp, bytearray(), bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return w, h, bytes(out)


def png_text(path, key="parameters"):
    """the text of a PNG's tEXt chunk named key, or None"""
    for typ, d in png_chunks(path):
        if typ == b"tEXt" and d.split(b"\0", 1)[0] == key.encode():
            return d.split(b"\0", 1)[1].decode("latin-1")
    return None
