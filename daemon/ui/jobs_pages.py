"""The Jobs page (server-side paging and filters kept in the URL), a job's page (its
summary, chart, log tail and folder), a job folder's files and the event stream."""

from __future__ import annotations

import json
import mimetypes
import os
import re
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from klein import Klein
from markupsafe import Markup
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.web.static import File

from daemon.api.context import ApiContext
from daemon.api.http import arg
from daemon.domain import ACTIVE_STATUSES, COMPLETED_STATUSES, RUNNING
from daemon.job_store import Job, JobQuery
from daemon.live_stats import read_stats
from daemon.ui.kit import Kit, UiError, chart
from daemon.ui.logtail import TAIL_BYTES, Chunk, lines_html, read_tail
from daemon.ui.stream import Hub, LogFollower

PAGE_SIZE = 50
STATUSES = ("scheduled", "pending", "running", "successful", "failed", "canceled")
ID_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
_LOG_PARAM = re.compile(r"^([0-9a-f-]{36})\.(out|err)$")
PREVIEW_ITEMS = 20
PREVIEW_LINE_BYTES = 4096
#: Most rows one page keeps ticked across its live refreshes.
MAX_SELECTED = 200


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
    if prefix and not ID_PREFIX.match(prefix):
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


def selected(request: Any) -> set[str]:
    """The rows ticked for a bulk action, sent back by a live refresh so it keeps them."""
    raw = (request.args or {}).get(b"sel", [])[:MAX_SELECTED]
    return {v.decode("ascii", "replace") for v in raw}


def find_job(ctx: ApiContext, job_id: str) -> Job:
    if not ID_PREFIX.match(job_id):
        raise UiError(f"No job {job_id[:40]}", 404)
    job = ctx.job_reads.get(job_id)
    if job is None:
        raise UiError(f"No job {job_id[:40]}", 404)
    return job


def add_routes(app: Klein, ctx: ApiContext, kit: Kit, hub: Hub) -> None:
    from twisted.internet import reactor

    config = ctx.config
    tz = config.tz
    data_dir = Path(config.data_dir).resolve()
    jobs = ctx.jobs
    reads = ctx.job_reads
    projects = ctx.projects
    history = ctx.series

    @app.route("/jobs", methods=["GET"])
    def jobs_page(request: Any) -> Deferred[bytes]:
        query, kept, page = job_query(request, tz)
        return job_rows(query, kept, page, set()).addCallback(
            lambda v: kit.render(
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
        return job_rows(query, kept, page, selected(request)).addCallback(
            lambda v: kit.fragment(request, "_job_rows.html", **v)
        )

    def job_rows(
        query: JobQuery, kept: dict[str, str], page: int, ticked: set[str]
    ) -> Deferred[dict[str, Any]]:
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
                "ticked": ticked,
                "prev_link": link(page - 1) if page > 1 else None,
                "next_link": link(page + 1) if page < pages else None,
                "rows_link": "jobs/rows?" + urlencode({**kept, "page": str(page)}),
                "active": ACTIVE_STATUSES,
            }

        return reads.search_in_thread(query, PAGE_SIZE, (page - 1) * PAGE_SIZE).addCallback(shape)

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
            "status": job.status.upper(),
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
            "cancel_curl": kit.curl_for("cancel-job.json", {"id": job.id}),
            "rerun_curl": kit.curl_for("rerun-job.json", {"id": job.id}),
        }

    @app.route("/jobs/<string:job_id>", methods=["GET"])
    def job_page(request: Any, job_id: str) -> Deferred[bytes]:
        job = find_job(ctx, job_id)
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
            return kit.render(
                request,
                "job.html",
                1,
                kind=kind,
                chunk=chunk,
                log_html=_log_html(chunk),
                offset=chunk.end if chunk else 0,
                files=files,
                log_url=f"../get-log/data/{job.id}.{kind}",
                series=chart(["items", "requests", "errors"], history.columns(job.id)),
                **job_values(job),
            )

        return deferToThread(read).addCallback(page)

    @app.route("/jobs/<string:job_id>/summary", methods=["GET"])
    def job_summary(request: Any, job_id: str) -> bytes:
        return kit.fragment(request, "_job_summary.html", **job_values(find_job(ctx, job_id)))

    @app.route("/jobs/<string:job_id>/file/<path:name>", methods=["GET"])
    def job_file(request: Any, job_id: str, name: str) -> Any:
        job = find_job(ctx, job_id)
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


def _log_html(chunk: Chunk | None) -> Markup | str:
    """The tail's lines as HTML (lines_html escapes every line)."""
    if chunk is None or not chunk.data:
        return ""
    return Markup(lines_html(chunk.data.rstrip(b"\n")))


def _pretty(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload or "{}"), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


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
