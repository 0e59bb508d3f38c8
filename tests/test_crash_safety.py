"""kill -9 in the middle of a large ingest, then re-run: nothing lost, nothing duplicated."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.runtime import Runtime

pytestmark = pytest.mark.slow

FILES = 400
GROUP = 4  # S2R_INGEST_GROUP_CHUNKS: one chunk per file, so a group is 4 files
STOP_AT = 3  # the child stops itself before committing its 3rd group to the manifest
GUARD_S = 600  # only keeps a broken ingest from hanging the test

# ``s2r ingest`` (the same main as ``python -m assistant``), except that before its STOP_AT-th
# manifest commit the process stops itself with SIGSTOP: the chunks of that group are already
# in the store, the manifest does not know them.  That is where the kill lands, every time.
STOPPING_INGEST = f"""
import os, signal, sys
from assistant.index.manifest import Manifest
from assistant.interfaces.cli import main

record, calls = Manifest.record, []

def record_or_stop(self, entries):
    calls.append(entries)
    if len(calls) == {STOP_AT}:
        os.kill(os.getpid(), signal.SIGSTOP)  # the test SIGKILLs us here
    record(self, entries)

Manifest.record = record_or_stop
sys.exit(main(sys.argv[1:]))
"""


def recorded(data_dir: Path) -> int:
    """Sources the manifest holds, read as an outside observer would (0 before it exists)."""
    found = list((data_dir / "manifests").glob("*.sqlite"))
    if not found:
        return 0
    try:
        with sqlite3.connect(f"file:{found[0]}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM sources").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def ingest(env: dict, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant", "ingest", "--no-progress",
                           str(folder)], env=env, capture_output=True, text=True, timeout=300)


def wait_until_stopped(process: subprocess.Popen, log: Path) -> None:
    """Until ``process`` stops (SIGSTOP); fails if it exits instead."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
        if pid:
            assert os.WIFSTOPPED(status), f"the ingest ended before the kill: {log.read_text()}"
            return
        time.sleep(0.05)
    raise AssertionError(f"the ingest did not reach its group {STOP_AT} commit")


def test_kill_during_ingest_then_rerun_loses_and_duplicates_nothing(models, cache_dir, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    note = "Note {0}. The inventory of shelf {0} lists {1} jars of preserved fruit."
    for i in range(FILES):
        (folder / f"note{i:03d}.txt").write_text(note.format(i, i * 7))
    data_dir = tmp_path / "data"
    env = {**os.environ, "S2R_DATA_DIR": str(data_dir), "S2R_CACHE_DIR": str(cache_dir),
           "S2R_QDRANT_URL": "", "S2R_INGEST_GROUP_CHUNKS": str(GROUP)}

    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen([sys.executable, "-c", STOPPING_INGEST, "ingest",
                                  "--no-progress", str(folder)], env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        wait_until_stopped(first, log)
        done_at_kill = recorded(data_dir)  # the child is frozen: this cannot change now
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    committed = (STOP_AT - 1) * GROUP
    assert done_at_kill == committed  # killed mid-ingest, between store and manifest

    # the killed group's chunks were stored but never recorded
    runtime = models.with_settings(data_dir=data_dir)
    try:
        assert runtime.store.count() == committed + GROUP
    finally:
        runtime.close()

    second = ingest(env, folder)
    assert second.returncode == 0, second.stderr
    assert f"unchanged {done_at_kill};" in second.stdout  # the finished files are skipped
    assert f"ingested {FILES - done_at_kill} source(s)" in second.stdout

    third = ingest(env, folder)
    assert f"ingested 0 source(s), 0 chunk(s); unchanged {FILES};" in third.stdout

    runtime = models.with_settings(data_dir=data_dir)
    try:
        store = runtime.store  # opens cleanly after the kill
        per_source = store.sources()
        assert store.count() == FILES  # one chunk per file: nothing lost, nothing twice
        assert len(per_source) == FILES and set(per_source.values()) == {1}
        hit = store.search(runtime.embedder.embed_one(note.format(123, 861)), top_k=1)[0]
        assert hit.payload["source"].endswith("note123.txt")  # and it searches
    finally:
        runtime.close()


def test_manifest_does_not_trust_a_store_that_lost_chunks(runtime: Runtime, tmp_path):
    from assistant.index.ingest import Ingestor

    doc = tmp_path / "a.txt"
    doc.write_text("Tea came to Europe through Dutch traders in the seventeenth century.")
    assert Ingestor(runtime).ingest_paths([str(doc)], progress=False).ingested == [str(doc)]
    assert Ingestor(runtime).ingest_paths([str(doc)], progress=False).unchanged == [str(doc)]
    runtime.store.delete_source(str(doc))  # the chunks vanish behind the manifest's back
    again = Ingestor(runtime).ingest_paths([str(doc)], progress=False)
    assert again.ingested == [str(doc)] and runtime.store.count(source=str(doc)) == 1
