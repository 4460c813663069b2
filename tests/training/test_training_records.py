"""The node shapes that make (and don't make) a training record, on hand-built trees: pure,
no database (records.py's rules, one test each)."""

from __future__ import annotations

import itertools

from personaweb.llm.types import CallRecord
from personaweb.personas import Action, Node, NodeKind, NodeStatus
from personaweb.training.records import Context, preference_pairs, supervised_examples

CTX = Context(session=7, character="sara")
_seq = itertools.count(1)


def prompt(text: str) -> CallRecord:
    return CallRecord(
        messages=[{"role": "user", "content": text}], model="m", temperature=0.7, max_tokens=64
    )


def node(
    id_: str,
    parent: str | None,
    kind: NodeKind,
    status: NodeStatus = NodeStatus.RECORDED,
    *,
    content: str = "",
    persona: str = "p",
    call: bool | None = None,
    **data: object,
) -> Node:
    llm = kind is NodeKind.PROPOSAL if call is None else call
    return Node(
        id=id_,
        parent_id=parent,
        persona=persona,
        kind=kind,
        status=status,
        content=content or id_,
        action=Action.REPLY if kind in (NodeKind.PROPOSAL, NodeKind.EDIT) else None,
        call=prompt(f"prompt of {id_}") if llm else None,
        data=dict(data),
        seq=next(_seq),
    )


def inbound() -> Node:
    return node("in", None, NodeKind.INBOUND, content="hello")


def pairs(nodes: list[Node]) -> list[tuple[str, str, str]]:
    return [(p["rule"], p["rejected_node"], p["chosen_node"]) for p in preference_pairs(nodes, CTX)]


def test_a_rejected_proposal_loses_to_the_next_take_once_that_is_approved():
    tree = [
        inbound(),
        node("a", "in", NodeKind.PROPOSAL, NodeStatus.REJECTED),
        node("b", "a", NodeKind.PROPOSAL, NodeStatus.APPROVED),
    ]
    assert pairs(tree) == [("rejected", "a", "b")]
    record = next(preference_pairs(tree, CTX))
    assert record["prompt"] == [{"role": "user", "content": "prompt of a"}]
    assert record["chosen"] == [{"role": "assistant", "content": "b"}]


def test_a_rejection_with_no_accepted_take_below_makes_no_pair():
    tree = [
        inbound(),
        node("a", "in", NodeKind.PROPOSAL, NodeStatus.REJECTED),
        node("b", "a", NodeKind.PROPOSAL, NodeStatus.PROPOSED),  # still waiting
    ]
    assert pairs(tree) == []


def test_every_take_of_a_chain_loses_to_the_one_finally_kept():
    tree = [
        inbound(),
        node("a", "in", NodeKind.PROPOSAL, NodeStatus.REJECTED),
        node("b", "a", NodeKind.PROPOSAL, NodeStatus.SUPERSEDED),
        node("f", "b", NodeKind.FEEDBACK, content="shorter"),
        node("c", "f", NodeKind.PROPOSAL, NodeStatus.APPROVED),
    ]
    assert pairs(tree) == [("rejected", "a", "c"), ("feedback", "b", "c")]
    feedback = next(p for p in preference_pairs(tree, CTX) if p["rule"] == "feedback")
    assert feedback["feedback"] == "shorter"


def test_an_edit_beats_what_it_replaced_with_the_replaced_ones_prompt():
    tree = [
        inbound(),
        node("a", "in", NodeKind.PROPOSAL, NodeStatus.SUPERSEDED),
        node("e", "a", NodeKind.EDIT, NodeStatus.APPROVED, content="mine", edited_from="a"),
    ]
    assert pairs(tree) == [("edit", "a", "e")]
    [example] = [x for x in supervised_examples(tree, CTX) if x["node"] == "e"]
    assert example["messages"][0]["content"] == "prompt of a" and example["source"] == "edit"


def test_an_edit_that_changes_nothing_says_nothing():
    tree = [
        inbound(),
        node("a", "in", NodeKind.PROPOSAL, NodeStatus.SUPERSEDED, content="same"),
        node("e", "a", NodeKind.EDIT, NodeStatus.APPROVED, content="same"),
    ]
    assert pairs(tree) == []


def test_an_approved_branch_beats_a_rejected_sibling_and_an_older_waiting_one():
    tree = [
        inbound(),
        node("old", "in", NodeKind.PROPOSAL, NodeStatus.PROPOSED),
        node("no", "in", NodeKind.PROPOSAL, NodeStatus.REJECTED),
        node("yes", "in", NodeKind.PROPOSAL, NodeStatus.APPROVED),
        node("newer", "in", NodeKind.PROPOSAL, NodeStatus.PROPOSED),  # may await its review
        node("other", "in", NodeKind.PROPOSAL, NodeStatus.REJECTED, persona="q"),
    ]
    assert sorted(pairs(tree)) == [("branch", "no", "yes"), ("branch", "old", "yes")]


def test_two_approved_siblings_make_no_pair():
    tree = [
        inbound(),
        node("a", "in", NodeKind.PROPOSAL, NodeStatus.APPROVED),
        node("b", "in", NodeKind.PROPOSAL, NodeStatus.APPROVED),
    ]
    assert pairs(tree) == []


def test_supervised_examples_are_what_a_person_approved_unless_autonomous_ones_are_asked_for():
    tree = [
        inbound(),
        # The engine records a person's approve or reject on the node ("human").
        node(
            "mine",
            "in",
            NodeKind.PROPOSAL,
            NodeStatus.APPROVED,
            human=[{"action": "approve", "at": 1.0}],
        ),
        node("auto", "mine", NodeKind.PROPOSAL, NodeStatus.APPROVED),
        node(
            "lost",
            "auto",
            NodeKind.PROPOSAL,
            NodeStatus.REJECTED,
            human=[{"action": "reject", "at": 2.0}],
        ),
    ]
    assert [x["node"] for x in supervised_examples(tree, CTX)] == ["mine"]
    assert [x["node"] for x in supervised_examples(tree, CTX, auto=True)] == ["mine", "auto"]


def test_a_group_chats_records_name_the_character_whose_personas_made_them():
    ctx = Context(session=1, characters={"director/ann": "ann", "director/bob": "bob"})
    tree = [
        inbound(),
        node("a", "in", NodeKind.PROPOSAL, NodeStatus.REJECTED, persona="director/bob/responder"),
        node("b", "a", NodeKind.PROPOSAL, NodeStatus.APPROVED, persona="director/bob/responder"),
    ]
    [record] = preference_pairs(tree, ctx)
    assert record["character"] == "bob" and record["persona"] == "director/bob/responder"
