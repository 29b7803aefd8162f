"""The Projects page (push, remove, each spider's runs, run now, schedule) and the
removal's confirmation."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, DeferredList

from daemon.api.context import ApiContext
from daemon.domain import ACTIVE_STATUSES
from daemon.job_store import Job, JobQuery
from daemon.ui.kit import Kit, UiError


def add_routes(app: Klein, ctx: ApiContext, kit: Kit) -> None:
    projects = ctx.projects
    reads = ctx.job_reads

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
                    "spiders": spider_rows(spiders or [], found),
                    "listed": spiders is not None,
                }
            )

        d = DeferredList([summary(n) for n in names], consumeErrors=True)
        return d.addCallback(
            lambda results: kit.render(
                request,
                "projects.html",
                0,
                projects=[value for ok, value in results if ok],
                push_curl=kit.curl_for("push-project.json", {}, form={"archive": "@project.zip"}),
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
            return kit.fragment(
                request,
                "_remove.html",
                name=name,
                spiders=spiders,
                active=active,
                active_count=count,
                versions=projects.versions(name),
                curl=kit.curl_for("remove-project.json", {"name": name}),
            )

        return reads.search_in_thread(query, 20, 0).addCallback(shape)


def spider_rows(spiders: list[str], found: list[Any]) -> list[dict[str, Any]]:
    by_name = {s.spider: s for s in found}
    return [{"name": name, "summary": by_name.get(name)} for name in sorted(spiders)]
