"""Opening a listening port the way every listener of the daemon does: the configured
host, plain TCP or TLS with the configured certificate."""

from __future__ import annotations

from typing import Any

from daemon.config import Config


def listen(reactor: Any, config: Config, port: int, site: Any) -> Any:
    """Listen on config.host:port with `site` (TLS when configured); returns the port
    object (its getHost().port is the bound port when `port` is 0)."""
    if config.tls is not None:
        from twisted.internet import ssl

        context = ssl.DefaultOpenSSLContextFactory(str(config.tls.key), str(config.tls.cert))
        return reactor.listenSSL(port, site, context, interface=config.host)
    return reactor.listenTCP(port, site, interface=config.host)
