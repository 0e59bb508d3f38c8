"""kill -9 in the middle of a large ingest, then re-run: nothing lost, nothing duplicated."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from assistant.runtime import Runtime

FILES = 400


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


def test_kill_during_ingest_then_rerun_loses_and_duplicates_nothing(models, cache_dir, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    note = "Note {0}. The inventory of shelf {0} lists {1} jars of preserved fruit."
    for i in range(FILES):
        (folder / f"note{i:03d}.txt").write_text(note.format(i, i * 7))
    data_dir = tmp_path / "data"
    env = {**os.environ, "S2R_DATA_DIR": str(data_dir), "S2R_CACHE_DIR": str(cache_dir),
           "S2R_QDRANT_URL": "", "S2R_INGEST_GROUP_CHUNKS": "4"}  # commit every 4 files

    first = subprocess.Popen([sys.executable, "-m", "assistant", "ingest", "--no-progress",
                              str(folder)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while recorded(data_dir) < FILES // 8 and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read().decode()
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_at_kill = recorded(data_dir)
    assert FILES // 8 <= done_at_kill < FILES, "the kill must land mid-ingest"

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
