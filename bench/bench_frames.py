"""Live updates as sessions grow and browsers multiply: server cost per change and change to
screen, with real WebSocket clients on a real daphne.

For a session of 1,000 and of 10,000 nodes, watched by 1 and by 10 browsers, it runs 3 nested
user turns (scripted OpenAI-compatible server, no latency) and measures:
- frame time per node change: rendering (CPU time of the rendering thread: once per change,
  whatever the browsers) plus delivery (CPU time of the event loop while the frame is
  published to the channel layer, during which every consumer forwards it to its socket);
- server CPU per node change: the daphne process's CPU time over the turns, divided by the
  changes (everything: the run itself, whose prompts grow with the session, included);
- change to screen: from the engine reporting a change to each browser having its frame
  (every browser, every change; p95), via bench/stamped_asgi.py;
- the largest frame, and frames that told browsers to reload a pane instead.

Targets (printed as lines): frame time per change 10/1 browsers <= 1.2 and 10k/1k nodes <= 1.2;
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
    cpu, work = server.cpu_s(), server.frame_work()
    for turn in range(turns):
        status = await livekit.run_turn(server.url, owner.token, session_pk, f"Line {turn}.")
        if status != "done":
            print(f"  (turn {turn + 1} ended {status})")
    await asyncio.sleep(0.5)  # the last frames
    cpu = server.cpu_s() - cpu
    after = server.frame_work()
    # Consumers forward while the publish awaits them, so the publish's CPU holds delivery to
    # every socket (forward_s, timed inside it, is not added again).
    frame_s = sum(after[k] - work[k] for k in ("render_s", "publish_s"))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    changes = max(len(p.latencies) for p in pages)
    lost = [p.closed for p in pages if p.closed]
    for reason in lost:
        print(f"  a socket was lost: {reason}")
    return {
        "changes": changes,
        "frame_ms": 1000 * frame_s / max(changes, 1),
        **{
            f"{k[:-2]}_ms": 1000 * (after[k] - work[k]) / max(changes, 1)
            for k in ("render_s", "publish_s", "forward_s")
        },
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
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the LLM takes per call")
    args = parser.parse_args()

    database = livekit.sqlite_url()
    livekit.setup_django(database)
    from personaweb.web.live import FRAME_LIMIT

    owner = livekit.make_owner()
    sessions = {size: livekit.sized_session(owner, size) for size in SIZES}
    results: dict[tuple[int, int], dict[str, float]] = {}
    folder = Path(tempfile.mkdtemp(prefix="personaweb-bench-"))
    log = folder / "daphne.log"
    with livekit.ScriptedLLMProcess(args.latency) as llm:
        env = livekit.server_env(database, llm.base_url, redis=False)
        env["PERSONAWEB_BENCH_STATS"] = str(folder / "frames.json")
        server = Daphne(env, log).start()
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
        "| nodes | browsers | changes | frame time per change | of it: rendering (once) "
        "| of it: delivery to every socket | server CPU per change, run included "
        "| change to screen p95 | largest frame | reload frames | sockets lost |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (size, browsers), r in results.items():
        print(
            f"| {size:,} | {browsers} | {r['changes']:.0f} | {r['frame_ms']:.2f} ms "
            f"| {r['render_ms']:.2f} ms | {r['publish_ms']:.2f} ms "
            f"| {r['cpu_ms']:.1f} ms | {r['p95_ms']:.0f} ms | {r['largest_kb']:.1f} KB "
            f"| {r['reloads']:.1f} | {r['lost']:.0f} |"
        )
    big, many = SIZES[-1], args.browsers
    print()
    for what, key in (("frame time", "frame_ms"), ("frame rendering", "render_ms")):
        print(
            f"{what} {many}/1 browsers: "
            f"{results[big, many][key] / results[big, 1][key]:.2f} (target <= 1.2)"
        )
        print(
            f"{what} {big // 1000}k/{SIZES[0] // 1000}k nodes: "
            f"{results[big, many][key] / results[SIZES[0], many][key]:.2f} (target <= 1.2)"
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
