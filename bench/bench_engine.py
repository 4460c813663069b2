"""Engine overhead per step as a session grows, against LangGraph + SqliteSaver, in one run.

Both play the same nested dialogue (an orchestrator that consults a responder, then a style
rewriter, then replies: five LLM calls a turn) against the same scripted OpenAI-compatible
server on loopback, with the same prompts, so the LLM work is the same. Each side's LLM calls
are timed where they are made; "overhead" is a turn's wall time minus its LLM time, per step
(one step = one LLM call and what the framework does around it: PersonaWeb writes its nodes
to SQLite through the Django ORM, LangGraph writes a checkpoint per super-step).

Measured at 10 / 50 / 100 / 200 turns of history, and for two time-travel moves at the end:
branching from an old step (turn 100: the responder answers that turn again) and editing an
old delegation (the orchestrator's message to the responder at turn 100, then the next step),
each done `--repeat` times (the median is printed).

    .venv/bin/python bench/bench_engine.py [--turns 10 50 100 200] [--repeat 5]

Not a test: it prints its tables, then one line per target (see issue 11).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LINES = [
    "Evening. Who might you be?",
    "What are you after in life?",
    "Tell me about this house.",
    "You sound like a pompous windbag.",
    "Lovely rain today, isn't it?",
]


def setup_django(folder: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'personaweb.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "personaweb.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@dataclass
class Clock:
    """Seconds spent inside LLM calls."""

    llm_s: float = 0.0
    calls: int = 0


# --- PersonaWeb ------------------------------------------------------------------------------


class TimedModel:
    """The real OpenAIChatModel, with its calls timed (the ChatModel port, delegated)."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock

    async def complete(self, request: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.complete(request)
        finally:
            self.clock.llm_s += time.perf_counter() - started
            self.clock.calls += 1

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        try:
            async for chunk in self.inner.stream(request):
                yield chunk
        finally:
            self.clock.llm_s += time.perf_counter() - started
            self.clock.calls += 1

    async def context_window(self, profile: Any) -> int | None:
        return await self.inner.context_window(profile)

    async def count_tokens(self, texts: list[str], profile: Any) -> list[int] | None:
        return await self.inner.count_tokens(texts, profile)


@dataclass
class Side:
    """One framework's measurements."""

    name: str
    step_ms: dict[int, float] = field(default_factory=dict)
    branch_ms: float = 0.0
    edit_ms: float = 0.0


async def personaweb_side(base_url: str, marks: list[int], repeat: int) -> Side:
    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User

    from personaweb.characters.sheet import load_bundled
    from personaweb.llm import EndpointConfig, OpenAIChatModel
    from personaweb.personas import Engine, RunConfig, build_hierarchy
    from personaweb.web.models import Character, ChatSession
    from personaweb.web.store import OrmStore

    def make_session() -> ChatSession:
        owner, _ = User.objects.get_or_create(username="bench")
        sheet = next(s for s in load_bundled() if s.name == "Sara Wilcox")
        character = Character.objects.create(
            owner=owner, name=sheet.name, slug=f"sara-{time.time_ns()}", data=sheet.to_dict()
        )
        return ChatSession.objects.create(owner=owner, title="bench", character=character)

    session = await sync_to_async(make_session)()
    clock = Clock()
    config = EndpointConfig(base_url, "sk-bench", "scripted-model", embedded=False)
    model = TimedModel(OpenAIChatModel(config), clock)
    root = build_hierarchy(
        "dialogue",
        character=session.character.data,
        strategy="nested",  # type: ignore[union-attr]
    )
    engine = Engine(root, OrmStore(session.pk), model, RunConfig())
    side = Side("PersonaWeb (OrmStore, SQLite)")
    leaf = None
    turn = 0
    responder_at: dict[int, str] = {}
    delegation_at: dict[int, str] = {}

    async def play() -> tuple[float, float, int]:
        nonlocal leaf, turn
        before_llm, before_calls = clock.llm_s, clock.calls
        started = time.perf_counter()
        leaf = await engine.run_autonomous(LINES[turn % len(LINES)], leaf.id if leaf else None)
        wall = time.perf_counter() - started
        turn += 1
        return wall, clock.llm_s - before_llm, clock.calls - before_calls

    for mark in sorted(marks):
        while turn < mark:
            await play()
            if turn == 100 or (turn == max(marks) // 2 and max(marks) < 100):
                await remember(engine, leaf.id, turn, responder_at, delegation_at)
        overheads = []
        for _ in range(repeat):
            wall, llm, calls = await play()
            overheads.append((wall - llm) / calls)
        side.step_ms[mark] = statistics.median(overheads) * 1000

    old = min(responder_at) if responder_at else None
    if old is not None:
        branches, edits = [], []
        for _ in range(repeat):
            # Branch: the responder of an old turn answers again, beside its first answer.
            before = clock.llm_s
            started = time.perf_counter()
            await engine.branch(responder_at[old])
            branches.append(time.perf_counter() - started - (clock.llm_s - before))
            # Edit an old delegation, then the next step (the responder answers the new
            # message).
            before = clock.llm_s
            started = time.perf_counter()
            edited = await engine.edit(delegation_at[old], "Answer this instead: who are you?")
            await engine.step(edited.id)  # the message reaches the responder
            inbound = (await engine.store.children(edited.id))[0]
            await engine.step(inbound.id)  # the responder proposes
            edits.append(time.perf_counter() - started - (clock.llm_s - before))
        side.branch_ms = statistics.median(branches) * 1000
        side.edit_ms = statistics.median(edits) * 1000
    await model.inner.aclose()
    return side


async def remember(
    engine: Any,
    leaf_id: str,
    turn: int,
    responder_at: dict[int, str],
    delegation_at: dict[int, str],
) -> None:
    """The node ids of this turn's responder answer and the delegation that asked for it."""
    path = await engine.store.path(leaf_id)
    start = max(i for i, n in enumerate(path) if n.sender == "user")
    for node in path[start:]:
        if node.persona == "orchestrator/responder" and node.kind.value == "proposal":
            responder_at[turn] = node.id
        if node.persona == "orchestrator" and node.target == "responder":
            delegation_at[turn] = node.id


# --- LangGraph ------------------------------------------------------------------------------


class State(TypedDict, total=False):
    """The LangGraph side's state: every persona's history grows with the session, as ours
    does (LangGraph checkpoints it whole at every super-step)."""

    orchestrator: Annotated[list, operator.add]
    responder: Annotated[list, operator.add]
    route: str
    message: str
    reply: str


def langgraph_side(base_url: str, marks: list[int], repeat: int, folder: Path) -> Side:
    import openai
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    from personaweb.characters.sheet import load_bundled
    from personaweb.personas import build_hierarchy

    sheet = next(s for s in load_bundled() if s.name == "Sara Wilcox")
    root: Any = build_hierarchy("dialogue", character=sheet.to_dict(), strategy="nested")
    orchestrator_system = root.system_prompt()
    responder_system = root.children["responder"].system_prompt
    rewriter_system = root.children["style_rewriter"].system_prompt
    schema = root.schema
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0, timeout=30)
    clock = Clock()

    def llm(messages: list[dict[str, str]], structured: bool = False) -> str:
        started = time.perf_counter()
        try:
            if structured:
                response = client.chat.completions.create(
                    model="scripted-model",
                    messages=messages,  # type: ignore[arg-type]
                    temperature=0.2,
                    max_tokens=400,
                    response_format={  # type: ignore[typeddict-item]
                        "type": "json_schema",
                        "json_schema": {"name": "decision", "schema": schema, "strict": False},
                    },
                )
                return response.choices[0].message.content or ""
            text = ""
            stream = client.chat.completions.create(
                model="scripted-model",
                messages=messages,  # type: ignore[arg-type]
                temperature=0.7,
                max_tokens=120,
                stream=True,
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
            return text
        finally:
            clock.llm_s += time.perf_counter() - started
            clock.calls += 1

    def orchestrator(state: State) -> dict[str, Any]:
        messages = [{"role": "system", "content": orchestrator_system}, *state["orchestrator"]]
        decision = json.loads(llm(messages, structured=True))
        said = {"role": "assistant", "content": json.dumps(decision)}
        route = decision["to"] if decision["action"] == "delegate" else "end"
        out: dict[str, Any] = {"orchestrator": [said], "route": route}
        out["message" if route != "end" else "reply"] = decision["message"]
        return out

    def responder(state: State) -> dict[str, Any]:
        asked = {"role": "user", "content": state["message"]}
        messages = [{"role": "system", "content": responder_system}, *state["responder"], asked]
        line = llm(messages)
        back = {"role": "user", "content": f"Reply from responder: {line}"}
        return {
            "responder": [asked, {"role": "assistant", "content": line}],
            "orchestrator": [back],
        }

    def rewriter(state: State) -> dict[str, Any]:
        messages = [
            {"role": "system", "content": rewriter_system},
            {"role": "user", "content": state["message"]},
        ]
        line = llm(messages)
        return {"orchestrator": [{"role": "user", "content": f"Reply from style_rewriter: {line}"}]}

    graph = StateGraph(State)
    graph.add_node("orchestrator", orchestrator)
    graph.add_node("responder", responder)
    graph.add_node("style_rewriter", rewriter)
    graph.add_edge(START, "orchestrator")
    graph.add_conditional_edges(
        "orchestrator",
        lambda s: s["route"],
        {"responder": "responder", "style_rewriter": "style_rewriter", "end": END},
    )
    graph.add_edge("responder", "orchestrator")
    graph.add_edge("style_rewriter", "orchestrator")
    connection = sqlite3.connect(folder / "langgraph.sqlite3", check_same_thread=False)
    app = graph.compile(checkpointer=SqliteSaver(connection))
    thread = {"configurable": {"thread_id": "bench"}}
    side = Side("LangGraph + SqliteSaver")
    turn = 0
    responder_checkpoint: dict[int, dict] = {}
    delegation_checkpoint: dict[int, dict] = {}

    def play() -> tuple[float, float, int]:
        nonlocal turn
        before_llm, before_calls = clock.llm_s, clock.calls
        said = {"role": "user", "content": f"Message from user: {LINES[turn % len(LINES)]}"}
        started = time.perf_counter()
        app.invoke({"orchestrator": [said]}, thread)
        wall = time.perf_counter() - started
        turn += 1
        return wall, clock.llm_s - before_llm, clock.calls - before_calls

    for mark in sorted(marks):
        while turn < mark:
            play()
            if turn == 100 or (turn == max(marks) // 2 and max(marks) < 100):
                # The checkpoints a person would pick: before the responder ran this turn.
                for snapshot in app.get_state_history(thread, limit=8):
                    if snapshot.next == ("responder",):
                        responder_checkpoint[turn] = snapshot.config
                        delegation_checkpoint[turn] = snapshot.config
                        break
        overheads = []
        for _ in range(repeat):
            wall, llm_s, calls = play()
            overheads.append((wall - llm_s) / calls)
        side.step_ms[mark] = statistics.median(overheads) * 1000

    old = min(responder_checkpoint) if responder_checkpoint else None
    if old is not None:
        branches, edits = [], []
        for _ in range(repeat):
            # Branch: run the old turn's responder again from its checkpoint (a fork).
            before = clock.llm_s
            started = time.perf_counter()
            app.invoke(None, responder_checkpoint[old], interrupt_after=["responder"])
            branches.append(time.perf_counter() - started - (clock.llm_s - before))
            # Edit the old delegation's message, then the next step.
            before = clock.llm_s
            started = time.perf_counter()
            forked = app.update_state(
                delegation_checkpoint[old], {"message": "Answer this instead: who are you?"}
            )
            app.invoke(None, forked, interrupt_after=["responder"])
            edits.append(time.perf_counter() - started - (clock.llm_s - before))
        side.branch_ms = statistics.median(branches) * 1000
        side.edit_ms = statistics.median(edits) * 1000
    connection.close()
    return side


# --- the run -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument(
        "--repeat", type=int, default=5, help="turns measured at each size, and time-travel moves"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="personaweb-bench-engine-"))
    setup_django(folder)
    try:
        import langgraph  # noqa: F401
    except ImportError:
        print("LangGraph is missing: `make bench` installs bench/requirements.txt")
        return 1
    from personaweb.llm.scripted_server import ScriptedOpenAIServer
    from tests.scripted_replies import dialogue_responder

    with ScriptedOpenAIServer(dialect="openai", responder=dialogue_responder) as server:
        ours = asyncio.run(personaweb_side(server.base_url, args.turns, args.repeat))
        peer = langgraph_side(server.base_url, args.turns, args.repeat, folder)
    print("| engine overhead per step (ms) | " + " | ".join(f"{t} turns" for t in args.turns))
    print("|---|" + "---|" * len(args.turns))
    for side in (ours, peer):
        cells = " | ".join(f"{side.step_ms[t]:.2f}" for t in args.turns)
        print(f"| {side.name} | {cells} |")
    print()
    print("| time travel at the last size, overhead beyond the LLM (ms) | PersonaWeb | LangGraph |")
    print("|---|---|---|")
    print(f"| branch from an old step | {ours.branch_ms:.1f} | {peer.branch_ms:.1f} |")
    print(f"| edit an old delegation, then one step | {ours.edit_ms:.1f} | {peer.edit_ms:.1f} |")
    print()
    small, large = min(args.turns), max(args.turns)
    growth = ours.step_ms[large] / ours.step_ms[small]
    print(f"step overhead {large}/{small} turns: {growth:.2f} (target <= 1.2)")
    for t in (small, large):
        print(
            f"step overhead vs langgraph, {t} turns: "
            f"{ours.step_ms[t] / peer.step_ms[t]:.2f} (target <= 0.5)"
        )
    print(f"branch overhead vs langgraph: {ours.branch_ms / peer.branch_ms:.2f} (target <= 1.0)")
    print(f"edit overhead vs langgraph: {ours.edit_ms / peer.edit_ms:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
