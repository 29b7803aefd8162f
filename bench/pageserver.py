"""A one-page HTTP server on 127.0.0.1 for the trivial benchmark job to fetch.

Runs in its own process (`python -m bench.pageserver`) so that serving pages never competes
with the benchmark's own polling for the GIL; prints its URL on the first line of stdout.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = (
    b"<!doctype html><html><head><title>bench page</title></head>"
    b"<body><h1 id='title'>bench page</h1><p class='price'>42.0</p></body></html>"
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
