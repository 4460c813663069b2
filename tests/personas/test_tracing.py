"""OpenTelemetry traces of persona runs: the span tree is the activation tree, whichever engine
(or process) ended which span; people's actions and heat decisions are events; nothing at all
happens without an endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from personaweb.llm.calls import RetryPolicy
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.types import LLMTimeout
from personaweb.personas import (
    Engine,
    MemoryStore,
    Mode,
    Node,
    NodeKind,
    NodeStatus,
    RunConfig,
    SimpleCharacter,
    code_hierarchy,
    tracing,
)
from personaweb.personas.group import GroupSettings, group_hierarchy
from personaweb.personas.heat import PolicySettings, ReplyPolicy
from personaweb.personas.otel import OtelSink

ROOT = Path(__file__).resolve().parents[2]


def decide(action: str, to: str, message: str) -> str:
    return json.dumps({"action": action, "to": to, "message": message})


def ticking() -> Callable[[], float]:
    """A clock that moves one second each time it is read, so spans order by time."""
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    return clock


class Backend:
    """What one process exports: an OTel SDK pipeline into memory."""

    def __init__(self, *, capture_content: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.sink = OtelSink.with_exporter(
            self.exporter, capture_content=capture_content, batch=False
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


def outline(spans: list[ReadableSpan]) -> list[str]:
    """The span tree as indented names, children in start order. Every parent must have been
    exported: a span whose parent never arrived would show as a root."""
    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        assert parent is None or parent in ids, f"{span.name}: its parent was never exported"
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            lines.append("  " * depth + span.name)
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return lines


def by_trace(spans: list[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        traces.setdefault(span.context.trace_id, []).append(span)
    return traces


def agent(spans: list[ReadableSpan], persona: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.attributes and s.attributes.get("gen_ai.agent.id") == persona]
    return found


def events(span: ReadableSpan) -> list[tuple[str, str]]:
    return [(e.name, str((e.attributes or {}).get("user.name", ""))) for e in span.events]


def first_leaf(store: MemoryStore) -> Node:
    """The earliest node no other node answers."""
    nodes = store.all()
    parents = {n.parent_id for n in nodes}
    return next(n for n in nodes if n.id not in parents)


def ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def assert_nested_in_time(spans: list[ReadableSpan]) -> None:
    """Every span lies within its parent's time."""
    by_id = {s.context.span_id: s for s in spans}
    for span in spans:
        if span.parent is not None:
            parent = by_id[span.parent.span_id]
            assert parent.start_time <= span.start_time <= span.end_time <= parent.end_time


def assert_each_span_exported_once(spans: list[ReadableSpan]) -> None:
    keys = [(s.context.trace_id, s.context.span_id) for s in spans]
    assert len(keys) == len(set(keys))


CODE_RUN = (
    decide("delegate", "planner", "Write add(a, b)"),
    "1. define add",
    decide("delegate", "coder", "Write add(a, b). Plan: 1. define add"),
    "```python\ndef add(a, b):\n    return a - b\n```",
    "Wrong operator.",
    "```python\ndef add(a, b):\n    return a + b\n```",
    "APPROVED",
    decide("delegate", "reviewer", "Review add"),
    "Looks fine. Ready to ship.",
    decide("reply", "caller", "def add(a, b): return a + b -- ready"),
)

CODE_TREE = [
    "invoke_agent Lead",
    "  chat scripted",
    "  invoke_agent planner",
    "    chat scripted",
    "  chat scripted",
    "  invoke_agent coder",
    "    invoke_agent implementer",
    "      chat scripted",
    "    invoke_agent tester",
    "      chat scripted",
    "    invoke_agent implementer",
    "      chat scripted",
    "    invoke_agent tester",
    "      chat scripted",
    "  chat scripted",
    "  invoke_agent reviewer",
    "    chat scripted",
    "  chat scripted",
]


async def test_a_three_level_run_exports_the_activation_tree_with_genai_attributes() -> None:
    backend = Backend()
    model = ScriptedChatModel(*CODE_RUN)
    store = MemoryStore()
    engine = Engine(
        code_hierarchy(),
        store,
        model,
        RunConfig(guided=False),
        clock=ticking(),
        tracer=backend.sink,
    )
    await engine.run_autonomous("Write add(a, b)")

    spans = backend.spans()
    assert outline(spans) == CODE_TREE
    assert len(by_trace(spans)) == 1  # one run, one trace
    by_id = {s.context.span_id: s for s in spans}
    nodes = store.all()
    for node in nodes:
        # Each node names the span that shows it, and that span was exported.
        shown = by_id[int(node.data["trace"]["span_id"], 16)]
        assert int(node.data["trace"]["trace_id"], 16) == shown.context.trace_id
        if node.kind is NodeKind.INBOUND:
            assert shown.attributes["gen_ai.operation.name"] == "invoke_agent"
            assert shown.attributes["gen_ai.agent.id"] == node.persona
            assert shown.start_time == ns(node.created_at)
        elif node.call is not None:
            assert shown.name == "chat scripted"
            assert shown.attributes["personaweb.node.id"] == node.id
            assert shown.start_time == ns(node.created_at)
    lead = agent(spans, "lead")
    assert lead.parent is None
    assert lead.attributes["gen_ai.agent.name"] == "Lead"
    assert lead.end_time > ns(first_leaf(store).created_at)  # when its reply was applied
    assert_nested_in_time(spans)
    first_call = store.all()[1]
    assert first_call.call is not None
    chat = by_id[int(first_call.data["trace"]["span_id"], 16)]
    assert chat.parent is not None and chat.parent.span_id == lead.context.span_id
    assert dict(chat.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "scripted",
        "gen_ai.request.model": "scripted",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 600,
        "gen_ai.response.model": "scripted",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": first_call.call.prompt_tokens,
        "gen_ai.usage.output_tokens": first_call.call.completion_tokens,
        "gen_ai.conversation.id": nodes[0].id,
        "personaweb.node.id": first_call.id,
        "personaweb.persona": "lead",
    }
    # Without the opt-in, no message content anywhere.
    assert not [s for s in spans if any("messages" in key for key in s.attributes or {})]


async def test_message_content_is_exported_only_when_the_person_opts_in() -> None:
    backend = Backend(capture_content=True)
    model = ScriptedChatModel(*CODE_RUN)
    engine = Engine(
        code_hierarchy(), MemoryStore(), model, RunConfig(guided=False), clock=ticking()
    )
    engine.tracer = backend.sink
    engine.conversation = "session-7"
    await engine.run_autonomous("Write add(a, b)")

    spans = backend.spans()
    lead = agent(spans, "lead")
    assert json.loads(str(lead.attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Write add(a, b)"}]}
    ]
    output = json.loads(str(lead.attributes["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["content"] == "def add(a, b): return a + b -- ready"
    tester_chat = next(
        s
        for s in spans
        if s.attributes and s.attributes.get("personaweb.persona") == "lead/coder/tester"
    )
    sent = json.loads(str(tester_chat.attributes["gen_ai.input.messages"]))
    assert sent[0]["role"] == "system" and "APPROVED" in sent[0]["parts"][0]["content"]
    answer = json.loads(str(tester_chat.attributes["gen_ai.output.messages"]))
    assert answer[0]["finish_reason"] == "stop"
    assert {s.attributes["gen_ai.conversation.id"] for s in spans if s.attributes} == {"session-7"}


async def test_a_review_run_acted_on_through_other_engines_and_processes_is_one_tree() -> None:
    # Every click is a new Engine over the same store (as in the web app), and they take turns
    # exporting through two SDK pipelines: two processes. Their spans must join into one tree.
    processes = [Backend(), Backend()]
    model = ScriptedChatModel(
        decide("delegate", "planner", "Plan add"),
        "1. define add",
        "1. define add(a, b)",
        "1. Define add. 2. Return a + b.",
        decide("delegate", "coder", "Write add"),
        "```python\ndef add(a, b):\n    return a + b\n```",
        "APPROVED",
        decide("delegate", "reviewer", "Review add"),
        "Mostly fine.",
        decide("reply", "caller", "Shipped."),
    )
    store = MemoryStore()
    clock = ticking()
    clicks = [0]

    def engine(actor: str) -> Engine:
        clicks[0] += 1
        backend = processes[clicks[0] % 2]
        fresh = Engine(
            code_hierarchy(),
            store,
            model,
            RunConfig(mode=Mode.REVIEW, guided=False),
            clock=clock,
            tracer=backend.sink,
        )
        fresh.actor = actor
        return fresh

    first = engine("alice")
    leaf = await first.advance((await first.send("Write add(a, b)")).id)
    planner = await (e := engine("alice")).advance((await e.approve(leaf.id)).id)
    again = await (e := engine("bob")).advance((await e.reject(planner.id)).id)
    feedback = await (e := engine("bob")).feedback(again.id, "number the steps")
    leaf = await e.advance(feedback.id)
    while leaf.persona != "lead/reviewer":
        leaf = await (e := engine("alice")).advance((await e.approve(leaf.id)).id)
    edited = await (e := engine("carol")).edit(leaf.id, "Ship it.")
    leaf = await e.advance(edited.id)
    await (e := engine("alice")).approve(leaf.id)
    model.assert_complete()

    assert all(p.spans() for p in processes)  # both took part
    spans = [s for p in processes for s in p.spans()]
    assert_each_span_exported_once(spans)
    assert outline(spans) == [
        "invoke_agent Lead",
        "  chat scripted",
        "  invoke_agent planner",
        "    chat scripted",
        "    chat scripted",
        "    chat scripted",
        "  chat scripted",
        "  invoke_agent coder",
        "    invoke_agent implementer",
        "      chat scripted",
        "    invoke_agent tester",
        "      chat scripted",
        "  chat scripted",
        "  invoke_agent reviewer",
        "    chat scripted",
        "  chat scripted",
    ]
    assert events(agent(spans, "lead/planner")) == [
        ("personaweb.reject", "bob"),
        ("personaweb.feedback", "bob"),
        ("personaweb.approve", "alice"),
    ]
    assert events(agent(spans, "lead")) == [("personaweb.approve", "alice")] * 4
    assert events(agent(spans, "lead/coder")) == [("personaweb.approve", "alice")] * 3
    assert events(agent(spans, "lead/reviewer")) == [("personaweb.edit", "carol")]
    # The feedback's text is content: not exported without the opt-in.
    assert "personaweb.text" not in (agent(spans, "lead/planner").events[1].attributes or {})
    lead = agent(spans, "lead")
    user_message = store.all()[0]
    assert lead.start_time == ns(user_message.created_at)
    assert lead.end_time >= ns(first_leaf(store).data["human"][-1]["at"])
    assert_nested_in_time(spans)
    assert lead.status.status_code is StatusCode.UNSET


async def test_a_failed_step_ends_its_trace_as_an_error_and_its_retry_is_a_trace_of_its_own() -> (
    None
):
    backend = Backend()
    model = ScriptedChatModel(
        decide("delegate", "planner", "Plan add"),
        LLMTimeout("the server took too long"),
        "1. define add",
        decide("reply", "caller", "Planned."),
    )
    store = MemoryStore()
    config = RunConfig(guided=False, retry=RetryPolicy(attempts=1))
    clock = ticking()
    engine = Engine(code_hierarchy(), store, model, config, clock=clock, tracer=backend.sink)
    failed = await engine.run_autonomous("Write add(a, b)")
    assert failed.kind is NodeKind.ERROR

    first = backend.spans()
    assert outline(first) == [
        "invoke_agent Lead",
        "  chat scripted",
        "  invoke_agent planner",
        "    chat",  # the call failed: no model answered
    ]
    assert {s.status.status_code for s in first if s.name != "chat scripted"} == {StatusCode.ERROR}
    failed_call = next(s for s in first if s.name == "chat")
    assert failed_call.attributes["error.type"] == "LLMTimeout"

    again = Engine(code_hierarchy(), store, model, config, clock=clock, tracer=backend.sink)
    again.actor = "alice"
    await again.advance((await again.retry(failed.id)).id)
    model.assert_complete()

    traces = by_trace(backend.spans())
    assert len(traces) == 2
    (retried,) = [spans for trace, spans in traces.items() if trace != first[0].context.trace_id]
    assert outline(retried) == [
        "invoke_agent Lead",
        "  invoke_agent planner",
        "    chat scripted",
        "  chat scripted",
    ]
    assert events(agent(retried, "lead/planner")) == [("personaweb.retry", "alice")]
    # The retried trace is the whole history of its path: it starts at the user's message.
    assert agent(retried, "lead").start_time == agent(first, "lead").start_time
    assert_each_span_exported_once(backend.spans())


async def test_replaying_a_finished_run_leaves_its_trace_as_it_was() -> None:
    backend = Backend()
    model = ScriptedChatModel(
        decide("delegate", "planner", "Plan add"),
        "1. define add",
        decide("reply", "caller", "Planned."),
    )
    store = MemoryStore()
    engine = Engine(
        code_hierarchy(),
        store,
        model,
        RunConfig(guided=False),
        clock=ticking(),
        tracer=backend.sink,
    )
    leaf = await engine.run_autonomous("Write add(a, b)")
    before = backend.spans()
    path = await store.path(leaf.id)
    plan = next(n for n in path if n.persona == "lead/planner" and n.is_proposal)

    model.enqueue("1. define add\n2. test it", decide("reply", "caller", "Planned, twice."))
    engine.actor = "bob"
    await engine.advance((await engine.branch(plan.id, feedback="add a test step")).id)
    model.assert_complete()

    spans = backend.spans()
    assert spans[: len(before)] == before  # nothing re-exported, nothing changed
    assert_each_span_exported_once(spans)
    (replay,) = [
        t for t in by_trace(spans).values() if t[0].context.trace_id != before[0].context.trace_id
    ]
    assert outline(replay) == [
        "invoke_agent Lead",
        "  invoke_agent planner",
        "    chat scripted",
        "  chat scripted",
    ]
    assert events(agent(replay, "lead/planner")) == [("personaweb.branch", "bob")]


async def test_a_step_cut_off_by_a_stopped_process_is_closed_when_it_is_retried() -> None:
    backend = Backend()

    class Stopped(BaseException):
        """The process running the step dies mid-call."""

    model = ScriptedChatModel(decide("delegate", "planner", "Plan add"), Stopped())
    store = MemoryStore()
    config = RunConfig(guided=False)
    clock = ticking()
    engine = Engine(code_hierarchy(), store, model, config, clock=clock, tracer=backend.sink)
    with pytest.raises(Stopped):
        await engine.run_autonomous("Write add(a, b)")
    (cut,) = [n for n in store.all() if n.status is NodeStatus.PENDING]
    # What start-up recovery does to a step its process left unfinished.
    cut.status = NodeStatus.INTERRUPTED
    await store.update(cut)
    assert [s.name for s in backend.spans()] == ["chat scripted"]  # the lead's decision

    model.enqueue("1. define add", decide("reply", "caller", "Planned."))
    later = Engine(code_hierarchy(), store, model, config, clock=clock, tracer=backend.sink)
    await later.advance((await later.retry(cut.id)).id)
    model.enqueue("1. define add, once more")
    await later.retry(cut.id)  # a second retry closes nothing twice
    traces = by_trace(backend.spans())
    interrupted = traces[int(cut.data["trace"]["trace_id"], 16)]
    assert outline(interrupted) == [
        "invoke_agent Lead",
        "  chat scripted",
        "  invoke_agent planner",
    ]
    planner = agent(interrupted, "lead/planner")
    assert planner.status.status_code is StatusCode.ERROR
    assert "interrupted" in (planner.status.description or "")
    assert_each_span_exported_once(backend.spans())


async def test_heat_decisions_are_events_of_the_director_with_their_numbers() -> None:
    backend = Backend()
    model = ScriptedChatModel()
    model.default = lambda request: "Hello there."
    ann = SimpleCharacter("Ann Archer", description="A cheerful archer.")
    bob = SimpleCharacter("Bob Baker", description="A grumpy baker.")
    root = group_hierarchy(
        [("ann", ann), ("bob", bob)], GroupSettings(turn_cap=1), strategy="single"
    )
    engine = Engine(
        root, MemoryStore(), model, RunConfig(max_steps=400, guided=False), clock=ticking()
    )
    engine.tracer = backend.sink
    await engine.run_autonomous("Ann, hi!")

    spans = backend.spans()
    assert outline(spans) == [
        "invoke_agent Group",
        "  invoke_agent Ann Archer",
        "    chat scripted",
    ]
    director = agent(spans, "director")
    decisions = [dict(e.attributes or {}) for e in director.events]
    first = decisions[0]
    assert first["personaweb.decision.character"] == "ann"
    assert first["personaweb.decision.speak"] is True and first["personaweb.decision.chosen"]
    assert first["personaweb.decision.heat"] >= first["personaweb.decision.threshold"]
    bob_first = decisions[1]
    assert bob_first["personaweb.decision.character"] == "bob"
    assert bob_first["personaweb.decision.speak"] is False
    assert all(e.name == "personaweb.heat_decision" for e in director.events)


async def test_a_pre_pass_call_is_a_chat_span_of_the_director() -> None:
    backend = Backend()
    model = ScriptedChatModel()
    verdict = json.dumps({"should_respond": False, "reason": "not mine", "confidence": 0.1})
    model.default = lambda request: verdict
    ann = SimpleCharacter("Ann Archer", description="A cheerful archer.")
    bob = SimpleCharacter("Bob Baker", description="A grumpy baker.")
    settings = GroupSettings(policy=PolicySettings(default=ReplyPolicy.PREPASS))
    root = group_hierarchy([("ann", ann), ("bob", bob)], settings, strategy="single")
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False), clock=ticking())
    engine.tracer = backend.sink
    await engine.run_autonomous("Anyone?")

    spans = backend.spans()
    assert outline(spans) == ["invoke_agent Group", "  chat scripted", "  chat scripted"]
    assert_nested_in_time(spans)
    chats = [s for s in spans if s.name == "chat scripted"]
    assert {s.attributes["gen_ai.request.max_tokens"] for s in chats} == {120}
    director = agent(spans, "director")
    silent = [e.attributes for e in director.events if e.name == "personaweb.heat_decision"]
    assert [a["personaweb.decision.speak"] for a in silent] == [False, False]


async def test_new_steps_in_a_copied_session_do_not_join_the_originals_trace() -> None:
    backend = Backend()
    model = ScriptedChatModel(decide("delegate", "planner", "Plan add"))
    original = MemoryStore()
    config = RunConfig(mode=Mode.REVIEW, guided=False)
    clock = ticking()
    engine = Engine(code_hierarchy(), original, model, config, clock=clock, tracer=backend.sink)
    waiting = await engine.advance((await engine.send("Write add(a, b)")).id)
    (first,) = backend.spans()

    # The web's session import: the same nodes (data and all) under new ids.
    renamed = {n.id: f"copy{n.id}" for n in original.all()}
    copies = []
    for node in original.all():
        copy = node.copy()
        copy.id, copy.parent_id = renamed[node.id], renamed.get(node.parent_id or "")
        copies.append(copy)
    model.enqueue("1. define add", decide("reply", "caller", "Planned."))
    copied = MemoryStore(copies)
    later = Engine(code_hierarchy(), copied, model, config, clock=clock, tracer=backend.sink)
    later.config = RunConfig(guided=False)
    await later.approve_turn(renamed[waiting.id])

    new = backend.spans()[1:]
    assert new and all(s.context.trace_id != first.context.trace_id for s in new)
    assert outline(new) == [
        "invoke_agent Lead",
        "  invoke_agent planner",
        "    chat scripted",
        "  chat scripted",
    ]


def test_nodes_with_hand_made_trace_data_are_read_safely() -> None:
    # A session file may carry anything in data: a bad stamp is no stamp.
    node = Node("n1", None, "lead", NodeKind.INBOUND, data={"trace": {"trace_id": "zz"}})
    assert tracing.stamped(node) is None
    node.data = {"trace": {"trace_id": "a" * 32, "span_id": 7}, "human": [{"action": 1}, "x"]}
    assert tracing.stamped(node) == (int("a" * 32, 16), None)
    assert tracing.human_acts(node.data) == []


# -- the process: environment variables, OTLP over HTTP ---------------------------------------

RUN_IN_A_PROCESS = """
import asyncio, json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "personaweb.settings")
django.setup()  # the web app's start-up, as every manage.py command and the server do
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.personas import Engine, MemoryStore, RunConfig, code_hierarchy

def decide(action, to, message):
    return json.dumps({"action": action, "to": to, "message": message})

async def main():
    model = ScriptedChatModel(
        decide("delegate", "planner", "Plan"), "1. plan", decide("reply", "caller", "Done.")
    )
    engine = Engine(code_hierarchy(), MemoryStore(), model, RunConfig(guided=False))
    await engine.run_autonomous("Plan something")
    print(json.dumps({
        "tracer": engine.tracer is not None,
        "stamped": [n for n in engine.store.all() if "trace" in n.data] != [],
        "otel_modules": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
    }))

asyncio.run(main())
"""


def run_in_a_process(env: dict[str, str]) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", RUN_IN_A_PROCESS],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


class Receiver:
    """An OTLP/HTTP collector in this process: it keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[tuple[dict[str, str], Any]]:
        """(resource attributes, span) for every span received."""
        out = []
        for _path, _headers, body in self.requests:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    out.extend((resource, span) for span in scope.spans)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()
    yield got
    got.close()


def test_without_an_endpoint_nothing_is_traced_and_opentelemetry_is_never_loaded(
    receiver: Receiver,
) -> None:
    seen = run_in_a_process({"OTEL_SERVICE_NAME": "ignored"})
    assert seen == {"tracer": False, "stamped": False, "otel_modules": []}
    assert receiver.requests == []


def test_an_endpoint_in_the_environment_gets_the_run_over_otlp_http(receiver: Receiver) -> None:
    # The way Langfuse is reached: a base endpoint and a basic-auth header.
    seen = run_in_a_process(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20cGs6c2s=",
        }
    )
    assert seen["tracer"] and seen["stamped"]
    # The process flushed its spans on the way out.
    paths = {path for path, _headers, _body in receiver.requests}
    assert paths == {"/v1/traces"}
    headers = receiver.requests[0][1]
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["authorization"] == "Basic cGs6c2s="
    got = receiver.spans()
    assert sorted(span.name for _resource, span in got) == [
        "chat scripted",
        "chat scripted",
        "chat scripted",
        "invoke_agent Lead",
        "invoke_agent planner",
    ]
    assert {resource["service.name"] for resource, _span in got} == {"personaweb"}


def test_the_service_name_comes_from_otel_service_name(receiver: Receiver) -> None:
    run_in_a_process(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces",
            "OTEL_SERVICE_NAME": "pw-staging",
        }
    )
    assert {resource["service.name"] for resource, _span in receiver.spans()} == {"pw-staging"}


def test_the_standard_switches_turn_an_endpoint_off() -> None:
    assert not tracing.enabled_by(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing.enabled_by(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert tracing.enabled_by({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x"})
    assert not tracing.enabled_by({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "})


async def test_a_sink_that_fails_never_stops_the_run() -> None:
    class Broken:
        capture_content = False

        def emit(self, span: tracing.Span) -> None:
            raise RuntimeError("collector exploded")

    model = ScriptedChatModel(*CODE_RUN)
    engine = Engine(
        code_hierarchy(), MemoryStore(), model, RunConfig(guided=False), tracer=Broken()
    )
    leaf = await engine.run_autonomous("Write add(a, b)")
    assert leaf.persona == "lead" and leaf.status is NodeStatus.APPROVED
