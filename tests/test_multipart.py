"""The fast reader of multipart forms (daemon.api.multipart) against Twisted's own
parser: the same fields for every body, whether the fast path reads it or declines it."""

from __future__ import annotations

import random

import pytest
from twisted.web import http
from urllib3 import encode_multipart_formdata

from bench.common import multipart as bench_multipart
from daemon.api.http import parse_form
from daemon.api.multipart import fast_form_fields


def twisted_fields(body: bytes, ctype: bytes) -> dict[bytes, list[bytes]] | str:
    try:
        return dict(http._getMultiPartArgs(body, ctype))
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def ours(body: bytes, ctype: bytes) -> dict[bytes, list[bytes]] | str:
    try:
        return parse_form(body, ctype)
    except ValueError as exc:
        return f"error: {exc}"


def bench_form(fields: dict[str, str]) -> tuple[bytes, bytes]:
    body, ctype = bench_multipart(fields, {})
    return body, ctype.encode()


def encoded(fields: list[tuple[str, object]], boundary: str | None = None) -> tuple[bytes, bytes]:
    body, ctype = encode_multipart_formdata(fields, boundary=boundary)
    return body, ctype.encode()


# The forms clients send: curl -F, requests/urllib3, scrapy-do's, the bench's.
PLAIN = [
    encoded([("project", "toy"), ("spider", "items"), ("when", "now")]),
    encoded(
        [("payload", '{"coins": "BTC,ETH", "ü": "é"}'), ("setting", "A=1"), ("setting", "B=2")]
    ),
    encoded([("description", "two\r\nlines\nand a \r bare CR"), ("empty", "")]),
    encoded([("value", "ends with CR\r"), ("dashes", "--not-a-boundary--")]),
    encoded([("archive", ("p.zip", bytes(range(256)) * 4, "application/octet-stream"))]),
    encoded([("text", ("t.txt", "plain text", "text/plain; charset=utf-8"))]),
    encoded([("project", "toy")], boundary="simple-boundary"),
    bench_form({"project": "benchping", "spider": "ping", "when": "now"}),
]

# Bodies the fast path must decline (Twisted reads them its own way, or refuses them).
ODD = [
    (
        b'--b\nContent-Disposition: form-data; name="a"\n\n1\n--b--\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'pre\r\n--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\nepilogue',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nMQ==\r\n--b--\r\n",
        b"multipart/form-data; boundary=b",
    ),
    (
        b"--b\r\nContent-Disposition: form-data; name*=utf-8''%C3%BC\r\n\r\n1\r\n--b--\r\n",
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="a\\"b"\r\n\r\n1\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\n--b\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n',
        b'multipart/form-data; boundary="b"; boundary=c',
    ),
    (
        b'--b\r\nContent-Disposition: form-data;\r\n name="a"\r\n\r\n1\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\nContent-ID: x\r\n\r\n1\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: form-data; name="\xc3\xbc"\r\n\r\n1\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b\r\nContent-Disposition: attachment; name="a"\r\n\r\n1\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n"
        b'Content-Disposition: form-data; name="a"\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (
        b'--b  \r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n',
        b"multipart/form-data; boundary=b",
    ),
    (b"", b"multipart/form-data; boundary=b"),
    (b"--b--\r\n", b"multipart/form-data"),
]


# Ids by position: the bodies carry random boundaries, and test ids must be the same in
# every process that collects them (pytest-xdist).
@pytest.mark.parametrize(("body", "ctype"), PLAIN, ids=[f"plain{n}" for n in range(len(PLAIN))])
def test_plain_forms_are_read_fast_with_the_fields_twisted_reads(body: bytes, ctype: bytes) -> None:
    fast = fast_form_fields(body, ctype)
    assert fast is not None
    assert fast == twisted_fields(body, ctype) == ours(body, ctype)


@pytest.mark.parametrize(("body", "ctype"), ODD, ids=[f"odd{n}" for n in range(len(ODD))])
def test_other_bodies_are_left_to_twisted(body: bytes, ctype: bytes) -> None:
    assert fast_form_fields(body, ctype) is None
    expected = twisted_fields(body, ctype)
    got = ours(body, ctype)
    if isinstance(expected, str):
        assert got.startswith("error: malformed multipart body"), got
    else:
        assert got == expected


def test_random_values_read_the_same_both_ways() -> None:
    rng = random.Random(14)
    alphabet = [b"\r", b"\n", b"\r\n", b"-", b"--", b"a", b"\xff", b"\x00", b" ", b'"', b";"]
    for _ in range(400):
        boundary = rng.choice(["b", "xYz-123", "----WebKitFormBoundaryAbC"])
        fields: list[tuple[str, object]] = []
        for n in range(rng.randint(1, 5)):
            pieces = [rng.choice([*alphabet, boundary.encode()]) for _ in range(rng.randint(0, 12))]
            value = b"".join(pieces)
            if rng.random() < 0.3:
                fields.append((f"f{n}", ("x.bin", value, "application/octet-stream")))
            else:
                fields.append((f"f{n % 3}", value.decode("latin-1")))
        body, ctype = encoded(fields, boundary=boundary)
        expected = twisted_fields(body, ctype)
        assert ours(body, ctype) == expected, (body, expected)
