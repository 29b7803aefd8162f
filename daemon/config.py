"""config.yaml (+ environment and command-line overrides) -> one frozen `Config`.

A daemon that starts with a typo in its config runs with a setting nobody asked for, so
every unknown or malformed key stops the start with a message naming the key.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from daemon.archive import MAX_PROJECT_NAME

PASSWORD_ENV = "COINSPIDERS_PASSWORD"
# A project name of the config; the longest is the one a push may have (one limit).
_PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _is_project_name(name: Any) -> bool:
    """A plain name that no path can hide in, and that a push could have given too."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_PROJECT_NAME
        and _PROJECT_NAME_RE.match(name) is not None
        and ".." not in name
    )


class ConfigError(Exception):
    """A config file or value the daemon refuses to start with; the message names the key."""


@dataclass(frozen=True)
class AuthConfig:
    username: str
    #: The plaintext password; None when only `password_hash` is known.
    password: str | None = field(repr=False)
    #: The variable named by `auth.password_env`, hidden from crawls like the password.
    password_env: str | None = None
    #: `auth.password_hash` (see daemon.passwords) when no plaintext is configured.
    password_hash: str | None = field(default=None, repr=False)
    #: Where the password was read from, for the start-up warnings (never the value).
    source: str = "password"


@dataclass(frozen=True)
class CrawlUser:
    """The account crawls and `scrapy list` run as when the daemon runs as root."""

    name: str
    uid: int
    gid: int
    group: str


@dataclass(frozen=True)
class TLSConfig:
    cert: Path
    key: Path


@dataclass(frozen=True)
class LocalProject:
    """A project used in place, without a push (e.g. the repo's own coinspiders): a
    folder holding scrapy.cfg, and default settings for its crawls."""

    path: Path
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScrapydConfig:
    """scrapyd's API: under /scrapyd/ on the main listener when `enabled`, and at the root
    of a second listener when `port` is set (0 = any free port)."""

    enabled: bool = False
    port: int | None = None
    #: node_name in every reply; the host name when empty (as scrapyd).
    node_name: str = ""
    #: Real 4xx codes on errors (scrapyd answers them with 200).
    error_codes: bool = False


@dataclass(frozen=True)
class MetricsConfig:
    """/metrics: same auth as the API, or a bearer token of its own for scrapers (read
    from the variable `token_env`, so it is not in config.yaml)."""

    token_env: str | None = None
    token: str | None = field(default=None, repr=False)


#: The events a webhook may ask for; `job.finished` is any end of a run.
WEBHOOK_EVENTS = (
    "job.started",
    "job.finished",
    "job.failed",
    "job.canceled",
    "job.anomaly",
    "schedule.misfired",
    "node.lost",
)


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    events: frozenset[str]
    #: The variable holding the signing secret (hidden from crawls like the password).
    secret_env: str | None = None
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class WebhooksConfig:
    hooks: tuple[WebhookConfig, ...] = ()
    #: How long a delivery is retried (seconds) before it is given up.
    retry_for: float = 24 * 3600.0
    #: The first wait between attempts (doubles each time, up to `retry_max_delay`).
    retry_delay: float = 5.0
    retry_max_delay: float = 600.0
    #: Seconds to connect, and to wait for the answer once connected.
    connect_timeout: float = 5.0
    read_timeout: float = 10.0


@dataclass(frozen=True)
class AnomalyConfig:
    """Run-to-run comparison (daemon.anomalies): a job against the median of the same
    spider's last `history` successful runs with the same arguments."""

    history: int = 5
    #: Items down by more than this share of the median.
    items_drop: float = 0.5
    #: Error (or retry) rate up by more than this (absolute share of requests).
    error_rate_rise: float = 0.1
    #: Duration up by more than this factor.
    duration_factor: float = 3.0
    #: ...and by at least this many seconds (a 2 s crawl taking 7 s is noise).
    duration_min_seconds: float = 60.0
    #: A field filled in at least `coverage_before` of items in the history...
    coverage_before: float = 0.9
    #: ...that falls by more than this (absolute share) in the job.
    coverage_drop: float = 0.5
    #: Fewer successful runs than this in the history: no comparison ("no history").
    min_history: int = 1


@dataclass(frozen=True)
class CeleryConfig:
    """`celery:` with `executor: celery`: crawls run on worker hosts (daemon/cluster)."""

    #: redis://HOST:PORT/DB: Celery's broker and the leases' store.
    broker: str = ""
    queue: str = "coinspiders"
    #: Redis key prefix of the leases (several daemons may share one Redis).
    prefix: str = "coinspiders"
    #: Seconds a worker's lease lasts without a renewal: a worker silent this long is
    #: lost, and its job goes on elsewhere.
    lease: float = 10.0
    #: Further attempts of a job whose worker was lost (0: FAILED "node lost" at once).
    retries: int = 1


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 7654
    data_dir: Path = Path("data")
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    slots: int = 3
    completed_cap: int = 1000
    cancel_grace: float = 10.0
    max_runtime: float = 0.0
    upload_max_bytes: int = 20 * 1024 * 1024
    unpacked_max_bytes: int = 100 * 1024 * 1024
    unpacked_max_files: int = 2000
    list_spiders_timeout: float = 60.0
    timezone: str = "UTC"
    misfire_grace: float = 3600.0
    header_timeout: float = 20.0
    min_free_bytes: int = 50 * 1024 * 1024
    projects: Mapping[str, LocalProject] = field(default_factory=dict)
    crawl_user: CrawlUser | None = None
    #: Projects (local or pushed, by name) whose crawls may open Scrapy's Telnet
    #: console and remote-control server; every other crawl has both forced off.
    crawl_consoles: frozenset[str] = frozenset()
    #: The config file read (None = built-in defaults), for the start-up warnings.
    source: Path | None = None
    scrapyd: ScrapydConfig = field(default_factory=ScrapydConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    anomalies: AnomalyConfig = field(default_factory=AnomalyConfig)
    #: Where crawls run (daemon.executor): "local" (this machine) is the only one built.
    executor: str = "local"
    celery: CeleryConfig = field(default_factory=CeleryConfig)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hidden_env(self) -> tuple[str, ...]:
        """Environment variables of the daemon its children must not inherit, beyond
        the ones daemon.children always hides."""
        names = [self.auth.password_env if self.auth else None, self.metrics.token_env]
        names += [hook.secret_env for hook in self.webhooks.hooks]
        return tuple(dict.fromkeys(name for name in names if name))

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def projects_dir(self) -> Path:
        return self.data_dir / "projects"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "daemon.sqlite"


_SCALARS: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "data_dir": (str,),
    "slots": (int,),
    "completed_cap": (int,),
    "cancel_grace": (int, float),
    "max_runtime": (int, float),
    "upload_max_bytes": (int,),
    "unpacked_max_bytes": (int,),
    "unpacked_max_files": (int,),
    "list_spiders_timeout": (int, float),
    "timezone": (str,),
    "misfire_grace": (int, float),
    "header_timeout": (int, float),
    "min_free_bytes": (int,),
    "executor": (str,),
}
_SECTIONS = {
    "auth",
    "tls",
    "projects",
    "crawl_user",
    "crawl_group",
    "crawl_consoles",
    "scrapyd",
    "metrics",
    "webhooks",
    "anomalies",
    "celery",
}


def _check_type(key: str, value: Any, types: tuple[type, ...]) -> Any:
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"config key '{key}': expected {names}, got {value!r}")
    return value


def _mapping(key: str, value: Any, allowed: set[str] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
    if allowed is not None:
        for sub in value:
            if sub not in allowed:
                raise ConfigError(f"unknown config key '{key}.{sub}'")
    return value


def _auth(raw: Any, environ: Mapping[str, str], base: Path) -> AuthConfig | None:
    section = _mapping(
        "auth", raw, {"username", "password", "password_env", "password_file", "password_hash"}
    )
    env_password = environ.get(PASSWORD_ENV)
    if not section and env_password is None:
        return None
    username = section.get("username")
    if username is None:
        if env_password is not None:
            raise ConfigError(f"{PASSWORD_ENV} is set but config key 'auth.username' is missing")
        return None
    _check_type("auth.username", username, (str,))
    if not username or ":" in username:
        raise ConfigError("config key 'auth.username': a non-empty name without ':'")
    given = [k for k in ("password", "password_file", "password_hash") if section.get(k)]
    if len(given) > 1:
        raise ConfigError(f"config keys {', '.join('auth.' + k for k in given)}: give only one")
    password = env_password
    source = PASSWORD_ENV
    var = None
    if section.get("password_env"):
        var = _check_type("auth.password_env", section["password_env"], (str,))
    if password is None and var:
        password, source = environ.get(var), "password_env"
        if password is None:
            raise ConfigError(f"config key 'auth.password_env': variable {var} is not set")
    if password is None and section.get("password_file"):
        password, source = _password_file(section["password_file"], base), "password_file"
    if password is None and section.get("password") is not None:
        password, source = str(section["password"]), "password"
    hashed = None
    if password is None and section.get("password_hash"):
        from daemon.passwords import PasswordHashError, check_hash_format

        hashed = _check_type("auth.password_hash", section["password_hash"], (str,))
        try:
            check_hash_format(hashed)
        except PasswordHashError as exc:
            raise ConfigError(f"config key 'auth.password_hash': {exc}") from None
        source = "password_hash"
    if not password and not hashed:
        raise ConfigError(
            f"config key 'auth.password': auth.username is set but no password (give "
            f"auth.password_file, auth.password_hash, auth.password_env, auth.password, "
            f"or {PASSWORD_ENV})"
        )
    return AuthConfig(
        username=username, password=password, password_env=var, password_hash=hashed, source=source
    )


def _password_file(value: Any, base: Path) -> str:
    """The first line of the file: so the password need not be in config.yaml (which
    may be readable by all) nor in the daemon's environment (readable from /proc)."""
    path = base / _check_type("auth.password_file", value, (str,))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"config key 'auth.password_file': cannot read {path}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config key 'auth.password_file': {path} is not UTF-8 text") from None
    password = text.rstrip("\r\n")
    if not password or "\n" in password:
        raise ConfigError(f"config key 'auth.password_file': {path} must hold one non-empty line")
    return password


def _crawl_user(user: Any, group: Any, euid: int) -> CrawlUser | None:
    if user is None:
        if group is not None:
            raise ConfigError("config key 'crawl_group' needs 'crawl_user'")
        return None
    _check_type("crawl_user", user, (str,))
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"config key 'crawl_user': no user {user!r} on this system") from None
    gid = entry.pw_gid
    if group is not None:
        _check_type("crawl_group", group, (str,))
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"config key 'crawl_group': no group {group!r}") from None
    if entry.pw_uid == 0 or gid == 0:
        raise ConfigError("config keys 'crawl_user'/'crawl_group': must not be root")
    if euid != 0 and euid != entry.pw_uid:
        raise ConfigError(
            f"config key 'crawl_user': the daemon runs as uid {euid}, not root, so it "
            f"cannot start crawls as {user}"
        )
    try:
        group_name = grp.getgrgid(gid).gr_name
    except KeyError:
        group_name = str(gid)
    return CrawlUser(name=user, uid=entry.pw_uid, gid=gid, group=group_name)


def _crawl_consoles(raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise ConfigError(f"config key 'crawl_consoles': expected a list of names, got {raw!r}")
    for name in raw:
        if not _is_project_name(name):
            raise ConfigError(f"config key 'crawl_consoles': not a project name: {name!r}")
    return frozenset(raw)


def _tls(raw: Any, base: Path) -> TLSConfig | None:
    section = _mapping("tls", raw, {"cert", "key"})
    if not section:
        return None
    paths = {}
    for sub in ("cert", "key"):
        value = section.get(sub)
        if not value:
            raise ConfigError(f"config key 'tls.{sub}' is missing (tls needs cert and key)")
        path = base / _check_type(f"tls.{sub}", value, (str,))
        if not path.is_file():
            raise ConfigError(f"config key 'tls.{sub}': no file {path}")
        paths[sub] = path
    return TLSConfig(cert=paths["cert"], key=paths["key"])


def _projects(raw: Any, base: Path) -> dict[str, LocalProject]:
    section = _mapping("projects", raw, None)
    projects: dict[str, LocalProject] = {}
    for name, spec in section.items():
        key = f"projects.{name}"
        if not _is_project_name(name):
            raise ConfigError(f"config key '{key}': not a plain project name")
        spec = _mapping(key, spec, {"path", "settings"})
        path = base / _check_type(f"{key}.path", spec.get("path", "."), (str,))
        if not (path / "scrapy.cfg").is_file():
            raise ConfigError(f"config key '{key}.path': no scrapy.cfg in {path.resolve()}")
        settings = {}
        for skey, svalue in _mapping(f"{key}.settings", spec.get("settings"), None).items():
            if not isinstance(skey, str) or not skey or "=" in skey:
                raise ConfigError(f"config key '{key}.settings': bad setting name {skey!r}")
            if isinstance(svalue, dict | list) or svalue is None:
                raise ConfigError(f"config key '{key}.settings.{skey}': expected a scalar")
            settings[skey] = str(svalue).lower() if isinstance(svalue, bool) else str(svalue)
        projects[name] = LocalProject(path=path.resolve(), settings=settings)
    return projects


def _scrapyd(raw: Any, port_override: int | None) -> ScrapydConfig:
    section = _mapping("scrapyd", raw, {"enabled", "port", "node_name", "error_codes"})
    values: dict[str, Any] = {}
    for key in ("enabled", "error_codes"):
        if section.get(key) is not None:
            if not isinstance(section[key], bool):
                raise ConfigError(f"config key 'scrapyd.{key}': expected true or false")
            values[key] = section[key]
    if section.get("port") is not None:
        values["port"] = _check_type("scrapyd.port", section["port"], (int,))
    if section.get("node_name") is not None:
        values["node_name"] = _check_type("scrapyd.node_name", section["node_name"], (str,))
    if port_override is not None:
        values["port"] = port_override
    port = values.get("port")
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"config key 'scrapyd.port': {port} is not a TCP port")
    return ScrapydConfig(**values)


def _secret_var(key: str, value: Any, environ: Mapping[str, str]) -> tuple[str, str]:
    """(variable name, its value): a secret is named in the config, never written there."""
    name = _check_type(key, value, (str,))
    secret = environ.get(name)
    if not secret:
        raise ConfigError(f"config key '{key}': variable {name} is not set")
    return name, secret


def _metrics(raw: Any, environ: Mapping[str, str]) -> MetricsConfig:
    section = _mapping("metrics", raw, {"token_env"})
    if section.get("token_env") is None:
        return MetricsConfig()
    name, token = _secret_var("metrics.token_env", section["token_env"], environ)
    return MetricsConfig(token_env=name, token=token)


_WEBHOOK_NUMBERS = (
    "retry_for",
    "retry_delay",
    "retry_max_delay",
    "connect_timeout",
    "read_timeout",
)


def _webhooks(raw: Any, environ: Mapping[str, str]) -> WebhooksConfig:
    """`webhooks:` is a list of hooks, or a mapping with `hooks:` and the delivery
    settings."""
    from urllib.parse import urlsplit

    if raw is None:
        return WebhooksConfig()
    section = (
        {"hooks": raw}
        if isinstance(raw, list)
        else _mapping("webhooks", raw, {"hooks", *_WEBHOOK_NUMBERS})
    )
    values: dict[str, Any] = {}
    for key in _WEBHOOK_NUMBERS:
        if section.get(key) is not None:
            value = _check_type(f"webhooks.{key}", section[key], (int, float))
            if value <= 0:
                raise ConfigError(f"config key 'webhooks.{key}': must be positive")
            values[key] = float(value)
    hooks_raw = section.get("hooks") or []
    if not isinstance(hooks_raw, list):
        raise ConfigError(f"config key 'webhooks': expected a list of hooks, got {hooks_raw!r}")
    hooks = []
    for n, item in enumerate(hooks_raw):
        key = f"webhooks[{n}]"
        spec = _mapping(key, item, {"url", "events", "secret_env"})
        url = _check_type(f"{key}.url", spec.get("url"), (str,))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"config key '{key}.url': not an http(s) URL: {url[:200]!r}")
        events = spec.get("events")
        if not isinstance(events, list) or not events:
            raise ConfigError(
                f"config key '{key}.events': a list of events, any of {', '.join(WEBHOOK_EVENTS)}"
            )
        for event in events:
            if event not in WEBHOOK_EVENTS:
                raise ConfigError(
                    f"config key '{key}.events': unknown event {event!r}; use any of "
                    f"{', '.join(WEBHOOK_EVENTS)}"
                )
        secret_env = secret = None
        if spec.get("secret_env") is not None:
            secret_env, secret = _secret_var(f"{key}.secret_env", spec["secret_env"], environ)
        hooks.append(
            WebhookConfig(url=url, events=frozenset(events), secret_env=secret_env, secret=secret)
        )
    return WebhooksConfig(hooks=tuple(hooks), **values)


def _anomalies(raw: Any) -> AnomalyConfig:
    allowed = set(AnomalyConfig.__dataclass_fields__)
    section = _mapping("anomalies", raw, allowed)
    values: dict[str, Any] = {}
    for key, value in section.items():
        if value is None:
            continue
        if key in ("history", "min_history"):
            values[key] = _check_type(f"anomalies.{key}", value, (int,))
            if values[key] < 1:
                raise ConfigError(f"config key 'anomalies.{key}': at least 1")
        else:
            values[key] = float(_check_type(f"anomalies.{key}", value, (int, float)))
            if values[key] < 0:
                raise ConfigError(f"config key 'anomalies.{key}': must not be negative")
    return AnomalyConfig(**values)


def _celery(raw: Any) -> CeleryConfig:
    section = _mapping("celery", raw, {"broker", "queue", "prefix", "lease", "retries"})
    values: dict[str, Any] = {}
    for key in ("broker", "queue", "prefix"):
        if section.get(key) is not None:
            values[key] = _check_type(f"celery.{key}", section[key], (str,))
    if section.get("lease") is not None:
        values["lease"] = float(_check_type("celery.lease", section["lease"], (int, float)))
    if section.get("retries") is not None:
        values["retries"] = _check_type("celery.retries", section["retries"], (int,))
    config = CeleryConfig(**values)
    if config.broker and not config.broker.startswith(("redis://", "rediss://")):
        raise ConfigError("config key 'celery.broker': expected a redis:// URL")
    if not 1.0 <= config.lease <= 3600:
        raise ConfigError("config key 'celery.lease': between 1 and 3600 seconds")
    if not 0 <= config.retries <= 100:
        raise ConfigError("config key 'celery.retries': between 0 and 100")
    for key in ("queue", "prefix"):
        if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", getattr(config, key)):
            raise ConfigError(f"config key 'celery.{key}': letters, digits, _ . - only")
    return config


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
) -> Config:
    """Read `path` (None = defaults only), apply overrides (None values are ignored).

    Relative paths in the file are relative to the file's folder, so the daemon reads
    the same data wherever it is started from; overrides are relative to the cwd.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {file} is not UTF-8 text (byte {exc.start}): is it the right file?"
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {file}: expected a mapping at the top")
        raw = loaded or {}
        base = file.resolve().parent
        values_source: Path | None = file.resolve()
    else:
        values_source = None
    for key in raw:
        if key not in _SCALARS and key not in _SECTIONS:
            raise ConfigError(f"unknown config key '{key}'")
    values: dict[str, Any] = {}
    for key, types in _SCALARS.items():
        if key in raw and raw[key] is not None:
            values[key] = _check_type(key, raw[key], types)
    if "data_dir" in values:
        values["data_dir"] = base / values["data_dir"]
    overrides = dict(overrides or {})
    scrapyd_port = overrides.pop("scrapyd_port", None)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in _SCALARS:
            raise ConfigError(f"unknown override '{key}'")
        values[key] = Path(value) if key == "data_dir" else value
    values["data_dir"] = Path(values.get("data_dir", base / "data")).resolve()
    values["auth"] = _auth(raw.get("auth"), environ, base)
    values["crawl_user"] = _crawl_user(
        raw.get("crawl_user"), raw.get("crawl_group"), os.geteuid() if euid is None else euid
    )
    values["crawl_consoles"] = _crawl_consoles(raw.get("crawl_consoles"))
    values["source"] = values_source
    values["tls"] = _tls(raw.get("tls"), base)
    if "projects" in raw:
        values["projects"] = _projects(raw.get("projects"), base)
    values["scrapyd"] = _scrapyd(raw.get("scrapyd"), scrapyd_port)
    values["metrics"] = _metrics(raw.get("metrics"), environ)
    values["webhooks"] = _webhooks(raw.get("webhooks"), environ)
    values["anomalies"] = _anomalies(raw.get("anomalies"))
    values["celery"] = _celery(raw.get("celery"))
    config = Config(**values)
    _validate(config)
    return config


#: The executors `executor:` may name.
EXECUTORS = ("local", "celery")


def _validate(config: Config) -> None:
    if config.executor == "celery" and not config.celery.broker:
        raise ConfigError("config key 'celery.broker' is required with executor: celery")
    if config.executor not in EXECUTORS:
        raise ConfigError(
            f"config key 'executor': unknown executor {config.executor[:40]!r}; "
            f"use one of {', '.join(EXECUTORS)}"
        )
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"config key 'port': {config.port} is not a TCP port")
    if config.slots < 1:
        raise ConfigError("config key 'slots': at least 1")
    for key in (
        "completed_cap",
        "upload_max_bytes",
        "unpacked_max_bytes",
        "unpacked_max_files",
        "min_free_bytes",
    ):
        if getattr(config, key) < 0:
            raise ConfigError(f"config key '{key}': must not be negative")
    for key in (
        "cancel_grace",
        "max_runtime",
        "list_spiders_timeout",
        "misfire_grace",
        "header_timeout",
    ):
        if getattr(config, key) < 0:
            raise ConfigError(f"config key '{key}': must not be negative")
    try:
        ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"config key 'timezone': unknown zone {config.timezone!r}") from None
