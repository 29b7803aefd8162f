"""Reading a crawl's log for the dashboard: the tail first, then what follows, always in
bounded chunks and in a worker thread (a log can be gigabytes; the reactor never reads
one), and every line escaped and marked by level on the server, so the page only
inserts what it is sent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from html import escape

TAIL_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
_ERROR = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback |^\w+(Error|Exception): ")
_WARNING = re.compile(r"\bWARNING\b")


def line_level(line: str) -> str:
    """'e' for an error line (Scrapy's ERROR/CRITICAL, a traceback), 'w' for a warning,
    '' otherwise."""
    if _ERROR.search(line):
        return "e"
    if _WARNING.search(line):
        return "w"
    return ""


def lines_html(data: bytes) -> str:
    """Log bytes as one line of HTML: each log line a <div> (class e/w by level), text
    escaped. No newline in the result, so it is one SSE `data:` line as it is."""
    out = []
    for raw in data.decode("utf-8", "replace").split("\n"):
        line = raw.rstrip("\r").replace("\r", " ")
        level = line_level(line)
        cls = f' class="{level}"' if level else ""
        out.append(f"<div{cls}>{escape(line) or '&#8203;'}</div>")
    return "".join(out)


@dataclass(frozen=True)
class Chunk:
    """Bytes of a log from `start` to `end` (whole lines unless `final` let a last
    partial line through); `size` is the file's size when read."""

    start: int
    end: int
    data: bytes
    size: int


def read_tail(path: os.PathLike[str] | str, limit: int = TAIL_BYTES) -> Chunk:
    """The last `limit` bytes of a log, from the first whole line in them to the last
    newline (a line still being written comes with the stream). Blocking: call in a
    thread."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        start = max(0, size - limit)
        handle.seek(start)
        data = handle.read(size - start)
    if start > 0:
        cut = data.find(b"\n")
        if cut == -1:
            return Chunk(size, size, b"", size)
        start, data = start + cut + 1, data[cut + 1 :]
    last = data.rfind(b"\n")
    data = data[: last + 1] if last != -1 else b""
    return Chunk(start, start + len(data), data, size)


def read_from(
    path: os.PathLike[str] | str, offset: int, final: bool, limit: int = CHUNK_BYTES
) -> Chunk:
    """Up to `limit` bytes from `offset`, cut after the last newline; with `final` (the
    crawl has ended, nothing more will come) a last line without a newline too. Blocking:
    call in a thread."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        offset = min(offset, size)
        handle.seek(offset)
        data = handle.read(limit)
    if not (final and offset + len(data) >= size):
        last = data.rfind(b"\n")
        if last != -1:
            data = data[: last + 1]
        elif len(data) < limit:  # a line still being written (one longer than
            data = b""  # `limit` goes out in pieces instead of never)
    return Chunk(offset, offset + len(data), data, size)
