"""OpenAI's edit mask, redrawn for the providers whose masks mean something else.

OpenAI's mask is a PNG whose fully transparent pixels (alpha 0) mark what to change.
Amazon's INPAINTING (Nova Canvas, Titan Image) takes a black-and-white image instead:
black is what to change, white what to keep, 8 bits a channel. Google's Imagen editing
takes one the other way round: its non-zero (white) pixels are what changes.

Only the mask's alpha is read: PNG filters work on each channel alone, so the alpha
bytes of a row are unfiltered as a one-channel image's would be. The standard library
only (zlib); the work is a few passes over bytes, run off the event loop by the caller.
"""

from __future__ import annotations

import struct
import zlib
from itertools import accumulate

from sluicegate.errors import InvalidRequest

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> (bytes a pixel, offset of the alpha byte) at 8 bits a channel
_ALPHA = {6: (4, 3), 4: (2, 1), 3: (1, 0)}  # RGBA, grey + alpha, palette (+ tRNS)
_MOST_PIXELS = 4096 * 4096
# alpha 0 (change) -> black, anything else (keep) -> white; Google's the other way round
_AMAZON = bytes([0] + [255] * 255)
_GOOGLE = bytes([255] + [0] * 255)


def _refused(why: str) -> InvalidRequest:
    return InvalidRequest(
        f"mask must be a PNG with an alpha channel (8 bits, not interlaced): {why}.",
        param="mask",
    )


def _chunks(png: bytes) -> tuple[bytes, bytes, bytes]:
    """The PNG's IHDR, its IDAT data joined, and its tRNS (empty when absent)."""
    if not png.startswith(_SIGNATURE):
        raise _refused("not a PNG")
    header, data, transparency = b"", bytearray(), b""
    pos = len(_SIGNATURE)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        chunk = png[pos + 8 : pos + 8 + length]
        if len(chunk) != length:
            raise _refused("it is cut short")
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            data += chunk
        elif kind == b"tRNS":
            transparency = chunk
        elif kind == b"IEND":
            break
        pos += 12 + length
    if len(header) != 13 or not data:
        raise _refused("no image header or data")
    return header, bytes(data), transparency


def _add(left: int, x: int) -> int:
    return (left + x) & 255


def _unfilter(kind: int, row: bytes, above: bytes) -> bytes:
    """One channel's bytes of a row, its filter undone (a pixel is one byte here)."""
    if kind == 0:
        return row
    if kind == 1:  # Sub: the pixel to the left
        sums: list[int] = list(accumulate(row, _add))
        return bytes(sums)
    if kind == 2:  # Up: the pixel above
        return bytes((x + up) & 255 for x, up in zip(row, above, strict=True))
    out = bytearray(len(row))
    left = corner = 0
    for i, (x, up) in enumerate(zip(row, above, strict=True)):
        if kind == 3:  # Average of left and above
            left = (x + ((left + up) >> 1)) & 255
        elif kind == 4:  # Paeth: whichever of left, above, corner is nearest their sum
            guess = left + up - corner
            a, b, c = abs(guess - left), abs(guess - up), abs(guess - corner)
            near = left if a <= b and a <= c else up if b <= c else corner
            left = (x + near) & 255
        else:
            raise _refused(f"unknown row filter {kind}")
        out[i] = left
        corner = up
    return bytes(out)


def alpha_rows(png: bytes) -> tuple[int, int, list[bytes]]:
    """The mask's width, height and alpha values, row by row."""
    header, data, transparency = _chunks(png)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if colour not in _ALPHA or depth != 8 or interlace:
        raise _refused(f"colour type {colour}, {depth} bits, interlace {interlace}")
    if colour == 3 and not transparency:
        raise _refused("a palette without transparency")
    if not 0 < width * height <= _MOST_PIXELS:
        raise _refused(f"{width}x{height} pixels")
    bpp, offset = _ALPHA[colour]
    stride = 1 + width * bpp
    inflater = zlib.decompressobj()
    raw = inflater.decompress(data, stride * height)  # no more than the image holds
    if len(raw) != stride * height:
        raise _refused("its data is shorter than its size")
    # A palette's alpha is its tRNS entry (opaque past the table's end).
    palette = (transparency + b"\xff" * 256)[:256] if colour == 3 else None
    rows: list[bytes] = []
    above = bytes(width)
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        channel = _unfilter(line[0], line[1 + offset :: bpp], above)
        above = channel
        rows.append(channel.translate(palette) if palette is not None else channel)
    return width, height, rows


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    body = zlib.compress(b"".join(b"\x00" + row for row in rows), 6)
    return _SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def amazon_mask(png: bytes) -> bytes:
    """OpenAI's mask as Amazon's: an RGB PNG, black where the mask is transparent."""
    return _redrawn(png, _AMAZON)


def google_mask(png: bytes) -> bytes:
    """OpenAI's mask as Imagen's: an RGB PNG, white where the mask is transparent."""
    return _redrawn(png, _GOOGLE)


def _redrawn(png: bytes, colours: bytes) -> bytes:
    width, height, rows = alpha_rows(png)
    drawn: list[bytes] = []
    for alpha in rows:
        grey = alpha.translate(colours)
        rgb = bytearray(3 * width)
        rgb[0::3] = rgb[1::3] = rgb[2::3] = grey
        drawn.append(bytes(rgb))
    return _png(width, height, drawn)
