"""HTTP plumbing shared by every route module: the JSON envelope, parameters, the upload
cap and auth (both decided from the headers, before any body byte is kept), and the
connection-level limits (header timeout, request-line and header sizes).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import io
import json
from collections.abc import Callable, Collection
from typing import IO, Any, TypeVar
from urllib.parse import parse_qs, unquote_to_bytes

from twisted.cred._digest import calcHA1, calcHA2, calcResponse
from twisted.cred.credentials import DigestCredentialFactory
from twisted.cred.error import LoginFailed
from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from daemon.api.multipart import fast_form_fields
from daemon.config import AuthConfig
from daemon.domain import RequestError
from daemon.passwords import VerifiedPasswords

JSON_TYPE = b"application/json"
REALM = b"coinspiders"
# Form bodies up to this size are parsed on the reactor thread (well under a
# millisecond); larger ones (project uploads) in a worker thread, as parsing a
# multi-megabyte body takes seconds of pure Python.
INLINE_FORM_BYTES = 256 * 1024
_FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")


class ApiError(RequestError):
    """A refused request; rendered in the app's envelope (daemon.api.routing) when no
    route catches it."""


#: A reply document: a JSON object, or an array (the coin API's lists).
JsonDoc = dict[str, Any] | list[Any]


def encode_json(data: JsonDoc) -> bytes:
    """A reply's bytes; thread-safe, so a big reply can be encoded off the reactor."""
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")


def json_body(request: Any, data: JsonDoc, code: int = 200) -> bytes:
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


def _json_value(name: str, value: Any, pairs: bool, many: bool = False) -> list[str]:
    """One JSON field as the form values it stands for; strict about types, so a JSON
    body means exactly what the same form would. `many`: a list of strings stands for
    the field repeated."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and many:
        if not all(isinstance(item, str) for item in value):
            raise ApiError(f"{name} must be a list of strings")
        return list(value)
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
    lists: Collection[str] = (),
) -> dict[bytes, list[bytes]] | None:
    """The fields of a JSON object body as form fields, or None for a body that is not
    JSON. `objects` may be given as JSON objects (kept as JSON text), `numbers` as
    numbers, `pairs` as an object or a list of KEY=VALUE (as the form repeats them),
    `lists` as a list of strings (the field repeated)."""
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
            values = _json_value(name, value, name in pairs, name in lists)
        fields[name.encode("utf-8", "surrogatepass")] = [v.encode("utf-8") for v in values]
    return fields


def accepts(
    *names: str,
    hint: str = "",
    json_body: bool = False,
    objects: Collection[str] = (),
    numbers: Collection[str] = (),
    pairs: Collection[str] = (),
    lists: Collection[str] = (),
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
                fields = json_fields(request, objects, numbers, pairs, lists)
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
    fields = fast_form_fields(body, ctype)  # the plain forms clients send, in microseconds
    if fields is not None:
        return fields
    try:
        return dict(http._getMultiPartArgs(body, ctype))
    except Exception as exc:
        raise ValueError(f"malformed multipart body: {exc}") from None


class GuardedRequest(server.Request):
    """A request that is refused from its headers alone when they lack valid
    credentials or announce a body over the cap, and that parses big form bodies off the
    reactor thread.

    Twisted keeps a request body in memory (or a temp file) and parses forms before any
    resource is asked; here the credentials are checked as soon as the headers are in.
    A request without them that carries a body is answered 401 at once, its body is
    read and dropped unparsed, and the connection is closed after it (the client gets
    the 401 while it is still sending). A body announced (Content-Length) or grown
    (chunked) past the cap is dropped as it arrives, never stored, and the request is
    answered 413. A malformed form body is answered 400 with the JSON envelope.
    """

    # Narrower than Twisted's: `content` is the body file from gotLength on, `args` a
    # dict from requestReceived on.
    content: IO[bytes] | None
    args: dict[bytes, list[bytes]]
    channel: GuardedChannel
    too_large = False
    bad_body: str | None = None
    #: Decided from the headers (None until they are all in, or while a password is
    #: checked against a stored hash in `_hash_check`).
    auth_ok: bool | None = None
    _hash_check: Deferred[bool] | None = None
    answered_early = False
    dropped = 0

    def __init__(self, channel: Any, *args: Any, **kw: Any) -> None:
        kw["parsePOSTFormSubmission"] = False  # done in process(), below
        super().__init__(channel, *args, **kw)

    @property
    def _body_file(self) -> IO[bytes]:
        """The body received so far: gotLength() makes the file before any body byte."""
        assert self.content is not None
        return self.content

    def gotLength(self, length: int | None) -> None:
        """Called by the channel once the headers are complete, before any body byte."""
        site = self.channel.site
        method = getattr(self.channel, "_command", self.method)
        uri = getattr(self.channel, "_path", self.uri)
        verdict = site.credentials_ok(self, method, uri)
        if isinstance(verdict, bytes):
            # A password seen for the first time against a stored hash: PBKDF2 starts in
            # a thread now; the body is kept (under the cap) but parsed only once the
            # password is known to be right (see process()).
            self._hash_check = site.check_hashed(verdict)
            self.auth_ok = None
        else:
            self.auth_ok = verdict
        if verdict is False:
            self.content = io.BytesIO()  # stays empty: nothing of the body is kept
            if length != 0:
                self._refuse_before_body(method, uri)
            return
        cap = getattr(site, "upload_max_bytes", 0)
        if cap and length is not None and length > cap:
            self.too_large = True
            self.content = io.BytesIO()
            return
        super().gotLength(length)

    def _refuse_before_body(self, method: bytes, uri: bytes) -> None:
        """Answer 401 now, while the body is still on its way: the client learns at once,
        and no time goes into a body that would be thrown away anyway."""
        channel = self.channel
        self.method, self.uri = method, uri
        self.clientproto = getattr(channel, "_version", b"HTTP/1.1")
        self.path = uri.split(b"?", 1)[0]
        # No "100 Continue" for a body that will not be read.
        self.requestHeaders.removeHeader(b"expect")
        # The body is not consumed as a request: the connection ends after it.
        channel.persistent = False
        self.setHeader(b"Connection", b"close")
        self.setHeader(b"Date", http.datetimeToString())
        self.write(channel.site.refusal(self).render(self))
        self.answered_early = True

    def handleContentChunk(self, data: bytes) -> None:
        cap = getattr(self.channel.site, "upload_max_bytes", 0)
        if self.auth_ok is False:
            # Dropped unread; a client that keeps sending past the cap is cut off.
            over = bool(cap) and self.dropped > cap
            self.dropped += len(data)
            if not over and cap and self.dropped > cap:
                self.channel.loseConnection()
            return
        if self.too_large:
            return
        if cap and self._body_file.tell() + len(data) > cap:
            self.too_large = True
            self._body_file.close()
            self.content = io.BytesIO()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.answered_early:
            self.finish()  # the 401 is out; the channel closes the connection
            return
        super().requestReceived(command, path, version)

    def process(self) -> None:
        if self._hash_check is not None:
            check, self._hash_check = self._hash_check, None
            check.addErrback(lambda _: False).addCallback(self._hash_checked)
            return
        if self.auth_ok is False:
            # Before Twisted's own shortcut for "OPTIONS *", which answers 200 without
            # asking the site, and before any form parsing.
            site = self.site = self.channel.site
            self.setHeader(b"Date", http.datetimeToString())
            self.render(site.refusal(self))
            return
        ctype = self.getHeader(b"content-type") or b""
        kind = ctype.split(b";", 1)[0].strip().lower()
        body = self._body_file
        body.seek(0, 2)
        size = body.tell()
        body.seek(0)
        if self.too_large or self.method != b"POST" or not size or kind not in _FORM_TYPES:
            super().process()
            return
        if size <= INLINE_FORM_BYTES:
            self._parsed(ctype)
            return
        deferToThread(self._read_and_parse, ctype).addBoth(self._parsed_in_thread)

    def _hash_checked(self, ok: bool) -> None:
        if self._disconnected:  # the client left while the hash was checked
            return
        self.auth_ok = ok is True
        self.process()

    def _read_and_parse(self, ctype: bytes) -> dict[bytes, list[bytes]]:
        body = self._body_file
        body.seek(0)
        fields = parse_form(body.read(), ctype)
        body.seek(0)
        return fields

    def _parsed(self, ctype: bytes) -> None:
        try:
            fields = parse_form(self._body_file.read(), ctype)
        except ValueError as exc:
            self.bad_body = str(exc)
        else:
            self.args.update(fields)
        self._body_file.seek(0)
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


_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}
#: Seconds a refused connection is kept reading (and dropping) what the client still
#: sends: closing a socket with unread bytes resets it, and a reset can destroy the
#: answer before the client has read it.
LINGER_SECONDS = 2.0


def raw_error(code: int, message: str) -> bytes:
    """A complete error response for the connection level, where there is no request
    object to answer through (the request line or headers were never accepted). No API
    app has seen the request, so it is in the daemon's own envelope, as 401 and 413 are."""
    body = encode_json({"status": "error", "msg": message})
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    ) % (code, _REASONS.get(code, b"Error"), JSON_TYPE, len(body))
    return head + body


class GuardedChannel(http.HTTPChannel):
    """An HTTP/1.1 connection that limits the time to send a request's headers and
    answers an oversized request line (414) or header section (431) instead of
    dropping the connection without a word.

    Twisted's idle timeout restarts with every byte, so a client sending its headers
    one byte a second holds a connection forever; here the headers of each request
    must be complete within the site's `header_timeout` seconds of its first byte (of
    the connection, for the first request), or the client gets 408 and is closed.
    """

    #: Set by the site's buildProtocol.
    site: GuardedSite
    _header_call: Any = None
    _linger_call: Any = None
    #: Answered at the connection level: whatever else arrives is dropped unread.
    _refused = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._start_header_clock()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        # A new request starts (line mode, nothing in progress): its clock starts.
        if data and self._header_call is None and self.line_mode and not self._handlingRequest:
            self._start_header_clock()
        super().dataReceived(data)

    def _start_header_clock(self) -> None:
        limit = getattr(self.site, "header_timeout", 0)
        if limit:
            self._header_call = self.callLater(limit, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_call is not None:
            if self._header_call.active():
                self._header_call.cancel()
            self._header_call = None

    def _headers_too_slow(self) -> None:
        self._header_call = None
        limit = getattr(self.site, "header_timeout", 0)
        self._refuse(408, f"The request headers did not arrive within {limit:g} seconds")

    def allHeadersReceived(self) -> None:
        self._stop_header_clock()
        super().allHeadersReceived()

    def lineReceived(self, line: bytes) -> Any:
        if self._refused:
            return None
        if (
            hasattr(self, "_command")
            and self._receivedHeaderSize + len(line) > self.totalHeadersSize
        ):
            return self._refuse(
                431, f"The request headers are longer than {self.totalHeadersSize} bytes"
            )
        return super().lineReceived(line)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        super().rawDataReceived(data)

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(431, f"More than {self.maxHeaders} request header fields")
            return False
        return bool(super().headerReceived(line))

    def lineLengthExceeded(self, line: bytes) -> None:
        if hasattr(self, "_command"):  # the request line is in: this is a header
            self._refuse(431, f"A request header line is longer than {self.MAX_LENGTH} bytes")
        else:
            self._refuse(414, f"The request line is longer than {self.MAX_LENGTH} bytes")

    def _refuse(self, code: int, message: str) -> None:
        """Answer at the connection level and stop parsing; keep reading (and
        dropping) for a short while so the answer is not lost to a reset."""
        self._stop_header_clock()
        self.setTimeout(None)
        self.clearLineBuffer()
        self._refused = True
        if self.transport is None:
            return
        self.transport.write(raw_error(code, message))
        # Twisted types this as an IPushProducer; it is the transport (or a stand-in),
        # which HTTPChannel.loseConnection unregisters the same way.
        self._networkProducer.unregisterProducer()  # type: ignore[attr-defined]
        if not ITCPTransport.providedBy(self.transport):  # TLS: close with close_notify
            self.transport.loseConnection()
            return
        self.transport.loseWriteConnection()
        self._linger_call = self.callLater(LINGER_SECONDS, self.transport.abortConnection)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_header_clock()
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        self._linger_call = None
        super().connectionLost(reason)


#: Most password checks against a stored hash that may wait for a thread.
_HASH_QUEUE = 64


class GuardedSite(server.Site):
    """Checks auth and the upload cap before any route (or Twisted itself) sees the
    request, and gives every connection a GuardedChannel."""

    requestFactory = GuardedRequest
    # HTTPFactory types `protocol` as its own HTTP/2-capable wrapper's factory; any
    # HTTPChannel class serves (buildProtocol only calls it), and this one must.
    protocol = GuardedChannel  # type: ignore[assignment]

    def __init__(
        self,
        root: resource.Resource,
        auth: AuthConfig | None,
        upload_max_bytes: int,
        header_timeout: float = 0.0,
    ) -> None:
        super().__init__(root)
        self.auth = auth
        self.upload_max_bytes = upload_max_bytes
        self.header_timeout = header_timeout
        self.displayTracebacks = False
        self.noisy = False
        self._hashed: VerifiedPasswords | None = None
        if auth is not None:
            # UTF-8 per RFC 7617; Latin-1 too, as many clients (python-requests) send it.
            self._users = _encodings(auth.username)
            self._digest = DigestCredentialFactory(b"md5", REALM)
            if auth.password is not None:
                self._passwords = _encodings(auth.password)
            else:
                # Only a hash: Basic only. Digest needs MD5(user:realm:password), which is
                # as good as the password to a client and quick to brute-force, so
                # keeping it would undo the point of storing a slow hash.
                assert auth.password_hash is not None
                self._passwords = []
                self._hashed = VerifiedPasswords(auth.password_hash)
                # PBKDF2 runs in at most two threads of the shared pool, so a flood of
                # wrong passwords cannot starve the daemon's other thread work; past
                # _HASH_QUEUE waiting checks, new ones are refused at once.
                self._hash_slots = DeferredSemaphore(2)

    def credentials_ok(self, request: Any, method: bytes, uri: bytes) -> bool | bytes:
        """Whether the request's Authorization header admits it; needs only the
        request line and headers, so it is decided before any body byte is read. With a
        stored password hash, a password not yet verified comes back as bytes: it is to
        be checked with `check_hashed` (PBKDF2 is too slow for the reactor thread)."""
        if self.auth is None:
            return True
        return self._authorized(request, method, uri)

    def refusal(self, request: Any) -> resource.Resource:
        """The 401 answer, with the challenges."""
        return ErrorResource("Authentication required", 401, self._challenges(request))

    def getResourceFor(self, request: Any) -> resource.Resource:
        auth_ok = getattr(request, "auth_ok", None)
        if auth_ok is None:
            auth_ok = self.credentials_ok(request, request.method, request.uri)
        if auth_ok is not True:  # never bytes here: process() has checked the hash
            return self.refusal(request)
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
        challenge), then Basic (curl -u, browsers, most clients). Basic only with a
        password hash (see __init__)."""
        basic = b'Basic realm="%s", charset="UTF-8"' % REALM
        if self._hashed is not None:
            return [(b"WWW-Authenticate", basic)]
        fields = self._digest.getChallenge(_client_host(request))
        digest = b"Digest " + b", ".join(
            b'%s="%s"' % (key.encode(), value if isinstance(value, bytes) else value.encode())
            for key, value in fields.items()
        )
        return [(b"WWW-Authenticate", digest), (b"WWW-Authenticate", basic)]

    #: /metrics' own bearer token for scrapers (config `metrics.token_env`); the API's
    #: credentials are taken there too.
    scrape_token: bytes | None = None

    def _authorized(self, request: Any, method: bytes, uri: bytes) -> bool | bytes:
        header = request.getHeader(b"authorization") or b""
        scheme, _, token = header.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer":
            path = uri.split(b"?", 1)[0]
            return (
                self.scrape_token is not None
                and path in (b"/metrics", b"/metrics/")
                and hmac.compare_digest(token.strip(), self.scrape_token)
            )
        if scheme == b"basic":
            if self._hashed is not None:
                return self._basic_hashed(token.strip())
            return self._basic_ok(token.strip())
        if scheme == b"digest" and self._hashed is None:
            return self._digest_ok(token.strip(), request, method, uri)
        return False

    def _basic_hashed(self, token: bytes) -> bool | bytes:
        assert self._hashed is not None
        try:
            decoded = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep or not any([hmac.compare_digest(user, u) for u in self._users]):
            return False
        if self._hashed.known(password):
            return True
        return password

    def check_hashed(self, password: bytes) -> Deferred[bool]:
        """The PBKDF2 check in the thread pool (at most two at a time)."""
        assert self._hashed is not None
        if len(self._hash_slots.waiting) >= _HASH_QUEUE:
            return succeed(False)
        return self._hash_slots.run(deferToThread, self._hashed.verify, password)

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

    def _digest_ok(self, token: bytes, request: Any, method: bytes, uri: bytes) -> bool:
        """RFC 2617 Digest (MD5, qop=auth), as scrapy-do's client sends it. The nonce is
        stateless (Twisted's signed opaque, valid 15 minutes): nothing kept per client."""
        try:
            creds = self._digest.decode(token, method, _client_host(request))
        except (LoginFailed, ValueError, TypeError):
            return False
        if creds is None:
            return False
        fields = creds.fields
        if fields.get("uri") != uri:
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
                calcHA2(algo, method, fields.get("uri"), qop, None),
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
