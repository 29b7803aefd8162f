"""The dashboard's state changes: each one the same service call as its JSON endpoint
(daemon/api/scrapydo.py, daemon/api/job_actions.py), behind the cross-site guard, with
the refusal in the person's words and the API call as "copy as curl"."""

from __future__ import annotations

import json
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred

from daemon.api import job_actions
from daemon.api.context import ApiContext
from daemon.api.http import arg
from daemon.domain import parse_job_id, parse_payload, parse_settings
from daemon.ui.jobs_pages import find_job
from daemon.ui.kit import Kit, UiError

#: Most key/value rows a schedule form may send (payload and settings each).
MAX_ROWS = 50


def rows(request: Any, keys: str, values: str) -> list[tuple[str, str]]:
    """A form's key/value rows (blank rows dropped); a value without a key is refused
    rather than silently lost."""
    args = request.args or {}
    names = [v.decode("utf-8", "replace").strip() for v in args.get(keys.encode(), [])]
    texts = [v.decode("utf-8", "replace") for v in args.get(values.encode(), [])]
    if len(names) != len(texts) or len(names) > MAX_ROWS:
        raise UiError(f"at most {MAX_ROWS} rows, each a key and a value")
    out = []
    for number, (name, text) in enumerate(zip(names, texts, strict=True), 1):
        if not name and not text:
            continue
        if not name:
            raise UiError(f"row {number} has a value but no key")
        out.append((name, text))
    return out


def payload_of(pairs: list[tuple[str, str]]) -> str:
    """The payload (a JSON object of strings, as spider arguments are) of the rows,
    checked by schedule-job's own parser."""
    seen: dict[str, str] = {}
    for name, text in pairs:
        if name in seen:
            raise UiError(f"payload key {name[:40]!r} is given twice")
        seen[name] = text
    return parse_payload(json.dumps(seen, ensure_ascii=False))


def add_routes(app: Klein, ctx: ApiContext, kit: Kit) -> None:
    jobs = ctx.jobs
    projects = ctx.projects

    def done(request: Any, text: str, curl: str, **extra: Any) -> bytes:
        return kit.message(request, text, curl=curl, **extra)

    def job_id_of(request: Any) -> str:
        return parse_job_id((arg(request, "id") or "").strip())

    @app.route("/actions/cancel", methods=["POST"])
    def cancel(request: Any) -> Deferred[bytes]:
        kit.guard(request)
        job_id = (arg(request, "id") or "").strip()
        find_job(ctx, job_id)
        curl = kit.curl_for("cancel-job.json", {"id": job_id})
        return jobs.cancel(job_id).addCallback(
            lambda _: done(request, f"Job {job_id} canceled", curl)
        )

    @app.route("/actions/cancel-many", methods=["POST"])
    def cancel_many(request: Any) -> Deferred[bytes]:
        kit.guard(request)
        raw = [v.decode("ascii", "replace") for v in (request.args or {}).get(b"sel", [])]
        if not raw:
            raise UiError("Select the jobs to cancel first")
        if len(raw) > 1000:
            raise UiError("at most 1000 jobs at once")
        ids = list(dict.fromkeys(parse_job_id(v) for v in raw))
        curl = kit.curl_for("cancel-jobs.json", [("id", i) for i in ids])

        def reply(results: list[dict[str, Any]]) -> bytes:
            canceled = sum(1 for r in results if r["result"] == "canceled")
            others = len(results) - canceled
            text = f"Canceled {canceled} of {len(results)} selected jobs"
            if others:
                text += f" ({others} not active or unknown)"
            return done(request, text, curl)

        return jobs.cancel_many(ids).addCallback(reply)

    @app.route("/actions/rerun", methods=["POST"])
    def rerun(request: Any) -> Deferred[bytes]:
        kit.guard(request)
        job_id = job_id_of(request)
        curl = kit.curl_for("rerun-job.json", {"id": job_id})
        return job_actions.rerun(ctx, job_id).addCallback(
            lambda new: done(request, f"Re-ran job {job_id[:8]}", curl, job_id=new.id)
        )

    @app.route("/actions/run", methods=["POST"])
    def run_spider(request: Any) -> Deferred[bytes]:
        kit.guard(request)
        project = (arg(request, "project") or "").strip()
        spider = (arg(request, "spider") or "").strip()
        if project not in projects.names():
            raise UiError(f"No project {project[:40]}", 404)

        def submit(spiders: list[str]) -> bytes:
            if spider not in spiders:
                raise UiError(f"No spider {spider[:40]} in {project}", 404)
            job = jobs.submit(project, spider, plan=jobs.plan("now"))
            curl = kit.curl_for(
                "schedule-job.json", {"project": project, "spider": spider, "when": "now"}
            )
            return done(request, f"Started {project}/{spider}", curl, job_id=job.id)

        return maybeDeferred(projects.get_spiders, project).addCallback(submit)

    @app.route("/actions/schedule", methods=["POST"])
    def schedule(request: Any) -> Deferred[bytes]:
        kit.guard(request)
        project = (arg(request, "project") or "").strip()
        spider = (arg(request, "spider") or "").strip()
        when = (arg(request, "when") or "").strip()
        description = arg(request, "description") or ""
        if not project or not spider:
            raise UiError("Choose a project and a spider")
        payload = payload_of(rows(request, "pk", "pv"))
        pairs = rows(request, "sk", "sv")
        settings = parse_settings([f"{k}={v}" for k, v in pairs])
        plan = jobs.plan(when)
        call = [("project", project), ("spider", spider), ("when", when)]
        if description:
            call.append(("description", description))
        if payload != "{}":
            call.append(("payload", payload))
        call += [("setting", f"{k}={v}") for k, v in settings.items()]
        curl = kit.curl_for("schedule-job.json", call)
        d = job_actions.schedule(ctx, project, spider, plan, description, payload, settings)
        return d.addCallback(
            lambda job: done(
                request, f"Scheduled {project}/{spider}: {plan.spec}", curl, job_id=job.id
            )
        )

    @app.route("/actions/pause", methods=["POST"])
    def pause(request: Any) -> bytes:
        kit.guard(request)
        job = jobs.pause(job_id_of(request))
        curl = kit.curl_for("pause-schedule.json", {"id": job.id})
        return done(request, f"Paused {job.project}/{job.spider} ({job.schedule})", curl)

    @app.route("/actions/resume", methods=["POST"])
    def resume(request: Any) -> bytes:
        kit.guard(request)
        job = jobs.resume(job_id_of(request))
        curl = kit.curl_for("resume-schedule.json", {"id": job.id})
        return done(request, f"Resumed {job.project}/{job.spider} ({job.schedule})", curl)

    @app.route("/actions/run-now", methods=["POST"])
    def run_now(request: Any) -> bytes:
        kit.guard(request)
        job_id = job_id_of(request)
        run = jobs.run_now(job_id)
        curl = kit.curl_for("run-now.json", {"id": job_id})
        return done(request, f"Started a run of {run.project}/{run.spider}", curl, job_id=run.id)

    @app.route("/actions/edit", methods=["POST"])
    def edit(request: Any) -> bytes:
        kit.guard(request)
        job_id = job_id_of(request)
        when = (arg(request, "when") or "").strip()
        plan = jobs.plan(when)  # schedule-job's grammar and messages
        job = jobs.edit(job_id, plan)
        curl = kit.curl_for("edit-schedule.json", {"id": job_id, "when": when})
        return done(request, f"{job.project}/{job.spider} now runs {plan.spec}", curl)

    @app.route("/actions/push", methods=["POST"])
    def push(request: Any) -> Deferred[bytes]:
        kit.guard(request)
        archives = (request.args or {}).get(b"archive", [])
        if len(archives) != 1 or not archives[0]:
            raise UiError("Choose one project archive (.zip or .egg)")
        d = projects.push(archives[0], jobs.push_guard, replace=True)
        return d.addCallback(
            lambda res: kit.message(
                request,
                f"Pushed project {res.name}: "
                + (", ".join(res.spiders) if res.spiders else "no spiders found"),
                spiders=list(res.spiders),
            )
        )

    @app.route("/actions/remove", methods=["POST"])
    def remove(request: Any) -> Deferred[bytes]:
        kit.guard(request)
        name = (arg(request, "name") or "").strip()
        return projects.remove(name, jobs.remove_guard).addCallback(
            lambda _: kit.message(request, f"Removed project {name}")
        )
