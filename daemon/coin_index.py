"""The coin index: every coin record of every job folder, in `<data_dir>/coins.sqlite`.

A derived index: `data/<job>/items.jl` files are the truth, and the index can always be
rebuilt from them, so it lives in its own SQLite file apart from the job store. It is fed
incrementally (each job's items.jl is read from the byte offset where the last read
stopped, complete lines only) and answers the coin API's questions with indexed queries
instead of scanning folders.

Thread-safe: each thread gets its own connection (WAL lets readers run while one writer
writes); writes are serialised by a lock. Every call blocks, so the daemon runs them in
a thread pool, never on the reactor thread. All SQL of the coin API is in this module.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinspiders.jobfolder import ITEMS_FILE, JOB_ID_RE, MANIFEST_FILE, utc_now
from daemon.coin_records import (
    DEFAULT_CURRENCY,
    complete_lines,
    is_cmc_id,
    job_currency,
    rows_of,
)

INDEX_FILE = "coins.sqlite"
# 6: records and latest carry the currency of their figures.
SCHEMA_VERSION = "6"
# Bytes read from one items.jl per step; bounds memory on a huge file.
READ_CHUNK = 4 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    job_id TEXT PRIMARY KEY,
    offset INTEGER NOT NULL,
    records INTEGER NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    coin_id INTEGER,
    symbol TEXT,
    slug TEXT,
    query TEXT,
    query_key TEXT,
    source TEXT,
    currency TEXT NOT NULL,
    rank_key INTEGER NOT NULL,
    ts TEXT NOT NULL,
    price NUMERIC,
    market_cap NUMERIC,
    volume NUMERIC,
    logo_path TEXT,
    error INTEGER NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (job_id, pos)
);
CREATE INDEX IF NOT EXISTS records_coin_ts ON records (coin_id, currency, ts, id);
CREATE INDEX IF NOT EXISTS records_job_coin ON records (job_id, coin_id, id);
CREATE INDEX IF NOT EXISTS records_job_query ON records (job_id, query_key);
CREATE INDEX IF NOT EXISTS records_job_rank ON records (job_id, error, rank_key, coin_id);
CREATE TABLE IF NOT EXISTS platforms (
    platform TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    PRIMARY KEY (platform, record_id)
) WITHOUT ROWID;
-- The latest record of each coin per source and currency; `newest` marks the newest of
-- a coin's rows in one currency (figures in two currencies are never compared).
CREATE TABLE IF NOT EXISTS latest (
    coin_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    currency TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    newest INTEGER NOT NULL,
    symbol TEXT,
    slug TEXT,
    rank_key INTEGER NOT NULL,
    PRIMARY KEY (coin_id, source, currency)
);
CREATE INDEX IF NOT EXISTS latest_newest_rank
    ON latest (currency, newest, rank_key, coin_id, record_id);
CREATE INDEX IF NOT EXISTS latest_source_rank
    ON latest (source, currency, rank_key, coin_id, record_id);
CREATE INDEX IF NOT EXISTS latest_symbol ON latest (symbol, currency, newest, rank_key, coin_id);
CREATE INDEX IF NOT EXISTS latest_slug ON latest (slug, newest, rank_key, coin_id);
CREATE INDEX IF NOT EXISTS latest_record ON latest (record_id);
"""


@dataclass(frozen=True)
class CoinFilter:
    """Filters of the coin list; None means "any".

    `currency` None is allowed with `job` only (a job's records share one currency);
    otherwise the list is of one currency, so no two currencies are ever mixed.
    """

    symbol: str | None = None
    slug: str | None = None
    platform: str | None = None
    source: str | None = None
    job: str | None = None
    currency: str | None = DEFAULT_CURRENCY


#: The coin list's orders besides market cap rank: name -> the SQL of the figure.
SORTS = {
    "price": "r.price",
    "cap": "r.market_cap",
    "change": "json_extract(r.doc, '$.price_change')",
}


@dataclass(frozen=True)
class IngestResult:
    job_id: str
    records: int
    offset: int


class CoinIndex:
    """The coin records of all job folders under `data_dir`, indexed in SQLite."""

    def __init__(self, data_dir: Path, path: Path | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.path = Path(path) if path is not None else self.data_dir / INDEX_FILE
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        # True when the file had to be created: the caller rebuilds from data/ then.
        self.created = False

    # -- connections -------------------------------------------------------------

    def open(self) -> bool:
        """Create the file and schema when missing; True when the index must be rebuilt.

        A file SQLite cannot read is moved aside (`coins.sqlite.broken`) and started
        afresh: the index is derived from data/, so nothing is lost by rebuilding it.
        """
        try:
            return self._open()
        except sqlite3.DatabaseError:
            self.close()
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            if self.path.exists():
                os.replace(self.path, f"{self.path}.broken")
            return self._open()

    def _open(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = not self.path.exists()
        conn = self._conn()
        with self._write_lock, conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            # An index written by another version is dropped: it is rebuilt from data/.
            stale = row is not None and row[0] != SCHEMA_VERSION
            if stale:
                for table in ("platforms", "latest", "records", "sources"):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")  # fixed table names
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
            if self.created or stale:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('built', '0')")
            built = conn.execute("SELECT value FROM meta WHERE key = 'built'").fetchone()
        return self.created or stale or (built is not None and built[0] != "1")

    def close(self) -> None:
        with self._conn_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._conn_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._write_lock, conn:
            yield conn

    # -- ingest ------------------------------------------------------------------

    def job_folders(self) -> list[str]:
        """The job ids of every folder under data_dir that holds an items.jl."""
        found = []
        try:
            entries = list(os.scandir(self.data_dir))
        except FileNotFoundError:
            return []
        for entry in entries:
            if (
                entry.is_dir(follow_symlinks=False)
                and JOB_ID_RE.match(entry.name)
                and os.path.isfile(os.path.join(entry.path, ITEMS_FILE))
            ):
                found.append(entry.name)
        return sorted(found)

    def ingest_job(self, job_id: str, *, bulk: bool = False) -> IngestResult:
        """Read what was appended to `data_dir/<job_id>/items.jl` since the last call.

        Only complete lines count; a line still being written is read next time. A file
        shorter than the stored offset was replaced: its records are read again from 0.
        `bulk` (rebuild only) leaves the latest-record table to `_settle_latest`.
        """
        if not JOB_ID_RE.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        path = self.data_dir / job_id / ITEMS_FILE
        conn = self._conn()
        row = conn.execute("SELECT offset FROM sources WHERE job_id = ?", (job_id,)).fetchone()
        offset = row[0] if row else 0
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return IngestResult(job_id, 0, offset)
        if size == offset:
            return IngestResult(job_id, 0, offset)
        added = 0
        with self._write_lock:
            # Re-read under the lock: another thread may have ingested meanwhile.
            row = conn.execute("SELECT offset FROM sources WHERE job_id = ?", (job_id,)).fetchone()
            offset = row[0] if row else 0
            if size < offset:
                with conn:
                    self._forget(conn, job_id)
                offset = 0
            convert = _JobConvert(self.data_dir / job_id / MANIFEST_FILE)
            with open(path, "rb") as fh:
                fh.seek(offset)
                while True:
                    buf = fh.read(READ_CHUNK)
                    if not buf:
                        break
                    lines, next_offset = complete_lines(buf, offset)
                    if next_offset == offset:
                        if len(buf) < READ_CHUNK:
                            break
                        # One line longer than a chunk: read it whole.
                        buf += fh.read()
                        lines, next_offset = complete_lines(buf, offset)
                        if next_offset == offset:
                            break
                    with conn:
                        rows = rows_of(lines, utc_now(), convert)
                        count = self._insert(conn, job_id, rows, bulk)
                        self._set_offset(conn, job_id, next_offset, count)
                    added += count
                    offset = next_offset
                    fh.seek(offset)
        return IngestResult(job_id, added, offset)

    def _set_offset(self, conn: sqlite3.Connection, job_id: str, offset: int, added: int) -> None:
        conn.execute(
            "INSERT INTO sources (job_id, offset, records, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (job_id) DO UPDATE SET offset = excluded.offset, "
            "records = records + ?, updated = excluded.updated",
            (job_id, offset, added, utc_now(), added),
        )

    def _insert(
        self, conn: sqlite3.Connection, job_id: str, rows: Iterable[Any], bulk: bool = False
    ) -> int:
        added = 0
        touched: set[int] = set()
        for pos, row in rows:
            cur = conn.execute(
                "INSERT OR IGNORE INTO records (job_id, pos, coin_id, symbol, slug, query, "
                "query_key, source, currency, rank_key, ts, price, market_cap, volume, "
                "logo_path, error, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    pos,
                    row.coin_id,
                    row.symbol,
                    row.slug,
                    row.query,
                    row.query.casefold() if row.query else None,
                    row.source,
                    row.currency,
                    row.rank_key,
                    row.ts,
                    row.price,
                    row.market_cap,
                    row.volume,
                    row.logo_path,
                    int(row.error),
                    row.doc,
                ),
            )
            if cur.rowcount != 1:
                continue
            added += 1
            record_id = cur.lastrowid
            if row.error or row.coin_id is None:
                continue
            if row.platforms:
                conn.executemany(
                    "INSERT OR IGNORE INTO platforms (platform, record_id) VALUES (?, ?)",
                    [(p, record_id) for p in row.platforms],
                )
            if bulk:
                continue
            # The latest record of this coin from this source in this currency, if this
            # one is newer.
            conn.execute(
                "INSERT INTO latest (coin_id, source, currency, record_id, ts, newest, symbol, "
                "slug, rank_key) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?) "
                "ON CONFLICT (coin_id, source, currency) DO UPDATE SET "
                "record_id = excluded.record_id, "
                "ts = excluded.ts, symbol = excluded.symbol, slug = excluded.slug, "
                "rank_key = excluded.rank_key "
                "WHERE excluded.ts > latest.ts OR "
                "(excluded.ts = latest.ts AND excluded.record_id > latest.record_id)",
                (
                    row.coin_id,
                    row.source or "",
                    row.currency,
                    record_id,
                    row.ts,
                    row.symbol,
                    row.slug,
                    row.rank_key,
                ),
            )
            touched.add(row.coin_id)
        for coin_id in touched:
            self._mark_newest(conn, coin_id)
        return added

    def _mark_newest(self, conn: sqlite3.Connection, coin_id: int) -> None:
        conn.execute(
            "UPDATE latest SET newest = (record_id = (SELECT l2.record_id FROM latest l2 "
            "WHERE l2.coin_id = ?1 AND l2.currency = latest.currency "
            "ORDER BY l2.ts DESC, l2.record_id DESC LIMIT 1)) WHERE coin_id = ?1",
            (coin_id,),
        )

    def _forget(self, conn: sqlite3.Connection, job_id: str) -> None:
        coins = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT coin_id FROM records WHERE job_id = ? AND coin_id IS NOT NULL",
                (job_id,),
            )
        ]
        conn.execute(
            "DELETE FROM platforms WHERE record_id IN (SELECT id FROM records WHERE job_id = ?)",
            (job_id,),
        )
        conn.execute("DELETE FROM records WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM sources WHERE job_id = ?", (job_id,))
        for coin_id in coins:
            conn.execute("DELETE FROM latest WHERE coin_id = ?", (coin_id,))
            # Rebuild this coin's latest rows from the records that remain.
            for src in conn.execute(
                "SELECT id, source, ts, symbol, slug, rank_key, currency FROM records r "
                "WHERE coin_id = ? AND error = 0 AND id = (SELECT id FROM records r2 "
                "WHERE r2.coin_id = r.coin_id AND r2.error = 0 "
                "AND COALESCE(r2.source, '') = COALESCE(r.source, '') "
                "AND r2.currency = r.currency "
                "ORDER BY ts DESC, id DESC LIMIT 1)",
                (coin_id,),
            ).fetchall():
                conn.execute(
                    "INSERT OR REPLACE INTO latest (coin_id, source, currency, record_id, ts, "
                    "newest, symbol, slug, rank_key) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                    (coin_id, src[1] or "", src[6], src[0], src[2], src[3], src[4], src[5]),
                )
            self._mark_newest(conn, coin_id)

    def forget_job(self, job_id: str) -> None:
        """Drop a job's records (its folder was removed)."""
        with self._write() as conn:
            self._forget(conn, job_id)

    def rebuild(self) -> int:
        """Empty the index and read every job folder again; the number of records read."""
        with self._write() as conn:
            self._wipe(conn)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('built', '0')")
        total = sum(self.ingest_job(job_id, bulk=True).records for job_id in self.job_folders())
        with self._write() as conn:
            self._settle_latest(conn)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('built', '1')")
        with self._write_lock:
            # Fresh statistics let the planner pick the selective index (symbol, slug).
            self._conn().execute("ANALYZE")
        return total

    def _settle_latest(self, conn: sqlite3.Connection) -> None:
        """The latest-record table from all records at once (after a bulk rebuild)."""
        conn.execute("DELETE FROM latest")
        conn.execute(
            "INSERT INTO latest (coin_id, source, currency, record_id, ts, newest, symbol, slug, "
            "rank_key) SELECT coin_id, src, currency, id, ts, 0, symbol, slug, rank_key FROM ("
            "SELECT coin_id, COALESCE(source, '') AS src, currency, id, ts, symbol, slug, "
            "rank_key, ROW_NUMBER() OVER (PARTITION BY coin_id, COALESCE(source, ''), currency "
            "ORDER BY ts DESC, id DESC) AS n FROM records "
            "WHERE error = 0 AND coin_id IS NOT NULL) WHERE n = 1"
        )
        conn.execute(
            "UPDATE latest SET newest = 1 WHERE record_id IN (SELECT record_id FROM ("
            "SELECT record_id, ROW_NUMBER() OVER (PARTITION BY coin_id, currency "
            "ORDER BY ts DESC, record_id DESC) AS n FROM latest) WHERE n = 1)"
        )

    def catch_up(self) -> int:
        """Read whatever was appended to any items.jl while nobody was looking, and drop
        the records of job folders that were removed meanwhile."""
        folders = self.job_folders()
        known = [r[0] for r in self._conn().execute("SELECT job_id FROM sources")]
        for job_id in set(known) - set(folders):
            self.forget_job(job_id)
        return sum(self.ingest_job(job_id).records for job_id in folders)

    def _wipe(self, conn: sqlite3.Connection) -> None:
        for table in ("platforms", "latest", "records", "sources"):
            conn.execute(f"DELETE FROM {table}")  # fixed table names

    # -- queries -----------------------------------------------------------------

    def coins(
        self, filters: CoinFilter, limit: int, offset: int, sort: str = "rank"
    ) -> list[dict[str, Any]]:
        """The latest record of every coin matching `filters`, by market cap rank, or
        by one of SORTS (highest first, coins without the figure last).

        With `job`, "latest" means the latest record of each coin within that job.
        """
        where: list[str] = []
        args: list[Any] = []
        if filters.job is not None:
            base = "records t"
            where.append(
                "t.job_id = ? AND t.error = 0 AND t.coin_id IS NOT NULL AND t.id = "
                "(SELECT MAX(id) FROM records t2 WHERE t2.job_id = t.job_id "
                "AND t2.coin_id = t.coin_id AND t2.currency = t.currency AND t2.error = 0)"
            )
            args.append(filters.job)
            record_col = "t.id"
            source_col = "COALESCE(t.source, '')"
        else:
            base = "latest t"
            record_col = "t.record_id"
            source_col = "t.source"
            if filters.source is None:
                where.append("t.newest = 1")
        if filters.currency is not None:
            where.append("t.currency = ?")
            args.append(filters.currency)
        elif filters.job is None:
            raise ValueError("a coin list across jobs is of one currency")
        if filters.source is not None:
            where.append(f"{source_col} = ?")
            args.append(filters.source)
        if filters.symbol is not None:
            where.append("t.symbol = ?")
            args.append(filters.symbol.upper())
        if filters.slug is not None:
            where.append("t.slug = ?")
            args.append(filters.slug.casefold())
        if filters.platform is not None:
            # A probe per row walked in rank order: stops as soon as the page is full.
            where.append(
                "EXISTS (SELECT 1 FROM platforms p WHERE p.platform = ? "
                f"AND p.record_id = {record_col})"
            )
            args.append(filters.platform.strip().casefold())
        if sort != "rank":
            # By a figure: every matching coin's record is read (no index orders them),
            # which is a few thousand rows for a whole market.
            key = SORTS[sort]
            sql = (
                f"SELECT r.job_id, r.currency, r.doc FROM {base} "
                f"JOIN records r ON r.id = {record_col} "
                f"WHERE {' AND '.join(where) or '1'} "
                f"ORDER BY {key} IS NULL, {key} DESC, t.coin_id LIMIT ? OFFSET ?"
            )
        else:
            # The page is chosen on the narrow index first; only its rows fetch their
            # documents.
            sql = (
                f"SELECT r.job_id, r.currency, r.doc FROM (SELECT {record_col} AS rid, "
                "t.rank_key, t.coin_id "
                f"FROM {base} WHERE {' AND '.join(where) or '1'} "
                "ORDER BY t.rank_key, t.coin_id LIMIT ? OFFSET ?) page "
                "JOIN records r ON r.id = page.rid ORDER BY page.rank_key, page.coin_id"
            )
        args += [limit, offset]
        rows = self._conn().execute(sql, args).fetchall()
        return [_coin_doc(r["job_id"], r["doc"], r["currency"]) for r in rows]

    def _coin_id(self, key: str) -> int | None:
        """A coin's CMC id from its id or its slug, when it was ever collected."""
        conn = self._conn()
        if is_cmc_id(key):
            row = conn.execute(
                "SELECT coin_id FROM latest WHERE coin_id = ? LIMIT 1", (int(key),)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT coin_id FROM latest WHERE slug = ? ORDER BY newest DESC, ts DESC LIMIT 1",
                (key.casefold(),),
            ).fetchone()
        return row[0] if row else None

    def coin(self, key: str, currency: str = DEFAULT_CURRENCY) -> dict[str, Any] | None:
        """The latest record of one coin (by CMC id or slug) in `currency`."""
        coin_id = self._coin_id(key)
        if coin_id is None:
            return None
        row = (
            self._conn()
            .execute(
                "SELECT r.job_id, r.currency, r.doc FROM latest t "
                "JOIN records r ON r.id = t.record_id "
                "WHERE t.coin_id = ? AND t.currency = ? AND t.newest = 1",
                (coin_id, currency),
            )
            .fetchone()
        )
        return _coin_doc(row["job_id"], row["doc"], row["currency"]) if row else None

    def known(self, key: str) -> bool:
        """Whether a coin (by CMC id or slug) was ever collected, in any currency."""
        return self._coin_id(key) is not None

    def currencies(self, key: str) -> list[str]:
        """The currencies a coin (by CMC id or slug) was collected in, alphabetically."""
        coin_id = self._coin_id(key)
        if coin_id is None:
            return []
        rows = self._conn().execute(
            "SELECT DISTINCT currency FROM latest WHERE coin_id = ? ORDER BY currency",
            (coin_id,),
        )
        return [r[0] for r in rows]

    def same_symbol(self, symbol: str, limit: int = 5) -> list[tuple[str, int]]:
        """(slug, id) of collected coins with this symbol, best rank first."""
        rows = self._conn().execute(
            "SELECT slug, coin_id, MIN(rank_key) AS best FROM latest "
            "WHERE symbol = ? AND slug IS NOT NULL GROUP BY coin_id, slug "
            "ORDER BY best, coin_id LIMIT ?",
            (symbol.upper(), limit),
        )
        return [(r[0], r[1]) for r in rows]

    def history(
        self,
        key: str,
        since: str | None,
        until: str | None,
        limit: int,
        offset: int,
        currency: str = DEFAULT_CURRENCY,
    ) -> list[dict[str, Any]] | None:
        """Every record of one coin in one currency over time, oldest first; None for an
        unknown coin (one never collected in `currency` has an empty history)."""
        coin_id = self._coin_id(key)
        if coin_id is None:
            return None
        where = ["coin_id = ?", "currency = ?", "error = 0"]
        args: list[Any] = [coin_id, currency]
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts <= ?")
            args.append(until)
        rows = (
            self._conn()
            .execute(
                "SELECT ts, price, market_cap, volume, rank_key, source, currency, job_id "
                "FROM records "
                f"WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ? OFFSET ?",
                [*args, limit, offset],
            )
            .fetchall()
        )
        return [
            {
                "time": r["ts"],
                "price": r["price"],
                "market_cap": r["market_cap"],
                "volume": r["volume"],
                "market_cap_rank": r["rank_key"] if r["rank_key"] < (1 << 62) else None,
                "source": r["source"],
                "currency": r["currency"],
                "job_id": r["job_id"],
            }
            for r in rows
        ]

    def latest_logo(self, key: str) -> tuple[str, str] | None:
        """(job id, logo path inside the job folder) of the newest stored logo of a coin."""
        coin_id = self._coin_id(key)
        if coin_id is None:
            return None
        row = (
            self._conn()
            .execute(
                "SELECT job_id, logo_path FROM records WHERE coin_id = ? AND error = 0 "
                "AND logo_path IS NOT NULL ORDER BY ts DESC, id DESC LIMIT 1",
                (coin_id,),
            )
            .fetchone()
        )
        return (row[0], row[1]) if row else None

    def job_records(self, job_id: str) -> list[dict[str, Any]]:
        """Every record of one job, in the order of its items.jl."""
        rows = self._conn().execute(
            "SELECT doc FROM records WHERE job_id = ? ORDER BY pos", (job_id,)
        )
        return [json.loads(r[0]) for r in rows]

    def job_known(self, job_id: str) -> bool:
        row = self._conn().execute("SELECT 1 FROM sources WHERE job_id = ?", (job_id,)).fetchone()
        return row is not None

    def task_records(self, job_id: str, coins: list[str]) -> dict[str, dict[str, Any]]:
        """The record of each asked coin of a job, matched on the record's `query`.

        An exact match wins; otherwise the match ignores case (the spider echoes the coin
        as it was asked, the client may echo it differently). A coin with several records
        (a retry after an error) shows the last one.
        """
        keys = list(dict.fromkeys(coin.casefold() for coin in coins))
        marks = ", ".join("?" * len(keys))
        rows = self._conn().execute(
            f"SELECT query, doc FROM records WHERE job_id = ? AND query_key IN ({marks}) "
            "ORDER BY pos",
            [job_id, *keys],
        )
        exact: dict[str, str] = {}
        folded: dict[str, str] = {}
        for r in rows:
            exact[r[0]] = r[1]
            folded[r[0].casefold()] = r[1]
        found: dict[str, dict[str, Any]] = {}
        for coin in coins:
            doc = exact.get(coin) or folded.get(coin.casefold())
            if doc is not None:
                found[coin] = json.loads(doc)
        return found


class _JobConvert:
    """The `convert` currency in a job's job.json, read once and only when asked for.

    Only records written before `currency` existed need it, so a job whose records all
    name their currency never has its job.json read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read = False
        self._value: str | None = None

    def __call__(self) -> str | None:
        if not self._read:
            self._read = True
            try:
                manifest = json.loads(self.path.read_bytes())
            except (OSError, ValueError):
                manifest = None
            self._value = job_currency(manifest)
        return self._value


def _coin_doc(job_id: str, doc: str, currency: str | None = None) -> dict[str, Any]:
    record = json.loads(doc)
    if currency is not None and not record.get("currency"):
        # A record from before `currency`: show the one the index worked out.
        record["currency"] = currency
    record.pop("query", None)
    record.pop("error", None)
    if not record.get("candidates"):
        record.pop("candidates", None)
    record["job_id"] = job_id
    return record
