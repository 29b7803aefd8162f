"""scrapy-do's REST API (seed 003): same paths, parameters and JSON keys, so scrapy-do's
own client works unchanged; extra keys and parameters only where users asked for them.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from daemon.api import job_actions
from daemon.api.context import ApiContext
from daemon.api.http import (
    ApiError,
    accepts,
    arg,
    arg_int,
    arg_list,
    error_body,
    json_reply,
    ok,
    required,
)
from daemon.api.job_json import JOB_COLUMNS, JobJson
from daemon.api.procstats import ProcessFigures
from daemon.api.ranges import LogFile
from daemon.api.routing import new_app
from daemon.chains import ChainError, parse_on
from daemon.domain import (
    RequestError,
    parse_job_id,
    parse_payload,
    parse_settings,
    parse_status,
)
from daemon.live_stats import read_stats
from daemon.retries import MAX_RETRIES, MAX_RETRY_DELAY
from daemon.triggers import ScheduleError, resolve_zone
from daemon.when_reading import describe

if TYPE_CHECKING:
    from daemon.job_store import JobReads
    from daemon.jobs import Plan

VERSION = "0.1.0"
MAX_DESCRIPTION = job_actions.MAX_DESCRIPTION
LIST_LIMIT_DEFAULT = 1000
LIST_LIMIT_MAX = 10000
_TRUE = ("1", "true", "True", "yes")
_FALSE = ("", "0", "false", "False", "no")
SCHEDULE_FIELDS = (
    "project",
    "spider",
    "when",
    "description",
    "payload",
    "setting",
    "max_runtime",
    "retries",
    "retry_delay",
    "after",
    "on",
)
_PAYLOAD_HINT = 'spider arguments go in payload, a JSON object: payload={"coins": "BTC,ETH"}'
PREVIEW_DEFAULT = 5
PREVIEW_MAX = 20
#: Most ids one cancel-jobs.json request may name.
BULK_CANCEL_MAX = 1000
_IDS_HINT = 'repeat id=..., or send a JSON body {"ids": ["<id>", ...]}'
_LOG_NAME_RE = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(out|err)$"
)


def parse_retries(raw: str | None, default: int) -> int:
    """schedule-job's `retries`: 0 to MAX_RETRIES; the project's default when absent."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"retries must be a whole number from 0 to {MAX_RETRIES}") from None
    if not 0 <= value <= MAX_RETRIES:
        raise ApiError(f"retries must be a whole number from 0 to {MAX_RETRIES}")
    return value


def parse_retry_delay(raw: str | None, default: float) -> float:
    """schedule-job's `retry_delay` (seconds before the first retry, doubling after)."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError("retry_delay must be a number of seconds") from None
    if not 0 <= value <= MAX_RETRY_DELAY:
        raise ApiError(f"retry_delay must be between 0 and {MAX_RETRY_DELAY:g} seconds")
    return value


# -- pure helpers (tested directly) -----------------------------------------------------


def format_uptime(seconds: float) -> str:
    """scrapy-do's uptime form: '1d 12m 24s' (zero parts left out)."""
    seconds = int(max(seconds, 0))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return " ".join(parts)


def parse_bool(name: str, raw: str | None) -> bool:
    """A yes/no parameter; anything else is refused rather than read as no."""
    value = raw or ""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(f"parameter {name!r} must be true or false, got {value[:40]!r}")


def page_tail(total: int, offset: int, count: int) -> str:
    """The keys after a list-jobs page's "jobs": how many jobs match the filters, and
    where the next page starts (null on the last), so a page that stops at `limit` is
    never taken for the whole list."""
    following = offset + count
    next_offset = str(following) if count and following < total else "null"
    return f', "total": {total}, "next_offset": {next_offset}'


FOLLOW_INTERVAL = 0.25
FOLLOW_CHUNK = 64 * 1024


@implementer(IPushProducer)
class _Backpressure:
    """Told by the connection when its send buffer is full (paused) and drained again;
    `on_resume` goes on at once, so a client that reads fast is not held to the tick."""

    paused = False
    on_resume: Any = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.on_resume is not None:
            self.on_resume()

    def stopProducing(self) -> None:
        self.paused = True


def _follow(request: Any, path: Any, job_id: str, offset: int, reads: JobReads) -> Deferred[bytes]:
    """`tail -f` over HTTP: stream the log from `offset`, then what the crawl appends,
    until the job is final and the file is drained (or the client goes away). Reads
    are bounded (1 MB per tick) so a huge log never holds the reactor, and a tick is
    skipped while the client has not taken what was sent (no unbounded buffering)."""
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    handle = open(path, "rb")  # noqa: SIM115 (closed by stop(), below)
    handle.seek(offset)
    state = {"done": False}
    flow = _Backpressure()
    request.registerProducer(flow, True)

    def stop() -> None:
        if state["done"]:
            return
        state["done"] = True
        if loop.running:
            loop.stop()
        handle.close()
        if getattr(request, "channel", None) is not None:  # None once the client left
            request.unregisterProducer()

    finished: Deferred[bytes] = Deferred(lambda _: stop())

    def tick() -> None:
        if state["done"]:
            return
        # The state is read before the file: a job seen final has written its last byte.
        job = reads.get(job_id)
        final = job is None or not job.active
        for _ in range(16):
            if flow.paused:  # the client reads slower than we read: wait for it
                return
            data = handle.read(FOLLOW_CHUNK)
            if not data:
                break
            request.write(data)
        else:
            return  # more to send: next tick
        if final:
            stop()
            finished.callback(b"")

    loop = LoopingCall(tick)
    flow.on_resume = lambda: reactor.callLater(0, tick)
    loop.clock = reactor
    loop.start(FOLLOW_INTERVAL, now=True)
    return finished


def preview(
    plan_of: Callable[[str], Plan],
    spec: str,
    count: int,
    zone: tzinfo | None,
    server_zone: tzinfo,
    server_zone_name: str,
) -> dict[str, Any]:
    """preview-when's reply: the spec validated by `plan_of` (schedule-job's parser and
    messages), its next `count` fire times (in the server's zone, in UTC and, when
    asked, in `zone`), its plain reading and the past timestamps it leaves out."""
    plan = plan_of(spec)
    if plan.when is None:
        return {
            "when": "now",
            "reading": "once, as soon as a slot is free",
            "timezone": server_zone_name,
            "next_runs": [],
            "ignored": [],
        }
    times: list[datetime] = []
    t = plan.next_run
    while t is not None and len(times) < count:
        times.append(t)
        t = plan.when.next_after(t)
    runs: list[dict[str, str]] = []
    for t in times:
        entry = {
            "time": t.astimezone(server_zone).isoformat(),
            "utc": t.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        if zone is not None:
            entry["local"] = t.astimezone(zone).isoformat()
        runs.append(entry)
    return {
        "when": plan.when.canonical,
        "reading": describe(plan.when),
        "timezone": server_zone_name,
        "next_runs": runs,
        "ignored": list(plan.ignored),
    }


# -- routes -----------------------------------------------------------------------------


def make_app(ctx: ApiContext) -> Klein:
    """scrapy-do's API, served at the root of the main listener."""
    app = new_app(error_body)
    config = ctx.config
    tz = config.tz
    data_dir = config.data_dir
    shaper = JobJson(tz, live=lambda job_id: read_stats(data_dir, job_id))
    process = ProcessFigures()
    jobs = ctx.jobs
    reads = ctx.job_reads
    projects = ctx.projects
    stall = ctx.stall

    @app.route("/status.json", methods=["GET"])
    @accepts()
    def status(request: Any) -> bytes:
        now = datetime.now(tz)
        memory, cpu = process.read()
        return ok(
            request,
            **{
                "memory-usage": memory,
                "cpu-usage": cpu,
                "time": str(now.replace(tzinfo=None)),
                "timezone": f"{config.timezone}; {now.tzname()}",
                "hostname": socket.gethostname(),
                "uptime": format_uptime(now.timestamp() - ctx.started),
                **jobs.figures(),
                "projects": len(projects.names()),
                "reactor-max-stall-ms": round(stall.max_stall * 1000, 1),
                "reactor-max-busy-ms": round(stall.max_busy * 1000, 1),
                "daemon-version": VERSION,
                # executor: celery: each worker host, its slots, running jobs, last beat.
                **({"nodes": ctx.cluster.nodes()} if ctx.cluster is not None else {}),
                # Each zygote (warm starts): project, pid, jobs running, rss/pss bytes.
                "zygotes": ctx.zygotes.status() if ctx.zygotes is not None else [],
            },
        )

    @app.route("/push-project.json", methods=["POST"])
    @accepts(
        "archive",
        "replace",
        form_hint="send the zip as multipart/form-data: curl -F archive=@project.zip",
    )
    def push_project(request: Any) -> Deferred[bytes]:
        archives = (request.args or {}).get(b"archive", [])
        if not archives:
            raise ApiError("Missing argument: archive")
        if len(archives) > 1:
            raise ApiError("parameter 'archive' is given more than once")
        replace = parse_bool("replace", arg(request, "replace"))
        d = projects.push(archives[0], jobs.push_guard, replace=replace)
        return d.addCallback(
            lambda res: ok(
                request,
                name=res.name,
                spiders=list(res.spiders),
                name_from=res.name_from,
                replaced=res.replaced,
            )
        )

    @app.route("/list-projects.json", methods=["GET"])
    @accepts()
    def list_projects(request: Any) -> bytes:
        return ok(request, projects=list(projects.names()))

    @app.route("/list-spiders.json", methods=["GET"])
    @accepts("project")
    def list_spiders(request: Any) -> Deferred[bytes]:
        name = required(request, "project")
        d = maybeDeferred(projects.get_spiders, name)
        return d.addCallback(lambda spiders: ok(request, project=name, spiders=list(spiders)))

    @app.route("/schedule-job.json", methods=["POST"])
    @accepts(
        *SCHEDULE_FIELDS,
        hint=_PAYLOAD_HINT,
        json_body=True,
        objects=("payload",),
        numbers=("max_runtime", "retries", "retry_delay"),
        pairs=("setting",),
    )
    def schedule_job(request: Any) -> Deferred[bytes]:
        project = required(request, "project")
        spider = required(request, "spider")
        when = required(request, "when")
        description = arg(request, "description", "") or ""
        if len(description) > MAX_DESCRIPTION:
            raise ApiError(f"description is longer than {MAX_DESCRIPTION} characters")
        payload = parse_payload(arg(request, "payload"))
        settings = parse_settings(arg_list(request, "setting"))
        max_runtime = None
        raw_runtime = arg(request, "max_runtime")
        if raw_runtime not in (None, ""):
            try:
                max_runtime = float(raw_runtime)
            except ValueError:
                raise ApiError("max_runtime must be a number of seconds") from None
            if not 0 <= max_runtime <= 10 * 365 * 86400:
                raise ApiError("max_runtime must be between 0 and ten years (in seconds)")
        local = config.projects.get(project)
        retries = parse_retries(arg(request, "retries"), local.retries if local else 0)
        retry_delay = parse_retry_delay(
            arg(request, "retry_delay"), local.retry_delay if local else 0.0
        )
        after = arg(request, "after")
        if after is not None:
            after = parse_job_id(after)
        try:
            on = parse_on(arg(request, "on"))
        except ChainError as exc:
            raise ApiError(str(exc)) from None
        plan = jobs.plan(when)  # validates `when` before anything is looked up

        def reply(job: Any) -> bytes:
            extra: dict[str, Any] = {}
            if plan.ignored:
                extra["ignored"] = list(plan.ignored)
            if job.next_run is not None:
                extra["next_run"] = shaper.iso(job.next_run)
            return ok(request, identifier=job.id, **extra)

        d = job_actions.schedule(
            ctx,
            project,
            spider,
            plan,
            description,
            payload,
            settings,
            max_runtime,
            retries=retries,
            retry_delay=retry_delay,
            after=after,
            on=on,
        )
        return d.addCallback(reply)

    @app.route("/list-jobs.json", methods=["GET"])
    @accepts("status", "id", "project", "spider", "limit", "offset")
    def list_jobs(request: Any) -> bytes | Deferred[bytes]:
        job_id = arg(request, "id")
        status_arg = arg(request, "status")
        if job_id is None and status_arg is None:
            raise ApiError("Missing argument: status or id")
        if job_id is not None:
            row = reads.get_row(parse_job_id(job_id), JOB_COLUMNS)
            if row is None:
                raise ApiError(f"Unknown job: {job_id.strip()}", 404)
            events = [{"time": shaper.iso(t), "text": text} for t, text in reads.events(row[0])]
            # The job's object with "events" as its last key, as one dict would give.
            body = (
                '{"status": "ok", "jobs": ['
                + shaper.job(row)[:-1]
                + ', "events": '
                + json.dumps(events, ensure_ascii=False)
                + "}]}\n"
            )
            return json_reply(request, body.encode("utf-8"))
        statuses = parse_status(status_arg or "")
        limit = arg_int(request, "limit", LIST_LIMIT_DEFAULT, 0, LIST_LIMIT_MAX)
        offset = arg_int(request, "offset", 0, 0, 10**9)

        def page(rows: list[tuple[Any, ...]], total: int) -> tuple[bytes, int]:
            # Job by job, not one json.dumps of the page: a C call holds the GIL for
            # all of it (~45 ms for 10,000 jobs), which would stall the reactor.
            body = (
                '{"status": "ok", "jobs": ['
                + shaper.jobs(rows)
                + "]"
                + page_tail(total, offset, len(rows))
                + "}\n"
            )
            return body.encode("utf-8"), total

        # Read and written in a thread: a page of 10,000 jobs takes tens of milliseconds.
        project, spider = arg(request, "project"), arg(request, "spider")
        d = reads.page_in_thread(JOB_COLUMNS, statuses, project, spider, limit, offset, page)

        def reply(result: tuple[bytes, int]) -> bytes | Deferred[bytes]:
            body, total = result
            if total or project is None or project in projects:
                return json_reply(request, body)

            # No job and no such project: a typo, unless the project was removed and
            # its jobs are still remembered (then the empty page is the answer).
            def known(has_jobs: bool) -> bytes:
                if not has_jobs:
                    raise ApiError(f"Unknown project: {project}", 404)
                return json_reply(request, body)

            return reads.project_has_jobs(project).addCallback(known)

        return d.addCallback(reply)

    @app.route("/cancel-job.json", methods=["POST"])
    @accepts("id", json_body=True)
    def cancel_job(request: Any) -> Deferred[bytes]:
        job_id = parse_job_id(required(request, "id"))
        return jobs.cancel(job_id).addCallback(lambda _: ok(request))

    # -- schedule and job actions ---------------------------------------------------

    def schedule_reply(request: Any, job: Any, **extra: Any) -> bytes:
        return ok(
            request,
            identifier=job.id,
            job_status=job.status,
            schedule=job.schedule,
            paused=job.paused,
            next_run=shaper.iso(job.next_run),
            **extra,
        )

    @app.route("/pause-schedule.json", methods=["POST"])
    @accepts("id", json_body=True)
    def pause_schedule(request: Any) -> bytes:
        job = jobs.pause(parse_job_id(required(request, "id")))
        return schedule_reply(request, job)

    @app.route("/resume-schedule.json", methods=["POST"])
    @accepts("id", json_body=True)
    def resume_schedule(request: Any) -> bytes:
        job = jobs.resume(parse_job_id(required(request, "id")))
        return schedule_reply(request, job)

    @app.route("/edit-schedule.json", methods=["POST"])
    @accepts("id", "when", json_body=True)
    def edit_schedule(request: Any) -> bytes:
        job_id = parse_job_id(required(request, "id"))
        plan = jobs.plan(required(request, "when"))  # schedule-job's grammar and messages
        job = jobs.edit(job_id, plan)
        extra = {"ignored": list(plan.ignored)} if plan.ignored else {}
        return schedule_reply(request, job, **extra)

    @app.route("/run-now.json", methods=["POST"])
    @accepts("id", json_body=True)
    def run_now(request: Any) -> bytes:
        run = jobs.run_now(parse_job_id(required(request, "id")))
        return ok(request, identifier=run.id, parent=run.parent)

    @app.route("/rerun-job.json", methods=["POST"])
    @accepts("id", json_body=True)
    def rerun_job(request: Any) -> bytes | Deferred[bytes]:
        job_id = parse_job_id(required(request, "id"))
        return job_actions.rerun(ctx, job_id).addCallback(
            lambda new: ok(request, identifier=new.id, rerun_of=job_id)
        )

    @app.route("/cancel-jobs.json", methods=["POST"])
    @accepts("id", "ids", hint=_IDS_HINT, json_body=True, lists=("id", "ids"))
    def cancel_jobs(request: Any) -> Deferred[bytes]:
        given = arg_list(request, "id") + arg_list(request, "ids")
        if not given:
            raise ApiError(f"Missing argument: id ({_IDS_HINT})")
        if len(given) > BULK_CANCEL_MAX:
            raise ApiError(f"at most {BULK_CANCEL_MAX} ids per request, got {len(given)}")
        # A malformed id refuses the whole request before anything is canceled (a list
        # with a typo is not half applied); unknown and inactive ids are per-id results.
        try:
            wanted = [parse_job_id(raw) for raw in given]
        except RequestError as exc:
            raise ApiError(f"{exc.message} (nothing was canceled)") from None
        unique = list(dict.fromkeys(wanted))

        def reply(results: list[dict[str, Any]]) -> bytes:
            counts = {
                kind: sum(1 for r in results if r["result"] == kind)
                for kind in ("canceled", "not active", "unknown", "error")
            }
            return ok(request, results=results, counts=counts)

        return jobs.cancel_many(unique).addCallback(reply)

    @app.route("/preview-when.json", methods=["GET"])
    @accepts("when", "count", "timezone")
    def preview_when(request: Any) -> Deferred[bytes]:
        spec = required(request, "when")
        count = arg_int(request, "count", PREVIEW_DEFAULT, 1, PREVIEW_MAX)
        zone_name = arg(request, "timezone")
        try:
            zone = resolve_zone(zone_name) if zone_name else None
        except ScheduleError as exc:
            raise ApiError(f"timezone: {exc}") from None
        # Parsing and walking a cron spec costs about a millisecond per fire time: done
        # in a worker thread (the parser is pure), so typing in a form never holds the
        # reactor.
        d = deferToThread(preview, jobs.plan, spec, count, zone, tz, config.timezone)
        return d.addCallback(lambda body: ok(request, **body))

    @app.route("/get-log/data/<path:name>", methods=["GET"])
    @accepts("follow", "offset", "attempt")
    def get_log(request: Any, name: str) -> Any:
        match = _LOG_NAME_RE.match(name)
        job = reads.get(match.group(1)) if match else None
        if not match or job is None:
            raise ApiError(f"Log not found: {name[:80]}", 404)
        attempt = arg_int(request, "attempt", job.attempt, 1, 1000)
        if attempt > job.attempt:
            raise ApiError(f"Job {job.id} has no attempt {attempt} (it is on {job.attempt})", 404)
        older = attempt if attempt < job.attempt else None  # the current one is <id>.<kind>
        path = jobs.log_path(match.group(1), match.group(2), older)
        if not path.is_file():
            raise ApiError(f"Log not found: {name[:80]}", 404)
        request.setHeader(b"Cache-Control", b"no-store")
        if arg(request, "follow") in ("1", "true", "yes"):
            offset = arg_int(request, "offset", 0, 0, 2**62)
            return _follow(request, path, match.group(1), offset, reads)
        # static.File streams in chunks (no big read on the reactor) and answers Range
        # (merged and bounded by LogFile).
        return LogFile(str(path), defaultType="text/plain; charset=utf-8")

    @app.route("/remove-project.json", methods=["POST"])
    @accepts("name", json_body=True)
    def remove_project(request: Any) -> Deferred[bytes]:
        name = required(request, "name")
        return projects.remove(name, jobs.remove_guard).addCallback(lambda _: ok(request))

    return app
