"""The job folder `DATA_DIR/<job-id>/`: the contract between the spiders and the daemon.

Both halves import their names from here (file names, the job id rule, the timestamp
form, how many coins a job takes, the `{coin, output}` shape of a coin's answer), so the
folder the spiders write is the folder the daemon reads by construction, not by a copy
kept in step. The daemon imports this module at start: it must stay free of Scrapy (and of
anything heavy), which tests/test_contracts.py checks.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ITEMS_FILE = "items.jl"
DATA_FILE = "data.json"
MANIFEST_FILE = "job.json"
IMAGES_DIR = "Images"

# A job id names a folder: letters, digits, '-', '_' only, so it can never climb out.
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Coins one job is asked for: a crawl's `coins` argument, the daemon's start request and
# a status request's task_ids.
MAX_COINS = 1000
# Keys of an items.jl record that are bookkeeping, not the coin's figures.
NOT_FIGURES = ("query", "error", "candidates")


def resolve_job_id(configured: str | None) -> str:
    """The daemon's id when it gave one (validated), else a fresh UUID4."""
    if not configured:
        return str(uuid.uuid4())
    if not JOB_ID_RE.match(configured):
        raise ValueError(
            f"JOB_ID {configured!r} is not a plain name (letters, digits, '-', '_', at most 64)"
        )
    return configured


def job_dir(data_dir: str | os.PathLike[str], job_id: str) -> Path:
    """The folder of one job; `job_id` must come from `resolve_job_id`."""
    return Path(data_dir).resolve() / job_id


def format_utc(moment: datetime) -> str:
    """The one timestamp form of job folders: ISO 8601 in UTC, to the millisecond, `Z`.

    Fixed width, so the daemon's index sorts these strings as it would sort the times.
    """
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utc_now() -> str:
    """A timestamp for job.json and items (and the daemon's index) in `format_utc`'s form."""
    return format_utc(datetime.now(UTC))


def logo_relpath(coin_id: int) -> str:
    """Where a coin's logo sits inside its job folder."""
    return f"{IMAGES_DIR}/{int(coin_id)}.png"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over `path`.

    A reader (or a crash) sees either the old file or the whole new one, never half.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); the job folder's readers (the daemon,
        # another user's tools) should see data.json like items.jl.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def coin_output(record: Mapping[str, Any], figures: Iterable[str] | None = None) -> dict[str, Any]:
    """One coin's answer: its figures, or its error; `candidates` when the name was shared.

    `figures` names the keys shown (absent ones as None), as data.json lists them; None
    shows the record's own figures, as the daemon's status endpoint does.
    """
    if record.get("error"):
        out: dict[str, Any] = {"error": record["error"]}
    elif figures is None:
        out = {k: v for k, v in record.items() if k not in NOT_FIGURES}
    else:
        out = {key: record.get(key) for key in figures}
    if record.get("candidates"):
        out["candidates"] = record["candidates"]
    return out


def coin_task(coin: str, output: Any) -> dict[str, Any]:
    """One entry of data.json and of the status endpoint's tasks: the coin as asked."""
    return {"coin": coin, "output": output}
