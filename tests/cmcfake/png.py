"""Logos: the two recorded PNGs, and a small valid PNG made from any other id.

A generated logo is a 64x64 RGBA disc whose colours come from the id, so the same id
always gives the same bytes and two ids give different files.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from functools import lru_cache

from .pages import FIXTURES

RECORDED_LOGOS = {1: FIXTURES / "logo-64x64-1.png", 1027: FIXTURES / "logo-64x64-1027.png"}
SIZE = 64


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _mask() -> list[list[tuple[int, int]]]:
    """Per row, runs of (palette index, length): 0 transparent, 1 fill, 2 ring."""
    center = (SIZE - 1) / 2
    rows = []
    for y in range(SIZE):
        runs: list[tuple[int, int]] = []
        for x in range(SIZE):
            distance = ((x - center) ** 2 + (y - center) ** 2) ** 0.5
            kind = 1 if distance <= 22 else 2 if distance <= 31 else 0
            if runs and runs[-1][0] == kind:
                runs[-1] = (kind, runs[-1][1] + 1)
            else:
                runs.append((kind, 1))
        rows.append(runs)
    return rows


_MASK = _mask()
_HEADER = _chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0))


@lru_cache(maxsize=8192)
def generated_logo(coin_id: int) -> bytes:
    digest = hashlib.sha256(f"logo:{coin_id}".encode()).digest()
    palette = (b"\x00\x00\x00\x00", digest[:3] + b"\xff", digest[3:6] + b"\xff")
    raw = b"".join(
        b"\x00" + b"".join(palette[kind] * length for kind, length in runs) for runs in _MASK
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + _HEADER
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


@lru_cache(maxsize=4)
def recorded_logo(coin_id: int) -> bytes:
    return RECORDED_LOGOS[coin_id].read_bytes()


def logo(coin_id: int) -> bytes:
    if coin_id in RECORDED_LOGOS:
        return recorded_logo(coin_id)
    return generated_logo(coin_id)
