"""A CoinMarketCap look-alike on 127.0.0.1 for tests and benchmarks.

In a test process::

    from tests.cmc_server import CMCServer
    with CMCServer(coins=500) as cmc:
        cmc.add_fault("rate_limit", "/v1/cryptocurrency/listings/latest", times=1)
        ...  # point spiders at cmc.settings()

As its own process (benchmarks, daemon tests)::

    python -m tests.cmc_server --port 0 --coins 5000
    # prints its URL on the first line of stdout, serves until SIGTERM/SIGINT

A test in another process drives it through `CMCControl(url)` (the JSON control
endpoint under `/__control__/`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.cmcfake.api import ERRORS
from tests.cmcfake.coins import Catalogue, Coin
from tests.cmcfake.faults import FAULT_KINDS
from tests.cmcfake.server import API_KEY_HEADER, CONTROL_PREFIX, DEFAULT_API_KEY, CMCServer

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_API_KEY",
    "ERRORS",
    "FAULT_KINDS",
    "CMCControl",
    "CMCServer",
    "Catalogue",
    "Coin",
    "ServerProcess",
    "main",
    "spawn_server",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


class CMCControl:
    """Drive a server running in another process through its control endpoint."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, action: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + CONTROL_PREFIX + action,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("error", "")
            raise ValueError(f"control {method} {action}: HTTP {error.code} {detail}") from None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def add_fault(
        self, kind: str, path: str = "", times: int | None = 1, **options: Any
    ) -> dict[str, Any]:
        spec = {"kind": kind, "path": path, "times": times, **options}
        return self._call("POST", "faults", spec)["faults"][0]

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def requests(self, path_prefix: str = "") -> list[dict[str, Any]]:
        action = "requests" + (f"?path={path_prefix}" if path_prefix else "")
        return self._call("GET", action)["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def set_api_key(self, api_key: str) -> None:
        self._call("POST", "api-key", {"api_key": api_key})

    def hide_from_info(self, *coin_ids: int) -> None:
        self._call("POST", "info-hidden", {"ids": list(coin_ids)})

    def coins(self, everything: bool = False) -> list[dict[str, Any]]:
        return self._call("GET", "coins" + ("?all=1" if everything else ""))["coins"]

    def reset(self) -> None:
        self._call("POST", "reset")


class ServerProcess:
    """A server in a child process; `url` and `control` once started."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.control = CMCControl(url)

    @property
    def logo_url(self) -> str:
        return self.url + "/static/img/coins/64x64/{id}.png"

    def settings(self, api_key: str = DEFAULT_API_KEY) -> dict[str, str]:
        return {
            "CMC_SITE_URL": self.url,
            "CMC_API_URL": self.url,
            "CMC_LOGO_URL": self.logo_url,
            "CMC_API_KEY": api_key,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_server(
    coins: int = 5000,
    seed: int = 1,
    api_key: str = DEFAULT_API_KEY,
    python: str = sys.executable,
    timeout: float = 30,
) -> ServerProcess:
    """Start `python -m tests.cmc_server` and wait for the URL it prints."""
    command = [python, "-m", "tests.cmc_server", "--port", "0", "--coins", str(coins)]
    command += ["--seed", str(seed), "--api-key", api_key, "--parent-pid", str(os.getpid())]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert process.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].startswith("http://"):
        process.kill()
        process.wait()
        raise RuntimeError(f"the CMC test server did not start: {line!r}")
    return ServerProcess(process, line[0].strip())


def _exit_with_parent(parent_pid: int, server: CMCServer) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1)
    server._httpd.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cmc_server",
        description="Serve a CoinMarketCap look-alike on 127.0.0.1; prints its URL.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--coins", type=int, default=5000, help="ranked coins in listings")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated coins")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the one valid Pro API key")
    parser.add_argument(
        "--max-log", type=int, default=50_000, help="requests kept in the request log"
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=0,
        help="exit when this process is gone (so a crashed benchmark leaves no server)",
    )
    args = parser.parse_args(argv)
    if args.coins < 1:
        parser.error("--coins must be at least 1")
    server = CMCServer(
        coins=args.coins,
        seed=args.seed,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        max_log=args.max_log,
    )
    server.pages.template  # noqa: B018 - ready before the URL is announced

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server._httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.parent_pid:
        threading.Thread(
            target=_exit_with_parent, args=(args.parent_pid, server), daemon=True
        ).start()
    print(server.url, flush=True)
    print(
        f"cmc test server: {server.catalogue.count} ranked coins, API key header "
        f"{API_KEY_HEADER}, control at {server.url}{CONTROL_PREFIX}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    server._httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
