"""The Schedules page: every recurring or timed job with its `when`, a plain reading,
next run, last run and misfires, and a form whose `when` is checked on the server as
it is typed (the preview of preview-when.json: same parser, same messages)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from daemon.api.context import ApiContext
from daemon.api.http import arg
from daemon.api.job_json import JOB_COLUMNS, JobJson
from daemon.api.scrapydo import preview
from daemon.domain import SCHEDULED
from daemon.errors import DaemonError
from daemon.triggers import ScheduleError, resolve_zone
from daemon.ui import fmt
from daemon.ui.kit import Kit
from daemon.when_reading import describe

#: Most schedules the page lists (a daemon has tens, not thousands).
MOST = 500
PREVIEW_COUNT = 5
#: Empty key/value rows a new form starts with ("Add a row" adds more).
BLANK_ROWS = 2


def reading(plan_of: Any, spec: str) -> str:
    """A stored `when` in words; the spec itself when it no longer parses."""
    try:
        plan = plan_of(spec)
    except Exception:  # a spec of an older grammar: shown as written
        return spec
    return describe(plan.when) if plan.when is not None else spec


def add_routes(app: Klein, ctx: ApiContext, kit: Kit) -> None:
    config = ctx.config
    jobs = ctx.jobs
    projects = ctx.projects
    shaper = JobJson(config.tz)

    def schedule_rows(browser: str) -> Deferred[list[dict[str, Any]]]:
        """Each schedule as list-jobs shows it, with its reading, its next run in the
        server's zone and in `browser` (an IANA name the page sent; ignored when
        unknown) and its actions' curl calls."""
        try:
            zone = resolve_zone(browser) if browser else None
        except ScheduleError:
            zone = None

        def shape(found: list[tuple[Any, ...]], total: int) -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = json.loads("[" + shaper.jobs(found) + "]")
            for entry in listed:
                entry["reading"] = reading(jobs.plan, entry["schedule"])
                nxt = _epoch(entry["next_run"])
                entry["next_server"] = fmt.timestamp(nxt, config.tz) if nxt else None
                entry["next_browser"] = fmt.timestamp(nxt, zone) if nxt and zone else None
                entry["curl"] = {
                    name: kit.curl_for(path, {"id": entry["identifier"]})
                    for name, path in (
                        ("pause", "pause-schedule.json"),
                        ("resume", "resume-schedule.json"),
                        ("run", "run-now.json"),
                        ("delete", "cancel-job.json"),
                    )
                }
            return listed

        return ctx.job_reads.page_in_thread(JOB_COLUMNS, (SCHEDULED,), None, None, MOST, 0, shape)

    @app.route("/schedules", methods=["GET"])
    def schedules_page(request: Any) -> Deferred[bytes]:
        project = (arg(request, "project") or "").strip()
        spider = (arg(request, "spider") or "").strip()
        names = projects.names()
        spider_lists = DeferredList(
            [ctx.projects.get_spiders(n) for n in names], consumeErrors=True
        )

        def page(schedules: list[dict[str, Any]], spider_results: list[Any]) -> bytes:
            catalogue = {
                name: sorted(found) if ok else []
                for name, (ok, found) in zip(names, spider_results, strict=True)
            }
            return kit.render(
                request,
                "schedules.html",
                0,
                schedules=schedules,
                catalogue=catalogue,
                project=project,
                spider=spider,
                blank=range(BLANK_ROWS),
                zone=config.timezone,
                schedule_curl=kit.curl_for(
                    "schedule-job.json",
                    {"project": "P", "spider": "S", "when": "every day at 03:00"},
                ),
            )

        return schedule_rows("").addCallback(
            lambda schedules: spider_lists.addCallback(lambda found: page(schedules, found))
        )

    @app.route("/schedules/rows", methods=["GET"])
    def rows_fragment(request: Any) -> Deferred[bytes]:
        browser = (arg(request, "tz") or "").strip()[:64]
        return schedule_rows(browser).addCallback(
            lambda schedules: kit.fragment(
                request, "_schedule_rows.html", schedules=schedules, browser=browser
            )
        )

    @app.route("/schedules/preview", methods=["GET"])
    def when_preview(request: Any) -> Deferred[bytes] | bytes:
        """Answered 200 either way: a refused spec is the preview's answer (the
        server's message), not a failed request."""
        spec = (arg(request, "when") or "").strip()
        if not spec:
            return kit.fragment(request, "_when_preview.html", problem=None, result=None)
        zone_name = (arg(request, "tz") or "").strip()
        try:
            zone = resolve_zone(zone_name) if zone_name else None
        except ScheduleError:
            zone = None  # an unknown browser zone: the server's times only
        d = deferToThread(preview, jobs.plan, spec, PREVIEW_COUNT, zone, config.tz, config.timezone)

        def refused(failure: Failure) -> bytes:
            failure.trap(DaemonError)
            message = failure.getErrorMessage()
            return kit.fragment(request, "_when_preview.html", problem=message, result=None)

        return d.addCallbacks(
            lambda result: kit.fragment(
                request, "_when_preview.html", problem=None, result=result, browser=zone_name
            ),
            refused,
        )

    @app.route("/schedules/row", methods=["GET"])
    def blank_row(request: Any) -> bytes:
        kind = arg(request, "kind") or "p"
        names = ("pk", "pv") if kind == "p" else ("sk", "sv")
        return kit.fragment(request, "_kv_row.html", k=names[0], v=names[1])


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
