"""`python -m daemon` / `coinspiders-daemon`: parse flags, load the config, run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.config import ConfigError, load_config
from daemon.job_store import StoreError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="coinspiders-daemon",
        description="Crawl daemon serving scrapy-do's REST API for Scrapy projects. "
        "`coinspiders-daemon hash-password` reads a password from stdin and prints the "
        "line for auth.password_hash. `coinspiders-daemon worker --help`: run crawls for a "
        "daemon on another machine (executor: celery).",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="config.yaml to read (default: ./config.yaml when it exists, else built-ins)",
    )
    parser.add_argument("--host", default=None, help="listen address (overrides the file)")
    parser.add_argument("--port", type=int, default=None, help="listen port; 0 = any free")
    parser.add_argument(
        "--scrapyd-port",
        type=int,
        default=None,
        help="serve scrapyd's API at the root of this port too; 0 = any free",
    )
    parser.add_argument("--data-dir", default=None, help="data folder (overrides the file)")
    parser.add_argument(
        "--port-file", default=None, help="write the bound port to this file once listening"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hash-password"]:
        from daemon.passwords import hash_password_main

        return hash_password_main()
    if argv[:1] == ["worker"]:
        from daemon.cluster.worker import main as worker_main

        return worker_main(argv[1:])
    args = parse_args(argv)
    path = args.config
    if path is None and Path("config.yaml").is_file():
        path = "config.yaml"
    try:
        config = load_config(
            path,
            {
                "host": args.host,
                "port": args.port,
                "data_dir": args.data_dir,
                "scrapyd_port": args.scrapyd_port,
            },
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from daemon.app import run
    from daemon.projects import ProjectError

    try:
        return run(config, Path(args.port_file) if args.port_file else None)
    except (StoreError, ProjectError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
