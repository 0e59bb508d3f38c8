"""benchmarks/revoice.py: a benchmark's questions spoken again by another voice family."""

import json
import subprocess
import sys

import av

from assistant.speech.audio import decode_audio
from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "revoice.py"


def _source(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "corpus.jsonl").write_text('{"id": "Otter", "title": "Otter", "text": "Otters."}\n')
    rows = [{"id": f"q{i}", "audio": f"audio/q{i}.flac", "text": text, "relevant": ["Otter"],
             "kind": "natural", "voice": "flite:slt", "family": "flite"}
            for i, text in enumerate(["Where do otters sleep?", "Where do otters sleep?",
                                      "What do otters eat?"])]
    (source / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return source


def test_each_distinct_question_is_spoken_once_by_the_new_family(tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(SCRIPT), str(_source(tmp_path)), str(out),
                    "--family", "espeak-train", "--voices", "espeak-ng:en-us", "--no-progress"],
                   check=True, capture_output=True)
    for condition, rate in (("clean", 16000), ("phone", 8000)):
        rows = [json.loads(line) for line in (out / condition / "queries.jsonl").open()]
        assert [r["id"] for r in rows] == ["q0-espeak-train", "q2-espeak-train"]
        assert {(r["family"], r["voice"]) for r in rows} == {("espeak-train", "espeak-ng:en-us")}
        assert rows[1]["text"] == "What do otters eat?" and rows[1]["relevant"] == ["Otter"]
        assert (out / condition / "corpus.jsonl").read_text().startswith('{"id": "Otter"')
        for row in rows:
            with av.open(str(out / condition / row["audio"])) as clip:
                assert clip.streams.audio[0].sample_rate == rate
            assert decode_audio(out / condition / row["audio"]).size > 16000 * 0.5  # speech


def test_a_dev_voice_is_refused(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(_source(tmp_path)),
                           str(tmp_path / "out"), "--voices", "flite:slt"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "already voice the dev benchmark" in done.stderr
    assert not (tmp_path / "out").exists()
