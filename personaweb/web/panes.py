"""What the debugger's panes show, computed from core Nodes; templates only lay it out.

The page and the WebSocket consumer both build their contexts here and render the same
partials (templates/web/panes.html), so a node looks the same whichever way it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from personaweb.personas import Node, NodeKind, NodeStatus, PersonaInfo, derive
from personaweb.personas.engine import allowed_actions
from personaweb.personas.state import NextKind, PathState
from personaweb.web.groups import GroupView, group_view
from personaweb.web.models import ChatSession, NodeRow
from personaweb.web.runs import hierarchy_for
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


def persona_rows(root: PersonaInfo, state: PathState | None, running: bool) -> list[PersonaRow]:
    """The hierarchy with each persona's live status, derived from the active path."""
    working: dict[str, str] = {}
    stack = set(state.stack) if state else set()
    if state and state.leaf is not None:
        leaf = state.leaf
        nxt = state.next
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
    return [
        PersonaRow(
            info=info,
            depth=depth,
            status=working.get(info.path, "idle"),
            on_stack=info.path in stack,
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


def transcript_lines(
    state: PathState | None,
    window: int = TRANSCRIPT_WINDOW,
    names: dict[str, str] | None = None,
    director: str = "",
    truncated: frozenset[str] = frozenset(),
):
    """The last `window` lines, each under its speaker's name (a group chat's characters by
        their own names), and how many earlier lines were left out. A pass by a group's `director`
    means nobody (else) had anything to say."""
    lines = state.transcript if state else []
    names = names or {}
    shown = [
        ShownLine(
            speaker=line.speaker,
            name="you" if line.speaker == "user" else names.get(line.speaker, line.speaker),
            text=line.text,
            node_id=line.node_id,
            passed=line.passed,
            silence="(nobody else speaks)" if line.speaker == director else "(says nothing)",
            truncated=line.node_id in truncated,
        )
        for line in lines[-window:]
    ]
    return shown, max(0, len(lines) - window)


@dataclass
class Panes:
    """Everything the four panes of one session need."""

    session: ChatSession
    tree: Tree
    root: PersonaInfo
    path: list[Node]
    state: PathState | None
    running: bool
    rows: list[Row]
    hidden: int
    personas: list[PersonaRow]
    transcript: list[ShownLine]
    transcript_hidden: int
    group: GroupView | None = None
    """Group chats only: members, heat and policy costs."""

    @property
    def active_leaf(self) -> Node | None:
        return self.path[-1] if self.path else None

    @property
    def waiting(self) -> str:
        """The proposal waiting for a person's review on the active branch ('' if none)."""
        if self.running or self.state is None or self.state.next.kind is not NextKind.REVIEW:
            return ""
        return self.state.next.node_id

    @property
    def can_send(self) -> bool:
        if self.running:
            return False
        return self.state is None or self.state.next.kind in (
            NextKind.DONE,
            NextKind.FAILED,
            NextKind.EMPTY,
        )

    @property
    def next_label(self) -> str:
        if self.state is None:
            return "waiting for your first message"
        nxt = self.state.next
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
    """All panes from one loaded tree (no further queries)."""
    persona_root = hierarchy_for(session)
    leaf_id = tree.active_leaf(session.active_node)
    path = tree.path(leaf_id) if leaf_id else []
    if session.hierarchy == "group" and path:
        # A group chat reads node data (relays, decisions) and calls (policy costs) off its
        # path, which the tree leaves out: load the active path whole, in one more query.
        path = [to_node(r) for r in path_rows(session.pk, path[-1].id, with_call=True)]
    state = derive(path, persona_root.path, persona_root.speakers()) if path else None
    rows, hidden = tree_rows(tree, path, window)
    if session.hierarchy != "group" and state is not None:
        spoken = {line.node_id for line in state.transcript[-TRANSCRIPT_WINDOW:]}
        shown = {row.node.id: row.node for row in rows}
        shown.update((n.id, n) for n in path if n.id in spoken)
        attach_data(session.pk, list(shown.values()))
    truncated = frozenset(n.id for n in path if n.data.get("truncated"))
    info = persona_root.describe()
    names = {i.path: i.display_name for _, i in info.walk()}
    group = None
    if session.hierarchy == "group":
        group = group_view(
            session.group_settings or {}, info, path, state.transcript if state else []
        )
        names.update(group.names)
    director = info.path if group is not None else ""
    lines, lines_hidden = transcript_lines(
        state, names=names, director=director, truncated=truncated
    )
    return Panes(
        session=session,
        tree=tree,
        root=info,
        path=path,
        state=state,
        running=running,
        rows=rows,
        hidden=hidden,
        personas=persona_rows(info, state, running),
        transcript=lines,
        transcript_hidden=lines_hidden,
        group=group,
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
