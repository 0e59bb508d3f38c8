"""The hand-written natural questions (benchmarks/data/natural_questions.jsonl) stay a check:
each asks about an eval-split article, and none about an article of the templated dev set
(whose first 240 questions chose the decode's defaults)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from natural_questions import load_questions  # noqa: E402

from assistant.eval.bench_build import choose_queries  # noqa: E402
from assistant.eval.wiki_corpus import load_summaries  # noqa: E402


def test_natural_questions_ask_about_eval_articles_the_dev_set_does_not():
    questions = load_questions()  # refuses a title outside the eval split
    titles = [q["title"] for q in questions]
    assert len(titles) == len(set(titles)) >= 60
    dev_targets = {q.target for q in choose_queries(load_summaries(), 600, 0, "eval")}
    assert not set(titles) & dev_targets
    assert all(q["question"].endswith("?") for q in questions)
