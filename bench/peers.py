"""`make bench-peers`: benchmarks 1-4 on our daemon, scrapy-do 0.5.0 and scrapyd 1.6.0 in one
run, with the ratios. The peers are installed from the package index into throwaway
virtualenvs outside the repo (see bench.venvs) the first time. Not part of `make test`/CI.

It takes about 30 minutes on 2 cores, most of it scrapyd and scrapy-do working through
2 x 150 jobs each at their poll intervals; `--quick` runs small samples (a smoke run).
"""

from __future__ import annotations

import argparse
import sys

from bench import api_load, dispatch, memory, throughput, venvs
from bench.common import log, save_results
from bench.runner import run_all

KINDS = ["ours", "scrapy-do", "scrapyd"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples, for a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=["dispatch", "throughput", "api_load", "memory"],
        help="run only these benchmarks (repeatable)",
    )
    args = parser.parse_args()
    q = args.quick
    peer_versions = {}
    for kind in KINDS[1:]:
        venv = venvs.ensure(kind)
        peer_versions[kind] = venvs.versions(venv)
        log(f"{kind}: {venv} {peer_versions[kind]}")
    save_results("peers/versions", peer_versions)
    steps = [
        ("dispatch", lambda env: dispatch.run(env, KINDS, q)),
        ("throughput", lambda env: throughput.run(env, KINDS, q)),
        ("api_load", lambda env: api_load.run(env, KINDS, q)),
        ("memory", lambda env: memory.run(env, KINDS, q)),
    ]
    if args.only:
        steps = [s for s in steps if s[0] in args.only]
    _, errors = run_all(steps, prefix="peers/", quick=q)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
