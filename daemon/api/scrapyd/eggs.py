"""An uploaded egg turned into a project archive like a pushed zip.

An egg (what `scrapyd-deploy` builds with setuptools) is a zip of the project's
packages with metadata under EGG-INFO/; its `scrapy` entry point names the settings
module. Adding a scrapy.cfg that names that module and the project makes it a project
folder the project store checks, unpacks and lists like any pushed zip, with the same
caps and the same refusal of paths out and links (the entries keep their file modes).
The scrapyd version is recorded in that scrapy.cfg, under [scrapyd].
"""

from __future__ import annotations

import configparser
import io
import re
import zipfile

from daemon.archive import ArchiveLimits, iter_member_chunks, open_zip
from daemon.errors import DaemonError

ENTRY_POINTS = "EGG-INFO/entry_points.txt"
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MAX_META_BYTES = 64 * 1024


class EggError(DaemonError):
    """An egg that cannot become a project; the message says what is wrong."""


def is_zip(data: bytes) -> bool:
    return zipfile.is_zipfile(io.BytesIO(data))


def _parser(text: str, source: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise EggError(f"{source} cannot be parsed: {str(exc).splitlines()[0]}") from None
    return parser


def settings_module(entry_points: str) -> str:
    """The settings module of an egg's entry_points.txt ([scrapy] settings = module)."""
    parser = _parser(entry_points, ENTRY_POINTS)
    value = parser.get("scrapy", "settings", fallback="").strip()
    module = value.split(":", 1)[0].strip()
    if not module:
        raise EggError("the egg has no 'scrapy' entry point naming its settings module")
    if not _MODULE_RE.match(module):
        raise EggError(f"the egg's settings entry point {value[:80]!r} is not a module name")
    return module


def scrapy_cfg(project: str, module: str, version: str) -> str:
    return (
        f"[settings]\ndefault = {module}\n\n"
        f"[deploy]\nproject = {project}\n\n"
        f"[scrapyd]\nversion = {version}\n"
    )


def version_of(cfg_text: str) -> str | None:
    """The scrapyd version recorded in a project's scrapy.cfg; None for a plain push."""
    try:
        parser = _parser(cfg_text, "scrapy.cfg")
    except EggError:
        return None
    return parser.get("scrapyd", "version", fallback=None)


def egg_to_project(egg: bytes, project: str, version: str, limits: ArchiveLimits) -> bytes:
    """A project zip made of the egg's entries (EGG-INFO and any scrapy.cfg left out)
    and a scrapy.cfg naming its settings module. Entries are expanded through the same
    caps as a push (a zip bomb stops at the cap) and keep their modes, so the store's
    checks see links and odd entries as they are. Runs in a worker thread."""
    if "\n" in version or "\r" in version:
        raise EggError("version must be one line")
    out = io.BytesIO()
    with open_zip(egg) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_files:
            raise EggError(f"egg has {len(infos)} entries; the limit is {limits.max_files}", 413)
        meta = next((i for i in infos if i.filename == ENTRY_POINTS), None)
        if meta is None:
            raise EggError("the egg has no EGG-INFO/entry_points.txt (is it an egg?)")
        if meta.file_size > _MAX_META_BYTES:
            raise EggError(f"{ENTRY_POINTS} is over {_MAX_META_BYTES} bytes")
        text = b"".join(iter_member_chunks(zf, meta, limits, 0)).decode("utf-8", "replace")
        module = settings_module(text)
        total = 0
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dest:
            for info in infos:
                name = info.filename
                if name.startswith("EGG-INFO/") or name.lstrip("/") == "scrapy.cfg":
                    continue
                copy = zipfile.ZipInfo(name, info.date_time)
                copy.external_attr = info.external_attr
                copy.create_system = info.create_system
                copy.compress_type = zipfile.ZIP_DEFLATED
                if info.is_dir():
                    dest.writestr(copy, b"")
                    continue
                with dest.open(copy, "w") as fh:
                    for chunk in iter_member_chunks(zf, info, limits, total):
                        total += len(chunk)
                        fh.write(chunk)
            dest.writestr("scrapy.cfg", scrapy_cfg(project, module, version))
    return out.getvalue()
