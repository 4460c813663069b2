"""The ORM store (core Nodes <-> rows), run recovery, token batching and the local account."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from personaweb.llm.types import CallRecord
from personaweb.personas import Action, Node, NodeKind, NodeStatus
from personaweb.personas.tree import NodeNotFound
from personaweb.web import recovery, runs
from personaweb.web.live import Broadcaster, Tokens
from personaweb.web.models import NodeRow, Run, RunStatus
from personaweb.web.store import OrmStore, load_tree

pytestmark = pytest.mark.django_db(transaction=True)


def node(id_: str, parent: str | None, **kw) -> Node:
    kw.setdefault("persona", "orchestrator")
    kw.setdefault("kind", NodeKind.INBOUND)
    return Node(id=id_ * 32 if len(id_) == 1 else id_, parent_id=parent, **kw)


async def test_the_store_round_trips_every_field(alice, make_session):
    session = await sync_to_async(make_session)(alice)
    store = OrmStore(session.pk)
    root = await store.add(node("a", None, content="hi", sender="user"))
    call = CallRecord(
        messages=[{"role": "user", "content": "hi"}],
        model="m",
        temperature=0.3,
        max_tokens=9,
        prompt_tokens=4,
        completion_tokens=2,
        finish_reason="stop",
    )
    proposal = node(
        "b",
        root.id,
        kind=NodeKind.PROPOSAL,
        status=NodeStatus.PROPOSED,
        action=Action.DELEGATE,
        target="responder",
        content="go",
        call=call,
        data={"score": 0.5},
    )
    await store.add(proposal)
    assert (root.seq, proposal.seq) == (1, 2)
    again = await store.get(proposal.id)
    assert again == proposal
    again.status = NodeStatus.APPROVED
    await store.update(again)
    assert (await store.get(proposal.id)).status is NodeStatus.APPROVED
    assert [n.id for n in await store.path(proposal.id)] == [root.id, proposal.id]
    assert [n.id for n in await store.children(root.id)] == [proposal.id]
    with pytest.raises(NodeNotFound):
        await store.get("f" * 32)
    with pytest.raises(NodeNotFound):
        await store.add(node("c", "e" * 32))


async def test_a_store_sees_only_its_own_session(alice, make_session):
    mine = await sync_to_async(make_session)(alice)
    other = await sync_to_async(make_session)(alice)
    await OrmStore(mine.pk).add(node("a", None))
    with pytest.raises(NodeNotFound):
        await OrmStore(other.pk).get("a" * 32)
    with pytest.raises(NodeNotFound):
        await OrmStore(other.pk).path("a" * 32)


def test_the_path_of_a_deep_tree_is_one_query(alice, make_session, django_assert_num_queries):
    session = make_session(alice)
    nodes, parent = [], None
    for i in range(500):
        nodes.append(node(f"{i:032x}", parent))
        parent = nodes[-1].id
    OrmStore(session.pk).add_many(nodes)
    with django_assert_num_queries(1):
        path = OrmStore(session.pk)._path(parent)
    assert [n.id for n in path] == [n.id for n in nodes]
    tree = load_tree(session)
    assert len(tree) == 500 and tree.latest_leaf() == parent


def test_start_up_marks_unfinished_nodes_of_dead_runs_interrupted(alice, make_session):
    session = make_session(alice)
    OrmStore(session.pk).add_many(
        [
            node("a", None),
            node("b", "a" * 32, kind=NodeKind.PROPOSAL, status=NodeStatus.STREAMING),
        ]
    )
    Run.objects.create(session=session, start_node="a" * 32, worker="old-process:1")
    recovery.ensure_recovered()
    assert NodeRow.objects.get(pk="b" * 32).status == "interrupted"
    assert Run.objects.get().status == RunStatus.INTERRUPTED


class FakeTimers:
    """The event loop's clock and timers, moved by hand: batching checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.due: list[tuple[float, object]] = []

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, callback) -> object:
        self.due.append((self.now + delay, callback))
        return callback  # a handle: the broadcaster only needs one to know a timer is set

    def advance(self, seconds: float) -> None:
        self.now += seconds
        ready = [(t, cb) for t, cb in self.due if t <= self.now]
        self.due = [(t, cb) for t, cb in self.due if t > self.now]
        for _t, callback in ready:
            callback()


def recording_broadcaster(timers: FakeTimers) -> tuple[Broadcaster, list[object]]:
    sent: list[object] = []

    async def render(items) -> str:
        sent.extend(items)
        return "frame"

    async def send(html: str) -> None:
        return None

    broadcaster = Broadcaster(
        1, None, render=render, send=send, clock=timers.clock, call_later=timers.call_later
    )
    return broadcaster, sent


async def test_tokens_are_batched_not_sent_one_frame_each(settings):
    settings.TOKEN_BATCH_MS = 50
    timers = FakeTimers()
    broadcaster, sent = recording_broadcaster(timers)
    streaming = node("a", None, kind=NodeKind.PROPOSAL, status=NodeStatus.STREAMING, seq=1)
    text = ""
    for i in range(200):  # 200 tokens, one a millisecond
        text += f"t{i} "
        await broadcaster.tokens(streaming, text)
        timers.advance(0.001)
    timers.advance(0.05)
    await broadcaster.close()
    batches = [item for item in sent if isinstance(item, Tokens)]
    # The first token at once, then one batch every 50 ms: 200 ms of tokens make 5 frames.
    assert len(batches) == 5
    assert batches[-1].text == text  # the last batch carries everything


async def test_a_node_change_drops_older_pending_tokens(settings):
    settings.TOKEN_BATCH_MS = 50
    timers = FakeTimers()
    broadcaster, sent = recording_broadcaster(timers)
    streaming = node("a", None, kind=NodeKind.PROPOSAL, status=NodeStatus.STREAMING, seq=5)
    await broadcaster.tokens(streaming, "one")
    await broadcaster.tokens(streaming, "one two")  # waits for its batch
    streaming.status = NodeStatus.PROPOSED
    await broadcaster.node_changed(streaming, None, False)
    timers.advance(0.1)  # the batch's timer fires: nothing is pending any more
    await broadcaster.close()
    assert [type(item).__name__ for item in sent] == ["Tokens", "Change"]
    assert sent[0].text == "one"


async def test_stopping_a_run_interrupts_its_unfinished_node(alice, make_session, settings):
    session = await sync_to_async(make_session)(alice)
    store = OrmStore(session.pk)
    await store.add(node("a", None))
    started = asyncio.Event()

    async def hang(engine, first):
        await engine.store.add(
            node("b", "a" * 32, kind=NodeKind.PROPOSAL, status=NodeStatus.PENDING)
        )
        started.set()
        await asyncio.Event().wait()  # forever, until stopped

    await runs.start(session, "test", hang)
    await asyncio.wait_for(started.wait(), 10)
    assert await sync_to_async(runs.is_running)(session.pk)
    assert await runs.stop(session.pk)
    assert (await store.get("b" * 32)).status is NodeStatus.INTERRUPTED
    run = await Run.objects.aget(session=session)
    assert run.status == RunStatus.INTERRUPTED
    assert not await sync_to_async(runs.is_running)(session.pk)


async def test_one_run_at_a_time_per_session(alice, make_session):
    session = await sync_to_async(make_session)(alice)
    release = asyncio.Event()

    async def wait_for_release(engine, first):
        await release.wait()
        return await engine.store.add(node("a", None))

    await runs.start(session, "test", wait_for_release)
    with pytest.raises(runs.RunBusy):
        await runs.start(session, "test", wait_for_release)
    release.set()
    await runs.wait(session.pk)


async def test_simultaneous_starts_give_one_run(alice, make_session):
    # Two clicks at once (or two tabs): both requests arrive before either run exists.
    session = await sync_to_async(make_session)(alice)

    async def job(engine, first):
        return await engine.store.add(node("b", None))

    results = await asyncio.gather(
        *(runs.start(session, "test", job) for _ in range(4)), return_exceptions=True
    )
    started = [r for r in results if not isinstance(r, BaseException)]
    assert len(started) == 1
    assert all(isinstance(r, runs.RunBusy) for r in results if isinstance(r, BaseException))
    await runs.wait(session.pk)


def test_a_second_running_row_for_a_session_is_refused_by_the_database(alice, make_session):
    # The guard that also holds across processes sharing the database.
    from django.db import IntegrityError, transaction

    session = make_session(alice)
    Run.objects.create(session=session, worker="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(session=session, worker="b")


async def test_a_run_whose_process_died_is_reclaimed_after_its_heartbeat_goes_stale(
    alice, make_session, settings
):
    from datetime import timedelta

    from django.utils import timezone

    settings.RUN_STALE_AFTER = 60
    session = await sync_to_async(make_session)(alice)
    old = timezone.now() - timedelta(minutes=10)
    await sync_to_async(Run.objects.create)(session=session, worker="dead:1", heartbeat_at=old)

    async def job(engine, first):
        return await engine.store.add(node("c", None))

    await runs.start(session, "test", job)  # not RunBusy: the dead run was reclaimed
    await runs.wait(session.pk)
    statuses = await sync_to_async(list)(
        Run.objects.filter(session=session).order_by("pk").values_list("status", flat=True)
    )
    assert statuses[0] == "interrupted"


def test_ensure_local_user_creates_one_account_and_a_private_file(tmp_path, settings, capsys):
    from django.contrib.auth.models import User

    settings.LOCAL_LOGIN_FILE = tmp_path / ".personaweb-login"
    call_command("ensure_local_user")
    out = capsys.readouterr().out
    user = User.objects.get()
    text = settings.LOCAL_LOGIN_FILE.read_text()
    password = text.split("password: ")[1].strip()
    assert user.check_password(password) and user.is_superuser
    assert password in out
    assert stat.S_IMODE(os.stat(settings.LOCAL_LOGIN_FILE).st_mode) == 0o600
    call_command("ensure_local_user")  # a second run changes nothing
    assert User.objects.count() == 1 and User.objects.get().check_password(password)
    assert password in capsys.readouterr().out


def test_env_helpers_fail_loudly_on_bad_values(monkeypatch):
    from personaweb.settings import env_bool, env_int

    monkeypatch.setenv("X_BOOL", "maybe")
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env_bool("X_BOOL")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_BOOL", "Yes")
    assert env_bool("X_BOOL") is True
    assert env_int("X_UNSET", 7) == 7


def test_system_checks_warn_about_sqlite_with_several_processes(settings):
    from personaweb.web.checks import check_scale_out

    settings.REDIS_URL = "redis://localhost:6379/0"
    settings.RUN_STALE_AFTER = 0
    ids = {w.id for w in check_scale_out()}
    # The scale-out suite runs this file on PostgreSQL too, where W003 must stay quiet.
    sqlite = str(settings.DATABASES["default"]["ENGINE"]).endswith("sqlite3")
    assert ids == {"personaweb.W004"} | ({"personaweb.W003"} if sqlite else set())


async def test_a_prompt_is_stored_as_its_difference_from_the_last_and_read_back_whole(
    alice, make_session
):
    from personaweb.web.store import PROMPT_FULL_EVERY, load_node

    session = await sync_to_async(make_session)(alice)
    store = OrmStore(session.pk)
    parent = await store.add(node("r", None, sender="user", content="hi"))
    sheet = {"role": "system", "content": "You are Sara. " * 50}
    history: list[dict] = []
    prompts: dict[str, list[dict]] = {}
    for turn in range(PROMPT_FULL_EVERY + 3):
        history = [*history, {"role": "user", "content": f"line {turn}"}]
        messages = [sheet, *history]
        call = CallRecord(messages=messages, model="m", temperature=0.7, max_tokens=9)
        proposal = await store.add(
            node(f"{turn:032x}", parent.id, kind=NodeKind.PROPOSAL, status=NodeStatus.PENDING)
        )
        proposal.status, proposal.call = NodeStatus.PROPOSED, call
        await store.update(proposal)
        prompts[proposal.id] = messages
        parent = proposal
    rows = {r.id: r.call async for r in NodeRow.objects.filter(session=session).exclude(call=None)}
    stored = [rows[f"{t:032x}"] for t in range(PROMPT_FULL_EVERY + 3)]
    # The first is whole, the next ones hold only what is new, and every 16th is whole again.
    assert "prompt_from" not in stored[0] or stored[0]["prompt_from"] is None
    assert stored[1]["prompt_from"]["kept"] == 2 and len(stored[1]["messages"]) == 1
    assert not stored[PROMPT_FULL_EVERY].get("prompt_from")
    # Read back through the store, every prompt is exactly what was sent.
    for node_id, messages in prompts.items():
        loaded = await sync_to_async(load_node)(session.pk, node_id)
        assert loaded is not None and loaded[0].call is not None
        assert loaded[0].call.messages == messages and loaded[0].call.prompt_from is None
        assert (await store.get(node_id)).call.messages == messages
    exported = await sync_to_async(store.all_nodes)()
    assert {n.id: n.call.messages for n in exported if n.call} == prompts


async def test_a_remembered_prompt_whose_node_is_gone_is_not_linked_to(alice, make_session):
    from personaweb.web.store import load_node

    first = await sync_to_async(make_session)(alice)
    call = CallRecord(
        messages=[{"role": "user", "content": "x" * 500}], model="m", temperature=0.7, max_tokens=9
    )
    a = await OrmStore(first.pk).add(node("a", None, kind=NodeKind.PROPOSAL, call=call))
    await NodeRow.objects.filter(pk=a.id).adelete()
    # A new store (a new run) of the same session, whose remembered prompt is gone.
    again = OrmStore(first.pk)
    b = await again.add(node("b", None, kind=NodeKind.PROPOSAL, call=call))
    raw = await NodeRow.objects.filter(pk=b.id).values_list("call", flat=True).aget()
    assert not raw.get("prompt_from")
    loaded = await sync_to_async(load_node)(first.pk, b.id)
    assert loaded is not None and loaded[0].call.messages == call.messages
