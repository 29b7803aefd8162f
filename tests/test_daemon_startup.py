"""Starting the daemon: TLS, and the starts it refuses (bad config, corrupt store, busy
port) with a message naming the cause, exit status 2, and nothing overwritten."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import subprocess
import sys
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.daemon_support import ROOT, DaemonFactory


def run_daemon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_serves_https(tmp_path: Path, start_daemon: DaemonFactory) -> None:
    cert, key = self_signed(tmp_path)
    daemon = start_daemon(tls={"cert": str(cert), "key": str(key)})
    url = f"https://127.0.0.1:{daemon.port}/status.json"
    assert requests.get(url, verify=str(cert), timeout=10).json()["status"] == "ok"
    assert "listening on https://" in daemon.log()


def test_bad_config_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("port: 0\nslotz: 3\n")
    res = run_daemon("--config", str(config))
    assert res.returncode == 2 and "unknown config key 'slotz'" in res.stderr
    assert "Traceback" not in res.stderr


def test_corrupt_store_stops_the_start_and_is_not_overwritten(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = data / "daemon.sqlite"
    store.write_bytes(b"garbage, not SQLite" * 50)
    config = tmp_path / "config.yaml"
    config.write_text(f"port: 0\ndata_dir: {data}\n")
    res = run_daemon("--config", str(config))
    assert res.returncode == 2 and str(store) in res.stderr and "Traceback" not in res.stderr
    assert store.read_bytes() == b"garbage, not SQLite" * 50


def test_busy_port_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"port: {port}\ndata_dir: {tmp_path / 'data'}\n")
        res = run_daemon("--config", str(config))
    assert res.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in res.stderr


def test_completed_cap_forgets_old_jobs_and_their_logs_only(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(completed_cap=2)
    sleeper = daemon.schedule("sleepy")
    daemon.wait_log(sleeper, "START")
    ids = []
    for _ in range(3):
        ids.append(daemon.schedule("items"))
        daemon.wait_status(ids[-1], ("SUCCESSFUL",))
    logs = daemon.workdir / "data" / "logs"
    rsp = daemon.get("/list-jobs.json", params={"id": ids[0]})
    assert rsp.status_code == 404  # the oldest completed job is forgotten ...
    assert not (logs / f"{ids[0]}.out").exists()  # ... with its logs
    assert all(daemon.job(i)["status"] == "SUCCESSFUL" for i in ids[1:])
    assert daemon.job(sleeper)["status"] == "RUNNING"  # an active job is never touched
    assert (logs / f"{sleeper}.err").exists()
    daemon.post("/cancel-job.json", data={"id": sleeper})
