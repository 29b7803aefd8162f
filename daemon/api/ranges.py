"""Byte ranges of a log download (get-log's Range header), merged and bounded.

Twisted's static.File serves every range of a Range header as its own part, so
`bytes=0-,0-,...` twenty times over a 1 GiB log is a 20 GiB answer. RFC 9110 (14.2,
15.3.7.2) lets a server coalesce overlapping ranges and reject a request for many; here
overlapping and adjacent ranges are merged into one, and a set that still has more than
MAX_RANGES parts is answered 416, so an answer is never longer than the log plus a few
part headers.
"""

from __future__ import annotations

from typing import Any

from twisted.web.static import File

from daemon.api.http import error_body

MAX_RANGES = 8
_MAX_DIGITS = 19  # beyond any file size; longer numbers are not parsed


class RangeRefused(ValueError):
    """No range of the set can be served, or too many remain after merging (416)."""


def _number(text: bytes) -> int:
    """A range bound; ValueError when not digits. Longer than any file size is capped
    (int() of thousands of digits is slow, and the value only needs to be "too big")."""
    if not text.isascii() or not text.isdigit():
        raise ValueError("not a number")
    return int(text) if len(text) <= _MAX_DIGITS else 10**_MAX_DIGITS


def plan_ranges(
    header: bytes, size: int, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]] | None:
    """The [start, end) spans to serve for a Range header on a file of `size` bytes,
    sorted, with overlapping and adjacent ones merged.

    None when the header is not a well-formed bytes range set: the whole file is
    served, as RFC 9110 lets a server ignore such a header (Twisted does the same).
    Ranges that start past the end are left out; RangeRefused when none is left or more
    than `max_ranges` are.
    """
    unit, sep, spec = header.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return None
    spans: list[tuple[int, int]] = []
    for item in spec.split(b","):
        item = item.strip()
        if not item:
            continue
        first, dash, last = item.partition(b"-")
        first, last = first.strip(), last.strip()
        try:
            if not dash or not (first or last):
                return None
            if not first:  # "-N": the last N bytes
                count = _number(last)
                start, end = max(size - count, 0), size
                if count == 0:
                    continue
            else:
                start = _number(first)
                end = _number(last) + 1 if last else size
                if last and end <= start:
                    return None  # "5-2" is invalid, which invalidates the header
                if start >= size:
                    continue  # starts past the end: unsatisfiable
                end = min(end, size)
        except ValueError:
            return None
        spans.append((start, end))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:  # overlapping or adjacent
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    if not merged:
        raise RangeRefused(f"no range starts within the {size} bytes")
    if len(merged) > max_ranges:
        raise RangeRefused(
            f"{len(merged)} separate ranges; at most {max_ranges} are served at once"
        )
    return merged


def range_header(spans: list[tuple[int, int]]) -> bytes:
    """The Range header naming exactly `spans` (inclusive ends, as the header counts)."""
    return b"bytes=" + b",".join(b"%d-%d" % (start, end - 1) for start, end in spans)


class LogFile(File):
    """static.File (streamed in chunks, Range, HEAD) with the Range header merged and
    bounded by plan_ranges before File reads it."""

    def render_GET(self, request: Any) -> Any:
        header = request.getHeader(b"range")
        if header is not None:
            self.restat(False)
            if self.exists() and not self.isdir():
                size = self.getFileSize()
                try:
                    spans = plan_ranges(header, size)
                except RangeRefused as exc:
                    request.setHeader(b"Content-Range", b"bytes */%d" % size)
                    return error_body(request, f"Range not satisfiable: {exc}", 416)
                if spans is None:
                    request.requestHeaders.removeHeader(b"range")
                else:
                    request.requestHeaders.setRawHeaders(b"range", [range_header(spans)])
        return super().render_GET(request)
