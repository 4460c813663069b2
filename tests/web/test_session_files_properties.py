"""Property tests for session import: whatever the file, never a server error and never a
half-made session; and what does import, shows."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personaweb.personas import Node, NodeKind
from personaweb.web.models import Character, ChatSession, NodeRow
from personaweb.web.store import OrmStore
from tests.web.test_session_files import IMPORT, export, tree_of, upload

pytestmark = pytest.mark.django_db(transaction=True)

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values at the edges of what JSON, Python, the database and the pages take.
NASTY = [
    float("nan"),
    float("inf"),
    -float("inf"),
    10**400,
    2**63,
    -1,
    "",
    "\x00",
    "\ud800",
    "x" * 301,
    json.loads("[" * 70 + "]" * 70),  # deeper than the import takes
    {"messages": [], "model": "m", "temperature": 0.5, "max_tokens": 5},
    {"messages": "x", "model": 1, "temperature": "hot", "max_tokens": 5, "attempts": [1]},
    {"numbers": 5, "heard": [], "character": {}, "policy": "bogus"},
    "a/b/c",
    "0" * 32,
]
edge_values = st.sampled_from(NASTY) | json_values
NODE_FIELDS = [
    "id",
    "parent_id",
    "persona",
    "kind",
    "status",
    "content",
    "action",
    "target",
    "sender",
    "call",
    "data",
    "created_at",
    "seq",
]
META_FIELDS = [
    "title",
    "hierarchy",
    "strategy",
    "mode",
    "guided",
    "breakpoints",
    "profiles",
    "active_node",
    "character",
    "character_sheet",
    "group_settings",
    "member_sheets",
]


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A few edits to an export: a field set to any JSON value, a field dropped, a node
    duplicated, dropped or moved, a parent pointed elsewhere, a meta field changed."""
    edit = st.one_of(
        st.tuples(st.just("set"), st.integers(0, 20), st.sampled_from(NODE_FIELDS), edge_values),
        st.tuples(st.just("drop"), st.integers(0, 20), st.sampled_from(NODE_FIELDS)),
        st.tuples(st.just("copy"), st.integers(0, 20)),
        st.tuples(st.just("remove"), st.integers(0, 20)),
        st.tuples(st.just("move"), st.integers(0, 20), st.integers(0, 20)),
        st.tuples(st.just("reparent"), st.integers(0, 20), st.integers(0, 20)),
        st.tuples(st.just("meta"), st.sampled_from(META_FIELDS), edge_values),
        st.tuples(st.just("unmeta"), st.sampled_from(META_FIELDS)),
    )
    return draw(st.lists(edit, min_size=1, max_size=4))


def mutate(doc: dict[str, Any], edits: list[tuple[Any, ...]]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    nodes = doc["nodes"]
    for edit in edits:
        op, *args = edit
        if op in ("set", "drop", "copy", "remove", "move", "reparent") and not nodes:
            continue
        i = args[0] % len(nodes) if op not in ("meta", "unmeta") else 0
        if op == "set":
            nodes[i][args[1]] = args[2]
        elif op == "drop":
            nodes[i].pop(args[1], None)
        elif op == "copy":
            nodes.append(copy.deepcopy(nodes[i]))
        elif op == "remove":
            nodes.pop(i)
        elif op == "move":
            nodes.insert(args[1] % len(nodes), nodes.pop(i))
        elif op == "reparent":
            nodes[i]["parent_id"] = nodes[args[1] % len(nodes)].get("id")
        elif op == "meta":
            doc["meta"][args[0]] = args[1]
        else:
            doc["meta"].pop(args[0], None)
    return doc


def counts() -> tuple[int, int, int]:
    return ChatSession.objects.count(), NodeRow.objects.count(), Character.objects.count()


def check_import(client, body: Any) -> None:
    """One upload: a 400 that left everything as it was, or a whole new session that shows."""
    before = counts()
    sessions = set(ChatSession.objects.values_list("pk", flat=True))
    characters = set(Character.objects.values_list("pk", flat=True))
    response = upload(client, body)  # a server error raises here and fails the test
    if response.status_code == 400:
        assert "Import refused" in response.content.decode()
        assert counts() == before
        return
    assert response.status_code == 302
    (new,) = ChatSession.objects.exclude(pk__in=sessions)
    nodes = list(NodeRow.objects.filter(session=new))
    sent = json.loads(body) if isinstance(body, str) else body
    assert len(nodes) == len(sent["nodes"])  # all of them, or (above) none
    assert client.get(new.get_absolute_url()).status_code == 200
    assert client.get(f"{new.get_absolute_url()}tree/").status_code == 200
    for row in nodes[:8]:
        assert client.get(f"{new.get_absolute_url()}inspect/{row.id}/").status_code == 200
    # Leave the database as it was, for the next example.
    new.delete()
    Character.objects.exclude(pk__in=characters).delete()


def group_session(owner, cast) -> ChatSession:
    """A group chat of two, after one message: the director's decision on who speaks."""
    session = ChatSession.objects.create(
        owner=owner,
        title="at the inn",
        hierarchy="group",
        strategy="single",
        mode="autonomous",
        members=[c.pk for c in cast[:2]],
        group_settings={"policy": "heuristic", "order": "natural", "turn_cap": 6},
    )
    heard = f"{session.pk:08x}{0:024x}"
    OrmStore(session.pk).add_many(
        [
            Node(heard, None, "director", NodeKind.INBOUND, content="Hi Ann", sender="user"),
            Node(
                f"{session.pk:08x}{1:024x}",
                heard,
                "director",
                NodeKind.DECISION,
                content="Ann speaks",
                data={
                    "character": "ann",
                    "speak": True,
                    "chosen": True,
                    "policy": "heuristic",
                    "heard": heard,
                    "reason": "named",
                    "numbers": {"heat": 0.9, "threshold": 0.5},
                },
            ),
            Node(
                f"{session.pk:08x}{2:024x}",
                f"{session.pk:08x}{1:024x}",
                "director/ann",
                NodeKind.INBOUND,
                content="Hi Ann",
                sender="director",
            ),
        ]
    )
    return session


@pytest.fixture(params=["dialogue", "group"])
def valid_export(request, client, alice, make_session, make_cast) -> dict[str, Any]:
    if request.param == "group":
        session = group_session(alice, make_cast(alice))
    else:
        session = make_session(alice)
        tree_of(session)
    client.force_login(alice)
    return export(client, session)


@PROPERTY
@given(body=json_values)
def test_arbitrary_json_is_refused_cleanly(client, valid_export, body):
    check_import(client, json.dumps(body))


@PROPERTY
@given(meta=st.dictionaries(st.sampled_from(META_FIELDS), edge_values, max_size=5))
def test_arbitrary_meta_never_breaks_the_import(client, valid_export, meta):
    check_import(client, {**valid_export, "meta": {**valid_export["meta"], **meta}})


@settings(PROPERTY, max_examples=100)
@given(edits=mutations())
def test_mutated_exports_import_whole_or_not_at_all(client, valid_export, edits):
    check_import(client, mutate(valid_export, edits))


def test_the_unmutated_export_imports(client, valid_export):
    # The base of the mutations is itself importable: the properties test both outcomes.
    check_import(client, valid_export)
    assert client.get(IMPORT).status_code == 200


def test_every_field_at_every_edge_value(client, valid_export):
    # Every pairing, not a sample: a random draw rarely lands on, say, NaN in created_at.
    for field in NODE_FIELDS:
        for value in NASTY:
            for i in (0, 3):  # the root, and a node with a call record
                check_import(client, mutate(valid_export, [("set", i, field, value)]))
    for field in META_FIELDS:
        for value in NASTY:
            check_import(client, mutate(valid_export, [("meta", field, value)]))
