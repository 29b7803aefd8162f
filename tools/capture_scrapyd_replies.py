"""Record scrapyd 1.6.0's replies to a table of bad and edge-case requests, as the
fixture tests/fixtures/scrapyd-1.6.0-replies.json that our scrapyd API is checked against.

Usage (scrapyd installed in a throwaway venv outside the repo):

    python3 -m venv /tmp/scrapyd-venv && /tmp/scrapyd-venv/bin/pip install scrapyd==1.6.0
    .venv/bin/python tools/capture_scrapyd_replies.py /tmp/scrapyd-venv/bin/scrapyd

Replies are recorded with node_name set to "NODE" (tests put their own in its place).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scrapyd_support import REQUESTS, make_egg, write_egg_project  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "scrapyd-1.6.0-replies.json"
HEADERS = (
    "Content-Type",
    "Allow",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(scrapyd: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        (work / "scrapyd.conf").write_text(
            "[scrapyd]\nbind_address = 127.0.0.1\n"
            f"http_port = {port}\nnode_name = NODE\n"
            f"eggs_dir = {work}/eggs\nlogs_dir = {work}/logs\ndbs_dir = {work}/dbs\n"
        )
        proc = subprocess.Popen(
            [scrapyd], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    requests.get(url + "/daemonstatus.json", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            egg = make_egg(write_egg_project(work / "src", "toy"), "toy")
            rsp = requests.post(
                url + "/addversion.json",
                data={"project": "toy", "version": "1.0"},
                files={"egg": ("toy.egg", egg)},
                timeout=60,
            )
            assert rsp.json()["status"] == "ok", rsp.text
            out = []
            for method, path, data in REQUESTS:
                where = "params" if method == "GET" else "data"
                rsp = requests.request(method, url + path, timeout=60, **{where: data or None})
                out.append(
                    {
                        "method": method,
                        "path": path,
                        "data": data,
                        "status": rsp.status_code,
                        "headers": {h: rsp.headers[h] for h in HEADERS if h in rsp.headers},
                        "body": rsp.text,
                    }
                )
        finally:
            proc.terminate()
            proc.wait(10)
    FIXTURE.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} replies to {FIXTURE}")


if __name__ == "__main__":
    main(sys.argv[1])
