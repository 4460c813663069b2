"""Just enough PNG to carry Character Cards: read/write chunks, tEXt entries, a plain avatar.

Written with struct + zlib so the pure core needs no imaging library. Every chunk's CRC is
checked on read: a card that was cut short or corrupted is refused, not half-imported.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CHUNK = 2**31 - 1  # the PNG spec's limit on a chunk's length


class PNGError(ValueError):
    """The bytes are not a well-formed PNG."""


@dataclass(frozen=True)
class Chunk:
    """One PNG chunk."""

    type: bytes
    """Four ASCII letters, e.g. b"IHDR", b"tEXt"."""
    data: bytes
    """The chunk's payload (without length, type and CRC)."""


def is_png(data: bytes) -> bool:
    """Whether the bytes start with the PNG signature."""
    return data.startswith(SIGNATURE)


def read_chunks(data: bytes) -> list[Chunk]:
    """Split a PNG into chunks, up to and including IEND, checking every CRC."""
    if not is_png(data):
        raise PNGError("not a PNG file (bad signature)")
    chunks: list[Chunk] = []
    offset = len(SIGNATURE)
    while True:
        if offset + 8 > len(data):
            raise PNGError("PNG is truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if length > MAX_CHUNK:
            raise PNGError("PNG chunk length is out of range")
        end = offset + 8 + length + 4
        if end > len(data):
            raise PNGError(f"PNG is truncated inside a {kind!r} chunk")
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            raise PNGError(f"PNG chunk {kind.decode('latin-1')!r} has a bad CRC")
        chunks.append(Chunk(kind, body))
        offset = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0].type != b"IHDR":
        raise PNGError("PNG does not start with an IHDR chunk")
    return chunks


def write_chunks(chunks: Iterable[Chunk]) -> bytes:
    """Serialise chunks (which must start with IHDR and end with IEND) to PNG bytes."""
    parts = [SIGNATURE]
    for chunk in chunks:
        parts.append(struct.pack(">I", len(chunk.data)))
        parts.append(chunk.type + chunk.data)
        parts.append(struct.pack(">I", zlib.crc32(chunk.type + chunk.data)))
    return b"".join(parts)


def text_chunks(chunks: Iterable[Chunk]) -> dict[str, str]:
    """The tEXt entries as keyword -> text; keywords lowercased, the first of each wins."""
    entries: dict[str, str] = {}
    for chunk in chunks:
        if chunk.type != b"tEXt" or b"\x00" not in chunk.data:
            continue
        keyword, _, text = chunk.data.partition(b"\x00")
        entries.setdefault(keyword.decode("latin-1").lower(), text.decode("latin-1"))
    return entries


def text_chunk(keyword: str, text: str) -> Chunk:
    """A tEXt chunk. tEXt is Latin-1; callers put base64 (plain ASCII) in it."""
    return Chunk(b"tEXt", keyword.encode("latin-1") + b"\x00" + text.encode("latin-1"))


def with_text(png: bytes, entries: dict[str, str], drop: Iterable[str] = ()) -> bytes:
    """The PNG with tEXt `entries` set, placed just before IEND. Old entries with the same
    keywords, or with a keyword in `drop`, are removed."""
    chunks = read_chunks(png)
    replaced = {k.lower() for k in entries} | {k.lower() for k in drop}
    kept = [c for c in chunks if not _is_text_for(c, replaced) and c.type != b"IEND"]
    added = [text_chunk(k, v) for k, v in entries.items()]
    return write_chunks([*kept, *added, Chunk(b"IEND", b"")])


def solid_avatar(seed: str, size: int = 64) -> bytes:
    """A size x size PNG of one colour derived from `seed` (the same name, the same colour)."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    # Keep the colour mid-bright so text drawn over it in the UI stays readable.
    rgb = bytes(64 + b // 2 for b in digest[:3])
    row = b"\x00" + rgb * size  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return write_chunks(
        [
            Chunk(b"IHDR", header),
            Chunk(b"IDAT", zlib.compress(row * size, 9)),
            Chunk(b"IEND", b""),
        ]
    )


def _is_text_for(chunk: Chunk, keywords: set[str]) -> bool:
    if chunk.type != b"tEXt":
        return False
    keyword = chunk.data.partition(b"\x00")[0].decode("latin-1").lower()
    return keyword in keywords
