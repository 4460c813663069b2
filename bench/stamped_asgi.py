"""personaweb.asgi with a clock on every live frame, for the live-update benchmarks only.

The benchmark's browsers measure "change to screen": from the moment the engine reports a
node change (the Broadcaster's `snapshot`) to the moment a WebSocket client has the frame.
This module wraps functions of personaweb.web.live so that each frame of changes starts
with `<!--pw-t0=SECONDS,...-->`, one wall-clock time (shared by every process on the
machine) per change it carries, and adds up the server's work on frames (CPU time of the
thread doing it: rendering; publishing to the channel layer; every consumer's forwarding to
its socket) into the JSON file named by PERSONAWEB_BENCH_STATS. The product's frames carry
no such thing; daphne serves this module only when a benchmark asks:

    daphne stamped_asgi:application     (with bench/ on PYTHONPATH)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from personaweb.asgi import application  # noqa: F401  (sets Django up first)
from personaweb.web import consumers, live

_stamps: dict[int, float] = {}
_snapshot = live.snapshot
_render = live.Frames.render_burst
_publish = live.publish
_forward = consumers.SessionConsumer.frame
_stats = {"render_s": 0.0, "publish_s": 0.0, "forward_s": 0.0, "changes": 0}
_stats_file = os.environ.get("PERSONAWEB_BENCH_STATS", "")


def _save() -> None:
    if _stats_file:
        Path(_stats_file).write_text(json.dumps(_stats))


def _stamped_snapshot(*args: Any, **kwargs: Any) -> live.Change:
    change = _snapshot(*args, **kwargs)
    _stamps[id(change)] = time.time()
    return change


def _stamped_render(self: live.Frames, items: list[live.Change | live.Tokens]) -> str:
    started = time.thread_time()
    html = _render(self, items)
    _stats["render_s"] += time.thread_time() - started
    stamps = [t0 for item in items if (t0 := _stamps.pop(id(item), None)) is not None]
    if not stamps or not html:
        return html
    _stats["changes"] += len(stamps)
    return f"<!--pw-t0={','.join(f'{t:.6f}' for t in stamps)}-->{html}"


async def _timed_publish(session_id: int, event: dict[str, Any]) -> None:
    started = time.thread_time()
    await _publish(session_id, event)
    _stats["publish_s"] += time.thread_time() - started
    _save()


async def _timed_forward(self: consumers.SessionConsumer, event: dict[str, Any]) -> None:
    started = time.thread_time()
    await _forward(self, event)
    _stats["forward_s"] += time.thread_time() - started
    _save()


live.snapshot = _stamped_snapshot  # type: ignore[assignment]
live.Frames.render_burst = _stamped_render  # type: ignore[method-assign]
live.publish = _timed_publish  # type: ignore[assignment]
consumers.SessionConsumer.frame = _timed_forward  # type: ignore[method-assign]
