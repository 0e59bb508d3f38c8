"""`s2r eval` and `s2r bench build` end to end on tiny real benchmarks, and their bad input."""

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest

from assistant.eval.bench_build import VOICE_FAMILIES, build
from assistant.eval.bench_format import BenchmarkError, load_benchmark
from assistant.eval.evaluate import evaluate
from assistant.eval.wiki_corpus import in_eval_split, load_summaries
from assistant.speech.audio import write_wav
from assistant.text import split_sentences
from tests.conftest import ROOT, silence

ROW_KEYS = {"benchmark", "system", "n_queries", "mrr@10", "recall@1", "recall@5", "recall@10",
            "ndcg@10", "wer", "latency_p50_ms", "latency_p95_ms", "mrr@10_by_kind",
            "mrr@10_by_family"}
HEARD_KEYS = {"wer_by_kind", "wer_by_family"}  # systems that hear words: WER per group too
QUESTIONS = [("Who developed the theory of relativity?", "en-us", "Albert Einstein", "who"),
             ("What is the highest mountain on Earth?", "en-gb", "Mount Everest", "what"),
             ("When does the chess club meet?", "en-us", "radio", "when")]


@pytest.fixture(scope="module")
def tiny_bench(wiki, speak, tmp_path_factory):
    """40 text passages + 1 spoken passage, 3 spoken queries (one about the spoken passage)."""
    root = tmp_path_factory.mktemp("tiny") / "tiny"
    (root / "audio").mkdir(parents=True)
    targets = {"Albert Einstein", "Mount Everest"}
    passages = [a for a in wiki if a["title"] in targets] + [
        a for a in wiki[::250] if a["title"] not in targets][:38]
    rows = [{"id": a["title"], "title": a["title"], "text": a["extract"]} for a in passages]
    radio = np.concatenate([speak("Our bakery sells sourdough bread every morning."), silence(1),
                            speak("The chess club meets on Thursday evenings.", voice="en-gb")])
    write_wav(root / "audio" / "radio.wav", radio)
    rows.append({"id": "radio", "audio": "audio/radio.wav", "title": "Community radio"})
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    queries = []
    for i, (text, voice, target, kind) in enumerate(QUESTIONS):
        write_wav(root / "audio" / f"q{i}.wav", speak(text, voice=voice))
        queries.append({"id": f"q{i}", "audio": f"audio/q{i}.wav", "text": text,
                        "relevant": [target], "kind": kind, "family": voice})
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    return root


@pytest.mark.slow
def test_eval_runs_systems_and_caches_the_index(models, tmp_path, tiny_bench):
    runtime = models.with_settings(cache_dir=tmp_path / "cache")
    bench = load_benchmark(tiny_bench)
    result = evaluate([bench], ["transcript", "cascade", "s2r", "e2e", "hybrid"], runtime,
                      progress=False)
    rows = {r["system"]: r for r in result["rows"]}
    assert set(rows) == {"transcript", "cascade", "s2r", "e2e", "hybrid"}
    assert result["unavailable"] == {}
    for row in rows.values():
        heard = row["wer"] is not None
        assert set(row) == ROW_KEYS | (HEARD_KEYS if heard else set())
        assert row["n_queries"] == 3 and row["benchmark"] == "tiny"
        assert row["latency_p50_ms"] <= row["latency_p95_ms"]
        by_kind = row["mrr@10_by_kind"]  # one query per kind: each is that query's 1/rank
        assert set(by_kind) == {"who", "what", "when"}
        assert abs(sum(by_kind.values()) / 3 - row["mrr@10"]) < 1e-3
        by_family = row["mrr@10_by_family"]  # two en-us queries, one en-gb
        assert set(by_family) == {"en-us", "en-gb"}
        assert abs((2 * by_family["en-us"] + by_family["en-gb"]) / 3 - row["mrr@10"]) < 1e-3
        if heard:  # every family's WER is its own: none may exceed the pooled errors' share
            assert set(row["wer_by_family"]) == {"en-us", "en-gb"}
            assert min(row["wer_by_family"].values()) <= row["wer"] <= \
                max(row["wer_by_family"].values())
    assert rows["transcript"]["recall@10"] == 1.0  # the spoken passage is found via its transcript
    assert rows["transcript"]["wer"] is None
    assert 0.0 <= rows["cascade"]["wer"] < 0.5  # tiny.en mishears a word or two
    assert rows["cascade"]["recall@10"] >= 2 / 3
    assert rows["s2r"]["recall@10"] >= 2 / 3 and 0.0 <= rows["s2r"]["wer"] < 0.5
    assert rows["hybrid"]["recall@10"] >= 2 / 3 and rows["hybrid"]["wer"] == rows["s2r"]["wer"]
    assert rows["e2e"]["recall@10"] >= 1 / 3 and 0.0 <= rows["e2e"]["wer"] < 1.0  # spelled
    assert result["benchmarks"][0]["index_cached"] is False
    assert result["models"]["decoder_adapter"] == "none"  # the adapter is opt-in
    again = evaluate([bench], ["transcript"], runtime, progress=False)
    assert again["benchmarks"][0]["index_cached"] is True
    assert again["rows"][0]["mrr@10"] == rows["transcript"]["mrr@10"]
    assert again["models"]["decoder_adapter"] == "unused"  # no decode ran
    off = runtime.with_settings(e2e_model="none")
    result = evaluate([bench], ["s2r", "e2e", "hybrid"], off, progress=False)
    assert [r["system"] for r in result["rows"]] == ["s2r"]  # the others are reported, not faked
    assert set(result["unavailable"]) == {"e2e", "hybrid"}


@pytest.mark.slow
def test_eval_cli_writes_json_table_and_plot(tmp_path, cache_dir, tiny_bench):
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    env = os.environ | {"S2R_CACHE_DIR": str(cache_dir), "S2R_E2E_MODEL": "none"}
    done = subprocess.run([sys.executable, "-m", "assistant", "eval", str(tiny_bench),
                           "--systems", "transcript,e2e", "--out", str(out), "--plot", str(png)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| tiny | transcript | 3 |" in done.stdout
    assert "| benchmark | system | what | when | who |" in done.stdout  # MRR@10 by kind
    assert "`e2e`: off: S2R_E2E_MODEL=none" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["system"] for r in rows] == ["transcript"] and set(rows[0]) == ROW_KEYS
    assert png.read_bytes()[:4] == b"\x89PNG"


def broken_copy(src, dst, lines):
    dst.mkdir()
    (dst / "audio").symlink_to(src / "audio")
    (dst / "corpus.jsonl").write_text((src / "corpus.jsonl").read_text())
    (dst / "queries.jsonl").write_text("".join(lines))
    return dst


@pytest.mark.slow
@pytest.mark.parametrize(("bad_line", "message"), [
    ('{"id": "x", "audio": "audio/missing.wav", "text": "t", "relevant": ["radio"]}\n',
     "audio file .*missing.wav does not exist"),
    ('{"id": "x", "audio": "audio/q0.wav", "text": "t", "relevant": ["No Such Doc"]}\n',
     "relevant id\\(s\\) not in corpus.jsonl"),
    ('{"id": "x", "audio": "audio/q0.wav", "text": \n', "malformed JSON"),
])
def test_bad_queries_name_file_and_line_or_are_skipped(tmp_path, tiny_bench, bad_line, message):
    good = (tiny_bench / "queries.jsonl").read_text().splitlines(keepends=True)
    bench = broken_copy(tiny_bench, tmp_path / "b", [good[0], bad_line, good[1]])
    with pytest.raises(BenchmarkError, match=f"queries.jsonl:2: {message}"):
        load_benchmark(bench)
    loaded = load_benchmark(bench, skip_bad=True)
    assert [q.id for q in loaded.queries] == ["q0", "q1"] and len(loaded.skipped) == 1


@pytest.mark.slow
def test_eval_cli_reports_bad_input(tmp_path, tiny_bench):
    good = (tiny_bench / "queries.jsonl").read_text().splitlines(keepends=True)
    bench = broken_copy(tiny_bench, tmp_path / "b", [good[0], "not json\n"])
    done = subprocess.run([sys.executable, "-m", "assistant", "eval", str(bench),
                           "--systems", "nonsense"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "unknown system" in done.stderr
    done = subprocess.run([sys.executable, "-m", "assistant", "eval", str(bench),
                           "--systems", "transcript"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "queries.jsonl:2: malformed JSON" in done.stderr


@pytest.mark.slow
def test_bench_build_small(tmp_path):
    wiki = load_summaries()
    summary = build(tmp_path / "dev", n_queries=6, seed=3, max_passages=60, progress=False)
    assert summary["queries"] == 6 and summary["kinds"] == {"lead": 2, "description": 2,
                                                            "keywords": 2}
    corpus = {json.loads(line)["id"]: json.loads(line)
              for line in (tmp_path / "dev/clean/corpus.jsonl").read_text().splitlines()}
    assert len(corpus) == 60
    for condition in ("clean", "noise", "phone"):
        bench = load_benchmark(tmp_path / "dev" / condition)
        assert len(bench.queries) == 6
    queries = [json.loads(line) for line in
               (tmp_path / "dev/clean/queries.jsonl").read_text().splitlines()]
    # families rotate with every round of kinds: flite's, then espeak-ng's voices
    assert [q["family"] for q in queries] == ["flite"] * 3 + ["espeak-ng"] * 3
    for q in queries:
        target = q["relevant"][0]
        assert in_eval_split(target) and q["voice"] in VOICE_FAMILIES[q["family"]]
        if q["kind"] == "lead":  # the lead sentence it came from is gone from the passage
            assert q["text"].startswith(("What is", "What was", "What are", "What were"))
            lead = split_sentences(wiki[target]["extract"])[0]
            assert lead not in corpus[target]["text"]
            assert len(corpus[target]["text"]) > 20  # the rest of the passage stays
    with av.open(str(tmp_path / "dev/phone" / queries[0]["audio"])) as container:
        assert container.streams.audio[0].rate == 8000
    assert "flite:slt 3, espeak-ng:en-us+Mike 3" in (tmp_path / "dev/README.md").read_text()


def test_tuning_sets_never_touch_the_eval_split():
    from assistant.eval.bench_build import choose_queries

    wiki = load_summaries()
    tune = choose_queries(wiki, 30, seed=1, split="train")
    bench = choose_queries(wiki, 30, seed=1, split="eval")
    assert not any(in_eval_split(q.target) for q in tune)
    assert all(in_eval_split(q.target) for q in bench)
