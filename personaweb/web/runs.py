"""Runs: engine work as asyncio tasks owned by the server process.

A run is never owned by a WebSocket consumer (a consumer dies with its socket): views start
runs here, one at a time per session, and every browser on the session watches them through
the channel layer. Every step is persisted by the engine before the next begins, so a run that
dies with its process leaves nodes `pending`/`streaming`; the first use of this module in a
new process marks those `interrupted` (see `ensure_recovered`), and a person can resume them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from personaweb.cast.sessions import SessionCards
from personaweb.llm import build_chat_model, endpoint_from_env
from personaweb.llm.types import ChatModel, LLMProfile
from personaweb.personas import (
    ActionRefused,
    Engine,
    Mode,
    Node,
    NodeStatus,
    ResponseDrivenPersona,
    RunConfig,
    build_hierarchy,
)
from personaweb.personas.group import (
    GROUP_MAX_STEPS,
    RatingBook,
    group_hierarchy,
    group_settings_from_dict,
)
from personaweb.personas.state import NextKind
from personaweb.personas.tree import UNFINISHED
from personaweb.web.models import Character, ChatSession, NodeRow, Run, RunStatus
from personaweb.web.store import OrmStore

log = logging.getLogger("personaweb.web.runs")

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
"""Who owns a run row: this process (a restart is a new worker)."""

First = Callable[[Engine], Awaitable[Node]]
"""A quick engine action taken before the run's task starts (send, approve, ...)."""
Job = Callable[[Engine, Any], Awaitable[Node]]
"""What the run's task does with its engine and the first action's node; returns the leaf
where it stopped."""


class RunBusy(Exception):
    """The session already has a run in progress."""


_tasks: dict[int, asyncio.Task[None]] = {}
_claimed: set[int] = set()
_recovered = False
_models: dict[tuple[str | None, str, str], ChatModel] = {}


# --- building an engine -----------------------------------------------------------------


def hierarchy_for(session: ChatSession) -> ResponseDrivenPersona:
    """The session's persona tree, with its per-persona LLM profiles applied."""
    profiles = {path: LLMProfile.from_dict(p) for path, p in (session.profiles or {}).items()}
    if session.hierarchy == "group":
        return group_for(session, profiles)
    # The character as this session meets it: card macros replaced, lorebooks read.
    character: Any = None
    if session.character is not None:
        character = SessionCards.of(session, [session.character]).character(session.character)
    if session.hierarchy == "dialogue" and character is None:
        character = {"name": "Character"}
    return build_hierarchy(
        session.hierarchy,
        character=character,
        strategy=session.strategy or "nested",
        profiles=profiles,
    )


_ratings: dict[int, RatingBook] = {}
"""Background heat ratings per group session (advisory, kept in this process's memory)."""


def group_for(session: ChatSession, profiles: dict[str, LLMProfile]) -> ResponseDrivenPersona:
    """A group chat: the director over one dialogue hierarchy per member character."""
    ids = [int(i) for i in session.members or []]
    by_id = {c.pk: c for c in Character.objects.filter(owner_id=session.owner_id, pk__in=ids)}
    members = [by_id[i] for i in ids if i in by_id]
    cards = SessionCards.of(session, members)
    names = [c.name for c in members]
    cast = [(c.slug, cards.character(c, group=names)) for c in members]
    talk = {by_id[i].slug: float(by_id[i].data.get("talkativeness", 0.5)) for i in by_id}
    root = group_hierarchy(
        cast,
        group_settings_from_dict(session.group_settings or {}),
        strategy=session.strategy or "nested",
        talkativeness=talk,
        ratings=_ratings.setdefault(session.pk, RatingBook()),
    )
    for persona in root.walk():
        if persona.path in profiles:
            persona.profile = profiles[persona.path]
    return root


def run_config_for(session: ChatSession) -> RunConfig:
    return RunConfig(
        mode=Mode(session.mode),
        breakpoints=frozenset(session.breakpoints or []),
        max_steps=GROUP_MAX_STEPS if session.hierarchy == "group" else RunConfig.max_steps,
        guided=session.guided,
    )


def chat_model() -> ChatModel:
    """The process's ChatModel for the configured endpoint (read from the environment each
    time, so tests and operators can repoint it without a restart)."""
    config = endpoint_from_env(os.environ)
    key = (config.base_url, config.api_key, config.default_model)
    if key not in _models:
        _models[key] = build_chat_model(config)
    return _models[key]


def engine_for(session: ChatSession, observer: Broadcaster | None = None) -> Engine:
    return Engine(
        hierarchy_for(session),
        OrmStore(session.pk),
        chat_model(),
        run_config_for(session),
        observer,
    )


# --- live updates ------------------------------------------------------------------------


def _max_seq(session_id: int) -> int:
    return NodeRow.objects.filter(session_id=session_id).aggregate(m=Max("seq"))["m"] or 0


def _set_active(session_id: int, node_id: str) -> None:
    ChatSession.objects.filter(pk=session_id).update(active_node=node_id, updated_at=timezone.now())


class Broadcaster:
    """The engine's Observer: every node change goes to the session's channel-layer group.

    Created nodes become the session's active leaf (the page follows the run). Streamed text is
    sent at most every TOKEN_BATCH_MS per node, never one frame per token.
    """

    def __init__(self, session_id: int, start_seq: int) -> None:
        self.session_id = session_id
        self.group = f"session-{session_id}"
        self.start_seq = start_seq
        self.batch_s = settings.TOKEN_BATCH_MS / 1000
        self.layer = get_channel_layer()
        self._announced: set[str] = set()
        self._pending: dict[str, tuple[Node, str]] = {}
        self._last_sent: dict[str, float] = {}
        self._flusher: asyncio.TimerHandle | None = None
        self.frames_sent = 0

    @classmethod
    async def for_session(cls, session_id: int) -> Broadcaster:
        return cls(session_id, await sync_to_async(_max_seq)(session_id))

    async def node_changed(self, node: Node) -> None:
        # Text still waiting for its batch is older than this change: drop it, or a late
        # token frame would paint a finished node as streaming again.
        self._pending.pop(node.id, None)
        created = node.seq > self.start_seq and node.id not in self._announced
        self._announced.add(node.id)
        if created:
            await sync_to_async(_set_active)(self.session_id, node.id)
        await self._send(
            {
                "type": "node.changed",
                "node_id": node.id,
                "parent_id": node.parent_id,
                "created": created,
            }
        )

    async def tokens(self, node: Node, text: str) -> None:
        loop = asyncio.get_running_loop()
        self._pending[node.id] = (node, text)
        if loop.time() - self._last_sent.get(node.id, 0.0) >= self.batch_s:
            await self.flush()
        elif self._flusher is None:
            self._flusher = loop.call_later(self.batch_s, self._schedule_flush)

    def _schedule_flush(self) -> None:
        self._flusher = None
        task = asyncio.ensure_future(self.flush())
        task.add_done_callback(_log_failure)

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        pending, self._pending = self._pending, {}
        for node, text in pending.values():
            self._last_sent[node.id] = loop.time()
            data = node.to_dict()
            data.pop("call", None)
            data["status"] = NodeStatus.STREAMING.value
            data["content"] = text
            await self._send({"type": "node.tokens", "node": data})

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self._pending.clear()

    async def _send(self, event: dict) -> None:
        self.frames_sent += 1
        await self.layer.group_send(self.group, event)


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("token flush failed", exc_info=task.exception())


async def broadcast(session_id: int, event: dict) -> None:
    await get_channel_layer().group_send(f"session-{session_id}", event)


# --- the run registry ---------------------------------------------------------------------


def is_running(session_id: int) -> bool:
    task = _tasks.get(session_id)
    return session_id in _claimed or (task is not None and not task.done())


def _claim(session: ChatSession, trigger: str) -> Run:
    """The session's run row, created as `running`: the database's unique constraint makes
    this the one claim that counts, whatever process or request gets here first."""
    _reclaim_stale(session.pk)
    try:
        with transaction.atomic():
            return Run.objects.create(
                session=session, trigger=trigger, worker=WORKER_ID, heartbeat_at=timezone.now()
            )
    except IntegrityError:
        raise RunBusy(BUSY) from None


def _reclaim_stale(session_id: int) -> None:
    """With several processes, a run whose heartbeat stopped belongs to a dead process: mark
    it and its unfinished nodes interrupted, so the session can be resumed."""
    if not settings.RUN_STALE_AFTER:
        return  # one process: runs of other workers were recovered at start-up
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_STALE_AFTER)
    with transaction.atomic():
        dead = Run.objects.filter(
            session_id=session_id, status=RunStatus.RUNNING, heartbeat_at__lt=cutoff
        ).exclude(worker=WORKER_ID)
        if dead.update(status=RunStatus.INTERRUPTED, finished_at=timezone.now(), error=STALE):
            _interrupt_session(session_id)


BUSY = "a run is in progress on this session; wait for it or stop it"
STALE = "the process stopped"


async def start(
    session: ChatSession,
    trigger: str,
    job: Job,
    *,
    first: First | None = None,
) -> Run:
    """Start a run on the session: `first` (a quick engine action such as approve or send) runs
    now, so its refusal (ActionRefused) reaches the caller; `job` then runs as a task. Raises
    RunBusy when the session already has a run, here or in another process."""
    if is_running(session.pk):
        raise RunBusy(BUSY)
    # Claimed before the first await: a second request in this process sees it at once.
    _claimed.add(session.pk)
    try:
        await sync_to_async(ensure_recovered)()
        run = await sync_to_async(_claim)(session, trigger)
        try:
            observer = await Broadcaster.for_session(session.pk)
            # Building the hierarchy may read the database (a group's member characters).
            engine = await sync_to_async(engine_for)(session, observer)
            node = await first(engine) if first is not None else None
        except BaseException as exc:
            await sync_to_async(_finish)(run.pk, RunStatus.STOPPED, str(exc), "")
            raise
        if node is not None:
            run.start_node = node.id
            await sync_to_async(Run.objects.filter(pk=run.pk).update)(start_node=node.id)
        task = asyncio.create_task(_execute(run, engine, observer, job, node), name=f"run-{run.pk}")
        _tasks[session.pk] = task
    finally:
        _claimed.discard(session.pk)
    await broadcast(session.pk, {"type": "run.changed"})
    return run


async def _execute(
    run: Run, engine: Engine, observer: Broadcaster, job: Job, first: Node | None
) -> None:
    status, error, leaf = RunStatus.FAILED, "", ""
    heart = asyncio.create_task(_heartbeat(run.pk))
    try:
        node = await job(engine, first)
        leaf = node.id
        state = await engine.state(node.id)
        status = {
            NextKind.DONE: RunStatus.DONE,
            NextKind.FAILED: RunStatus.FAILED,
            NextKind.INTERRUPTED: RunStatus.INTERRUPTED,
        }.get(state.next.kind, RunStatus.STOPPED)
        if status is RunStatus.FAILED:
            error = node.content
    except asyncio.CancelledError:
        status, error = RunStatus.INTERRUPTED, "stopped by a person"
        await sync_to_async(_interrupt_session)(run.session_id)
        await broadcast(run.session_id, {"type": "tree.changed"})
    except ActionRefused as exc:
        error = str(exc)
        await broadcast(run.session_id, {"type": "flash", "message": error})
    except Exception as exc:
        log.exception("run %s failed", run.pk)
        error = f"{type(exc).__name__}: {exc}"
        await broadcast(run.session_id, {"type": "flash", "message": f"The run failed: {error}"})
    finally:
        heart.cancel()
        await observer.close()
        await sync_to_async(_finish)(run.pk, status, error, leaf)
        if _tasks.get(run.session_id) is asyncio.current_task():
            del _tasks[run.session_id]
        await broadcast(run.session_id, {"type": "run.changed"})


async def _heartbeat(run_id: int) -> None:
    while True:
        await asyncio.sleep(settings.RUN_HEARTBEAT_EVERY)
        await sync_to_async(Run.objects.filter(pk=run_id).update)(heartbeat_at=timezone.now())


def _finish(run_id: int, status: str, error: str, leaf: str) -> None:
    Run.objects.filter(pk=run_id).update(
        status=status, error=error, leaf_node=leaf, finished_at=timezone.now()
    )


async def stop(session_id: int) -> bool:
    """Cancel the session's run; its unfinished nodes become interrupted. False if none."""
    task = _tasks.get(session_id)
    if task is None or task.done():
        return False
    task.cancel()
    with _suppress_cancel():
        await task
    return True


async def wait(session_id: int, timeout: float = 30) -> None:
    """Wait until the session's run (if any) has finished. For tests and shutdown."""
    task = _tasks.get(session_id)
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), timeout)


class _suppress_cancel:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return exc_type is asyncio.CancelledError


# --- recovery -------------------------------------------------------------------------------


def _interrupt_session(session_id: int) -> int:
    return NodeRow.objects.filter(
        session_id=session_id, status__in=[s.value for s in UNFINISHED]
    ).update(status=NodeStatus.INTERRUPTED.value, updated_at=timezone.now())


def recover(now=None) -> int:
    """Mark the runs of dead processes interrupted, and their unfinished nodes. Returns the
    number of nodes marked. A run is dead when another worker owns it and its heartbeat is
    older than RUN_STALE_AFTER (0: every other worker is dead: one process per database)."""
    now = now or timezone.now()
    with transaction.atomic():
        live = Run.objects.filter(status=RunStatus.RUNNING)
        dead = live.exclude(worker=WORKER_ID)
        if settings.RUN_STALE_AFTER:
            dead = dead.filter(heartbeat_at__lt=now - timedelta(seconds=settings.RUN_STALE_AFTER))
        dead_sessions = set(dead.values_list("session_id", flat=True))
        dead.update(status=RunStatus.INTERRUPTED, finished_at=now, error=STALE)
        busy = set(
            Run.objects.filter(status=RunStatus.RUNNING).values_list("session_id", flat=True)
        )
        unfinished = NodeRow.objects.filter(status__in=[s.value for s in UNFINISHED])
        # Sessions with no live run left cannot have a node legitimately in progress.
        stuck = unfinished.exclude(session_id__in=busy - dead_sessions)
        return stuck.update(status=NodeStatus.INTERRUPTED.value, updated_at=now)


def ensure_recovered() -> None:
    """Recover once per process, on first use (AppConfig.ready must not touch the DB)."""
    global _recovered
    if _recovered:
        return
    count = recover()
    _recovered = True  # only once it worked: a locked database is tried again next time
    if count:
        log.info("marked %d unfinished node(s) from a stopped process as interrupted", count)


def reset_for_tests() -> None:
    global _recovered
    _recovered = False
    _tasks.clear()
    _claimed.clear()
    _models.clear()
