"""scrapyd 1.6.0's JSON API as its own Klein app, over the daemon's jobs and projects.

Each endpoint reads its parameters in scrapyd's order (params.py), answers in scrapyd's
envelope (replies.py) and reaches the daemon only through `ScrapydServices`: the jobs
service and the project store as they are, so jobs and projects are the same for both
APIs. Paths are accepted with one leading slash or two (scrapyd-client joins
`url + "/" + name`, scrapyd-deploy uses urljoin, so one scrapy.cfg URL serves both).
"""

from __future__ import annotations

import builtins
import math
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource
from twisted.web.static import File
from werkzeug.exceptions import HTTPException

from coinspiders.jobfolder import ITEMS_FILE
from daemon.api.scrapyd import eggs, html, items, params, replies, shape, signals, versions
from daemon.archive import ArchiveLimits, check_project_name
from daemon.domain import RequestError, parse_settings
from daemon.errors import DaemonError
from daemon.spider_args import scrapyd_payload

if TYPE_CHECKING:
    from daemon.projects import PushResult

log = Logger()


Guard = Callable[[str, "builtins.list[str]"], "str | None"]


T = TypeVar("T")


class JobsLike(Protocol):
    """The part of daemon.jobs.JobsService this API uses."""

    def submit(
        self,
        project: str,
        spider: str,
        *,
        payload: str = ...,
        settings: Mapping[str, str] | None = ...,
        job_id: str | None = ...,
        priority: float = ...,
        version: str | None = ...,
    ) -> Any: ...
    def cancel(self, job_id: str, sig: int | None = None) -> Deferred[Any]: ...
    def figures(self) -> dict[str, int | None]: ...
    def push_guard(self, project: str, spiders: list[str]) -> str | None: ...
    def remove_guard(self, project: str, spiders: list[str]) -> str | None: ...


class JobReadsLike(Protocol):
    """The part of the job store's reads (daemon.job_store.JobReads) this API uses."""

    def get(self, job_id: str) -> Any: ...
    def list_jobs(
        self,
        statuses: Iterable[str] | None,
        project: str | None = None,
        spider: str | None = None,
        limit: int = 100,
        offset: int = 0,
        conn: sqlite3.Connection | None = None,
    ) -> list[Any]: ...
    def read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> Deferred[T]: ...


class ProjectsLike(Protocol):
    """The part of daemon.projects.ProjectStore this API uses."""

    limits: ArchiveLimits

    def names(self) -> list[str]: ...
    def __contains__(self, name: object) -> bool: ...
    def get_spiders(self, name: str, refresh: bool = False) -> Deferred[list[str]]: ...
    def path(self, name: str, version: str | None = None) -> Path: ...
    def versions(self, name: str) -> builtins.list[str]: ...
    def version_spiders(self, name: str, version: str) -> builtins.list[str]: ...
    def push(
        self,
        archive: bytes,
        guard: Guard | None = None,
        replace: bool = False,
        version: str | None = None,
    ) -> Deferred[PushResult]: ...
    def remove(self, name: str, guard: Guard | None = None) -> Deferred[None]: ...
    def remove_version(
        self, name: str, version: str, guard: Guard | None = None
    ) -> Deferred[None]: ...


@dataclass(frozen=True)
class ScrapydServices:
    """What the scrapyd API needs of the daemon; `log_path(job_id)` is the crawl's
    Scrapy log (its stderr)."""

    jobs: JobsLike
    reads: JobReadsLike
    projects: ProjectsLike
    log_path: Callable[[str], Path]
    timezone: ZoneInfo
    #: Where crawls write `<job id>/`: a caller's job id must not name anything there.
    data_dir: Path


@dataclass(frozen=True)
class ScrapydOptions:
    node_name: str = ""
    #: Real 4xx codes on errors; scrapyd (and so the default) answers them with 200.
    error_codes: bool = False
    #: Where the app is mounted ("" at a listener's root, "/scrapyd" on the main one):
    #: the start of the log_url it gives.
    prefix: str = ""
    finished_limit: int = 1000

    @property
    def node(self) -> str:
        return self.node_name or socket.gethostname()


Handler = Callable[[Any, params.Args], Any]
#: Jobs read per state on the reactor thread for listjobs.json and the jobs page (a
#: few milliseconds for this many); scrapyd keeps every pending job in memory too.
PENDING_LIMIT = 10_000


class ScrapydApi:
    """The endpoints; `app` is the Klein app serving them."""

    def __init__(self, services: ScrapydServices, options: ScrapydOptions) -> None:
        self.svc = services
        self.jobs = services.jobs
        self.reads = services.reads
        self.projects = services.projects
        self.options = options
        self._versions: dict[Path, str] = {}
        self.app = Klein()
        self.app.url_map.merge_slashes = False
        self.app.url_map.strict_slashes = False
        self._endpoints: dict[str, tuple[tuple[str, ...], Handler]] = {
            "daemonstatus.json": (("GET",), self.daemonstatus),
            "addversion.json": (("POST",), self.addversion),
            "schedule.json": (("POST",), self.schedule),
            "cancel.json": (("POST",), self.cancel),
            "status.json": (("GET",), self.status),
            "listprojects.json": (("GET",), self.listprojects),
            "listversions.json": (("GET",), self.listversions),
            "listspiders.json": (("GET",), self.listspiders),
            "listjobs.json": (("GET",), self.listjobs),
            "delversion.json": (("POST",), self.delversion),
            "delproject.json": (("POST",), self.delproject),
        }
        self._routes()

    # -- plumbing --------------------------------------------------------------------

    def _routes(self) -> None:
        app = self.app

        @app.route("/<string:name>")
        @app.route("//<string:name>")
        def endpoint(request: Any, name: str) -> Any:
            if name == "jobs":
                return self._html(request, self._jobs_page(request))
            found = self._endpoints.get(name)
            if found is None:
                return resource.NoResource()
            methods, handler = found
            return self._answer(request, methods, handler)

        @app.route("/logs/<string:project>/<string:spider>/<string:name>")
        @app.route("//logs/<string:project>/<string:spider>/<string:name>")
        def logs(request: Any, project: str, spider: str, name: str) -> Any:
            return self._log(request, project, spider, name)

        @app.route("/items/<string:project>/<string:spider>/<string:name>")
        @app.route("//items/<string:project>/<string:spider>/<string:name>")
        def items_file(request: Any, project: str, spider: str, name: str) -> Any:
            return self._items(request, project, spider, name)

        @app.route("/")
        @app.route("//")
        def home(request: Any) -> bytes:
            page = html.home(self._base(request), self.projects.names())
            return self._html(request, page)

        @app.route("/logs/")
        @app.route("/logs/<string:project>/")
        @app.route("/logs/<string:project>/<string:spider>/")
        def log_folders(request: Any, project: str = "", spider: str = "") -> Any:
            return self._log_folder(request, project, spider)

        @app.handle_errors(HTTPException)
        def not_found(request: Any, failure: Failure) -> Any:
            return resource.NoResource()

    def _headers(self, request: Any, methods: Iterable[str]) -> None:
        allowed = replies.allowed_methods(methods)
        request.setHeader(b"Access-Control-Allow-Origin", replies.CORS_ALLOW_ORIGIN.encode())
        request.setHeader(b"Access-Control-Allow-Methods", allowed.encode())
        request.setHeader(b"Access-Control-Allow-Headers", replies.CORS_ALLOW_HEADERS.encode())

    def _send(self, request: Any, methods: Iterable[str], body: bytes, code: int = 200) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        self._headers(request, methods)
        request.setHeader(b"Content-Length", str(len(body)).encode())
        return body

    def _error(self, request: Any, methods: Iterable[str], message: str, code: int) -> bytes:
        code = code if self.options.error_codes else 200
        return self._send(request, methods, replies.error_body(message, self.options.node), code)

    def _answer(self, request: Any, methods: tuple[str, ...], handler: Handler) -> Any:
        method = request.method.decode("latin-1")
        if method == "OPTIONS":
            self._headers(request, methods)
            request.setHeader(b"Allow", replies.allowed_methods(methods).encode())
            request.setHeader(b"Content-Length", b"0")
            request.setResponseCode(204)
            return b""
        if method == "HEAD" and "GET" in methods:
            method = "GET"
        if method not in methods:
            exc = replies.unsupported_method(methods)
            return self._error(request, methods, exc.message, exc.code)
        args: params.Args = {k: list(v) for k, v in (request.args or {}).items()}

        def done(data: dict[str, Any]) -> bytes:
            return self._send(request, methods, replies.ok_body(data, self.options.node))

        def failed(failure: Failure) -> bytes:
            exc = failure.value
            if isinstance(exc, replies.ScrapydError):
                return self._error(request, methods, exc.message, exc.code)
            if isinstance(exc, DaemonError):
                return self._error(request, methods, exc.message, exc.http_status)
            log.failure(
                "scrapyd API: unexpected error answering {path}", failure, path=request.path
            )
            return self._error(request, methods, "internal error; see the daemon log", 500)

        d = maybeDeferred(handler, request, args)
        return d.addCallbacks(done, failed)

    # -- projects and versions -------------------------------------------------------

    def _known(self, project: str) -> None:
        if project not in self.projects:
            raise replies.project_not_found(project)

    def _shown(self, project: str, stored: str) -> str:
        """The name a stored version is listed under: the scrapyd version its scrapy.cfg
        records (a store written before versions were named knows only its folder),
        else the store's own name for it (a scrapy-do push's)."""
        folder = self.projects.path(project, stored)
        cached = self._versions.get(folder)
        if cached is None:
            try:
                # A small file of the store's own making; read once per pushed version.
                cfg = (folder / "scrapy.cfg").read_text(encoding="utf-8", errors="replace")
            except OSError:
                cfg = ""
            cached = versions.listed_name(eggs.version_of(cfg) or stored)
            if len(self._versions) > 10_000:
                self._versions.clear()
            self._versions[folder] = cached
        return cached

    def versions_of(self, project: str) -> list[str]:
        """scrapyd's listing: oldest first, the latest (what crawls run by default) last."""
        if project not in self.projects:
            return []
        stored = self.projects.versions(project)
        return versions.sort_versions([self._shown(project, v) for v in stored])

    def _stored_version(self, project: str, version: str) -> str:
        """The store's name of the version a request names (as listed, or as added)."""
        for stored in self.projects.versions(project):
            shown = self._shown(project, stored)
            if versions.same_version(shown, version) or versions.same_version(stored, version):
                return stored
        raise replies.version_not_found(version)

    # -- endpoints -------------------------------------------------------------------

    def daemonstatus(self, request: Any, args: params.Args) -> dict[str, Any]:
        figures = self.jobs.figures()
        finished = sum(
            figures.get(k) or 0 for k in ("jobs-successful", "jobs-failed", "jobs-canceled")
        )
        return {"pending": figures["pending"], "running": figures["running"], "finished": finished}

    def listprojects(self, request: Any, args: params.Args) -> dict[str, Any]:
        return {"projects": list(self.projects.names())}

    def listversions(self, request: Any, args: params.Args) -> dict[str, Any]:
        project = params.take(args, "project")
        if replies.is_traversal(project):
            raise replies.traversal(project)
        return {"versions": self.versions_of(project)}

    def listspiders(self, request: Any, args: params.Args) -> Deferred[dict[str, Any]]:
        project = params.take(args, "project")
        version = params.take(args, "_version", optional=True)
        self._known(project)
        d = self._spiders(project, version)
        return d.addCallback(lambda spiders: {"spiders": list(spiders)})

    def _spiders(self, project: str, version: str | None) -> Deferred[list[str]]:
        """The spiders of the version asked for, else of the latest."""
        if not version:
            return self.projects.get_spiders(project)
        stored = self._stored_version(project, version)
        return succeed(self.projects.version_spiders(project, stored))

    def schedule(self, request: Any, args: params.Args) -> Deferred[dict[str, Any]]:
        project = params.take(args, "project")
        spider = params.take(args, "spider")
        version = params.take(args, "_version", optional=True)
        jobid = params.take(args, "jobid", optional=True)
        priority = params.take(args, "priority", optional=True, default=0.0, convert=float)
        if not math.isfinite(priority):
            raise replies.ScrapydError(f"priority is invalid: {priority} is not a number", 400)
        setting = params.take_all(args, "setting")
        self._known(project)
        stored = self._stored_version(project, version) if version else None
        if jobid is not None:
            shape.check_job_id(jobid)
            taken = (self.svc.data_dir / jobid).exists() or self.svc.log_path(jobid).exists()
            if taken or self.reads.get(jobid) is not None:
                raise replies.ScrapydError(f"jobid '{jobid}' is already used", 409)
        try:
            settings = parse_settings(setting)
        except RequestError as exc:
            raise replies.ScrapydError(exc.message, 400) from None
        spider_args = params.rest(args)
        payload = scrapyd_payload(spider_args, version)

        def submit(spiders: list[str]) -> dict[str, Any]:
            if spider not in spiders:
                raise replies.spider_not_found(spider)
            if jobid is not None and self.reads.get(jobid) is not None:
                raise replies.ScrapydError(f"jobid '{jobid}' is already used", 409)
            job = self.jobs.submit(
                project,
                spider,
                payload=payload,
                settings=settings,
                job_id=jobid,
                priority=priority,
                version=stored,
            )
            return {"jobid": job.id}

        return self._spiders(project, version).addCallback(submit)

    def cancel(self, request: Any, args: params.Args) -> dict[str, Any]:
        project = params.take(args, "project")
        job_id = params.take(args, "job")
        sig_text = params.take(args, "signal", optional=True)
        self._known(project)
        sig = signals.parse_signal(sig_text) if sig_text is not None else None
        job = self.reads.get(job_id)
        state = shape.STATE_OF.get(job.status) if job is not None else None
        if job is None or job.project != project or state not in ("pending", "running"):
            return {"prevstate": None}
        # scrapyd answers at once; the crawl ends (and is recorded) in the background.
        self.jobs.cancel(job.id, sig).addErrback(
            lambda f: log.warn("scrapyd cancel of {id}: {why}", id=job.id, why=f.getErrorMessage())
        )
        return {"prevstate": state}

    def status(self, request: Any, args: params.Args) -> dict[str, Any]:
        job_id = params.take(args, "job")
        project = params.take(args, "project", optional=True)
        if project is not None:
            self._known(project)
        job = self.reads.get(job_id)
        if job is None or (project is not None and job.project != project):
            return {"currstate": None}
        return {"currstate": shape.STATE_OF.get(job.status)}

    def listjobs(self, request: Any, args: params.Args) -> Deferred[dict[str, Any]]:
        project = params.take(args, "project", optional=True)
        if project is not None:
            self._known(project)
        # Up to PENDING_LIMIT + finished_limit rows and an lstat per job: in a worker
        # thread, as clients poll this (it must not hold the reactor).
        return self.reads.read_in_thread(lambda conn: self._job_groups(project, conn))

    def _job_groups(self, project: str | None, conn: sqlite3.Connection) -> dict[str, Any]:
        tz, prefix = self.svc.timezone, self.options.prefix
        out: dict[str, Any] = {}
        for group, statuses in shape.GROUPS.items():
            limit = self.options.finished_limit if group == "finished" else PENDING_LIMIT
            jobs = self.reads.list_jobs(statuses, project, None, limit, 0, conn)
            if group == "pending":  # in the order they will run
                jobs.sort(key=lambda j: (-j.priority, j.seq))
            if group == "finished":
                jobs = [j for j in jobs if j.started is not None]
            out[group] = [
                shape.job_entry(
                    j,
                    group,
                    tz,
                    prefix,
                    has_items=group != "pending" and items.is_plain_file(self.items_path(j.id)),
                )
                for j in jobs
            ]
        return out

    def addversion(self, request: Any, args: params.Args) -> Deferred[dict[str, Any]]:
        project = params.take(args, "project")
        version = params.take(args, "version")
        egg = params.take(args, "egg", convert=bytes)
        if not eggs.is_zip(egg):
            raise replies.ScrapydError(replies.EGG_NOT_ZIP, 400)
        if replies.is_traversal(project):
            raise replies.traversal(project)
        check_project_name(project)
        limits = self.projects.limits
        d = deferToThread(eggs.egg_to_project, egg, project, version, limits)
        pushed = d.addCallback(
            lambda archive: self.projects.push(archive, self.jobs.push_guard, version=version)
        )
        return pushed.addCallback(
            lambda res: {"project": project, "version": version, "spiders": len(res.spiders)}
        )

    def delversion(self, request: Any, args: params.Args) -> Deferred[dict[str, Any]]:
        project = params.take(args, "project")
        version = params.take(args, "version")
        if replies.is_traversal(project):
            raise replies.traversal(project)
        if project not in self.projects:
            raise replies.version_not_found(version)
        stored = self._stored_version(project, version)
        if len(self.projects.versions(project)) == 1:
            # scrapyd drops a project whose last version goes, and its queue with it.
            return self._drop(project)
        jobs = self.jobs

        def guard(name: str, spiders: list[str]) -> str | None:
            return jobs.push_guard(name, spiders) if spiders else jobs.remove_guard(name, [])

        d = self.projects.remove_version(project, stored, guard)
        return d.addCallback(lambda _: {})

    def delproject(self, request: Any, args: params.Args) -> Deferred[dict[str, Any]]:
        project = params.take(args, "project")
        if replies.is_traversal(project):
            raise replies.traversal(project)
        self._known(project)
        return self._drop(project)

    def _drop(self, project: str) -> Deferred[dict[str, Any]]:
        """Remove a project and its pending jobs (as scrapyd's queue goes with it)."""
        for job in self.reads.list_jobs(("PENDING",), project, None, PENDING_LIMIT, 0):
            self.jobs.cancel(job.id)
        d = self.projects.remove(project, self.jobs.remove_guard)
        return d.addCallback(lambda _: {})

    # -- pages -----------------------------------------------------------------------

    def _base(self, request: Any) -> str:
        """Where the browser reaches this app: X-Forwarded-Prefix (a proxy's), else the
        mount path."""
        header = request.getHeader(b"x-forwarded-prefix")
        if header:
            return header.decode("latin-1").rstrip("/")
        return self.options.prefix

    def _html(self, request: Any, page: bytes) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Length", str(len(page)).encode())
        return page

    def _jobs_page(self, request: Any) -> bytes:
        tz = self.svc.timezone
        now = time.time()
        groups: dict[str, list[dict[str, str | None]]] = {}
        for group, statuses in shape.GROUPS.items():
            limit = self.options.finished_limit if group == "finished" else PENDING_LIMIT
            rows = []
            for job in self.reads.list_jobs(statuses, None, None, limit, 0):
                if group == "finished" and job.started is None:
                    continue
                end = job.finished if group == "finished" else now
                rows.append(
                    {
                        "project": job.project,
                        "spider": job.spider,
                        "id": job.id,
                        "pid": str(job.pid) if group == "running" and job.pid else None,
                        "start": shape.seconds_time(job.started, tz),
                        "runtime": shape.runtime(job.started, end),
                        "finish": shape.seconds_time(job.finished, tz),
                        "log_url": shape.log_url("", job),
                    }
                )
            groups[group] = rows
        return html.jobs(self._base(request), groups)

    def _log_folder(self, request: Any, project: str, spider: str) -> Any:
        if any(replies.is_traversal(p) for p in (project, spider) if p):
            return resource.NoResource()
        started = [
            j
            for j in self.reads.list_jobs(None, project or None, spider or None, 10_000, 0)
            if j.started is not None
        ]
        if not project:
            entries = {(j.project, True) for j in started}
        elif not spider:
            entries = {(j.spider, True) for j in started}
        else:
            entries = {(f"{j.id}.log", False) for j in started}
        if (project or spider) and not entries:
            return resource.NoResource()
        title = "/".join(p for p in ("logs", project, spider) if p) + "/"
        return self._html(request, html.listing(f"Directory listing for /{title}", entries))

    # -- items ---------------------------------------------------------------------

    def items_path(self, job_id: str) -> Path:
        """Where the coinspiders pipelines write a crawl's items (JSON lines)."""
        return self.svc.data_dir / job_id / ITEMS_FILE

    def _job_named(self, project: str, spider: str, name: str, ext: str) -> Any:
        """The job a `/logs/` or `/items/` path names (`<job>.<ext>` of that project and
        spider), or None."""
        job_id, dot, got = name.rpartition(".")
        if not dot or got != ext or any(replies.is_traversal(p) for p in (project, spider)):
            return None
        job = self.reads.get(job_id)
        if job is None or job.project != project or job.spider != spider:
            return None
        return job

    def _items(self, request: Any, project: str, spider: str, name: str) -> Any:
        job = self._job_named(project, spider, name, "jl")
        if job is None:
            return resource.NoResource()
        path = self.items_path(job.id)
        if not items.is_plain_file(path):
            return resource.NoResource()
        request.setHeader(b"Cache-Control", b"no-store")
        return items.PlainFile(str(path), defaultType="text/plain")

    # -- logs ------------------------------------------------------------------------

    def _log(self, request: Any, project: str, spider: str, name: str) -> Any:
        job = self._job_named(project, spider, name, "log")
        if job is None:
            return resource.NoResource()
        path = self.svc.log_path(job.id)
        if not path.is_file():
            return resource.NoResource()
        request.setHeader(b"Cache-Control", b"no-store")
        # static.File streams in chunks and answers Range (ScrapydWeb asks bytes=-N).
        return File(str(path), defaultType="text/plain")


def build_app(services: ScrapydServices, options: ScrapydOptions) -> Klein:
    return ScrapydApi(services, options).app
