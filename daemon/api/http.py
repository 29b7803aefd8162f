"""HTTP plumbing shared by every route module: the JSON envelope, parameters, the upload
cap (checked from the headers, before the body is kept) and basic auth.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import io
import json
from collections.abc import Callable, Collection
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote_to_bytes

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
    """A refused request; rendered by `routing_error` when no route catches it."""


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


COIN_API_PREFIX = b"/api/"


def is_coin_api_path(path: bytes) -> bool:
    """Whether a request path belongs to the coin API (its own error envelope)."""
    return path == COIN_API_PREFIX.rstrip(b"/") or path.startswith(COIN_API_PREFIX)


def routing_error(request: Any, message: str, code: int) -> bytes:
    """An error answered by the app-wide handlers (unknown path, wrong method, a fault no
    route caught) in the envelope of the API the path belongs to: the coin API's
    {"error": true, "message": ...} under /api/, scrapy-do's everywhere else."""
    if is_coin_api_path(request.path or b""):
        return json_body(request, {"error": True, "message": message}, code)
    return error_body(request, message, code)


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


_MAX_NAMES_SHOWN = 10
#: A JSON body bigger than this is refused (413): one is parsed on the reactor thread.
MAX_JSON_BODY = 256 * 1024
F = TypeVar("F", bound=Callable[..., Any])


def _shown_names(names: list[str]) -> str:
    shown = [repr(n[:40]) if not n.isidentifier() else n for n in names[:_MAX_NAMES_SHOWN]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def check_params(request: Any, accepted: Collection[str], hint: str = "") -> None:
    """Refuse a parameter the route does not know.

    A misspelt or misplaced field (`-F coins=BTC` meant for the payload, `priority=5`)
    used to be dropped, and the job then failed at every run; a 400 naming it and the
    accepted ones makes the mistake visible when it is made.
    """
    known = set(accepted)
    unknown = sorted({name.decode("utf-8", "replace") for name in (request.args or {})} - known)
    if unknown:
        listed = ", ".join(accepted) if accepted else "none"
        raise ApiError(
            f"Unknown parameter(s): {_shown_names(unknown)}; accepted: {listed}"
            + (f" ({hint})" if hint else "")
        )


def _is_json(ctype: bytes) -> bool:
    kind = ctype.split(b";", 1)[0].strip().lower()
    return kind == JSON_TYPE or kind.endswith(b"+json")


def _body(request: Any) -> bytes:
    content = getattr(request, "content", None)
    if content is None:
        return b""
    content.seek(0)
    data = content.read(MAX_JSON_BODY + 1)
    content.seek(0)
    return data


def _json_value(name: str, value: Any, pairs: bool) -> list[str]:
    """One JSON field as the form values it stands for; strict about types, so a JSON
    body means exactly what the same form would."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and pairs:
        out = []
        for key, item in value.items():
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise ApiError(f"{name}.{key[:40]} must be a string or a number")
            out.append(f"{key}={item}")
        return out
    if isinstance(value, list) and pairs:
        if not all(isinstance(item, str) for item in value):
            raise ApiError(f"{name} must be a list of KEY=VALUE strings or an object")
        return list(value)
    raise ApiError(f"{name} must be a string")


def json_fields(
    request: Any,
    objects: Collection[str] = (),
    numbers: Collection[str] = (),
    pairs: Collection[str] = (),
) -> dict[bytes, list[bytes]] | None:
    """The fields of a JSON object body as form fields, or None for a body that is not
    JSON. `objects` may be given as JSON objects (kept as JSON text), `numbers` as
    numbers, `pairs` as an object or a list of KEY=VALUE (as the form repeats them)."""
    ctype = request.getHeader(b"content-type") or b""
    if request.method != b"POST":
        return None
    raw = _body(request)
    kind = ctype.split(b";", 1)[0].strip().lower()
    # `curl -d '{...}'` labels JSON as a form: read it as the JSON it is.
    looks_json = kind == b"application/x-www-form-urlencoded" and raw.lstrip()[:1] == b"{"
    if not (_is_json(ctype) or looks_json):
        return None
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(f"The JSON body is larger than {MAX_JSON_BODY} bytes", 413)
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except UnicodeDecodeError:
        raise ApiError("The JSON body is not UTF-8") from None
    except ValueError as exc:
        raise ApiError(f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError("The JSON body must be an object of the same fields as the form")
    fields: dict[bytes, list[bytes]] = {}
    for name, value in body.items():
        if value is None:
            continue
        if name in objects and isinstance(value, dict):
            values = [json.dumps(value, ensure_ascii=False)]
        elif name in numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [repr(value)]
        elif name in objects and not isinstance(value, str):
            raise ApiError(f"{name} must be a JSON object (or its text)")
        elif name in numbers and not isinstance(value, str):
            raise ApiError(f"{name} must be a number (or its text)")
        else:
            values = _json_value(name, value, name in pairs)
        fields[name.encode("utf-8", "surrogatepass")] = [v.encode("utf-8") for v in values]
    return fields


def accepts(
    *names: str,
    hint: str = "",
    json_body: bool = False,
    objects: Collection[str] = (),
    numbers: Collection[str] = (),
    pairs: Collection[str] = (),
    form_hint: str = "",
) -> Callable[[F], F]:
    """A route's accepted parameters (query or form), checked before it runs.

    With `json_body`, a POST body of Content-Type application/json (an object of the
    same fields) is read as the form would be; without it, a JSON body is refused with
    `form_hint`, which says how to send the fields instead of a silent "missing"."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def route(request: Any, *args: Any, **kw: Any) -> Any:
            if json_body:
                fields = json_fields(request, objects, numbers, pairs)
                if fields is not None:
                    query = request.uri.partition(b"?")[2]
                    request.args = parse_qs(query, keep_blank_values=True)
                    for key, values in fields.items():
                        request.args.setdefault(key, []).extend(values)
            elif request.method == b"POST" and _is_json(request.getHeader(b"content-type") or b""):
                raise ApiError(
                    "This endpoint takes a form, not JSON" + (f": {form_hint}" if form_hint else "")
                )
            check_params(request, names, hint)
            return fn(request, *args, **kw)

        return route  # type: ignore[return-value]

    return wrap


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
