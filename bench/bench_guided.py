"""Does the nested strategy nest on the embedded model? Guided versus free orchestration.

Runs N nested turns (default 20) with Sara Wilcox on the real embedded model, once guided (the
orchestrator is offered only its plan's moves) and once free, and counts the turns whose top
level went responder -> style rewriter -> reply. Prints one target line:

    guided nesting on the embedded model: 20/20 turns went responder -> rewriter -> reply
    (target >= 19)   [one line]

    .venv/bin/python bench/bench_guided.py [--turns 20] [--free-turns 5]

Not a test: it takes a few minutes on two cores and needs the `local` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from personaweb.characters.sheet import load_bundled  # noqa: E402
from personaweb.llm import EndpointConfig, OpenAIChatModel  # noqa: E402
from personaweb.llm.config import EMBEDDED_CONTEXT_TOKENS, EMBEDDED_MODEL  # noqa: E402
from personaweb.llm.embedded import EmbeddedServer, embedded_available  # noqa: E402
from personaweb.llm.scripted_server import free_port  # noqa: E402
from personaweb.personas import (  # noqa: E402
    Action,
    Engine,
    MemoryStore,
    NodeKind,
    RunConfig,
    build_hierarchy,
)

LINES = [
    "I am Joe. Who are you?",
    "What do you want most?",
    "Tell me about your husband.",
    "Is the king coming tonight?",
    "You seem restless. Why?",
]
EXPECTED = [
    ("orchestrator", Action.DELEGATE, "responder"),
    ("orchestrator", Action.DELEGATE, "style_rewriter"),
    ("orchestrator", Action.REPLY, None),
]


async def play(base_url: str, port: int, turns: int, guided: bool) -> tuple[int, int, float]:
    """(turns that nested as planned, failed turns, seconds)"""
    config = EndpointConfig(
        base_url,
        "sk-local",
        EMBEDDED_MODEL,
        embedded=True,
        embedded_port=port,
        context_tokens=EMBEDDED_CONTEXT_TOKENS,
    )
    model = OpenAIChatModel(config)
    sara = next(s for s in load_bundled() if s.name == "Sara Wilcox")
    root = build_hierarchy("dialogue", character=sara.to_dict(), strategy="nested")
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=guided))
    nested = failed = 0
    leaf = None
    started = time.perf_counter()
    for turn in range(turns):
        leaf = await engine.run_autonomous(LINES[turn % len(LINES)], leaf.id if leaf else None)
        path = await engine.store.path(leaf.id)
        start = max(i for i, n in enumerate(path) if n.sender == "user")
        top = [
            (n.persona, n.action, n.target)
            for n in path[start:]
            if n.persona == "orchestrator" and n.kind is NodeKind.PROPOSAL
        ]
        ok = top == EXPECTED
        nested += ok
        failed += leaf.kind is NodeKind.ERROR
        mark = "ok  " if ok else "FLAT" if leaf.kind is not NodeKind.ERROR else "FAIL"
        label = "guided" if guided else "free  "
        print(f"  {label} turn {turn + 1:2}: {mark} {leaf.content[:70]!r}")
    await model.aclose()
    return nested, failed, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--free-turns", type=int, default=5, help="unguided turns, for contrast")
    args = parser.parse_args()
    reason = embedded_available()
    if reason is not None:
        print(f"skipped: the embedded model is not available ({reason})")
        return 0
    with EmbeddedServer(port=free_port()) as server:
        guided, guided_failed, guided_s = asyncio.run(
            play(server.base_url, server.port, args.turns, guided=True)
        )
        free, free_failed, free_s = (
            asyncio.run(play(server.base_url, server.port, args.free_turns, guided=False))
            if args.free_turns
            else (0, 0, 0.0)
        )
    print()
    print("| orchestration | turns | nested as planned | failed | seconds per turn |")
    print("|---|---|---|---|---|")
    print(
        f"| guided | {args.turns} | {guided} | {guided_failed} | "
        f"{guided_s / max(args.turns, 1):.1f} |"
    )
    if args.free_turns:
        print(
            f"| free | {args.free_turns} | {free} | {free_failed} | "
            f"{free_s / args.free_turns:.1f} |"
        )
    target = args.turns - args.turns // 20  # 19 of 20
    print(
        f"guided nesting on the embedded model: {guided}/{args.turns} turns went responder -> "
        f"rewriter -> reply (target >= {target})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
