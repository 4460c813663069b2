"""Runs: engine work as asyncio tasks, owned by the server process that started them.

- **One truth about whether a run is going: its `Run` row.** A row with status `running` is
  a run in progress, whichever process owns it; a unique constraint allows one per session,
  so two clicks, two tabs or two servers cannot both start one.
- **Stop travels to the owner.** `stop` finds the running row; the owning process cancels its
  task, told over the channel layer (every process listens on a group of its own). A row
  whose owner is dead is reclaimed at once instead.
- **Runs never live in a WebSocket consumer** (a consumer dies with its socket): views start
  them here, and every browser watches through live.py's frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from personaweb.personas import ActionRefused, Engine, Node
from personaweb.personas.state import NextKind, PathState
from personaweb.web import building, live, recovery
from personaweb.web.models import ChatSession, Run, RunStatus
from personaweb.web.panes import TRANSCRIPT_WINDOW, side_of

log = logging.getLogger("personaweb.web.runs")

First = Callable[[Engine], Awaitable[Any]]
"""A quick engine action taken before the run's task starts (send, approve, ...)."""
Job = Callable[[Engine, Any], Awaitable[Node]]
"""What the run's task does with its engine and the first action's result; returns the leaf
where it stopped."""

BUSY = "a run is in progress on this session; wait for it or stop it"


class RunBusy(Exception):
    """The session already has a run in progress."""


_tasks: dict[int, tuple[int, asyncio.Task[None]]] = {}
"""This process's runs: session id -> (run id, task)."""
_listener: tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None = None
"""The task that takes stop requests for this process, and the event loop it runs on."""


# --- is a run going? ---------------------------------------------------------------------------


def is_running(session_id: int) -> bool:
    """Whether the session has a run in progress, in any process (its Run row says so)."""
    return any_running([session_id])


def any_running(session_ids: list[int]) -> bool:
    """Whether any of the sessions has a run in progress, in any process."""
    return Run.objects.filter(session_id__in=session_ids, status=RunStatus.RUNNING).exists()


# --- starting ----------------------------------------------------------------------------------


def _claim(session: ChatSession, trigger: str) -> Run:
    """The session's run row, created as `running`: the database's unique constraint makes
    this the one claim that counts, whatever process or request gets here first."""
    recovery.reclaim_stale(session.pk)
    try:
        with transaction.atomic():
            return Run.objects.create(
                session=session,
                trigger=trigger,
                worker=recovery.WORKER_ID,
                heartbeat_at=timezone.now(),
            )
    except IntegrityError:
        raise RunBusy(BUSY) from None


def _frames_for(session: ChatSession, engine: Engine) -> live.Frames:
    return live.Frames(session, engine.root.describe(), building.kind_of(session))


async def start(
    session: ChatSession, trigger: str, job: Job, *, first: First | None = None, actor: str = ""
) -> Run:
    """Start a run on the session: `first` (a quick engine action such as approve or send) runs
    now, so its refusal (ActionRefused) reaches the caller; `job` then runs as a task. `actor`:
    who asked (a user name), recorded with what they do. Raises RunBusy when the session
    already has a run, here or in another process."""
    await sync_to_async(recovery.ensure_recovered)()
    run = await sync_to_async(_claim)(session, trigger)
    try:
        await _ensure_listener()
        engine = await sync_to_async(building.engine_for)(session)
        frames = await sync_to_async(_frames_for)(session, engine)
        engine.observer = live.Broadcaster(session.pk, frames)
        engine.actor = actor
        result = await first(engine) if first is not None else None
    except BaseException as exc:
        await sync_to_async(_finish)(run.pk, RunStatus.STOPPED, str(exc), "")
        raise
    if isinstance(result, Node):
        await Run.objects.filter(pk=run.pk).aupdate(start_node=result.id)
        state = await engine.state(result.id)
        await _publish_run(
            session, frames, state, running=True, summary=live.run_summary(run.pk, "running")
        )
    task = asyncio.create_task(_execute(run, session, engine, frames, job, result))
    task.set_name(f"run-{run.pk}")
    _tasks[session.pk] = (run.pk, task)
    return run


async def _execute(
    run: Run, session: ChatSession, engine: Engine, frames: live.Frames, job: Job, first: Any
) -> None:
    status, error, leaf = RunStatus.FAILED, "", ""
    state: PathState | None = None
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
        status, error, state = RunStatus.INTERRUPTED, "stopped by a person", None
        await sync_to_async(recovery.interrupt_session)(run.session_id)
        engine.forget_walks()  # its leaf was pending; the store now says interrupted
        await live.publish_html(run.session_id, live.reload_marker(live.RELOAD_ALL))
    except ActionRefused as exc:
        error = str(exc)
        await live.publish_html(run.session_id, _flash(error))
    except Exception as exc:
        log.exception("run %s failed", run.pk)
        error = f"{type(exc).__name__}: {exc}"
        await live.publish_html(run.session_id, _flash(f"The run failed: {error}"))
    finally:
        heart.cancel()
        if isinstance(engine.observer, live.Broadcaster):
            await engine.observer.close()
        await sync_to_async(_finish)(run.pk, status, error, leaf)
        building.WALKS.put(run.session_id, engine.walk)
        if _tasks.get(run.session_id, (0, None))[1] is asyncio.current_task():
            del _tasks[run.session_id]
        with contextlib.suppress(Exception):
            summary = live.run_summary(run.pk, str(status), leaf=leaf, error=error)
            await _publish_run(session, frames, state, running=False, summary=summary)


async def _publish_run(
    session: ChatSession,
    frames: live.Frames,
    state: PathState | None,
    *,
    running: bool,
    summary: dict[str, Any],
) -> None:
    if state is None:
        await live.publish_html(session.pk, live.reload_marker("runbar personas"), summary)
        return
    side = side_of(session, frames.root, state, running, director=frames.kind.director)
    lines = tuple(state.transcript[-TRANSCRIPT_WINDOW:])
    html = await sync_to_async(frames.run_changed, thread_sensitive=False)(side, lines)
    await live.publish_html(session.pk, html, summary)


def _flash(message: str) -> str:
    from django.template.loader import render_to_string

    return render_to_string("web/panes.html#flash", {"message": message})


async def _heartbeat(run_id: int) -> None:
    while True:
        await asyncio.sleep(settings.RUN_HEARTBEAT_EVERY)
        await Run.objects.filter(pk=run_id).aupdate(heartbeat_at=timezone.now())


def _finish(run_id: int, status: str, error: str, leaf: str) -> None:
    """The run's end, written after its last frame: the page opens where the job ended (the
    frames followed each new node; a job may end elsewhere, as a comparison does, on its
    conversation rather than its last sample)."""
    with transaction.atomic():
        run = Run.objects.filter(pk=run_id).first()
        Run.objects.filter(pk=run_id).update(
            status=status, error=error, leaf_node=leaf, finished_at=timezone.now()
        )
        if leaf and run is not None:
            ChatSession.objects.filter(pk=run.session_id).update(active_node=leaf)
    # The run's database thread is done with its connection: give it back (a request's is
    # closed when the request ends; a run outlives its request).
    if not connection.in_atomic_block:
        connection.close()


# --- stopping ----------------------------------------------------------------------------------


def _worker_group(worker: str) -> str:
    # Channel-layer group names: ASCII letters, digits, hyphens, underscores, periods.
    return "pw-worker-" + re.sub(r"[^A-Za-z0-9_.-]", "_", worker)[:80]


async def stop(session_id: int) -> bool:
    """Stop the session's run, wherever it runs; its unfinished nodes become interrupted.
    False if no run is going."""
    run = await Run.objects.filter(session_id=session_id, status=RunStatus.RUNNING).afirst()
    if run is None:
        return False
    if run.worker == recovery.WORKER_ID:
        await _cancel_local(run.pk)
        return True
    if recovery.is_dead(run):
        await sync_to_async(_reclaim)(run.pk, session_id)
        await live.publish_html(session_id, live.reload_marker(live.RELOAD_ALL))
        return True
    await get_channel_layer().group_send(
        _worker_group(run.worker), {"type": "run.stop", "run": run.pk}
    )
    return True


def _reclaim(run_id: int, session_id: int) -> None:
    with transaction.atomic():
        Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.INTERRUPTED, finished_at=timezone.now(), error=recovery.STALE
        )
        recovery.interrupt_session(session_id)


async def _cancel_local(run_id: int) -> None:
    for _session_id, (owned, task) in list(_tasks.items()):
        if owned == run_id and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _ensure_listener() -> None:
    """Listen for stop requests addressed to this process (once per process and loop)."""
    global _listener
    loop = asyncio.get_running_loop()
    if _listener is not None and _listener[0] is loop and not _listener[1].done():
        return
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(_worker_group(recovery.WORKER_ID), channel)
    _listener = (loop, asyncio.create_task(_listen(channel), name="pw-run-stop-listener"))


async def _listen(channel: str) -> None:
    layer = get_channel_layer()
    group = _worker_group(recovery.WORKER_ID)
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout=3600)
        except TimeoutError:
            await layer.group_add(group, channel)  # groups expire; stay in ours
            continue
        if message.get("type") == "run.stop":
            await _cancel_local(int(message["run"]))


# --- for tests and shutdown --------------------------------------------------------------------


async def wait(session_id: int, timeout: float = 30) -> None:
    """Wait until the session's run in this process (if any) has finished."""
    entry = _tasks.get(session_id)
    if entry is not None:
        await asyncio.wait_for(asyncio.shield(entry[1]), timeout)


def reset_for_tests() -> None:
    global _listener
    if _listener is not None and not _listener[0].is_closed():
        _listener[1].cancel()
    _listener = None
    _tasks.clear()
    recovery.reset_for_tests()
    building.reset_for_tests()
