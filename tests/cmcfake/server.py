"""The HTTP side: routes, API key check, fault injection, request log, control endpoint.

A `ThreadingHTTPServer` speaking HTTP/1.1 with keep-alive: one thread per connection,
which is what Scrapy's downloader and urllib both use well. It runs in a background
thread of a test process (`CMCServer.start()`) or as its own process
(`python -m tests.cmc_server`).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import api, pages, png
from .coins import Catalogue, Coin
from .faults import Fault, FaultBook, RequestLog

DEFAULT_API_KEY = "b54bcf4d-1bca-4e8e-9a24-22ff2c3d462c"
API_KEY_HEADER = "X-CMC_PRO_API_KEY"
LOGO_PATH = "/static/img/coins/64x64/{id}.png"
CONTROL_PREFIX = "/__control__/"

_PAGE = re.compile(r"^/currencies/([a-z0-9][a-z0-9-]*)(/?)$")
_LOGO = re.compile(r"^/static/img/coins/64x64/(\d+)\.png$")
_API_ROUTES = {
    "/v1/cryptocurrency/listings/latest": "listings",
    "/v1/cryptocurrency/map": "map",
    "/v2/cryptocurrency/info": "info",
}


class CMCServer:
    """A CoinMarketCap look-alike on 127.0.0.1: pages, Pro API, logos, faults, log."""

    def __init__(
        self,
        coins: int = 5000,
        seed: int = 1,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        max_log: int = 50_000,
    ) -> None:
        self.catalogue = Catalogue(count=coins, seed=seed)
        # Ids that listings show but info answers as invalid (see `hide_from_info`).
        self.info_hidden: set[int] = set()
        self.default_api_key = api_key
        self.api_key = api_key
        self.faults = FaultBook()
        self.log = RequestLog(maxlen=max_log)
        self.pages = pages.Pages()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.cmc = self
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> CMCServer:
        """Serve from a daemon thread; the page template is built first."""
        self.pages.template  # noqa: B018 - build it now, not on the first request
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="cmc-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.pages.template  # noqa: B018
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> CMCServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use ------------------------------------------------------------------

    @property
    def logo_url(self) -> str:
        """The `CMC_LOGO_URL` setting for this server (with `{id}`)."""
        return self.url + LOGO_PATH

    def settings(self, api_key: str | None = None) -> dict[str, str]:
        """The spider settings (also environment variables) that point at this server."""
        return {
            "CMC_SITE_URL": self.url,
            "CMC_API_URL": self.url,
            "CMC_LOGO_URL": self.logo_url,
            "CMC_API_KEY": self.api_key if api_key is None else api_key,
        }

    def page_url(self, slug: str) -> str:
        return f"{self.url}/currencies/{slug}/"

    def coin(self, key: str | int) -> Coin:
        """A coin by id, slug, or (unique) symbol; KeyError if none or ambiguous."""
        if isinstance(key, int) or str(key).isdigit():
            return self.catalogue.by_id[int(key)]
        if key in self.catalogue.by_slug:
            return self.catalogue.by_slug[key]
        matches = self.catalogue.by_symbol.get(str(key).upper(), [])
        if len(matches) != 1:
            raise KeyError(f"{key!r} matches {len(matches)} coins")
        return matches[0]

    def add_fault(self, kind: str, path: str = "", times: int | None = 1, **options: Any) -> Fault:
        """Inject a fault for the next `times` requests whose path starts with `path`."""
        return self.faults.add({"kind": kind, "path": path, "times": times, **options})

    def slow_page(self, slug: str, delay: float, times: int | None = None) -> Fault:
        return self.add_fault("slow", f"/currencies/{slug}/", times=times, delay=delay)

    def clear_faults(self) -> None:
        self.faults.clear()

    def hide_from_info(self, *coin_ids: int) -> None:
        """Make info treat these ids as invalid while listings still show them."""
        self.info_hidden.update(coin_ids)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.log.entries()

    def requests_for(self, path_prefix: str) -> list[dict[str, Any]]:
        return self.log.entries(path_prefix)

    def clear_requests(self) -> None:
        self.log.clear()

    def reset(self) -> None:
        """Back to a clean state: no faults, empty request log, the default API key,
        no ids hidden from info."""
        self.faults.clear()
        self.log.clear()
        self.api_key = self.default_api_key
        self.info_hidden.clear()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    cmc: CMCServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm
        # and delayed ACKs add ~40 ms to every small answer (logos, API errors).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return "cloudflare"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record."""

    # -- entry points --------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        started = time.perf_counter()
        cmc = self.server.cmc
        split = urlsplit(self.path)
        path = split.path
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if path.startswith(CONTROL_PREFIX):
            self._control(cmc, path[len(CONTROL_PREFIX) :], params)
            return
        entry: dict[str, Any] = {
            "method": self.command,
            "path": path,
            "query_string": split.query,
            "query": parse_qs(split.query, keep_blank_values=True),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "status": None,
            "fault": None,
        }
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        cmc.log.add(entry)
        delay, fault = cmc.faults.take(path)
        if delay:
            time.sleep(delay)
        if fault is not None:
            entry["fault"] = fault.kind
        is_api = path in _API_ROUTES
        if fault is not None and fault.kind not in ("truncate", *pages.PAGE_VARIANTS):
            self._fault(entry, fault, is_api)
            return
        status, headers, body = self._route(cmc, path, params, fault, started)
        truncate = fault is not None and fault.kind == "truncate"
        self._send(entry, status, headers, body, truncate_to=fault.fraction if truncate else None)

    # -- routes --------------------------------------------------------------------------

    def _route(
        self,
        cmc: CMCServer,
        path: str,
        params: dict[str, str],
        fault: Fault | None,
        started: float,
    ) -> tuple[int, dict[str, str], bytes]:
        if path in _API_ROUTES:
            return self._api(cmc, _API_ROUTES[path], params, started)
        page = _PAGE.match(path)
        if page:
            slug, slash = page.groups()
            coin = cmc.catalogue.by_slug.get(slug)
            if coin is None:
                return 404, _html_headers(), pages.NOT_FOUND_PAGE
            if not slash:
                location = f"/currencies/{slug}/"
                return 308, {"Location": location, "Content-Type": "text/plain"}, location.encode()
            variant = (
                fault.kind if fault is not None and fault.kind in pages.PAGE_VARIANTS else "full"
            )
            return 200, _html_headers(), cmc.pages.coin_page(coin, variant)
        logo = _LOGO.match(path)
        if logo:
            coin_id = int(logo.group(1))
            if coin_id not in cmc.catalogue.by_id:
                return 404, {"Content-Type": "text/plain"}, b"Not Found"
            return (
                200,
                {"Content-Type": "image/png", "Cache-Control": "max-age=86400"},
                png.logo(coin_id),
            )
        if path == "/":
            body = b"<!DOCTYPE html><html><head><title>CoinMarketCap</title></head></html>"
            return 200, _html_headers(), body
        if path.startswith(("/v1/", "/v2/", "/v3/")):
            error = api.ApiError(404, 404, "Not Found")
            return 404, _json_headers(), _json(error.body())
        return 404, _html_headers(), pages.NOT_FOUND_PAGE

    def _api(
        self, cmc: CMCServer, route: str, params: dict[str, str], started: float
    ) -> tuple[int, dict[str, str], bytes]:
        key = self.headers.get(API_KEY_HEADER) or params.get("CMC_PRO_API_KEY")
        try:
            if not key:
                raise api.ApiError.from_code(1002)
            if key != cmc.api_key:
                raise api.ApiError.from_code(1001)
            if route == "listings":
                body = api.listings_latest(cmc.catalogue, params)
            elif route == "map":
                body = api.cryptocurrency_map(cmc.catalogue, params)
            else:
                body = api.cryptocurrency_info(
                    cmc.catalogue, params, cmc.logo_url, frozenset(cmc.info_hidden)
                )
        except api.ApiError as error:
            return error.http_status, _json_headers(), _json(error.body())
        body["status"]["elapsed"] = int((time.perf_counter() - started) * 1000)
        return 200, _json_headers(), _json(body)

    # -- faults --------------------------------------------------------------------------

    def _fault(self, entry: dict[str, Any], fault: Fault, is_api: bool) -> None:
        ray = f"{abs(hash((entry['path'], time.time()))) % 16**16:016x}-AMS"
        if fault.kind == "drop":
            entry["status"] = 0
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.kind == "api_error" or (fault.kind == "rate_limit" and is_api):
            code = fault.error_code or 1008
            error = api.ApiError.from_code(code, fault.status)
            headers = _json_headers()
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            self._send(entry, error.http_status, headers, _json(error.body()))
            return
        if fault.kind == "rate_limit":
            headers = _html_headers()
            headers["CF-RAY"] = ray
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            self._send(entry, 429, headers, pages.cloudflare_rate_limited_page(ray))
            return
        if fault.kind == "cloudflare":
            headers = _html_headers()
            headers["CF-RAY"] = ray
            body = pages.cloudflare_block_page(ray, self.client_address[0])
            self._send(entry, fault.status or 403, headers, body)
            return
        # server_error
        status = fault.status or 500
        if is_api:
            error = api.ApiError(status, 500, "An internal server error occurred.")
            self._send(entry, status, _json_headers(), _json(error.body()))
        else:
            self._send(entry, status, _html_headers(), pages.SERVER_ERROR_PAGE)

    # -- control endpoint ----------------------------------------------------------------

    def _control(self, cmc: CMCServer, action: str, params: dict[str, str]) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        method = self.command
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError:
            self._control_reply(400, {"error": "body is not JSON"})
            return
        action = action.strip("/")
        if action == "health" and method == "GET":
            self._control_reply(
                200,
                {
                    "ok": True,
                    "url": cmc.url,
                    "coins": cmc.catalogue.count,
                    "digest": cmc.catalogue.digest(),
                },
            )
        elif action == "faults" and method == "GET":
            self._control_reply(200, {"faults": cmc.faults.list()})
        elif action == "faults" and method == "POST":
            specs = payload if isinstance(payload, list) else [payload]
            if not specs or not all(isinstance(s, dict) for s in specs):
                self._control_reply(400, {"error": "send a fault object or a list of them"})
                return
            try:
                added = [cmc.faults.add(spec).to_json() for spec in specs]
            except (TypeError, ValueError) as error:
                self._control_reply(400, {"error": str(error)})
                return
            self._control_reply(201, {"faults": added})
        elif action == "faults" and method == "DELETE":
            cmc.faults.clear()
            self._control_reply(200, {"faults": []})
        elif action == "requests" and method == "GET":
            self._control_reply(200, {"requests": cmc.log.entries(params.get("path", ""))})
        elif action == "requests" and method == "DELETE":
            cmc.log.clear()
            self._control_reply(200, {"requests": []})
        elif action == "reset" and method == "POST":
            cmc.reset()
            self._control_reply(200, {"ok": True})
        elif action == "api-key" and method == "POST":
            if not isinstance(payload, dict) or not isinstance(payload.get("api_key"), str):
                self._control_reply(400, {"error": 'send {"api_key": "<key>"}'})
                return
            cmc.api_key = payload["api_key"]
            self._control_reply(200, {"ok": True})
        elif action == "info-hidden" and method == "POST":
            ids = payload.get("ids") if isinstance(payload, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                self._control_reply(400, {"error": 'send {"ids": [<coin id>, ...]}'})
                return
            cmc.hide_from_info(*ids)
            self._control_reply(200, {"ids": sorted(cmc.info_hidden)})
        elif action == "coins" and method == "GET":
            everything = params.get("all") in ("1", "true")
            coins = cmc.catalogue.coins if everything else cmc.catalogue.builtins()
            self._control_reply(200, {"coins": [c.public() for c in coins]})
        else:
            self._control_reply(404, {"error": f"no control action {method} {action!r}"})

    def _control_reply(self, status: int, body: dict[str, Any]) -> None:
        self._send(None, status, _json_headers(), _json(body))

    # -- output --------------------------------------------------------------------------

    def _send(
        self,
        entry: dict[str, Any] | None,
        status: int,
        headers: dict[str, str],
        body: bytes,
        truncate_to: float | None = None,
    ) -> None:
        if entry is not None:
            entry["status"] = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if truncate_to is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if truncate_to is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[: int(len(body) * truncate_to)])
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json_headers() -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8"}


def _html_headers() -> dict[str, str]:
    return {"Content-Type": "text/html; charset=utf-8"}
