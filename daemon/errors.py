"""The one exception shape of the daemon: a refusal with a message and an HTTP status."""

from __future__ import annotations


class DaemonError(Exception):
    """A refused operation; the API answers `http_status` with `message` (both are
    meant for the client, so neither may hold a secret or a server path)."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
