"""Metric code against cases computed by hand."""

import math

import pytest

from assistant.eval.metrics import ndcg_at, recall_at, reciprocal_rank, word_errors


def test_reciprocal_rank():
    assert reciprocal_rank(["a", "b", "c"], {"a"}) == 1.0
    assert reciprocal_rank(["x", "y", "b", "a"], {"a", "b"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"] * 10 + ["a"], {"a"}) == 0.0  # rank 11 is outside @10
    assert reciprocal_rank([], {"a"}) == 0.0


def test_recall_with_several_relevant():
    ranked = ["a", "x", "b", "y", "z", "c"]
    relevant = {"a", "b", "c", "d"}
    assert recall_at(ranked, relevant, 1) == 0.25
    assert recall_at(ranked, relevant, 5) == 0.5
    assert recall_at(ranked, relevant, 10) == 0.75


def test_ndcg_by_hand():
    # relevant at ranks 2 and 4 of 2 relevant: DCG = 1/log2(3) + 1/log2(5), IDCG = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at(["x", "a", "y", "b"], {"a", "b"}) == pytest.approx(expected)
    assert ndcg_at(["a", "b"], {"a", "b"}) == pytest.approx(1.0)
    # 12 relevant: the ideal list has 10 hits, so 10 hits at the top is perfect
    many = {str(i) for i in range(12)}
    assert ndcg_at([str(i) for i in range(10)], many) == pytest.approx(1.0)
    assert ndcg_at(["x"], {"a"}) == 0.0


def test_word_errors():
    assert word_errors("The cat sat on the mat.", "the cat sat on the mat") == (0, 6)
    assert word_errors("the cat sat", "the bat sat down") == (2, 3)  # 1 sub + 1 insertion
    assert word_errors("a b c d", "a d") == (2, 4)  # 2 deletions
    assert word_errors("state-of-the-art", "state of the art") == (0, 4)
