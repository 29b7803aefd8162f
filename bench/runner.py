"""Run a list of benchmarks in one environment, keep going past a benchmark that cannot
run (its error is recorded and printed), and write everything to results.json."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import BenchError, log, save_results
from bench.env import Env, arguments, bench_env
from bench.summary import print_targets


def run_all(
    steps: list[tuple[str, Callable[[Env], dict[str, Any]]]],
    prefix: str = "",
    quick: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """`prefix` keeps a peers run's figures apart from `make bench`'s in results.json."""
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    started = time.perf_counter()
    with bench_env() as env:
        for name, step in steps:
            t0 = time.perf_counter()
            try:
                results[name] = step(env)
            except BenchError as exc:
                errors[name] = str(exc)
                log(f"{name}: cannot run: {exc}")
                save_results(prefix + name, {"error": str(exc)})
                continue
            results[name]["bench_seconds"] = round(time.perf_counter() - t0, 1)
            results[name]["quick"] = quick
            save_results(prefix + name, results[name])
    log(f"all done in {time.perf_counter() - started:.0f} s")
    print_targets(results, errors)
    return results, errors


def guard(name: str, body: Callable[[], None]) -> None:
    """Run one benchmark module alone; a BenchError ends it with a clear message, exit 2."""
    try:
        body()
    except BenchError as exc:
        print(f"bench {name}: cannot run: {exc}", file=sys.stderr)
        sys.exit(2)


def main_for_daemons(
    name: str, doc: str | None, run: Callable[[Env, list[str], bool], dict[str, Any]]
) -> None:
    """`python -m bench.<name> [--daemon D ...] [--quick]`: one daemon benchmark alone."""
    args = arguments(doc).parse_args()

    def body() -> None:
        with bench_env() as env:
            data = run(env, args.daemon or ["ours"], args.quick)
        save_results(name, data)

    guard(name, body)
