"""What a comparison page shows: each contender's replies to each line, measured.

Everything is read from the contenders' sessions, never kept elsewhere: what the page, the
exports and the debugger show cannot disagree. Which nodes are a line's samples follows the
rules of samples.py (sample 1 is the conversation; samples 2..N are marked branches). A
reply's cost is the sum over every node of its turn (calls, tokens, latency, failed attempts
included). The figures with intervals are results.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from django.db.models import Count

from personaweb.characters.style import StyleModel, StyleScore, consistency_of
from personaweb.compare import samples as rules
from personaweb.compare import style
from personaweb.compare.models import Comparison, Contender, Vote
from personaweb.personas import Node, NodeKind, NodeStatus, derive
from personaweb.personas.state import USER
from personaweb.personas.tree import UNFINISHED
from personaweb.web.models import Run, RunStatus
from personaweb.web.store import OrmStore, Tree


@dataclass
class Turn:
    """One contender's answer to one line of the script."""

    index: int
    """Line number, from 0."""
    line: str
    """What the user said."""
    state: str = "waiting"
    """done, running, failed, interrupted, stopped, waiting (not reached) or skipped."""
    reply: str = ""
    """The character's line (empty until done, or when it passed)."""
    passed: bool = False
    """The character chose not to answer."""
    error: str = ""
    """Why the turn failed."""
    calls: int = 0
    """LLM calls in the turn, failed attempts of structured calls included."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    """Summed wall time of the turn's LLM calls."""
    alignment: float | None = None
    """Goal alignment (linear strategy), 0..1."""
    drifting: bool = False
    style: StyleScore | None = None
    live_node: str = ""
    """The node being written right now (its streamed text arrives over the socket)."""
    live_persona: str = ""
    judge: dict[str, Any] | None = None
    """The LLM judge's {score, reason} or {error}."""
    sample: int = 1
    """Which sample of the line this is (1: the conversation itself)."""
    expected: int = 1
    """How many samples the line should get (the comparison's samples per line)."""
    samples: list[Turn] = field(default_factory=list)
    """On sample 1: the line's other samples that exist, in order (2..N)."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def every_sample(self) -> list[Turn]:
        """Sample 1 and the others: every reply to this line."""
        return [self, *self.samples]

    @property
    def answered(self) -> list[Turn]:
        """The samples that answered with a line (a pass has no voice to measure)."""
        return [t for t in self.every_sample if t.done and t.reply.strip()]

    @property
    def complete(self) -> bool:
        """Every expected sample answered (or passed)."""
        replies = self.every_sample
        return len(replies) >= self.expected and all(t.done for t in replies)

    @property
    def sampling(self) -> Turn | None:
        """A sample other than the first that is being written right now."""
        return next((t for t in self.samples if t.state == "running"), None)

    @property
    def samples_done(self) -> int:
        return sum(t.done for t in self.every_sample)

    @property
    def mean_style(self) -> float | None:
        """The mean style score of this line's answered samples (the cell's figure)."""
        scores = [t.style.probability for t in self.answered if t.style is not None]
        return fmean(scores) if scores else None

    @property
    def length(self) -> int:
        """Length of the reply in words."""
        return len(self.reply.split())

    @property
    def done(self) -> bool:
        return self.state == "done"


@dataclass
class Column:
    """One contender, all its turns and its totals."""

    contender: Contender
    turns: list[Turn]
    status: str
    """running, done, failed, interrupted or stopped."""
    error: str = ""
    votes: int = 0
    consistency: float | None = None
    """StyleModel.consistency over the column's replies."""
    scored: list[StyleScore] = field(default_factory=list)
    result: Any = None
    """Its figures with intervals (results.ContenderResult), when the board computed them."""

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def complete(self) -> bool:
        return all(t.complete for t in self.turns)

    @property
    def replies(self) -> list[Turn]:
        """Every sample of every line, in line order."""
        return [t for turn in self.turns for t in turn.every_sample]

    @property
    def mean_probability(self) -> float | None:
        return fmean(s.probability for s in self.scored) if self.scored else None

    @property
    def mean_distance(self) -> float | None:
        return fmean(s.distance for s in self.scored) if self.scored else None

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.replies)

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.replies)

    @property
    def latency_s(self) -> float:
        return sum(t.latency_s for t in self.replies)

    @property
    def mean_judge(self) -> float | None:
        scores = [t.judge["score"] for t in self.turns if t.judge and "score" in t.judge]
        return fmean(scores) if scores else None


# --- reading a session ----------------------------------------------------------------------


def session_tree(session_id: int) -> Tree:
    """Every node of a session with its call record and data (marks and costs live there)."""
    return Tree(OrmStore(session_id).all_nodes())


def main_path(tree: Tree) -> list[Node]:
    """Sample 1's conversation: from the first line down, turn by turn (samples.py's rules)."""
    node = rules.first_line(tree.children.get(None, []))
    path: list[Node] = []
    while node is not None:
        path.append(node)
        children = tree.children.get(node.id, [])
        if rules.is_line(node):
            line = node
            turns = [(c, turn_end(tree, c)) for c in rules.unmarked(children)]
            node = rules.choose_first(line, turns)
        else:
            node = rules.turn_step(children) or rules.next_line(children)
    return path


def turn_end(tree: Tree, node: Node) -> Node:
    """Rule 4: the end of the turn `node` is part of."""
    while (step := rules.turn_step(tree.children.get(node.id, []))) is not None:
        node = step
    return node


def turns_from_tree(tree: Tree, script: list[str], samples: int, *, running: bool) -> list[Turn]:
    """Every line's sample 1 (from the main path) with its other samples attached."""
    path = main_path(tree)
    turns = turns_from_path(path, script, running=running)
    lines = [node for node in path if rules.is_line(node)]
    for turn, line in zip(turns, lines, strict=False):
        turn.expected = samples
        for mark, top in rules.other_samples(tree.children.get(line.id, []), samples).items():
            branch = tree.path(turn_end(tree, top).id)
            sample = Turn(turn.index, turn.line, sample=mark, expected=samples)
            state = derive(branch, branch[0].persona)
            replies = {t.node_id: t for t in state.transcript if t.speaker != USER}
            at = next(i for i, n in enumerate(branch) if n.id == line.id)
            _read_segment(sample, branch[at:], replies, last=True, running=running)
            turn.samples.append(sample)
    for turn in turns[len(lines) :]:
        turn.expected = samples
    return turns


def turns_from_path(path: list[Node], script: list[str], *, running: bool) -> list[Turn]:
    """Split the path at the user's lines and read each turn's reply and cost."""
    turns = [Turn(i, line) for i, line in enumerate(script)]
    if not path:
        return turns
    state = derive(path, path[0].persona)
    replies = {t.node_id: t for t in state.transcript if t.speaker != USER}
    segments: list[list[Node]] = []
    for node in path:
        if node.kind is NodeKind.INBOUND and node.sender == USER:
            segments.append([node])
        elif segments:
            segments[-1].append(node)
    # Lines a person added in the debugger beyond the script are not part of the comparison.
    for turn, segment in zip(turns, segments, strict=False):
        _read_segment(turn, segment, replies, last=segment is segments[-1], running=running)
    stopped = not running or any(t.state in ("failed", "interrupted") for t in turns)
    for turn in turns[len(segments) :]:
        turn.state = "skipped" if stopped else "waiting"
    return turns


def _read_segment(
    turn: Turn, segment: list[Node], replies: dict, *, last: bool, running: bool
) -> None:
    turn.line = segment[0].content
    for node in segment:
        if node.call is None:
            continue
        turn.calls += 1 + len(node.call.attempts)
        turn.prompt_tokens += node.call.prompt_tokens or 0
        turn.completion_tokens += node.call.completion_tokens or 0
        turn.latency_s += node.call.latency_s or 0.0
    said = [n for n in segment if n.id in replies]
    if said:
        node = said[-1]
        turn.state = "done"
        turn.passed = replies[node.id].passed
        turn.reply = "" if turn.passed else node.content
        score = node.data.get("alignment")
        turn.alignment = float(score) if isinstance(score, int | float) else None
        turn.drifting = bool(node.data.get("drifting"))
        return
    tip = segment[-1]
    if tip.status in UNFINISHED:
        turn.state = "running"
        turn.live_node, turn.live_persona = tip.id, tip.persona
    elif tip.kind is NodeKind.ERROR or tip.status is NodeStatus.FAILED:
        turn.state, turn.error = "failed", tip.content
    elif tip.status is NodeStatus.INTERRUPTED:
        turn.state, turn.error = "interrupted", "interrupted: the server stopped mid-turn"
    elif last and running:
        turn.state, turn.live_persona = "running", tip.persona
    else:
        turn.state = "stopped"


# --- columns ----------------------------------------------------------------------------------


def _status(run: Run | None, turns: list[Turn], error: str) -> str:
    replies = [t for turn in turns for t in turn.every_sample]
    if run is not None and run.status == RunStatus.RUNNING:
        return "running"
    if all(t.complete for t in turns):
        return "done"
    if any(t.state == "interrupted" for t in replies) or (
        run is not None and run.status == RunStatus.INTERRUPTED
    ):
        return "interrupted"
    if error or any(t.state == "failed" for t in replies):
        return "failed"
    return "stopped" if run is not None else "waiting"


def build_column(
    contender: Contender,
    script: list[str],
    model: StyleModel | None,
    slug: str,
    votes: int = 0,
    samples: int = 1,
) -> Column:
    session = contender.session
    run = Run.objects.filter(session_id=session.pk).first() if session is not None else None
    running = run is not None and run.status == RunStatus.RUNNING
    tree = session_tree(session.pk) if session is not None else Tree([])
    turns = turns_from_tree(tree, script, samples, running=running)
    every = [t for turn in turns for t in turn.every_sample]
    failed = next((t.error for t in every if t.state == "failed"), "")
    error = contender.error or failed or (run.error if run is not None else "")
    if session is None:
        error = error or "its session was deleted"
    column = Column(contender, turns, _status(run, turns, error), error=error, votes=votes)
    for turn in turns:
        turn.judge = contender.judge.get(str(turn.index))
    if model is not None:
        for reply in every:
            if reply.done and reply.reply.strip():
                reply.style = style.score(model, reply.reply, slug)
                column.scored.append(reply.style)
        if column.scored:
            column.consistency = consistency_of(column.scored, slug)
    return column


def style_model(comparison: Comparison) -> tuple[StyleModel | None, str]:
    character = comparison.character
    if character is None:
        return None, ""
    return style.model_for(character.slug, character.data.get("sample_lines") or []), character.slug


def tallies(comparison: Comparison) -> dict[int, int]:
    """Votes per contender id."""
    rows = Vote.objects.filter(comparison=comparison).values("contender").annotate(n=Count("pk"))
    return {row["contender"]: row["n"] for row in rows}


def columns(comparison: Comparison, only: int | None = None) -> list[Column]:
    """Every contender's column in position order (or just the one with id `only`)."""
    model, slug = style_model(comparison)
    votes = tallies(comparison)
    contenders = comparison.contenders.select_related("session").order_by("position")
    if only is not None:
        contenders = contenders.filter(pk=only)
    script = list(comparison.script)
    return [
        build_column(c, script, model, slug, votes.get(c.pk, 0), comparison.samples)
        for c in contenders
    ]
