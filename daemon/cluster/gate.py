"""The daemon's side of what workers send and fetch: project versions, log chunks, live
stats, the job folder and the attempt's start and end.

Every write names (job id, attempt, worker) and passes the fence first: only the attempt
the daemon holds current, run by the worker that claimed it, may write. Anything else
(a worker that slept through its lease, a late duplicate) is refused with 409 and
logged, so a stale attempt can never touch a job's log, stats or folder. File work runs
in threads (daemon/cluster/files.py), never on the reactor.

Uploaded job files are staged under `<data>/.cluster/incoming/<id>.<attempt>/` and
moved into `<data>/<id>/` only when that attempt's end is accepted: the job folder
never mixes two attempts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from daemon.cluster.files import UploadError, append_at, commit_folder, project_zip, safe_relpath
from daemon.live_stats import canonical, live_stats_path
from daemon.runner.stats import write_atomically

log = Logger()

LOG_KINDS = ("out", "err")
#: A job's log may not grow past this on the daemon (a runaway crawl cannot fill it).
MAX_LOG_BYTES = 1024 * 1024 * 1024


class Attempts(Protocol):
    """What the gate asks of the executor that owns the attempts (on the reactor)."""

    def fence(self, job_id: str, attempt: int, worker: str) -> str | None:
        """None when `attempt` of `job_id` is current and `worker` runs it (or may
        start it, for `started`); otherwise why the write is refused."""

    def project_folder(self, key: str) -> Path | None:
        """The project folder a published task named by `key`; None if unknown."""

    def on_started(self, job_id: str, attempt: int, worker: str, pid: int) -> Deferred[None]:
        """The worker claimed the attempt and its crawl runs as `pid`."""

    def on_stats(self, job_id: str, stats: str) -> None: ...

    def nodes(self) -> list[dict[str, Any]]:
        """The worker hosts as last seen (no Redis call: read from the reaper's survey)."""

    def on_ended(self, job_id: str, attempt: int, worker: str, report: Mapping[str, Any]) -> None:
        """The attempt ended and its folder is in place: `report` holds its outcome."""


class StaleAttempt(UploadError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


class WorkerGate:
    def __init__(
        self,
        attempts: Attempts,
        data_dir: Path,
        logs_dir: Path,
        *,
        max_job_bytes: int,
        max_job_files: int,
    ) -> None:
        self.attempts = attempts
        self.data_dir = Path(data_dir).resolve()
        self.logs_dir = Path(logs_dir).resolve()
        self.cache = self.data_dir / ".cluster"
        self.max_job_bytes = max_job_bytes
        self.max_job_files = max_job_files
        # (job, attempt) -> [bytes, files] staged so far, for the caps.
        self._staged: dict[tuple[str, int], list[int]] = {}
        self.refused = 0

    def nodes(self) -> list[dict[str, Any]]:
        return self.attempts.nodes()

    def staging(self, job_id: str, attempt: int) -> Path:
        return self.cache / "incoming" / f"{job_id}.{attempt}"

    def _check(self, job_id: str, attempt: int, worker: str, what: str) -> None:
        why = self.attempts.fence(job_id, attempt, worker)
        if why is not None:
            self.refused += 1
            log.warn(
                "refused {what} of job {id} attempt {n} from worker {w}: {why}",
                what=what,
                id=job_id,
                n=attempt,
                w=worker,
                why=why,
            )
            raise StaleAttempt(f"Attempt {attempt} of job {job_id} may not write: {why}")

    # -- reads ----------------------------------------------------------------

    def project_archive(self, key: str) -> Deferred[Path]:
        folder = self.attempts.project_folder(key)
        if folder is None:
            return fail(UploadError(f"Unknown project version {key[:80]!r}", 404))
        return deferToThread(project_zip, folder, self.cache / "zips" / f"{key}.zip")

    # -- writes ---------------------------------------------------------------

    def started(self, job_id: str, attempt: int, worker: str, pid: int) -> Deferred[None]:
        """A later attempt starts its logs afresh (the worker counts offsets from 0):
        the lost attempt's logs are kept beside them as `<id>.<kind>.attempt<n>`."""
        try:
            self._check(job_id, attempt, worker, "start")
        except UploadError as exc:
            return fail(exc)
        if attempt <= 1:
            return self.attempts.on_started(job_id, attempt, worker, pid)
        d = deferToThread(self._set_logs_aside, job_id, attempt - 1)
        return d.addCallback(lambda _: self.attempts.on_started(job_id, attempt, worker, pid))

    def _set_logs_aside(self, job_id: str, attempt: int) -> None:
        for kind in LOG_KINDS:
            # <id>.<n>.out|err, as the local executor keeps an earlier attempt's logs
            # (get-log's `attempt=`).
            path = self.logs_dir / f"{job_id}.{kind}"
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, path.with_name(f"{job_id}.{attempt}.{kind}"))

    def append_log(
        self, job_id: str, attempt: int, worker: str, kind: str, offset: int, data: bytes
    ) -> Deferred[int]:
        try:
            if kind not in LOG_KINDS:
                raise UploadError(f"Unknown log {kind[:20]!r}: out or err", 400)
            self._check(job_id, attempt, worker, f"{kind} log")
        except UploadError as exc:
            return fail(exc)
        path = self.logs_dir / f"{job_id}.{kind}"
        return deferToThread(append_at, path, offset, data, MAX_LOG_BYTES)

    def put_stats(self, job_id: str, attempt: int, worker: str, body: bytes) -> Deferred[None]:
        try:
            self._check(job_id, attempt, worker, "stats")
            text = canonical(body)
            if text is None:
                raise UploadError("Stats must be a JSON object", 400)
        except UploadError as exc:
            return fail(exc)
        path = str(live_stats_path(self.data_dir, job_id))
        d = deferToThread(write_atomically, path, text)
        d.addCallback(lambda _: self.attempts.on_stats(job_id, text))
        return d

    def put_file(
        self, job_id: str, attempt: int, worker: str, name: str, offset: int, data: bytes
    ) -> Deferred[int]:
        try:
            self._check(job_id, attempt, worker, "file")
            rel = safe_relpath(name)
            counts = self._staged.setdefault((job_id, attempt), [0, 0])
            if offset == 0:
                counts[1] += 1
            if counts[0] + len(data) > self.max_job_bytes or counts[1] > self.max_job_files:
                raise UploadError(
                    f"Job folder over the cap of {self.max_job_bytes} bytes "
                    f"or {self.max_job_files} files",
                    413,
                )
        except UploadError as exc:
            return fail(exc)
        counts[0] += len(data)
        path = self.staging(job_id, attempt) / rel
        return deferToThread(append_at, path, offset, data, self.max_job_bytes)

    def ended(
        self, job_id: str, attempt: int, worker: str, report: Mapping[str, Any]
    ) -> Deferred[None]:
        """Move the staged folder into place, then tell the executor (once: a retried
        end finds the attempt no longer current and gets 409)."""
        try:
            self._check(job_id, attempt, worker, "end")
        except UploadError as exc:
            return fail(exc)
        staged = self.staging(job_id, attempt)
        self._staged.pop((job_id, attempt), None)

        def committed(_: int) -> None:
            self.attempts.on_ended(job_id, attempt, worker, report)

        return deferToThread(commit_folder, staged, self.data_dir / job_id).addCallback(committed)

    def drop_staging(self, job_id: str, attempt: int) -> Deferred[None]:
        """A lost or stale attempt's uploads go."""
        self._staged.pop((job_id, attempt), None)
        folder = self.staging(job_id, attempt)

        def drop() -> None:
            shutil.rmtree(folder, ignore_errors=True)

        return deferToThread(drop)


def report_from_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise UploadError("The end report must be a JSON object", 400) from None
    if not isinstance(data, dict):
        raise UploadError("The end report must be a JSON object", 400)
    return data
