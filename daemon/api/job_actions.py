"""The checks and service calls behind scheduling and re-running a job, shared by the
JSON API (daemon/api/scrapydo.py) and the dashboard's actions (daemon/ui/actions.py),
so the UI can do nothing the API cannot, with the same refusals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, maybeDeferred

from daemon.api.http import ApiError

if TYPE_CHECKING:
    from daemon.api.context import ApiContext
    from daemon.job_store import Job
    from daemon.jobs import Plan

MAX_DESCRIPTION = 2000


def schedule(
    ctx: ApiContext,
    project: str,
    spider: str,
    plan: Plan,
    description: str = "",
    payload: str = "{}",
    settings: dict[str, str] | None = None,
    max_runtime: float | None = None,
    *,
    retries: int = 0,
    retry_delay: float = 0.0,
    after: str | None = None,
    on: str = "success",
) -> Deferred[Job]:
    """A new job of `project`/`spider` on `plan` (validated by jobs.plan), once the
    spider is known to exist and accepts the payload; `retries`, `retry_delay`, `after`
    and `on` as the jobs service takes them (daemon.retries, daemon.chains)."""
    if len(description) > MAX_DESCRIPTION:
        raise ApiError(f"description is longer than {MAX_DESCRIPTION} characters")

    def submit(spiders: list[str]) -> Job:
        if spider not in spiders:
            raise ApiError(f"Unknown spider {project}/{spider}", 400)
        problem = ctx.projects.argument_problem(project, spider, payload)
        if problem:
            raise ApiError(f"{project}/{spider} cannot run with this payload: {problem}")
        return ctx.jobs.submit(
            project,
            spider,
            plan=plan,
            description=description,
            payload=payload,
            settings=settings or {},
            max_runtime=max_runtime,
            retries=retries,
            retry_delay=retry_delay,
            after=after,
            on=on,
        )

    return maybeDeferred(ctx.projects.get_spiders, project).addCallback(submit)


def rerun(ctx: ApiContext, job_id: str) -> Deferred[Job]:
    """A new run of a finished job with its arguments, refused (409, saying why) when
    its project, version or spider is gone. Refusals known at once are raised."""
    jobs, projects = ctx.jobs, ctx.projects
    old = jobs.rerunnable(job_id)  # a finished run, or the refusal saying why
    if old.project not in projects:
        raise ApiError(f"Job {job_id} cannot be re-run: project {old.project} is gone", 409)
    if old.version is not None and old.version not in projects.versions(old.project):
        raise ApiError(
            f"Job {job_id} cannot be re-run: version {old.version} of project "
            f"{old.project} is gone",
            409,
        )

    def submit(spiders: list[str]) -> Job:
        if old.spider not in spiders:
            raise ApiError(
                f"Job {job_id} cannot be re-run: project {old.project} has no spider "
                f"{old.spider} any more",
                409,
            )
        return jobs.rerun(job_id)

    return maybeDeferred(projects.get_spiders, old.project).addCallback(submit)
