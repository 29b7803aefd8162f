"""The project store: pushed archives unpacked once, local projects from the config.

Layout under the store root (nothing is ever written outside it)::

    records/<name>.json         the commit record of a pushed project: its latest version
                                (folder, name, spiders, push time) and its older versions
                                ("older"); replaced atomically (write + rename)
    versions/<name>/<version>/  an unpacked project (scrapy.cfg at its top), the crawl cwd
    tmp/                        scratch space for metadata writes

A push unpacks into a fresh version folder, lists its spiders there and only then
replaces `records/<name>.json` with one rename. Until that rename the previous version
is untouched; after it the replaced folder is deleted. A project keeps several versions
(scrapyd's addversion adds one under its name); the latest is the last in version order
(daemon.version_names), and crawls run it unless they name another. Whatever a crash
leaves behind (a version folder no record names, a half-written record) is swept on the
next start.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import functools
import json
import logging
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, threads
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.python.failure import Failure

from daemon.archive import (
    ArchiveError,
    ArchiveLimits,
    ProjectArchive,
    check_project_name,
    iter_member_chunks,
    open_zip,
    read_archive,
)
from daemon.children import child_env, scrapy_command
from daemon.config import CrawlUser, LocalProject
from daemon.errors import DaemonError
from daemon.version_names import listed_name, sort_versions

log = logging.getLogger(__name__)

#: guard(name, spiders_after) -> a message to refuse the change, or None to allow it.
#: For a removal `spiders_after` is empty, so one guard serves push and remove.
Guard = Callable[[str, list[str]], "str | None"]

_STDOUT_CAP = 1024 * 1024
_STDERR_TAIL = 4000
_STDERR_LINES = 40
_VERSION_RE = re.compile(r"[0-9A-Za-z-]{1,64}")


class ProjectError(DaemonError):
    """A refused project operation; `http_status` is what the API should answer."""


@dataclass(frozen=True)
class _Pushed:
    name: str
    version: str
    spiders: tuple[str, ...]
    pushed: str
    #: The version's name as listed (scrapyd's, made safe); None in a record written
    #: before versions were named: the folder name stands for it.
    label: str | None = None

    @property
    def listed(self) -> str:
        return self.label or self.version


def _os_error_status(exc: OSError) -> int:
    """507 (Insufficient Storage) when the disk is full, else 500."""
    return 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 500


@dataclass(frozen=True)
class PushResult:
    """What a push made: unpacks as (name, spiders), as push() has always answered."""

    name: str
    spiders: list[str]
    #: archive.NAME_FROM_DEPLOY or NAME_FROM_SETTINGS (the name was only guessed).
    name_from: str
    #: Whether a pushed project of that name was replaced.
    replaced: bool

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.spiders))


def _no_guard(name: str, spiders: list[str]) -> str | None:
    return None


@functools.cache
def _builtin_root() -> Path | None:
    """The folder holding the daemon's own coinspiders package (its scrapy.cfg), if any."""
    try:
        import coinspiders
    except ImportError:
        return None
    return Path(coinspiders.__file__).resolve().parent.parent


def _guessed_refusal(archive: ProjectArchive) -> str:
    return (
        f"{archive.name_origin()}, and a pushed project {archive.name!r} exists: pass "
        "replace=true to replace it, or name the project with 'project = NAME' in the "
        "[deploy] section of scrapy.cfg"
    )


def _tail(data: bytes, folder: str) -> str:
    """The end of a child's stderr, with the store's folder names shortened."""
    text = data.decode("utf-8", "replace").replace(folder + os.sep, "").strip()
    lines = text.splitlines()[-_STDERR_LINES:]
    text = "\n".join(lines)
    if len(text) > _STDERR_TAIL:
        text = "..." + text[-_STDERR_TAIL:]
    return text


class _ListProtocol(protocol.ProcessProtocol):
    """Collects `scrapy list` output with bounded memory and enforces its time limit.

    Cancelling `done` (a client that went away) ends the child and its group at once.
    """

    def __init__(self, clock: IReactorTime, timeout: float, label: str, folder: str) -> None:
        self.done: defer.Deferred[list[str]] = defer.Deferred(self._cancel)
        #: Fires once the child is gone and its pipes are closed, whatever `done` did.
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.clock = clock
        self.timeout = timeout
        self.label = label
        self.folder = folder
        self.out = bytearray()
        self.err = bytearray()
        self.overflow = False
        self.timed_out = False
        self.pgid: int | None = None
        self.timer: Any = None

    def connectionMade(self) -> None:
        assert self.transport is not None  # set by Twisted before connectionMade
        self.pgid = self.transport.pid
        self.transport.closeStdin()
        self.timer = self.clock.callLater(self.timeout, self._expire)

    def _expire(self) -> None:
        self.timer = None
        self.timed_out = True
        self._stop()

    def _cancel(self, _: defer.Deferred) -> None:
        self._stop()

    def _stop(self) -> None:
        self._kill_group()
        if self.transport is None:
            return
        # In case the child had not reached setsid yet.
        with contextlib.suppress(Exception):
            self.transport.signalProcess("KILL")
        # A grandchild that left the group could hold the pipes open forever.
        with contextlib.suppress(Exception):
            self.transport.loseConnection()

    def _kill_group(self) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)

    def outReceived(self, data: bytes) -> None:
        if len(self.out) + len(data) > _STDOUT_CAP:
            if not self.overflow:
                self.overflow = True
                self._stop()
            return
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data
        if len(self.err) > 2 * _STDERR_TAIL:
            del self.err[: -_STDERR_TAIL - 1]

    def processExited(self, reason: Failure) -> None:
        # Anything the project left running would keep the pipes open; end it too.
        self._kill_group()

    def processEnded(self, reason: Failure) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if not self.done.called:  # else cancelled
            self._report(reason)
        self.ended.callback(None)

    def _report(self, reason: Failure) -> None:
        value = reason.value
        code = getattr(value, "exitCode", None)
        sig = getattr(value, "signal", None)
        tail = _tail(bytes(self.err), self.folder)
        what = f"listing the spiders of {self.label}"
        if self.timed_out:
            msg = f"{what} took longer than {self.timeout:g} s"
            self.done.errback(ProjectError(msg + (f"; its output: {tail}" if tail else ""), 400))
        elif self.overflow:
            msg = f"{what} failed: scrapy list printed more than {_STDOUT_CAP} bytes"
            self.done.errback(ProjectError(msg, 400))
        elif code != 0 or sig is not None:
            how = f"was killed by signal {sig}" if sig is not None else f"exited with {code}"
            msg = f"{what} failed: scrapy list {how}"
            self.done.errback(ProjectError(msg + (f": {tail}" if tail else ""), 400))
        else:
            lines = bytes(self.out).decode("utf-8", "replace").splitlines()
            self.done.callback(sorted({line.strip() for line in lines if line.strip()}))


def _write_json_atomic(path: Path, scratch: Path, data: dict[str, Any]) -> None:
    tmp = scratch / f"{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def unpack_archive(data: bytes, archive: ProjectArchive, dest: Path, limits: ArchiveLimits) -> None:
    """Write the checked members into `dest`, a folder that must not exist yet.

    Bytes are counted again while writing; files are created exclusively and never
    through a link, with plain permissions whatever the zip says.
    """
    for attempt in range(3):
        try:
            dest.mkdir(mode=0o755, parents=True)
            break
        except FileNotFoundError:  # the parent was just removed as empty; try again
            if attempt == 2:
                raise
    base = dest.resolve()
    total = 0
    with open_zip(data) as zf:
        infos = zf.infolist()
        for m in archive.members:
            target = base.joinpath(*m.path.parts)
            if not target.resolve().is_relative_to(base):
                raise ArchiveError(f"entry {m.zip_name!r} points outside the project folder")
            if m.is_dir:
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(target, flags, 0o644)
            with os.fdopen(fd, "wb") as fh:
                for chunk in iter_member_chunks(zf, infos[m.index], limits, total):
                    fh.write(chunk)
                    total += len(chunk)


class ProjectStore:
    """Pushed and local Scrapy projects: validate, unpack, list spiders, replace, remove.

    Use it from the reactor thread only; slow work goes to threads and child processes.
    """

    def __init__(
        self,
        root: Path,
        local: Mapping[str, LocalProject] | None = None,
        *,
        limits: ArchiveLimits | None = None,
        list_timeout: float = 60.0,
        reactor: Any = None,
        hidden_env: Iterable[str] = (),
        crawl_user: CrawlUser | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self._reactor = reactor
        self.limits = limits or ArchiveLimits()
        self.list_timeout = list_timeout
        self.hidden_env = tuple(hidden_env)
        #: `scrapy list` imports pushed code: it runs as the crawl user like a crawl.
        self.crawl_user = crawl_user
        self.root = Path(root).resolve()
        self._records = self.root / "records"
        self._versions = self.root / "versions"
        self._tmp = self.root / "tmp"
        for folder in (self.root, self._records, self._versions, self._tmp):
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._local: dict[str, LocalProject] = {}
        for name, proj in (local or {}).items():
            try:
                check_project_name(name)
            except ArchiveError as exc:
                raise ProjectError(f"local project: {exc.message}", 500) from None
            path = Path(proj.path).resolve()
            if not (path / "scrapy.cfg").is_file():
                raise ProjectError(f"local project {name}: no scrapy.cfg in {path}", 500)
            self._local[name] = LocalProject(path, dict(proj.settings))
        self._local_spiders: dict[str, list[str]] = {}
        self._pushed: dict[str, _Pushed] = {}
        #: The versions of a pushed project other than its latest (`_pushed`).
        self._older: dict[str, tuple[_Pushed, ...]] = {}
        self._commit_lock = defer.DeferredLock()
        self._pins: dict[Path, int] = {}
        self._retired: set[Path] = set()
        self._load()

    # -- reading ---------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every project the daemon can run, local and pushed, sorted."""
        return sorted(set(self._local) | set(self._pushed))

    def __contains__(self, name: object) -> bool:
        return name in self._local or name in self._pushed

    def spiders(self, name: str) -> list[str] | None:
        """Cached spider names; None for a local project not listed yet (see get_spiders)."""
        if name in self._pushed:
            return list(self._pushed[name].spiders)
        if name in self._local:
            cached = self._local_spiders.get(name)
            return None if cached is None else list(cached)
        raise self._unknown(name)

    def get_spiders(self, name: str, refresh: bool = False) -> defer.Deferred[list[str]]:
        """Spider names of a project, listing a local one on first use (or on refresh)."""
        try:
            cached = self.spiders(name)
        except ProjectError as exc:
            return defer.fail(exc)
        if cached is not None and not (refresh and name in self._local):
            return defer.succeed(cached)
        d = self.list_spiders_of(self._local[name].path, label=f"local project {name}")

        def remember(spiders: list[str]) -> list[str]:
            self._local_spiders[name] = spiders
            return list(spiders)

        return d.addCallback(remember)

    def path(self, name: str, version: str | None = None) -> Path:
        """The folder to run crawls of `name` in (holds its scrapy.cfg): its latest
        version's, or that of `version` (a pushed project's, by its listed name)."""
        if version is not None and name in self:
            return self._versions / name / self._version_record(name, version).version
        if name in self._pushed:
            return self._versions / name / self._pushed[name].version
        if name in self._local:
            return self._local[name].path
        raise self._unknown(name)

    def versions(self, name: str) -> list[str]:
        """The listed names of a pushed project's versions, the latest last; [] for a
        local project (it has no versions)."""
        if name in self._local:
            return []
        if name not in self._pushed:
            raise self._unknown(name)
        return sort_versions([r.listed for r in self._all_versions(name)])

    def version_spiders(self, name: str, version: str) -> list[str]:
        """The spiders of one version of a pushed project (listed when it was pushed)."""
        return list(self._version_record(name, version).spiders)

    def remove_version(
        self, name: str, version: str, guard: Guard | None = None
    ) -> defer.Deferred[None]:
        """Delete one version; the last one takes the project with it (as scrapyd does).
        `guard` gets the spiders the project keeps (none when it goes)."""
        return defer.ensureDeferred(self._remove_version(name, version, guard or _no_guard))

    def pin(
        self, name: str, version: str | None = None
    ) -> tuple[Path, Callable[[], defer.Deferred[None]]]:
        """The folder to run a crawl of `name` in, kept on disk until `release()`.

        A push or removal while the crawl runs retires the folder instead of deleting
        it under the crawl; the last release deletes it. Call release once the crawl's
        process has ended; later calls do nothing.
        """
        path = self.path(name, version)
        if name in self._local:
            return path, lambda: defer.succeed(None)
        self._pins[path] = self._pins.get(path, 0) + 1
        released = False

        def release() -> defer.Deferred[None]:
            nonlocal released
            if released:
                return defer.succeed(None)
            released = True
            left = self._pins.pop(path) - 1
            if left:
                self._pins[path] = left
                return defer.succeed(None)
            if path in self._retired:
                self._retired.discard(path)
                return defer.ensureDeferred(self._discard(path, parent_too=True))
            return defer.succeed(None)

        return path, release

    def settings(self, name: str) -> dict[str, str]:
        """Default Scrapy settings for crawls of `name` (from the config; none if pushed)."""
        if name in self._local:
            return dict(self._local[name].settings)
        if name in self._pushed:
            return {}
        raise self._unknown(name)

    def pushed_at(self, name: str) -> str | None:
        """ISO-8601 UTC time of the last push, None for a local project."""
        if name in self._pushed:
            return self._pushed[name].pushed
        if name in self._local:
            return None
        raise self._unknown(name)

    # -- changing --------------------------------------------------------------------

    def push(
        self,
        archive: bytes,
        guard: Guard | None = None,
        replace: bool = False,
        version: str | None = None,
    ) -> defer.Deferred[PushResult]:
        """Check, unpack and list a pushed zip, then make it a version of the project.

        With `version` (scrapyd's addversion) it is added under that name beside the
        others, replacing only a version of the same name. Without, it replaces the
        latest version (scrapy-do's push), named by the push time in epoch seconds as
        scrapyd-deploy names its versions, so it normally stays the latest.

        A name only guessed from the settings module (no `[deploy] project`) may name
        some other project by accident: it replaces an existing one only with `replace`.

        Fails with ProjectError: 413 over a size cap, 400 bad archive or failing
        `scrapy list`, 409 for a local project's name, a guessed name that exists
        (without `replace`) or when `guard` refuses.
        """
        label = listed_name(version) if version is not None else None
        return defer.ensureDeferred(self._push(archive, guard or _no_guard, replace, label))

    def remove(self, name: str, guard: Guard | None = None) -> defer.Deferred[None]:
        """Forget a pushed project and delete its files; 404 unknown, 409 local or guarded."""
        return defer.ensureDeferred(self._remove(name, guard or _no_guard))

    def argument_problem(self, name: str, spider: str, payload: str) -> str | None:
        """Why a crawl of `spider` with this payload (JSON object text) would refuse to
        start, when the daemon can tell: only for the coinspiders project it ships with
        (a local project in the folder of its own coinspiders package); pushed and other
        projects are not imported, so they decide when they run."""
        local = self._local.get(name)
        if local is None or local.path != _builtin_root():
            return None
        from coinspiders.arguments import argument_problem

        return argument_problem(spider, json.loads(payload))

    def list_spiders_of(self, path: Path, label: str | None = None) -> defer.Deferred[list[str]]:
        """Run `python -m scrapy list` in `path` as a child process with the time limit."""
        return self._start_listing(Path(path), label or str(path)).done

    # -- internals -------------------------------------------------------------------

    def _start_listing(self, path: Path, label: str) -> _ListProtocol:
        proto = _ListProtocol(self._reactor, self.list_timeout, label, str(path))
        # Own session (a time limit kills everything it started), no secrets.
        env = child_env(self.hidden_env)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(path), os.environ.get("PYTHONPATH", "")) if p
        )
        args = scrapy_command(["list"])
        user = self.crawl_user
        try:
            IReactorProcess(self._reactor).spawnProcess(
                proto,
                args[0],
                args,
                env=env,
                path=str(path),
                uid=None if user is None else user.uid,
                gid=None if user is None else user.gid,
            )
        except OSError as exc:
            proto.done.errback(ProjectError(f"cannot start scrapy list for {label}: {exc}", 500))
            proto.ended.callback(None)
        return proto

    def _unknown(self, name: str) -> ProjectError:
        return ProjectError(f"Unknown project: {name}", 404)

    async def _push(
        self, data: bytes, guard: Guard, replace: bool, label: str | None
    ) -> PushResult:
        if len(data) > self.limits.max_archive_bytes:
            raise ProjectError(
                f"archive is {len(data)} bytes; the limit is {self.limits.max_archive_bytes}",
                413,
            )
        try:
            archive = await threads.deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), read_archive, data, self.limits
            )
        except ArchiveError as exc:
            raise ProjectError(exc.message, exc.http_status) from None
        name = archive.name
        if name in self._local:
            origin = f" ({archive.name_origin()})" if archive.name_guessed else ""
            raise ProjectError(
                f"{name} is a local project from the config; it cannot be pushed{origin}", 409
            )
        if archive.name_guessed and not replace and name in self._pushed:
            raise ProjectError(_guessed_refusal(archive), 409)
        version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        parent = self._versions / name
        dest = parent / version
        committed = False
        # A client that goes away cancels the push: the unpacking thread is let finish
        # and the listing is killed, and only then is the new folder deleted.
        unpacked: defer.Deferred[None] | None = None
        listing: _ListProtocol | None = None
        try:
            result, unpacked = _shield(self._in_thread(self._unpack, data, archive, dest))
            await result
            listing = self._start_listing(dest, f"project {name}")
            spiders = await listing.done
            await self._commit_lock.acquire()
            try:
                old = self._pushed.get(name)
                if old is not None and archive.name_guessed and not replace:
                    # Pushed while this one was unpacking.
                    raise ProjectError(_guessed_refusal(archive), 409)
                record = _Pushed(name, version, tuple(spiders), _now(), label)
                kept, replaced = _versions_after_push(self._all_versions(name), record)
                refusal = guard(name, _spiders_of(kept))
                if refusal:
                    raise ProjectError(refusal, 409)
                self._commit_versions(name, kept)
                committed = True
            finally:
                self._commit_lock.release()
            for gone in replaced:
                await self._retire(parent / gone.version)
            log.info("pushed project %s with spiders %s", name, ", ".join(spiders))
            return PushResult(name, list(spiders), archive.name_from, old is not None)
        finally:
            if not committed:
                if unpacked is not None:
                    await unpacked
                if listing is not None:
                    await listing.ended
                await self._discard(dest, parent_too=True)

    def _unpack(self, data: bytes, archive: ProjectArchive, dest: Path) -> None:
        try:
            unpack_archive(data, archive, dest, self.limits)
        except ArchiveError as exc:
            raise ProjectError(exc.message, exc.http_status) from None
        except OSError as exc:
            message = f"cannot unpack the archive: {exc.strerror or exc}"
            raise ProjectError(message, _os_error_status(exc)) from None

    async def _remove(self, name: str, guard: Guard) -> None:
        if name in self._local:
            raise ProjectError(
                f"{name} is a local project from the config; it cannot be removed", 409
            )
        await self._commit_lock.acquire()
        try:
            record = self._pushed.get(name)
            if record is None:
                raise self._unknown(name)
            refusal = guard(name, [])
            if refusal:
                raise ProjectError(refusal, 409)
            (self._records / f"{name}.json").unlink(missing_ok=True)
            del self._pushed[name]
            older = self._older.pop(name, ())
        finally:
            self._commit_lock.release()
        # Only its versions: a push of the same name may be unpacking beside them.
        for gone in (record, *older):
            await self._retire(self._versions / name / gone.version)
        log.info("removed project %s", name)

    async def _remove_version(self, name: str, version: str, guard: Guard) -> None:
        if name in self._local:
            raise ProjectError(
                f"{name} is a local project from the config; it has no versions", 409
            )
        await self._commit_lock.acquire()
        try:
            gone = self._version_record(name, version)
            kept = [r for r in self._all_versions(name) if r is not gone]
            refusal = guard(name, _spiders_of(kept))
            if refusal:
                raise ProjectError(refusal, 409)
            if kept:
                self._commit_versions(name, kept)
            else:
                (self._records / f"{name}.json").unlink(missing_ok=True)
                del self._pushed[name]
                self._older.pop(name, None)
        finally:
            self._commit_lock.release()
        await self._retire(self._versions / name / gone.version)
        log.info("removed version %s of project %s", gone.listed, name)

    def _all_versions(self, name: str) -> list[_Pushed]:
        latest = self._pushed.get(name)
        return [] if latest is None else [*self._older.get(name, ()), latest]

    def _version_record(self, name: str, version: str) -> _Pushed:
        """The pushed version listed as `version` (either form: "1.0" or "1_0")."""
        if name not in self:
            raise self._unknown(name)
        wanted = listed_name(version)
        for record in self._all_versions(name):
            if record.listed == wanted:
                return record
        raise ProjectError(f"project {name} has no version {version!r}", 404)

    def _commit_versions(self, name: str, records: list[_Pushed]) -> None:
        """Record a project's versions on disk, then in memory; the latest is the last in
        version order. Call with the commit lock held."""
        order = sort_versions([r.listed for r in records])
        by_name = {r.listed: r for r in records}
        *older, latest = [by_name[n] for n in order]
        data = {**_as_json(latest), "older": [_as_json(r) for r in older]}
        try:
            _write_json_atomic(self._records / f"{name}.json", self._tmp, data)
        except OSError as exc:
            msg = f"cannot record project {name}: {exc.strerror or exc}"
            raise ProjectError(msg, _os_error_status(exc)) from None
        self._pushed[name] = latest
        self._older[name] = tuple(older)

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        return threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn, *args)

    async def _retire(self, folder: Path) -> None:
        """Delete a replaced version now, or at its last release if a crawl runs in it."""
        if folder in self._pins:
            self._retired.add(folder)
        else:
            await self._discard(folder, parent_too=True)

    async def _discard(self, folder: Path, parent_too: bool = False) -> None:
        """Delete a folder of the store; a failure is logged and swept at the next start."""
        if not folder.resolve().is_relative_to(self.root):
            raise AssertionError(f"refusing to delete {folder} outside the store")
        try:
            await self._in_thread(shutil.rmtree, folder, True)
            if parent_too:
                await self._in_thread(_rmdir_if_empty, folder.parent)
        except Exception:
            log.exception("could not delete %s", folder)

    def _load(self) -> None:
        """Read the commit records and sweep what an interrupted push or removal left.

        Runs once at start, before the daemon serves requests.
        """
        for tmp in self._tmp.iterdir():
            _remove_path(tmp)
        kept: set[str] = set()  # records not loaded whose files must stay
        for rec in sorted(self._records.iterdir()):
            stem = rec.name.removesuffix(".json")
            if rec.is_dir() or not rec.name.endswith(".json"):
                log.warning("ignoring %s in the project store", rec)
                continue
            try:
                data = json.loads(rec.read_text(encoding="utf-8"))
                record = _from_json(data)
                older = _older_from_json(data)
                check_project_name(record.name)
                folders = [r.version for r in (record, *older)]
                if record.name != stem or not all(_VERSION_RE.fullmatch(v) for v in folders):
                    raise ValueError("record does not match its file name")
            except (OSError, ValueError, KeyError, TypeError, ArchiveError) as exc:
                log.error(
                    "project record %s is unreadable (%s); project %s skipped", rec, exc, stem
                )
                kept.add(stem)
                continue
            if not (self._versions / record.name / record.version / "scrapy.cfg").is_file():
                log.error("project %s has lost its files; dropping its record", record.name)
                rec.unlink(missing_ok=True)
                continue
            if record.name in self._local:
                log.warning("pushed project %s is hidden by the local project", record.name)
                kept.add(record.name)
                continue
            if record.label is None:
                folder = self._versions / record.name / record.version
                record = replace(record, label=_legacy_label(folder, record.pushed))
            self._pushed[record.name] = record
            self._older[record.name] = tuple(
                r
                for r in older
                if (self._versions / record.name / r.version / "scrapy.cfg").is_file()
            )
        stale: list[Path] = []
        for parent in self._versions.iterdir():
            if parent.name in kept:
                continue
            current = self._pushed.get(parent.name)
            if current is None or not parent.is_dir():
                stale.append(parent)
                continue
            live = {r.version for r in self._all_versions(parent.name)}
            stale += [v for v in parent.iterdir() if v.name not in live]
        # A crawl that outlived a killed daemon may still run in a replaced version:
        # its folder stays until a later start finds it unused.
        in_use = _cwds_inside(stale) if stale else set()
        for path in stale:
            if path in in_use:
                log.warning("keeping %s: a running process works in it", path)
            else:
                _remove_path(path)


def _shield(d: defer.Deferred[Any]) -> tuple[defer.Deferred[Any], defer.Deferred[None]]:
    """Split `d` into a result the caller may cancel and a signal that `d` really ended.

    Cancelling a thread's Deferred does not stop the thread; cleanup must wait for it.
    """
    result: defer.Deferred[Any] = defer.Deferred()
    ended: defer.Deferred[None] = defer.Deferred()

    def fire(outcome: Any) -> None:
        if not result.called:
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)
        ended.callback(None)

    d.addBoth(fire)
    return result, ended


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _as_json(record: _Pushed) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": record.name,
        "version": record.version,
        "spiders": list(record.spiders),
        "pushed": record.pushed,
    }
    if record.label is not None:
        data["label"] = record.label
    return data


def _from_json(data: dict[str, Any]) -> _Pushed:
    spiders = data["spiders"]
    if not isinstance(spiders, list) or not all(isinstance(s, str) for s in spiders):
        raise ValueError("spiders is not a list of names")
    label = data.get("label")
    if label is not None and (not isinstance(label, str) or listed_name(label) != label):
        raise ValueError("label is not a version name")
    return _Pushed(
        str(data["name"]), str(data["version"]), tuple(spiders), str(data["pushed"]), label
    )


def _older_from_json(data: dict[str, Any]) -> list[_Pushed]:
    """The older versions of a record (none in a record of a single-version store)."""
    older = data.get("older", [])
    if not isinstance(older, list):
        raise ValueError("older is not a list")
    records = [_from_json(o) for o in older]
    if any(r.name != data["name"] for r in records):
        raise ValueError("an older version names another project")
    return records


def _versions_after_push(
    current: list[_Pushed], new: _Pushed
) -> tuple[list[_Pushed], list[_Pushed]]:
    """(versions kept with `new`, versions it replaces): a named version replaces its
    namesake; an unnamed push (scrapy-do's) replaces the latest and takes the push time
    as its name."""
    if new.label is None:
        latest = current[-1:] if current else []
        new = _Pushed(new.name, new.version, new.spiders, new.pushed, str(int(time.time())))
        replaced = [r for r in current if r in latest or r.listed == new.listed]
    else:
        replaced = [r for r in current if r.listed == new.listed]
    return [r for r in current if r not in replaced] + [new], replaced


def _legacy_label(folder: Path, pushed: str) -> str:
    """A name for the one version of a record written before versions were named: the
    scrapyd version its scrapy.cfg records (an egg added through scrapyd's API), else
    its push time in epoch seconds, as a scrapy-do push is named now."""
    parser = configparser.ConfigParser(interpolation=None)
    with contextlib.suppress(OSError, configparser.Error, UnicodeDecodeError):
        parser.read(folder / "scrapy.cfg", encoding="utf-8")
    version = parser.get("scrapyd", "version", fallback=None)
    if version:
        return listed_name(version)
    try:
        return str(int(datetime.fromisoformat(pushed).timestamp()))
    except ValueError:
        return listed_name(folder.name)


def _spiders_of(records: Iterable[_Pushed]) -> list[str]:
    return sorted({s for r in records for s in r.spiders})


def _cwds_inside(folders: list[Path]) -> set[Path]:
    """The folders of `folders` that hold the working directory of a live process."""
    import psutil

    cwds = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            cwds.append(Path(proc.cwd()))
    return {f for f in folders if any(c == f or c.is_relative_to(f) for c in cwds)}


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
