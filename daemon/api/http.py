"""HTTP plumbing shared by every route module: the JSON envelope, parameters, the upload
cap (checked from the headers, before the body is kept) and basic auth.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import json
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.cred._digest import calcHA1, calcHA2, calcResponse
from twisted.cred.credentials import DigestCredentialFactory
from twisted.cred.error import LoginFailed
from twisted.internet.threads import deferToThread
from twisted.web import http, resource, server

from daemon.config import AuthConfig
from daemon.errors import DaemonError

JSON_TYPE = b"application/json"
REALM = b"coinspiders"
# Form bodies up to this size are parsed on the reactor thread (well under a
# millisecond); larger ones (project uploads) in a worker thread, as parsing a
# multi-megabyte body takes seconds of pure Python.
INLINE_FORM_BYTES = 256 * 1024
_FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")


class ApiError(DaemonError):
    """A refused request; rendered in the app's envelope (daemon.api.routing) when no
    route catches it."""


def encode_json(data: dict[str, Any]) -> bytes:
    """A reply's bytes; thread-safe, so a big reply can be encoded off the reactor."""
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")


def json_body(request: Any, data: dict[str, Any], code: int = 200) -> bytes:
    """Encode a reply; scrapy-do's client wants the Content-Type to be exactly this."""
    return json_reply(request, encode_json(data), code)


def json_reply(request: Any, body: bytes, code: int = 200) -> bytes:
    """Send bytes from encode_json with the reply headers."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", JSON_TYPE)
    request.setHeader(b"Content-Length", str(len(body)).encode())
    request.setHeader(b"Cache-Control", b"no-store")
    return body


def ok(request: Any, **data: Any) -> bytes:
    return json_body(request, {"status": "ok", **data})


def error_body(request: Any, message: str, code: int) -> bytes:
    return json_body(request, {"status": "error", "msg": message}, code)


def _values(request: Any, name: str) -> list[str]:
    raw = (request.args or {}).get(name.encode(), [])
    out = []
    for value in raw:
        try:
            out.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(f"parameter {name!r} is not valid UTF-8") from None
    return out


def arg(request: Any, name: str, default: str | None = None, required: bool = False) -> str | None:
    """One parameter (query or form); given twice is an error, not a silent pick."""
    values = _values(request, name)
    if not values:
        if required:
            raise ApiError(f"Missing argument: {name}")
        return default
    if len(values) > 1:
        raise ApiError(f"parameter {name!r} is given more than once")
    if "\x00" in values[0]:
        raise ApiError(f"parameter {name!r} contains a NUL byte")
    return values[0]


def required(request: Any, name: str) -> str:
    value = arg(request, name, required=True)
    assert value is not None
    return value


def arg_list(request: Any, name: str) -> list[str]:
    return _values(request, name)


def arg_int(request: Any, name: str, default: int, low: int, high: int) -> int:
    raw = arg(request, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"parameter {name!r} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise ApiError(f"parameter {name!r} must be between {low} and {high}")
    return value


class ErrorResource(resource.Resource):
    """Answers every method with one JSON error (used before routing: 401, 413)."""

    isLeaf = True

    def __init__(
        self, message: str, code: int, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__()
        self.message, self.code, self.headers = message, code, headers or []

    def render(self, request: Any) -> bytes:
        for key, value in self.headers:
            request.responseHeaders.addRawHeader(key, value)
        if self.code == 413:
            request.setHeader(b"Connection", b"close")
        return error_body(request, self.message, self.code)


MAX_FORM_FIELDS = 1000
_UNQUOTE_SLICE = 64 * 1024


def _unquote_plus(value: bytes) -> bytes:
    """Percent-decoding in 64 KB slices: each C call holds the GIL for about a
    millisecond, so the reactor thread keeps running while a worker decodes megabytes
    (one `unquote_to_bytes` of a 15 MB upload holds it for ~0.4 s)."""
    value = value.replace(b"+", b" ")
    if len(value) <= _UNQUOTE_SLICE:
        return unquote_to_bytes(value)
    parts, start = [], 0
    while start < len(value):
        end = min(start + _UNQUOTE_SLICE, len(value))
        # Never cut inside a %XX escape.
        pct = value.rfind(b"%", max(start, end - 2), end)
        if pct != -1 and end < len(value):
            end = pct
        parts.append(unquote_to_bytes(value[start:end]))
        start = end
    return b"".join(parts)


def parse_urlencoded(body: bytes) -> dict[bytes, list[bytes]]:
    """application/x-www-form-urlencoded, blank values kept (as Twisted parses it)."""
    if body.count(b"&") >= MAX_FORM_FIELDS:
        raise ValueError(f"more than {MAX_FORM_FIELDS} form fields")
    fields: dict[bytes, list[bytes]] = {}
    for pair in body.split(b"&"):
        name, sep, value = pair.partition(b"=")
        if not sep:
            continue
        fields.setdefault(_unquote_plus(name), []).append(_unquote_plus(value))
    return fields


def parse_form(body: bytes, ctype: bytes) -> dict[bytes, list[bytes]]:
    """The fields of a form body (urlencoded or multipart); ValueError when malformed."""
    kind = ctype.split(b";", 1)[0].strip().lower()
    if kind == b"application/x-www-form-urlencoded":
        return parse_urlencoded(body)
    try:
        return dict(http._getMultiPartArgs(body, ctype))
    except Exception as exc:
        raise ValueError(f"malformed multipart body: {exc}") from None


class GuardedRequest(server.Request):
    """A request that refuses a body over the cap as soon as its length is known, and
    parses big form bodies off the reactor thread.

    Twisted keeps a request body in memory (or a temp file) before routing; here a body
    announced (Content-Length) or grown (chunked) past the cap is dropped as it arrives,
    never stored, and the request is answered 413. A malformed form body is answered
    400 with the JSON envelope.
    """

    too_large = False
    bad_body: str | None = None

    def __init__(self, channel: Any, *args: Any, **kw: Any) -> None:
        kw["parsePOSTFormSubmission"] = False  # done in process(), below
        super().__init__(channel, *args, **kw)

    def gotLength(self, length: int | None) -> None:
        cap = getattr(self.channel.site, "upload_max_bytes", 0)
        if cap and length is not None and length > cap:
            self.too_large = True
            self.content = io.BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        cap = getattr(self.channel.site, "upload_max_bytes", 0)
        if cap and self.content.tell() + len(data) > cap:
            self.too_large = True
            self.content.close()
            self.content = io.BytesIO()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        ctype = self.getHeader(b"content-type") or b""
        kind = ctype.split(b";", 1)[0].strip().lower()
        self.content.seek(0, 2)
        size = self.content.tell()
        self.content.seek(0)
        if self.too_large or self.method != b"POST" or not size or kind not in _FORM_TYPES:
            super().process()
            return
        if size <= INLINE_FORM_BYTES:
            self._parsed(ctype)
            return
        deferToThread(self._read_and_parse, ctype).addBoth(self._parsed_in_thread)

    def _read_and_parse(self, ctype: bytes) -> dict[bytes, list[bytes]]:
        self.content.seek(0)
        fields = parse_form(self.content.read(), ctype)
        self.content.seek(0)
        return fields

    def _parsed(self, ctype: bytes) -> None:
        try:
            fields = parse_form(self.content.read(), ctype)
        except ValueError as exc:
            self.bad_body = str(exc)
        else:
            self.args.update(fields)
        self.content.seek(0)
        super().process()

    def _parsed_in_thread(self, result: Any) -> None:
        if isinstance(result, dict):
            self.args.update(result)
        else:
            error = getattr(result, "value", result)
            self.bad_body = str(error) if isinstance(error, ValueError) else "unreadable body"
        super().process()


def _client_host(request: Any) -> bytes:
    address = request.getClientAddress()
    return str(getattr(address, "host", "")).encode()


def _encodings(text: str) -> list[bytes]:
    out = [text.encode("utf-8")]
    try:
        out.append(text.encode("latin-1"))
    except UnicodeEncodeError:
        out.append(out[0])
    return out


class GuardedSite(server.Site):
    """Checks the upload cap and basic auth before any route sees the request."""

    requestFactory = GuardedRequest

    def __init__(
        self, root: resource.Resource, auth: AuthConfig | None, upload_max_bytes: int
    ) -> None:
        super().__init__(root)
        self.auth = auth
        self.upload_max_bytes = upload_max_bytes
        self.displayTracebacks = False
        self.noisy = False
        if auth is not None:
            # UTF-8 per RFC 7617; Latin-1 too, as many clients (python-requests) send it.
            self._users = _encodings(auth.username)
            self._passwords = _encodings(auth.password)
            self._digest = DigestCredentialFactory(b"md5", REALM)

    def getResourceFor(self, request: Any) -> resource.Resource:
        if self.auth is not None and not self._authorized(request):
            return ErrorResource("Authentication required", 401, self._challenges(request))
        if getattr(request, "too_large", False):
            return ErrorResource(
                f"Request body is larger than the upload cap of {self.upload_max_bytes} bytes",
                413,
            )
        if getattr(request, "bad_body", None):
            return ErrorResource(f"Bad request body: {request.bad_body}", 400)
        try:
            unquote_to_bytes(request.path).decode("utf-8")
        except UnicodeDecodeError:
            return ErrorResource("The request path is not valid UTF-8", 400)
        return super().getResourceFor(request)

    def _challenges(self, request: Any) -> list[tuple[bytes, bytes]]:
        """Digest first (scrapy-do's client speaks only Digest and reads the first
        challenge), then Basic (curl -u, browsers, most clients)."""
        fields = self._digest.getChallenge(_client_host(request))
        digest = b"Digest " + b", ".join(
            b'%s="%s"' % (key.encode(), value if isinstance(value, bytes) else value.encode())
            for key, value in fields.items()
        )
        basic = b'Basic realm="%s", charset="UTF-8"' % REALM
        return [(b"WWW-Authenticate", digest), (b"WWW-Authenticate", basic)]

    def _authorized(self, request: Any) -> bool:
        header = request.getHeader(b"authorization") or b""
        scheme, _, token = header.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"basic":
            return self._basic_ok(token.strip())
        if scheme == b"digest":
            return self._digest_ok(token.strip(), request)
        return False

    def _basic_ok(self, token: bytes) -> bool:
        try:
            decoded = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        # Every candidate compared, always, in constant time: no early exit to time.
        user_ok = [hmac.compare_digest(user, u) for u in self._users]
        password_ok = [hmac.compare_digest(password, p) for p in self._passwords]
        return bool(sep) and any(user_ok) and any(password_ok)

    def _digest_ok(self, token: bytes, request: Any) -> bool:
        """RFC 2617 Digest (MD5, qop=auth), as scrapy-do's client sends it. The nonce is
        stateless (Twisted's signed opaque, valid 15 minutes): nothing kept per client."""
        try:
            creds = self._digest.decode(token, request.method, _client_host(request))
        except (LoginFailed, ValueError, TypeError):
            return False
        if creds is None:
            return False
        fields = creds.fields
        if fields.get("uri") != request.uri:
            return False  # a response computed for another path
        algo = fields.get("algorithm", b"md5").lower()
        qop = fields.get("qop", b"auth")
        try:
            expected = calcResponse(
                calcHA1(
                    algo,
                    self._users[0],
                    REALM,
                    self._passwords[0],
                    fields.get("nonce"),
                    fields.get("cnonce"),
                ),
                calcHA2(algo, request.method, fields.get("uri"), qop, None),
                algo,
                fields.get("nonce"),
                fields.get("nc"),
                fields.get("cnonce"),
                qop,
            )
        except (KeyError, TypeError, ValueError):
            return False
        user_ok = hmac.compare_digest(creds.username, self._users[0])
        response_ok = hmac.compare_digest(expected, fields.get("response") or b"")
        return user_ok and response_ok

    def log(self, request: Any) -> None:
        """Access log without query strings (they may carry values users consider private)."""
        return
