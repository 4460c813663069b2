"""How the debugger page scales: server render time and query count for 1,000 and 10,000 nodes.

Not a test (tests never assert on wall-clock time): it prints the numbers and their ratios.
Targets: the same query count for both sizes; the 10,000-node page under 300 ms.

    .venv/bin/python bench/bench_debugger.py [--repeat 5]

It uses a throwaway SQLite database in a temporary directory (or DATABASE_URL if set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        db = Path(tempfile.mkdtemp(prefix="personaweb-bench-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "personaweb.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_session(owner, size: int):
    """A dialogue session shaped like real use: turns of user message -> orchestrator ->
    responder -> orchestrator -> rewriter -> orchestrator reply, with a few branches."""
    from personaweb.llm.types import CallRecord
    from personaweb.personas import Action, Node, NodeKind, NodeStatus
    from personaweb.web.models import Character, ChatSession
    from personaweb.web.store import OrmStore

    character = Character.objects.create(
        owner=owner, name=f"Bench {size}", slug=f"bench_{size}", data={"name": f"Bench {size}"}
    )
    session = ChatSession.objects.create(
        owner=owner, title=f"{size} nodes", character=character, hierarchy="dialogue"
    )
    nodes: list[Node] = []
    parent: str | None = None
    prompt = [{"role": "system", "content": "You are Bench. " * 40}]

    def add(**kw) -> Node:
        nonlocal parent
        node = Node(id=f"{session.pk:06x}{len(nodes):026x}", parent_id=parent, **kw)
        nodes.append(node)
        parent = node.id
        return node

    turn = 0
    while len(nodes) < size:
        turn += 1
        add(
            persona="orchestrator",
            kind=NodeKind.INBOUND,
            sender="user",
            content=f"User line {turn}: tell me about the harbour.",
        )
        for child in ("responder", "style_rewriter"):
            add(
                persona="orchestrator",
                kind=NodeKind.PROPOSAL,
                status=NodeStatus.APPROVED,
                action=Action.DELEGATE,
                target=child,
                content=f"line for {child} {turn}",
                call=CallRecord(messages=prompt, model="m", temperature=0.2, max_tokens=400),
            )
            add(
                persona=f"orchestrator/{child}",
                kind=NodeKind.INBOUND,
                sender="orchestrator",
                content=f"line for {child} {turn}",
            )
            add(
                persona=f"orchestrator/{child}",
                kind=NodeKind.PROPOSAL,
                status=NodeStatus.APPROVED,
                action=Action.REPLY,
                content=f"{child} says something in turn {turn}, at some length. " * 3,
                call=CallRecord(messages=prompt, model="m", temperature=0.7, max_tokens=256),
            )
        add(
            persona="orchestrator",
            kind=NodeKind.PROPOSAL,
            status=NodeStatus.APPROVED,
            action=Action.REPLY,
            content=f"Reply {turn}.",
        )
    nodes = nodes[:size]
    # A branch every 50 nodes: a rejected alternative beside the path.
    for i in range(25, len(nodes), 50):
        nodes.append(
            Node(
                id=f"{session.pk:06x}f{i:025x}",
                parent_id=nodes[i].parent_id,
                persona=nodes[i].persona,
                kind=NodeKind.PROPOSAL,
                status=NodeStatus.REJECTED,
                action=Action.REPLY,
                content="no",
            )
        )
    OrmStore(session.pk).add_many(nodes)
    session.active_node = nodes[size - 1].id
    session.save()
    return session, nodes[size // 2].id


def measure(client, session, node_id: str, repeat: int) -> tuple[float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = session.get_absolute_url()
    client.get(url, {"node": node_id})  # warm up: template loading, first-use recovery
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, {"node": node_id})
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return statistics.median(times), len(queries), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs=2, default=[1_000, 10_000])
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    owner, _ = User.objects.get_or_create(username="bench")
    client = Client()
    client.force_login(owner)
    results = []
    for size in args.sizes:
        built = time.perf_counter()
        session, node_id = build_session(owner, size)
        built = time.perf_counter() - built
        seconds, queries, nbytes = measure(client, session, node_id, args.repeat)
        results.append((size, seconds, queries, nbytes))
        print(
            f"{size:>6} nodes: {seconds * 1000:7.1f} ms, {queries} queries, "
            f"{nbytes / 1024:6.1f} KiB page (built in {built:.1f} s)"
        )
    (small, t1, q1, _), (large, t2, q2, _) = results
    print(f"ratio {large // small}x nodes: time x{t2 / t1:.2f}, queries x{q2 / q1:.2f}")
    print(
        f"targets: same query count -> {'yes' if q1 == q2 else 'NO'}; "
        f"{large}-node page under 300 ms -> {'yes' if t2 < 0.3 else 'NO'} ({t2 * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
