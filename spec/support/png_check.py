#!/usr/bin/env python3
"""Fails (exit 1) on a blank screenshot: `png_check.py FILE.png [RGB]`.

A page counts as drawn when its most common colour (the background) covers
less than 98 % of the pixels and at least MIN_INK pixels are close to RGB
(default #2f6fdf, the report's series and bar colour), so a page of text
only, such as Chromium's own error page, fails too. Decodes the PNG with
zlib alone: 8-bit RGB or RGBA, not interlaced, which is what Chromium's
--screenshot writes.
"""
import struct
import sys
import zlib
from collections import Counter

MIN_INK = 1000
TOLERANCE = 40


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, ctype, _, _, interlace = header
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("unsupported PNG: depth %d, colour type %d, interlace %d" % (depth, ctype, interlace))
    return width, height, 3 if ctype == 2 else 4, zlib.decompress(b"".join(idat))


def unfilter(width, height, bpp, raw):
    """The rows' bytes with PNG's per-row filters undone."""
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        row = bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 255
        elif kind == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prev))
        elif kind == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(row))
        prev = row
    return rows


def main():
    path = sys.argv[1]
    want = tuple(int(sys.argv[2][i:i + 2], 16) for i in (0, 2, 4)) if len(sys.argv) > 2 else (0x2F, 0x6F, 0xDF)
    width, height, bpp, raw = read_png(path)
    colours = Counter()
    for row in unfilter(width, height, bpp, raw):
        colours.update(row[i:i + 3] for i in range(0, len(row), bpp))
    total = width * height
    background, count = colours.most_common(1)[0]
    ink = sum(n for c, n in colours.items() if all(abs(c[k] - want[k]) <= TOLERANCE for k in range(3)))
    share = count / total
    print("%s: %dx%d, %d colours, background #%s covers %.1f %%, %d pixels near #%02x%02x%02x"
          % (path, width, height, len(colours), background.hex(), 100 * share, ink, *want))
    if share >= 0.98 or ink < MIN_INK:
        print("%s: the page looks blank" % path)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
