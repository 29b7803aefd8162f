"""A short load run (tests/load_daemon.py; `python -m tests.load_daemon --seconds 60` for the
full minute): 50 clients scheduling, listing and cancelling at once get no error reply,
lose and duplicate no job, and no reactor loop iteration holds the CPU for 100 ms."""

from __future__ import annotations

from tests.daemon_support import DaemonFactory
from tests.load_daemon import MAX_STALL_MS, run_load, start_loaded_daemon

SECONDS = 10
CLIENTS = 50


def test_50_clients_scheduling_listing_cancelling(start_daemon: DaemonFactory) -> None:
    daemon, blocker = start_loaded_daemon(start_daemon)
    result = run_load(daemon, SECONDS, CLIENTS)
    print(result.summary())
    assert result.errors == []
    assert result.scheduled > 100 and result.canceled > 50
    assert result.missing == [] and result.duplicated == [] and result.wrong_status == []
    # No loop iteration of the reactor held the CPU for 100 ms (stalls of the daemon's
    # own making). The wall-clock stall (printed above) also counts time spent waiting
    # for a CPU held by other programs, so it is checked by the benchmark run
    # (`python -m tests.load_daemon`), not here where CI shares the machine.
    assert result.busy_after_ms < MAX_STALL_MS
    assert daemon.job(blocker)["status"] == "RUNNING"  # the slot was never given away
