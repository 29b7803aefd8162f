"""Klein routes of the coin API: start/status of a coin crawl, and the coin data.

Thin: read and check the request, call the coin service, shape the JSON. Start/status
answer errors in their own envelope (`{"error": "<message>"}`); the data endpoints in
theirs (`{"error": true, "message": ...}`). Lists are always lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from coinspiders.jobfolder import JOB_ID_RE
from daemon.api.context import ApiContext
from daemon.api.http import JSON_TYPE, ApiError, arg, arg_int, json_body
from daemon.api.routing import new_app
from daemon.coin_index import CoinFilter
from daemon.coin_records import (
    DEFAULT_CURRENCY,
    RequestError,
    currency_code,
    parse_coins,
    parse_task_ids,
    parse_time,
    unknown_parameters,
)
from daemon.coin_service import CoinApiError
from daemon.domain import RUNNING
from daemon.live_stats import read_stats

log = Logger()

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
SOURCES = ("page", "api")
# The parameters each coin data endpoint takes; any other is refused, so a misspelt
# filter (`platfrom=solana`) never answers as if it had filtered.
LIST_PARAMS = (
    "symbol",
    "slug",
    "platform",
    "source",
    "currency",
    "job",
    "limit",
    "offset",
)
DETAIL_PARAMS = ("currency",)
HISTORY_PARAMS = ("currency", "since", "until", "limit", "offset")
# Largest start request body read (500 coins of 100 characters fit many times over).
MAX_BODY = 1024 * 1024


def _start_status_error(request: Any, message: str, code: int = 400) -> bytes:
    return json_body(request, {"error": message}, code)


def _data_error(request: Any, message: str, code: int = 400) -> bytes:
    return json_body(request, {"error": True, "message": message}, code)


def _time_param(request: Any, name: str) -> str | None:
    raw = arg(request, name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise RequestError(
            f"Parameter {name!r} must be an ISO 8601 date or time, got {raw[:40]!r}"
        ) from None


def _only_params(request: Any, accepted: tuple[str, ...], path: str) -> None:
    """Refuse a request that gives a parameter `path` does not take."""
    given = [name.decode("utf-8", "replace") for name in (request.args or {})]
    message = unknown_parameters(given, accepted, path)
    if message is not None:
        raise RequestError(message)


def _currency_param(request: Any, default: str | None) -> str | None:
    """`currency` (USD, EUR, BTC...; any case), or `default` when not given."""
    raw = arg(request, "currency")
    if raw is None or raw == "":
        return default
    code = currency_code(raw)
    if code is None:
        raise RequestError(
            f"Parameter 'currency' must be one currency code such as USD, EUR or BTC, "
            f"got {raw[:40]!r}"
        )
    return code


def _coin_key(key: str) -> str:
    """A coin's CMC id or slug from the URL; anything else cannot name a coin."""
    if not key or len(key) > 200 or any(ch in key for ch in "/\\\x00"):
        raise RequestError("A coin is named by its CMC id or its slug")
    return key


def _coins_of_body(request: Any) -> Any:
    """`coins` from a JSON body, or from a form (repeated or comma-separated)."""
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    raw = b""
    if request.content is not None:
        request.content.seek(0)
        raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise RequestError(f"The body is larger than {MAX_BODY} bytes")
    # `curl -d '{"coins": [...]}'` sends JSON labelled as a form: read it as JSON too.
    looks_json = raw.lstrip().startswith(b"{") and b"coins" not in (request.args or {})
    if ctype == JSON_TYPE or ctype.endswith(b"+json") or looks_json:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise RequestError("Invalid JSON body") from None
        if body is None:
            return None
        if not isinstance(body, dict):
            raise RequestError('The JSON body must be an object like {"coins": ["BTC"]}')
        return body.get("coins")
    values = (request.args or {}).get(b"coins", [])
    try:
        return [v.decode("utf-8") for v in values]
    except UnicodeDecodeError:
        raise RequestError("Parameter 'coins' is not valid UTF-8") from None


T = TypeVar("T")


def _deferred_reply(
    request: Any, d: Deferred[T], shape: Callable[[T], bytes], error: Callable[..., bytes]
) -> Deferred[bytes]:
    def failed(failure: Any) -> bytes:
        if failure.check(CoinApiError, ApiError):
            return error(request, failure.value.message, failure.value.http_status)
        if failure.check(RequestError):
            return error(request, str(failure.value), 400)
        log.failure("coin API request failed", failure)
        return error(request, "Internal error", 500)

    return d.addCallbacks(shape, failed)


def make_app(ctx: ApiContext) -> Klein:
    """The coin API, mounted under /api/ (its routes are relative to that prefix)."""
    app = new_app(_data_error)
    service = ctx.coins
    reads = ctx.job_reads
    data_dir = ctx.config.data_dir

    @app.route("/crypto/start_scraping/", methods=["POST"])
    def start_scraping(request: Any) -> bytes:
        try:
            coins = parse_coins(_coins_of_body(request))
            started = service.start(coins)
        except RequestError as exc:
            return _start_status_error(request, str(exc), 400)
        except (CoinApiError, ApiError) as exc:
            return _start_status_error(request, exc.message, exc.http_status)
        return json_body(
            request, {"job_id": started.job_id, "task_ids": json.dumps(started.task_ids)}
        )

    @app.route("/crypto/scraping_status/<string:job_id>/", methods=["GET"])
    def scraping_status(request: Any, job_id: str) -> Any:
        try:
            raw = arg(request, "task_ids")
            if not JOB_ID_RE.match(job_id):
                raise CoinApiError(f"Job {job_id[:80]} not found", 404)
            coins = parse_task_ids(raw)
            d = service.status(job_id, coins)
        except RequestError as exc:
            return _start_status_error(request, str(exc), 400)
        except (CoinApiError, ApiError) as exc:
            return _start_status_error(request, exc.message, exc.http_status)
        return _deferred_reply(request, d, lambda doc: json_body(request, doc), _start_status_error)

    @app.route("/coins/", methods=["GET"])
    def coin_list(request: Any) -> Any:
        def run() -> Deferred[list[dict[str, Any]]]:
            _only_params(request, LIST_PARAMS, "/api/coins/")
            source = arg(request, "source") or None
            if source is not None and source not in SOURCES:
                raise RequestError("Parameter 'source' must be 'page' or 'api'")
            job = arg(request, "job") or None
            if job is not None and not JOB_ID_RE.match(job):
                raise RequestError("Parameter 'job' is not a job id")
            filters = CoinFilter(
                symbol=arg(request, "symbol") or None,
                slug=arg(request, "slug") or None,
                platform=arg(request, "platform") or None,
                source=source,
                job=job,
                # A job's records share one currency: with `job`, any (unless asked).
                currency=_currency_param(request, None if job else DEFAULT_CURRENCY),
            )
            limit = arg_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            offset = arg_int(request, "offset", 0, 0, MAX_OFFSET)
            return service.coins(filters, limit, offset)

        return _deferred_reply(
            request, maybeDeferred(run), lambda rows: json_body(request, rows), _data_error
        )

    @app.route("/coins/<string:key>/", methods=["GET"])
    def coin_detail(request: Any, key: str) -> Any:
        def run() -> Deferred[dict[str, Any]]:
            _only_params(request, DETAIL_PARAMS, "/api/coins/<id or slug>/")
            currency = _currency_param(request, DEFAULT_CURRENCY)
            assert currency is not None
            return service.coin(_coin_key(key), currency)

        return _deferred_reply(
            request, maybeDeferred(run), lambda doc: json_body(request, doc), _data_error
        )

    @app.route("/coins/<string:key>/history/", methods=["GET"])
    def coin_history(request: Any, key: str) -> Any:
        def run() -> Deferred[list[dict[str, Any]]]:
            _only_params(request, HISTORY_PARAMS, "/api/coins/<id or slug>/history/")
            since = _time_param(request, "since")
            until = _time_param(request, "until")
            limit = arg_int(request, "limit", MAX_LIMIT, 1, 10 * MAX_LIMIT)
            offset = arg_int(request, "offset", 0, 0, MAX_OFFSET)
            currency = _currency_param(request, DEFAULT_CURRENCY)
            assert currency is not None
            return service.history(_coin_key(key), since, until, limit, offset, currency)

        return _deferred_reply(
            request, maybeDeferred(run), lambda rows: json_body(request, rows), _data_error
        )

    @app.route("/coins/<string:key>/logo.png", methods=["GET"])
    def coin_logo(request: Any, key: str) -> Any:
        def shape(data: bytes | None) -> bytes:
            if data is None:
                return _data_error(request, f"No stored logo for coin {key[:80]!r}", 404)
            request.setHeader(b"Content-Type", b"image/png")
            request.setHeader(b"Content-Length", str(len(data)).encode())
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            return data

        def run() -> Deferred[bytes | None]:
            _only_params(request, (), "/api/coins/<id or slug>/logo.png")
            return service.logo(_coin_key(key))

        return _deferred_reply(request, maybeDeferred(run), shape, _data_error)

    @app.route("/jobs/<string:job_id>/data/", methods=["GET"])
    def job_data(request: Any, job_id: str) -> Any:
        def run() -> Deferred[tuple[bool, Any]]:
            _only_params(request, (), "/api/jobs/<job_id>/data/")
            if not JOB_ID_RE.match(job_id):
                raise CoinApiError(f"Job {job_id[:80]} not found", 404)
            return service.job_data(job_id)

        def shape(result: tuple[bool, Any]) -> bytes:
            complete, doc = result
            request.setHeader(b"X-Job-Data", b"complete" if complete else b"partial")
            if complete:
                request.setResponseCode(200)
                request.setHeader(b"Content-Type", JSON_TYPE)
                request.setHeader(b"Content-Length", str(len(doc)).encode())
                request.setHeader(b"Cache-Control", b"no-store")
                return doc
            return json_body(request, doc)

        return _deferred_reply(request, maybeDeferred(run), shape, _data_error)

    @app.route("/jobs/<string:job_id>/stats", methods=["GET"])
    def job_stats(request: Any, job_id: str) -> bytes:
        """The crawl's stats under Scrapy's names plus field_coverage: live (at most a
        second old) while it runs, its final ones once it ended; null when it has none."""
        try:
            _only_params(request, (), "/api/jobs/<job_id>/stats")
        except RequestError as exc:
            return _data_error(request, str(exc), 400)
        row = None
        if JOB_ID_RE.match(job_id):
            row = reads.get_row(job_id, ("id", "status", "stats"))
        if row is None:
            return _data_error(request, f"Job {job_id[:80]} not found", 404)
        _id, status, stats = row
        if stats is None and status == RUNNING:
            stats = read_stats(data_dir, job_id)
        doc = {"job_id": job_id, "status": status, "stats": _stats_object(stats)}
        return json_body(request, doc)

    return app


def _stats_object(text: Any) -> Any:
    """Stats text (checked JSON of an object when it was stored or read) as an object."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
