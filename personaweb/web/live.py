"""Live updates: every node change of a run becomes one small HTML frame, rendered once and
sent to every browser on the session through the channel layer.

The rules:
- **Rendered once, off the run's path.** The engine's observer (`Broadcaster`) takes a
  snapshot of what changed (the node, and the run's path state around it: next step, stack,
  the transcript's tail) and queues it; a worker task renders it in a thread of its own and
  publishes the HTML. Consumers only forward text: ten browsers cost what one does.
- **Frames carry what changed.** A new node: its row, inserted under its parent. A changed
  node: its row. Either way the runbar and the personas pane (both small), and the transcript
  only when it gained lines (appended) or changed (replaced). A new branch, whose place in the
  tree depends on what each browser shows, asks browsers to reload their tree pane. Browsers
  inspecting the node are told to fetch their inspector themselves. Streamed text: the
  node's preview and its inspector text, at most every TOKEN_BATCH_MS.
- **No frame exceeds FRAME_LIMIT.** Should one, browsers are told to reload their panes
  instead, so nothing is lost (daphne drops a socket whose message is over 1 MiB).
- **Order is kept.** Frames go out in the order their changes happened, tokens included.
- **A burst is one frame.** Changes that queued up while the last frame rendered go out
  together (`Frames.render_burst`): each node once, where it first appears, as it is last;
  the side panes once, as of the last change; a node's streamed text only if nothing later
  in the burst replaces it.
- **Each frame carries summaries beside its HTML** (`summary_of`, `run_summary`: a JSON
  list, one per change it carries): what changed as plain data (node id, kind, status,
  persona, the next step; a run's start and end), for clients that read no HTML, such as the
  API's event stream. Browsers get the HTML only.
- **Rendering only reads.** Where the page opens (the session's active node) is written by
  the store with the nodes themselves; a renderer never waits for the database's write lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from personaweb.personas import Node, NodeKind, NodeStatus, PersonaInfo
from personaweb.personas.state import Next, PathState, TranscriptLine
from personaweb.web.building import Kind
from personaweb.web.models import ChatSession, NodeRow
from personaweb.web.panes import (
    TRANSCRIPT_WINDOW,
    Row,
    Side,
    depth_of,
    names_of,
    shown_lines,
)

log = logging.getLogger("personaweb.web.live")

PANES = "web/panes.html"
GROUP_PANES = "web/group_panes.html"
FRAME_LIMIT = 512 * 1024
"""Largest frame sent (characters); daphne closes a socket on a message over 1 MiB."""
RELOAD_ALL = "runbar personas transcript tree"


def group_name(session_id: int) -> str:
    """The channel-layer group every browser on a session listens to."""
    return f"session-{session_id}"


async def publish(session_id: int, event: dict[str, Any]) -> None:
    """Send an event to every consumer of the session (type "frame" carries HTML)."""
    await get_channel_layer().group_send(group_name(session_id), event)


async def publish_html(
    session_id: int, html: str, summary: dict[str, Any] | list[dict[str, Any]] | None = None
) -> None:
    """Publish a frame, with the summary of each change it carries (one, or a burst's)."""
    event: dict[str, Any] = {"type": "frame", "html": guard(html)}
    if summary is not None:
        # As JSON text: the in-memory channel layer deep-copies every event for every
        # consumer, and a string copies for free (a dict cost more than the frame itself).
        event["summary"] = json.dumps(summary if isinstance(summary, list) else [summary])
    await publish(session_id, event)


def guard(html: str) -> str:
    """The frame, or an instruction to reload every pane when it would be too big."""
    if len(html) <= FRAME_LIMIT:
        return html
    return reload_marker(RELOAD_ALL)


def reload_marker(panes: str) -> str:
    """Tells browsers to fetch these panes themselves (each with its own window)."""
    return f'<template data-pw-reload="{panes}"></template>'


def refresh_marker(node_id: str) -> str:
    """Tells a browser whose inspector shows this node to fetch it again."""
    return f'<template data-pw-refresh="{node_id}"></template>'


@dataclass(frozen=True)
class Change:
    """What one change needs for its frame, copied at the moment it happened."""

    node: Node
    """The node as written (without its call record)."""
    created: bool
    """A new node (else an update)."""
    leaf: Node | None
    """The run's leaf (None when the node is not on the run's path)."""
    next: Next | None
    stack: tuple[str, ...]
    transcript: tuple[TranscriptLine, ...]
    """The transcript's last TRANSCRIPT_WINDOW lines."""
    transcript_total: int
    running: bool = True


@dataclass(frozen=True)
class Tokens:
    """Streamed text of a node so far."""

    node: Node
    text: str


def snapshot(node: Node, state: PathState | None, created: bool, running: bool = True) -> Change:
    light = node.copy()
    light.call = None
    if state is None:
        return Change(light, created, None, None, (), (), 0, running)
    return Change(
        light,
        created,
        state.leaf.copy() if state.leaf is not None else None,
        state.next,
        tuple(state.stack),
        tuple(state.transcript[-TRANSCRIPT_WINDOW:]),
        len(state.transcript),
        running,
    )


def summary_of(item: Change | Tokens) -> dict[str, Any]:
    """A change as plain data: the frame's summary (see the module rules)."""
    node = item.node
    about: dict[str, Any] = {"id": node.id, "persona": node.persona, "kind": node.kind.value}
    if isinstance(item, Tokens):
        return {"event": "tokens", "node": about, "text": item.text}
    about |= {
        "parent_id": node.parent_id,
        "status": node.status.value,
        "action": node.action.value if node.action else None,
        "target": node.target,
        "content": node.content,
    }
    summary: dict[str, Any] = {"event": "node_created" if item.created else "node_updated"}
    summary["node"] = about
    if item.next is not None:
        summary["next"] = {
            "kind": item.next.kind.value,
            "persona": item.next.persona,
            "node_id": item.next.node_id,
        }
    return summary


def run_summary(run_id: int, status: str, *, leaf: str = "", error: str = "") -> dict[str, Any]:
    """A run's start (status "running") or end (its final status) as plain data."""
    event = "run_started" if status == "running" else "run_finished"
    return {"event": event, "run": run_id, "status": str(status), "leaf": leaf, "error": error}


class Frames:
    """Renders changes of one session into frames (synchronous; runs in a worker thread).

    It remembers the transcript it last sent, so the next frame carries only new lines."""

    def __init__(self, session: ChatSession, root: PersonaInfo, kind: Kind) -> None:
        self.session_id = session.pk
        self.base = reverse("session", args=[session.pk])
        self.root = root
        self.kind = kind
        """What the session's kind adds: its director, its own panes."""
        self.names = names_of(root)
        self.session = session
        self._sent_lines: tuple[str, ...] | None = None

    def render_burst(self, items: Sequence[Change | Tokens]) -> str:
        """One frame for changes that queued up together: each node once, where it first
        appears, as it is last (a node made and changed in the same burst is inserted as it
        is now); a node's streamed text only if no later item replaces it; then the side
        panes once, as of the last change on the run's path."""
        changes: dict[str, Change] = {}  # node id -> its last change, made=True if any was
        order: list[Change | Tokens] = []
        for i, item in enumerate(items):
            node_id = item.node.id
            if isinstance(item, Tokens):
                if not any(later.node.id == node_id for later in items[i + 1 :]):
                    order.append(item)
                continue
            earlier = changes.get(node_id)
            if earlier is None:
                order.append(item)
            elif earlier.created and not item.created:
                item = replace(item, created=True)
            changes[node_id] = item
        parts: list[str] = []
        if changes:
            self._refresh_session()
        for item in order:
            if isinstance(item, Tokens):
                parts.append(self.tokens(item))
            else:
                parts.extend(self._node_parts(changes[item.node.id]))
        on_path = [c for c in items if isinstance(c, Change) and c.leaf is not None]
        if on_path:
            decided = any(c.node.kind is NodeKind.DECISION for c in on_path)
            parts.extend(self._side_parts(on_path[-1], with_own_panes=decided))
        return "".join(parts)

    def tokens(self, item: Tokens) -> str:
        node = item.node.copy()
        node.status = NodeStatus.STREAMING
        node.content = item.text
        row = Row(node=node, depth=depth_of(node))
        return render_to_string(f"{PANES}#tokens", {"row": row})

    def _node_parts(self, change: Change) -> list[str]:
        node = change.node
        ctx: dict[str, Any] = {"base": self.base, "live": True}
        parts: list[str] = []
        if change.created and node.parent_id is None:
            # A new root: the session's first message (a tree of one node, cheap to send).
            parts.append(self._tree())
        elif change.created and self._opens_branch(node):
            # A new branch: where it shows depends on each browser's tree and window.
            parts.append(reload_marker("tree"))
        elif change.created:
            row = Row(node=node, depth=depth_of(node))
            # A browser inspecting the parent follows the run to this node.
            parts.append(self._render("insert", {**ctx, "row": row, "follow_from": node.parent_id}))
        elif node.kind is NodeKind.ERROR:
            # A step that failed changes kind, which the row's classes show: reload the tree.
            parts.append(reload_marker("tree"))
            parts.append(refresh_marker(node.id))
        else:
            # Only the glyph and the preview change: the row's branch marks and the branches
            # leaving it (which only the whole tree knows) stay as the page has them.
            row = Row(node=node, depth=depth_of(node))
            parts.append(self._render("row-update", {**ctx, "row": row}))
            parts.append(refresh_marker(node.id))
        return parts

    def _side_parts(self, change: Change, *, with_own_panes: bool) -> list[str]:
        assert change.leaf is not None
        side = self._side(change)
        ctx = {"base": self.base, "live": True, "p": side, "oob": True, "modes": _modes()}
        parts = [
            self._render("runbar", ctx),
            self._render("personas", ctx),
            self._transcript(change, side, ctx),
        ]
        if self.kind.own_panes and with_own_panes:
            parts.append(self.own_panes(change.leaf.id, side, change.transcript))
        return parts

    def run_changed(self, side: Side, lines: tuple[TranscriptLine, ...] = ()) -> str:
        """A run started or ended: the runbar and personas (and a group's panes; `lines`,
        the transcript's tail, counts who spoke)."""
        self._refresh_session()
        side.session = self.session
        ctx = {"base": self.base, "p": side, "oob": True, "modes": _modes()}
        html = self._render("runbar", ctx) + self._render("personas", ctx)
        if self.kind.own_panes and side.leaf is not None:
            html += self.own_panes(side.leaf.id, side, lines)
        return html

    # -- parts ---------------------------------------------------------------------------

    def _side(self, change: Change) -> Side:
        return Side(
            session=self.session,
            root=self.root,
            leaf=change.leaf,
            next=change.next,
            stack=change.stack,
            transcript=shown_lines(change.transcript, self.names, self.kind.director),
            transcript_hidden=max(0, change.transcript_total - TRANSCRIPT_WINDOW),
            running=change.running,
        )

    def _transcript(self, change: Change, side: Side, ctx: dict[str, Any]) -> str:
        ids = tuple(line.node_id for line in change.transcript)
        sent = self._sent_lines
        self._sent_lines = ids
        if sent is not None and ids == sent:
            return ""
        if (
            sent
            and len(ids) > len(sent)
            and ids[: len(sent)] == sent
            and not side.transcript_hidden
        ):
            new = side.transcript[len(sent) :]
            return self._render("transcript-append", {**ctx, "lines": new})
        return self._render("transcript", ctx)

    def own_panes(self, leaf_id: str, side: Side, lines: tuple[TranscriptLine, ...] = ()) -> str:
        """The session kind's own panes (a group chat's heat and policy costs). They read the
        whole active path with its calls: a query, on decision nodes and at the ends of runs
        of such kinds only."""
        from personaweb.web.store import path_rows, to_node

        path = [to_node(r) for r in path_rows(self.session_id, leaf_id, with_call=True)]
        side.group = self.kind.view(self.session, self.root, path, lines)
        ctx = {"p": side, "oob": True, "base": self.base}
        return "".join(
            render_to_string(f"{GROUP_PANES}#{part}", ctx) for part in ("heat", "policies")
        )

    def _tree(self) -> str:
        from personaweb.web import fragments

        ctx = fragments.panes_context(self.session, oob=True)
        return fragments.render("tree", ctx)

    def _opens_branch(self, node: Node) -> bool:
        siblings = NodeRow.objects.filter(session_id=self.session_id, parent_id=node.parent_id)
        return siblings.count() > 1

    def _refresh_session(self) -> None:
        # A person may change the mode or breakpoints while the run goes on.
        fresh = ChatSession.objects.filter(pk=self.session_id).first()
        if fresh is not None:
            self.session = fresh

    @staticmethod
    def _render(part: str, ctx: dict[str, Any]) -> str:
        return render_to_string(f"{PANES}#{part}", ctx)


def _modes() -> list[tuple[str, str]]:
    from personaweb.web.models import Mode

    return list(Mode.choices)


class Broadcaster:
    """The engine's Observer: queues each change and streamed text; one worker task renders
    and publishes them in order, off the run's path (see the module rules)."""

    def __init__(
        self,
        session_id: int,
        frames: Frames | None,
        *,
        render: Callable[[list[Change | Tokens]], Awaitable[str]] | None = None,
        send: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        """`render`, `send`, `clock` and `call_later` default to the real ones (Frames in a
        thread, the channel layer, the event loop's clock and timers); tests pass their own."""
        self.session_id = session_id
        self.frames = frames
        self.batch_s = settings.TOKEN_BATCH_MS / 1000
        self._queue: asyncio.Queue[Change | Tokens | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._pending: dict[str, Tokens] = {}
        self._last_sent: dict[str, float] = {}
        self._flusher: Any = None
        if render is None:
            assert frames is not None
            render = sync_to_async(frames.render_burst, thread_sensitive=False)
        self._render = render
        self._send = send
        self._clock = clock
        self._call_later = call_later

    # -- Observer --------------------------------------------------------------------------

    async def node_changed(self, node: Node, state: PathState | None, created: bool) -> None:
        # Text still waiting for its batch is older than this change: drop it, or a late
        # token frame would paint a finished node as streaming again.
        self._pending.pop(node.id, None)
        self._put(snapshot(node, state, created))

    async def tokens(self, node: Node, text: str) -> None:
        light = node.copy()
        light.call = None
        self._pending[node.id] = Tokens(light, text)
        if self._now() - self._last_sent.get(node.id, float("-inf")) >= self.batch_s:
            self._flush()
        elif self._flusher is None:
            later = self._call_later or asyncio.get_running_loop().call_later
            self._flusher = later(self.batch_s, self._flush)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, then stop the worker."""
        if self._flusher is not None and hasattr(self._flusher, "cancel"):
            self._flusher.cancel()
        self._flusher = None
        self._pending.clear()
        if self._worker is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), timeout_s)
        except TimeoutError:
            self._worker.cancel()
        self._worker = None

    # -- internals ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _flush(self) -> None:
        self._flusher = None
        pending, self._pending = self._pending, {}
        for item in pending.values():
            self._last_sent[item.node.id] = self._now()
            self._put(item)

    def _put(self, item: Change | Tokens) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        self._queue.put_nowait(item)

    async def _work(self) -> None:
        done = False
        while not done:
            burst = [await self._queue.get()]
            # What queued up while the last frame rendered goes out as one frame.
            while not self._queue.empty():
                burst.append(self._queue.get_nowait())
            done = None in burst  # close() queues None last
            items = [item for item in burst if item is not None]
            if not items:
                continue
            try:
                html = await self._render(items)
                if html and self._send is not None:
                    await self._send(html)
                elif html:
                    await publish_html(self.session_id, html, [summary_of(i) for i in items])
            except Exception:
                log.exception("a live frame of session %s failed", self.session_id)
