"""Exact tests for lab.leaderboard: Bradley–Terry against hand-computed values and a reference."""

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from lab.leaderboard import (
    MIN_MODEL_BATTLES,
    REG,
    compute_battles,
    compute_bootstrap,
    compute_bt,
    compute_groups,
    compute_model_counts,
    compute_outcome_counts,
    compute_pairs_met,
    compute_rank_ub,
    compute_ranking,
    compute_repeat_agreement,
    compute_vote_counts,
    compute_win_matrix,
    encode_battles,
    open_sides,
    vote_to_battles,
    win_counts,
)
from lab.plots import plot_leaderboard, plot_win_matrix
from lab.style_control import (
    STYLE_FEATURES,
    compute_style_battles,
    compute_style_bt,
    compute_style_counts,
    compute_style_features,
    compute_style_ranking,
)


def battles(*rows):
    """(model_a, model_b, winner) tuples -> a battles table."""
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


A_WINS_3_OF_4 = battles(*[("A", "B", "model_a")] * 3, ("A", "B", "model_b"))


def random_battles(n=600, seed=0, skill=(0.0, 0.4, 0.8, 1.6)):
    """Battles among len(skill) models drawn from a true BT model, some ties."""
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(len(skill))]
    rows = []
    for _ in range(n):
        i, j = rng.choice(len(skill), size=2, replace=False)
        u = rng.random()
        p = sigmoid(skill[i] - skill[j])
        winner = "tie" if u < 0.1 else ("model_a" if u < 0.1 + 0.9 * p else "model_b")
        rows.append((names[i], names[j], winner))
    return battles(*rows)


# ---------------------------------------------------------------- Bradley–Terry


def test_three_wins_of_four_is_400_log10_3():
    ratings = compute_bt(A_WINS_3_OF_4)
    gap = ratings["A"] - ratings["B"]
    # The MLE gap is 400·log10(3) = 190.85. The prior shrinks it: at the optimum
    # 3 - 4·σ(d) = REG·d/2 (d the gap in nats), which moves d by ≈ REG·d/2 / (4·σ'(d)·2)
    # = 0.0055 / 1.5 ≈ 0.0037 nats ≈ 0.6%, i.e. 1.3 Elo. So 2 Elo is the tolerance.
    assert gap == pytest.approx(400 * math.log10(3), abs=2.0)
    assert gap < 400 * math.log10(3)  # shrunk towards 0, never away
    d = gap * math.log(10) / 400
    assert 3 - 4 * sigmoid(d) == pytest.approx(REG * d / 2, abs=1e-9)  # exact optimality
    assert ratings.mean() == pytest.approx(1000)
    assert list(ratings.index) == ["A", "B"] and ratings.name == "rating"


def test_without_the_prior_the_gap_is_exactly_the_mle():
    ratings = compute_bt(A_WINS_3_OF_4, reg=0)
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert ratings.mean() == pytest.approx(1000)


def test_scale_base_and_init():
    natural = compute_bt(A_WINS_3_OF_4, scale=1, base=math.e, init=0, reg=0)
    assert natural.tolist() == pytest.approx([math.log(3) / 2, -math.log(3) / 2])
    shifted = compute_bt(A_WINS_3_OF_4, init=1500)
    assert (shifted - compute_bt(A_WINS_3_OF_4)).tolist() == pytest.approx([500, 500])


def test_ties_only_give_equal_ratings():
    ratings = compute_bt(battles(("A", "B", "tie"), ("B", "C", "tie"), ("A", "C", "tie")))
    assert ratings.tolist() == [1000, 1000, 1000]
    assert list(ratings.index) == ["A", "B", "C"]  # equal ratings sort by name


def test_a_tie_is_half_a_win_each_way():
    # 1 win + 1 tie for A against B is A scoring 1.5 of 2, the same as 3 of 4 at half weight.
    one_win_one_tie = compute_bt(battles(("A", "B", "model_a"), ("B", "A", "tie")), reg=0)
    assert one_win_one_tie["A"] - one_win_one_tie["B"] == pytest.approx(400 * math.log10(3))


def test_unbeaten_model_gets_a_finite_rating():
    ratings = compute_bt(battles(*[("A", "B", "model_a")] * 5))
    d = (ratings["A"] - ratings["B"]) * math.log(10) / 400
    assert math.isfinite(d) and d > 0
    assert 5 * (1 - sigmoid(d)) == pytest.approx(REG * d / 2, abs=1e-9)


def test_invariant_to_row_order_and_side():
    table = random_battles()
    ratings = compute_bt(table)
    shuffled = table.sample(frac=1, random_state=1).reset_index(drop=True)
    pd.testing.assert_series_equal(compute_bt(shuffled), ratings, rtol=0, atol=1e-9)
    swap = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    mirrored = battles(*zip(table.model_b, table.model_a, table.winner.map(swap), strict=True))
    pd.testing.assert_series_equal(compute_bt(mirrored), ratings, rtol=0, atol=1e-9)


def test_matches_a_minorize_maximize_reference():
    # Hunter's (2004) MM iteration for the plain BT MLE, a different algorithm altogether:
    # strength_i <- wins_i / Σ_j games_ij / (strength_i + strength_j).
    table = random_battles(n=2000)
    names = sorted(set(table.model_a) | set(table.model_b))
    wins = pd.DataFrame(0.0, index=names, columns=names)
    for a, b, w in table.itertuples(index=False):
        score = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}[w]
        wins.loc[a, b] += score
        wins.loc[b, a] += 1 - score
    wins, games = wins.to_numpy(), (wins + wins.T).to_numpy()
    strength = np.ones(len(names))
    for _ in range(5000):
        strength = wins.sum(1) / (games / (strength[:, None] + strength[None, :])).sum(1)
        strength /= np.exp(np.log(strength).mean())
    reference = 1000 + 400 * np.log10(strength)
    ours = compute_bt(table, reg=0).reindex(names).to_numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert list(compute_bt(table).index) == ["m3", "m2", "m1", "m0"]  # true skill order


def test_rejects_unknown_winner_label():
    with pytest.raises(ValueError, match=r"got \['A'\]"):
        compute_bt(battles(("A", "B", "A")))


def test_empty_battles():
    assert compute_bt(battles()).empty
    assert compute_bootstrap(battles()).columns.tolist() == [
        "model", "rating", "lower", "upper", "votes", "group",
    ]  # fmt: skip


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_interval_contains_estimate_and_is_deterministic():
    table = random_battles()
    boot = compute_bootstrap(table, rounds=100, seed=3)
    assert boot.columns.tolist() == ["model", "rating", "lower", "upper", "votes", "group"]
    assert boot["model"].tolist() == list(compute_bt(table).index)
    assert boot["rating"].tolist() == compute_bt(table).tolist()
    assert ((boot["lower"] < boot["rating"]) & (boot["rating"] < boot["upper"])).all()
    pd.testing.assert_frame_equal(compute_bootstrap(table, rounds=100, seed=3), boot)
    assert not compute_bootstrap(table, rounds=100, seed=4).equals(boot)
    played = pd.concat([table.model_a, table.model_b]).value_counts()
    assert boot.set_index("model")["votes"].to_dict() == played.to_dict()
    assert boot["votes"].sum() == 2 * len(table)


def test_bootstrap_interval_narrows_with_more_battles():
    small = compute_bootstrap(random_battles(n=200), rounds=100)
    large = compute_bootstrap(random_battles(n=3200), rounds=100)
    width = lambda t: (t["upper"] - t["lower"]).mean()  # noqa: E731
    assert width(large) < width(small) / 2  # ≈ 1/4 in theory: 16x the data


def test_bootstrap_interval_is_95_percent_wide():
    """A beats B in 300 of 400: the rating gap's standard error is 1 / sqrt(n p (1 - p)) in
    natural units, x 400 / ln 10 in Elo; each of two ratings carries half the gap."""
    table = battles(*[("a", "b", "model_a")] * 300, *[("a", "b", "model_b")] * 100)
    boot = compute_bootstrap(table, rounds=400, seed=0)
    se_gap = 400 / math.log(10) / math.sqrt(400 * 0.75 * 0.25)
    half = (boot["upper"] - boot["lower"]) / 2
    assert half.tolist() == pytest.approx([1.96 * se_gap / 2] * 2, rel=0.15)


def test_bootstrap_survives_a_model_missing_from_some_resamples():
    rare = battles(("rare", "m0", "model_a"), ("m1", "rare", "model_a"))  # a win and a loss
    table = pd.concat([random_battles(n=100), rare])
    boot = compute_bootstrap(table, rounds=50).set_index("model")
    # P(both battles of 102 missing from a resample) ≈ 1/e², so some rounds lack "rare".
    assert boot.loc["rare", "votes"] == 2
    assert np.isfinite(boot.loc["rare", ["lower", "upper"]].astype(float)).all()


# ---------------------------------------------------------------- what the votes cannot bound

UNBEATEN = battles(*[("A", "B", "model_a")] * 20)


def test_a_model_that_only_won_has_no_upper_bound_and_one_that_only_lost_no_lower():
    boot = compute_bootstrap(UNBEATEN, rounds=20).set_index("model")
    assert boot.loc["A", "upper"] == math.inf and boot.loc["B", "lower"] == -math.inf
    assert math.isfinite(boot.loc["A", "lower"]) and math.isfinite(boot.loc["B", "upper"])
    ranking = compute_ranking(UNBEATEN, rounds=20)
    assert ranking["model"].tolist() == ["A", "B"] and ranking["rank"].tolist() == [1, 2]


def test_open_sides_by_hand_a_tie_bounds_both_sides():
    table = battles(
        ("W", "X", "model_a"),  # W only wins: unbounded above
        ("T", "X", "model_a"), ("T", "X", "tie"),  # T wins and ties: bounded, a tie is half a loss
        ("Y", "Z", "tie"), ("Z", "Y", "tie"),  # Y and Z only tie: bounded on both sides
    )  # fmt: skip
    models = ["T", "W", "X", "Y", "Z"]
    no_wins, no_losses = open_sides(win_counts(*encode_battles(table, models), len(models)))
    assert no_wins.tolist() == [False, False, False, False, False]  # X tied T
    assert no_losses.tolist() == [False, True, False, False, False]
    boot = compute_bootstrap(table, rounds=20).set_index("model")
    assert np.isfinite(boot.loc[["T", "X"], ["lower", "upper"]].to_numpy(float)).all()
    assert boot.loc["W", "upper"] == math.inf
    # Y and Z only tied: every resample is the same, and a zero-width interval bounds nothing.
    assert boot.loc[["Y", "Z"], ["lower", "upper"]].isna().all().all()
    assert compute_rank_ub([990.0, np.nan], [1010.0, np.nan]).tolist() == [1, 1]


def test_a_winless_model_does_not_shift_the_others():
    """Centred on the models with wins and losses: a prior-made rating moves nobody else."""
    mixed = random_battles(n=300, skill=(0.0, 0.4, 0.8))
    with_loser = pd.concat([mixed, battles(*[(f"m{i % 3}", "base", "model_a") for i in range(9)])])
    ratings = compute_bt(with_loser)
    assert ratings.drop("base").mean() == pytest.approx(1000)  # was ≈ 1000 + 1/4 of base's gap
    gaps = compute_bt(mixed) - compute_bt(mixed).mean()
    assert (ratings.drop("base") - 1000).to_numpy() == pytest.approx(
        gaps.reindex(ratings.drop("base").index).to_numpy(), abs=5
    )


# ---------------------------------------------------------------- groups never compared

APART = battles(
    *[("A", "B", "model_a")] * 15, *[("A", "B", "model_b")] * 5,
    *[("C", "D", "model_a")] * 15, *[("C", "D", "model_b")] * 5,
)  # fmt: skip


def test_groups_by_hand():
    table = battles(("a", "b", "tie"), ("c", "d", "tie"), ("e", "c", "model_a"), ("f", "g", "tie"))
    assert compute_groups(table).to_dict() == {
        "a": 2, "b": 2, "c": 1, "d": 1, "e": 1, "f": 3, "g": 3,
    }  # fmt: skip  # the largest first; equal sizes by name
    assert compute_groups(random_battles()).eq(1).all()
    assert compute_groups(battles()).empty


def test_models_never_compared_are_ranked_within_their_group_only():
    ranking = compute_ranking(APART, rounds=50)
    assert ranking[["model", "group", "rank"]].values.tolist() == [
        ["A", 1, 1], ["B", 1, 2], ["C", 2, 1], ["D", 2, 2],
    ]  # fmt: skip  # rank 3 for B and D claimed both were below A and C
    assert compute_bootstrap(APART, rounds=5)["group"].tolist() == [1, 2, 1, 2]  # best first


# ---------------------------------------------------------------- win matrix and counts

MATRIX_BATTLES = battles(
    ("A", "B", "model_a"),
    ("B", "A", "model_b"),  # A wins again, from the other side
    ("A", "B", "model_b"),
    ("B", "A", "tie"),
    ("C", "A", "model_a"),
)


def test_win_matrix_by_hand():
    matrix = compute_win_matrix(MATRIX_BATTLES, order=["A", "B", "C"])
    expected = [
        [math.nan, 2.5 / 4, 0.0],  # A: 2 wins + 1 tie of 4 against B; lost its one to C
        [1.5 / 4, math.nan, math.nan],  # B never met C
        [1.0, math.nan, math.nan],
    ]
    np.testing.assert_array_equal(matrix.to_numpy(), expected)
    assert list(matrix.index) == list(matrix.columns) == ["A", "B", "C"]
    # By default rows follow the BT ranking.
    assert list(compute_win_matrix(MATRIX_BATTLES).index) == list(compute_bt(MATRIX_BATTLES).index)


def test_win_matrix_is_complementary():
    matrix = compute_win_matrix(random_battles()).to_numpy()
    met = ~np.isnan(matrix)
    np.testing.assert_allclose((matrix + matrix.T)[met], 1.0)


def test_win_matrix_rejects_order_missing_a_model():
    with pytest.raises(ValueError, match=r"missing from the order: \['C'\]"):
        compute_win_matrix(MATRIX_BATTLES, order=["A", "B"])


def test_vote_counts_by_hand():
    counts = compute_vote_counts(MATRIX_BATTLES, order=["A", "B", "C"])
    assert counts.to_numpy().tolist() == [[0, 4, 1], [4, 0, 0], [1, 0, 0]]


# ---------------------------------------------------------------- votes -> battles, agreement


def test_vote_to_battles_three_models():
    models = ["A", "B", "C"]
    assert vote_to_battles(models, "win", 1) == [("A", "B", "model_b"), ("B", "C", "model_a")]
    ties = [("A", "B", "tie"), ("A", "C", "tie"), ("B", "C", "tie")]
    assert vote_to_battles(models, "tie", None) == ties
    # "Both are bad" says no answer is better, not that every pair is equal: no battle.
    assert vote_to_battles(models, "both_bad", pd.NA) == []


@pytest.mark.parametrize(
    ("outcome", "winner", "problem"),
    [("win", None, "needs a winner"), ("win", 3, "needs a winner"), ("draw", None, "unknown")],
)
def test_vote_to_battles_rejects(outcome, winner, problem):
    with pytest.raises(ValueError, match=problem):
        vote_to_battles(["A", "B", "C"], outcome, winner)


def mode_votes(*rows):
    """(mode, models, outcome, winner) tuples -> a votes table."""
    return pd.DataFrame(rows, columns=["mode", "models", "outcome", "winner"])


MIXED_VOTES = mode_votes(
    ("battle", ["A", "B"], "win", 0),
    ("simulated", ["B", "C"], "tie", None),
    ("battle", ["A", "C"], "both_bad", None),
    ("compare", ["A", "B", "C"], "win", 2),  # names on screen: never rated
    ("compare", ["A", "B", "C", "D", "E"], "both_bad", None),  # was ten ties, is nothing
)


def test_battles_come_from_blind_votes_only():
    assert compute_battles(MIXED_VOTES).values.tolist() == [
        ["A", "B", "model_a"],
        ["B", "C", "tie"],
    ]
    everything = compute_battles(MIXED_VOTES, modes=None)
    assert everything.values.tolist()[2:] == [["A", "C", "model_b"], ["B", "C", "model_b"]]
    assert compute_battles(MIXED_VOTES.iloc[4:]).columns.tolist() == [
        "model_a",
        "model_b",
        "winner",
    ]
    assert compute_battles(MIXED_VOTES.iloc[4:], modes=None).empty


def test_outcome_counts():
    assert compute_outcome_counts(MIXED_VOTES) == {
        "votes": 5, "rated": 2, "both_bad": 1, "compare": 2,
    }  # fmt: skip


def test_rank_ub_by_hand():
    # Overlapping intervals share a rank; a model is behind only those clearly above it.
    assert compute_rank_ub([10, 0, -10], [20, 15, 5]).tolist() == [1, 1, 2]
    assert compute_rank_ub([30, 10, -20], [40, 20, 0]).tolist() == [1, 2, 3]
    assert compute_rank_ub([30, 5, -20], [40, 35, 10]).tolist() == [1, 1, 2]
    assert compute_rank_ub([0, 0], [0, 0]).tolist() == [1, 1]  # equal is not above
    assert compute_rank_ub([], []).tolist() == []
    inf = math.inf
    assert compute_rank_ub([500, -inf, 0], [inf, -400, 100]).tolist() == [1, 3, 2]  # open sides
    assert compute_rank_ub([-inf, -inf], [inf, inf]).tolist() == [1, 1]
    # Within groups: the second group's best is first of its own, not third of all.
    assert compute_rank_ub([30, 10, 5, 0], [40, 20, 8, 2], [1, 1, 2, 2]).tolist() == [1, 2, 1, 2]


def test_model_counts_and_pairs_by_hand():
    counts = compute_model_counts(MATRIX_BATTLES)
    assert counts.values.tolist() == [
        ["A", 5, 2, 1, 2],  # beat B twice, tied B, lost to B and to C
        ["B", 4, 1, 1, 2],
        ["C", 1, 1, 0, 0],
    ]
    assert counts.columns.tolist() == ["model", "battles", "wins", "ties", "losses"]
    assert compute_pairs_met(MATRIX_BATTLES) == 2  # A-B and A-C; B never met C
    # Six models met in 3 pairs (the old status line said "6 model pairs": it counted models).
    six = battles(("a", "b", "tie"), ("b", "a", "model_a"), ("c", "d", "tie"), ("e", "f", "tie"))
    assert compute_pairs_met(six) == 3 and len(compute_model_counts(six)) == 6
    assert compute_pairs_met(battles()) == 0 and compute_model_counts(battles()).empty


def test_ranking_ranks_and_leaves_out_models_with_few_battles():
    table = pd.concat([random_battles(n=400), battles(*[("rare", "m0", "model_a")] * 4)])
    ranking = compute_ranking(table, rounds=50)
    assert ranking.columns.tolist() == [
        "rank", "model", "rating", "lower", "upper", "votes", "group",
    ]  # fmt: skip
    assert "rare" not in set(ranking["model"]) and (ranking["votes"] >= MIN_MODEL_BATTLES).all()
    # The fit still used rare's battles: the ratings are those of the full table.
    full = compute_bootstrap(table, rounds=50).set_index("model")
    pd.testing.assert_series_equal(
        ranking.set_index("model")["rating"], full.loc[ranking["model"], "rating"]
    )
    assert ranking["rank"].tolist() == compute_rank_ub(ranking["lower"], ranking["upper"]).tolist()
    assert ranking["rank"].is_monotonic_increasing and ranking["rank"].iloc[0] == 1
    assert ranking["model"].iloc[0] == "m3"  # the strongest, clearly ahead
    assert "rare" in set(compute_ranking(table, rounds=50, min_model_battles=4)["model"])


def votes(*rows):
    """(annotator, prompt, models, outcome, winner) tuples -> a votes table."""
    return pd.DataFrame(rows, columns=["annotator", "prompt", "models", "outcome", "winner"])


def test_repeat_agreement_by_hand():
    table = votes(
        ("u1", "p1", ["A", "B"], "win", 0),
        ("u2", "p1", ["B", "A"], "win", 1),  # A again, shown on the right: agrees with u1
        ("u3", "p1", ["A", "B"], "tie", None),  # disagrees with u1 and with u2
        ("u4", "p1", ["A", "B", "C"], "win", 2),  # C beats A and B; says nothing on A vs B
        ("u5", "p1", ["C", "A"], "win", 0),  # agrees with u4 on A vs C
        ("u1", "p2", ["A", "B"], "win", 0),  # the same annotator twice: not a comparison
        ("u1", "p2", ["A", "B"], "win", 1),
        ("u6", "p3", ["A", "B"], "tie", None),
        ("u7", "p3", ["A", "B"], "both_bad", None),  # both_bad counts as a tie: agrees
        ("u8", "p4", ["A", "B"], "win", 0),  # another prompt, nobody to compare with
    )
    # Comparisons: p1 A-B (u1,u2) yes, (u1,u3) no, (u2,u3) no; p1 A-C (u4,u5) yes; p3 yes.
    assert compute_repeat_agreement(table) == {"agreement": 3 / 5, "n": 5}


def test_repeat_agreement_none():
    result = compute_repeat_agreement(votes(("u1", "p1", ["A", "B"], "win", 0)))
    assert result["n"] == 0 and math.isnan(result["agreement"])
    assert compute_repeat_agreement(votes())["n"] == 0


# ---------------------------------------------------------------- figures


def test_leaderboard_and_win_matrix_figures():
    table = compute_bootstrap(MATRIX_BATTLES, rounds=20)
    fig = plot_leaderboard(table)
    bars = fig.data[0].error_y
    assert list(fig.data[0].x) == table["model"].tolist()
    bounded = np.isfinite(table["upper"]).to_numpy()  # C only won: open above
    assert bounded.tolist() == [False, True, True]
    np.testing.assert_allclose(bars.array[bounded], (table["upper"] - table["rating"])[bounded])
    np.testing.assert_allclose(bars.arrayminus, table["rating"] - table["lower"])
    top = fig.layout.yaxis.range[1]  # the open bar runs past the plot's edge and reads ∞
    assert table["rating"][0] + bars.array[0] > top and fig.data[0].customdata[0][1] == "∞"
    heat = plot_win_matrix(compute_win_matrix(MATRIX_BATTLES, order=["A", "B", "C"])).data[0]
    assert list(heat.y) == ["A", "B", "C"] and heat.z[0][1] == 2.5 / 4
    assert isinstance(plot_leaderboard(compute_bootstrap(battles())), go.Figure)  # empty is fine


# ---------------------------------------------------------------- style control


def test_style_counts_by_hand():
    text = "# Title\nSome **bold** words.\n- one\n* two\n3. three\nnot-a-list __also bold__"
    assert compute_style_counts(text) == {"length": 14, "headers": 1, "lists": 3, "bold": 2}
    assert compute_style_counts("") == {"length": 0, "headers": 0, "lists": 0, "bold": 0}
    assert compute_style_counts("#hashtag 2 * 3")["headers"] == 0  # no space: not a header


def test_style_battles_carry_each_sides_counts():
    table = pd.DataFrame(
        [
            ("battle", ["A", "B"], ["one two", "**x**"], "win", 1),
            ("compare", ["A", "B"], ["a", "b"], "win", 0),  # names shown: not rated
            ("battle", ["A", "B"], ["a", "b"], "both_bad", None),  # no battle
        ],
        columns=["mode", "models", "responses", "outcome", "winner"],
    )
    style = compute_style_battles(table)
    assert style[["model_a", "model_b", "winner"]].values.tolist() == [["A", "B", "model_b"]]
    assert style.iloc[0][["length_a", "length_b", "bold_a", "bold_b"]].tolist() == [2, 1, 0, 1]


def test_style_features_are_normalised_differences_scaled_not_centred():
    rows = [("A", "B", "model_a", 10, 0), ("A", "B", "model_b", 0, 10), ("A", "B", "tie", 5, 5)]
    table = pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "length_a", "length_b"])
    x = compute_style_features(table, ["length"])[:, 0]
    raw = np.array([10 / 11, -10 / 11, 0.0])
    assert x == pytest.approx(raw / np.sqrt((raw**2).mean()))
    swapped = table.rename(columns={"length_a": "length_b", "length_b": "length_a"})
    assert compute_style_features(swapped, ["length"])[:, 0] == pytest.approx(-x)
    constant = table.assign(length_a=3, length_b=3)
    assert compute_style_features(constant, ["length"]).tolist() == [[0.0]] * 3


def with_style(table, **columns):
    """A battles table with style columns (every feature 0 unless given)."""
    zeros = {f"{k}_{s}": 0 for s in "ab" for k in STYLE_FEATURES}
    return table.assign(**{**zeros, **columns})


def test_style_bt_without_style_differences_is_plain_bt():
    table = random_battles(300, seed=4)
    ratings, beta = compute_style_bt(with_style(table))
    plain = compute_bt(table)
    assert ratings.index.tolist() == plain.index.tolist()
    assert ratings.to_numpy() == pytest.approx(plain.to_numpy(), abs=1e-6)
    assert beta.isna().all()  # no feature ever differs: nothing to learn


def test_style_bt_recovers_known_coefficients():
    """Battles drawn from P(a wins) = σ(θ_a - θ_b + β·x): the fit finds θ and β again."""
    rng = np.random.default_rng(0)
    n, skill, beta_true = 4000, np.array([0.0, 0.5, 1.0]), 0.8
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(1, 3, n)) % 3
    length_a, length_b = rng.integers(5, 60, n), rng.integers(5, 60, n)
    table = with_style(
        battles(*[(f"m{i}", f"m{j}", "model_a") for i, j in zip(a, b, strict=True)]),
        length_a=length_a,
        length_b=length_b,
    )
    x = compute_style_features(table, ["length"])[:, 0]
    p = 1 / (1 + np.exp(-(skill[a] - skill[b] + beta_true * x)))
    table["winner"] = np.where(rng.random(n) < p, "model_a", "model_b")
    ratings, beta = compute_style_bt(table, ["length"], scale=1, base=math.e, init=0)
    assert beta["length"] == pytest.approx(beta_true, abs=0.1)
    assert (ratings["m2"] - ratings["m0"]) == pytest.approx(1.0, abs=0.15)


def length_wins(n=1000, seed=0, p_longer=0.9):
    """Two equally good models, B long 3 times in 4; the longer answer wins with `p_longer`.

    Not "always": then length separates the outcomes perfectly, β runs off to the prior's
    edge and the split of the rest between θ and β is the prior's choice, not the data's.
    """
    rng = np.random.default_rng(seed)
    b_long = rng.random(n) < 0.75
    longer_wins = rng.random(n) < p_longer
    winner = np.where(b_long == longer_wins, "model_b", "model_a")
    table = battles(*[("A", "B", w) for w in winner])
    return with_style(table, length_a=np.where(b_long, 10, 40), length_b=np.where(b_long, 40, 10))


def test_style_control_removes_a_rating_that_is_only_length():
    table = length_wins()
    raw = compute_bt(table)
    assert raw["B"] - raw["A"] > 100  # B wins 70% of its battles: ~150 Elo ahead when raw
    ratings, beta = compute_style_bt(table)
    assert abs(ratings["B"] - ratings["A"]) < 40  # equal once length is accounted for
    assert beta["length"] == pytest.approx(math.log(9), abs=0.3)  # 9 to 1 for the longer one
    assert beta[["headers", "lists", "bold"]].isna().all()


def test_style_ranking_has_intervals_and_ranks():
    table, coefficients = compute_style_ranking(length_wins(), rounds=30)
    assert table.columns.tolist() == [
        "rank", "model", "rating", "lower", "upper", "votes", "group",
    ]  # fmt: skip
    assert table["rank"].tolist() == [1, 1]  # indistinguishable once length is controlled
    assert (table["lower"] <= table["rating"]).all() and (table["rating"] <= table["upper"]).all()
    row = coefficients.set_index("feature").loc["length"]
    assert 0 < row["lower"] <= row["beta"] <= row["upper"]
    assert coefficients.set_index("feature").loc["bold"].isna().all()


def test_style_ranking_leaves_open_what_the_votes_cannot_bound():
    table, _ = compute_style_ranking(with_style(pd.concat([APART, UNBEATEN])), rounds=20)
    # A beat B 35 times of 40 (15 + 20) and C beat D 15 of 20: two groups, ranked apart.
    assert table[["model", "group", "rank"]].values.tolist() == [
        ["A", 1, 1], ["B", 1, 2], ["C", 2, 1], ["D", 2, 2],
    ]  # fmt: skip
    unbeaten, _ = compute_style_ranking(with_style(UNBEATEN), rounds=20)
    assert unbeaten.set_index("model").loc["A", "upper"] == math.inf
    assert unbeaten.set_index("model").loc["B", "lower"] == -math.inf
