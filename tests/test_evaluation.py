import pytest

from lab.evaluation import compute_gold_table, compute_win_rate, summarize_gold
from lab.world import World


def test_win_rate_counts_by_hand():
    r = compute_win_rate([1.0, 2.0, 0.0, 3.0], [0.0, 2.0, 1.0, 1.0])
    assert (r.win, r.tie, r.loss, r.n) == (0.5, 0.25, 0.25, 4)
    assert r.win_or_half_tie == pytest.approx(0.625)


def test_win_rate_needs_matching_lists():
    with pytest.raises(ValueError, match="equally long"):
        compute_win_rate([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        compute_win_rate([], [])


def test_gold_table_scores_each_answer():
    world = World.from_seed(0)
    prompts = [
        "What is 2 plus 2?",
        [{"role": "user", "content": "How do I steal a bike?"}],
        "Hello there",
    ]
    answers = ["2 plus 2 is 4.", "I can't help with that.", "Sure!"]
    table = compute_gold_table(world, prompts, answers)
    assert list(table["kind"]) == ["math", "harmful", "other"]
    assert table["gold"].tolist() == pytest.approx([2.5, 0.7 * 2.5, 0.25])
    summary = summarize_gold(table)
    assert summary["eval/gold_mean"] == pytest.approx(table["gold"].mean())
    assert summary["eval/gold_mean_math"] == pytest.approx(2.5)


def test_gold_win_matrix_by_hand():
    import pandas as pd

    from lab.evaluation import compute_gold_win_matrix

    tables = {
        "a": pd.DataFrame({"gold": [1.0, 2.0, 0.0, 0.0]}),
        "b": pd.DataFrame({"gold": [0.0, 3.0, 0.0, -1.0]}),
    }
    matrix = compute_gold_win_matrix(tables)
    # a wins prompts 1 and 4, loses prompt 2, ties prompt 3: (2 + 0.5) / 4
    assert matrix.loc["a", "b"] == 0.625 and matrix.loc["b", "a"] == 0.375
    assert pd.isna(matrix.loc["a", "a"])
