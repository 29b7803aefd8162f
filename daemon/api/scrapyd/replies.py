"""scrapyd 1.6.0's reply envelope and exact messages.

Clients (ScrapydWeb, Gerapy, scrapyd-client) compare `status` and show `message` as is,
some parse it; so the bytes are scrapyd's: its JSON encoder's defaults (ASCII escapes,
", " and ": "), `status` then `node_name` after the data, a trailing newline, and HTTP
200 on errors unless the config asks for real 4xx codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

# scrapyd encodes with a default json.JSONEncoder: keep its exact separators and escapes.
_ENCODER = json.JSONEncoder()

#: Headers scrapyd adds to every JSON reply (its CORS answer to preflighted requests).
CORS_ALLOW_ORIGIN = "*"
CORS_ALLOW_HEADERS = "X-Requested-With"
EGG_NOT_ZIP = "egg is not a ZIP file (if using curl, use egg=@path not egg=path)"
UNAUTHORIZED_BODY = b"Unauthorized"


class ScrapydError(Exception):
    """A refused request, answered in scrapyd's envelope; `code` is the real HTTP status
    sent when the config asks for real codes (scrapyd itself always sends 200)."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def encode(data: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(dict(data)).encode() + b"\n"


def ok_body(data: Mapping[str, Any], node_name: str) -> bytes:
    """A success: the data's keys in order, then status, then node_name."""
    return encode({**data, "status": "ok", "node_name": node_name})


def error_body(message: str, node_name: str) -> bytes:
    return encode({"status": "error", "message": message, "node_name": node_name})


def allowed_methods(methods: Iterable[str]) -> str:
    """scrapyd's `Allow` (and Access-Control-Allow-Methods) list for an endpoint."""
    wanted = set(methods)
    return ", ".join(["OPTIONS", "HEAD", *(m for m in ("GET", "POST") if m in wanted)])


def required(name: str) -> ScrapydError:
    return ScrapydError(f"'{name}' parameter is required", 400)


def invalid(name: str, exc: Exception) -> ScrapydError:
    return ScrapydError(f"{name} is invalid: {exc}", 400)


def project_not_found(project: str) -> ScrapydError:
    return ScrapydError(f"project '{project}' not found", 404)


def version_not_found(version: str) -> ScrapydError:
    return ScrapydError(f"version '{version}' not found", 404)


def spider_not_found(spider: str) -> ScrapydError:
    return ScrapydError(f"spider '{spider}' not found", 404)


def traversal(path: str) -> ScrapydError:
    return ScrapydError(f"DirectoryTraversalError: {path}", 400)


def unsupported_method(methods: Iterable[str]) -> ScrapydError:
    """What scrapyd says (as the text of Twisted's exception) to a method it lacks."""
    allowed = sorted(m.encode() for m in ("OPTIONS", "HEAD", *methods))
    return ScrapydError(f"UnsupportedMethod: Expected one of {allowed}", 405)


def is_traversal(name: str) -> bool:
    """Whether scrapyd refuses `name` as one path segment (Twisted's FilePath.child)."""
    return name == ".." or "/" in name or "\\" in name
