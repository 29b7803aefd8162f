"""status.json's figures: the process sample is real and at most a second old, and the
job counts come from the store in one statement."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from daemon.api.procstats import ProcessFigures
from daemon.domain import CANCELED, PENDING, RUNNING, SCHEDULED
from daemon.job_store import Job, Store


def test_process_figures_are_sampled_once_per_interval() -> None:
    now = [100.0]
    figures = ProcessFigures(interval=1.0, clock=lambda: now[0])
    memory, cpu = figures.read()
    rss = psutil.Process(os.getpid()).memory_info().rss / 1024 / 1024
    assert abs(memory - rss) < 50 and memory > 5  # this very process, in MiB
    assert isinstance(cpu, float) and cpu >= 0.0
    assert figures.samples == 1
    now[0] += 0.999
    assert figures.read() == (memory, cpu) and figures.samples == 1  # cached
    ballast = bytearray(64 * 1024 * 1024)  # 64 MiB the next sample must see
    ballast[::4096] = b"x" * len(ballast[::4096])
    now[0] += 0.001
    grown, _ = figures.read()
    assert figures.samples == 2 and grown > memory + 40
    del ballast


def job(job_id: str, status: str) -> Job:
    return Job(id=job_id, status=status, actor="USER", schedule="now", project="p", spider="s")


def test_store_figures_count_runs_pending_and_scheduled(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.sqlite")
    assert store.figures() == {
        "jobs-run": 0,
        "jobs-successful": 0,
        "jobs-failed": 0,
        "jobs-canceled": 0,
        "pending": 0,
        "jobs-scheduled": 0,
    }
    for n in range(3):
        store.insert(job(f"p{n}", PENDING))
    store.insert(job("s", SCHEDULED))
    store.mark_running("p0")
    store.finish("p0", CANCELED)
    store.finish("p1", CANCELED)
    figures = store.figures()
    assert figures["pending"] == 1 and figures["jobs-scheduled"] == 1
    assert figures["jobs-run"] == 1 and figures["jobs-canceled"] == 2
    runs = {k: v for k, v in figures.items() if k not in ("pending", "jobs-scheduled")}
    assert runs == {"jobs-run": 1, "jobs-successful": 0, "jobs-failed": 0, "jobs-canceled": 2}
    assert store.count_rows((RUNNING,)) == 0
