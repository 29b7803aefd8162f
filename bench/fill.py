"""Fill our daemon's job store before it starts, through `daemon.job_store` itself.

Running 100,000 real crawls to fill a store would take hours, so finished jobs are written
with the store module's own `insert` (the same code path the daemon uses for a new job),
and the filled file is copied for every daemon that needs the same size.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

from bench.common import BenchError

_TEMPLATES: dict[int, Path] = {}


def fill_ours(data_dir: Path, count: int, project: str, spider: str) -> list[str]:
    """Give `data_dir` a store holding `count` SUCCESSFUL jobs; return ~200 of their ids."""
    try:
        from daemon.domain import SUCCESSFUL, USER
        from daemon.job_store import Job, Store
    except ImportError as exc:
        raise BenchError(f"our daemon's store module is not there yet: {exc}") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "daemon.sqlite"
    step = max(1, count // 200)
    template = _TEMPLATES.get(count)
    if template is not None and template.exists():
        shutil.copyfile(template, target)
        ids = (template.parent / "ids.txt").read_text().split()
        return ids
    store = Store(target)
    ids = []
    base = time.time() - count
    try:
        for n in range(count):
            job_id = str(uuid.uuid4())
            created = base + n
            store.insert(
                Job(
                    id=job_id,
                    status=SUCCESSFUL,
                    actor=USER,
                    schedule="now",
                    project=project,
                    spider=spider,
                    created=created,
                    started=created + 0.01,
                    finished=created + 0.6,
                    exit_code=0,
                )
            )
            if n % step == 0:
                ids.append(job_id)
    finally:
        store.close()
    copy_dir = data_dir.parent / f"store-template-{count}"
    copy_dir.mkdir(exist_ok=True)
    shutil.copyfile(target, copy_dir / "daemon.sqlite")
    (copy_dir / "ids.txt").write_text("\n".join(ids))
    _TEMPLATES[count] = copy_dir / "daemon.sqlite"
    return ids
