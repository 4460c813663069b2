"""The fault suite: every way a model server lets PersonaWeb down, in autonomous mode, review
mode and a group chat, over real HTTP (the openai SDK against the scripted server).

Each test runs one clean turn, then a turn whose targeted call meets the fault, then takes the
engine's own way back once the fault is gone (retry, or continue for a reply the token limit
cut). Whatever the fault:

- the run ends (a guard timeout only catches a hang; no test asserts on wall-clock time);
- a failure is a visible, retryable error node, never a proposal holding partial text; a reply
  cut by `length` is a proposal marked truncated that offers `continue`;
- retrying succeeds once the fault is gone;
- no node written before the fault changes, whatever happens after it.

Faults that are not failures (no usage, a slow first token within the deadline, a transient
error the call's own retry absorbs) give a normal reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from personaweb.llm.calls import RetryPolicy
from personaweb.llm.config import EndpointConfig
from personaweb.llm.openai_model import OpenAIChatModel
from personaweb.llm.scripted_server import Broken, Delayed, ScriptedOpenAIServer, ServerError
from personaweb.personas import (
    Engine,
    MemoryStore,
    Mode,
    NextKind,
    Node,
    NodeKind,
    NodeStatus,
    PathState,
    ResponseDrivenPersona,
    RunConfig,
    SimpleCharacter,
    allowed_actions,
    dialogue_hierarchy,
)
from personaweb.personas.group import (
    GROUP_MAX_STEPS,
    GroupDirector,
    GroupSettings,
    group_hierarchy,
)
from personaweb.personas.heat import PolicySettings, ReplyPolicy, TurnOrder
from personaweb.personas.tree import PROPOSAL_KINDS, UNFINISHED
from tests.faults import FAULTS, Fault, FaultyLLM, Target, not_json, targeted
from tests.faults import fault as by_id
from tests.scripted_replies import dialogue_responder, group_responder

GUARD_S = 30.0
"""Longer than any run here takes: reaching it means a run hung (the test then fails)."""

# --- the settings ------------------------------------------------------------------------------

SARA = SimpleCharacter(
    name="Sara Wilcox",
    description="A noblewoman who wants her husband crowned.",
    personality="Cold, commanding.",
    sample_lines=["Screw your courage to the sticking place."],
)
ANN = SimpleCharacter("Ann Archer", description="A cheerful archer.", sample_lines=["Aim true!"])
BOB = SimpleCharacter("Bob Baker", description="A grumpy baker.", sample_lines=["Hmph. Bread."])


@dataclass(frozen=True)
class Setting:
    """Where the fault happens: a kind of session and the way a person runs it."""

    name: str
    build: Callable[[], ResponseDrivenPersona]
    mode: Mode
    play: Callable[[dict[str, Any]], str]
    turns: tuple[tuple[str, dict[str, Any]], ...]
    """The user's two messages (the second meets the fault), with their data."""
    speakers: tuple[str, str]
    """Who answers each message: the top persona, or the character the user picked."""
    max_steps: int = RunConfig.max_steps

    @property
    def review(self) -> bool:
        return self.mode is Mode.REVIEW


def _group() -> ResponseDrivenPersona:
    # Manual order: the user picks who answers, so each turn is one character's whole
    # nested hierarchy (orchestrator, responder, rewriter) under the director.
    settings = GroupSettings(order=TurnOrder.MANUAL)
    return group_hierarchy([("ann", ANN), ("bob", BOB)], settings, strategy="nested")


SETTINGS = [
    Setting(
        "autonomous",
        lambda: dialogue_hierarchy(SARA),
        Mode.AUTONOMOUS,
        dialogue_responder,
        (("Who are you?", {}), ("And what do you want?", {})),
        ("orchestrator", "orchestrator"),
    ),
    Setting(
        "review",
        lambda: dialogue_hierarchy(SARA),
        Mode.REVIEW,
        dialogue_responder,
        (("Who are you?", {}), ("And what do you want?", {})),
        ("orchestrator", "orchestrator"),
    ),
    Setting(
        "group",
        _group,
        Mode.AUTONOMOUS,
        group_responder,
        (("Bob, fresh bread today?", {"speaker": "bob"}), ("Ann, any luck?", {"speaker": "ann"})),
        ("director/bob", "director/ann"),
        max_steps=GROUP_MAX_STEPS,
    ),
]


# --- watching the tree -------------------------------------------------------------------------


class Snapshots:
    """An observer that keeps, for every node, the whole tree as it was just before it."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.before: dict[str, dict[str, dict[str, Any]]] = {}
        self.notes: list[str] = []
        """What nodes said while they waited ("retrying (2/2) after HTTP 429, ...")."""

    async def node_changed(self, node: Node, state: PathState | None, created: bool) -> None:
        if created:
            self.before[node.id] = {n.id: n.to_dict() for n in self.store.all() if n.id != node.id}
        if node.data.get("status_note"):
            self.notes.append(str(node.data["status_note"]))

    async def tokens(self, node: Node, text: str) -> None:
        return None

    def changed_since(self, node_id: str) -> list[str]:
        """Nodes that existed before `node_id` and are not as they were then."""
        now = {n.id: n.to_dict() for n in self.store.all()}
        return [i for i, old in self.before[node_id].items() if now.get(i) != old]


class Sleeps:
    """A retry policy's sleep that only records the waits (the deadline clock stays real)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def ticking() -> Callable[[], float]:
    now = [1_000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    return clock


@dataclass
class Rig:
    engine: Engine
    server: ScriptedOpenAIServer
    llm: FaultyLLM
    snapshots: Snapshots
    sleeps: Sleeps
    setting: Setting

    @property
    def store(self) -> MemoryStore:
        assert isinstance(self.engine.store, MemoryStore)
        return self.engine.store


@asynccontextmanager
async def rigged(setting: Setting, fault: Fault) -> AsyncIterator[Rig]:
    """An engine for the setting over real HTTP to a scripted server that plays the setting's
    hierarchy, with the fault ready to switch on."""
    llm = FaultyLLM(setting.play)
    with ScriptedOpenAIServer(responder=llm) as server:
        config = EndpointConfig(server.base_url, "sk-test", "scripted-model", embedded=False)
        model = OpenAIChatModel(config)
        root = setting.build()
        if isinstance(root, GroupDirector) and fault.target == "prepass":
            root.settings = replace(
                root.settings,
                prepass_profile=replace(root.settings.prepass_profile, timeout_s=fault.deadline_s),
            )
        for persona in root.walk():
            if targeted(persona, fault.target):
                persona.profile = replace(persona.profile, timeout_s=fault.deadline_s)
        store = MemoryStore()
        snapshots = Snapshots(store)
        sleeps = Sleeps()
        run = RunConfig(
            mode=setting.mode,
            max_steps=setting.max_steps,
            # Small and quick: two tries, waits recorded rather than slept.
            retry=RetryPolicy(attempts=2, first_delay_s=0.05, sleep=sleeps),
        )
        engine = Engine(root, store, model, run, snapshots, clock=ticking())
        yield Rig(engine, server, llm, snapshots, sleeps, setting)
        await model.aclose()
        # A mistake in the script must fail the test, never pass for product behaviour.
        assert server.script_errors == []
        assert server.unexpected == 0


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async with rigged(request.param, request.node.callspec.params["fault"]) as made:
        yield made


async def until_it_waits(rig: Rig, leaf_id: str) -> Node:
    """Run until the run must wait. In review mode a person approves each proposal, except
    one the token limit cut (they would continue it instead)."""

    async def run() -> Node:
        engine = rig.engine
        if not rig.setting.review:
            return await engine.advance(leaf_id, stop=False)
        leaf = await engine.advance(leaf_id)
        while (await engine.state(leaf.id)).next.kind is NextKind.REVIEW:
            if leaf.data.get("truncated"):
                break
            approved = await engine.approve(leaf.id)
            leaf = await engine.advance(approved.id)
        return leaf

    return await asyncio.wait_for(run(), GUARD_S)


async def turn(rig: Rig, index: int, parent_id: str | None) -> Node:
    text, data = rig.setting.turns[index]
    inbound = await rig.engine.send(text, parent_id, data=data)
    return await until_it_waits(rig, inbound.id)


async def last_line(rig: Rig, leaf: Node, index: int) -> str:
    """The last line said in a finished turn (a group's director may pass after it)."""
    state = await rig.engine.state(leaf.id)
    assert state.next.kind is NextKind.DONE, state.next
    line = [line for line in state.transcript if not line.passed][-1]
    assert line.speaker == rig.setting.speakers[index]
    return line.text


def of_target(node: Node, target: Target) -> bool:
    if target == "line":
        return node.persona.endswith("/responder")
    return node.persona in ("orchestrator", "director/ann")


# --- the suite ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rig", SETTINGS, ids=[s.name for s in SETTINGS], indirect=True)
@pytest.mark.parametrize("fault", FAULTS, ids=[f"{f.target}-{f.name}" for f in FAULTS])
async def test_a_fault_ends_the_run_visibly_and_the_engine_recovers(rig: Rig, fault: Fault) -> None:
    engine = rig.engine
    first = await turn(rig, 0, None)
    clean_line = await last_line(rig, first, 0)
    assert clean_line.startswith("[styled] ")

    rig.llm.fault = fault
    leaf = await turn(rig, 1, first.id)
    assert rig.llm.hits >= 1, "the fault never met a call"
    news = [n for n in rig.store.all() if n.seq > first.seq]
    assert not [n for n in news if n.status in UNFINISHED]  # nothing left pending or streaming

    if fault.outcome == "reply":
        line = await last_line(rig, leaf, 1)
        assert line.startswith("[styled] ") and line != clean_line
        assert not [n for n in news if n.kind is NodeKind.ERROR]
        first_hit = next(
            n for n in news if n.kind is NodeKind.PROPOSAL and of_target(n, fault.target)
        )
        hit = await engine.store.get(first_hit.id)
        assert hit.kind is NodeKind.PROPOSAL and hit.status is NodeStatus.APPROVED
        assert hit.call is not None
        if fault.name == "no-usage":
            assert hit.call.completion_tokens is None or hit.call.usage_estimated
        if fault.name.endswith("-once"):
            # The call's own retry (or re-ask) absorbed it; the record shows the earlier try.
            assert len(hit.call.attempts) == fault.times
        assert rig.snapshots.changed_since(news[0].id) == []
        return

    if fault.outcome == "failure":
        faulted = await engine.store.get(leaf.id)
        assert of_target(faulted, fault.target)
        assert (faulted.kind, faulted.status) == (NodeKind.ERROR, NodeStatus.FAILED)
        assert faulted.data["retryable"] is True
        assert fault.says in faulted.content, faulted.content
        assert allowed_actions(faulted, has_children=False) == {"retry"}
        assert (await engine.state(faulted.id)).next.kind is NextKind.FAILED
        # What arrived before a cut is kept for inspection on the call, never as a proposal.
        partial = faulted.call.response_text if faulted.call is not None else ""
        assert bool(partial) is fault.partial
        if partial:
            assert not [n for n in news if n.kind in PROPOSAL_KINDS and partial in n.content]
        if fault.name == "429-retry-after":
            # The server's Retry-After was honoured, and the node said why it waited.
            assert 2.0 in rig.sleeps.waits
            assert "retrying (2/2) after HTTP 429, Retry-After 2 s" in rig.snapshots.notes
    else:
        cut = [n for n in news if n.data.get("truncated")]
        assert len(cut) == 1
        faulted = await engine.store.get(cut[0].id)
        assert of_target(faulted, fault.target)
        assert faulted.kind is NodeKind.PROPOSAL and faulted.call is not None
        assert faulted.call.finish_reason == "length"
        has_children = bool(await engine.store.children(faulted.id))
        assert "continue" in allowed_actions(faulted, has_children)
        if rig.setting.review:
            assert leaf.id == faulted.id and faulted.status is NodeStatus.PROPOSED
    frozen = await engine.store.get(faulted.id)

    rig.llm.fault = None
    if fault.outcome == "failure":
        again = await asyncio.wait_for(engine.retry(faulted.id), GUARD_S)
    else:
        again = await asyncio.wait_for(engine.continue_reply(faulted.id), GUARD_S)
        assert again.content.startswith(faulted.content) and len(again.content) > len(
            faulted.content
        )
        assert again.data.get("continued_from") == faulted.id
    assert again.parent_id == faulted.parent_id and again.id != faulted.id
    assert again.kind is NodeKind.PROPOSAL and again.status is NodeStatus.PROPOSED
    end = await until_it_waits(rig, again.id)
    line = await last_line(rig, end, 1)
    assert line.startswith("[styled] ") and line != clean_line

    assert not [n for n in rig.store.all() if n.status in UNFINISHED]
    # Nothing written before the fault changed, and the faulted node stayed as it was.
    assert rig.snapshots.changed_since(faulted.id) == []
    assert (await engine.store.get(faulted.id)).to_dict() == frozen.to_dict()


# --- what only some places have ----------------------------------------------------------------


async def test_a_fresh_endpoints_first_decision_waits_for_retry_after_and_recovers() -> None:
    # The first structured call to an endpoint probes its dialect: a 429 there must be paced
    # like any other (one request per try, the Retry-After honoured), not re-sent at once.
    fault = by_id("decision-429-retry-after")
    async with rigged(SETTINGS[0], fault) as rig:
        rig.llm.fault = fault
        failed = await turn(rig, 0, None)
        assert (failed.kind, failed.persona) == (NodeKind.ERROR, "orchestrator")
        assert "after 2 tries" in failed.content
        assert rig.llm.hits == 2 and rig.sleeps.waits == [2.0]

        rig.llm.fault = None
        again = await asyncio.wait_for(rig.engine.retry(failed.id), GUARD_S)
        end = await until_it_waits(rig, again.id)
        assert (await last_line(rig, end, 0)).startswith("[styled] ")
        assert rig.snapshots.changed_since(failed.id) == []


PREPASS_GROUP = Setting(
    "group-prepass",
    lambda: group_hierarchy(
        [("ann", ANN), ("bob", BOB)],
        GroupSettings(policy=PolicySettings(default=ReplyPolicy.PREPASS)),
        strategy="single",
    ),
    Mode.AUTONOMOUS,
    group_responder,
    (("Ann, any luck today?", {}), ("Ann, and tomorrow?", {})),
    ("director/ann", "director/ann"),
    max_steps=GROUP_MAX_STEPS,
)
PREPASS_FAULTS = [
    Fault("reset", "prepass", lambda t: Broken(t, cut_after=1, cut="reset"), "failure"),
    Fault("500", "prepass", lambda t: ServerError(500), "failure"),
    Fault("invalid-json", "prepass", not_json, "failure"),
    Fault("past-deadline", "prepass", lambda t: Delayed(2.5, t), "failure", deadline_s=1.0),
]


@pytest.mark.parametrize("fault", PREPASS_FAULTS, ids=[f.name for f in PREPASS_FAULTS])
async def test_a_failed_pre_pass_is_a_silent_decision_that_says_why_and_a_replay_recovers(
    fault: Fault,
) -> None:
    # A pre-pass decides only whether a character speaks: when it fails, the character stays
    # silent (by design, see heat/prepass.py) and its decision node says why, with the call.
    # The turn ends; replaying the user's message once the fault is gone lets Ann answer.
    async with rigged(PREPASS_GROUP, fault) as rig:
        first = await turn(rig, 0, None)
        assert (await last_line(rig, first, 0)).startswith("Ann Archer here")

        rig.llm.fault = fault
        leaf = await turn(rig, 1, first.id)
        state = await rig.engine.state(leaf.id)
        assert state.next.kind is NextKind.DONE and leaf.persona == "director"
        inbound = next(n for n in reversed(state.path) if n.kind is NodeKind.INBOUND)
        decisions = [n for n in state.path if n.kind is NodeKind.DECISION and n.seq > inbound.seq]
        assert decisions and all("pre-pass" in n.content for n in decisions)
        assert all("stays silent" in n.content for n in decisions)
        ann = await rig.engine.store.get(decisions[0].id)
        assert "failed" in ann.content or "unusable" in ann.content, ann.content
        assert ann.call is not None  # what was sent, and what (if anything) came back

        rig.llm.fault = None
        assert allowed_actions(inbound, has_children=True) == {"branch"}
        again = await asyncio.wait_for(rig.engine.branch(inbound.id), GUARD_S)
        end = await until_it_waits(rig, again.id)
        assert (await last_line(rig, end, 1)).startswith("Ann Archer here")
        assert rig.snapshots.changed_since(decisions[0].id) == []
