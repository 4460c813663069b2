"""Intervals on synthetic data whose answer is known (compare/stats.py)."""

from __future__ import annotations

import math
import random
from statistics import fmean, stdev

import pytest

from personaweb.compare import stats


def normal_lines(rng: random.Random, lines: int, samples: int, mu: float, sigma: float):
    return [[rng.gauss(mu, sigma) for _ in range(samples)] for _ in range(lines)]


def test_identical_values_give_an_interval_of_no_width() -> None:
    estimate = stats.bootstrap_mean([[0.7] * 4] * 5)
    assert (estimate.value, estimate.low, estimate.high) == pytest.approx((0.7, 0.7, 0.7))
    assert (estimate.lines, estimate.samples) == (5, 20)


def test_a_large_sample_gives_the_normal_theory_interval() -> None:
    # One sample per line, 400 lines: the bootstrap must agree with mean +- 1.96 s / sqrt(n).
    rng = random.Random(1)
    values = [rng.gauss(0.5, 0.2) for _ in range(400)]
    estimate = stats.bootstrap_mean([[v] for v in values])
    half = 1.96 * stdev(values) / math.sqrt(len(values))
    assert estimate.value == pytest.approx(fmean(values))
    assert estimate.low == pytest.approx(fmean(values) - half, abs=0.15 * half)
    assert estimate.high == pytest.approx(fmean(values) + half, abs=0.15 * half)


def test_the_interval_covers_the_true_mean_about_95_times_in_100() -> None:
    rng = random.Random(7)
    covered = 0
    trials = 150
    for trial in range(trials):
        groups = normal_lines(rng, lines=30, samples=1, mu=0.5, sigma=0.2)
        estimate = stats.bootstrap_mean(groups, resamples=400, seed=trial)
        covered += estimate.low <= 0.5 <= estimate.high
    # Percentile intervals run a little short on 30 values: 90-99% coverage is right.
    assert 0.88 <= covered / trials <= 0.99


def test_lines_not_samples_set_the_width_when_samples_agree_within_a_line() -> None:
    # Five lines, eight identical samples each: there are five independent values, not 40.
    lines = [[v] * 8 for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    nested = stats.bootstrap_mean(lines)
    flat = stats.bootstrap_mean([[v] for line in lines for v in line])
    five = stats.bootstrap_mean([[line[0]] for line in lines])
    assert nested.value == flat.value == five.value == 0.5
    assert nested.high - nested.low > 2 * (flat.high - flat.low)
    assert nested.low == pytest.approx(five.low, abs=0.06)
    assert nested.high == pytest.approx(five.high, abs=0.06)


def test_samples_narrow_the_interval_when_lines_agree() -> None:
    # Every line has the same distribution: more samples per line, a narrower interval.
    rng = random.Random(3)
    few = stats.bootstrap_mean(normal_lines(rng, 5, 2, 0.5, 0.2))
    many = stats.bootstrap_mean(normal_lines(rng, 5, 20, 0.5, 0.2))
    assert many.high - many.low < 0.6 * (few.high - few.low)


def test_every_line_weighs_the_same_however_many_samples_it_has() -> None:
    assert stats.bootstrap_mean([[1.0], [0.0, 0.0, 0.0]]).value == 0.5


def test_a_paired_difference_sees_through_differences_between_lines() -> None:
    # B's lines vary wildly, A is B plus 0.2 on every line: the difference is exactly 0.2.
    b = [[0.05], [0.9], [0.3], [0.6], [0.1]]
    a = [[v[0] + 0.2] for v in b]
    difference = stats.bootstrap_difference(a, b)
    assert (difference.value, difference.low, difference.high) == pytest.approx((0.2, 0.2, 0.2))
    assert difference.excludes_zero


def test_a_known_effect_is_found_and_no_effect_is_not_claimed() -> None:
    rng = random.Random(11)
    better = normal_lines(rng, 10, 5, 0.6, 0.1)
    worse = normal_lines(rng, 10, 5, 0.4, 0.1)
    same = normal_lines(rng, 10, 5, 0.4, 0.1)
    effect = stats.bootstrap_difference(better, worse)
    # (Whether one interval covers 0.2 is chance, 95 in 100: the coverage test checks that.)
    assert effect.excludes_zero and effect.low > 0.05
    assert effect.low <= effect.value <= effect.high
    none = stats.bootstrap_difference(same, worse)
    assert none.low < 0 < none.high and not none.excludes_zero


def test_a_difference_counts_only_lines_both_answered() -> None:
    difference = stats.bootstrap_difference([[0.9], [], [0.5]], [[0.4], [0.1], []])
    assert difference.value == pytest.approx(0.5) and difference.lines == 1
    assert not difference.has_interval  # one reply each on one line: nothing to resample
    with pytest.raises(ValueError):
        stats.bootstrap_difference([[0.9], []], [[], [0.1]])


def test_intervals_are_seeded_so_pages_are_stable() -> None:
    groups = normal_lines(random.Random(5), 5, 3, 0.5, 0.2)
    assert stats.bootstrap_mean(groups) == stats.bootstrap_mean(groups)
    assert stats.bootstrap_mean(groups, seed=1) != stats.bootstrap_mean(groups, seed=2)


def test_a_difference_against_a_single_reply_has_no_interval() -> None:
    # One reply against many: resampling the many alone would pass their spread off as the
    # difference's.
    lone = stats.bootstrap_difference([[0.1]], [[0.3, 0.5, 0.4]])
    assert lone.value == pytest.approx(-0.3) and not lone.has_interval
    assert stats.bootstrap_difference([[0.1, 0.2]], [[0.3, 0.5, 0.4]]).has_interval


def test_one_value_has_no_interval() -> None:
    estimate = stats.bootstrap_mean([[0.4], []])
    assert estimate.value == 0.4 and not estimate.has_interval
    with pytest.raises(ValueError):
        stats.bootstrap_mean([[], []])


def test_figures_on_the_same_replies_share_their_draws() -> None:
    groups = normal_lines(random.Random(9), 4, 3, 0.5, 0.2)
    doubled = [[2 * v for v in g] for g in groups]
    joint = stats.bootstrap_means({"x": groups, "2x": doubled})
    assert joint["x"] == stats.bootstrap_mean(groups)
    assert joint["2x"].low == pytest.approx(2 * joint["x"].low)
    with pytest.raises(ValueError, match="different replies"):
        stats.bootstrap_means({"x": groups, "y": groups[:-1]})


def test_a_vote_share_gets_the_wilson_interval() -> None:
    # 7 of 10: the Wilson 95% interval is 0.397 to 0.892 (Newcombe 1998, method 3).
    share = stats.wilson(7, 10)
    assert share.value == 0.7
    assert (share.low, share.high) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert stats.wilson(3, 3).high == 1.0 and stats.wilson(3, 3).low < 0.5


def test_bradley_terry_with_two_contenders_is_the_smoothed_win_share() -> None:
    strengths = stats.bradley_terry(["a", "b"], {("a", "b"): 7, ("b", "a"): 3})
    assert strengths["a"] == pytest.approx((7 + 0.5) / (10 + 1))
    assert sum(strengths.values()) == pytest.approx(1.0)


def test_bradley_terry_strengths_are_the_maximum_likelihood_fit() -> None:
    players = ["a", "b", "c"]
    wins = {
        ("a", "b"): 6,
        ("b", "a"): 2,
        ("b", "c"): 5,
        ("c", "b"): 3,
        ("a", "c"): 7,
        ("c", "a"): 1,
    }
    s = stats.bradley_terry(players, wins)
    assert s["a"] > s["b"] > s["c"]
    # At the maximum, each contender's (smoothed) wins equal its expected wins.
    for p in players:
        won = sum(wins.get((p, q), 0) + 0.5 for q in players if q != p)
        expected = sum(
            (wins.get((p, q), 0) + wins.get((q, p), 0) + 1) * s[p] / (s[p] + s[q])
            for q in players
            if q != p
        )
        assert won == pytest.approx(expected, rel=1e-6)


def test_a_ranking_from_votes_puts_the_most_picked_first_with_intervals() -> None:
    votes = ["b"] * 8 + ["a"] * 3 + ["c"]
    ranking = stats.bradley_terry_ranking(votes, ["a", "b", "c"])
    assert max(ranking, key=lambda p: ranking[p].value) == "b"
    assert all(r.low <= r.value <= r.high for r in ranking.values())
    assert stats.bradley_terry_ranking(votes, ["a", "b", "c"]) == ranking  # seeded
