"""What a comparison found: every figure with its 95% interval, the differences between
contenders in plain sentences, and blind votes as win rates and a ranking.

One object (`Results`) built from `metrics.columns` and the votes; the page, the charts, the
exports and `manage.py compare_strategies` all read it, so none computes a figure of its own.
The rules (the statistics themselves are stats.py's):

- The **style score** of a contender is the mean of line means of its answered replies'
  P(character | reply) (a pass has no voice to measure); **distance** likewise; **calls,
  tokens and latency** are per finished reply, passes included, a failed attempt's calls
  counted in the turn that retried it.
- **Differences are against a baseline**: the contender playing `single` when exactly one
  does (nesting is what is on trial), else the first column. Each other contender gets one
  sentence: "nested scores 0.21 higher than single, 95% interval 0.12 to 0.30, over 5 lines x
  8 samples." An interval that straddles 0 is said to be no clear difference.
- **Votes** (blind mode) count toward the same sentence: a vote for either of the two on a
  line is a head-to-head win for it; each contender's share of all votes gets a Wilson
  interval, and with more than two contenders a Bradley-Terry ranking orders them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from personaweb.compare import metrics, stats
from personaweb.compare.models import Comparison, Contender, Vote
from personaweb.compare.stats import Estimate
from personaweb.web.models import Strategy

SINGLE = Strategy.SINGLE.value
COST_FIGURES = ("calls", "tokens", "latency_s")


@dataclass
class ContenderResult:
    """One contender's figures."""

    contender: Contender
    name: str
    """What the sentences call it: its strategy when that is unique in the comparison."""
    score: Estimate | None = None
    """Style score (P(character | reply)), mean of line means, with its interval."""
    distance: Estimate | None = None
    """Stylometric distance, likewise."""
    calls: Estimate | None = None
    """LLM calls per finished reply."""
    tokens: Estimate | None = None
    """Prompt + completion tokens per finished reply."""
    latency_s: Estimate | None = None
    """Summed call latency per finished reply, seconds."""
    per_line: list[Estimate | None] = field(default_factory=list)
    """Style score per script line (over that line's samples)."""
    answered: int = 0
    """Replies with a line to measure."""
    total_calls: int = 0
    total_tokens: int = 0
    total_latency_s: float = 0.0
    votes: int = 0
    """Blind votes it got."""
    vote_share: Estimate | None = None
    """Its share of all blind votes, with a Wilson interval."""
    strength: Estimate | None = None
    """Bradley-Terry strength from the votes (more than two contenders), summing to 1."""

    @property
    def letter(self) -> str:
        return self.contender.letter


@dataclass
class Difference:
    """One contender against the baseline."""

    contender: ContenderResult
    baseline: ContenderResult
    score: Estimate | None
    """contender - baseline, style score, paired by line (None: no line both answered)."""
    head_to_head: Estimate | None
    """The contender's share of the votes that went to either of the two."""
    head_to_head_votes: int
    sentence: str

    @property
    def clear(self) -> bool:
        return self.score is not None and self.score.excludes_zero


@dataclass
class Results:
    """Everything a comparison found so far."""

    contenders: list[ContenderResult]
    """In column order."""
    baseline: ContenderResult | None
    differences: list[Difference]
    lines: int
    """Script lines."""
    samples: int
    """Samples per line the comparison asked for."""
    votes: int
    """Blind votes cast, all voters, all lines."""
    ranking: list[ContenderResult]
    """By Bradley-Terry strength, best first (empty unless more than two contenders got
    votes)."""

    @property
    def sentences(self) -> list[str]:
        return [d.sentence for d in self.differences]

    def by_id(self, contender_id: int) -> ContenderResult | None:
        return next((c for c in self.contenders if c.contender.pk == contender_id), None)


# --- building ---------------------------------------------------------------------------------


def names(contenders: Sequence[Contender]) -> dict[int, str]:
    """What sentences call each contender: its strategy when unique, else its label, else its
    letter and label."""
    strategies = Counter(c.strategy for c in contenders)
    labels = Counter(c.label for c in contenders)
    named = {}
    for c in contenders:
        if strategies[c.strategy] == 1:
            named[c.pk] = c.strategy
        elif labels[c.label] == 1:
            named[c.pk] = c.label
        else:
            named[c.pk] = f"{c.letter} ({c.label})"
    return named


def _cost_groups(
    column: metrics.Column, value: Callable[[metrics.Turn], float]
) -> list[list[float]]:
    """Per line, a cost of every sample that finished (a pass costs calls too)."""
    return [[value(t) for t in turn.every_sample if t.done] for turn in column.turns]


def contender_result(column: metrics.Column, name: str) -> ContenderResult:
    result = ContenderResult(column.contender, name)
    result.total_calls, result.total_tokens = column.calls, column.tokens
    result.total_latency_s = column.latency_s
    result.answered = sum(len(turn.answered) for turn in column.turns)
    result.per_line = [None] * len(column.turns)
    if not any(t.done for t in column.replies):
        return result
    costs = stats.bootstrap_means(
        {
            "calls": _cost_groups(column, lambda t: float(t.calls)),
            "tokens": _cost_groups(column, lambda t: float(t.tokens)),
            "latency_s": _cost_groups(column, lambda t: t.latency_s),
        }
    )
    result.calls, result.tokens, result.latency_s = (costs[k] for k in COST_FIGURES)
    scored = [[t for t in turn.answered if t.style is not None] for turn in column.turns]
    if any(scored):
        voice = stats.bootstrap_means(
            {
                "score": [[t.style.probability for t in line if t.style] for line in scored],
                "distance": [[t.style.distance for t in line if t.style] for line in scored],
            }
        )
        result.score, result.distance = voice["score"], voice["distance"]
        result.per_line = [
            stats.bootstrap_mean([[t.style.probability for t in line if t.style]]) if line else None
            for line in scored
        ]
    return result


def _style_groups(column: metrics.Column) -> list[list[float]]:
    return [[t.style.probability for t in turn.answered if t.style] for turn in column.turns]


def choose_baseline(results: Sequence[ContenderResult]) -> ContenderResult | None:
    singles = [r for r in results if r.contender.strategy == SINGLE]
    if len(singles) == 1:
        return singles[0]
    return results[0] if results else None


def build(
    comparison: Comparison,
    columns: list[metrics.Column],
    votes: Sequence[tuple[int, int]] | None = None,
) -> Results:
    """The results of a comparison from its columns; `votes` are (line index, contender id)
    pairs, every voter's (read from the database when not given)."""
    if votes is None:
        votes = list(
            Vote.objects.filter(comparison=comparison).values_list("line_index", "contender_id")
        )
    named = names([c.contender for c in columns])
    results = [contender_result(c, named[c.contender.pk]) for c in columns]
    total_votes = len(votes)
    # The figures, the ranking and the sentences all count the very same votes.
    tally = Counter(contender_id for _, contender_id in votes)
    for r in results:
        r.votes = tally[r.contender.pk]
        if total_votes:
            r.vote_share = stats.wilson(r.votes, total_votes)
    ranking: list[ContenderResult] = []
    if len(results) > 2 and total_votes:
        ids = [str(r.contender.pk) for r in results]
        strengths = stats.bradley_terry_ranking([str(c) for _, c in votes], ids)
        for r in results:
            r.strength = strengths[str(r.contender.pk)]
        ranking = sorted(results, key=lambda r: -(r.strength.value if r.strength else 0.0))
    baseline = choose_baseline(results)
    differences = []
    if baseline is not None:
        base_column = columns[results.index(baseline)]
        for r, column in zip(results, columns, strict=True):
            if r is baseline:
                continue
            differences.append(_difference(comparison, r, baseline, column, base_column, votes))
    return Results(
        contenders=results,
        baseline=baseline,
        differences=differences,
        lines=len(comparison.script),
        samples=comparison.samples,
        votes=total_votes,
        ranking=ranking,
    )


def _difference(
    comparison: Comparison,
    result: ContenderResult,
    baseline: ContenderResult,
    column: metrics.Column,
    base_column: metrics.Column,
    votes: Sequence[tuple[int, int]],
) -> Difference:
    mine, theirs = _style_groups(column), _style_groups(base_column)
    try:
        score = stats.bootstrap_difference(mine, theirs)
    except ValueError:
        score = None
    picked = [c for _, c in votes if c in (result.contender.pk, baseline.contender.pk)]
    won = sum(c == result.contender.pk for c in picked)
    head = stats.wilson(won, len(picked)) if picked else None
    # The lines the difference rests on: those both answered.
    both = [(a, b) for a, b in zip(mine, theirs, strict=False) if a and b]
    full = all(len(a) >= comparison.samples and len(b) >= comparison.samples for a, b in both)
    counts = (sum(len(a) for a, _ in both), sum(len(b) for _, b in both))
    sentence = say_difference(
        result.name, baseline.name, score, comparison.samples, full=full, counts=counts
    ) + say_votes(result.name, baseline.name, won, len(picked))
    return Difference(result, baseline, score, head, len(picked), sentence)


# --- sentences --------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def say_difference(
    name: str,
    baseline: str,
    score: Estimate | None,
    samples: int,
    *,
    full: bool = True,
    counts: tuple[int, int] = (1, 1),
) -> str:
    """One plain sentence about a style-score difference (name - baseline)."""
    if score is None:
        return f"{name} and {baseline} have no line that both answered yet."
    direction = "higher" if score.value >= 0 else "lower"
    size = f"{abs(score.value):.2f}"
    if score.value == 0:
        head = f"{name} scores the same as {baseline}"
    else:
        head = f"{name} scores {size} {direction} than {baseline}"
    if not score.has_interval:
        if counts == (1, 1):
            return f"{head} on the one reply each has so far (one reply gives no interval)."
        few = name if counts[0] < counts[1] else baseline
        return (
            f"{head} on the replies both have so far ({few} has only one: too few for an interval)."
        )
    assert score.low is not None and score.high is not None
    per_line = f"{'' if full else 'up to '}{_plural(samples, 'sample')}"
    over = f"over {_plural(score.lines, 'line')} x {per_line}"
    if score.excludes_zero:
        low, high = sorted((abs(score.low), abs(score.high)))
        return f"{head}, 95% interval {low:.2f} to {high:.2f}, {over}."
    interval = f"{abs(score.low):.2f} lower to {abs(score.high):.2f} higher"
    return f"{head}, 95% interval {interval}, {over}: not a clear difference."


def say_votes(name: str, baseline: str, won: int, votes: int) -> str:
    """The head-to-head part of the sentence (blank without votes for either of the two)."""
    if not votes:
        return ""
    share = stats.wilson(won, votes)
    assert share.low is not None and share.high is not None
    return (
        f" In blind votes {name} was picked over {baseline} in {won} of "
        f"{_plural(votes, 'vote')} ({share.value:.0%}, 95% interval {share.low:.0%} to "
        f"{share.high:.0%})."
    )
