"""The Overview page and its live fragment: slots, failures of the day, next runs,
daemon health, runs ended per hour."""

from __future__ import annotations

import time
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred

from daemon.api.context import ApiContext
from daemon.api.procstats import ProcessFigures
from daemon.ui import fmt
from daemon.ui.kit import Kit


def add_routes(app: Klein, ctx: ApiContext, kit: Kit) -> None:
    process = ProcessFigures()

    @app.route("/", methods=["GET"])
    def overview(request: Any) -> Any:
        if not request.path.endswith(b"/"):
            # /ui -> ui/: every relative link of the page needs the trailing slash.
            last = request.path.rsplit(b"/", 1)[-1]
            request.setResponseCode(302)
            request.setHeader(b"Location", last + b"/")
            return b""
        return values().addCallback(lambda v: kit.render(request, "overview.html", 0, **v))

    @app.route("/overview/live", methods=["GET"])
    def overview_live(request: Any) -> Deferred[bytes]:
        return values().addCallback(lambda v: kit.fragment(request, "_overview.html", **v))

    def values() -> Deferred[dict[str, Any]]:
        now = time.time()
        figures = ctx.jobs.figures()
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

        return ctx.job_reads.day_in_thread(now).addCallback(shape)
