"""`make bench`: every benchmark against our daemon and spiders, one table of targets at the
end, figures in bench/results.json. Takes about 14 minutes on 2 cores (6 of them warm
starts); `--quick` runs small samples in about 5 (a smoke run, not figures to quote)."""

from __future__ import annotations

import argparse
import sys

from bench import (
    api_load,
    cluster,
    crawl,
    dispatch,
    memory,
    schedule_job,
    schedules,
    throughput,
    ui,
    warm,
)
from bench.runner import run_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples, for a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=[
            "dispatch",
            "schedule_job",
            "throughput",
            "api_load",
            "memory",
            "schedules",
            "crawl",
            "ui",
            "warm",
            "cluster",
        ],
        help="run only these benchmarks (repeatable)",
    )
    args = parser.parse_args()
    q = args.quick
    steps = [
        ("dispatch", lambda env: dispatch.run(env, ["ours"], q)),
        ("schedule_job", lambda env: schedule_job.run(env, ["ours"], q)),
        ("throughput", lambda env: throughput.run(env, ["ours"], q)),
        ("api_load", lambda env: api_load.run(env, ["ours"], q)),
        ("memory", lambda env: memory.run(env, ["ours"], q)),
        ("schedules", lambda env: schedules.run(env, ["ours"], q)),
        ("crawl", lambda env: crawl.run(q)),
        ("ui", lambda env: ui.run(env, q)),
        ("warm", lambda env: warm.run(env, q)),
        ("cluster", lambda env: cluster.run(env, q)),
    ]
    if args.only:
        steps = [s for s in steps if s[0] in args.only]
    _, errors = run_all(steps, quick=q)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
