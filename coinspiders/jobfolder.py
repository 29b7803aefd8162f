"""The job folder `DATA_DIR/<job-id>/`: the contract between the spiders and the daemon.

Pure helpers (naming, atomic writes) kept apart from the pipelines so the daemon's tests
and the pipelines agree on one definition of the layout.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ITEMS_FILE = "items.jl"
DATA_FILE = "data.json"
MANIFEST_FILE = "job.json"
IMAGES_DIR = "Images"

# A job id names a folder: letters, digits, '-', '_' only, so it can never climb out.
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def resolve_job_id(configured: str | None) -> str:
    """The daemon's id when it gave one (validated), else a fresh UUID4."""
    if not configured:
        return str(uuid.uuid4())
    if not _JOB_ID_RE.match(configured):
        raise ValueError(
            f"JOB_ID {configured!r} is not a plain name (letters, digits, '-', '_', at most 64)"
        )
    return configured


def job_dir(data_dir: str | os.PathLike[str], job_id: str) -> Path:
    """The folder of one job; `job_id` must come from `resolve_job_id`."""
    return Path(data_dir).resolve() / job_id


def utc_now() -> str:
    """A timestamp for job.json and items: ISO 8601 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def read_items(path: Path) -> list[dict[str, Any]]:
    """Every complete line of an `items.jl`; a torn last line (a killed crawl) is skipped."""
    records: list[dict[str, Any]] = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return records
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
