"""Where the scrapyd API is served: under /scrapyd/ on the main listener, and at the root
of a second listener (tools that take only host:port, such as ScrapydWeb and Gerapy,
need it: scrapyd's /status.json is not scrapy-do's). Both share the main listener's host,
TLS and auth; requests refused before routing (auth, upload cap) get scrapyd's answers.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.error import CannotListenError
from twisted.web import resource

from daemon.api.context import ApiContext
from daemon.api.http import ErrorResource, GuardedSite
from daemon.api.scrapyd import replies
from daemon.api.scrapyd.app import ScrapydOptions, ScrapydServices, build_app
from daemon.config import Config
from daemon.listen import ListenService

PREFIX = "/scrapyd"


class _Unauthorized(resource.Resource):
    """scrapyd's 401: the body is exactly `Unauthorized`; the challenges are ours."""

    isLeaf = True

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__()
        self.headers = headers

    def render(self, request: Any) -> bytes:
        for key, value in self.headers:
            request.responseHeaders.addRawHeader(key, value)
        request.setResponseCode(401)
        request.setHeader(b"Content-Type", b"text/plain")
        request.setHeader(b"Content-Length", str(len(replies.UNAUTHORIZED_BODY)).encode())
        return replies.UNAUTHORIZED_BODY


class _Refused(resource.Resource):
    """A request refused before routing (upload cap, unreadable body), in scrapyd's
    envelope."""

    isLeaf = True

    def __init__(self, message: str, code: int, options: ScrapydOptions) -> None:
        super().__init__()
        self.message, self.code, self.options = message, code, options

    def render(self, request: Any) -> bytes:
        body = replies.error_body(self.message, self.options.node)
        request.setResponseCode(self.code if self.options.error_codes or self.code == 413 else 200)
        if self.code == 413:
            request.setHeader(b"Connection", b"close")
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", str(len(body)).encode())
        return body


class ScrapydGuardedSite(GuardedSite):
    """GuardedSite whose early refusals for paths under `scrapyd_prefix` (b"/" for the
    whole listener) are scrapyd's."""

    scrapyd_prefix: bytes = b"/"
    scrapyd_options: ScrapydOptions = ScrapydOptions()

    def _is_scrapyd(self, request: Any) -> bool:
        path = request.path or b""
        prefix = self.scrapyd_prefix
        return path.startswith(prefix) or path == prefix.rstrip(b"/")

    def refusal(self, request: Any) -> resource.Resource:
        """The 401, also when sent before the body is read: scrapyd's body."""
        found = super().refusal(request)
        if self._is_scrapyd(request) and isinstance(found, ErrorResource):
            return _Unauthorized(found.headers)
        return found

    def getResourceFor(self, request: Any) -> resource.Resource:
        # "/scrapyd//x.json" as "/scrapyd/x.json" (routing reads the path segments).
        segments = self.scrapyd_prefix.strip(b"/")
        postpath = request.postpath or []
        if segments and postpath[:2] == [segments, b""] and len(postpath) > 2:
            del postpath[1]
        found = super().getResourceFor(request)
        if not isinstance(found, ErrorResource) or not self._is_scrapyd(request):
            return found
        if found.code == 401:
            return _Unauthorized(found.headers)
        return _Refused(found.message, found.code, self.scrapyd_options)


def options_for(config: Config, prefix: str) -> ScrapydOptions:
    sc = config.scrapyd
    return ScrapydOptions(node_name=sc.node_name, error_codes=sc.error_codes, prefix=prefix)


def services_of(ctx: ApiContext) -> ScrapydServices:
    return ScrapydServices(
        jobs=ctx.jobs,
        reads=ctx.job_reads,
        projects=ctx.projects,
        log_path=ctx.jobs.log_path,
        timezone=ctx.config.tz,
        data_dir=ctx.config.data_dir,
    )


def mounted_app(ctx: ApiContext) -> Klein:
    """The scrapyd API as mounted under /scrapyd/ of the main listener."""
    return build_app(services_of(ctx), options_for(ctx.config, PREFIX))


def main_site(root: resource.Resource, config: Config) -> GuardedSite:
    """The main listener's site; scrapyd's early refusals under /scrapyd/ when enabled."""
    args = (root, config.auth, config.upload_max_bytes)
    site: GuardedSite
    if not config.scrapyd.enabled:
        site = GuardedSite(*args, header_timeout=config.header_timeout)
    else:
        site = scrapyd_site = ScrapydGuardedSite(*args, header_timeout=config.header_timeout)
        scrapyd_site.scrapyd_prefix = PREFIX.encode() + b"/"
        scrapyd_site.scrapyd_options = options_for(config, PREFIX)
    if config.metrics.token is not None:
        site.scrape_token = config.metrics.token.encode("utf-8")
    return site


def second_site(ctx: ApiContext) -> ScrapydGuardedSite:
    """The second listener's site: scrapyd's API at its root, alone."""
    config = ctx.config
    options = options_for(config, "")
    site = ScrapydGuardedSite(
        build_app(services_of(ctx), options).resource(),
        config.auth,
        config.upload_max_bytes,
        header_timeout=config.header_timeout,
    )
    site.scrapyd_options = options
    return site


class ScrapydListenError(Exception):
    """The second listener's port is taken (or not allowed)."""


class ScrapydWebService(ListenService):
    """The second listener: the main one's host and TLS on `scrapyd.port` (0 = any
    free port, printed once bound)."""

    name = "scrapyd-web"

    def __init__(self, reactor: Any, config: Config, site: Any) -> None:
        assert config.scrapyd.port is not None
        super().__init__(reactor, config, config.scrapyd.port, site, label="scrapyd API ")

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as exc:
            # Not CannotListenError: the daemon's start would name the main port.
            raise ScrapydListenError(
                f"cannot listen on {self.config.host}:{self.wanted} for scrapyd's API: "
                f"{exc.socketError}"
            ) from None
