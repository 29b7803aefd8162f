"""Webhook deliveries kept in the daemon's SQLite store (tables of their own, on the job
store's connection), so a restart loses none and a receiver that is down costs disk,
not memory: the sender reads one delivery at a time, the oldest pending of its webhook.

The second module (after daemon.job_store) that writes SQL; every statement is small
and indexed, so it runs on the reactor thread like the job store's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from daemon.job_store import Store

PENDING = "pending"
DELIVERED = "delivered"
GIVEN_UP = "given_up"

#: Finished deliveries and attempts kept per webhook (the delivery log's depth).
KEEP = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hook INTEGER NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    job_id TEXT,
    delivery_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_state ON webhook_deliveries (hook, state, seq);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hook INTEGER NOT NULL,
    delivery INTEGER NOT NULL,
    time REAL NOT NULL,
    status INTEGER,
    answer TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_hook ON webhook_attempts (hook, seq);
"""


@dataclass(frozen=True)
class Delivery:
    seq: int
    hook: int
    url: str
    event: str
    job_id: str | None
    delivery_id: str
    body: str
    created: float
    attempts: int
    next_try: float


_DELIVERY = (
    "SELECT seq, hook, url, event, job_id, delivery_id, body, created, attempts, next_try"
    " FROM webhook_deliveries"
)


class WebhookQueue:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def add(self, rows: Sequence[tuple[int, str, str, str | None, str, str]]) -> None:
        """(hook, url, event, job id, delivery id, body) each, in one transaction: the
        events of one job change are kept together or not at all."""
        now = self.store.now()
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO webhook_deliveries (hook, url, event, job_id, delivery_id, body,"
                " created, state, next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row, now, PENDING, now) for row in rows],
            )

    def head(self, hook: int) -> Delivery | None:
        """The oldest pending delivery of a webhook: deliveries go out in order."""
        row = self.store._conn.execute(
            _DELIVERY + " WHERE hook = ? AND state = ? ORDER BY seq LIMIT 1", (hook, PENDING)
        ).fetchone()
        return Delivery(*row) if row else None

    def give_up_others(self, hooks: dict[int, str]) -> int:
        """Pending deliveries of webhooks no longer configured (or now with another URL)
        are given up: they were meant for a receiver that is not there any more."""
        now = self.store.now()
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT seq, hook, url FROM webhook_deliveries WHERE state = ?", (PENDING,)
            ).fetchall()
            stale = [(seq, hook) for seq, hook, url in rows if hooks.get(hook) != url]
            for seq, hook in stale:
                conn.execute(
                    "UPDATE webhook_deliveries SET state = ? WHERE seq = ?", (GIVEN_UP, seq)
                )
                conn.execute(
                    "INSERT INTO webhook_attempts (hook, delivery, time, status, answer,"
                    " outcome) VALUES (?, ?, ?, NULL, ?, ?)",
                    (hook, seq, now, "the webhook is no longer configured", GIVEN_UP),
                )
        return len(stale)

    def record(
        self, delivery: Delivery, status: int | None, answer: str, outcome: str, next_try: float
    ) -> None:
        """One attempt: its answer in the log, the delivery's new state, and the log
        trimmed to the newest KEEP entries of the webhook."""
        state = PENDING if outcome == "failed" else outcome
        hook = delivery.hook
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_try = ?"
                " WHERE seq = ?",
                (state, next_try, delivery.seq),
            )
            conn.execute(
                "INSERT INTO webhook_attempts (hook, delivery, time, status, answer, outcome)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (hook, delivery.seq, self.store.now(), status, answer[:500], outcome),
            )
            _trim(conn, "webhook_attempts", hook, "")
            _trim(conn, "webhook_deliveries", hook, f" AND state != '{PENDING}'")

    def log_in_thread(self, hook: int, limit: int) -> Deferred[dict[str, Any]]:
        """The newest `limit` attempts of a webhook (newest first) with their delivery,
        and how many deliveries wait."""

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            conn.execute("BEGIN")
            try:
                rows = conn.execute(
                    "SELECT a.time, a.status, a.answer, a.outcome, d.delivery_id, d.event,"
                    " d.job_id, d.attempts FROM webhook_attempts a LEFT JOIN"
                    " webhook_deliveries d ON d.seq = a.delivery WHERE a.hook = ?"
                    " ORDER BY a.seq DESC LIMIT ?",
                    (hook, limit),
                ).fetchall()
                pending = conn.execute(
                    "SELECT COUNT(*) FROM webhook_deliveries WHERE hook = ? AND state = ?",
                    (hook, PENDING),
                ).fetchone()[0]
            finally:
                conn.execute("COMMIT")
            keys = ("time", "status", "answer", "outcome", "delivery", "event", "job", "attempts")
            return {"pending": pending, "attempts": [dict(zip(keys, r, strict=True)) for r in rows]}

        return self.store.read_in_thread(read)


def _trim(conn: sqlite3.Connection, table: str, hook: int, where: str) -> None:
    """Forget a webhook's rows of `table` beyond the newest KEEP (matching `where`)."""
    row = conn.execute(
        f"SELECT seq FROM {table} WHERE hook = ?{where} ORDER BY seq DESC LIMIT 1 OFFSET ?",
        (hook, KEEP),
    ).fetchone()
    if row is not None:
        conn.execute(f"DELETE FROM {table} WHERE hook = ?{where} AND seq <= ?", (hook, row[0]))
