"""Opening a listening port the way every listener of the daemon does (the configured
host, plain TCP or TLS with the configured certificate), as a Twisted service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.service import Service

from daemon.config import Config


def listen(reactor: Any, config: Config, port: int, site: Any) -> Any:
    """Listen on config.host:port with `site` (TLS when configured); returns the port
    object (its getHost().port is the bound port when `port` is 0)."""
    if config.tls is not None:
        from twisted.internet import ssl

        context = ssl.DefaultOpenSSLContextFactory(str(config.tls.key), str(config.tls.cert))
        return reactor.listenSSL(port, site, context, interface=config.host)
    return reactor.listenTCP(port, site, interface=config.host)


class ListenService(Service):
    """Listens while running; prints the bound address (port 0 picks one) and, when
    `port_file` is given, writes the bound port there (atomically)."""

    def __init__(
        self,
        reactor: Any,
        config: Config,
        port: int,
        site: Any,
        label: str = "",
        port_file: Path | None = None,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.wanted = port
        self.site = site
        self.label = label
        self.port_file = port_file
        self.listening: Any = None

    @property
    def port(self) -> int:
        return self.listening.getHost().port

    def startService(self) -> None:
        super().startService()
        cfg = self.config
        self.listening = listen(self.reactor, cfg, self.wanted, self.site)
        scheme = "https" if cfg.tls else "http"
        print(f"{self.label}listening on {scheme}://{cfg.host}:{self.port}", flush=True)
        if self.port_file is not None:
            tmp = self.port_file.with_name(self.port_file.name + ".tmp")
            tmp.write_text(str(self.port))
            tmp.replace(self.port_file)

    def stopService(self) -> Any:
        super().stopService()
        if self.listening is not None:
            return self.listening.stopListening()
        return None
