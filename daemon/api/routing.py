"""How the API apps share one listener: each is its own Klein app under its prefix, with
its own error envelope for unknown paths, wrong methods and faults no route caught.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from daemon.api.http import ApiError

log = Logger()

#: Writes one error reply in an API's own JSON shape: (request, message, status) -> body.
Envelope = Callable[[Any, str, int], bytes]


def new_app(envelope: Envelope) -> Klein:
    """A Klein app that answers every error in `envelope` and never redirects to a
    "cleaned" path: a path is either a route or a JSON 404."""
    app = Klein()
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    install_error_handlers(app, envelope)
    return app


def _status_of(exc: BaseException) -> int | None:
    code = getattr(exc, "http_status", None)
    return code if isinstance(code, int) and 400 <= code < 600 else None


def install_error_handlers(app: Klein, envelope: Envelope) -> None:
    """404/405 and every service error as JSON in the app's envelope, never a traceback."""

    @app.handle_errors(NotFound)
    def not_found(request: Any, failure: Failure) -> bytes:
        path = request.path.decode("utf-8", "replace")[:200]
        return envelope(request, f"Not found: {path}", 404)

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(request: Any, failure: Failure) -> bytes:
        allowed = getattr(failure.value, "valid_methods", None) or []
        if allowed:
            request.setHeader(b"Allow", ", ".join(allowed).encode())
        method = request.method.decode("latin-1")[:20]
        return envelope(request, f"Method {method} not allowed", 405)

    @app.handle_errors(HTTPException)
    def http_error(request: Any, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, HTTPException)  # the only errors this handler is given
        return envelope(request, exc.description or exc.name, exc.code or 400)

    @app.handle_errors(Exception)
    def any_error(request: Any, failure: Failure) -> bytes:
        exc = failure.value
        assert exc is not None  # a Failure always holds its exception
        if isinstance(exc, ApiError):
            return envelope(request, exc.message, exc.http_status)
        code = _status_of(exc)
        if code is not None:
            return envelope(request, getattr(exc, "message", None) or str(exc), code)
        log.failure("unexpected error answering {path}", failure, path=request.path)
        return envelope(request, "Internal error; see the daemon log", 500)


class HomeRedirect(resource.Resource):
    """`/`: a relative redirect to the dashboard, so it works under a proxy's sub-path."""

    isLeaf = True

    def __init__(self, target: bytes) -> None:
        super().__init__()
        self.target = target

    def render(self, request: Any) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            request.setResponseCode(405)
            request.setHeader(b"Content-Type", b"application/json")
            return b'{"status": "error", "msg": "Method not allowed"}\n'
        request.setResponseCode(302)
        request.setHeader(b"Location", self.target)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"See " + self.target + b"\n"


class Mounts(resource.Resource):
    """The site's root: the app mounted under the request's first path segment, else
    the root app with the whole path. Each mounted app sees only the rest of the path
    (its routes are written relative to its prefix). With `home`, `/` redirects there."""

    def __init__(self, root: Klein, mounted: Mapping[str, Klein], home: str | None = None) -> None:
        super().__init__()
        self.root = root.resource()
        for prefix, app in mounted.items():
            self.putChild(prefix.encode(), app.resource())
        if home is not None:
            self.putChild(b"", HomeRedirect(home.encode() + b"/"))

    def getChild(self, path: bytes, request: Any) -> resource.Resource:
        # Not a prefix: give the segment back, the root app routes the whole path.
        request.prepath.pop()
        request.postpath.insert(0, path)
        return self.root
