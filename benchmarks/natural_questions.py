"""The natural-question dev benchmark: questions a person would ask, written by hand
(``benchmarks/data/natural_questions.jsonl``, one eval-split article each, none of them an
article of the templated dev set), each spoken by one voice of every dev voice family, so that
every family hears the same questions.

The templated dev set (``s2r bench build``) asks lead-sentence, description and keyword
questions; the held-out check that found the decoder adapter's harm used natural ones.  These
were written once, from the articles' summaries, and no decoding or retrieval choice has been
tuned on them: keep it that way, they are a check.

    python benchmarks/natural_questions.py bench-data/natural
    cd bench-data/natural && s2r eval clean phone --systems transcript,cascade,s2r,hybrid,e2e \\
        --out ../../benchmarks/results/natural-questions.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from assistant.eval.bench_build import VOICE_FAMILIES, corpus_rows, telephone
from assistant.eval.wiki_corpus import in_eval_split, load_summaries
from assistant.speech.audio import SAMPLE_RATE, write_flac
from assistant.speech.tts import check_voice, synthesize

CONDITIONS = ("clean", "phone")
QUESTIONS = Path(__file__).resolve().parent / "data" / "natural_questions.jsonl"


def load_questions(path: Path = QUESTIONS) -> list[dict[str, str]]:
    """The hand-written questions; each must name an eval-split article of the corpus."""
    wiki = load_summaries()
    questions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for q in questions:
        if q["title"] not in wiki or not in_eval_split(q["title"]):
            raise ValueError(f"{path}: {q['title']!r} is not an eval-split article")
    return questions


def speak_both(out: Path, qid: str, text: str, voice: str) -> str:
    """``text`` spoken by ``voice`` into ``out/clean`` and, band-limited, ``out/phone``;
    returns the clip's name in the benchmark."""
    clean = synthesize(text, voice)
    name = f"audio/{qid}.flac"
    for condition, (audio, rate) in {"clean": (clean, SAMPLE_RATE),
                                     "phone": telephone(clean)}.items():
        write_flac(out / condition / name, audio, rate)
    return name


def write_queries(out: Path, rows: list[dict]) -> None:
    """The same query rows for both conditions (only their audio differs)."""
    for condition in CONDITIONS:
        (out / condition / "queries.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the clean/ and phone/ benchmarks")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    questions = load_questions()
    for members in VOICE_FAMILIES.values():
        for voice in members:
            check_voice(voice)
    corpus = "".join(json.dumps(r, ensure_ascii=False) + "\n"
                     for r in corpus_rows(load_summaries(), []))
    rows: list[dict] = []
    for condition in CONDITIONS:
        (args.out / condition / "audio").mkdir(parents=True, exist_ok=True)
        (args.out / condition / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    clips = [(i, q, family, members[i % len(members)])
             for i, q in enumerate(questions) for family, members in VOICE_FAMILIES.items()]
    for i, q, family, voice in tqdm(clips, desc="synthesize", disable=args.no_progress):
        qid = f"n{i + 1:03d}-{family}"
        name = speak_both(args.out, qid, q["question"], voice)
        rows.append({"id": qid, "audio": name, "text": q["question"],
                     "relevant": [q["title"]], "kind": "natural", "voice": voice,
                     "family": family})
    write_queries(args.out, rows)
    print(f"{len(clips)} clips ({len(questions)} questions x {len(VOICE_FAMILIES)} voice families) "
          f"in {args.out}/clean and {args.out}/phone")


if __name__ == "__main__":
    main()
