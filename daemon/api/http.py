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

from twisted.web import resource, server

from daemon.config import AuthConfig

JSON_TYPE = b"application/json"


class ApiError(Exception):
    """A refused request; rendered as {"status": "error", "msg": message}."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


def json_body(request: Any, data: dict[str, Any], code: int = 200) -> bytes:
    """Encode a reply; scrapy-do's client wants the Content-Type to be exactly this."""
    body = (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")
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

    def __init__(self, message: str, code: int, headers: dict[bytes, bytes] | None = None):
        super().__init__()
        self.message, self.code, self.headers = message, code, headers or {}

    def render(self, request: Any) -> bytes:
        for key, value in self.headers.items():
            request.setHeader(key, value)
        if self.code == 413:
            request.setHeader(b"Connection", b"close")
        return error_body(request, self.message, self.code)


class GuardedRequest(server.Request):
    """A request that refuses a body over the cap as soon as its length is known.

    Twisted keeps a request body in memory (or a temp file) before routing; here a body
    announced (Content-Length) or grown (chunked) past the cap is dropped as it arrives,
    never stored, and the request is answered 413.
    """

    too_large = False

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

    def getResourceFor(self, request: Any) -> resource.Resource:
        if self.auth is not None and not self._authorized(request):
            return ErrorResource(
                "Authentication required",
                401,
                {b"WWW-Authenticate": b'Basic realm="coinspiders", charset="UTF-8"'},
            )
        if getattr(request, "too_large", False):
            return ErrorResource(
                f"Request body is larger than the upload cap of {self.upload_max_bytes} bytes",
                413,
            )
        return super().getResourceFor(request)

    def _authorized(self, request: Any) -> bool:
        header = request.getHeader(b"authorization") or b""
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        # Both compared, always, in constant time: no early exit that times the name.
        user_ok = [hmac.compare_digest(user, u) for u in self._users]
        password_ok = [hmac.compare_digest(password, p) for p in self._passwords]
        return bool(sep) and any(user_ok) and any(password_ok)

    def log(self, request: Any) -> None:
        """Access log without query strings (they may carry values users consider private)."""
        return
