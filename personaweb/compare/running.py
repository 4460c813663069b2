"""Playing a comparison's script: every contender concurrently, each in its own session.

Each contender is one run of the web app's run manager (`runs.start`), so its tree streams
into its own debugger, every step is persisted before the next, and a run killed with its
process leaves interrupted nodes that `resume` picks up. A contender that fails stops; the
others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from asgiref.sync import sync_to_async

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


async def play_script(
    engine: Engine, script: Sequence[str], leaf_id: str | None, *, retries: int = 0
) -> Node:
    """Feed the script's lines one after another, each under the previous reply, until every
    line is answered or a step fails. Picks up wherever the path to `leaf_id` stands (a fresh
    session, a finished line, a run cut off mid-way); `retries` failed or interrupted steps
    are tried again (0 on a first run: a failure there is the result)."""
    if leaf_id is None:
        inbound = await engine.send(script[0], None)
        leaf = await engine.advance(inbound.id)
    else:
        leaf = await engine.store.get(leaf_id)
    while True:
        state = await engine.state(leaf.id)
        kind = state.next.kind
        if kind is NextKind.DONE:
            sent = lines_sent(state.transcript)
            if sent >= len(script):
                return leaf
            inbound = await engine.send(script[sent], leaf.id)
            leaf = await engine.advance(inbound.id)
        elif kind in (NextKind.FAILED, NextKind.INTERRUPTED) and retries > 0:
            retries -= 1
            again = await engine.retry(leaf.id)
            leaf = await engine.advance(again.id)
        elif kind in (NextKind.PROPOSE, NextKind.DELEGATE, NextKind.REVIEW):
            advanced = await engine.advance(leaf.id)
            if advanced.id == leaf.id:
                return leaf  # nothing moved (a stop the session's mode asks for)
            leaf = advanced
        else:
            return leaf  # failed, busy or empty: the column shows why


def _leaf(session: ChatSession) -> str | None:
    """Where the session's conversation stands: the newest leaf of its active branch."""
    return load_tree(session).active_leaf(session.active_node) or None


async def _start_one(contender: Contender, script: list[str], *, retries: int) -> None:
    assert contender.session_id is not None  # start() skips contenders without a session
    session = await ChatSession.objects.select_related("character").aget(pk=contender.session_id)
    leaf = await sync_to_async(_leaf)(session)

    async def job(engine: Engine, _first: None) -> Node:
        return await play_script(engine, script, leaf, retries=retries)

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
        await _start_one(contender, script, retries=retries)


async def resume(comparison: Comparison, contender_ids: Iterable[int]) -> None:
    """Continue contenders that stopped short of the script's end: an interrupted or failed
    step is retried once, then the remaining lines are played."""
    await start(comparison, only=contender_ids, retries=1)


async def wait(comparison: Comparison, timeout: float = 60) -> None:
    """Wait for every contender's run (tests, and the judge before it reads replies)."""
    async for contender in comparison.contenders.filter(session__isnull=False):
        assert contender.session_id is not None
        await runs.wait(contender.session_id, timeout)
