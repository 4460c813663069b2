"""The rules of repeated samples (compare/samples.py), on hand-made nodes: no database."""

from __future__ import annotations

from personaweb.compare import samples as rules
from personaweb.personas.tree import Action, Node, NodeKind, NodeStatus

LINE = Node("line", None, "orchestrator", NodeKind.INBOUND, content="Hello?", sender="user")


def top(node_id: str, *, mark: int | None = None, seq: int = 0) -> Node:
    data = {rules.SAMPLE_KEY: mark} if mark is not None else {}
    return Node(node_id, LINE.id, "orchestrator", NodeKind.PROPOSAL, data=data, seq=seq)


def reply(node_id: str, status: NodeStatus = NodeStatus.APPROVED) -> Node:
    return Node(node_id, "x", "orchestrator", NodeKind.PROPOSAL, status=status, action=Action.REPLY)


def test_sample_one_is_the_newest_unmarked_child_that_answered() -> None:
    old, cut_off = top("old"), top("cut")
    # A sample branch cut off by a crash before it got its mark looks unmarked and is newer:
    # it must not displace the reply that sample 1 already gave.
    turns = [
        (old, reply("old-end")),
        (
            cut_off,
            Node("cut", LINE.id, "orchestrator", NodeKind.PROPOSAL, status=NodeStatus.INTERRUPTED),
        ),
    ]
    assert rules.choose_first(LINE, turns) is old


def test_while_nothing_answered_the_newest_attempt_is_sample_one() -> None:
    failed, retry = top("failed"), top("retry")
    turns = [(failed, failed), (retry, retry)]
    assert rules.choose_first(LINE, turns) is retry
    assert rules.choose_first(LINE, []) is None


def test_a_later_answered_replay_becomes_sample_one() -> None:
    first, replay = top("first"), top("replay")
    # A person's replay from the debugger carries no mark: the conversation follows it.
    turns = [(first, reply("a")), (replay, reply("b"))]
    assert rules.choose_first(LINE, turns) is replay


def test_other_samples_keep_the_newest_node_per_mark_and_ignore_the_rest() -> None:
    children = [
        top("s1"),
        top("s2-failed", mark=2),
        top("s3", mark=3),
        top("s2-retry", mark=2),
        top("s9", mark=9),  # beyond the comparison's samples
        Node("odd", LINE.id, "orchestrator", NodeKind.PROPOSAL, data={rules.SAMPLE_KEY: True}),
    ]
    found = rules.other_samples(children, samples=3)
    assert {mark: node.id for mark, node in found.items()} == {2: "s2-retry", 3: "s3"}
    assert [c.id for c in rules.unmarked(children)] == ["s1", "odd"]


def test_a_turn_ends_short_of_the_next_line() -> None:
    next_line = Node("l2", "end", "orchestrator", NodeKind.INBOUND, sender="user")
    feedback = Node("fb", "end", "orchestrator", NodeKind.FEEDBACK)
    assert rules.turn_step([next_line]) is None
    assert rules.next_line([next_line]) is next_line
    assert rules.turn_step([next_line, feedback]) is feedback


def test_a_reply_only_answers_once_it_is_applied() -> None:
    assert rules.answered(LINE, reply("r"))
    assert not rules.answered(LINE, reply("r", NodeStatus.PROPOSED))
    child = Node(
        "c",
        "x",
        "orchestrator/responder",
        NodeKind.PROPOSAL,
        status=NodeStatus.APPROVED,
        action=Action.REPLY,
    )
    assert not rules.answered(LINE, child)  # a child's reply goes to its parent, not the user


def test_the_default_is_one_sample_on_the_embedded_model_and_more_elsewhere() -> None:
    assert rules.default_samples(embedded=True) == 1
    assert rules.default_samples(embedded=False) > 1
