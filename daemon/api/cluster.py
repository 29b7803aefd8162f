"""Klein routes workers call, under `/cluster/` (mounted only with `executor: celery`),
behind the daemon's own auth.

Thin: read the path and query, hand the body to the worker gate
(daemon/cluster/gate.py), answer JSON. Every write is fenced by (job id, attempt,
worker): a stale attempt gets 409.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.web.static import File

from daemon.api.context import ApiContext
from daemon.api.http import ApiError, arg, arg_int, json_body
from daemon.api.routing import new_app
from daemon.cluster.gate import WorkerGate, report_from_json
from daemon.cluster.names import check_job_id as _job
from daemon.cluster.names import check_key, check_worker

MAX_OFFSET = 1 << 40


def _error(request: Any, message: str, code: int = 400) -> bytes:
    return json_body(request, {"status": "error", "message": message}, code)


def _worker(request: Any) -> str:
    name = arg(request, "worker")
    if name is None:
        raise ApiError("Missing parameter 'worker'", 400)
    return check_worker(name)


def _body(request: Any) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read()
    return data


def _ok(request: Any, **data: Any) -> bytes:
    return json_body(request, {"status": "ok", **data})


def make_app(ctx: ApiContext) -> Klein:
    app = new_app(_error)
    gate: WorkerGate | None = ctx.cluster

    def need_gate() -> WorkerGate:
        if gate is None:
            raise ApiError("This daemon runs crawls itself (executor: local)", 404)
        return gate

    @app.route("/projects/<string:key>.zip", methods=["GET"])
    def project(request: Any, key: str) -> Deferred[Any]:
        d = need_gate().project_archive(check_key(key))
        return d.addCallback(lambda path: File(str(path), defaultType="application/zip"))

    @app.route("/jobs/<string:job_id>/<int:attempt>/started", methods=["POST"])
    def started(request: Any, job_id: str, attempt: int) -> Deferred[bytes]:
        pid = arg_int(request, "pid", 0, 0, 1 << 31)
        d = need_gate().started(_job(job_id), attempt, _worker(request), pid)
        return d.addCallback(lambda _: _ok(request))

    @app.route("/jobs/<string:job_id>/<int:attempt>/log/<string:kind>", methods=["POST"])
    def log_chunk(request: Any, job_id: str, attempt: int, kind: str) -> Deferred[bytes]:
        offset = arg_int(request, "offset", 0, 0, MAX_OFFSET)
        d = need_gate().append_log(
            _job(job_id), attempt, _worker(request), kind, offset, _body(request)
        )
        return d.addCallback(lambda size: _ok(request, size=size))

    @app.route("/jobs/<string:job_id>/<int:attempt>/stats", methods=["POST"])
    def stats(request: Any, job_id: str, attempt: int) -> Deferred[bytes]:
        d = need_gate().put_stats(_job(job_id), attempt, _worker(request), _body(request))
        return d.addCallback(lambda _: _ok(request))

    @app.route("/jobs/<string:job_id>/<int:attempt>/files", methods=["POST"])
    def file_chunk(request: Any, job_id: str, attempt: int) -> Deferred[bytes]:
        name = arg(request, "name")
        if not name:
            raise ApiError("Missing parameter 'name'", 400)
        offset = arg_int(request, "offset", 0, 0, MAX_OFFSET)
        d = need_gate().put_file(
            _job(job_id), attempt, _worker(request), name, offset, _body(request)
        )
        return d.addCallback(lambda size: _ok(request, size=size))

    @app.route("/jobs/<string:job_id>/<int:attempt>/ended", methods=["POST"])
    def ended(request: Any, job_id: str, attempt: int) -> Deferred[bytes]:
        report = report_from_json(_body(request))
        d = need_gate().ended(_job(job_id), attempt, _worker(request), report)
        return d.addCallback(lambda _: _ok(request))

    return app
