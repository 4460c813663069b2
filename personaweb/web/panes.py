"""What the debugger's panes show, computed from core Nodes; templates only lay it out.

The page and the WebSocket consumer both build their contexts here and render the same
partials (templates/web/panes.html), so a node looks the same whichever way it arrived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from personaweb.personas import (
    Node,
    NodeKind,
    NodeStatus,
    PersonaInfo,
    ResponseDrivenPersona,
    derive,
)
from personaweb.personas.engine import allowed_actions
from personaweb.personas.state import USER, Next, NextKind, PathState, TranscriptLine
from personaweb.web.building import hierarchy_for, kind_of
from personaweb.web.groups import GroupView
from personaweb.web.models import ChatSession, NodeRow
from personaweb.web.store import Tree, path_rows, to_node

# One glyph and one name per status, used by every pane (CSS colours them by `st-<status>`).
GLYPHS = {
    "idle": ("○", "idle"),
    "pending": ("●", "thinking"),
    "streaming": ("◐", "streaming"),
    "proposed": ("◆", "waiting for review"),
    "approved": ("✓", "approved"),
    "rejected": ("✗", "rejected"),
    "superseded": ("↺", "superseded"),
    "failed": ("⚠", "failed"),
    "interrupted": ("⏸", "interrupted"),
    "recorded": ("•", "recorded"),
}

TREE_WINDOW = 150
"""Active-path rows the step tree shows at first; older ones load on demand."""
TRANSCRIPT_WINDOW = 80
"""Transcript lines shown at first."""


@dataclass
class Alt:
    """Another branch leaving the active path at some node: shown as one clickable line."""

    node: Node
    size: int
    """Steps in that branch."""
    leaf: Node
    """Where it ends."""


@dataclass
class Row:
    """One line of the step tree."""

    node: Node
    depth: int
    """Delegation depth of the node's persona (0: the top persona)."""
    alts: list[Alt] = field(default_factory=list)
    """Other branches that leave the active path right after this node."""
    branch_no: int = 0
    """Which child of its parent this node is (1-based) when the parent has several."""
    branch_count: int = 0


@dataclass
class PersonaRow:
    info: PersonaInfo
    depth: int
    status: str
    """A GLYPHS key."""
    on_stack: bool
    """Active in the current run (it or a child is working)."""


def depth_of(node: Node) -> int:
    return node.persona.count("/")


def make_row(node: Node, tree: Tree | None = None, active_child: str | None = None) -> Row:
    row = Row(node=node, depth=depth_of(node))
    if tree is None:
        return row
    siblings = tree.children.get(node.parent_id, [])
    if len(siblings) > 1:
        row.branch_count = len(siblings)
        row.branch_no = next(i for i, s in enumerate(siblings, 1) if s.id == node.id)
    for kid in tree.children.get(node.id, []):
        if kid.id != active_child:
            leaf = tree.by_id[tree.newest_leaf_below(kid.id)]
            row.alts.append(Alt(node=kid, size=tree.subtree_size(kid.id), leaf=leaf))
    return row


def tree_rows(tree: Tree, path: list[Node], window: int = TREE_WINDOW) -> tuple[list[Row], int]:
    """Rows for the active path's last `window` nodes (with the branches leaving it), and how
    many earlier nodes were left out."""
    hidden = max(0, len(path) - window)
    rows = []
    for i in range(hidden, len(path)):
        active_child = path[i + 1].id if i + 1 < len(path) else None
        rows.append(make_row(path[i], tree, active_child))
    return rows, hidden


def persona_rows(
    root: PersonaInfo, leaf: Node | None, nxt: Next | None, stack: Sequence[str], running: bool
) -> list[PersonaRow]:
    """The hierarchy with each persona's live status, from the active path's leaf and next
    step."""
    working: dict[str, str] = {}
    if leaf is not None and nxt is not None:
        if leaf.status in (NodeStatus.PENDING, NodeStatus.STREAMING):
            working[leaf.persona] = leaf.status.value
        elif nxt.kind is NextKind.REVIEW:
            working[nxt.persona] = "proposed"
        elif nxt.kind is NextKind.FAILED:
            working[leaf.persona] = "failed"
        elif nxt.kind is NextKind.INTERRUPTED:
            working[leaf.persona] = "interrupted"
        elif running and nxt.kind in (NextKind.PROPOSE, NextKind.DELEGATE):
            working[nxt.persona] = "pending"
    on_stack = set(stack)
    return [
        PersonaRow(
            info=info,
            depth=depth,
            status=working.get(info.path, "idle"),
            on_stack=info.path in on_stack,
        )
        for depth, info in root.walk()
    ]


@dataclass(frozen=True)
class ShownLine:
    """A transcript line as the page shows it: with its speaker's name."""

    speaker: str
    """"user" or a persona path."""
    name: str
    text: str
    node_id: str
    passed: bool
    silence: str = "(says nothing)"
    """What a pass reads as."""
    truncated: bool = False
    """The reply was cut off by the token limit."""


def names_of(root: PersonaInfo) -> dict[str, str]:
    """Display names by persona path (a group chat's characters by their own names)."""
    return {info.path: info.display_name for _, info in root.walk()}


def shown_lines(
    lines: Sequence[TranscriptLine], names: Mapping[str, str], director: str = ""
) -> list[ShownLine]:
    """Transcript lines under their speakers' names. A pass by a group's `director` means
    nobody (else) had anything to say."""
    return [
        ShownLine(
            speaker=line.speaker,
            name="you" if line.speaker == USER else names.get(line.speaker, line.speaker),
            text=line.text,
            node_id=line.node_id,
            passed=line.passed,
            silence="(nobody else speaks)" if line.speaker == director else "(says nothing)",
            truncated=line.truncated,
        )
        for line in lines
    ]


@dataclass
class Side:
    """What the runbar, the personas pane and the transcript show, from the active path's
    leaf, next step, stack and transcript: a page computes them from the whole tree, a live
    frame from the run's walk. Templates read them as `p`."""

    session: ChatSession
    root: PersonaInfo
    leaf: Node | None
    next: Next | None
    stack: tuple[str, ...]
    transcript: list[ShownLine]
    transcript_hidden: int
    running: bool
    group: GroupView | None = None
    """Group chats only: members, heat and policy costs (on pages and decision frames)."""

    @property
    def personas(self) -> list[PersonaRow]:
        return persona_rows(self.root, self.leaf, self.next, self.stack, self.running)

    @property
    def active_leaf(self) -> Node | None:
        return self.leaf

    @property
    def waiting(self) -> str:
        """The proposal waiting for a person's review on the active branch ('' if none)."""
        if self.running or self.next is None or self.next.kind is not NextKind.REVIEW:
            return ""
        return self.next.node_id

    @property
    def can_send(self) -> bool:
        if self.running:
            return False
        return self.next is None or self.next.kind in (
            NextKind.DONE,
            NextKind.FAILED,
            NextKind.EMPTY,
        )

    @property
    def next_label(self) -> str:
        nxt = self.next
        if nxt is None:
            return "waiting for your first message"
        return {
            NextKind.EMPTY: "waiting for your first message",
            NextKind.PROPOSE: f"{nxt.persona} proposes next",
            NextKind.REVIEW: f"waiting for review of {nxt.persona}",
            NextKind.DELEGATE: f"delivering to {nxt.persona}",
            NextKind.DONE: "done: your turn",
            NextKind.FAILED: f"{nxt.persona} failed: retry it, or send a new message",
            NextKind.BUSY: f"{nxt.persona} is working",
            NextKind.INTERRUPTED: f"{nxt.persona} was interrupted: resume it",
        }[nxt.kind]


def side_of(
    session: ChatSession,
    root: PersonaInfo,
    state: PathState | None,
    running: bool,
    *,
    director: str = "",
    group: GroupView | None = None,
) -> Side:
    """The side panes from a path state (the last TRANSCRIPT_WINDOW lines of it)."""
    lines = state.transcript if state is not None else []
    names = names_of(root)
    return Side(
        session=session,
        root=root,
        leaf=state.leaf if state is not None else None,
        next=state.next if state is not None else None,
        stack=tuple(state.stack) if state is not None else (),
        transcript=shown_lines(lines[-TRANSCRIPT_WINDOW:], names, director),
        transcript_hidden=max(0, len(lines) - TRANSCRIPT_WINDOW),
        running=running,
        group=group,
    )


@dataclass
class Panes(Side):
    """Everything the four panes of one session's page need."""

    tree: Tree | None = None
    hierarchy: ResponseDrivenPersona | None = None
    """The session's persona tree, built once for the page (the inspector's edit form reads
    a delegating persona's children from it)."""
    path: list[Node] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    hidden: int = 0
    """Active-path nodes above the shown window."""


def attach_data(session_id: int, nodes: list[Node]) -> None:
    """Give the shown rows their `data` (alignment scores, edit origins, ...) in one query:
    the tree leaves it out, and decoding it for every node of a large tree would be waste."""
    if not nodes:
        return
    by_id = {n.id: n for n in nodes}
    rows = NodeRow.objects.filter(session_id=session_id, id__in=list(by_id)).exclude(data={})
    for node_id, data in rows.values_list("id", "data"):
        by_id[node_id].data = dict(data or {})


def build_panes(session: ChatSession, tree: Tree, running: bool, window: int = TREE_WINDOW):
    """All panes from one loaded tree (and one more query for the data of what is shown)."""
    persona_root = hierarchy_for(session)
    kind = kind_of(session)
    leaf_id = tree.active_leaf(session.active_node)
    path = tree.path(leaf_id) if leaf_id else []
    if kind.own_panes and path:
        # Its own panes read node data and calls off the path, which the tree leaves out:
        # load the active path whole, in one more query.
        path = [to_node(r) for r in path_rows(session.pk, path[-1].id, with_call=True)]
    state = derive(path, persona_root.path, persona_root.speakers()) if path else None
    rows, hidden = tree_rows(tree, path, window)
    if not kind.own_panes and state is not None:
        # The rows and transcript lines shown need their nodes' data (scores, cut-off marks).
        spoken = {line.node_id for line in state.transcript[-TRANSCRIPT_WINDOW:]}
        shown = {row.node.id: row.node for row in rows}
        shown.update((n.id, n) for n in path if n.id in spoken)
        attach_data(session.pk, list(shown.values()))
        cut = {i for i, n in shown.items() if n.data.get("truncated")}
        state.transcript[-TRANSCRIPT_WINDOW:] = [
            replace(line, truncated=line.node_id in cut)
            for line in state.transcript[-TRANSCRIPT_WINDOW:]
        ]
    info = persona_root.describe()
    group = kind.view(session, info, path, state.transcript if state else [])
    side = side_of(session, info, state, running, director=kind.director, group=group)
    return Panes(
        **{f: getattr(side, f) for f in Side.__dataclass_fields__},
        tree=tree,
        hierarchy=persona_root,
        path=path,
        rows=rows,
        hidden=hidden,
    )


@dataclass
class Inspector:
    node: Node
    has_children: bool
    allowed: frozenset[str]
    annotations: list
    depth: int
    speaker: str
    targets: tuple[str, ...] = ()
    """Children of the proposing persona: where an edit may send the proposal instead."""

    @property
    def is_llm(self) -> bool:
        return self.node.call is not None

    @property
    def total_tokens(self) -> int | None:
        call = self.node.call
        if call is None or call.prompt_tokens is None or call.completion_tokens is None:
            return None
        return call.prompt_tokens + call.completion_tokens


def inspector(
    node: Node, has_children: bool, annotations: list, targets: tuple[str, ...] = ()
) -> Inspector:
    allowed = allowed_actions(node, has_children)
    speaker = node.sender if node.kind is NodeKind.INBOUND else node.persona
    return Inspector(
        node=node,
        has_children=has_children,
        allowed=allowed,
        annotations=annotations,
        depth=depth_of(node),
        speaker=speaker,
        targets=targets,
    )
