"""The HTTP layer refuses early and cheaply: credentials are checked from the headers
before any body byte is read, OPTIONS * needs them too, slow or oversized headers are
answered (408/414/431) instead of holding or dropping the connection, and a Range
header can no longer turn a log into an answer many times its size.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPDigestAuth

from daemon.api.ranges import MAX_RANGES, RangeRefused, plan_ranges, range_header
from tests.daemon_support import DaemonProcess, write_config, write_toy_project

PASSWORD = "trust-pw-ü"
HEADER_TIMEOUT = 1
AUTH = ("admin", PASSWORD)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("trust-http")
    toy = write_toy_project(work / "toy")
    config = write_config(
        work / "config.yaml",
        work / "data",
        toy,
        upload_max_bytes=20_000_000,
        header_timeout=HEADER_TIMEOUT,
    )
    with config.open("a") as fh:
        fh.write("auth:\n  username: admin\n")
    proc = DaemonProcess(config, work, env={"COINSPIDERS_PASSWORD": PASSWORD}).start()
    yield proc
    proc.stop()


def basic_header() -> str:
    return "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def read_reply(sock: socket.socket, timeout: float = 20.0) -> bytes:
    """Bytes until the end of the first reply (headers + Content-Length body) or EOF."""
    sock.settimeout(timeout)
    data = b""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) >= length:
                return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def closed_by_peer(sock: socket.socket, timeout: float = 20.0) -> bool:
    """Whether the daemon closes the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def multipart_body(fields: int) -> tuple[bytes, str]:
    boundary = "trustboundary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\nvalue-0123456789'
        "abcdefghijklmnopqrstuvwxyz\r\n"
    ).encode()
    body = part * fields + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# -- 3: credentials before the body ---------------------------------------------------


def test_unauthorised_big_post_gets_401_before_its_body_is_sent(daemon: DaemonProcess) -> None:
    """Headers of an 8 MB multipart upload (about 150,000 fields) and only its first
    megabyte: the 401 comes back at once (so nothing of the body was parsed, or even
    waited for), an authorised status.json is answered meanwhile, and once the rest of
    the body has been sent the daemon closes the connection."""
    body, ctype = multipart_body(150_000)
    assert len(body) > 8_000_000
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        sock.sendall(
            (
                "POST /push-project.json HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        sock.sendall(body[: 1 << 20])
        reply = read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 401 "), reply[:300]
        head, _, payload = reply.partition(b"\r\n\r\n")
        assert json.loads(payload) == {"status": "error", "msg": "Authentication required"}
        assert b"WWW-Authenticate: Digest " in head and b'WWW-Authenticate: Basic realm="' in head
        assert b"connection: close" in head.lower()
        # The daemon serves others while this body is half sent.
        rsp = requests.get(daemon.url + "/status.json", auth=AUTH, timeout=10)
        assert rsp.status_code == 200 and rsp.json()["status"] == "ok"
        sock.sendall(body[1 << 20 :])
        assert closed_by_peer(sock)
    # The same upload with the password still reaches the route (and is refused there
    # for what it is, not for a missing password).
    rsp = requests.post(
        daemon.url + "/push-project.json",
        data=body[:100_000],
        headers={"Content-Type": ctype},
        auth=AUTH,
        timeout=30,
    )
    assert rsp.status_code == 400, rsp.text
    # Digest credentials are checked from the request line and headers alone.
    rsp = requests.post(
        daemon.url + "/schedule-job.json?x=1",
        data={"project": "toy", "spider": "nope", "when": "now"},
        auth=HTTPDigestAuth("admin", PASSWORD),
        timeout=30,
    )
    assert rsp.status_code == 400 and "Unknown spider" in rsp.json()["msg"], rsp.text


def test_unauthorised_chunked_body_is_dropped_unread_and_cut_off_past_the_cap(
    daemon: DaemonProcess,
) -> None:
    """A chunked body without credentials: 401 from the headers; a client that keeps
    streaming past the upload cap is disconnected."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        sock.sendall(
            b"POST /schedule-job.json HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        )
        reply = read_reply(sock)
        # No "100 Continue" for a body that will not be read: the 401 is the answer.
        assert reply.startswith(b"HTTP/1.1 401 "), reply[:300]
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"a=" + b"b" * ((1 << 20) - 2))
        cut = False
        try:
            for _ in range(40):  # 40 MB against the 20 MB cap
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            cut = True
        assert cut or closed_by_peer(sock)
    assert "Traceback" not in daemon.log()


# -- 4: OPTIONS *, header timeout, 414/431 ----------------------------------------------


def raw_exchange(daemon: DaemonProcess, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        sock.sendall(data)
        return read_reply(sock)


def test_options_star_needs_the_password(daemon: DaemonProcess) -> None:
    reply = raw_exchange(daemon, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 401 "), reply[:300]
    assert b'"Authentication required"' in reply
    authorised = f"OPTIONS * HTTP/1.1\r\nHost: x\r\nAuthorization: {basic_header()}\r\n\r\n"
    reply = raw_exchange(daemon, authorised.encode())
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]


def test_slow_headers_are_timed_out(daemon: DaemonProcess) -> None:
    """Clients sending their headers a byte at a time, each byte well within the idle
    timeout, are answered 408 and disconnected once the header timeout has passed;
    a normal request on another connection is served meanwhile, and a kept-alive
    connection idle between requests is not cut (the clock runs from a request's first
    byte)."""
    results: list[bytes] = []
    session = requests.Session()
    session.auth = AUTH
    assert session.get(daemon.url + "/status.json", timeout=10).status_code == 200

    def slow_client() -> None:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
            line = b"GET /status.json HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
            received = b""
            try:
                for byte in line:
                    sock.sendall(bytes([byte]))
                    sock.settimeout(0.2)
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        continue
                    received += data
                    if not data:
                        break
                    received += read_reply(sock, 5)
                    break
            except (BrokenPipeError, ConnectionResetError):
                pass
            results.append(received)

    threads = [threading.Thread(target=slow_client) for _ in range(5)]
    for thread in threads:
        thread.start()
    rsp = requests.get(daemon.url + "/status.json", auth=AUTH, timeout=10)
    assert rsp.status_code == 200
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert len(results) == 5
    for received in results:
        assert received.startswith(b"HTTP/1.1 408 "), received[:300]
        assert b"did not arrive within" in received
    assert session.get(daemon.url + "/status.json", timeout=10).status_code == 200


def test_oversized_request_line_is_414(daemon: DaemonProcess) -> None:
    path = "/status.json?x=" + "a" * 20_000
    reply = raw_exchange(daemon, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 414 "), reply[:300]
    body = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert body["status"] == "error" and "request line" in body["msg"]


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * 20_000 + b"\r\n",  # one header line over the line limit
        b"".join(b"X-H%d: %s\r\n" % (n, b"a" * 1000) for n in range(20)),  # total size
        b"".join(b"X-N%d: 1\r\n" % n for n in range(600)),  # too many fields
    ],
    ids=["long-line", "total-size", "count"],
)
def test_oversized_headers_are_431(daemon: DaemonProcess, headers: bytes) -> None:
    reply = raw_exchange(daemon, b"GET /status.json HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:300]
    body = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert body["status"] == "error" and "header" in body["msg"]


# -- 4: get-log Range -------------------------------------------------------------------


def test_plan_ranges_merges_and_bounds() -> None:
    size = 1000
    assert plan_ranges(b"bytes=" + b",".join([b"0-"] * 20), size) == [(0, 1000)]
    assert plan_ranges(b"bytes=0-9,10-19,30-39,-5", size) == [(0, 20), (30, 40), (995, 1000)]
    assert plan_ranges(b"bytes=500-,0-99999999999999999999999", 10) == [(0, 10)]
    assert plan_ranges(b"bytes=-2000", 10) == [(0, 10)]
    assert plan_ranges(b"bytes=5-2", size) is None  # malformed: serve the whole log
    assert plan_ranges(b"items=0-1", size) is None
    assert plan_ranges(b"bytes=0-1,x", size) is None
    assert range_header([(0, 20), (30, 40)]) == b"bytes=0-19,30-39"
    with pytest.raises(RangeRefused):
        plan_ranges(b"bytes=2000-", size)
    separate = b"bytes=" + b",".join(b"%d-%d" % (n * 10, n * 10) for n in range(MAX_RANGES + 1))
    with pytest.raises(RangeRefused):
        plan_ranges(separate, size)
    assert len(plan_ranges(separate.rsplit(b",", 1)[0], size) or []) == MAX_RANGES


def test_get_log_range_answers_are_bounded(daemon: DaemonProcess) -> None:
    session = requests.Session()
    session.auth = AUTH
    rsp = session.post(
        daemon.url + "/schedule-job.json",
        data={"project": "toy", "spider": "items", "when": "now"},
        timeout=10,
    )
    job_id = rsp.json()["identifier"]
    for _ in range(600):
        job = session.get(daemon.url + f"/list-jobs.json?id={job_id}").json()["jobs"][0]
        if job["status"] not in ("PENDING", "RUNNING"):
            break
        time.sleep(0.05)
    log = Path(daemon.workdir) / "data" / "logs" / f"{job_id}.out"
    with log.open("ab") as fh:  # a big log, as a long crawl leaves
        fh.write(b"0123456789abcdef\n" * (4 << 20 >> 4))
    size = log.stat().st_size
    url = daemon.url + f"/get-log/data/{job_id}.out"

    rsp = session.get(url, headers={"Range": "bytes=" + ",".join(["0-"] * 20)}, timeout=60)
    assert rsp.status_code == 206, rsp.text[:200]
    assert len(rsp.content) == size  # one merged range, not twenty copies
    assert rsp.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"

    rsp = session.get(url, headers={"Range": "bytes=0-99,50-199,1000-1099"}, timeout=60)
    assert rsp.status_code == 206
    assert rsp.headers["Content-Type"].startswith("multipart/byteranges")
    assert len(rsp.content) < 300 + 2 * 200  # two parts (0-199, 1000-1099) and their heads
    whole = log.read_bytes()
    assert whole[:200] in rsp.content and whole[1000:1100] in rsp.content

    many = "bytes=" + ",".join(f"{n * 1000}-{n * 1000 + 9}" for n in range(MAX_RANGES + 1))
    rsp = session.get(url, headers={"Range": many}, timeout=60)
    assert rsp.status_code == 416
    assert rsp.json()["status"] == "error" and "ranges" in rsp.json()["msg"]
    assert rsp.headers["Content-Range"] == f"bytes */{size}"
