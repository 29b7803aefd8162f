"""Benchmark 4: daemon memory. RSS at start (empty store), with the store filled, after a
warm-up of 2,000 requests and after 50,000 more, with auth off and on.

Growth is measured from after the warm-up (first requests load code and caches once) to
after the 50,000; a leak of a few hundred bytes per request would show as > 10 MiB.
The 50,000 requests cycle through status.json, list-jobs.json?id= and a list-jobs page
(10 : 10 : 1), two keep-alive connections from another process. Peers are measured with
1,000 jobs stored (their list endpoints return the whole store) and auth off.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import BenchError, load, log, table
from bench.env import Env
from bench.runner import main_for_daemons

OURS_STORED = 100_000
PEER_STORED = 1_000
REQUESTS = 50_000
WARM_UP = 2_000


def mixed_paths(endpoints: dict[str, list[str]]) -> list[str]:
    paths = []
    by_id = endpoints["list-jobs by id"]
    for n, path in enumerate(by_id):
        paths += [endpoints["status.json"][0], path]
        if n % 10 == 9:
            paths.append(endpoints["list-jobs page"][0])
    return paths


def settle_rss(daemon: Any, seconds: float = 2.0) -> float:
    time.sleep(seconds)
    return daemon.rss()


def measure(env: Env, kind: str, auth: bool, stored: int, requests: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"stored": stored, "auth": auth}
    with env.daemon(kind, auth=auth) as daemon:
        figures["start_mib"] = settle_rss(daemon)
    daemon = env.daemon(kind, auth=auth)
    ids = daemon.prefill(stored)
    with daemon:
        figures["stored_mib"] = settle_rss(daemon)
        paths = mixed_paths(daemon.endpoints(ids))
        warm = load(daemon.port, paths, 60, WARM_UP, 2, daemon.auth, env.root)
        figures["warm_mib"] = settle_rss(daemon, 1.0)
        run = load(daemon.port, paths, 150, requests, 2, daemon.auth, env.root)
        figures["after_mib"] = settle_rss(daemon, 1.0)
        if warm["errors"] or run["errors"]:
            raise BenchError(f"{daemon.name}: errors under load: {run['first_error']}")
        figures["requests"] = run["requests"]
        figures["rps"] = run["rps"]
        figures["growth_mib"] = figures["after_mib"] - figures["warm_mib"]
    return figures


def run(env: Env, kinds: list[str], quick: bool = False) -> dict[str, Any]:
    requests = 5_000 if quick else REQUESTS
    results: dict[str, Any] = {}
    for kind in kinds:
        ours = kind == "ours"
        for auth in (False, True) if ours else (False,):
            stored = (10_000 if quick else OURS_STORED) if ours else PEER_STORED
            log(
                f"memory: {kind}, auth {'on' if auth else 'off'}, {stored:,} jobs, {requests:,} req"
            )
            figures = measure(env, kind, auth, stored, requests)
            name = "coinspiders" if ours else kind
            results.setdefault(name, {})["auth on" if auth else "auth off"] = figures
    print_table(results)
    return {"daemons": results}


def print_table(results: dict[str, Any]) -> None:
    rows = [
        [
            name,
            mode,
            r["start_mib"],
            r["stored"],
            r["stored_mib"],
            r["warm_mib"],
            r["after_mib"],
            r["growth_mib"],
            r["requests"],
            r["rps"],
        ]
        for name, modes in results.items()
        for mode, r in modes.items()
    ]
    print("\n4. Daemon memory (RSS, MiB)")
    print(
        table(
            [
                "daemon",
                "auth",
                "start",
                "jobs stored",
                "stored",
                "after warm-up",
                "after load",
                "growth",
                "requests",
                "req/s",
            ],
            rows,
        )
    )


def main() -> None:
    main_for_daemons("memory", __doc__, run)


if __name__ == "__main__":
    main()
