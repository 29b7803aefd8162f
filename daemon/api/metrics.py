"""Prometheus' scrape endpoint, mounted at /metrics (its own app, so the text format and
its content type stay out of the JSON APIs)."""

from __future__ import annotations

from typing import Any

from klein import Klein

from daemon.api.context import ApiContext
from daemon.api.http import accepts, error_body
from daemon.api.routing import new_app
from daemon.metrics import CONTENT_TYPE


def make_app(ctx: ApiContext) -> Klein:
    app = new_app(error_body)
    metrics = ctx.metrics

    @app.route("/", methods=["GET"])
    @accepts()
    def scrape(request: Any) -> bytes:
        body = metrics.render()
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        return body

    return app
