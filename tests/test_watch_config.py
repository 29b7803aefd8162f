"""config.yaml's `metrics:`, `webhooks:` and `anomalies:`: a mistake stops the start with
the key named, and the secrets they name are hidden from crawls."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.children import child_env
from daemon.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


HOOK = "webhooks:\n  - url: http://127.0.0.1:9/hook\n    events: [job.finished]\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("metrics:\n  token_env: NOPE_UNSET\n", "'metrics.token_env': variable NOPE_UNSET"),
        ("metrics:\n  token: x\n", "unknown config key 'metrics.token'"),
        (HOOK.replace("http://", "ftp://"), "'webhooks[0].url': not an http(s) URL"),
        (HOOK.replace("http://127.0.0.1:9", "http://"), "'webhooks[0].url'"),
        (HOOK.replace("job.finished", "job.done"), "unknown event 'job.done'"),
        (HOOK.replace("[job.finished]", "[]"), "'webhooks[0].events'"),
        (HOOK + "    secret_env: NOPE_UNSET\n", "'webhooks[0].secret_env': variable NOPE_UNSET"),
        (HOOK + "    secret: inline\n", "unknown config key 'webhooks[0].secret'"),
        ("webhooks:\n  retry_for: 0\n", "'webhooks.retry_for': must be positive"),
        ("webhooks: 3\n", "'webhooks'"),
        ("anomalies:\n  history: 0\n", "'anomalies.history': at least 1"),
        ("anomalies:\n  items_drop: -1\n", "'anomalies.items_drop'"),
        ("anomalies:\n  coverage: 1\n", "unknown config key 'anomalies.coverage'"),
    ],
)
def test_watch_config_errors_name_the_key(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(write(tmp_path, text), environ={})


def test_webhook_and_scrape_secrets_are_read_from_the_environment_and_hidden(
    tmp_path: Path,
) -> None:
    text = (
        "metrics:\n  token_env: SCRAPE_TOKEN\n"
        "webhooks:\n  retry_for: 60\n  hooks:\n"
        "    - url: https://example.invalid/hook\n"
        "      events: [job.failed, job.anomaly]\n"
        "      secret_env: HOOK_SECRET\n"
        "anomalies:\n  history: 3\n  coverage_before: 0.8\n"
    )
    environ = {"SCRAPE_TOKEN": "t0k3n-v4lue", "HOOK_SECRET": "sssh", "KEEP": "1"}
    cfg = load_config(write(tmp_path, text), environ=environ)
    assert cfg.metrics.token == "t0k3n-v4lue"
    (hook,) = cfg.webhooks.hooks
    assert hook.secret == "sssh" and hook.events == {"job.failed", "job.anomaly"}
    assert cfg.webhooks.retry_for == 60
    assert cfg.anomalies.history == 3 and cfg.anomalies.coverage_before == 0.8
    assert "sssh" not in repr(cfg) and "t0k3n-v4lue" not in repr(cfg)
    env = child_env(cfg.hidden_env, base=environ)
    assert env == {"KEEP": "1"}
