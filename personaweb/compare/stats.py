"""Figures with 95% intervals, for a comparison: pure Python, deterministic.

The rules:

- **A figure is the mean of line means.** A comparison's data is lines x samples: every line
  weighs the same, however many of its samples answered.
- **Its interval is a two-stage bootstrap**, which is what "over 5 lines x 8 samples" means:
  each resample draws the lines with replacement, then each drawn line's samples with
  replacement, and takes the mean of line means; the interval is the 2.5th to 97.5th
  percentile of RESAMPLES such means. Resampling the lines is what keeps a single odd line from
  looking like certainty; resampling the samples is what makes repeated samples count.
- **A difference between two contenders is paired by line**: lines are drawn once for both
  (the same lines, as both answered the same script), samples within each contender's line
  separately. Only lines both contenders answered count.
- **Seeded**: every interval starts from Random(SEED), so a page shows the same interval every
  time it is drawn, and the same data always gives the same numbers.
- **No interval from one reply.** With a single value there is nothing to resample: the figure
  stands alone (`low`/`high` None) and the sentences say so. A difference needs two values on
  each side: one reply against many would show only the many's spread.
- **Vote shares get Wilson score intervals**, not the bootstrap: with a handful of votes a
  percentile bootstrap collapses to a point (3 of 3 would read "100% to 100%").
- **A Bradley-Terry ranking** turns blind votes into strengths when there are more than two
  contenders: a vote for A on a line is a win of A over every other contender of that line,
  fitted by Hunter's MM algorithm with a half win each way between every pair (so a contender
  nobody picked gets a small strength, not zero, and the fit always exists).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist, fmean

RESAMPLES = 2000
"""Bootstrap resamples per interval."""
SEED = 20240612
"""Any fixed number: intervals are reproducible, pages stable."""
CONFIDENCE = 0.95
BT_PRIOR_WINS = 0.5
"""Bradley-Terry: pseudo-wins each way between every pair of contenders."""
BT_ITERATIONS = 500
BT_TOLERANCE = 1e-10

Groups = Sequence[Sequence[float]]
"""Values per line: groups[i] holds line i's samples (an empty line has no answer yet)."""


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval."""

    value: float
    """The estimate (a mean of line means, a difference, a share)."""
    low: float | None
    """Lower end of the interval; None when there is nothing to resample."""
    high: float | None
    """Upper end of the interval."""
    lines: int = 0
    """How many lines it rests on."""
    samples: int = 0
    """How many values it rests on in all (both contenders' for a difference)."""

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def excludes_zero(self) -> bool:
        """The interval lies wholly on one side of 0 (a difference that is clear)."""
        return self.has_interval and (self.low > 0 or self.high < 0)  # type: ignore[operator]

    def to_dict(self, places: int = 4) -> dict[str, float | int | None]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, places)

        return {
            "value": r(self.value),
            "low": r(self.low),
            "high": r(self.high),
            "lines": self.lines,
            "samples": self.samples,
        }


def mean_of_lines(groups: Groups) -> float | None:
    """The mean of line means over the lines that have values (None if none has)."""
    means = [fmean(g) for g in groups if g]
    return fmean(means) if means else None


def _percentiles(values: list[float]) -> tuple[float, float]:
    values.sort()
    tail = (1.0 - CONFIDENCE) / 2
    return _quantile(values, tail), _quantile(values, 1.0 - tail)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default, "type 7")."""
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def bootstrap_mean(groups: Groups, *, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """The mean of line means with its two-stage bootstrap interval."""
    return bootstrap_means({"": groups}, resamples=resamples, seed=seed)[""]


def bootstrap_means(
    figures: Mapping[str, Groups], *, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, Estimate]:
    """Several figures measured on the same replies (say, a contender's calls, tokens and
    latency), bootstrapped together: every resample draws the lines and samples once and
    applies the draw to each figure. Every figure must have the same samples per line."""
    shaped = {name: [list(g) for g in groups if g] for name, groups in figures.items()}
    shapes = {tuple(len(g) for g in groups) for groups in shaped.values()}
    if len(shapes) != 1:
        raise ValueError("bootstrap_means: figures measured on different replies")
    shape = shapes.pop()
    if not shape:
        raise ValueError("bootstrap_means: no values")
    count, lines = sum(shape), len(shape)
    values = {name: fmean(fmean(g) for g in groups) for name, groups in shaped.items()}
    if count < 2:
        return {name: Estimate(v, None, None, lines, count) for name, v in values.items()}
    rng = random.Random(seed)
    draw = rng.random
    draws: dict[str, list[float]] = {name: [] for name in shaped}
    for _ in range(resamples):
        picked = []
        for _ in range(lines):
            line = int(draw() * lines)
            k = shape[line]
            picked.append((line, [int(draw() * k) for _ in range(k)] if k > 1 else [0]))
        for name, groups in shaped.items():
            total = 0.0
            for line, indices in picked:
                total += sum(map(groups[line].__getitem__, indices)) / len(indices)
            draws[name].append(total / lines)
    estimates = {}
    for name, value in values.items():
        low, high = _percentiles(draws[name])
        estimates[name] = Estimate(value, low, high, lines, count)
    return estimates


def bootstrap_difference(
    first: Groups, second: Groups, *, resamples: int = RESAMPLES, seed: int = SEED
) -> Estimate:
    """first - second, paired by line (index i is the same script line in both)."""
    pairs = [(list(a), list(b)) for a, b in zip(first, second, strict=False) if a and b]
    if not pairs:
        raise ValueError("bootstrap_difference: no line both answered")
    a_groups = [a for a, _ in pairs]
    b_groups = [b for _, b in pairs]
    a_mean, b_mean = mean_of_lines(a_groups), mean_of_lines(b_groups)
    assert a_mean is not None and b_mean is not None
    value = a_mean - b_mean
    a_count, b_count = sum(map(len, a_groups)), sum(map(len, b_groups))
    count = a_count + b_count
    if min(a_count, b_count) < 2:
        # One side rests on a single reply: resampling the other alone would pass its
        # spread off as the difference's.
        return Estimate(value, None, None, len(pairs), count)
    rng = random.Random(seed)
    draw = rng.random
    n = len(pairs)
    draws = []
    for _ in range(resamples):
        total = 0.0
        for _ in range(n):
            a, b = pairs[int(draw() * n)]
            total += _within(a, draw) - _within(b, draw)
        draws.append(total / n)
    low, high = _percentiles(draws)
    return Estimate(value, low, high, len(pairs), count)


def _within(group: list[float], draw: Callable[[], float]) -> float:
    """One line's samples resampled with replacement, averaged."""
    k = len(group)
    if k == 1:
        return group[0]
    return sum([group[int(draw() * k)] for _ in range(k)]) / k


def wilson(successes: float, trials: float) -> Estimate:
    """A share with its Wilson score interval."""
    if trials <= 0:
        raise ValueError("wilson: no trials")
    z = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), 0, int(trials))


def bradley_terry(
    players: Sequence[str], wins: Mapping[tuple[str, str], float]
) -> dict[str, float]:
    """Bradley-Terry strengths (summing to 1) from `wins[(a, b)]` = times a beat b."""
    if len(players) < 2:
        return dict.fromkeys(players, 1.0)
    won = {p: 0.0 for p in players}
    games: dict[tuple[str, str], float] = {}
    for a, b in combinations(players, 2):
        ab = wins.get((a, b), 0.0) + BT_PRIOR_WINS
        ba = wins.get((b, a), 0.0) + BT_PRIOR_WINS
        won[a] += ab
        won[b] += ba
        games[(a, b)] = games[(b, a)] = ab + ba
    strength = dict.fromkeys(players, 1.0 / len(players))
    for _ in range(BT_ITERATIONS):
        updated = {}
        for p in players:
            denominator = sum(
                games[(p, q)] / (strength[p] + strength[q]) for q in players if q != p
            )
            updated[p] = won[p] / denominator
        total = sum(updated.values())
        updated = {p: s / total for p, s in updated.items()}
        change = max(abs(updated[p] - strength[p]) for p in players)
        strength = updated
        if change < BT_TOLERANCE:
            break
    return strength


def pairwise_wins(votes: Sequence[str], players: Sequence[str]) -> dict[tuple[str, str], float]:
    """Each vote (the contender picked on a line) as a win over every other contender."""
    wins: dict[tuple[str, str], float] = {}
    for winner in votes:
        for other in players:
            if other != winner:
                wins[(winner, other)] = wins.get((winner, other), 0.0) + 1.0
    return wins


def bradley_terry_ranking(
    votes: Sequence[str],
    players: Sequence[str],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Estimate]:
    """Every contender's Bradley-Terry strength with a bootstrap interval over the votes."""
    strengths = bradley_terry(players, pairwise_wins(votes, players))
    if len(votes) < 2:
        return {p: Estimate(s, None, None, 0, len(votes)) for p, s in strengths.items()}
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {p: [] for p in players}
    # Fewer resamples than for the means: every one refits the model.
    for _ in range(max(resamples // 10, 100)):
        picked = [votes[int(rng.random() * len(votes))] for _ in votes]
        for p, s in bradley_terry(players, pairwise_wins(picked, players)).items():
            draws[p].append(s)
    ranking = {}
    for p in players:
        low, high = _percentiles(draws[p])
        ranking[p] = Estimate(strengths[p], low, high, 0, len(votes))
    return ranking
