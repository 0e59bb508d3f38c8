"""Answering benchmark: spoken questions of the dev benchmark, answered end to end and scored.

For a seeded sample of the ``lead`` questions of a benchmark directory (``s2r bench build``:
"What was a British writer and physician?"), each spoken question goes through the whole turn
with the real local model: integrated S2R retrieval, the focused prompt, streamed generation.
The gold answer is the key phrase the question asks for, the title of its relevant passage
("Arthur Conan Doyle"): an answer is correct when it holds every content word of it.  The
questions come from eval-split articles of the dev corpus only, never from held-out material.

Per question, from the end of the audio (the decoded clip handed over, models warm):
``sources_ms`` (ranked sources exist), ``first_token_ms``, ``first_audio_ms`` (the first
piece ``s2r talk``'s sentence buffer would speak is complete and synthesized by the
speech-out engine)
and ``total_ms``.  Scores: correctness, citation of the relevant source, and, on the questions
whose relevant passage was not retrieved, how often the model answered anyway (wrong) instead
of saying it does not know.  The model always runs (``abstain_below`` 0); the abstention
trade-off (correct, wrong, abstained) is then read off the recorded relevance for a range of
thresholds.  ``--turns 10`` asks the questions as 10-turn conversations (history kept, the
prompt's prefix reused), 1 as single questions.  Prints Markdown tables, writes JSON (--out).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from typing import Any

import httpx
import numpy as np
import spoken_turns

from assistant.answer.answering import Answerer, Question
from assistant.answer.conversation import Conversation
from assistant.eval.bench_format import Query
from assistant.interfaces.talk.loop import SentenceBuffer
from assistant.speech.answer_voice import SpeechEngine, open_speech_engine, speakable
from assistant.speech.audio import decode_audio
from assistant.text import normalize_words

IDK = "don't know"
JUDGE = "\n\nDo these sources state the answer to the question? Reply yes or no."
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
# words a title's key phrase does not need ("Battle of Hastings" -> battle, hastings)
MINOR = {"a", "an", "the", "of", "and", "in", "on", "for", "to", "de", "la", "le", "von", "van"}


def singular(word: str) -> str:
    """A word without a possessive's "'s" or a plural's final "s", so "pterosaurs" names
    "Pterosaur" and "Python's" names "Python"."""
    word = re.sub(r"['’]s$", "", word)
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") \
        else word


def key_words(title: str) -> set[str]:
    """The content words of a title, without its disambiguation ("Mercury (planet)"), in the
    singular."""
    return {singular(w) for w in normalize_words(re.sub(r"\s*\(.*?\)", "", title))} - MINOR


def is_correct(answer: str, titles: set[str]) -> bool:
    words = {singular(w) for w in normalize_words(answer)}
    return any(key_words(title) <= words for title in titles)


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench, runtime, base = spoken_turns.open_bench(args)
    pool = [q for q in bench.queries if q.kind in args.kinds]
    queries = random.Random(args.seed).sample(pool, min(args.queries, len(pool)))
    print(f"model: {runtime.llm.description}", file=sys.stderr)
    clips = [decode_audio(q.audio) for q in queries]
    speech = open_speech_engine(runtime.settings)
    configs = []
    for top_k in args.top_k:
        for budget in args.context_tokens:
            # one runtime (one store, one model server) for every configuration
            runtime.settings = settings = runtime.settings.replace(
                answer_top_k=top_k, context_tokens=budget, abstain_below=0.0)
            Answerer(runtime, Conversation(0)).answer(Question(text="warm up"))
            rows = []
            for start in range(0, len(queries), args.turns):
                answerer = Answerer(runtime, Conversation(
                    settings.tuning.history_turns if args.turns > 1 else 0,
                    settings.tuning.history_tokens))
                for turn, (query, clip) in enumerate(zip(queries[start:start + args.turns],
                                                         clips[start:start + args.turns],
                                                         strict=True)):
                    rows.append(ask(answerer, speech, query, clip, turn, args.judge))
                    print(f"top_k {top_k} budget {budget} [{len(rows)}/{len(queries)}] "
                          f"{rows[-1]['first_token_ms']:.0f} ms "
                          f"{'ok' if rows[-1]['correct'] else 'WRONG'}: {rows[-1]['answer']!r}",
                          file=sys.stderr)
            configs.append(summarise(top_k, budget, rows))
    result = {
        "benchmark": str(bench.root), "queries": len(queries), "kinds": args.kinds,
        "turns": args.turns, "seed": args.seed, "model": runtime.llm.description,
        "temperature": runtime.settings.tuning.llm_temperature,
        "speech_out": type(speech).__name__,
        **spoken_turns.provenance(),
        "configs": configs}
    runtime.close()
    base.close()
    return result


def judge(answerer: Answerer, messages: list[dict[str, Any]]) -> float:
    """The model's own judgement, after the timed answer: P(yes) that the sources it was shown
    state the answer (the prompt with one question added; its prefix is in llama.cpp's cache)."""
    config = answerer.runtime.llm.config
    asked = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + JUDGE}]
    body = config.body(asked, stream=False, max_tokens=1, temperature=0.0, logprobs=True,
                       top_logprobs=10)
    reply = httpx.post(config.endpoint, json=body, headers=config.headers(), timeout=120).json()
    first = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    odds = {"yes": 0.0, "no": 0.0}
    for candidate in first:
        word = candidate["token"].strip().lower()
        if word in odds:
            odds[word] += float(np.exp(candidate["logprob"]))
    return round(odds["yes"] / max(odds["yes"] + odds["no"], 1e-9), 4)


def ask(answerer: Answerer, speech: SpeechEngine, query: Query, clip: np.ndarray,
        turn: int, judging: bool = False) -> dict[str, Any]:
    """One spoken turn, timed from the end of its audio; with ``judging``, the model's own
    judgement of its sources afterwards (``judge_yes``)."""
    first: list[tuple[float, str]] = []  # when the voice loop would speak, and what

    def on_piece(piece: str) -> None:
        if not first:
            first.append((time.perf_counter(), piece))

    pieces = SentenceBuffer(on_piece)
    t0 = time.perf_counter()
    question = Question(audio=clip)
    retrieved = answerer.retrieve(question)
    prepared = answerer.prepare(question, retrieved=retrieved)
    answer = answerer.respond(prepared, t0, answerer.chat(), pieces.add)
    pieces.flush()
    judged = judge(answerer, prepared.messages) if judging else None
    scores = [h.score for h in retrieved.hits] + [0.0, 0.0]
    spoken_at, spoken = first[0] if first else (time.perf_counter(), "")
    t_speak = time.perf_counter()
    speech.synthesize(speakable(spoken) or "I don't know.")
    synth_ms = (time.perf_counter() - t_speak) * 1e3
    sentence_ms = (spoken_at - t0) * 1e3
    sources = [h.payload.get("source") for h in answer.sources]
    cited = {sources[n - 1] for n in answer.cited}
    t = answer.timings_ms
    retrieved = bool(query.relevant & set(sources))
    return {
        "query": query.id, "turn": turn, "family": query.family, "heard": answer.transcript,
        "gold": sorted(query.relevant), "answer": answer.text,
        "correct": is_correct(answer.text, query.relevant),
        "i_dont_know": IDK in answer.text, "relevant_in_sources": retrieved,
        "cited_relevant": bool(query.relevant & cited), "cited_any": bool(answer.cited),
        "relevance": round(prepared.relevance, 4), "top_score": round(scores[0], 5),
        "margin": round(scores[0] - scores[1], 5),
        "sources_ms": round(t["retrieve"], 1),
        "first_token_ms": round(t.get("first_token", t["total"]), 1),
        "first_audio_ms": round(sentence_ms + synth_ms, 1),
        "total_ms": round(t["total"], 1), "error": answer.error,
        **({"judge_yes": judged} if judged is not None else {})}


def tradeoff(rows: list[dict[str, Any]], signal: str = "relevance") -> list[dict[str, Any]]:
    """Correct / wrong / abstained shares had the model been skipped below each threshold of
    ``signal`` (a model's own "I don't know" counts as abstained).  Relevance has fixed
    thresholds; the fused retrieval score, whose scale depends on the legs, its deciles."""
    values = [r[signal] for r in rows]
    thresholds = THRESHOLDS if signal == "relevance" else [
        0.0, *np.unique(np.round(np.percentile(values, range(10, 60, 10)), 5))]
    table = []
    for threshold in thresholds:
        outcome = ["abstained" if r[signal] < threshold or r["i_dont_know"]
                   else "correct" if r["correct"] else "wrong" for r in rows]
        missed = [o for o, r in zip(outcome, rows, strict=True) if not r["relevant_in_sources"]]
        found = [o for o, r in zip(outcome, rows, strict=True) if r["relevant_in_sources"]]
        table.append({
            "signal": signal, "threshold": float(threshold),
            **{k: round(outcome.count(k) / len(rows), 3)
               for k in ("correct", "wrong", "abstained")},
            "correct_when_retrieved": round(found.count("correct") / max(len(found), 1), 3),
            "wrong_when_not_retrieved": round(missed.count("wrong") / max(len(missed), 1), 3)})
    return table


def summarise(top_k: int, budget: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    share = lambda key: round(float(np.mean([r[key] for r in rows])), 3)  # noqa: E731
    times = {key: {"p50": percentile([r[key] for r in rows], 50),
                   "p95": percentile([r[key] for r in rows], 95)}
             for key in ("sources_ms", "first_token_ms", "first_audio_ms", "total_ms")}
    later = [r["first_token_ms"] for r in rows if r["turn"] > 0]
    return {"top_k": top_k, "context_tokens": budget, **times,
            "first_token_ms_after_turn_1": {"p50": percentile(later, 50),
                                            "p95": percentile(later, 95)},
            "correct": share("correct"), "relevant_in_sources": share("relevant_in_sources"),
            "cited_relevant": share("cited_relevant"), "i_dont_know": share("i_dont_know"),
            "tradeoff": [*tradeoff(rows), *tradeoff(rows, "top_score"),
                         *tradeoff(rows, "margin"),
                         *(tradeoff(rows, "judge_yes") if "judge_yes" in rows[0] else [])],
            "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"{result['queries']} spoken `{'/'.join(result['kinds'])}` questions from "
             f"`{result['benchmark']}`, {result['turns']} turn(s) per conversation, model "
             f"{result['model']}, speech out {result['speech_out']}, {result['machine']}", "",
             f"`{result['command']}`", "",
             "| top-k | budget | sources p50 | first token p50 / p95 | first audio p50 / p95 | "
             "total p50 | correct | correct when retrieved | relevant shown | cites it | "
             "\"don't know\" |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["configs"]:
        t0 = c["tradeoff"][0]
        lines.append(
            f"| {c['top_k']} | {c['context_tokens']} | {c['sources_ms']['p50']:.0f} ms | "
            f"{c['first_token_ms']['p50']:.0f} / {c['first_token_ms']['p95']:.0f} ms | "
            f"{c['first_audio_ms']['p50']:.0f} / {c['first_audio_ms']['p95']:.0f} ms | "
            f"{c['total_ms']['p50']:.0f} ms | {c['correct']:.2f} | "
            f"{t0['correct_when_retrieved']:.2f} | {c['relevant_in_sources']:.2f} | "
            f"{c['cited_relevant']:.2f} | {c['i_dont_know']:.2f} |")
    for c in result["configs"]:
        lines += ["", f"Abstention below a relevance threshold (top-k {c['top_k']}, budget "
                  f"{c['context_tokens']}):", "",
                  "| signal | threshold | correct | wrong | abstained | correct when retrieved | "
                  "wrong when not retrieved |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {t['signal']} | {t['threshold']:.4g} | {t['correct']:.2f} | "
                  f"{t['wrong']:.2f} | "
                  f"{t['abstained']:.2f} | {t['correct_when_retrieved']:.2f} | "
                  f"{t['wrong_when_not_retrieved']:.2f} |" for t in c["tradeoff"]]
    return "\n".join(lines)


def main() -> None:
    parser = spoken_turns.parser(__doc__)
    parser.add_argument("--queries", type=int, default=40, help="questions sampled (default 40)")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=["lead"],
                        help="query kinds with a gold answer (default lead)")
    parser.add_argument("--turns", type=int, default=1,
                        help="questions per conversation (default 1: single questions)")
    parser.add_argument("--top-k", type=lambda s: [int(k) for k in s.split(",")], default=[3],
                        help="comma-separated sources per prompt to compare (default 3)")
    parser.add_argument("--context-tokens", type=lambda s: [int(k) for k in s.split(",")],
                        default=[1500], help="comma-separated source budgets (default 1500)")
    parser.add_argument("--judge", action="store_true",
                        help="also ask the model, after each timed answer, whether its sources "
                             "state the answer: an abstention signal (judge_yes)")
    args = parser.parse_args()
    spoken_turns.report(run(args), markdown, args.out)


if __name__ == "__main__":
    main()
