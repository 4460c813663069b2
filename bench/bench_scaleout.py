"""Scale-out under load: 40 concurrent autonomous sessions on one daphne process, then on two
processes sharing PostgreSQL and Redis.

Each session has a browser (a WebSocket client) and plays `--turns` nested user turns
(orchestrator -> responder -> orchestrator -> rewriter -> orchestrator reply: five LLM calls),
against the scripted OpenAI-compatible server answering each call after 100 ms. With two
processes, each session's messages go to one process and its browser watches from the other,
so every frame crosses Redis. Printed: runs per minute and p95 change to screen for

- one process, default settings (SQLite, in-memory channel layer);
- one process on PostgreSQL and Redis;
- two processes on PostgreSQL and Redis;

and the two-process / one-process ratio (same services). Needs PostgreSQL at 127.0.0.1:5432
and Redis at 127.0.0.1:6379 (skipped, saying so, without them).

    .venv/bin/python bench/bench_scaleout.py [--sessions 40] [--turns 3] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import livekit
from livekit import Browser, Daphne, p95


def prepare(database: str, sessions: int) -> tuple[livekit.Owner, list[int]]:
    """Migrate `database` and make an owner with `sessions` empty sessions, in a child
    process (Django is set up once per process, and each configuration has its own database)."""
    code = (
        "import sys, json; sys.path[:0] = sys.argv[1:3]; import livekit; "
        "livekit.setup_django(sys.argv[3]); o = livekit.make_owner(); "
        "pks = [livekit.empty_session(o, f'load {i}').pk for i in range(int(sys.argv[4]))]; "
        "print(json.dumps([o.token, o.cookie, pks]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(livekit.BENCH),
            str(livekit.REPO),
            database,
            str(sessions),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    import json

    token, cookie, pks = json.loads(done.stdout.strip().splitlines()[-1])
    return livekit.Owner(None, token, cookie), pks


async def load(
    servers: list[Daphne], owner: livekit.Owner, pks: list[int], turns: int
) -> dict[str, float]:
    pages = [Browser() for _ in pks]

    def connect(i: int):
        watcher = servers[(i + 1) % len(servers)]
        return pages[i].watch(watcher.url, owner.cookie, pks[i])

    tasks = [asyncio.create_task(connect(i)) for i in range(len(pks))]
    await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in pages)), 120)

    async def play(i: int) -> list[str]:
        sender = servers[i % len(servers)]
        return [
            await livekit.run_turn(
                sender.url, owner.token, pks[i], f"Line {t} of session {i}.", poll_s=0.5
            )
            for t in range(turns)
        ]

    started = time.perf_counter()
    ended = await asyncio.gather(*(play(i) for i in range(len(pks))))
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    statuses = [s for run in ended for s in run]
    return {
        "runs": len(statuses),
        "done": statuses.count("done"),
        "per_minute": 60 * statuses.count("done") / seconds,
        "p95_ms": 1000 * p95([x for p in pages for x in p.latencies]),
        "lost": sum(bool(p.closed) for p in pages),
    }


def configuration(
    name: str, database: str, processes: int, redis: bool, args: argparse.Namespace
) -> dict[str, float]:
    owner, pks = prepare(database, args.sessions)
    log = Path(tempfile.mkdtemp(prefix="personaweb-bench-")) / "daphne.log"
    with livekit.ScriptedLLMProcess(args.latency) as llm:
        env = livekit.server_env(database, llm.base_url, redis=redis)
        servers = [Daphne(env, log).start() for _ in range(processes)]
        try:
            result = asyncio.run(load(servers, owner, pks, args.turns))
        finally:
            for server in servers:
                server.stop()
        if llm.script_errors:
            raise SystemExit(f"scripted server errors: {llm.script_errors}")
    print(
        f"  {name}: {result['done']:.0f}/{result['runs']:.0f} runs done, "
        f"{result['per_minute']:.0f} runs/min, change to screen p95 {result['p95_ms']:.0f} ms"
        f" (log: {log})"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per LLM call")
    args = parser.parse_args()
    missing = livekit.services_missing()
    if missing:
        print(f"skipped: PostgreSQL and Redis are needed ({missing})")
        return 0

    results = {}
    results["one, SQLite"] = configuration(
        "1 process, SQLite", livekit.sqlite_url(), 1, False, args
    )
    with livekit.postgres_database() as database:
        results["one"] = configuration("1 process, PostgreSQL + Redis", database, 1, True, args)
    with livekit.postgres_database() as database:
        results["two"] = configuration("2 processes, PostgreSQL + Redis", database, 2, True, args)

    print()
    print(
        "| processes | database, channel layer | runs done | runs per minute "
        "| change to screen p95 | sockets lost |"
    )
    print("|---|---|---|---|---|---|")
    for key, label in (
        ("one, SQLite", "1 | SQLite, in memory"),
        ("one", "1 | PostgreSQL, Redis"),
        ("two", "2 | PostgreSQL, Redis"),
    ):
        r = results[key]
        print(
            f"| {label} | {r['done']:.0f}/{r['runs']:.0f} | {r['per_minute']:.0f} "
            f"| {r['p95_ms']:.0f} ms | {r['lost']:.0f} |"
        )
    print()
    print(
        f"scale-out runs per minute, 2/1 processes ({args.sessions} sessions): "
        f"{results['two']['per_minute'] / results['one']['per_minute']:.2f}"
    )
    print(
        f"scale-out change to screen p95, 2 processes: {results['two']['p95_ms']:.0f} ms "
        f"(1 process: {results['one']['p95_ms']:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
