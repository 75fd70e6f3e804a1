"""Write a source PNG's image data as it is, instead of decoding and re-encoding it.

A source PNG whose pixels reach the output unchanged (same mode, same bit depth, no crop or
conversion) already holds a valid compressed stream for them: the output keeps its IHDR and its
IDAT chunks byte for byte, adds IEND, and drops everything else (text, timestamps, physical size,
gamma, colour profile, transparency key, suggested palette: the output contract allows no
metadata, and re-encoding the decoded array would drop them too). The result is a function of the
source file's bytes alone, so it is byte-reproducible on any machine without any codec involved.
When the source has nothing to drop, the output is the source file itself: images.write_png then
hard-links the unpacked file (both tiers are replaced whole, never edited in place), so the
converted image costs no disk.

Kept out (those files are re-encoded as before):
- interlaced (Adam7) sources: their data stays interlaced if copied, which is bigger and makes
  every later reader de-interlace; a plain sequential file is what the rest of the outputs are;
- palette images, bit depths other than 8 (and 16 for greyscale), 16-bit colour: the decoded
  array is not at the file's depth or mode, so the file's data is not the array's;
- animated PNGs (acTL), and any critical chunk PNG does not define (Apple's CgBI files, whose
  IDAT is not a zlib stream): the copied data might not mean the decoded frame;
- a copied chunk whose CRC is wrong, a chunk running past the end of the file, no IEND.
The image data itself is not inflated a second time: the caller has just decoded exactly these
bytes into every row the header declares (Pillow refuses a short stream), so the copy holds a
stream its readers decode to the same pixels. What that decode does not see (an Adler-32 that
does not match, bytes after the stream's end inside the last IDAT) stays as the publisher wrote
it; checking for it would cost a second inflate (~1/4 of the decode) for every image.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
# colour type -> samples per pixel (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA; 3, palette, is never copied)
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
KNOWN_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


@dataclass(frozen=True)
class PngCopy:
    """A source PNG's IHDR and IDAT chunks, and the decoded array they stand for (``pixels``): the
    copy is written only for that very array object (read-only), so a crop, flip or conversion,
    which makes a new array, is encoded instead."""

    ihdr: bytes  # the whole chunk: length, type, data, CRC
    idat: bytes  # every IDAT chunk, whole, in file order
    pixels: np.ndarray
    # the source file, when the copy would equal it byte for byte (nothing dropped): write_png may
    # then hard-link it instead of writing a second copy (no disk for the converted image)
    same_as: Path | None = None

    def fits(self, arr: np.ndarray) -> bool:
        return arr is self.pixels

    def png(self) -> bytes:
        return SIGNATURE + self.ihdr + self.idat + IEND


def copyable(data: bytes, pixels: np.ndarray) -> PngCopy | None:
    """The chunks to copy when ``data`` (a whole PNG file) is a plain sequential PNG whose image
    data, inflated, is exactly ``pixels`` at the file's own depth; else None (encode instead).
    ``pixels`` must be the decoder's output for ``data`` (the caller decoded it)."""
    if not data.startswith(SIGNATURE):
        return None
    chunks = _chunks(data)
    if chunks is None or not chunks or chunks[0][0] != b"IHDR":
        return None
    _, ihdr_start, ihdr_end = chunks[0]
    if ihdr_end - ihdr_start != 12 + 13:
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[ihdr_start + 8: ihdr_end - 4])
    channels = CHANNELS.get(colour)
    if channels is None or compression or filtering or interlace:
        return None
    if not (depth == 8 or (depth == 16 and colour == 0)):
        return None
    shape = (height, width) if channels == 1 else (height, width, channels)
    if pixels.shape != shape or pixels.dtype != (np.uint8 if depth == 8 else np.uint16):
        return None
    kinds = [kind for kind, _, _ in chunks]
    if any(k[:1].isupper() and k not in KNOWN_CRITICAL for k in kinds) or b"acTL" in kinds:
        return None
    idats = [i for i, k in enumerate(kinds) if k == b"IDAT"]
    if not idats or idats != list(range(idats[0], idats[-1] + 1)):  # IDATs must be consecutive
        return None
    start, end = chunks[idats[0]][1], chunks[idats[-1]][2]
    pixels.flags.writeable = False  # the copy stands for these values: nobody may change them in place
    return PngCopy(ihdr=data[ihdr_start:ihdr_end], idat=data[start:end], pixels=pixels)


def linkable(copy: PngCopy, data: bytes, path: Path) -> PngCopy:
    """``copy`` with same_as=path when its PNG is ``data`` itself (the file carries nothing to drop)
    and the file is a plain file (not a link to a user's own file)."""
    if len(data) == len(SIGNATURE) + len(copy.ihdr) + len(copy.idat) + len(IEND) and copy.png() == data and not path.is_symlink():
        return replace(copy, same_as=path)
    return copy


def _chunks(data: bytes) -> list[tuple[bytes, int, int]] | None:
    """(type, start, end) of every chunk up to IEND, CRCs checked; None when the chunk layout is
    broken (a length running past the end, a bad CRC, no IEND)."""
    out, pos, size = [], len(SIGNATURE), len(data)
    while pos + 12 <= size:
        length, kind = struct.unpack(">I4s", data[pos: pos + 8])
        end = pos + 12 + length
        if end > size:
            return None
        (crc,) = struct.unpack(">I", data[end - 4: end])
        if kind in (b"IHDR", b"IDAT") and zlib.crc32(data[pos + 4: end - 4]) != crc:
            return None  # only the copied chunks matter; the dropped ones may be as broken as they like
        if kind == b"IEND":
            return out
        out.append((kind, pos, end))
        pos = end
    return None
