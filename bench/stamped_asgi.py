"""personaweb.asgi with a clock on every live frame, for the live-update benchmarks only.

The benchmark's browsers measure "change to screen": from the moment the engine reports a
node change (the Broadcaster's `snapshot`) to the moment a WebSocket client has the frame.
This module wraps two functions of personaweb.web.live so that each change frame starts with
`<!--pw-t0=SECONDS-->` (wall-clock time, shared by every process on the machine). The
product's frames carry no such thing; daphne serves this module only when a benchmark asks:

    daphne stamped_asgi:application     (with bench/ on PYTHONPATH)
"""

from __future__ import annotations

import time
from typing import Any

from personaweb.asgi import application  # noqa: F401  (sets Django up first)
from personaweb.web import live

_stamps: dict[int, float] = {}
_snapshot = live.snapshot
_render = live.Frames.render


def _stamped_snapshot(*args: Any, **kwargs: Any) -> live.Change:
    change = _snapshot(*args, **kwargs)
    _stamps[id(change)] = time.time()
    return change


def _stamped_render(self: live.Frames, item: live.Change | live.Tokens) -> str:
    html = _render(self, item)
    t0 = _stamps.pop(id(item), None)
    if t0 is None or not html:
        return html
    return f"<!--pw-t0={t0:.6f}-->{html}"


live.snapshot = _stamped_snapshot  # type: ignore[assignment]
live.Frames.render = _stamped_render  # type: ignore[method-assign]
