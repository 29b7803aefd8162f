"""The dashboard's routes: parse the request, ask the services, render a template.

Reads that may take more than a millisecond (job pages, the day's figures, logs, coin
data) run in worker threads through the services; state changes go through the same
service calls as the JSON API, behind the cross-site guard (daemon/ui/guard.py).
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import shlex
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from klein import Klein
from markupsafe import Markup
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.threads import deferToThread
from twisted.web.static import File

from daemon.api.context import ApiContext
from daemon.api.http import arg
from daemon.api.procstats import ProcessFigures
from daemon.api.routing import new_app
from daemon.coin_index import CoinFilter
from daemon.domain import ACTIVE_STATUSES, COMPLETED_STATUSES, RUNNING
from daemon.job_store import Job, JobQuery
from daemon.live_stats import read_stats
from daemon.ui import fmt
from daemon.ui.guard import cross_site_refusal
from daemon.ui.logtail import TAIL_BYTES, Chunk, lines_html, read_tail
from daemon.ui.series import StatsSeries
from daemon.ui.stream import Hub, LogFollower

STATIC = Path(__file__).resolve().parent / "static"
PAGE_SIZE = 50
COIN_PAGE = 50
STATUSES = ("scheduled", "pending", "running", "successful", "failed", "canceled")
_ID_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
_LOG_PARAM = re.compile(r"^([0-9a-f-]{36})\.(out|err)$")
RANGES = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None}
PREVIEW_ITEMS = 20
PREVIEW_LINE_BYTES = 4096


class UiError(Exception):
    """A refused UI request: shown to the person as a page or a message, with a code."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = code


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("daemon.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for name in (
        "integer",
        "compact",
        "price",
        "money_compact",
        "percent",
        "size",
        "duration",
        "iso",
    ):
        env.filters[name] = getattr(fmt, name)
    return env


def _parse_time(raw: str | None, name: str, zone: tzinfo) -> float | None:
    """A time filter from the URL: ISO 8601 (a date or a date and time, in the daemon's
    zone unless it says otherwise), as <input type=datetime-local> sends it."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise UiError(f"{name} must be a date or a date and time, got {raw[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def job_query(request: Any, zone: tzinfo = UTC) -> tuple[JobQuery, dict[str, str], int]:
    """The Jobs page's filters from the URL, the same filters to write back into links,
    and the page number."""
    status = (arg(request, "status") or "").strip().lower()
    project = (arg(request, "project") or "").strip()
    spider = (arg(request, "spider") or "").strip()
    prefix = (arg(request, "id") or "").strip().lower()
    since_raw = (arg(request, "since") or "").strip()
    until_raw = (arg(request, "until") or "").strip()
    page_raw = (arg(request, "page") or "1").strip()
    statuses: tuple[str, ...] | None = None
    if status == "active":
        statuses = tuple(ACTIVE_STATUSES)
    elif status == "completed":
        statuses = tuple(COMPLETED_STATUSES)
    elif status:
        if status not in STATUSES:
            raise UiError(f"Unknown status {status[:20]!r}")
        statuses = (status.upper(),)
    if prefix and not _ID_PREFIX.match(prefix):
        raise UiError("A job id is hex digits and dashes")
    if not page_raw.isdigit() or not 1 <= int(page_raw) <= 10**6:
        raise UiError("page must be a number from 1")
    query = JobQuery(
        statuses=statuses,
        project=project or None,
        spider=spider or None,
        id_prefix=prefix or None,
        since=_parse_time(since_raw, "since", zone),
        until=_parse_time(until_raw, "until", zone),
    )
    kept = {
        k: v
        for k, v in (
            ("status", status),
            ("project", project),
            ("spider", spider),
            ("id", prefix),
            ("since", since_raw),
            ("until", until_raw),
        )
        if v
    }
    return query, kept, int(page_raw)


def _status_of(job: Job) -> str:
    return job.status.upper()


def make_app(ctx: ApiContext) -> Klein:
    from twisted.internet import reactor

    app = new_app(lambda request, message, code: _error_page(request, message, code))
    env = _env()
    config = ctx.config
    tz = config.tz
    data_dir = Path(config.data_dir).resolve()
    jobs = ctx.jobs
    reads = ctx.job_reads
    projects = ctx.projects
    coins = ctx.coins
    process = ProcessFigures()
    hub = Hub(reactor, ctx.bus)
    history = StatsSeries(reactor, ctx.bus, lambda job_id: read_stats(data_dir, job_id))
    env.filters["when"] = lambda ts: fmt.timestamp(ts, tz)
    env.filters["ago"] = lambda ts: fmt.ago(ts, time.time())
    env.globals["fmt"] = fmt

    def render(request: Any, name: str, depth: int, **values: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"same-origin")
        base = "./" if depth == 0 else "../" * depth
        return env.get_template(name).render(base=base, **values).encode("utf-8")

    def fragment(request: Any, template: str, **values: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return env.get_template(template).render(**values).encode("utf-8")

    def _error_page(request: Any, message: str, code: int) -> bytes:
        request.setResponseCode(code)
        if request.getHeader(b"hx-request") == b"true":
            return fragment(request, "_message.html", ok=False, message=message)
        return render(request, "error.html", _depth(request), message=message, code=code)

    def guard(request: Any) -> None:
        why = cross_site_refusal(
            request.getHeader(b"hx-request"), request.getHeader(b"sec-fetch-site")
        )
        if why is not None:
            raise UiError(why, 403)

    # -- pages ---------------------------------------------------------------

    @app.route("/", methods=["GET"])
    def overview(request: Any) -> Any:
        if not request.path.endswith(b"/"):
            # /ui -> ui/: every relative link of the page needs the trailing slash.
            last = request.path.rsplit(b"/", 1)[-1]
            request.setResponseCode(302)
            request.setHeader(b"Location", last + b"/")
            return b""
        return overview_values().addCallback(lambda v: render(request, "overview.html", 0, **v))

    @app.route("/overview/live", methods=["GET"])
    def overview_live(request: Any) -> Deferred[bytes]:
        return overview_values().addCallback(lambda v: fragment(request, "_overview.html", **v))

    def overview_values() -> Deferred[dict[str, Any]]:
        now = time.time()
        figures = jobs.figures()
        memory, cpu = process.read()

        def shape(day: Any) -> dict[str, Any]:
            peak = max(day.per_hour) or 1
            return {
                "figures": figures,
                "day": day,
                "peak": peak,
                "memory": memory,
                "cpu": cpu,
                "uptime": fmt.duration(now - ctx.started),
                "now": now,
            }

        return reads.day_in_thread(now).addCallback(shape)

    @app.route("/jobs", methods=["GET"])
    def jobs_page(request: Any) -> Deferred[bytes]:
        query, kept, page = job_query(request, tz)
        return job_rows(query, kept, page).addCallback(
            lambda v: render(
                request,
                "jobs.html",
                0,
                projects=projects.names(),
                statuses=STATUSES,
                zone=config.timezone,
                **v,
            )
        )

    @app.route("/jobs/rows", methods=["GET"])
    def jobs_rows(request: Any) -> Deferred[bytes]:
        query, kept, page = job_query(request, tz)
        return job_rows(query, kept, page).addCallback(
            lambda v: fragment(request, "_job_rows.html", **v)
        )

    def job_rows(query: JobQuery, kept: dict[str, str], page: int) -> Deferred[dict[str, Any]]:
        def shape(result: tuple[list[Job], int]) -> dict[str, Any]:
            found, total = result
            pages = max(1, -(-total // PAGE_SIZE))

            def link(number: int) -> str:
                return "jobs?" + urlencode({**kept, "page": str(number)})

            return {
                "jobs": found,
                "total": total,
                "page": page,
                "pages": pages,
                "kept": kept,
                "prev_link": link(page - 1) if page > 1 else None,
                "next_link": link(page + 1) if page < pages else None,
                "rows_link": "jobs/rows?" + urlencode({**kept, "page": str(page)}),
                "active": ACTIVE_STATUSES,
            }

        return reads.search_in_thread(query, PAGE_SIZE, (page - 1) * PAGE_SIZE).addCallback(shape)

    def _job(job_id: str) -> Job:
        if not _ID_PREFIX.match(job_id):
            raise UiError(f"No job {job_id[:40]}", 404)
        job = reads.get(job_id)
        if job is None:
            raise UiError(f"No job {job_id[:40]}", 404)
        return job

    def job_values(job: Job) -> dict[str, Any]:
        live = read_stats(data_dir, job.id) if job.status == RUNNING else None
        stats = json.loads(live or job.stats or "{}")
        items = stats.get("item_scraped_count") or 0
        started = job.started
        elapsed = ((job.finished or time.time()) - started) if started else None
        per_minute = items / (elapsed / 60) if elapsed and elapsed > 1 else None
        errors = sum(v for k, v in stats.items() if k.startswith("log_count/ERROR"))
        coverage = stats.get("field_coverage") or {}
        if not isinstance(coverage, dict):
            coverage = {}
        parent = reads.get(job.parent) if job.parent else None
        return {
            "job": job,
            "status": _status_of(job),
            "stats": stats,
            "items": items,
            "requests": stats.get("downloader/request_count") or 0,
            "errors": errors,
            "per_minute": per_minute,
            "elapsed": elapsed,
            "coverage": sorted(coverage.items()),
            "parent": parent,
            "payload": _pretty(job.payload),
            "settings": job.settings,
            "active": job.active,
            "cancel_curl": curl_for("cancel-job.json", {"id": job.id}),
        }

    @app.route("/jobs/<string:job_id>", methods=["GET"])
    def job_page(request: Any, job_id: str) -> Deferred[bytes]:
        job = _job(job_id)
        kind = arg(request, "log") or "err"
        if kind not in ("out", "err"):
            raise UiError("log is out or err")
        path = jobs.log_path(job.id, kind)

        def read() -> tuple[Chunk | None, dict[str, Any]]:
            try:
                chunk = read_tail(path, TAIL_BYTES)
            except OSError:
                chunk = None
            return chunk, _folder(data_dir, job.id)

        def page(found: tuple[Chunk | None, dict[str, Any]]) -> bytes:
            chunk, files = found
            return render(
                request,
                "job.html",
                1,
                kind=kind,
                chunk=chunk,
                log_html=_log_html(chunk),
                offset=chunk.end if chunk else 0,
                files=files,
                log_url=f"../get-log/data/{job.id}.{kind}",
                series=_chart(["items", "requests", "errors"], history.columns(job.id)),
                **job_values(job),
            )

        return deferToThread(read).addCallback(page)

    @app.route("/jobs/<string:job_id>/summary", methods=["GET"])
    def job_summary(request: Any, job_id: str) -> bytes:
        return fragment(request, "_job_summary.html", **job_values(_job(job_id)))

    @app.route("/jobs/<string:job_id>/file/<path:name>", methods=["GET"])
    def job_file(request: Any, job_id: str, name: str) -> Any:
        job = _job(job_id)
        folder = (data_dir / job.id).resolve()
        path = (folder / name).resolve()
        # Links resolved: the file must still be inside the job's folder.
        if not path.is_relative_to(folder) or not path.is_file():
            raise UiError(f"No file {name[:80]} in the job folder", 404)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind not in ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"):
            kind = "text/plain; charset=utf-8" if path.suffix in (".jl", ".json", ".txt") else kind
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", b"sandbox")
        # Klein hands a returned resource the path left after the route's match: a
        # name with a folder in it would be looked up inside the file.
        request.postpath = []
        return File(str(path), defaultType=kind)

    @app.route("/events", methods=["GET"])
    def events(request: Any) -> Deferred[None]:
        stream = hub.open(request)
        wanted = arg(request, "log")
        if wanted:
            match = _LOG_PARAM.match(wanted)
            job = reads.get(match.group(1)) if match else None
            if match is not None and job is not None:
                last = request.getHeader(b"last-event-id")
                raw = last.decode("latin-1") if last else (arg(request, "from") or "0")
                offset = int(raw) if raw.isdigit() else 0
                job_id = job.id

                def is_final() -> bool:
                    current = reads.get(job_id)
                    return current is None or not current.active

                follower = LogFollower(
                    stream,
                    jobs.log_path(job_id, match.group(2)),
                    offset,
                    is_final,
                    lambda: None if is_final() else read_stats(data_dir, job_id),
                    reactor,
                )
                stream.follower = follower
                follower.start()
        return stream.done

    @app.route("/projects", methods=["GET"])
    def projects_page(request: Any) -> Deferred[bytes]:
        names = projects.names()

        def summary(name: str) -> Deferred[dict[str, Any]]:
            spiders = projects.spiders(name)
            d = reads.spiders_in_thread(name)
            return d.addCallback(
                lambda found: {
                    "name": name,
                    "pushed": projects.pushed_at(name),
                    "spiders": _spider_rows(spiders or [], found),
                    "listed": spiders is not None,
                }
            )

        d = DeferredList([summary(n) for n in names], consumeErrors=True)
        return d.addCallback(
            lambda results: render(
                request,
                "projects.html",
                0,
                projects=[value for ok, value in results if ok],
                push_curl=curl_for("push-project.json", {}, form={"archive": "@project.zip"}),
            )
        )

    @app.route("/projects/<string:name>/remove", methods=["GET"])
    def remove_confirm(request: Any, name: str) -> Deferred[bytes]:
        if name not in projects.names():
            raise UiError(f"No project {name[:40]}", 404)
        spiders = projects.spiders(name) or []
        query = JobQuery(statuses=tuple(ACTIVE_STATUSES), project=name)

        def shape(result: tuple[list[Job], int]) -> bytes:
            active, count = result
            return fragment(
                request,
                "_remove.html",
                name=name,
                spiders=spiders,
                active=active,
                active_count=count,
                versions=projects.versions(name),
                curl=curl_for("remove-project.json", {"name": name}),
            )

        return reads.search_in_thread(query, 20, 0).addCallback(shape)

    @app.route("/coins", methods=["GET"])
    def coins_page(request: Any) -> Deferred[bytes]:
        q = (arg(request, "q") or "").strip()
        currency = (arg(request, "currency") or "USD").strip().upper()[:10] or "USD"
        sort = arg(request, "sort") or "rank"
        page_raw = arg(request, "page") or "1"
        if not page_raw.isdigit() or int(page_raw) < 1:
            raise UiError("page must be a number from 1")
        page = int(page_raw)
        if sort not in ("rank", "price", "change", "cap"):
            raise UiError("sort is rank, price, change or cap")
        offset = (page - 1) * COIN_PAGE
        if q:
            by_symbol = coins.coins(
                CoinFilter(symbol=q, currency=currency), COIN_PAGE + 1, offset, sort
            )

            def or_slug(found: list[dict[str, Any]]) -> Any:
                if found:
                    return found
                return coins.coins(
                    CoinFilter(slug=q, currency=currency), COIN_PAGE + 1, offset, sort
                )

            d: Deferred[list[dict[str, Any]]] = by_symbol.addCallback(or_slug)
        else:
            d = coins.coins(CoinFilter(currency=currency), COIN_PAGE + 1, offset, sort)
        since = datetime.fromtimestamp(time.time() - 7 * 86400, tz).isoformat()

        def with_sparks(found: list[dict[str, Any]]) -> Deferred[bytes]:
            more = len(found) > COIN_PAGE
            found = found[:COIN_PAGE]
            keys = [str(c.get("id") or c.get("slug")) for c in found]
            ds = [coins.history(k, since, None, 2000, 0, currency) for k in keys]

            def done(results: list[tuple[bool, Any]]) -> bytes:
                rows = []
                for coin, (ok, history) in zip(found, results, strict=True):
                    prices = [h["price"] for h in history] if ok else []
                    rows.append({**coin, "spark": fmt.sparkline(_thin(prices, 100))})
                kept = {k: v for k, v in (("q", q), ("currency", currency), ("sort", sort)) if v}
                return render(
                    request,
                    "coins.html",
                    0,
                    coins=rows,
                    q=q,
                    currency=currency,
                    sort=sort,
                    page=page,
                    kept=kept,
                    prev_link=_coin_link(kept, page - 1) if page > 1 else None,
                    next_link=_coin_link(kept, page + 1) if more else None,
                )

            return DeferredList(ds, consumeErrors=True).addCallback(done)

        return d.addCallback(with_sparks)

    @app.route("/coins/<string:key>", methods=["GET"])
    def coin_page(request: Any, key: str) -> Deferred[bytes]:
        currency = (arg(request, "currency") or "USD").strip().upper()[:10] or "USD"
        span = arg(request, "range") or "7d"
        if span not in RANGES:
            raise UiError("range is 24h, 7d, 30d or all")
        seconds = RANGES[span]
        since = (
            datetime.fromtimestamp(time.time() - seconds, tz).isoformat()
            if seconds is not None
            else None
        )
        d = maybeDeferred(coins.coin, key, currency)

        def with_history(coin: dict[str, Any]) -> Deferred[bytes]:
            def done(history: list[dict[str, Any]]) -> bytes:
                series = [
                    [_epoch(h["time"]) for h in history],
                    [h["price"] for h in history],
                ]
                chart = _chart([currency], series)
                return render(
                    request,
                    "coin.html",
                    1,
                    coin=coin,
                    key=key,
                    currency=currency,
                    span=span,
                    ranges=list(RANGES),
                    points=len(history),
                    series=chart,
                )

            return coins.history(key, since, None, 10000, 0, currency).addCallback(done)

        return d.addCallback(with_history)

    @app.route("/coins/<string:key>/logo.png", methods=["GET"])
    def coin_logo(request: Any, key: str) -> Deferred[bytes]:
        def send(data: bytes | None) -> bytes:
            if data is None:
                raise UiError("No logo", 404)
            request.setHeader(b"Content-Type", b"image/png")
            request.setHeader(b"Cache-Control", b"max-age=3600")
            return data

        return maybeDeferred(coins.logo, key).addCallback(send)

    @app.route("/static/<string:name>", methods=["GET"])
    def static(request: Any, name: str) -> Any:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise UiError(f"No file {name[:60]}", 404)
        request.setHeader(b"Cache-Control", b"max-age=3600")
        return File(str(path))

    # -- actions (state changes): the API's service calls, behind the guard ------

    def message(request: Any, text: str, ok: bool = True, **extra: Any) -> bytes:
        return fragment(request, "_message.html", ok=ok, message=text, **extra)

    @app.route("/actions/cancel", methods=["POST"])
    def cancel(request: Any) -> Deferred[bytes]:
        guard(request)
        job_id = (arg(request, "id") or "").strip()
        _job(job_id)
        return jobs.cancel(job_id).addCallback(lambda _: message(request, f"Job {job_id} canceled"))

    @app.route("/actions/run", methods=["POST"])
    def run_now(request: Any) -> Deferred[bytes]:
        guard(request)
        project = (arg(request, "project") or "").strip()
        spider = (arg(request, "spider") or "").strip()
        if project not in projects.names():
            raise UiError(f"No project {project[:40]}", 404)

        def submit(spiders: list[str]) -> bytes:
            if spider not in spiders:
                raise UiError(f"No spider {spider[:40]} in {project}", 404)
            job = jobs.submit(project, spider, plan=jobs.plan("now"))
            return message(request, f"Started {project}/{spider}", job_id=job.id)

        return maybeDeferred(projects.get_spiders, project).addCallback(submit)

    @app.route("/actions/push", methods=["POST"])
    def push(request: Any) -> Deferred[bytes]:
        guard(request)
        archives = (request.args or {}).get(b"archive", [])
        if len(archives) != 1 or not archives[0]:
            raise UiError("Choose one project archive (.zip or .egg)")
        d = projects.push(archives[0], jobs.push_guard, replace=True)
        return d.addCallback(
            lambda res: message(
                request,
                f"Pushed project {res.name}: "
                + (", ".join(res.spiders) if res.spiders else "no spiders found"),
                spiders=list(res.spiders),
            )
        )

    @app.route("/actions/remove", methods=["POST"])
    def remove(request: Any) -> Deferred[bytes]:
        guard(request)
        name = (arg(request, "name") or "").strip()
        return projects.remove(name, jobs.remove_guard).addCallback(
            lambda _: message(request, f"Removed project {name}")
        )

    def curl_for(path: str, data: dict[str, str], form: dict[str, str] | None = None) -> str:
        """The API call an action stands for, with `{base}` for the daemon's URL (the page
        fills in its own, which includes any proxy prefix)."""
        parts = ["curl", "-u", "USER:PASSWORD"] if config.auth is not None else ["curl"]
        for key, value in data.items():
            parts += ["-d", f"{key}={value}"]
        for key, value in (form or {}).items():
            parts += ["-F", f"{key}={value}"]
        return " ".join(shlex.quote(p) for p in parts) + " {base}" + path

    return app


def _chart(labels: list[str], data: list[list[Any]]) -> Markup:
    """A chart's series for the page's <script type=application/json> (app.js draws it)."""
    text = json.dumps({"labels": labels, "data": data}, ensure_ascii=True)
    return Markup(text.replace("<", "\\u003c"))


def _depth(request: Any) -> int:
    """How many folders below the dashboard's root a page is (/ui/jobs/<id>: 1)."""
    return max(0, request.path.count(b"/") - 2)


def _log_html(chunk: Chunk | None) -> Markup | str:
    """The tail's lines as HTML (lines_html escapes every line)."""
    if chunk is None or not chunk.data:
        return ""
    return Markup(lines_html(chunk.data.rstrip(b"\n")))


def _coin_link(kept: dict[str, str], page: int) -> str:
    return "coins?" + urlencode({**kept, "page": str(page)})


def _pretty(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload or "{}"), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _thin(values: list[Any], most: int) -> list[Any]:
    """At most `most` values, evenly picked, the last one kept."""
    if len(values) <= most:
        return values
    step = len(values) / most
    picked = [values[int(i * step)] for i in range(most - 1)]
    return [*picked, values[-1]]


def _spider_rows(spiders: list[str], found: list[Any]) -> list[dict[str, Any]]:
    by_name = {s.spider: s for s in found}
    return [{"name": name, "summary": by_name.get(name)} for name in sorted(spiders)]


def _folder(data_dir: Path, job_id: str) -> dict[str, Any]:
    """What the job folder holds, for the page: data.json's size, the first items of
    items.jl (each line cut at PREVIEW_LINE_BYTES), the logos. Blocking: in a thread."""
    folder = (data_dir / job_id).resolve()
    out: dict[str, Any] = {"exists": folder.is_dir(), "items": [], "logos": [], "data": None}
    if not out["exists"] or not folder.is_relative_to(data_dir):
        return out
    data = folder / "data.json"
    if data.is_file() and data.resolve().is_relative_to(folder):
        out["data"] = data.stat().st_size
    items = folder / "items.jl"
    if items.is_file() and items.resolve().is_relative_to(folder):
        out["items_size"] = items.stat().st_size
        with items.open("rb") as handle:
            for _ in range(PREVIEW_ITEMS):
                line = handle.readline(PREVIEW_LINE_BYTES)
                if not line:
                    break
                if not line.endswith(b"\n"):
                    handle.readline()  # the rest of a long line is not shown
                out["items"].append(line.decode("utf-8", "replace").rstrip("\n"))
    images = folder / "Images"
    if images.is_dir() and images.resolve().is_relative_to(folder):
        with os.scandir(images) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and len(out["logos"]) < 60:
                    out["logos"].append(f"Images/{entry.name}")
        out["logos"].sort()
    return out
