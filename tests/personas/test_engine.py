"""The persona core with a scripted model: nesting, review, replay, resumption, failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from personaweb.llm.calls import RetryPolicy
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.types import LLMTimeout
from personaweb.personas import (
    Action,
    ActionRefused,
    BasicPersona,
    DelegatingPersona,
    Engine,
    MemoryStore,
    Mode,
    NextKind,
    Node,
    NodeKind,
    NodeStatus,
    RunConfig,
    SimpleCharacter,
    code_hierarchy,
    dialogue_hierarchy,
    export_tree,
    import_tree,
)


async def _no_sleep(_seconds: float) -> None:
    return None


NO_WAIT = RetryPolicy(sleep=_no_sleep)
"""Retries without real waiting."""


def decide(action: str, to: str, message: str) -> str:
    return json.dumps({"action": action, "to": to, "message": message})


SARA = SimpleCharacter(
    name="Sara Wilcox",
    description="A noblewoman who wants her husband crowned.",
    personality="Cold, commanding.",
    mood="Restless",
    goals=["See her husband rise"],
    sample_lines=["Screw your courage to the sticking place.", "What's done is done."],
)


def script_dialogue_turn(model: ScriptedChatModel, raw: str, styled: str) -> None:
    model.enqueue(
        decide("delegate", "responder", "Answer: hello"),
        raw,
        decide("delegate", "style_rewriter", raw),
        styled,
        decide("reply", "caller", styled),
    )


async def test_autonomous_dialogue_run_goes_through_both_children() -> None:
    model = ScriptedChatModel()
    script_dialogue_turn(model, "I am Sara.", "Sara am I, and none other.")
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(guided=False))

    leaf = await engine.run_autonomous("I am Joe. Who are you?")

    model.assert_complete()
    state = await engine.state(leaf.id)
    assert state.next.kind is NextKind.DONE
    assert [line.text for line in state.transcript] == [
        "I am Joe. Who are you?",
        "Sara am I, and none other.",
    ]
    personas = [n.persona for n in state.path]
    assert "orchestrator/responder" in personas
    assert "orchestrator/style_rewriter" in personas
    # Every LLM node records what was sent and what came back (a path leaves call records out;
    # the node itself has them).
    proposals = [await engine.store.get(n.id) for n in state.path if n.kind is NodeKind.PROPOSAL]
    assert all(n.call is not None and n.call.messages for n in proposals)
    assert all(n.status is NodeStatus.APPROVED for n in proposals)


async def test_the_rewriter_is_stateless_and_sees_sample_lines_only() -> None:
    model = ScriptedChatModel()
    script_dialogue_turn(model, "First raw.", "First styled.")
    script_dialogue_turn(model, "Second raw.", "Second styled.")
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(guided=False))
    leaf = await engine.run_autonomous("Hello")
    await engine.run_autonomous("Again", parent_id=leaf.id)

    rewriter_calls = [
        c for c in model.calls if c.messages[0].content.startswith("You rewrite single lines")
    ]
    assert len(rewriter_calls) == 2
    last = rewriter_calls[-1]
    assert "Screw your courage" in last.messages[0].content
    # Only the system prompt and the one line to rewrite: no history.
    assert [m.role for m in last.messages] == ["system", "user"]
    assert last.messages[1].content == "Second raw."
    # The responder, by contrast, keeps its history.
    responder_calls = [c for c in model.calls if "Stay in character" in c.messages[0].content]
    assert "First raw." in [m.content for m in responder_calls[-1].messages]


async def test_review_mode_stops_at_each_proposal_and_approval_moves_on() -> None:
    model = ScriptedChatModel()
    script_dialogue_turn(model, "raw", "styled")
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    inbound = await engine.send("hi")
    leaf = await engine.advance(inbound.id)
    assert leaf.kind is NodeKind.PROPOSAL and leaf.status is NodeStatus.PROPOSED
    assert leaf.persona == "orchestrator"
    assert leaf.action is Action.DELEGATE and leaf.target == "responder"

    stops = 0
    while leaf is not None:
        stops += 1
        leaf = await engine.process_proposed_response(leaf.id)  # type: ignore[assignment]
    assert stops == 5  # three orchestrator decisions, one responder line, one rewrite
    model.assert_complete()


async def test_feedback_to_a_child_makes_it_propose_again_with_the_feedback() -> None:
    model = ScriptedChatModel()
    model.enqueue(decide("delegate", "responder", "Answer: hello"), "Hello there, friend.")
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    inbound = await engine.send("hello")
    first = await engine.advance(inbound.id)
    child = await engine.process_proposed_response(first.id)
    assert child is not None and child.persona == "orchestrator/responder"

    model.enqueue("Who asks?")
    again = await engine.respond(child.id, "be colder")

    assert again.persona == "orchestrator/responder"
    assert again.content == "Who asks?"
    sent = model.calls[-1].messages
    assert sent[-2].content == "Hello there, friend."
    assert "be colder" in sent[-1].content
    assert (await engine.store.get(child.id)).status is NodeStatus.SUPERSEDED


async def test_reject_makes_the_persona_try_again_knowing_it_was_rejected() -> None:
    model = ScriptedChatModel()
    model.enqueue(decide("delegate", "responder", "go"), "Bad line.", "Better line.")
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    leaf = await engine.advance((await engine.send("hi")).id)
    child = await engine.process_proposed_response(leaf.id)
    assert child is not None
    await engine.reject(child.id)
    retry = await engine.advance(child.id)
    assert retry.content == "Better line."
    assert "rejected" in model.calls[-1].messages[-1].content


async def test_an_applied_node_refuses_approve_and_reject() -> None:
    model = ScriptedChatModel()
    script_dialogue_turn(model, "raw", "styled")
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(guided=False))
    leaf = await engine.run_autonomous("hi")
    state = await engine.state(leaf.id)
    applied = next(n for n in state.path if n.kind is NodeKind.PROPOSAL)
    with pytest.raises(ActionRefused):
        await engine.approve(applied.id)
    with pytest.raises(ActionRefused):
        await engine.reject(applied.id)


async def test_replay_from_a_middle_step_keeps_the_old_branch() -> None:
    model = ScriptedChatModel()
    script_dialogue_turn(model, "I am Sara.", "Sara am I.")
    store = MemoryStore()
    engine = Engine(dialogue_hierarchy(SARA), store, model, RunConfig(guided=False))
    old_leaf = await engine.run_autonomous("Who are you?")
    old_path = await store.path(old_leaf.id)
    responder_line = next(n for n in old_path if n.persona.endswith("responder") and n.is_proposal)

    # Replay with tweaks: feedback on the responder's applied line starts a new branch.
    model.enqueue(
        "Who wants to know?",
        decide("delegate", "style_rewriter", "Who wants to know?"),
        "Who would know me?",
        decide("reply", "caller", "Who would know me?"),
    )
    feedback = await engine.branch(responder_line.id, feedback="be suspicious")
    new_leaf = await engine.advance(feedback.id)
    model.assert_complete()

    new_state = await engine.state(new_leaf.id)
    assert new_state.transcript[-1].text == "Who would know me?"
    # The old branch is untouched and still reads the same.
    assert (await engine.state(old_leaf.id)).transcript[-1].text == "Sara am I."
    assert [n.id for n in await store.path(old_leaf.id)] == [n.id for n in old_path]
    kids = await store.children(responder_line.id)
    assert len(kids) == 2  # the old continuation and the feedback


async def test_edit_replaces_a_proposal_and_the_run_continues_with_it() -> None:
    model = ScriptedChatModel()
    model.enqueue(decide("delegate", "responder", "go"), "Plain line.")
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    leaf = await engine.advance((await engine.send("hi")).id)
    child = await engine.process_proposed_response(leaf.id)
    assert child is not None
    edited = await engine.edit(child.id, "My edited line.")
    model.enqueue(decide("delegate", "style_rewriter", "My edited line."))
    nxt = await engine.advance(edited.id)
    assert nxt.persona == "orchestrator" and nxt.status is NodeStatus.PROPOSED
    assert "Reply from responder: My edited line." in [m.content for m in model.calls[-1].messages]
    assert "Plain line." not in json.dumps([m.content for m in model.calls[-1].messages])


async def test_three_level_nesting_in_the_code_hierarchy() -> None:
    model = ScriptedChatModel()
    model.enqueue(
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
    engine = Engine(code_hierarchy(), MemoryStore(), model, RunConfig(guided=False))
    leaf = await engine.run_autonomous("Write add(a, b)")
    model.assert_complete()
    state = await engine.state(leaf.id)
    assert state.next.kind is NextKind.DONE
    personas = {n.persona for n in state.path}
    assert "lead/coder/implementer" in personas and "lead/coder/tester" in personas
    coder_reply = next(
        n for n in state.path if n.persona == "lead/coder" and n.action is Action.REPLY
    )
    assert "a + b" in coder_reply.content
    assert coder_reply.call is None  # code-managed: no LLM behind it
    assert coder_reply.data == {"rounds": 2, "approved": True}


def deep_chain(depth: int) -> DelegatingPersona:
    """A chain of coordinators, each with one child, ending in a basic persona."""
    node: BasicPersona | DelegatingPersona = BasicPersona("worker", system_prompt="Work.")
    for level in range(depth, 0, -1):
        node = DelegatingPersona(f"c{level}", instructions="Pass it down.", children=[node])
    assert isinstance(node, DelegatingPersona)
    return node


async def test_maximum_depth_fails_visibly() -> None:
    model = ScriptedChatModel()
    model.enqueue(decide("delegate", "c2", "x"), decide("delegate", "c3", "x"))
    engine = Engine(deep_chain(3), MemoryStore(), model, RunConfig(max_depth=2, guided=False))
    leaf = await engine.run_autonomous("go")
    assert leaf.kind is NodeKind.ERROR and leaf.status is NodeStatus.FAILED
    assert "limit is 2" in leaf.content


async def test_maximum_steps_fails_visibly() -> None:
    model = ScriptedChatModel()
    # The coordinator keeps delegating forever.
    for _ in range(20):
        model.enqueue(decide("delegate", "worker", "again"), "done")
    root = DelegatingPersona(
        "boss", instructions="x", children=[BasicPersona("worker", system_prompt="w")]
    )
    engine = Engine(root, MemoryStore(), model, RunConfig(max_steps=9, guided=False))
    leaf = await engine.run_autonomous("go")
    assert leaf.kind is NodeKind.ERROR and "limit of 9 steps" in leaf.content


@pytest.mark.parametrize(
    "bad",
    [
        "not json at all",
        "",
        '{"action": "delegate", "to": "nobody", "message": "x"}',
        '{"action": "delegate", "to": "responder"}',
        '{"action": "fly", "to": "caller", "message": "x"}',
    ],
)
async def test_malformed_orchestrator_output_is_re_asked_then_recovers(bad: str) -> None:
    model = ScriptedChatModel()
    model.enqueue(bad, decide("delegate", "responder", "ok"))
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    leaf = await engine.advance((await engine.send("hi")).id)
    assert leaf.status is NodeStatus.PROPOSED and leaf.target == "responder"
    assert leaf.call is not None and len(leaf.call.attempts) == 1
    # The second request showed the model its mistake and the validation error.
    assert "not valid" in model.calls[1].messages[-1].content


async def test_malformed_output_every_time_becomes_a_failed_node_and_retry_works() -> None:
    model = ScriptedChatModel()
    model.enqueue("nope", "still nope", '{"action": "delegate", "to": "ghost", "message": "x"}')
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    leaf = await engine.advance((await engine.send("hi")).id)
    assert leaf.kind is NodeKind.ERROR and leaf.status is NodeStatus.FAILED
    assert "after 3 attempts" in leaf.content
    # The record is the last answer; the two before it are its attempts: 3 calls counted.
    assert leaf.call is not None and len(leaf.call.attempts) == 2 and leaf.call.calls == 3
    assert leaf.call.response_text.startswith('{"action": "delegate", "to": "ghost"')

    model.enqueue(decide("delegate", "responder", "ok"))
    retried = await engine.retry(leaf.id)
    assert retried.status is NodeStatus.PROPOSED
    assert retried.parent_id == leaf.parent_id  # a sibling: the failure stays visible


async def test_a_timeout_is_retried_then_becomes_a_failed_node_not_a_crash() -> None:
    model = ScriptedChatModel()
    timeout = LLMTimeout("took too long")
    model.enqueue(decide("delegate", "responder", "go"), timeout, timeout, timeout)
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(retry=NO_WAIT, guided=False)
    )
    leaf = await engine.run_autonomous("hi")
    assert leaf.kind is NodeKind.ERROR and "LLMTimeout" in leaf.content
    assert "after 3 tries" in leaf.content
    assert leaf.persona == "orchestrator/responder"
    assert leaf.data["retryable"] is True
    model.assert_complete()


async def test_stateless_resumption_gives_the_same_tree() -> None:
    def script() -> ScriptedChatModel:
        model = ScriptedChatModel()
        script_dialogue_turn(model, "raw one", "styled one")
        script_dialogue_turn(model, "raw two", "styled two")
        return model

    # Uninterrupted.
    full = Engine(dialogue_hierarchy(SARA), MemoryStore(), script(), RunConfig(guided=False))
    leaf = await full.run_autonomous("first")
    leaf = await full.run_autonomous("second", parent_id=leaf.id)
    assert isinstance(full.store, MemoryStore)
    expected = [(n.persona, n.kind, n.status, n.content) for n in full.store.all()]

    # Interrupted after a few steps, exported, imported into fresh objects, continued.
    model = script()
    first = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(guided=False))
    current = await first.send("first")
    for _ in range(4):
        changed = await first.step(current.id)
        assert changed is not None
        current = changed
    assert isinstance(first.store, MemoryStore)
    saved = export_tree(first.store.all())

    nodes, _meta = import_tree(saved)
    second = Engine(dialogue_hierarchy(SARA), MemoryStore(nodes), model, RunConfig(guided=False))
    leaf = await second.advance(current.id)
    leaf = await second.run_autonomous("second", parent_id=leaf.id)
    model.assert_complete()
    assert isinstance(second.store, MemoryStore)
    assert [(n.persona, n.kind, n.status, n.content) for n in second.store.all()] == expected


async def test_a_new_message_is_refused_while_a_proposal_waits() -> None:
    model = ScriptedChatModel()
    model.enqueue(decide("delegate", "responder", "go"))
    engine = Engine(
        dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    leaf = await engine.advance((await engine.send("hi")).id)
    with pytest.raises(ActionRefused):
        await engine.send("hello?", parent_id=leaf.id)


async def test_breakpoints_stop_only_at_the_chosen_persona() -> None:
    model = ScriptedChatModel()
    script_dialogue_turn(model, "raw", "styled")
    config = RunConfig(
        mode=Mode.BREAKPOINTS,
        breakpoints=frozenset({"orchestrator/style_rewriter"}),
        guided=False,
    )
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, config)
    leaf = await engine.advance((await engine.send("hi")).id)
    assert leaf.persona == "orchestrator/style_rewriter" and leaf.status is NodeStatus.PROPOSED
    await engine.approve(leaf.id)
    end = await engine.advance(leaf.id)
    assert (await engine.state(end.id)).next.kind is NextKind.DONE


async def test_each_persona_uses_its_own_profile() -> None:
    from personaweb.llm.types import LLMProfile

    model = ScriptedChatModel()
    script_dialogue_turn(model, "raw", "styled")
    root = dialogue_hierarchy(
        SARA,
        profiles={
            "orchestrator/responder": LLMProfile(model="big", temperature=1.1),
            "orchestrator/style_rewriter": LLMProfile(model="small", temperature=0.3),
        },
    )
    await Engine(root, MemoryStore(), model, RunConfig(guided=False)).run_autonomous("hi")
    used = {(c.profile.model, c.profile.temperature) for c in model.calls}
    assert ("big", 1.1) in used and ("small", 0.3) in used


async def test_oversized_input_is_refused_and_nothing_is_written() -> None:
    from personaweb.personas.engine import MAX_INPUT_CHARS

    store = MemoryStore()
    engine = Engine(dialogue_hierarchy(SARA), store, ScriptedChatModel(), RunConfig(guided=False))
    with pytest.raises(ActionRefused, match="too long"):
        await engine.send("x" * (MAX_INPUT_CHARS + 1))
    assert store.all() == []


async def test_a_guard_rail_failure_offers_no_retry() -> None:
    from personaweb.personas import allowed_actions

    model = ScriptedChatModel()
    model.enqueue(decide("delegate", "c2", "x"), decide("delegate", "c3", "x"))
    engine = Engine(deep_chain(3), MemoryStore(), model, RunConfig(max_depth=2, guided=False))
    leaf = await engine.run_autonomous("go")
    assert allowed_actions(leaf, has_children=False) == frozenset()
    with pytest.raises(ActionRefused):
        await engine.retry(leaf.id)


async def test_a_persona_bug_becomes_a_failed_node_not_a_stuck_run() -> None:
    class Broken(BasicPersona):
        async def propose(self, ctx):  # type: ignore[no-untyped-def]
            return 1 / 0  # a real bug in a persona

    engine = Engine(
        Broken("broken", system_prompt="x"),
        MemoryStore(),
        ScriptedChatModel(),
        RunConfig(guided=False),
    )
    leaf = await engine.run_autonomous("hi")
    assert leaf.kind is NodeKind.ERROR and leaf.status is NodeStatus.FAILED
    assert "ZeroDivisionError" in leaf.content
    assert not [n for n in await engine.store.path(leaf.id) if n.status is NodeStatus.PENDING]


async def test_a_loop_redirected_to_its_checker_replies_with_the_verdict() -> None:
    from personaweb.personas import Mode

    # A person redirects the coder's first delegation to the tester: the loop then has no work
    # to return, and answers with the checker's verdict instead of crashing or hanging.
    model = ScriptedChatModel()
    model.enqueue(decide("delegate", "coder", "Write add"), "APPROVED")
    model.enqueue(decide("reply", "caller", "Done: APPROVED"))
    engine = Engine(
        code_hierarchy(), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False)
    )
    leaf = await engine.advance((await engine.send("Write add")).id)
    coder = await engine.process_proposed_response(leaf.id)  # lead -> coder, coder proposes
    assert coder is not None and coder.persona == "lead/coder"
    edited = await engine.edit(coder.id, "Check this", target="tester")
    engine.config = RunConfig(mode=Mode.AUTONOMOUS, guided=False)
    end = await engine.advance(edited.id)
    path = await engine.store.path(end.id)
    assert not [n for n in path if n.status in (NodeStatus.PENDING, NodeStatus.STREAMING)]
    coder_reply = next(n for n in path if n.persona == "lead/coder" and n.action is Action.REPLY)
    assert coder_reply.content == "APPROVED"
    assert path[-1].persona == "lead" and path[-1].content == "Done: APPROVED"
    model.assert_complete()


@pytest.mark.parametrize(
    ("nodes", "error"),
    [
        ([("a", "b"), ("b", "a")], "cycle"),
        ([("a", None), ("a", None)], "twice"),
        ([("a", "ghost")], "unknown parent"),
    ],
)
def test_a_tampered_tree_file_is_refused(nodes: list[tuple[str, str | None]], error: str) -> None:
    from personaweb.personas.tree import TreeFormatError

    doc = {
        "format": "personaweb.tree/1",
        "nodes": [{"id": i, "parent_id": p, "persona": "x", "kind": "inbound"} for i, p in nodes],
    }
    with pytest.raises(TreeFormatError, match=error):
        import_tree(json.dumps(doc))


class _GatedStore(MemoryStore):
    """A MemoryStore whose writes are held (as OrmStore's are inside a batch) and land only
    when the test opens the gate; it logs when writing starts and ends."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None
        self._held: list[tuple[str, Node]] | None = None
        self.landed: set[str] = set()

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        outer = self._held is None
        if outer:
            self._held = []
        try:
            yield
        finally:
            if outer:
                await self.flush()
                self._held = None

    async def add(self, node: Node) -> Node:
        if self._held is None:
            return await super().add(node)
        self._held.append(("add", node.copy()))
        return node

    async def update(self, node: Node) -> None:
        if self._held is None:
            return await super().update(node)
        self._held.append(("update", node.copy()))

    async def flush(self) -> None:
        if not self._held:
            return
        held, self._held[:] = list(self._held), []
        self.log.append("writing")
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        for what, node in held:
            await (super().add(node) if what == "add" else super().update(node))
            self.landed.add(node.id)
        self.log.append("landed")


class _LoggedModel(ScriptedChatModel):
    def __init__(self, log: list[str], *replies: str) -> None:
        super().__init__(*replies)
        self.log = log

    async def stream(self, request):  # type: ignore[no-untyped-def,override]
        self.log.append("call sent")
        async for chunk in super().stream(request):
            yield chunk


class _StatusLog:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def node_changed(self, node: Node, state: object, created: bool) -> None:
        if node.status in (NodeStatus.STREAMING, NodeStatus.PROPOSED):
            self.log.append(node.status.value)

    async def tokens(self, node: Node, text: str) -> None:
        return None


async def test_a_steps_writes_overlap_its_llm_call_and_land_before_its_answer_is_used() -> None:
    log: list[str] = []
    store = _GatedStore(log)
    model = _LoggedModel(log, "Hello there.")
    engine = Engine(BasicPersona("basic", system_prompt="x"), store, model, RunConfig())
    engine.observer = _StatusLog(log)
    inbound = await engine.send("hi")
    store.gate.clear()
    run = asyncio.ensure_future(engine.advance(inbound.id, stop=False))
    for _ in range(1000):
        if "call sent" in log and "writing" in log:
            break
        await asyncio.sleep(0)
    assert "call sent" in log and "writing" in log
    for _ in range(20):  # the call has gone out; its answer waits for the writes
        await asyncio.sleep(0)
    assert "landed" not in log and not run.done()
    assert "streaming" not in log and "proposed" not in log  # no answer used yet
    store.gate.set()
    leaf = await run
    assert log.index("call sent") < log.index("landed") < log.index("streaming")
    assert leaf.status is NodeStatus.APPROVED and leaf.content == "Hello there."
    # The pending proposal landed with the first write, before the answer was taken.
    assert leaf.id in store.landed
    assert (await store.get(leaf.id)).status is NodeStatus.APPROVED


async def test_a_failed_write_fails_the_run_rather_than_becoming_a_failed_node() -> None:
    log: list[str] = []
    store = _GatedStore(log)
    store.fail_with = RuntimeError("disk full")
    engine = Engine(
        BasicPersona("basic", system_prompt="x"),
        store,
        _LoggedModel(log, "Hello there."),
        RunConfig(),
    )
    inbound = await engine.send("hi")
    with pytest.raises(RuntimeError, match="disk full"):
        await engine.advance(inbound.id, stop=False)
    assert not [n for n in store.nodes.values() if n.kind is NodeKind.ERROR]


def _reading(state: object) -> object:
    """What a PathState says, in comparable values."""
    from personaweb.personas.state import PathState

    assert isinstance(state, PathState)
    return (
        [n.id for n in state.path],
        list(state.stack),
        {
            p: [(e.kind, e.text, e.node_id, e.activation) for e in ev]
            for p, ev in state.events.items()
            if ev
        },
        {p: n for p, n in state.activations.items() if n},
        [(t.speaker, t.text, t.node_id) for t in state.transcript],
        state.steps_in_run,
        {p: n.id for p, n in state.greetings.items()},
        state.next,
    )


async def test_a_walk_up_to_any_earlier_step_reads_as_deriving_that_path_afresh() -> None:
    from personaweb.personas.persona import basic_messages, render_events
    from personaweb.personas.state import derive

    def answer(request):  # type: ignore[no-untyped-def]
        if request.schema is None:
            return f"line {len(request.messages)}"
        props = request.schema["properties"]
        message = props["message"].get("enum", ["go on"])[0]
        return decide(props["action"]["enum"][0], props["to"]["enum"][0], message)

    model = ScriptedChatModel()
    model.default = answer
    root = dialogue_hierarchy(SARA)
    engine = Engine(root, MemoryStore(), model, RunConfig(mode=Mode.REVIEW))
    leaf = await engine.run_autonomous("Who are you?")
    first = await engine.advance((await engine.send("And where from?", leaf.id)).id)
    await engine.reject(first.id)
    second = await engine.advance(first.id)
    child = await engine.process_proposed_response(second.id)
    assert child is not None
    feedback = await engine.feedback(child.id, "shorter")
    again = await engine.advance(feedback.id)
    edited = await engine.edit(again.id, "An edited line.")
    waiting = await engine.advance(edited.id)
    leaf = await engine.approve_turn(waiting.id)
    leaf = await engine.run_autonomous("Goodbye.", leaf.id)

    path = await engine.store.path(leaf.id)
    walk = engine.walk  # the run's own walk: its event lists carry what was rendered of them
    assert walk is not None and walk.leaf_id == leaf.id
    kinds = {n.kind for n in path}
    assert {NodeKind.FEEDBACK, NodeKind.EDIT, NodeKind.PROPOSAL} <= kinds
    for k, node in enumerate(path):
        earlier = walk.up_to(node.id)
        fresh = derive(path[: k + 1], root.path)
        assert _reading(earlier.state) == _reading(fresh), k
        for persona, events in fresh.events.items():
            assert render_events(earlier.state.history(persona), basic_messages) == (
                render_events(events, basic_messages)
            ), (k, persona)
        # and it walks on as a fresh walk would
        if k + 1 < len(path):
            earlier.push(path[k + 1])
            assert _reading(earlier.state) == _reading(derive(path[: k + 2], root.path)), k
    assert _reading(walk.state) == _reading(derive(path, root.path))


async def test_moving_to_another_branch_walks_only_where_it_parts_from_the_walk() -> None:
    """state() of a leaf on another branch reads as deriving its path afresh, but derives
    nothing for a branch the engine was on before, and otherwise walks only the nodes below
    where the two branches part (a long session's branch switch)."""
    from personaweb.personas.state import PathWalk, derive

    model = ScriptedChatModel()
    model.default = lambda request: decide("reply", "caller", "A new answer.")  # the branch
    for turn in range(6):
        script_dialogue_turn(model, f"raw {turn}", f"styled {turn}")
    root = dialogue_hierarchy(SARA)
    store = MemoryStore()
    engine = Engine(root, store, model)
    leaf = None
    for turn in range(6):
        leaf = await engine.run_autonomous(f"Line {turn}", leaf.id if leaf else None)
    old_leaf = leaf
    path = await store.path(old_leaf.id)
    # Branch at the fourth turn's message: a new branch, then back to the old leaf.
    fourth = [n for n in path if n.sender == "user"][3]
    branched = await engine.branch(fourth.id)
    assert engine.walk is not None and engine.walk.leaf_id == branched.id
    branch_path = await store.path(branched.id)
    # derive walks too: what the states must read as, made before pushes are counted
    on_old, on_branch = _reading(derive(path, root.path)), _reading(derive(branch_path, root.path))
    pushed: list[str] = []
    reads: list[str] = []
    push, read = PathWalk.push, store.path

    def counting(self, node):  # type: ignore[no-untyped-def]
        pushed.append(node.id)
        return push(self, node)

    async def reading(node_id: str) -> list[Node]:
        reads.append(node_id)
        return await read(node_id)

    PathWalk.push = counting  # type: ignore[method-assign]
    store.path = reading  # type: ignore[method-assign]
    try:
        # Back and forth between branches this engine was on: from memory.
        assert _reading(await engine.state(old_leaf.id)) == on_old
        assert _reading(await engine.state(branched.id)) == on_branch
        assert pushed == [] and reads == []
        # A branch it was not on: read, and walked from where it parts.
        engine._earlier_walks.clear()
        state = await engine.state(old_leaf.id)
    finally:
        PathWalk.push = push  # type: ignore[method-assign]
    assert _reading(state) == on_old
    at = [n.id for n in path].index(fourth.id)
    assert pushed == [n.id for n in path[at + 1 :]]  # not the root, nor the turns above
    assert reads == [old_leaf.id]


async def test_a_node_changed_on_a_branch_left_behind_reads_as_changed_on_return() -> None:
    """The kept state of a branch the engine left is dropped when a node on it changes: a
    proposal waiting there, rejected from elsewhere, reads as rejected on the way back."""
    from personaweb.personas.state import derive

    model = ScriptedChatModel()
    model.default = lambda request: decide("reply", "caller", "An answer.")
    root = dialogue_hierarchy(SARA)
    store = MemoryStore()
    engine = Engine(root, store, model, RunConfig(mode=Mode.REVIEW, guided=False))
    first = await engine.send("Hello.")
    waiting = await engine.advance(first.id)
    assert waiting.status is NodeStatus.PROPOSED
    other = await engine.branch(waiting.id)  # a sibling proposal: the engine moves there
    assert engine.walk is not None and engine.walk.leaf_id == other.id
    await engine.reject(waiting.id)
    state = await engine.state(waiting.id)
    assert state.path[-1].status is NodeStatus.REJECTED
    assert _reading(state) == _reading(derive(await store.path(waiting.id), root.path))
