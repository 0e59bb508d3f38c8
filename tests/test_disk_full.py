"""A full disk during ingest: a clear error, and a store and manifest that still agree.

The embedded engine memory-maps its files, so writing past the end of the disk kills the
process with SIGBUS instead of raising.  s2r therefore stops writing while S2R_MIN_FREE_MB is
still free.  One test fills a real (tmpfs) filesystem, where mounting is allowed; the other
moves the threshold so the same path runs anywhere.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from assistant.index.ingest import Ingestor
from assistant.retrieval.store.base import StoreError

pytestmark = pytest.mark.slow

WORDS = ("river glacier harbour temple market orbit protein violin meadow lantern copper "
         "falcon quarry saddle tundra walnut").split()


def write_notes(folder: Path, count: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"n{i:05d}.txt").write_text(f"Note {i}. " + " ".join(rng.choice(WORDS, 120)))
    return folder


def manifest_rows(data_dir: Path) -> dict[str, int]:
    [path] = (data_dir / "manifests").glob("*.sqlite")
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT source, chunks FROM sources"))


def test_ingest_stops_cleanly_when_free_space_runs_below_the_reserve(runtime, tmp_path):
    folder = write_notes(tmp_path / "notes", 12)
    files = sorted(str(p) for p in folder.iterdir())
    Ingestor(runtime).ingest_paths(files[:6], progress=False)
    runtime.store.min_free_mb = shutil.disk_usage(tmp_path).free // 2**20 + 1024  # "full"
    with pytest.raises(StoreError, match=r"disk nearly full: .*S2R_MIN_FREE_MB.* 0 new and 6 "
                                         r"unchanged source\(s\) are stored completely"):
        Ingestor(runtime).ingest_paths(files, progress=False)
    assert runtime.store.count() == 6 == len(manifest_rows(runtime.settings.data_dir))
    runtime.store.min_free_mb = 0  # space freed: the re-run does the rest
    report = Ingestor(runtime).ingest_paths(files, progress=False)
    assert len(report.unchanged) == 6 and len(report.ingested) == 6
    assert runtime.store.count() == 12


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_real_full_disk_stops_the_ingest_with_a_clear_error(small_disk, models, tmp_path):
    files = sorted(str(p) for p in write_notes(tmp_path / "notes", 1500).iterdir())
    runtime = models.with_settings(data_dir=small_disk / "data", min_free_mb=256,
                                   ingest_group_chunks=128)
    Ingestor(runtime).ingest_paths(files[:10], progress=False)  # the store is open and set up
    # ballast: leave the reserve plus 3 MB; every group of 128 notes takes about half a MB
    ballast = shutil.disk_usage(small_disk).free - (256 + 3) * 2**20
    (small_disk / "ballast").write_bytes(b"\0" * ballast)
    with pytest.raises(StoreError, match="disk nearly full"):
        Ingestor(runtime).ingest_paths(files, progress=False)
    stored = manifest_rows(runtime.settings.data_dir)
    assert 10 < len(stored) < 1500  # some groups went in, then it stopped
    runtime.close()
    # the store reopens and holds exactly what the manifest says it does
    reopened = models.with_settings(data_dir=small_disk / "data", min_free_mb=0)
    assert reopened.store.count() == sum(stored.values())
    assert set(reopened.store.sources()) == set(stored)
    reopened.close()
