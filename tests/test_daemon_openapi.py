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
from pathlib import Path
from typing import Any

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

from tests.daemon_support import (
    ROOT,
    DaemonFactory,
    DaemonProcess,
    write_config,
    write_scrapy_project,
)
from tests.waiting import wait_until

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


def instant_projects(work: Path) -> dict[str, dict[str, str]]:
    return {"coinspiders": {"path": str(write_instant_project(work / "project"))}}


# One slot: the fuzzer's crawls run one at a time.
INSTANT_CONFIG = {"slots": 1, "cancel_grace": 1, "upload_max_bytes": 1_000_000}


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon(instant_projects, max_runtime=20, **INSTANT_CONFIG)


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

    path = write_config(
        tmp_path / "c.yaml", tmp_path / "data", instant_projects(tmp_path), **INSTANT_CONFIG
    )
    config = load_config(path, {})
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
    case.call_and_validate(base_url=daemon.url, session=_session(), checks=CHECKS, timeout=30)
    assert_log_clean(daemon)


def assert_log_clean(daemon: DaemonProcess) -> None:
    log = daemon.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]


def example_case(method: str, path: str) -> Any:
    """The request the document's own examples make (query parameter and body
    examples), as a schemathesis case of that operation."""
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    operation = spec["paths"][path][method.lower()]
    parts: dict[str, Any] = {}
    query = {p["name"]: p["example"] for p in operation.get("parameters", []) if "example" in p}
    if query:
        parts["query"] = query
    for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
        if "example" in content:
            parts.update(body=content["example"], media_type=media_type)
            break
    return schema[path][method].Case(**parts)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/schedule-job.json"), ("POST", "/api/crypto/start_scraping/"),
     ("GET", "/list-jobs.json")],
)  # fmt: skip
def test_the_documented_examples_get_real_answers(
    daemon: DaemonProcess, method: str, path: str
) -> None:
    """What the fuzzer starts from is accepted by the daemon (a refused example would
    leave the fuzzing at the door), and a scheduled example is queued for a real crawl."""
    case = example_case(method, path)
    rsp = case.call_and_validate(base_url=daemon.url, session=_session(), checks=CHECKS, timeout=30)
    assert rsp.status_code == 200, rsp.text
    job_id = rsp.json().get("identifier") or rsp.json().get("job_id")
    if job_id:
        assert daemon.job(job_id)["status"] in ("PENDING", "RUNNING", "SUCCESSFUL")
        # Crawls run one at a time (the fuzzer's too): one of them has started by now.
        wait_until(lambda: daemon.get("/status.json").json()["jobs-run"], 60, "a crawl to run")
    assert_log_clean(daemon)


_SESSIONS: list[requests.Session] = []


def _session() -> requests.Session:
    if not _SESSIONS:
        _SESSIONS.append(requests.Session())
    return _SESSIONS[0]
