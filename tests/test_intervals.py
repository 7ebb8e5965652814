import math
import statistics

import pytest

from lab.intervals import bootstrap_ci, mean, t_interval, win_score


def test_t_interval_matches_the_textbook_formula():
    values = [0.75, -1.07, 0.36]  # SFT's gold over three seeds
    lo, hi = t_interval(values)
    half = 4.303 * statistics.stdev(values) / math.sqrt(3)
    assert (lo, hi) == pytest.approx((mean(values) - half, mean(values) + half))
    assert all(math.isnan(x) for x in t_interval([1.0]))


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_data():
    small = [float(i % 7) for i in range(20)]
    large = small * 25
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < mean(small) < hi_s and lo_l < mean(large) < hi_l
    assert hi_l - lo_l < 0.5 * (hi_s - lo_s)  # ~1/sqrt(25) as wide
    assert bootstrap_ci([2.0] * 10) == (2.0, 2.0)  # no spread, no width
    assert bootstrap_ci(small) == bootstrap_ci(small)  # seeded
    # A 95% interval, not any interval: half-width ≈ 1.96 standard errors of the mean.
    half = (hi_l - lo_l) / 2
    assert half == pytest.approx(1.96 * statistics.pstdev(large) / math.sqrt(len(large)), rel=0.1)


def test_win_score_counts_ties_as_half():
    assert [win_score(d) for d in (0.3, 0.0, -0.2, 1e-9)] == [1.0, 0.5, 0.0, 0.5]


def test_a_stratified_bootstrap_keeps_each_strata_count():
    """Two kinds of prompt, three each, every kind's scores alike: resampled within its kind, every
    mean is 5 (no width); resampled together, the share of each kind varies, and so does the mean."""
    values, kinds = [0.0, 0.0, 0.0, 10.0, 10.0, 10.0], ["math"] * 3 + ["fact"] * 3
    assert bootstrap_ci(values, strata=kinds) == (5.0, 5.0)
    lo, hi = bootstrap_ci(values)
    assert lo < 5.0 < hi
    assert bootstrap_ci(values, strata=[0] * 6) == (lo, hi)  # one stratum: the plain bootstrap


def test_a_cluster_bootstrap_resamples_whole_clusters():
    """Votes on one prompt agree with each other: resampled one by one, they look like eight
    independent votes; resampled by prompt, like two."""
    from lab.intervals import cluster_mean_ci

    values, prompts = [1.0] * 4 + [0.0] * 4, ["a"] * 4 + ["b"] * 4
    assert cluster_mean_ci(values, prompts) == (0.0, 1.0)  # both prompts, one of them, or the other
    lo, hi = bootstrap_ci(values)
    assert 0.0 < lo < 0.5 < hi < 1.0
    assert cluster_mean_ci([0.5, 0.5, 0.5], ["a", "b", "c"]) == (0.5, 0.5)
