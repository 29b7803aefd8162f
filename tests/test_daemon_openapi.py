"""The OpenAPI description (daemon/openapi.json) against the live daemon, with schemathesis.

Every operation of the document is fuzzed over real HTTP (valid and invalid inputs, a
bounded number of examples each); a server error, or a status code, content type or
JSON body that the document does not describe, fails the test. The daemon under test
has one project, `coinspiders`, whose only spider `coin` ends at once: a generated
request that schedules a job (the documented examples do) starts a real crawl that costs
a Scrapy start and nothing more, one at a time (one slot).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.daemon_support import ROOT, DaemonProcess, write_scrapy_project

SPEC_PATH = ROOT / "daemon" / "openapi.json"
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "25"))

INSTANT_SPIDER = """
import scrapy


class Coin(scrapy.Spider):
    name = "coin"

    async def start(self):
        return
        yield
"""


def write_instant_project(folder: Path, name: str = "coinspiders") -> Path:
    """A Scrapy project `name` whose only spider, `coin`, ends as soon as it starts."""
    return write_scrapy_project(folder, name, {"instant.py": INSTANT_SPIDER}, "WARNING")


def write_instant_config(path: Path, data_dir: Path, project: Path, **extra: object) -> Path:
    lines = [
        "host: 127.0.0.1",
        "port: 0",
        f"data_dir: {json.dumps(str(data_dir))}",
        f"slots: {extra.pop('slots', 1)}",
        "cancel_grace: 1",
        f"upload_max_bytes: {extra.pop('upload_max_bytes', 1_000_000)}",
        "list_spiders_timeout: 30",
        *(f"{key}: {json.dumps(value)}" for key, value in extra.items()),
        "projects:",
        "  coinspiders:",
        f"    path: {json.dumps(str(project))}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("openapi")
    project = write_instant_project(work / "project")
    config = write_instant_config(work / "config.yaml", work / "data", project, max_runtime=20)
    proc = DaemonProcess(config, work).start()
    yield proc
    proc.stop()


def test_the_committed_document_is_what_the_generator_writes_and_is_served(
    daemon: DaemonProcess,
) -> None:
    from tools.gen_openapi import render

    text = SPEC_PATH.read_text(encoding="utf-8")
    assert text == render(), "daemon/openapi.json is stale: run python tools/gen_openapi.py"
    rsp = daemon.get("/openapi.json")
    assert rsp.status_code == 200 and rsp.headers["Content-Type"] == "application/json"
    assert rsp.json() == json.loads(text)
    assert rsp.json()["openapi"].startswith("3.")


def test_every_route_is_described(tmp_path: Path) -> None:
    """The document names exactly the daemon's routes (its Klein URL map), no more, no less."""
    from twisted.internet import reactor

    from daemon.app import Daemon
    from daemon.config import load_config

    project = write_instant_project(tmp_path / "project")
    config = load_config(write_instant_config(tmp_path / "c.yaml", tmp_path / "data", project), {})
    routes = set()
    for prefix, rule, methods in Daemon(config, reactor).apps.routes():
        path = prefix + rule
        for converter in ("path", "string"):
            path = re.sub(rf"<{converter}:(\w+)>", r"{\1}", path)
        for method in methods - {"HEAD", "OPTIONS"}:
            routes.add((method, path.replace("{key}", "{coin}")))
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert described == routes


schema = schemathesis.openapi.from_path(SPEC_PATH)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("OPENAPI_RANDOM") is None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_live_daemon_matches_its_openapi_description(case, daemon: DaemonProcess) -> None:
    session = _session()
    rsp = case.call_and_validate(base_url=daemon.url, session=session, checks=CHECKS, timeout=30)
    SEEN[f"{case.method} {case.path}"][rsp.status_code] += 1


SEEN: dict[str, Counter[int]] = defaultdict(Counter)


def test_fuzzing_reached_the_valid_paths_and_left_the_daemon_healthy(
    daemon: DaemonProcess,
) -> None:
    """Runs after the fuzzing (same module, defined later): the documented examples got
    real answers, jobs ran, and the daemon still serves."""
    if not SEEN:
        pytest.skip("the schemathesis test was not run")
    print({op: dict(codes) for op, codes in sorted(SEEN.items())})
    assert SEEN["POST /schedule-job.json"][200] >= 1
    assert SEEN["POST /api/crypto/start_scraping/"][200] >= 1
    assert SEEN["GET /list-jobs.json"][200] >= 1
    status = daemon.get("/status.json").json()
    assert status["status"] == "ok" and status["jobs-run"] >= 1
    log = daemon.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]


_SESSIONS: list[requests.Session] = []


def _session() -> requests.Session:
    if not _SESSIONS:
        _SESSIONS.append(requests.Session())
    return _SESSIONS[0]
