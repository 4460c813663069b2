"""The core's tree-file reader (the console's --replay and the web's import both use it):
whatever the text, a TreeFormatError or a tree, never another exception."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personaweb.personas.tree import EXPORT_FORMAT, TreeFormatError, import_tree

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
node_fields = st.fixed_dictionaries(
    {"id": values, "persona": values, "kind": st.sampled_from(["inbound", "proposal"]) | values},
    optional={
        "parent_id": values,
        "status": values,
        "action": values,
        "call": values,
        "data": values,
        "created_at": values,
        "seq": values,
    },
)


def read(text: str) -> None:
    # A refusal is an answer; any other exception escapes and fails the test.
    with contextlib.suppress(TreeFormatError):
        import_tree(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(node_fields, max_size=5))
def test_it_reads_or_refuses_any_list_of_nodes(nodes):
    read(json.dumps({"format": EXPORT_FORMAT, "nodes": nodes}))


@settings(max_examples=100, deadline=None)
@given(values)
def test_it_reads_or_refuses_any_json(doc):
    read(json.dumps(doc))


@pytest.mark.parametrize(
    ("node", "words"),
    [
        ({"created_at": 10**400}, "bad node"),  # float() of it overflows
        ({"seq": 1e300 * 1e10}, "bad node"),  # int(inf) overflows
        ({"parent_id": ["a"]}, "parent_id"),  # unhashable: it used to escape as a TypeError
        ({"parent_id": {}}, "parent_id"),
    ],
)
def test_it_refuses_what_used_to_escape_as_other_errors(node, words):
    doc = {
        "format": EXPORT_FORMAT,
        "nodes": [{"id": "a", "persona": "x", "kind": "inbound", **node}],
    }
    with pytest.raises(TreeFormatError, match=words):
        import_tree(json.dumps(doc))


def test_it_refuses_json_nested_too_deeply_for_python():
    with pytest.raises(TreeFormatError, match="nested too deeply"):
        import_tree("[" * 100_000 + "]" * 100_000)
