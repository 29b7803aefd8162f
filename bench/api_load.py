"""Benchmark 3: the API under load. status.json, a page of 100 jobs from list-jobs.json and
list-jobs.json?id= with 100 / 1,000 / 10,000 / 100,000 finished jobs in the store.

The load generator runs in another process on 127.0.0.1, one keep-alive connection, each
endpoint for a bounded time. Stores are filled before the daemon starts (see bench.fill and
bench.adapters). scrapy-do and scrapyd return every job on their list endpoints (no paging),
so they are measured at 100 and 1,000 jobs only; their "page" is that whole list.
scrapyd's by-id request is status.json?job=, its status request daemonstatus.json.
Ours is also asked scrapy-do's request as is ("list-jobs 1,000": no limit given, so its
default page of 1,000), which returns the same jobs as the peers' lists at 1,000.
"""

from __future__ import annotations

from typing import Any

from bench.common import load, log, ratio, table
from bench.env import Env
from bench.runner import main_for_daemons

OURS_SIZES = (100, 1_000, 10_000, 100_000)
PEER_SIZES = (100, 1_000)
SECONDS = 3.0


def measure(env: Env, kind: str, size: int, seconds: float) -> dict[str, Any]:
    daemon = env.daemon(kind)
    ids = daemon.prefill(size)
    figures: dict[str, Any] = {}
    with daemon:
        endpoints = daemon.endpoints(ids)
        for paths in endpoints.values():
            load(daemon.port, paths, 1.0, 50, auth=daemon.auth, work=env.root)  # warm-up
        for name, paths in endpoints.items():
            figures[name] = load(daemon.port, paths, seconds, auth=daemon.auth, work=env.root)
        figures["rss_mib"] = daemon.rss()
    return figures


def run(env: Env, kinds: list[str], quick: bool = False) -> dict[str, Any]:
    seconds = 1.0 if quick else SECONDS
    results: dict[str, Any] = {}
    for kind in kinds:
        sizes = OURS_SIZES if kind == "ours" else PEER_SIZES
        if quick:
            sizes = sizes[:2]
        for size in sizes:
            log(f"api load: {kind}, {size:,} jobs stored, {seconds:.0f} s per endpoint")
            figures = measure(env, kind, size, seconds)
            name = "coinspiders" if kind == "ours" else kind
            results.setdefault(name, {})[str(size)] = figures
    print_table(results)
    return {"seconds_per_endpoint": seconds, "connections": 1, "daemons": results}


def print_table(results: dict[str, Any]) -> None:
    ours = results.get("coinspiders", {})
    rows = []
    for name, by_size in results.items():
        for size, endpoints in by_size.items():
            for endpoint, r in endpoints.items():
                if endpoint == "rss_mib":
                    continue
                mine = ours.get(size, {}).get(endpoint, {}).get("rps")
                same_jobs = None
                if name != "coinspiders" and endpoint == "list-jobs page":
                    endpoint = "list-jobs (all)"
                    same_jobs = ratio(
                        ours.get(size, {}).get("list-jobs 1,000", {}).get("rps"), r["rps"]
                    )
                rows.append(
                    [
                        name,
                        int(size),
                        endpoint,
                        r["rps"],
                        r["p50_ms"],
                        r["p99_ms"],
                        r["requests"],
                        r["errors"],
                        ratio(mine, r["rps"]) if name != "coinspiders" else None,
                        same_jobs,
                    ]
                )
    print("\n3. API under load (1 keep-alive connection, another process)")
    print("   ours/this: ours' same endpoint (for a peer's whole list: ours' page of 100);")
    print("   ours 1,000/this: ours' list-jobs without a limit (<= 1,000 jobs) vs the whole list")
    print(
        table(
            [
                "daemon",
                "jobs",
                "endpoint",
                "req/s",
                "p50 ms",
                "p99 ms",
                "n",
                "err",
                "ours/this",
                "ours 1,000/this",
            ],
            rows,
        )
    )


def main() -> None:
    main_for_daemons("api_load", __doc__, run)


if __name__ == "__main__":
    main()
