"""The project store with real `scrapy list` child processes on tiny projects.

Trial test cases (run by pytest) spin the real reactor, so pushes, listings and time
limits run exactly as in the daemon.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

import psutil
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from daemon.archive import ArchiveLimits
from daemon.projects import LocalProject, ProjectError, ProjectStore

SPIDERS = """
import scrapy


class Alpha(scrapy.Spider):
    name = "alpha"


class Beta(scrapy.Spider):
    name = "beta"
"""


def project_files(name: str = "tiny", spiders: str = SPIDERS, settings: str = "") -> dict:
    return {
        "scrapy.cfg": f"[settings]\ndefault = {name}.settings\n\n[deploy]\nproject = {name}\n",
        f"{name}/__init__.py": "",
        f"{name}/settings.py": (
            f"BOT_NAME = {name!r}\nSPIDER_MODULES = [{name + '.spiders'!r}]\n" + settings
        ),
        f"{name}/spiders/__init__.py": "",
        f"{name}/spiders/all.py": spiders,
    }


def make_zip(files: dict, top: str = "tiny/") -> bytes:
    """The layout `scrapy-do-cl push-project` builds: one top folder holding scrapy.cfg."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            zf.writestr(top + path, text)
    return buf.getvalue()


def write_tree(root: Path, files: dict) -> Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


GOOD = make_zip(project_files())
GAMMA = make_zip(project_files(spiders=SPIDERS.replace("alpha", "gamma")))
CRASHES = make_zip(project_files(spiders="raise RuntimeError('boom from tiny spiders')\n"))
# Hangs at import and leaves a child of its own behind: the time limit must end both.
HANG = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
time.sleep(600)
"""
HANGS = make_zip(project_files(settings=HANG))


def processes_under(folder: Path) -> list[int]:
    """Live processes working in `folder`: a stopped listing must leave none."""
    found = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info["cwd"]
        if cwd and Path(cwd).is_relative_to(folder) and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc.info["pid"])
    return found


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


class ProjectStoreTest(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.outer = Path(tempfile.mkdtemp(prefix="projects-test-"))
        self.addCleanup(_rmtree, self.outer)
        self.root = self.outer / "store"
        self.local_dir = write_tree(self.outer / "localproj", project_files("loc"))
        self.store = self.make_store()

    def make_store(self, list_timeout: float = 60) -> ProjectStore:
        # A listing takes well under a second alone, several on a loaded machine: only the
        # test of a hanging spider module uses a short timeout.
        return ProjectStore(
            self.root,
            {"loc": LocalProject(self.local_dir, {"LOG_LEVEL": "INFO"})},
            limits=ArchiveLimits(max_files=200),
            list_timeout=list_timeout,
        )

    def versions(self, name: str = "tiny") -> list[str]:
        folder = self.root / "versions" / name
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    async def refused(self, d: defer.Deferred) -> ProjectError:
        try:
            await d
        except ProjectError as exc:
            return exc
        raise AssertionError("expected a ProjectError")

    def assert_no_debris(self) -> None:
        """Only the store and the local project exist; the store holds no scratch files."""
        self.assertEqual(sorted(p.name for p in self.outer.iterdir()), ["localproj", "store"])
        self.assertEqual(list((self.root / "tmp").iterdir()), [])
        for name in os.listdir(self.root / "versions"):
            self.assertEqual(len(self.versions(name)), 1, name)

    @defer.inlineCallbacks
    def test_push_lists_spiders_and_persists(self):
        name, spiders = yield self.store.push(GOOD)
        self.assertEqual((name, spiders), ("tiny", ["alpha", "beta"]))
        self.assertEqual(self.store.names(), ["loc", "tiny"])
        self.assertEqual(self.store.spiders("tiny"), ["alpha", "beta"])
        path = self.store.path("tiny")
        self.assertTrue((path / "scrapy.cfg").is_file())
        self.assertTrue((path / "tiny" / "spiders" / "all.py").is_file())
        self.assertTrue(path.is_relative_to(self.root))
        self.assertEqual(self.store.settings("tiny"), {})
        record = json.loads((self.root / "records" / "tiny.json").read_text())
        self.assertEqual(record["spiders"], ["alpha", "beta"])
        self.assert_no_debris()
        # A restart sees the same project without listing again.
        again = self.make_store()
        self.assertEqual(again.names(), ["loc", "tiny"])
        self.assertEqual(again.spiders("tiny"), ["alpha", "beta"])
        self.assertEqual(again.path("tiny"), path)
        self.assertEqual(again.pushed_at("tiny"), self.store.pushed_at("tiny"))

    async def _replace(self):
        await self.store.push(GOOD)
        first = self.store.path("tiny")
        _name, spiders = await self.store.push(GAMMA)
        self.assertEqual(spiders, ["beta", "gamma"])
        self.assertNotEqual(self.store.path("tiny"), first)
        self.assertFalse(first.exists())
        self.assertEqual(len(self.versions()), 1)
        self.assertEqual(await self.store.get_spiders("tiny"), ["beta", "gamma"])

    def test_push_again_replaces(self):
        return defer.ensureDeferred(self._replace())

    async def _pinned(self):
        await self.store.push(GOOD)
        running, release = self.store.pin("tiny")
        also, release_also = self.store.pin("tiny")
        self.assertEqual(running, also)
        await self.store.push(GAMMA)
        # A crawl still running in the old version keeps its folder until released.
        self.assertTrue((running / "tiny" / "spiders" / "all.py").is_file())
        self.assertEqual(len(self.versions()), 2)
        await release()
        await release()  # a second call of the same release does nothing
        self.assertTrue(running.exists())
        await release_also()
        self.assertFalse(running.exists())
        self.assertEqual(len(self.versions()), 1)
        # Removal while pinned: the files go with the last release.
        current, release_current = self.store.pin("tiny")
        await self.store.remove("tiny")
        self.assertNotIn("tiny", self.store.names())
        self.assertTrue(current.exists())
        await release_current()
        self.assertFalse((self.root / "versions" / "tiny").exists())
        local, release_local = self.store.pin("loc")
        self.assertEqual(local, self.local_dir.resolve())
        await release_local()
        self.assertTrue(local.exists())

    def test_pinned_version_outlives_replacement(self):
        return defer.ensureDeferred(self._pinned())

    async def _crash(self):
        await self.store.push(GOOD)
        before = self.store.path("tiny")
        error = await self.refused(self.store.push(CRASHES))
        self.assertEqual(error.http_status, 400)
        self.assertIn("boom from tiny spiders", error.message)
        self.assertIn("exited with 1", error.message)
        # The previous version is untouched and still works.
        self.assertEqual(self.store.path("tiny"), before)
        self.assertEqual(self.store.spiders("tiny"), ["alpha", "beta"])
        self.assertEqual(await self.store.list_spiders_of(before), ["alpha", "beta"])
        self.assert_no_debris()

    def test_failed_push_keeps_previous_version(self):
        return defer.ensureDeferred(self._crash())

    async def _hang(self):
        self.store = self.make_store(list_timeout=3)
        error = await self.refused(self.store.push(HANGS))
        self.assertIn("took longer than 3 s", error.message)
        self.assertEqual(processes_under(self.outer), [])
        self.assertEqual(self.store.names(), ["loc"])
        self.assertEqual(self.versions(), [])
        self.assert_no_debris()

    def test_listing_that_hangs_is_stopped(self):
        return defer.ensureDeferred(self._hang())

    async def _guard(self):
        await self.store.push(GOOD)
        seen = []

        def guard(name, spiders):
            seen.append((name, spiders))
            return "Spider alpha is going to be removed but has scheduled jobs"

        error = await self.refused(self.store.push(GAMMA, guard))
        self.assertEqual((error.http_status, seen), (409, [("tiny", ["beta", "gamma"])]))
        self.assertIn("alpha", error.message)
        self.assertEqual(self.store.spiders("tiny"), ["alpha", "beta"])
        self.assert_no_debris()
        error = await self.refused(self.store.remove("tiny", lambda n, s: f"{n} has jobs"))
        self.assertEqual((error.http_status, error.message), (409, "tiny has jobs"))
        self.assertIn("tiny", self.store.names())

    def test_guard_refuses_push_and_remove(self):
        return defer.ensureDeferred(self._guard())

    async def _remove(self):
        await self.store.push(GOOD)
        await self.store.remove("tiny")
        self.assertEqual(self.store.names(), ["loc"])
        self.assertFalse((self.root / "records" / "tiny.json").exists())
        self.assertFalse((self.root / "versions" / "tiny").exists())
        for call in (self.store.spiders, self.store.path, self.store.settings):
            self.assertEqual(self.assertRaises(ProjectError, call, "tiny").http_status, 404)
        self.assertEqual((await self.refused(self.store.remove("tiny"))).http_status, 404)
        local = await self.refused(self.store.remove("loc"))
        self.assertEqual(local.http_status, 409)
        self.assertTrue(self.local_dir.exists())
        self.assertEqual(self.make_store().names(), ["loc"])

    def test_remove(self):
        return defer.ensureDeferred(self._remove())

    async def _local(self):
        self.assertIsNone(self.store.spiders("loc"))
        self.assertEqual(self.store.path("loc"), self.local_dir.resolve())
        self.assertEqual(self.store.settings("loc"), {"LOG_LEVEL": "INFO"})
        self.assertEqual(await self.store.get_spiders("loc"), ["alpha", "beta"])
        self.assertEqual(self.store.spiders("loc"), ["alpha", "beta"])
        # Cached: a change on disk shows only on refresh.
        spiders = self.local_dir / "loc" / "spiders" / "all.py"
        spiders.write_text(SPIDERS.replace("beta", "delta"))
        self.assertEqual(await self.store.get_spiders("loc"), ["alpha", "beta"])
        self.assertEqual(await self.store.get_spiders("loc", refresh=True), ["alpha", "delta"])
        clash = await self.refused(self.store.push(make_zip(project_files("loc"), top="loc/")))
        self.assertEqual(clash.http_status, 409)
        self.assertEqual((await self.refused(self.store.get_spiders("nope"))).http_status, 404)

    def test_local_projects(self):
        return defer.ensureDeferred(self._local())

    async def _env(self):
        # The daemon's own SCRAPY_SETTINGS_MODULE must not leak into the listing.
        os.environ["SCRAPY_SETTINGS_MODULE"] = "loc.settings"
        self.addCleanup(os.environ.pop, "SCRAPY_SETTINGS_MODULE", None)
        name, spiders = await self.store.push(make_zip(project_files(), top=""))
        self.assertEqual((name, spiders), ("tiny", ["alpha", "beta"]))

    def test_root_layout_and_clean_environment(self):
        return defer.ensureDeferred(self._env())

    async def _hostile(self):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for path, text in project_files().items():
                zf.writestr("tiny/" + path, text)
            zf.writestr("../evil.py", "x")
        error = await self.refused(self.store.push(buf.getvalue()))
        self.assertEqual(error.http_status, 400)
        self.assertIn("'..'", error.message)
        many = make_zip({**project_files(), **{f"f{i}": "" for i in range(300)}})
        self.assertEqual((await self.refused(self.store.push(many))).http_status, 413)
        self.assertEqual((await self.refused(self.store.push(b"nope"))).http_status, 400)
        self.assertEqual(self.store.names(), ["loc"])
        self.assert_no_debris()
        self.assertEqual(tree(self.root / "versions"), [])

    def test_hostile_archive_writes_nothing(self):
        return defer.ensureDeferred(self._hostile())

    async def _cancel(self):
        pushing = self.store.push(HANGS)
        await deferLater(reactor, 1.0, lambda: None)
        pushing.cancel()
        try:
            await pushing
        except defer.CancelledError:
            pass
        else:
            raise AssertionError("a cancelled push must not succeed")
        self.assertEqual(processes_under(self.outer), [])
        self.assertEqual(self.store.names(), ["loc"])
        self.assert_no_debris()
        self.assertEqual(tree(self.root / "versions"), [])

    def test_cancelled_push_leaves_nothing(self):
        return defer.ensureDeferred(self._cancel())

    async def _chatty(self):
        loud = make_zip(project_files(settings="print('x' * 3_000_000)\n"))
        error = await self.refused(self.store.push(loud))
        self.assertIn("printed more than", error.message)
        self.assert_no_debris()

    def test_listing_output_is_bounded(self):
        return defer.ensureDeferred(self._chatty())

    def test_restart_sweeps_debris(self):
        d = self.store.push(GOOD)

        def crash_leftovers(_):
            current = self.store.path("tiny")
            stray = self.root / "versions" / "tiny" / "20000101T000000-deadbeef"
            write_tree(stray, project_files())
            orphan = self.root / "versions" / "gone" / "v1"
            write_tree(orphan, project_files("gone"))
            (self.root / "tmp" / "tiny.json.123.tmp").write_text("{half")
            (self.root / "records" / "broken.json").write_text("{not json")
            keep = self.root / "versions" / "broken" / "v1"
            write_tree(keep, project_files("broken"))
            again = self.make_store()
            self.assertEqual(again.names(), ["loc", "tiny"])
            self.assertEqual(self.versions(), [current.name])
            self.assertFalse((self.root / "versions" / "gone").exists())
            self.assertEqual(list((self.root / "tmp").iterdir()), [])
            # An unreadable record is left alone, and so are its files.
            self.assertTrue(keep.exists())

        return d.addCallback(crash_leftovers)


class ProjectVersionsTest(unittest.TestCase):
    """Several versions of one project (scrapyd's addversion), kept side by side."""

    timeout = 60
    # The same store and helpers as ProjectStoreTest, without running its tests again.
    setUp = ProjectStoreTest.setUp
    make_store = ProjectStoreTest.make_store
    versions = ProjectStoreTest.versions
    refused = ProjectStoreTest.refused

    async def _named(self) -> None:
        await self.store.push(GOOD, version="1.10")
        await self.store.push(GAMMA, version="1.9")
        self.assertEqual(self.store.versions("tiny"), ["1_9", "1_10"])
        self.assertEqual(len(self.versions()), 2)
        # The latest is the highest version, whatever the order they came in.
        self.assertEqual(self.store.spiders("tiny"), ["alpha", "beta"])
        self.assertEqual(self.store.version_spiders("tiny", "1.9"), ["beta", "gamma"])
        older, release = self.store.pin("tiny", "1_9")
        self.assertNotEqual(older, self.store.path("tiny"))
        self.assertEqual(await self.store.list_spiders_of(older), ["beta", "gamma"])
        missing = self.assertRaises(ProjectError, self.store.pin, "tiny", "2.0")
        self.assertEqual(missing.http_status, 404)
        self.assertRaises(ProjectError, self.store.path, "loc", "1.0")
        self.assertEqual(self.store.versions("loc"), [])
        # The same version again replaces only its namesake.
        await self.store.push(GAMMA, version="1.10")
        self.assertEqual(self.store.versions("tiny"), ["1_9", "1_10"])
        self.assertEqual(self.store.spiders("tiny"), ["beta", "gamma"])
        # A restart reads them back.
        again = self.make_store()
        self.assertEqual(again.versions("tiny"), ["1_9", "1_10"])
        self.assertEqual(again.path("tiny", "1.9"), older)
        # Removing a pinned version keeps its folder until the crawl lets go.
        await self.store.remove_version("tiny", "1.9")
        self.assertEqual(self.store.versions("tiny"), ["1_10"])
        self.assertTrue(older.exists())
        await release()
        self.assertFalse(older.exists())
        # A push through scrapy-do's API replaces the latest with a new version.
        await self.store.push(GOOD, version="0.1")
        await self.store.push(GOOD)
        listed = self.store.versions("tiny")
        self.assertEqual(len(listed), 2)
        self.assertEqual(listed[0], "0_1")
        self.assertNotIn("1_10", listed)
        self.assertEqual(self.store.spiders("tiny"), ["alpha", "beta"])
        # The last version removed takes the project with it.
        refused = await self.refused(self.store.remove_version("tiny", "0.1", lambda n, s: "busy"))
        self.assertEqual(refused.http_status, 409)
        for version in listed:
            await self.store.remove_version("tiny", version)
        self.assertEqual(self.store.names(), ["loc"])
        self.assertFalse((self.root / "records" / "tiny.json").exists())
        self.assertEqual(self.versions(), [])

    def test_named_versions_are_kept_in_version_order(self) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._named())

    async def _legacy(self) -> None:
        await self.store.push(GOOD)
        record_file = self.root / "records" / "tiny.json"
        record = json.loads(record_file.read_text())
        # As a store written before versions were named recorded it.
        record.pop("label", None)
        record.pop("older", None)
        record_file.write_text(json.dumps(record))
        again = self.make_store()
        # Named by its push time, as a scrapy-do push is now.
        pushed = datetime.fromisoformat(record["pushed"]).timestamp()
        self.assertEqual(again.versions("tiny"), [str(int(pushed))])
        self.assertEqual(again.spiders("tiny"), ["alpha", "beta"])
        # An egg added through scrapyd's API keeps the version its scrapy.cfg records.
        cfg = again.path("tiny") / "scrapy.cfg"
        cfg.write_text(cfg.read_text() + "\n[scrapyd]\nversion = 1.5\n")
        again = self.make_store()
        self.assertEqual(again.versions("tiny"), ["1_5"])
        # A later version sorts after it, an earlier one before.
        await again.push(GAMMA, version="1.10")
        await again.push(GAMMA, version="1")
        self.assertEqual(again.versions("tiny"), ["1", "1_5", "1_10"])
        self.assertEqual(again.spiders("tiny"), ["beta", "gamma"])
        self.assertEqual(again.version_spiders("tiny", "1.5"), ["alpha", "beta"])

    def test_a_record_without_versions_still_loads(self) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._legacy())


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def test_start_sweep_keeps_a_replaced_version_a_crawl_still_runs_in(tmp_path: Path) -> None:
    """A crawl that outlived a killed daemon may work in a version folder no record names
    any more; the sweep at start leaves it until a later start finds it unused."""
    root = tmp_path / "store"
    stale = root / "versions" / "gone" / "20250101T000000-abc"
    stale.mkdir(parents=True)
    sleeper = "import time; time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", sleeper], cwd=stale)
    try:
        ProjectStore(root)
        assert stale.is_dir()
    finally:
        proc.kill()
        proc.wait()
    ProjectStore(root)
    assert not (root / "versions" / "gone").exists()
