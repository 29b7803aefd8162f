"""list-jobs' `total` comes from job_counts, a table kept by triggers: it must agree with
a plain COUNT over the jobs after any mix of inserts, state changes and purges, and a
store written before the table existed must be counted when it is opened."""

from __future__ import annotations

import contextlib
import itertools
import random
import sqlite3
from pathlib import Path

from daemon.domain import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    CANCELED,
    COMPLETED_STATUSES,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SUCCESSFUL,
    USER,
)
from daemon.job_store import Job, StateConflict, Store
from tests.daemon_support import write_store_without_added_columns

PROJECTS = ("p", "q")
SPIDERS = ("s", "t", "u")
FILTERS = [None, ACTIVE_STATUSES, COMPLETED_STATUSES, *((s,) for s in ALL_STATUSES)]


def counted(store: Store, statuses, project, spider) -> int:
    """The truth: a COUNT over the jobs table itself."""
    where, params = ["1"], []
    if statuses is not None:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += statuses
    if project is not None:
        where.append("project = ?")
        params.append(project)
    if spider is not None:
        where.append("spider = ?")
        params.append(spider)
    conn = sqlite3.connect(store.path)
    try:
        sql = "SELECT COUNT(*) FROM jobs WHERE " + " AND ".join(where)
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def assert_counts_agree(store: Store) -> None:
    for statuses, project, spider in itertools.product(
        FILTERS, (None, *PROJECTS), (None, *SPIDERS)
    ):
        expected = counted(store, statuses, project, spider)
        assert store.count_rows(statuses, project, spider) == expected, (statuses, project, spider)


def test_counts_follow_every_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "daemon.sqlite")
    rng = random.Random(7)
    ids: list[str] = []
    for n in range(400):
        action = rng.random()
        if action < 0.45 or not ids:
            status = rng.choice((PENDING, PENDING, SCHEDULED))
            job = Job(
                id=f"job-{n}",
                status=status,
                actor=USER,
                schedule="now" if status == PENDING else "every 1 hour",
                project=rng.choice(PROJECTS),
                spider=rng.choice(SPIDERS),
            )
            ids.append(store.insert(job).id)
        elif action < 0.7:
            with contextlib.suppress(StateConflict):  # not pending (any more)
                store.mark_running(rng.choice(ids))
        elif action < 0.95:
            store.finish(rng.choice(ids), rng.choice((SUCCESSFUL, FAILED, CANCELED)))
        else:
            for gone in store.purge_completed(rng.randint(1, 20)):
                ids.remove(gone)
    assert store.count_rows() == len(ids)
    assert_counts_agree(store)
    store.close()


def test_a_store_from_before_the_counts_is_counted_on_open(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sqlite"
    write_store_without_added_columns(path)  # one PENDING job of p/s
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO jobs (id, status, active, actor, schedule, project, spider, created,"
        " updated) VALUES (?, ?, ?, 'USER', 'now', 'q', 't', 1, 1)",
        [(f"old-{n}", RUNNING if n % 2 else SUCCESSFUL, n % 2) for n in range(9)],
    )
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.count_rows() == 10
    assert store.count_rows((RUNNING,), "q", "t") == 4
    assert_counts_agree(store)
    store.finish("old", CANCELED)
    assert_counts_agree(store)
    store.close()
    # Opened again: the table is there already and is not counted a second time.
    again = Store(path)
    assert again.count_rows() == 10
    assert_counts_agree(again)
    again.close()
