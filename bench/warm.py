"""Benchmark 7: warm starts (issue 14). Our daemon with warm starts (crawls forked from a
zygote) against the same daemon with `warm: false` (a new Python per crawl) and against
the same spider run directly with `scrapy crawl`, all in one run:

- latency: `schedule-job when=now` -> SUCCESSFUL of the trivial spider, p50, as a ratio
  of a direct `scrapy crawl` (target <= 0.3x). Direct runs, warm and cold samples take
  turns, so all three see the same load from whatever else the machine is doing;
- throughput: trivial jobs queued at once with 3 slots, jobs/min (target >= 500/min;
  300 warm jobs, 90 cold ones);
- memory: total PSS of 10 concurrent idle crawls (the zygote counted with the warm
  crawls), warm against cold (target: at least 40 % lower).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from bench.adapters import DONE, Ours
from bench.common import BenchError, log, ratio, summary, table, wait_until
from bench.dispatch import sample
from bench.env import Env
from bench.project import NAME, direct_runs
from bench.runner import guard
from bench.throughput import measure as throughput

SAMPLES = 15
JOBS = 300
#: Cold jobs cost ~10x the CPU: fewer of them give the same precision in far less time.
COLD_JOBS = 90
IDLE_CRAWLS = 10


class Flavour(Ours):
    """Our daemon, warm or cold, its crawls able to wait on BENCH_IDLE_UNTIL."""

    def __init__(self, work: Path, top: Path, warm: bool, until: Path, slots: int = 3):
        super().__init__(work, top, slots=slots)
        self.warm = warm
        self.until = until
        self.name = "warm" if warm else "cold"

    def prepare(self) -> None:
        super().prepare()
        with (self.work / "config.yaml").open("a") as fh:
            fh.write(f"warm: {'true' if self.warm else 'false'}\n")

    def env(self) -> dict[str, str]:
        return {**super().env(), "BENCH_IDLE_UNTIL": str(self.until)}

    def schedule_spider(self, spider: str) -> str:
        reply = self.api.post_json(
            "/schedule-job.json", {"project": NAME, "spider": spider, "when": "now"}
        )
        if reply.get("status") != "ok":
            raise BenchError(f"{self.name} refused schedule-job: {reply}")
        return reply["identifier"]

    def zygote_ready(self) -> None:
        """Warm: wait until the project's zygote is up (a first job boots it)."""
        if not self.warm:
            return
        wait_until(
            lambda: any(z.get("ready") for z in self.api.get_json("/status.json")["zygotes"]),
            60,
            "the zygote to be ready",
        )


def warm_up(daemon: Flavour) -> None:
    sample(daemon)
    daemon.zygote_ready()
    sample(daemon)


def latency(env: Env, samples: int, until: Path) -> dict[str, Any]:
    warm = Flavour(env.root / "warm-latency", env.top, True, until)
    cold = Flavour(env.root / "cold-latency", env.top, False, until)
    done: dict[str, list[float]] = {"warm": [], "cold": [], "direct": []}
    with warm, cold:
        direct_runs(warm.python, env.top, 0)  # first crawls pay for cold caches
        warm_up(warm)
        warm_up(cold)
        for _ in range(samples):
            done["direct"] += direct_runs(warm.python, env.top, 1, warm_up=False)
            time.sleep(0.2)
            for daemon in (warm, cold):
                _, to_done, state, _ = sample(daemon)
                if state != "SUCCESSFUL":
                    raise BenchError(f"{daemon.name}: a trivial job ended {state}")
                done[daemon.name].append(to_done)
                time.sleep(0.2)
    p50 = {name: statistics.median(values) for name, values in done.items()}
    return {
        "samples": samples,
        "to_done_s": {name: summary(values) for name, values in done.items()},
        "warm_over_direct": ratio(p50["warm"], p50["direct"]),
        "cold_over_direct": ratio(p50["cold"], p50["direct"]),
        "warm_over_cold": ratio(p50["warm"], p50["cold"]),
    }


def jobs_per_min(env: Env, jobs: int, cold_jobs: int, until: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for warm in (True, False):
        count = jobs if warm else cold_jobs
        daemon = Flavour(
            env.root / f"{'warm' if warm else 'cold'}-throughput", env.top, warm, until
        )
        log(f"warm: throughput, {daemon.name}, {count} jobs, 3 slots")
        with daemon:
            warm_up(daemon)
            zygotes = _zygotes(daemon)
            before = _children_cpu(zygotes)
            figures = throughput(daemon, count)
            if warm:  # warm crawls are the zygote's children, not the daemon's
                figures["crawl_cpu_s_per_job"] = (_children_cpu(zygotes) - before) / count
            out[daemon.name] = figures
    out["warm_over_cold"] = ratio(out["warm"]["jobs_per_min"], out["cold"]["jobs_per_min"])
    return out


def _zygotes(daemon: Flavour) -> list[psutil.Process]:
    pids = [z.get("pid") for z in daemon.api.get_json("/status.json")["zygotes"]]
    return [psutil.Process(pid) for pid in pids if pid]


def _children_cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.children_user + times.children_system
    return total


def _pss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_full_info().pss
    return total


def idle_memory(env: Env, crawls: int, until: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for warm in (True, False):
        name = "warm" if warm else "cold"
        out[name] = _idle_run(env, warm, crawls, until)
    out["warm_saving"] = 1 - out["warm"]["total_pss_mib"] / out["cold"]["total_pss_mib"]
    return out


def _idle_run(env: Env, warm: bool, crawls: int, until: Path) -> dict[str, Any]:
    with contextlib.suppress(FileNotFoundError):
        until.unlink()
    name = "warm" if warm else "cold"
    daemon = Flavour(env.root / f"{name}-memory", env.top, warm, until, slots=crawls)
    log(f"warm: memory, {name}, {crawls} idle crawls")
    with daemon:
        warm_up(daemon)
        ids = [daemon.schedule_spider("idle") for _ in range(crawls)]
        logs = [daemon.data / "logs" / f"{job_id}.out" for job_id in ids]
        wait_until(
            lambda: all(p.exists() and "IDLE" in p.read_text() for p in logs),
            120,
            f"{crawls} idle crawls to be open",
        )
        time.sleep(2.0)  # let them settle (imports done, first GC)
        me = psutil.Process(daemon.pid)
        crawl_pids = [
            p.pid
            for p in me.children(recursive=True)
            if any(a.startswith("JOB_ID=") for a in _cmdline(p))
        ]
        zygotes = [int(z["pid"]) for z in daemon.api.get_json("/status.json")["zygotes"]]
        if len(crawl_pids) != crawls:
            raise BenchError(f"{name}: {len(crawl_pids)} crawl processes, not {crawls}")
        figures = {
            "crawls": crawls,
            "crawls_pss_mib": _pss(crawl_pids) / 2**20,
            "zygotes_pss_mib": _pss(zygotes) / 2**20,
        }
        figures["total_pss_mib"] = figures["crawls_pss_mib"] + figures["zygotes_pss_mib"]
        until.touch()
        wait_until(lambda: all(daemon.state(j) in DONE for j in ids), 120, "the idle crawls to end")
    return figures


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def run(env: Env, quick: bool = False) -> dict[str, Any]:
    until = env.root / "idle-until"
    log("warm: latency, direct / warm / cold in turns")
    results = {
        "latency": latency(env, 5 if quick else SAMPLES, until),
        "throughput": jobs_per_min(env, 60 if quick else JOBS, 30 if quick else COLD_JOBS, until),
        "memory": idle_memory(env, IDLE_CRAWLS, until),
    }
    print_table(results)
    return results


def print_table(results: dict[str, Any]) -> None:
    lat = results["latency"]
    rows = [
        [
            name,
            lat["to_done_s"][name]["median"],
            lat["to_done_s"][name]["p99"],
            lat.get(f"{name}_over_direct"),
            results["throughput"].get(name, {}).get("jobs_per_min"),
            results["throughput"].get(name, {}).get("crawl_cpu_s_per_job"),
            results["memory"].get(name, {}).get("total_pss_mib"),
        ]
        for name in ("warm", "cold", "direct")
    ]
    print("\n7. Warm starts (trivial spider; memory: 10 idle crawls, zygote included)")
    print(
        table(
            [
                "start",
                "->DONE p50 s",
                "p99 s",
                "/direct",
                "jobs/min 3 slots",
                "CPU s/job",
                "PSS MiB",
            ],
            rows,
        )
    )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    def body() -> None:
        from bench.common import save_results
        from bench.env import bench_env

        with bench_env() as env:
            save_results("warm", run(env, args.quick))

    guard("warm", body)


if __name__ == "__main__":
    main()
