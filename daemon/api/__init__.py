"""The HTTP API: one Klein app, route modules mounted onto it, JSON errors for everything.

A route module is any module with `register(app: Klein, ctx: ApiContext) -> None`
(it may start a service of its own with `ctx.add_service(service)`);
`make_app` mounts the ones it is given (app.py passes scrapy-do's routes, the coin API
and the OpenAPI description). Routes stay thin: parse, call a service, shape the JSON.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from daemon.api.http import ApiError, routing_error
from daemon.config import Config

log = Logger()

DEFAULT_ROUTE_MODULES = ("daemon.api.scrapydo", "daemon.api.coins", "daemon.api.openapi")


@dataclass
class ApiContext:
    """Everything a route module may use; routes never touch SQL or processes."""

    config: Config
    jobs: Any  # daemon.jobs.JobsService
    projects: Any  # daemon.projects.ProjectStore
    store: Any  # daemon.store.Store
    started: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)
    services: Any = None  # twisted MultiService of the daemon

    def add_service(self, service: Any) -> None:
        """Run a route module's own Twisted service with the daemon (started after the
        jobs service and the scheduler, stopped before them)."""
        service.setServiceParent(self.services)


def _status_of(exc: BaseException) -> int | None:
    code = getattr(exc, "http_status", None)
    return code if isinstance(code, int) and 400 <= code < 600 else None


def install_error_handlers(app: Klein) -> None:
    """404/405 and every service error as JSON, never a traceback; `routing_error`
    picks the envelope from the path (coin API under /api/, scrapy-do elsewhere)."""

    @app.handle_errors(NotFound)
    def not_found(request: Any, failure: Failure) -> bytes:
        path = request.path.decode("utf-8", "replace")[:200]
        return routing_error(request, f"Not found: {path}", 404)

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(request: Any, failure: Failure) -> bytes:
        allowed = getattr(failure.value, "valid_methods", None) or []
        if allowed:
            request.setHeader(b"Allow", ", ".join(allowed).encode())
        method = request.method.decode("latin-1")[:20]
        return routing_error(request, f"Method {method} not allowed", 405)

    @app.handle_errors(HTTPException)
    def http_error(request: Any, failure: Failure) -> bytes:
        exc = failure.value
        return routing_error(request, exc.description or exc.name, exc.code or 400)

    @app.handle_errors(Exception)
    def any_error(request: Any, failure: Failure) -> bytes:
        exc = failure.value
        if isinstance(exc, ApiError):
            return routing_error(request, exc.message, exc.http_status)
        code = _status_of(exc)
        if code is not None:
            return routing_error(request, getattr(exc, "message", None) or str(exc), code)
        log.failure("unexpected error answering {path}", failure, path=request.path)
        return routing_error(request, "Internal error; see the daemon log", 500)


def make_app(ctx: ApiContext, route_modules: Iterable[str] = DEFAULT_ROUTE_MODULES) -> Klein:
    """A Klein app with every route module mounted; one that cannot be imported stops
    the start."""
    app = Klein()
    # No 308 redirects to a "cleaned" path: a path is either a route or a JSON 404.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    for name in route_modules:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if register is None:
            log.warn("route module {name} has no register(app, ctx); not mounted", name=name)
            continue
        register(app, ctx)
    install_error_handlers(app)
    return app
