"""Playing a comparison's script: every contender concurrently, each in its own session.

Each contender is one run of the web app's run manager (`runs.start`), so its tree streams
into its own debugger, every step is persisted before the next, and a run killed with its
process leaves interrupted nodes that `resume` picks up. A contender that fails stops; the
others go on.

With N samples per line, every line is answered N times from the same conversation prefix
(see samples.py for the rules): sample 1 first, which the conversation then continues from,
then samples 2..N as branches from the same user message. Where to go on is always read from
the tree, so a resumed run finishes the very sample it was cut off in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from personaweb.compare import samples as rules
from personaweb.compare.models import Comparison, Contender
from personaweb.personas import Engine, NextKind, Node
from personaweb.personas.state import USER, TranscriptLine
from personaweb.web import runs
from personaweb.web.models import ChatSession
from personaweb.web.store import load_tree

log = logging.getLogger("personaweb.compare")

TRIGGER = "compare"


def lines_sent(transcript: Sequence[TranscriptLine]) -> int:
    """How many user lines the conversation on this path holds."""
    return sum(1 for line in transcript if line.speaker == USER)


@dataclass
class Retries:
    """How many failed or interrupted steps a run may still try again."""

    left: int
    """0 on a first run (a failure there is the result); 1 when resuming."""

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def play_script(
    engine: Engine,
    script: Sequence[str],
    root_id: str | None,
    *,
    samples: int = 1,
    retries: int = 0,
) -> Node:
    """Answer every line `samples` times, each line under sample 1 of the previous one, until
    the script is done or a step fails. Picks up wherever the tree under `root_id` (the first
    line; None for a fresh session) stands; `retries` failed or interrupted steps are tried
    again. Returns the end of sample 1's last turn, or the node where it stopped."""
    budget = Retries(retries)
    store = engine.store
    line = await store.get(root_id) if root_id else await engine.send(script[0], None)
    while True:
        children = await store.children(line.id)
        turns = [(child, await _turn_end(engine, child)) for child in rules.unmarked(children)]
        first = rules.choose_first(line, turns)
        if first is None:
            leaf = await engine.advance(line.id)
        else:
            leaf = next(end for child, end in turns if child is first)
        leaf = await _finish_turn(engine, leaf, budget)
        if not await _answered(engine, leaf):
            return leaf
        stopped = await _other_samples(engine, line, samples, budget)
        if stopped is not None:
            return stopped
        following = rules.next_line(await store.children(leaf.id))
        if following is None:
            sent = lines_sent((await engine.state(leaf.id)).transcript)
            if sent >= len(script):
                return leaf
            following = await engine.send(script[sent], leaf.id)
        line = following


async def _other_samples(engine: Engine, line: Node, samples: int, budget: Retries) -> Node | None:
    """Play samples 2..N of a line (those not yet answered); the node where one stopped short,
    or None when all of them answered."""
    existing = rules.other_samples(await engine.store.children(line.id), samples)
    for mark in range(2, samples + 1):
        if mark in existing:
            leaf = await _turn_end(engine, existing[mark])
        else:
            leaf = await engine.branch(line.id)
            await _mark(engine, line, leaf, mark)
        leaf = await _finish_turn(engine, leaf, budget, line=line, mark=mark)
        if not await _answered(engine, leaf):
            return leaf
    return None


async def _finish_turn(
    engine: Engine,
    leaf: Node,
    budget: Retries,
    *,
    line: Node | None = None,
    mark: int | None = None,
) -> Node:
    """Step a turn on from `leaf` until the top persona answers or it cannot go on; a retried
    first node of a sample branch gets the branch's mark again."""
    while True:
        kind = (await engine.state(leaf.id)).next.kind
        if kind is NextKind.DONE:
            return leaf
        if kind in (NextKind.FAILED, NextKind.INTERRUPTED) and budget.take():
            again = await engine.retry(leaf.id)
            if line is not None and mark is not None:
                await _mark(engine, line, again, mark)
            leaf = await engine.advance(again.id)
        elif kind in (NextKind.PROPOSE, NextKind.DELEGATE, NextKind.REVIEW):
            advanced = await engine.advance(leaf.id)
            if advanced.id == leaf.id:
                return leaf  # nothing moved (a stop the session's mode asks for)
            leaf = advanced
        else:
            return leaf  # failed, busy or empty: the column shows why


async def _turn_end(engine: Engine, node: Node) -> Node:
    """Rule 4: the end of the turn that `node` is part of."""
    while (step := rules.turn_step(await engine.store.children(node.id))) is not None:
        node = step
    return node


async def _answered(engine: Engine, leaf: Node) -> bool:
    return (await engine.state(leaf.id)).next.kind is NextKind.DONE


async def _mark(engine: Engine, line: Node, node: Node, mark: int) -> None:
    """Rule 3: mark the first node of a sample branch (the node under the line on its path)."""
    path = await engine.store.path(node.id)
    at = next(i for i, n in enumerate(path) if n.id == line.id)
    if at + 1 >= len(path):
        return  # nothing was made under the line
    await engine.add_data(path[at + 1].id, {rules.SAMPLE_KEY: mark})


def _first_line(session: ChatSession) -> str | None:
    """The session's first user message, where a comparison's conversation starts."""
    first = rules.first_line(load_tree(session).children.get(None, []))
    return first.id if first is not None else None


async def _start_one(
    contender: Contender, script: list[str], samples: int, *, retries: int
) -> None:
    assert contender.session_id is not None  # start() skips contenders without a session
    session = await ChatSession.objects.select_related("character").aget(pk=contender.session_id)
    root = await sync_to_async(_first_line)(session)

    async def job(engine: Engine, _first: None) -> Node:
        # The run ends on the conversation (sample 1's last reply), not on the last sample
        # branch: the debugger opens where the job ends (runs._finish).
        return await play_script(engine, script, root, samples=samples, retries=retries)

    try:
        await runs.start(session, TRIGGER, job)
    except runs.RunBusy:
        return  # already playing: nothing to start
    except Exception as exc:  # the column says why; the other contenders still start
        log.exception("contender %s could not start", contender.pk)
        contender.error = f"{type(exc).__name__}: {exc}"
        await contender.asave(update_fields=["error"])
        return
    if contender.error:
        contender.error = ""
        await contender.asave(update_fields=["error"])


async def start(
    comparison: Comparison, *, only: Iterable[int] | None = None, retries: int = 0
) -> None:
    """Start the contenders' runs (all, or the ids in `only`); they then proceed concurrently
    as asyncio tasks. Call it from an async view, so the tasks live on the server's loop."""
    script = list(comparison.script)
    contenders = comparison.contenders.filter(session__isnull=False).order_by("position")
    if only is not None:
        contenders = contenders.filter(pk__in=list(only))
    async for contender in contenders:
        await _start_one(contender, script, comparison.samples, retries=retries)


async def resume(comparison: Comparison, contender_ids: Iterable[int]) -> None:
    """Continue contenders that stopped short of the script's end: an interrupted or failed
    step is retried once, then the remaining lines are played."""
    await start(comparison, only=contender_ids, retries=1)


async def wait(comparison: Comparison, timeout: float = 60) -> None:
    """Wait for every contender's run (tests, and the judge before it reads replies)."""
    async for contender in comparison.contenders.filter(session__isnull=False):
        assert contender.session_id is not None
        await runs.wait(contender.session_id, timeout)
