"""The lease protocol (daemon/cluster/leases.py) against a real redis-server."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from daemon.cluster.leases import Leases
from tests.redis_support import RedisServer
from tests.waiting import wait_until


@pytest.fixture
def leases(redis_server: RedisServer) -> Leases:
    return Leases.from_url(redis_server.url(), prefix="t", lease_ms=2000)


def test_one_claim_wins_a_duplicate_or_late_delivery_loses(leases: Leases) -> None:
    assert leases.claim("j", 1, "w1") == "unknown"  # never offered
    assert leases.offer("j", 1)
    assert leases.claim("j", 1, "w1") == "ok"
    assert leases.claim("j", 1, "w2") == "not-queued"  # the duplicate delivery
    assert leases.claim("j", 1, "w1") == "not-queued"  # even by the same worker
    lease = leases.lease("j")
    assert lease is not None and (lease.attempt, lease.worker) == (1, "w1")


def test_concurrent_claims_of_one_attempt_have_exactly_one_winner(leases: Leases) -> None:
    results: list[str] = []
    for round_ in range(20):
        job = f"race{round_}"
        leases.offer(job, 1)
        barrier = threading.Barrier(8)

        def claim(worker: str, job: str = job, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            results.append(leases.claim(job, 1, worker))

        threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results.count("ok") == 20
    assert len(results) == 160


def test_a_stale_attempt_cannot_claim_renew_or_write(leases: Leases) -> None:
    leases.offer("j", 1)
    assert leases.claim("j", 1, "w1") == "ok"
    assert leases.current("j", 1, "w1")
    # The reaper gave up on attempt 1 (its node was lost) and offered attempt 2.
    assert leases.offer("j", 2)
    assert not leases.current("j", 1, "w1")  # attempt 1's writes are fenced off
    assert not leases.renew("j", 1, "w1")
    assert leases.claim("j", 1, "w1") == "stale"
    assert leases.claim("j", 2, "w2") == "ok"
    assert leases.current("j", 2, "w2")
    assert not leases.current("j", 2, "w1")
    assert not leases.offer("j", 1)  # attempts never go back
    assert leases.current_attempt("j") == 2


def test_a_lease_that_is_not_renewed_runs_out_and_a_renewed_one_does_not(leases: Leases) -> None:
    leases.offer("a", 1)
    leases.offer("b", 1)
    assert leases.claim("a", 1, "w1") == "ok"
    assert leases.claim("b", 1, "w1") == "ok"

    def state() -> tuple[bool, bool]:
        assert leases.renew("a", 1, "w1")
        return leases.lease("a") is not None, leases.lease("b") is not None

    wait_until(
        state, 30, "lease b to run out while a is renewed", until=lambda s: s == (True, False)
    )
    assert not leases.current("b", 1, "w1")


def test_release_only_by_the_holder_and_retired_jobs_stay_closed(leases: Leases) -> None:
    leases.offer("j", 1)
    assert leases.claim("j", 1, "w1") == "ok"
    assert not leases.release("j", 1, "w2")
    assert leases.lease("j") is not None
    assert leases.release("j", 1, "w1")
    assert leases.lease("j") is None
    assert leases.retire("j", 1)
    # A holder that slept through the end cannot bring its lease back.
    assert not leases.renew("j", 1, "w1")
    assert leases.claim("j", 1, "w1") == "stale"
    assert leases.current_attempt("j") is None


def test_cancel_of_a_queued_attempt_stops_its_claim(leases: Leases) -> None:
    leases.offer("q", 1)
    assert leases.cancel("q") == "queued"
    assert leases.claim("q", 1, "w1") == "not-queued"
    leases.offer("r", 1)
    assert leases.claim("r", 1, "w1") == "ok"
    assert leases.canceled("r") is None
    assert leases.cancel("r", signal.SIGINT) == "running"
    assert leases.canceled("r") == 2
    assert leases.cancel("none") == "none"


def test_after_redis_forgets_the_holder_renews_and_a_stale_one_is_refused(
    redis_server: RedisServer, leases: Leases
) -> None:
    leases.offer("j", 1)
    assert leases.claim("j", 1, "w1") == "ok"
    old = leases.run_id()
    redis_server.restart()
    wait_until(
        lambda: _run_id(leases), 30, "Redis to answer again", until=lambda r: r not in ("", old)
    )
    assert leases.lease("j") is None  # persistence off: all gone
    # The daemon re-offers its current attempt; the worker that holds it renews.
    assert leases.renew("j", 1, "w1")
    assert leases.current("j", 1, "w1")
    assert not leases.renew("j", 1, "w2")  # the lease is w1's again


def _run_id(leases: Leases) -> str:
    try:
        return leases.run_id()
    except Exception:
        return ""


def test_nodes_are_listed_and_a_silent_one_is_lost(leases: Leases) -> None:
    leases.heartbeat("n1", 2, ["a"], ttl_ms=60_000)
    leases.heartbeat("n2", 3, [], ttl_ms=300)
    before = time.time()
    nodes = {n.name: n for n in leases.nodes()}
    assert nodes["n1"].slots == 2 and nodes["n1"].running == ["a"] and nodes["n1"].alive
    assert nodes["n2"].seen <= before

    def n2_alive() -> bool:
        return {n.name: n.alive for n in leases.nodes()}["n2"]

    wait_until(lambda: not n2_alive(), 30, "node n2 to be lost after its heartbeat expired")
    assert {n.name: n.alive for n in leases.nodes()}["n1"]
