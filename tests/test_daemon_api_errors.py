"""Unknown paths and wrong methods answer in the envelope of the API the path belongs
to: the coin API's under /api/, scrapy-do's everywhere else."""

from __future__ import annotations

import pytest
import requests

from tests.daemon_support import DaemonFactory, DaemonProcess


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon()


def _coin_error(rsp, code: int) -> str:
    assert rsp.status_code == code, rsp.text
    assert rsp.headers["Content-Type"] == "application/json"
    body = rsp.json()
    assert set(body) == {"error", "message"} and body["error"] is True, body
    assert isinstance(body["message"], str) and body["message"]
    return body["message"]


def test_unknown_api_path_is_404_in_the_coin_envelope(daemon: DaemonProcess) -> None:
    message = _coin_error(daemon.get("/api/nope/"), 404)
    assert "/api/nope/" in message
    _coin_error(daemon.get("/api"), 404)


def test_wrong_method_under_api_is_405_in_the_coin_envelope(daemon: DaemonProcess) -> None:
    rsp = requests.delete(daemon.url + "/api/coins/", timeout=30)
    assert "DELETE" in _coin_error(rsp, 405)
    assert "GET" in rsp.headers["Allow"]
    rsp = daemon.get("/api/crypto/start_scraping/")
    assert "GET" in _coin_error(rsp, 405)
    assert rsp.headers["Allow"] == "POST"


def test_outside_api_keeps_the_scrapy_do_envelope(daemon: DaemonProcess) -> None:
    rsp = daemon.get("/nope.json")
    assert rsp.status_code == 404
    body = rsp.json()
    assert body["status"] == "error" and "/nope.json" in body["msg"] and "error" not in body
    rsp = requests.delete(daemon.url + "/status.json", timeout=30)
    assert rsp.status_code == 405
    assert rsp.json()["status"] == "error"


@pytest.mark.parametrize(
    ("path", "coin"),
    [
        ("/api/", True),
        ("/api", True),
        ("/api/nope/deeper", True),
        ("/apis/", False),
        ("/nope.json", False),
        ("/x/api/", False),
    ],
)
def test_each_app_answers_its_own_unknown_paths(
    daemon: DaemonProcess, path: str, coin: bool
) -> None:
    """The app mounted under /api/ answers every path under that prefix, the root app
    every other path; each in its own envelope."""
    rsp = daemon.get(path)
    if coin:
        _coin_error(rsp, 404)
    else:
        assert rsp.status_code == 404
        body = rsp.json()
        assert body["status"] == "error" and "error" not in body, body
