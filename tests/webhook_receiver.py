"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 whose answers the
test scripts (fail with 500, hang past the daemon's read timeout, accept), and which
records every request it got with the answer it gave."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answer: str  # "ok", "fail", "hang", "redirect"

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int = 0
    #: What the next requests get, one entry each; `then` once the script is used up.
    script: list[str] = field(default_factory=list)
    then: str = "ok"
    hang_seconds: float = 3.0
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer_next(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.then

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.answer == "ok"]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.got)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            answer = receiver.answer_next()
            with receiver.lock:
                receiver.got.append(Received(dict(self.headers.items()), body, answer))
            if answer == "hang":  # past the daemon's read timeout, then no answer at all
                time.sleep(receiver.hang_seconds)
                self.close_connection = True
                return
            if answer == "redirect":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = 200 if answer == "ok" else 500
            text = b"thanks" if code == 200 else b"receiver broken"
            self.send_response(code)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            return

    return Handler


@contextmanager
def running_receiver(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
