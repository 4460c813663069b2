"""What a comparison page shows: each contender's reply to each line, measured.

Everything is read from the contenders' sessions (the nodes on the active path), never kept
elsewhere: what the page, the exports and the debugger show cannot disagree. A reply's cost
is the sum over every node of its turn (calls, tokens, latency, failed attempts included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from django.db.models import Count

from personaweb.characters.style import StyleModel, StyleScore
from personaweb.compare import style
from personaweb.compare.models import Comparison, Contender, Vote
from personaweb.personas import Node, NodeKind, NodeStatus, derive
from personaweb.personas.state import USER
from personaweb.personas.tree import UNFINISHED
from personaweb.web.models import Run, RunStatus
from personaweb.web.store import load_tree, path_rows, to_node


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

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

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

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def complete(self) -> bool:
        return all(t.done for t in self.turns)

    @property
    def mean_probability(self) -> float | None:
        return fmean(s.probability for s in self.scored) if self.scored else None

    @property
    def mean_distance(self) -> float | None:
        return fmean(s.distance for s in self.scored) if self.scored else None

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.turns)

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.turns)

    @property
    def latency_s(self) -> float:
        return sum(t.latency_s for t in self.turns)

    @property
    def mean_judge(self) -> float | None:
        scores = [t.judge["score"] for t in self.turns if t.judge and "score" in t.judge]
        return fmean(scores) if scores else None


# --- reading a session ----------------------------------------------------------------------


def active_path(session_id: int, active_node: str) -> list[Node]:
    """The nodes root -> newest leaf of the session's active branch, with calls and data."""
    leaf = load_tree(session_id).active_leaf(active_node)
    if not leaf:
        return []
    return [to_node(row) for row in path_rows(session_id, leaf, with_call=True)]


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
    if run is not None and run.status == RunStatus.RUNNING:
        return "running"
    if all(t.done for t in turns):
        return "done"
    if any(t.state == "interrupted" for t in turns) or (
        run is not None and run.status == RunStatus.INTERRUPTED
    ):
        return "interrupted"
    if error or any(t.state == "failed" for t in turns):
        return "failed"
    return "stopped" if run is not None else "waiting"


def build_column(
    contender: Contender, script: list[str], model: StyleModel | None, slug: str, votes: int = 0
) -> Column:
    session = contender.session
    run = Run.objects.filter(session_id=session.pk).first() if session is not None else None
    running = run is not None and run.status == RunStatus.RUNNING
    path = active_path(session.pk, session.active_node) if session is not None else []
    turns = turns_from_path(path, script, running=running)
    failed = next((t.error for t in turns if t.state == "failed"), "")
    error = contender.error or failed or (run.error if run is not None else "")
    if session is None:
        error = error or "its session was deleted"
    column = Column(contender, turns, _status(run, turns, error), error=error, votes=votes)
    for turn in turns:
        turn.judge = contender.judge.get(str(turn.index))
    if model is not None:
        for turn in turns:
            if turn.done and turn.reply.strip():
                turn.style = model.score(turn.reply, slug)
                column.scored.append(turn.style)
        replies = [t.reply for t in turns if t.done and t.reply.strip()]
        if replies:
            column.consistency = model.consistency(replies, slug)
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
    return [build_column(c, script, model, slug, votes.get(c.pk, 0)) for c in contenders]
