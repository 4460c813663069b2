"""Live updates as sessions grow and browsers multiply: server cost per change and change to
screen, with real WebSocket clients on a real daphne.

For a session of 1,000 and of 10,000 nodes, watched by 1 and by 10 browsers, it runs 3 nested
user turns (scripted OpenAI-compatible server, no latency) and measures:
- server CPU per node change: the daphne process's CPU time over the turns, divided by the
  changes (the run's own work included, which is the same in every cell);
- change to screen: from the engine reporting a change to each browser having its frame
  (every browser, every change; p95), via bench/stamped_asgi.py;
- the largest frame, and frames that told browsers to reload a pane instead.

Targets (printed as lines): CPU per change 10/1 browsers <= 1.2 and 10k/1k nodes <= 1.2;
change to screen p95 with 10 browsers on 10k nodes <= 100 ms; no frame over FRAME_LIMIT.

    .venv/bin/python bench/bench_frames.py [--turns 3] [--browsers 10]

Not a test: tests assert frame contents, never time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import livekit
from livekit import Browser, Daphne, p95

SIZES = (1_000, 10_000)


async def cell(
    server: Daphne, owner: livekit.Owner, session_pk: int, browsers: int, turns: int
) -> dict[str, float]:
    pages = [Browser() for _ in range(browsers)]
    tasks = await livekit.watching(pages, lambda b: b.watch(server.url, owner.cookie, session_pk))
    cpu = server.cpu_s()
    for turn in range(turns):
        status = await livekit.run_turn(server.url, owner.token, session_pk, f"Line {turn}.")
        if status != "done":
            print(f"  (turn {turn + 1} ended {status})")
    await asyncio.sleep(0.5)  # the last frames
    cpu = server.cpu_s() - cpu
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    changes = max(len(p.latencies) for p in pages)
    lost = [p.closed for p in pages if p.closed]
    return {
        "changes": changes,
        "cpu_ms": 1000 * cpu / max(changes, 1),
        "p95_ms": 1000 * p95([x for p in pages for x in p.latencies]),
        "largest_kb": max(p.largest for p in pages) / 1024,
        "reloads": sum(p.reloads for p in pages) / browsers,
        "lost": len(lost),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--browsers", type=int, default=10)
    args = parser.parse_args()

    database = livekit.sqlite_url()
    livekit.setup_django(database)
    from personaweb.web.live import FRAME_LIMIT

    owner = livekit.make_owner()
    sessions = {size: livekit.sized_session(owner, size) for size in SIZES}
    results: dict[tuple[int, int], dict[str, float]] = {}
    log = Path(tempfile.mkdtemp(prefix="personaweb-bench-")) / "daphne.log"
    with livekit.scripted_llm() as llm:
        server = Daphne(livekit.server_env(database, llm.base_url, redis=False), log).start()
        try:
            # Warm up (templates, first-use recovery) on a session of its own.
            warm = livekit.empty_session(owner, "warm-up")
            asyncio.run(cell(server, owner, warm.pk, 1, 1))
            for size in SIZES:
                for browsers in (1, args.browsers):
                    results[size, browsers] = asyncio.run(
                        cell(server, owner, sessions[size].pk, browsers, args.turns)
                    )
        finally:
            server.stop()
        if llm.script_errors:
            print("scripted server errors:", llm.script_errors)
            return 1

    print()
    print(
        "| nodes | browsers | changes | server CPU per change | change to screen p95 "
        "| largest frame | reload frames | sockets lost |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (size, browsers), r in results.items():
        print(
            f"| {size:,} | {browsers} | {r['changes']:.0f} | {r['cpu_ms']:.1f} ms "
            f"| {r['p95_ms']:.0f} ms | {r['largest_kb']:.1f} KB | {r['reloads']:.1f} "
            f"| {r['lost']:.0f} |"
        )
    big, many = SIZES[-1], args.browsers
    print()
    print(
        f"frame time {many}/1 browsers: "
        f"{results[big, many]['cpu_ms'] / results[big, 1]['cpu_ms']:.2f} (target <= 1.2)"
    )
    print(
        f"frame time {big // 1000}k/{SIZES[0] // 1000}k nodes: "
        f"{results[big, many]['cpu_ms'] / results[SIZES[0], many]['cpu_ms']:.2f} (target <= 1.2)"
    )
    print(
        f"change to screen p95, {big // 1000}k nodes x {many} browsers: "
        f"{results[big, many]['p95_ms']:.0f} ms (target <= 100)"
    )
    largest = max(r["largest_kb"] for r in results.values())
    print(
        f"largest frame: {largest:.1f} KB (limit {FRAME_LIMIT // 1024} KB); sockets lost: "
        f"{sum(r['lost'] for r in results.values()):.0f} (target 0)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
