"""`GET /api/sessions/{pk}/events`: a session's live changes as Server-Sent Events.

For clients that don't speak WebSocket. The stream joins the session's channel-layer group,
as the debugger's WebSocket consumer does, and forwards the plain-data summary that rides
beside every HTML frame (web/live.py), never the HTML. The rules:

- It opens with `hello`: the session and the run going now, if any (subscribed first, read
  second, so no run can end unseen in between).
- Then one event per change, named by its kind: `node_created`, `node_updated` (node id,
  parent, persona, kind, status, action, content, and what happens next), `tokens` (the text
  streamed so far), `run_started`, `run_finished` (the run's final status: done, stopped —
  waiting for a person —, failed, interrupted). Each `data:` line is one JSON object.
- A comment line (`: keep-alive`) every KEEPALIVE_S seconds keeps proxies from closing it.
- It ends with `end` (and closes) when the run named by `?run=` has finished (at once if it
  already had); with `?next_run=true`, when the run going now, or else the next one to
  start, has finished (open the stream, then act: nothing is missed); or after `?timeout=`
  seconds; or when the client goes away. A run's end is
  also read from its Run row at each keep-alive, so a lost message cannot keep it open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from channels.layers import get_channel_layer
from django.http import StreamingHttpResponse
from ninja import Schema
from pydantic import Field

from personaweb.web.actions import Refused
from personaweb.web.live import group_name
from personaweb.web.models import ChatSession, Run, RunStatus

KEEPALIVE_S = 15.0
MAX_TIMEOUT_S = 3600
DESCRIPTION = (
    "text/event-stream: `hello`, then `node_created`, `node_updated`, `tokens`, "
    "`run_started`, `run_finished`; `end` last. Each data line is a JSON object."
)


class EventsQuery(Schema):
    run: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="End the stream when this run has finished"
    )
    next_run: bool = Field(
        default=False, description="End the stream when the run going now, or the next, ends"
    )
    timeout: int = Field(
        default=300, ge=0, le=MAX_TIMEOUT_S, description="End the stream after this many seconds"
    )


def sse(event: str, data: dict[str, Any], ident: int | None = None) -> str:
    """One event in the text/event-stream format (JSON has no raw newlines)."""
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _run_data(run: Run) -> dict[str, Any]:
    finished = run.status != RunStatus.RUNNING
    return {
        "event": "run_finished" if finished else "run_started",
        "run": run.pk,
        "status": str(run.status),
        "leaf": run.leaf_node,
        "error": run.error,
    }


async def _finished(session_id: int, run_id: int) -> Run | None:
    """The run, if it has finished (or does not exist: then it never will run here)."""
    run = await Run.objects.filter(session_id=session_id, pk=run_id).afirst()
    if run is None or run.status != RunStatus.RUNNING:
        return run or Run(pk=run_id, session_id=session_id, status=RunStatus.FAILED)
    return None


async def _running(session_id: int) -> int | None:
    return (
        await Run.objects.filter(session_id=session_id, status=RunStatus.RUNNING)
        .values_list("pk", flat=True)
        .afirst()
    )


async def stream(
    session_id: int, run_id: int | None, timeout: float, *, next_run: bool = False
) -> AsyncIterator[str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = group_name(session_id)
    await layer.group_add(group, channel)
    count = 0
    try:
        if run_id is not None:
            run = await Run.objects.filter(session_id=session_id, pk=run_id).afirst()
        else:
            run = await Run.objects.filter(session_id=session_id, status="running").afirst()
        hello = {"session": session_id, "run": _run_data(run) if run is not None else None}
        yield sse("hello", hello)
        if next_run and run is not None:
            run_id = run.pk
        if run_id is not None and (done := await _finished(session_id, run_id)) is not None:
            yield sse("run_finished", _run_data(done))
            yield sse("end", {"reason": "run_finished"})
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(channel), min(KEEPALIVE_S, left))
            except TimeoutError:
                if run_id is not None and (done := await _finished(session_id, run_id)):
                    yield sse("run_finished", _run_data(done))
                    yield sse("end", {"reason": "run_finished"})
                    return
                if deadline > loop.time():
                    yield ": keep-alive\n\n"
                continue
            raw = message.get("summary")
            if not isinstance(raw, str):
                continue  # a frame without one (a reload marker, a flash): HTML only
            for summary in json.loads(raw):  # one per change the frame carries
                count += 1
                yield sse(str(summary.get("event", "change")), summary, count)
                if next_run and run_id is None:
                    # A run that starts without a first node (a branch, a retry) announces
                    # no start: its first change does, and its Run row says which it is.
                    event = summary.get("event")
                    started = summary.get("run") if event == "run_started" else None
                    run_id = started or await _running(session_id)
                if summary.get("event") == "run_finished" and summary.get("run") == run_id:
                    yield sse("end", {"reason": "run_finished"})
                    return
        yield sse("end", {"reason": "timeout"})
    finally:
        await layer.group_discard(group, channel)


async def response(session: ChatSession, q: EventsQuery) -> StreamingHttpResponse:
    if q.run is not None and not await Run.objects.filter(session=session, pk=q.run).aexists():
        raise Refused("no such run", 404)
    body = stream(session.pk, q.run, float(q.timeout), next_run=q.next_run)
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response
