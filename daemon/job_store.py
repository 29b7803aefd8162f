"""The daemon's SQLite store: the only module that writes SQL.

Every job state change is one transaction in WAL mode, so a crash (even `kill -9`) leaves
each job in a state it really had. Statements are small and indexed (a list-jobs page
reads an index range, never the whole table), so they run on the reactor thread in well
under a millisecond; big reads (list-jobs pages) go through `read_in_thread`.

Every state change is decided by the jobs service (daemon.jobs); everyone else gets the
store typed as `JobReads`, its read-only face.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from daemon.domain import (
    ACTIVE_STATUSES,
    CANCELED,
    COMPLETED_STATUSES,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SUCCESSFUL,
)
from daemon.errors import DaemonError
from daemon.local_handle import LOCAL_NODE, parse_handle

T = TypeVar("T")

_COUNTER_OF = {SUCCESSFUL: "jobs-successful", FAILED: "jobs-failed", CANCELED: "jobs-canceled"}
COUNTERS = ("jobs-run", "jobs-successful", "jobs-failed", "jobs-canceled")

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    active INTEGER NOT NULL,
    actor TEXT NOT NULL,
    schedule TEXT NOT NULL,
    project TEXT NOT NULL,
    spider TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL DEFAULT '{}',
    settings TEXT NOT NULL DEFAULT '{}',
    max_runtime REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    finished REAL,
    exit_code INTEGER,
    parent TEXT,
    reason TEXT,
    handle TEXT,
    node TEXT,
    timezone TEXT,
    last_fire REAL,
    next_run REAL,
    skipped INTEGER NOT NULL DEFAULT 0,
    leftovers_killed INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_active_seq ON jobs (active, seq);
CREATE INDEX IF NOT EXISTS jobs_project_spider_seq ON jobs (project, spider, seq);
CREATE INDEX IF NOT EXISTS jobs_project_seq ON jobs (project, seq);
CREATE INDEX IF NOT EXISTS jobs_spider_seq ON jobs (spider, seq);
CREATE INDEX IF NOT EXISTS jobs_status_project_seq ON jobs (status, project, seq);
CREATE INDEX IF NOT EXISTS jobs_status_spider_seq ON jobs (status, spider, seq);
CREATE INDEX IF NOT EXISTS jobs_active_project_seq ON jobs (active, project, seq);
CREATE INDEX IF NOT EXISTS jobs_active_spider_seq ON jobs (active, spider, seq);
CREATE INDEX IF NOT EXISTS jobs_parent ON jobs (parent) WHERE parent IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    time REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, seq);
CREATE TABLE IF NOT EXISTS job_attempts (
    job_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    started REAL,
    finished REAL,
    status TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    stats TEXT,
    PRIMARY KEY (job_id, n)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(Exception):
    """The store file cannot be used; the message names the file."""


class StateConflict(Exception):
    """A job was not in the state a transition needs (it changed meanwhile)."""


class StoreFull(DaemonError):
    """A write found no room on the disk (SQLITE_FULL): nothing of it was written.

    Its own type because it passes: the jobs service retries such writes once space is
    back, and a client is told 507 (Insufficient Storage) instead of a bare 500.
    """

    def __init__(self) -> None:
        super().__init__(
            "Not enough free disk space under the daemon's data folder to record this "
            "(database or disk is full); free some space and retry",
            507,
        )


_SQLITE_FULL = 13


def _is_full(exc: BaseException) -> bool:
    """Whether a SQLite error means the disk (or the database's size limit) is full."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == _SQLITE_FULL) or "disk is full" in str(exc)


@dataclass(frozen=True)
class Job:
    """One row of the jobs table: a run, or a scheduled job that spawns runs."""

    id: str
    status: str
    actor: str
    schedule: str
    project: str
    spider: str
    description: str = ""
    payload: str = "{}"
    settings: dict[str, str] = field(default_factory=dict)
    max_runtime: float | None = None
    created: float = 0.0
    updated: float = 0.0
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    parent: str | None = None
    reason: str | None = None
    #: How its executor knows the running crawl (opaque text only that executor reads).
    handle: str | None = None
    #: Where it ran: the executor's node name ("local" for this machine).
    node: str | None = None
    timezone: str | None = None
    last_fire: float | None = None
    next_run: float | None = None
    skipped: int = 0
    leftovers_killed: int | None = None
    #: Higher runs first among pending jobs (scrapyd's `priority`); 0 for scrapy-do's.
    priority: float = 0.0
    #: The project version the crawl runs (scrapyd's `_version`); None: the latest.
    version: str | None = None
    #: The crawl's final stats (JSON text of an object, see daemon.live_stats).
    stats: str | None = None
    #: A scheduled job that does not fire until it is resumed.
    paused: bool = False
    #: Fire times of a scheduled job that produced no run because they were missed (the
    #: daemon was down or the reactor held up): skipped beyond misfire_grace, or
    #: coalesced with a later one. Runs skipped because the last one was still active
    #: are `skipped`, not misfires.
    misfires: int = 0
    #: The instant the current `schedule` was parsed with (set when it is edited; None:
    #: `created`), so a restart rebuilds the fire times the edit armed.
    spec_start: float | None = None
    #: Fire times at or before it are never due (set on resume and edit): firings that
    #: fell in a pause, or belong to the spec before an edit, are not misfires to catch up.
    not_before: float | None = None
    #: The run compared with its history (JSON text of daemon.anomalies.compare's
    #: report); None until it ended, or when it was not compared.
    anomalies: str | None = None
    #: More attempts allowed after a failed one, and the wait before the first of them
    #: (doubling each attempt; daemon.retries).
    retries: int = 0
    retry_delay: float = 0.0
    #: The attempt running or to run next (1-based); earlier ones are in job_attempts.
    attempt: int = 1
    #: A PENDING job waiting to retry is not dispatched before this instant.
    next_attempt_at: float | None = None
    #: The job (a run or a scheduled job) this one runs after, and on which end of it
    #: (daemon.chains); `waiting` while that end has not come.
    after_job: str | None = None
    after_on: str | None = None
    waiting: bool = False
    seq: int = 0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def pid(self) -> int | None:
        """The crawl's process id when it runs on this machine (scrapyd shows it)."""
        if self.node != LOCAL_NODE:
            return None
        found = parse_handle(self.handle)
        return found[0] if found else None


_COLUMNS = [
    "id",
    "status",
    "actor",
    "schedule",
    "project",
    "spider",
    "description",
    "payload",
    "settings",
    "max_runtime",
    "created",
    "updated",
    "started",
    "finished",
    "exit_code",
    "parent",
    "reason",
    "handle",
    "node",
    "timezone",
    "last_fire",
    "next_run",
    "skipped",
    "leftovers_killed",
    "priority",
    "version",
    "stats",
    "paused",
    "misfires",
    "spec_start",
    "not_before",
    "anomalies",
    "retries",
    "retry_delay",
    "attempt",
    "next_attempt_at",
    "after_job",
    "after_on",
    "waiting",
    "seq",
]
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM jobs"
#: Columns computed per row: a scheduled job's newest run as the JSON array [id, status,
#: created, started, finished] (one index seek on `parent`; runs, whose schedule is
#: `now`, skip it).
_DERIVED_COLUMNS = {
    "last_run": "CASE WHEN schedule = 'now' THEN NULL ELSE (SELECT json_array(r.id, "
    "r.status, r.created, r.started, r.finished) FROM jobs AS r WHERE r.parent = jobs.id "
    "ORDER BY r.seq DESC LIMIT 1) END",
    # The ended attempts of a job that may retry, oldest first, as a JSON array of
    # [n, started, finished, status, reason, exit_code, stats] (the primary key's range).
    "attempts": "CASE WHEN retries = 0 AND attempt = 1 THEN NULL ELSE (SELECT "
    "json_group_array(json_array(a.n, a.started, a.finished, a.status, a.reason, "
    "a.exit_code, json(a.stats))) FROM (SELECT * FROM job_attempts AS a0 WHERE "
    "a0.job_id = jobs.id ORDER BY a0.n) AS a) END",
}
_KNOWN_COLUMNS = frozenset(_COLUMNS) | frozenset(_DERIVED_COLUMNS)
_FIGURES_SQL = (
    "SELECT name, value FROM counters"
    " UNION ALL SELECT 'pending', COUNT(*) FROM jobs WHERE status = ?"
    " UNION ALL SELECT 'jobs-scheduled', COUNT(*) FROM jobs WHERE status = ?"
)


def _job_filters(
    statuses: Iterable[str] | None, project: str | None, spider: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or empty) of a job listing."""
    where: list[str] = []
    params: list[Any] = []
    wanted = tuple(statuses) if statuses is not None else None
    if wanted is not None:
        if set(wanted) == set(ACTIVE_STATUSES):
            where.append("active = 1")
        elif set(wanted) == set(COMPLETED_STATUSES):
            where.append("active = 0")
        elif len(wanted) == 1:
            where.append("status = ?")
            params.append(wanted[0])
        else:
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
    return _where(where, params, project, spider)


def _where(
    where: list[str], params: list[Any], project: str | None, spider: str | None
) -> tuple[str, list[Any]]:
    """`where` and `params` with the project and spider filters added, as a WHERE clause
    (with its leading space, or empty) and its parameters."""
    if project is not None:
        where.append("project = ?")
        params.append(project)
    if spider is not None:
        where.append("spider = ?")
        params.append(spider)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _select(columns: Sequence[str]) -> str:
    """SELECT of known column names only (they are pasted into the SQL)."""
    unknown = set(columns) - _KNOWN_COLUMNS
    if unknown:
        raise ValueError(f"unknown job columns: {sorted(unknown)}")
    return "SELECT " + ", ".join(_DERIVED_COLUMNS.get(c, c) for c in columns) + " FROM jobs"


def _row_to_job(row: Sequence[Any]) -> Job:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["settings"] = json.loads(values["settings"] or "{}")
    values["paused"] = bool(values["paused"])
    values["waiting"] = bool(values["waiting"])
    return Job(**values)


#: Columns added after schema 2, on open, to a store that lacks them: additive, so the
#: schema version stays and an earlier daemon reads and writes the same file unchanged.
#: priority: jobs made before it get 0; version: they run their project's latest version;
#: stats, anomalies: they have none; paused, misfires, spec_start, not_before: their
#: schedules run, have missed nothing counted, and keep the spec they were made with;
#: handle/node: see _handles_from_pids.
_ADDED_COLUMNS = (
    ("priority", "REAL NOT NULL DEFAULT 0"),
    ("version", "TEXT"),
    ("stats", "TEXT"),
    ("paused", "INTEGER NOT NULL DEFAULT 0"),
    ("misfires", "INTEGER NOT NULL DEFAULT 0"),
    ("spec_start", "REAL"),
    ("not_before", "REAL"),
    ("anomalies", "TEXT"),
    ("retries", "INTEGER NOT NULL DEFAULT 0"),
    ("retry_delay", "REAL NOT NULL DEFAULT 0"),
    ("attempt", "INTEGER NOT NULL DEFAULT 1"),
    ("next_attempt_at", "REAL"),
    ("after_job", "TEXT"),
    ("after_on", "TEXT"),
    ("waiting", "INTEGER NOT NULL DEFAULT 0"),
)


def _add_columns(conn: sqlite3.Connection) -> None:
    """Migration on open: every column of _ADDED_COLUMNS the table lacks, the executor
    handle columns, and the index that picks the next pending job by priority."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    for name, definition in _ADDED_COLUMNS:
        if name not in columns:
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {definition}")
    if "handle" not in columns:
        _handles_from_pids(conn, has_pids="pid" in columns)
    conn.execute(
        "CREATE INDEX IF NOT EXISTS jobs_status_priority_seq ON jobs (status, priority DESC, seq)"
    )
    # The dashboard's reads: runs ended in a time window (failures and runs per hour of
    # the last day) and jobs created in one (the Jobs page's time filter).
    conn.execute(
        "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished) WHERE finished IS NOT NULL"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created)")
    # Chains: the jobs waiting for a given job (or scheduled job) to end.
    conn.execute(
        "CREATE INDEX IF NOT EXISTS jobs_after_waiting ON jobs (after_job) WHERE waiting = 1"
    )


@dataclass(frozen=True)
class JobQuery:
    """The Jobs page's filters; None means "any". `id_prefix` is the start of a job id,
    `since`/`until` bound the creation time (epoch seconds, until exclusive)."""

    statuses: tuple[str, ...] | None = None
    project: str | None = None
    spider: str | None = None
    id_prefix: str | None = None
    since: float | None = None
    until: float | None = None


def _query_filters(query: JobQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of a JobQuery: the listing's filters plus an id range (the id's
    unique index) and a creation-time range (its own index)."""
    where, params = _job_filters(query.statuses, query.project, query.spider)
    extra: list[str] = []
    if query.id_prefix:
        # Ids are lowercase hex and dashes, all below "~": [prefix, prefix~) is the prefix.
        extra.append("id >= ? AND id < ?")
        params += [query.id_prefix, query.id_prefix + "~"]
    if query.since is not None:
        extra.append("created >= ?")
        params.append(query.since)
    if query.until is not None:
        extra.append("created < ?")
        params.append(query.until)
    if extra:
        where = (where + " AND " if where else " WHERE ") + " AND ".join(extra)
    return where, params


@dataclass(frozen=True)
class DaySummary:
    """What the Overview shows of the last day: the failed runs (newest first, at most
    `limit`), how many failed in all, runs ended per hour (oldest hour first) and the
    next runs of the scheduled jobs."""

    failures: list[Job]
    failed: int
    per_hour: list[int]
    next_runs: list[Job]


@dataclass(frozen=True)
class SpiderSummary:
    """A spider's record: its runs, the last one, and the mean duration of ended ones."""

    spider: str
    runs: int
    last_started: float | None
    last_status: str | None
    last_id: str | None
    mean_seconds: float | None


#: How many jobs each (status, project, spider) holds, kept by triggers on every insert,
#: status change and delete: list-jobs' `total` is then a sum over a handful of rows
#: instead of a COUNT over every job (about 6 ms at 100,000 jobs, more than the page
#: itself). Triggers rather than Python: no writer can forget them, an earlier daemon
#: writing the same file included.
_JOB_COUNTS = (
    """
CREATE TABLE job_counts (
    status TEXT NOT NULL, project TEXT NOT NULL, spider TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (status, project, spider)
) WITHOUT ROWID
""",
    """
INSERT INTO job_counts SELECT status, project, spider, COUNT(*) FROM jobs
    GROUP BY status, project, spider
""",
    """
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts VALUES (NEW.status, NEW.project, NEW.spider, 1)
        ON CONFLICT (status, project, spider) DO UPDATE SET n = n + 1;
END
""",
    """
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1
        WHERE status = OLD.status AND project = OLD.project AND spider = OLD.spider;
END
""",
    """
CREATE TRIGGER job_counts_update AFTER UPDATE OF status, project, spider ON jobs
    WHEN OLD.status IS NOT NEW.status OR OLD.project IS NOT NEW.project
        OR OLD.spider IS NOT NEW.spider
BEGIN
    UPDATE job_counts SET n = n - 1
        WHERE status = OLD.status AND project = OLD.project AND spider = OLD.spider;
    INSERT INTO job_counts VALUES (NEW.status, NEW.project, NEW.spider, 1)
        ON CONFLICT (status, project, spider) DO UPDATE SET n = n + 1;
END
""",
)


def _add_job_counts(conn: sqlite3.Connection) -> None:
    """Migration on open: the job_counts table and its triggers, counted once from the
    jobs already stored (one transaction: no job is counted twice or missed)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job_counts'"
    ).fetchone()
    if found:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _JOB_COUNTS:
            conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _count_filters(
    statuses: Iterable[str] | None, project: str | None, spider: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause over job_counts matching what _job_filters selects of jobs."""
    where: list[str] = []
    params: list[Any] = []
    if statuses is not None:
        wanted = tuple(statuses)
        where.append(f"status IN ({', '.join('?' * len(wanted))})")
        params.extend(wanted)
    return _where(where, params, project, spider)


def _handles_from_pids(conn: sqlite3.Connection, has_pids: bool) -> None:
    """A store from before the executor seam has `pid`/`proc_start` columns: each
    job's pid and start time become its local handle (a crawl it left running is
    re-attached by them), and every job that started ran on the local node. In one
    transaction, so a crash half-way leaves the old store to migrate again. The old
    columns stay (unused): an earlier daemon can still open the file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE jobs ADD COLUMN handle TEXT")
        conn.execute("ALTER TABLE jobs ADD COLUMN node TEXT")
        if has_pids:
            conn.execute(
                "UPDATE jobs SET handle = CAST(pid AS TEXT) || ':' || "
                "COALESCE(CAST(proc_start AS TEXT), '') WHERE pid IS NOT NULL"
            )
        conn.execute("UPDATE jobs SET node = ? WHERE started IS NOT NULL", (LOCAL_NODE,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class JobReads(Protocol):
    """The read-only face of the job store that the APIs and the coin service are
    given (a Store is one): they read jobs here and change them only through the jobs
    service, which decides every state change."""

    def get(self, job_id: str) -> Job | None: ...

    def get_row(self, job_id: str, columns: Sequence[str]) -> tuple[Any, ...] | None: ...

    def list_jobs(
        self,
        statuses: Iterable[str] | None = None,
        project: str | None = None,
        spider: str | None = None,
        limit: int = 100,
        offset: int = 0,
        conn: sqlite3.Connection | None = None,
    ) -> list[Job]: ...

    def read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> Deferred[T]: ...

    def events(self, job_id: str, limit: int = 50) -> list[tuple[float, str]]: ...

    def page_in_thread(
        self,
        columns: Sequence[str],
        statuses: Iterable[str] | None,
        project: str | None,
        spider: str | None,
        limit: int,
        offset: int,
        shape: Callable[[list[tuple[Any, ...]], int], T],
    ) -> Deferred[T]: ...

    def project_has_jobs(self, project: str) -> Deferred[bool]: ...

    def search_in_thread(
        self, query: JobQuery, limit: int, offset: int
    ) -> Deferred[tuple[list[Job], int]]: ...

    def day_in_thread(self, now: float, limit: int = 10) -> Deferred[DaySummary]: ...

    def spiders_in_thread(self, project: str) -> Deferred[list[SpiderSummary]]: ...


class Store:
    """One SQLite file `<data_dir>/daemon.sqlite`; use from the reactor thread."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            self._conn.executescript(_SCHEMA)
            _add_columns(self._conn)
            _add_job_counts(self._conn)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store {self.path} is unusable: {exc}") from None
        except OSError as exc:
            raise StoreError(f"store {self.path} cannot be opened: {exc}") from None

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        uri = f"file:{self.path}{'?mode=ro' if readonly else ''}"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"store {self.path}: cannot switch to WAL mode ({mode})")
            # WAL + NORMAL: a commit survives a crash of the daemon (not a power cut).
            conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _check_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        elif row[0] == "1":
            self._migrate_from_1()
        elif row[0] != str(SCHEMA_VERSION):
            raise StoreError(f"store {self.path} has schema {row[0]}, expected {SCHEMA_VERSION}")

    def _migrate_from_1(self) -> None:
        """Schema 1 -> 2: jobs gain `leftovers_killed` (NULL for runs of the old daemon,
        which did not count them)."""
        with self.transaction() as conn:
            conn.execute("ALTER TABLE jobs ADD COLUMN leftovers_killed INTEGER")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._conn.close()

    def now(self) -> float:
        """The store's clock: a write queued for later keeps the time it was made."""
        return self._clock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all.

        A full disk (at any statement, the COMMIT included) rolls it back and raises
        StoreFull.
        """
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if _is_full(exc):
                raise StoreFull() from None
            raise

    def read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """Run `fn(connection)` in a worker thread on a read-only connection of its own.

        For reads that may take more than a millisecond (big pages, aggregates), so the
        reactor never waits for them; WAL lets them run while the reactor writes.
        """

        def run() -> T:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._connect(readonly=True)
                self._local.conn = conn
            return fn(conn)

        return deferToThread(run)

    # -- reads ---------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        row = self._conn.execute(_SELECT + " WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def list_jobs(
        self,
        statuses: Iterable[str] | None = None,
        project: str | None = None,
        spider: str | None = None,
        limit: int = 100,
        offset: int = 0,
        conn: sqlite3.Connection | None = None,
    ) -> list[Job]:
        """Newest first. ACTIVE/COMPLETED use the `active` index, a status its own index.
        `conn`: the worker thread's connection when called through read_in_thread."""
        rows = self.list_rows(_COLUMNS, statuses, project, spider, limit, offset, conn)
        return [_row_to_job(r) for r in rows]

    def list_rows(
        self,
        columns: Sequence[str],
        statuses: Iterable[str] | None = None,
        project: str | None = None,
        spider: str | None = None,
        limit: int = 100,
        offset: int = 0,
        conn: sqlite3.Connection | None = None,
    ) -> list[tuple[Any, ...]]:
        """list_jobs' page as plain tuples of `columns`: for a page written straight to
        JSON, where building a Job per row would cost more than the read itself."""
        where, params = _job_filters(statuses, project, spider)
        sql = _select(columns) + where + " ORDER BY seq DESC LIMIT ? OFFSET ?"
        return (conn or self._conn).execute(sql, [*params, limit, offset]).fetchall()

    def count_rows(
        self,
        statuses: Iterable[str] | None = None,
        project: str | None = None,
        spider: str | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """How many jobs list_rows would page through (the same filters), read from
        job_counts."""
        where, params = _count_filters(statuses, project, spider)
        sql = "SELECT COALESCE(SUM(n), 0) FROM job_counts" + where
        return (conn or self._conn).execute(sql, params).fetchone()[0]

    def page_in_thread(
        self,
        columns: Sequence[str],
        statuses: Iterable[str] | None,
        project: str | None,
        spider: str | None,
        limit: int,
        offset: int,
        shape: Callable[[list[tuple[Any, ...]], int], T],
    ) -> Deferred[T]:
        """A page of rows (tuples of `columns`) and the count of every job matching the
        filters, read (in one snapshot, so they agree) and shaped (e.g. written as JSON)
        in a worker thread: a page of 10,000 jobs takes tens of milliseconds, which must
        not hold the reactor."""
        wanted = tuple(statuses) if statuses is not None else None

        def page(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                rows = self.list_rows(columns, wanted, project, spider, limit, offset, conn)
                total = self.count_rows(wanted, project, spider, conn)
            finally:
                conn.execute("COMMIT")
            return shape(rows, total)

        return self.read_in_thread(page)

    def project_has_jobs(self, project: str) -> Deferred[bool]:
        """Whether the store remembers any job of `project` (one removed may have some)."""
        return self.read_in_thread(lambda conn: self.count_rows(None, project, None, conn) > 0)

    def search_in_thread(
        self, query: JobQuery, limit: int, offset: int
    ) -> Deferred[tuple[list[Job], int]]:
        """search_jobs in a worker thread."""
        return self.read_in_thread(lambda conn: search_jobs(conn, query, limit, offset))

    def day_in_thread(self, now: float, limit: int = 10) -> Deferred[DaySummary]:
        """day_summary in a worker thread."""
        return self.read_in_thread(lambda conn: day_summary(conn, now, limit))

    def spiders_in_thread(self, project: str) -> Deferred[list[SpiderSummary]]:
        """spider_summaries in a worker thread."""
        return self.read_in_thread(lambda conn: spider_summaries(conn, project))

    def get_row(self, job_id: str, columns: Sequence[str]) -> tuple[Any, ...] | None:
        """One job as a plain tuple of `columns` (see list_rows)."""
        return self._conn.execute(_select(columns) + " WHERE id = ?", (job_id,)).fetchone()

    def oldest_pending(self) -> Job | None:
        """The next pending job to start: neither waiting for another job to end nor for
        its retry time."""
        row = self._conn.execute(
            _SELECT + " WHERE status = ? AND waiting = 0 AND (next_attempt_at IS NULL OR "
            "next_attempt_at <= ?) ORDER BY priority DESC, seq ASC LIMIT 1",
            (PENDING, self._clock()),
        ).fetchone()
        return _row_to_job(row) if row else None

    def next_retry_due(self) -> float | None:
        """The earliest retry time of a pending job still to come (None: none waits)."""
        row = self._conn.execute(
            "SELECT MIN(next_attempt_at) FROM jobs WHERE status = ? AND waiting = 0 "
            "AND next_attempt_at > ?",
            (PENDING, self._clock()),
        ).fetchone()
        return row[0] if row else None

    def waiters(self, after: str | None = None) -> list[Job]:
        """Pending jobs waiting in a chain: for `after`, or (None) for any job."""
        params: tuple[str, ...] = ()
        if after is None:
            sql = _SELECT + " WHERE waiting = 1 ORDER BY seq"
        else:
            sql, params = _SELECT + " WHERE after_job = ? AND waiting = 1 ORDER BY seq", (after,)
        return [_row_to_job(r) for r in self._conn.execute(sql, params)]

    def first_run_ended(self, parent: str, since: float) -> Job | None:
        """The first run of scheduled job `parent` that ended at or after `since`."""
        row = self._conn.execute(
            _SELECT + " WHERE parent = ? AND active = 0 AND finished >= ? "
            "ORDER BY finished, seq LIMIT 1",
            (parent, since),
        ).fetchone()
        return _row_to_job(row) if row else None

    def attempts(self, job_id: str) -> list[tuple[Any, ...]]:
        """A job's ended attempts (n, started, finished, status, reason, exit_code,
        stats), oldest first."""
        return self._conn.execute(
            "SELECT n, started, finished, status, reason, exit_code, stats FROM job_attempts "
            "WHERE job_id = ? ORDER BY n",
            (job_id,),
        ).fetchall()

    def jobs_in(self, status: str) -> list[Job]:
        """Every job in one status, oldest first (used at start for RUNNING/SCHEDULED)."""
        rows = self._conn.execute(_SELECT + " WHERE status = ? ORDER BY seq ASC", (status,))
        return [_row_to_job(r) for r in rows]

    def active_runs_of(self, parent: str) -> list[Job]:
        rows = self._conn.execute(
            _SELECT + " WHERE parent = ? AND status IN (?, ?)", (parent, PENDING, RUNNING)
        )
        return [_row_to_job(r) for r in rows]

    def active_spiders(self, project: str) -> set[str]:
        """The spiders of a project with scheduled, pending or running jobs (all of
        them, however many jobs: a push must not drop any of these spiders)."""
        sql = "SELECT DISTINCT spider FROM jobs WHERE active = 1 AND project = ?"
        return {row[0] for row in self._conn.execute(sql, (project,))}

    def job_counts(self, conn: sqlite3.Connection | None = None) -> list[tuple[str, str, str, int]]:
        """(status, project, spider, how many jobs) for every such group the store
        holds (the job_counts table the triggers keep); for /metrics."""
        sql = "SELECT status, project, spider, n FROM job_counts WHERE n > 0"
        return (conn or self._conn).execute(sql).fetchall()

    def history(
        self, job: Job, limit: int, scan: int = 1000
    ) -> list[tuple[str | None, float | None, float | None]]:
        """(stats, started, finished) of the newest `limit` SUCCESSFUL runs before `job`
        of its project and spider with its payload: the runs it is compared with. Only
        the spider's newest `scan` jobs are looked at, so a spider with a long history
        of other arguments costs a bounded read (indexed by project, spider, seq)."""
        sql = (
            "SELECT stats, started, finished FROM jobs WHERE seq IN (SELECT seq FROM"
            " (SELECT seq, status, payload FROM jobs WHERE project = ? AND spider = ?"
            " AND seq < ? ORDER BY seq DESC LIMIT ?) WHERE status = ? AND payload = ?"
            " ORDER BY seq DESC LIMIT ?) ORDER BY seq DESC"
        )
        params = (job.project, job.spider, job.seq, scan, SUCCESSFUL, job.payload, limit)
        return self._conn.execute(sql, params).fetchall()

    def set_anomalies(self, job_id: str, report: str) -> Job | None:
        """Keep a run's comparison with its history (daemon.anomalies) on it."""
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET anomalies = ? WHERE id = ?", (report, job_id))
        return self.get(job_id)

    def figures(self) -> dict[str, int]:
        """The run counters and the pending and scheduled counts, in one statement
        (status.json asks for them on every request)."""
        values = dict.fromkeys(COUNTERS, 0)
        values.update(dict(self._conn.execute(_FIGURES_SQL, (PENDING, SCHEDULED))))
        return values

    # -- writes --------------------------------------------------------------

    @staticmethod
    def _bump(conn: sqlite3.Connection, name: str) -> None:
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1",
            (name,),
        )

    def insert(self, job: Job) -> Job:
        now = self._clock()
        job_values = {
            **{c: getattr(job, c) for c in _COLUMNS if c != "seq"},
            "created": job.created or now,
            "updated": now,
            "settings": json.dumps(job.settings, sort_keys=True),
        }
        cols = list(job_values)
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO jobs ({', '.join(cols)}, active) "
                f"VALUES ({', '.join('?' * len(cols))}, ?)",
                [job_values[c] for c in cols] + [int(job.status in ACTIVE_STATUSES)],
            )
            seq = cur.lastrowid
        return self.get(job.id) or Job(**{**job_values, "seq": seq or 0})

    def mark_running(self, job_id: str) -> Job:
        """PENDING -> RUNNING, before the process exists: a crash after this never
        lets the job be started a second time under the same id."""
        now = self._clock()
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE jobs SET status = ?, started = ?, updated = ? WHERE id = ? AND status = ?",
                (RUNNING, now, now, job_id, PENDING),
            )
            if cur.rowcount != 1:
                raise StateConflict(f"job {job_id} is not pending")
            first = conn.execute("SELECT attempt FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if first[0] == 1:  # jobs-run counts jobs, not the attempts of one
                self._bump(conn, "jobs-run")
        job = self.get(job_id)
        assert job is not None
        return job

    def record_handle(self, job_id: str, handle: str, node: str) -> None:
        """How the executor knows the job's running crawl, and where it runs."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET handle = ?, node = ? WHERE id = ?", (handle, node, job_id)
            )

    def finish(
        self,
        job_id: str,
        status: str,
        reason: str | None = None,
        exit_code: int | None = None,
        from_statuses: Sequence[str] = (PENDING, RUNNING, SCHEDULED),
        leftovers_killed: int | None = None,
        at: float | None = None,
        stats: str | None = None,
    ) -> Job | None:
        """Move an active job to a final status; None when it was not active any more.

        The jobs-successful/failed/canceled counters count runs, so a SCHEDULED job that
        ends (cancelled, or no fire time left) does not move them, and is not paused any
        more (it is over). `at`: when it ended,
        for a write retried later (after a full disk) that must keep the true time.
        """
        assert status in COMPLETED_STATUSES
        now = self._clock() if at is None else at
        marks = ", ".join("?" * len(from_statuses))
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT status, retries, attempt, started FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None or row[0] not in from_statuses:
                return None
            if (row[1] or row[2] > 1) and row[0] == RUNNING:  # its last attempt
                self._add_attempt(
                    conn, job_id, row[2], row[3], now, status, reason, exit_code, stats
                )
            conn.execute(
                f"UPDATE jobs SET status = ?, active = 0, finished = ?, updated = ?, "
                f"reason = ?, exit_code = ?, leftovers_killed = ?, next_run = NULL, "
                f"paused = 0, waiting = 0, next_attempt_at = NULL, stats = ? "
                f"WHERE id = ? AND status IN ({marks})",
                (
                    status,
                    now,
                    now,
                    reason,
                    exit_code,
                    leftovers_killed,
                    stats,
                    job_id,
                    *from_statuses,
                ),
            )
            if row[0] != SCHEDULED:
                self._bump(conn, _COUNTER_OF[status])
        return self.get(job_id)

    @staticmethod
    def _add_attempt(
        conn: sqlite3.Connection,
        job_id: str,
        n: int,
        started: float | None,
        finished: float,
        status: str,
        reason: str | None,
        exit_code: int | None,
        stats: str | None,
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO job_attempts (job_id, n, started, finished, status, "
            "reason, exit_code, stats) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, n, started, finished, status, reason, exit_code, stats),
        )

    def retry(
        self,
        job_id: str,
        reason: str | None,
        exit_code: int | None,
        next_attempt_at: float,
        at: float | None = None,
        stats: str | None = None,
    ) -> Job | None:
        """A failed attempt of a RUNNING job is kept (job_attempts) and the job is
        PENDING again as its next attempt, due at `next_attempt_at`, in one transaction
        (a restart finds it waiting with its due time). None when it was not RUNNING."""
        now = self._clock() if at is None else at
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT status, attempt, started FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None or row[0] != RUNNING:
                return None
            self._add_attempt(conn, job_id, row[1], row[2], now, FAILED, reason, exit_code, stats)
            conn.execute(
                "UPDATE jobs SET status = ?, attempt = attempt + 1, next_attempt_at = ?, "
                "updated = ?, reason = ?, exit_code = ?, started = NULL, handle = NULL, "
                "node = NULL, stats = NULL WHERE id = ?",
                (PENDING, next_attempt_at, now, reason, exit_code, job_id),
            )
        return self.get(job_id)

    def release(self, job_id: str) -> Job | None:
        """A chained job whose predecessor ended as it asked: dispatchable now."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE jobs SET waiting = 0, updated = ? WHERE id = ? AND status = ? "
                "AND waiting = 1",
                (self._clock(), job_id, PENDING),
            )
            if cur.rowcount != 1:
                return None
        return self.get(job_id)

    def add_event(self, job_id: str, text: str, at: float | None = None) -> None:
        """A line of a job's history (e.g. firings missed while the daemon was down)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO job_events (job_id, time, text) VALUES (?, ?, ?)",
                (job_id, self._clock() if at is None else at, text[:2000]),
            )

    def events(self, job_id: str, limit: int = 50) -> list[tuple[float, str]]:
        """The newest `limit` history lines of a job, oldest first."""
        rows = self._conn.execute(
            "SELECT time, text FROM job_events WHERE job_id = ? ORDER BY seq DESC LIMIT ?",
            (job_id, limit),
        ).fetchall()
        return [(t, text) for t, text in reversed(rows)]

    def fire(
        self, parent_id: str, fire_time: float, next_run: float | None, run: Job | None
    ) -> Job | None:
        """One firing of a scheduled job: insert its run (or count a skip) and remember
        the fire time and the next run, all in one transaction."""
        now = self._clock()
        with self.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (parent_id,)).fetchone()
            if row is None or row[0] != SCHEDULED:
                return None
            if run is not None:
                busy = conn.execute(
                    "SELECT 1 FROM jobs WHERE parent = ? AND status IN (?, ?) LIMIT 1",
                    (parent_id, PENDING, RUNNING),
                ).fetchone()
                if busy:
                    run = None
            if run is None:
                conn.execute(
                    "UPDATE jobs SET skipped = skipped + 1, last_fire = ?, next_run = ?, "
                    "updated = ? WHERE id = ?",
                    (fire_time, next_run, now, parent_id),
                )
                return None
            conn.execute(
                "UPDATE jobs SET last_fire = ?, next_run = ?, updated = ? WHERE id = ?",
                (fire_time, next_run, now, parent_id),
            )
            values = {
                **{c: getattr(run, c) for c in _COLUMNS if c != "seq"},
                "created": now,
                "updated": now,
                "settings": json.dumps(run.settings, sort_keys=True),
            }
            cols = list(values)
            conn.execute(
                f"INSERT INTO jobs ({', '.join(cols)}, active) "
                f"VALUES ({', '.join('?' * len(cols))}, 1)",
                [values[c] for c in cols],
            )
        return self.get(run.id)

    def set_next_run(self, job_id: str, next_run: float | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET next_run = ? WHERE id = ?", (next_run, job_id))

    def add_misfires(self, job_id: str, count: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET misfires = misfires + ? WHERE id = ?", (count, job_id))

    def _update_schedule(self, job_id: str, assignments: str, values: Sequence[Any]) -> Job | None:
        """Change columns of a SCHEDULED job; None (nothing written) when it is not one."""
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET {assignments}, updated = ? WHERE id = ? AND status = ?",
                (*values, self._clock(), job_id, SCHEDULED),
            )
            if cur.rowcount != 1:
                return None
        return self.get(job_id)

    def set_paused(
        self,
        job_id: str,
        paused: bool,
        next_run: float | None,
        not_before: float | None = None,
    ) -> Job | None:
        """Pause (next_run None) or resume a scheduled job. A resume also sets not_before
        (default now): the fire times that fell in the pause are never due."""
        if paused:
            return self._update_schedule(job_id, "paused = 1, next_run = NULL", ())
        since = self._clock() if not_before is None else not_before
        return self._update_schedule(
            job_id, "paused = 0, next_run = ?, not_before = ?", (next_run, since)
        )

    def replace_schedule(
        self, job_id: str, spec: str, timezone: str, start: float, next_run: float | None
    ) -> Job | None:
        """A scheduled job's new `when`, parsed at `start`; a paused job keeps no next_run."""
        return self._update_schedule(
            job_id,
            "schedule = ?, timezone = ?, spec_start = ?, not_before = ?, "
            "next_run = CASE WHEN paused THEN NULL ELSE ? END",
            (spec, timezone, start, start, next_run),
        )

    def add_run(self, parent_id: str, run: Job) -> str | None:
        """Insert a run of a scheduled job unless its last run is still pending or
        running (checked in the same transaction); returns that active run's id, or None
        when `run` was inserted. StateConflict when the parent is not SCHEDULED."""
        now = self._clock()
        values = {
            **{c: getattr(run, c) for c in _COLUMNS if c != "seq"},
            "created": now,
            "updated": now,
            "settings": json.dumps(run.settings, sort_keys=True),
        }
        cols = list(values)
        with self.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (parent_id,)).fetchone()
            if row is None or row[0] != SCHEDULED:
                raise StateConflict(f"job {parent_id} is not scheduled")
            busy = conn.execute(
                "SELECT id FROM jobs WHERE parent = ? AND status IN (?, ?) "
                "ORDER BY seq DESC LIMIT 1",
                (parent_id, PENDING, RUNNING),
            ).fetchone()
            if busy:
                return str(busy[0])
            conn.execute(
                f"INSERT INTO jobs ({', '.join(cols)}, active) "
                f"VALUES ({', '.join('?' * len(cols))}, 1)",
                [values[c] for c in cols],
            )
        return None

    def purge_completed(self, cap: int) -> list[str]:
        """Forget the oldest completed jobs beyond `cap` (0 = keep all); returns their ids.

        Only rows with `active = 0` are candidates, so an active job is never touched.
        """
        if cap <= 0:
            return []
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT seq FROM jobs WHERE active = 0 ORDER BY seq DESC LIMIT 1 OFFSET ?",
                (cap,),
            ).fetchone()
            if row is None:
                return []
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM jobs WHERE active = 0 AND seq <= ? LIMIT 1000", (row[0],)
                )
            ]
            conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
            conn.executemany("DELETE FROM job_events WHERE job_id = ?", [(i,) for i in ids])
            conn.executemany("DELETE FROM job_attempts WHERE job_id = ?", [(i,) for i in ids])
        return ids


# -- the dashboard's reads (called through Store.*_in_thread with a worker's connection) --


def search_jobs(
    conn: sqlite3.Connection, query: JobQuery, limit: int, offset: int
) -> tuple[list[Job], int]:
    """A page of jobs matching `query`, newest first, and how many match in all, in one
    snapshot."""
    where, params = _query_filters(query)
    conn.execute("BEGIN")
    try:
        rows = conn.execute(
            _SELECT + where + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        ).fetchall()
        total = conn.execute("SELECT COUNT(*) FROM jobs" + where, params).fetchone()[0]
    finally:
        conn.execute("COMMIT")
    return [_row_to_job(r) for r in rows], total


def day_summary(conn: sqlite3.Connection, now: float, limit: int = 10) -> DaySummary:
    """The 24 hours before `now` (see DaySummary), from the index on `finished`. Runs
    only (schedule 'now'): a scheduled job that ends is not a run."""
    since = now - 86400
    conn.execute("BEGIN")
    try:
        failures = conn.execute(
            _SELECT + " WHERE finished >= ? AND status = ? AND schedule = 'now' "
            "ORDER BY finished DESC LIMIT ?",
            (since, FAILED, limit),
        ).fetchall()
        failed = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE finished >= ? AND status = ? AND schedule = 'now'",
            (since, FAILED),
        ).fetchone()[0]
        per_hour = [0] * 24
        for hour, count in conn.execute(
            "SELECT CAST((finished - ?) / 3600 AS INTEGER), COUNT(*) FROM jobs "
            "WHERE finished >= ? AND schedule = 'now' GROUP BY 1",
            (since, since),
        ):
            if 0 <= hour < 24:
                per_hour[hour] += count
        next_runs = conn.execute(
            _SELECT + " WHERE status = ? AND next_run IS NOT NULL ORDER BY next_run LIMIT 5",
            (SCHEDULED,),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return DaySummary(
        [_row_to_job(r) for r in failures], failed, per_hour, [_row_to_job(r) for r in next_runs]
    )


def spider_summaries(conn: sqlite3.Connection, project: str) -> list[SpiderSummary]:
    """Every spider of `project` that has runs, with its last run and mean duration."""
    out = []
    rows = conn.execute(
        "SELECT spider, COUNT(*), MAX(seq), AVG(finished - started) FROM jobs "
        "WHERE project = ? AND schedule = 'now' GROUP BY spider",
        (project,),
    ).fetchall()
    for spider, runs, last_seq, mean in rows:
        last = conn.execute(
            "SELECT id, status, started FROM jobs WHERE seq = ?", (last_seq,)
        ).fetchone()
        out.append(SpiderSummary(spider, runs, last[2], last[1], last[0], mean))
    return sorted(out, key=lambda s: s.spider)
