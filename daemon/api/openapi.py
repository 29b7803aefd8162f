"""GET /openapi.json: the OpenAPI 3.1 description of the whole HTTP API.

The document is daemon/openapi.json (package data, written by tools/gen_openapi.py and
checked against the live daemon by tests/test_daemon_openapi.py). It is read once at
start, so serving it costs no disk read; with auth on it needs credentials like every
other path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from klein import Klein

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.json"


def add_route(app: Klein) -> None:
    """Serve the document from `app` (the root app: the document covers every API)."""
    try:
        body = SPEC_PATH.read_bytes()
    except OSError:
        return  # an install without the document: the path stays a JSON 404

    @app.route("/openapi.json", methods=["GET"])
    def openapi(request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", str(len(body)).encode())
        request.setHeader(b"Cache-Control", b"no-cache")
        return body
