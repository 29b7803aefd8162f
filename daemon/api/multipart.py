"""The fields of a plain multipart/form-data body, read without the email package.

Twisted parses multipart forms with `email.message_from_bytes`, which costs several
milliseconds for a three-field form: most of a `schedule-job` request (clients such as
`curl -F` and scrapy-do's own send multipart). The bodies those clients write are
regular (CRLF lines, one Content-Disposition per part, no transfer encoding), and for
those `fast_form_fields` gives the same fields in a few microseconds. Anything else it
declines (returns None), and the caller uses Twisted's parser as before, so no body is
read differently from what Twisted would read (tests/test_multipart.py compares both).

Pure: no I/O, no Twisted.
"""

from __future__ import annotations

import re

__all__ = ["fast_form_fields"]

_BOUNDARY = re.compile(rb';\s*boundary=(?:"([^"\\\r\n]{1,70})"|([^\s;"]{1,70}))\s*(?=;|$)', re.I)
_PARAM = re.compile(rb'\s*;\s*([A-Za-z]+)\s*=\s*"([^"\\\r\n]*)"\s*')
_PLAIN_TYPES = (b"text/plain", b"application/octet-stream")


def _boundary(ctype: bytes) -> bytes | None:
    if ctype.split(b";", 1)[0].strip().lower() != b"multipart/form-data":
        return None
    found = _BOUNDARY.search(ctype)
    if found is None or len(_BOUNDARY.findall(ctype)) != 1:
        return None
    return found.group(1) or found.group(2)


def _name(headers: bytes) -> bytes | bool | None:
    """The part's field name; None for a part without one (skipped, as Twisted does);
    False when the headers are not plain enough to read here."""
    disposition: bytes | None = None
    for line in headers.split(b"\r\n"):
        key, sep, value = line.partition(b":")
        if not sep or key != key.strip() or not key:
            return False
        key = key.lower()
        if key == b"content-disposition":
            if disposition is not None:
                return False
            disposition = value
        elif key == b"content-type":
            if value.strip().lower().split(b";", 1)[0].strip() not in _PLAIN_TYPES:
                return False
        else:
            return False
    if disposition is None:
        return False
    kind, _sep, params = disposition.partition(b";")
    if kind.strip().lower() != b"form-data":
        return False
    params = b";" + params if _sep else b""
    names: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(params):
        match = _PARAM.match(params, pos)
        if match is None or match.end() == pos:
            return False
        key = match.group(1).lower()
        if key in names:
            return False
        names[key] = match.group(2)
        pos = match.end()
    name = names.get(b"name")
    if name is None or not name:
        return None
    try:
        name.decode("ascii")
    except UnicodeDecodeError:
        return False  # a non-ASCII name: left to the email package's own decoding
    return name


def fast_form_fields(body: bytes, ctype: bytes) -> dict[bytes, list[bytes]] | None:
    """The fields of `body` (name -> values, in order), or None when the body is not
    one of the plain forms read here."""
    boundary = _boundary(ctype)
    if boundary is None:
        return None
    delimiter = b"--" + boundary
    if not body.startswith(delimiter + b"\r\n"):
        return None
    separator = b"\r\n" + delimiter
    fields: dict[bytes, list[bytes]] = {}
    pos = len(delimiter) + 2
    parts = 0
    while True:
        end = body.find(separator, pos)
        if end < 0:
            return None
        parts += 1
        head_end = body.find(b"\r\n\r\n", pos, end)
        if head_end < 0:
            return None
        name = _name(body[pos:head_end])
        if name is False:
            return None
        if isinstance(name, bytes):
            fields.setdefault(name, []).append(body[head_end + 4 : end])
        after = end + len(separator)
        tail = body[after : after + 2]
        if tail == b"--":
            if body[after + 2 :] not in (b"", b"\r\n"):
                return None  # an epilogue
            break
        if tail != b"\r\n":
            return None
        pos = after + 2
    # The delimiter inside a value (after a bare LF, say) reads otherwise elsewhere.
    if body.count(delimiter) != parts + 1:
        return None
    return fields
