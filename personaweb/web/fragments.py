"""HTML for the debugger's panes and live updates, rendered from templates/web/panes.html.

Both the HTTP views and the WebSocket consumer call these, so a node renders the same way
whichever way it reaches the browser. Functions here are synchronous and touch the database;
the consumer calls them through database_sync_to_async.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from personaweb.personas import Node, NodeKind
from personaweb.web import runs
from personaweb.web.models import Annotation, ChatSession, Mode
from personaweb.web.panes import TREE_WINDOW, Panes, Row, build_panes, inspector, make_row
from personaweb.web.store import load_node, load_tree

PANES = "web/panes.html"
GROUP_PANES = "web/group_panes.html"
GROUP_PARTS = ("heat", "policies")


def base_url(session: ChatSession) -> str:
    return reverse("session", args=[session.pk])


def panes_context(session: ChatSession, *, window: int = TREE_WINDOW, **extra) -> dict:
    panes = build_panes(session, load_tree(session), runs.is_running(session.pk), window)
    return context(session, panes, window=window, **extra)


def context(session: ChatSession, panes: Panes, *, window: int = TREE_WINDOW, **extra) -> dict:
    return {
        "p": panes,
        "base": base_url(session),
        "modes": Mode.choices,
        "more_window": window * 4,
        **extra,
    }


def render(part: str, ctx: dict) -> str:
    return render_to_string(f"{PANES}#{part}", ctx)


def group_parts(ctx: dict) -> str:
    """A group chat's heat pane and policy table (nothing for other sessions)."""
    if ctx["p"].group is None:
        return ""
    return "".join(render_to_string(f"{GROUP_PANES}#{part}", ctx) for part in GROUP_PARTS)


def inspector_context(session: ChatSession, node_id: str):
    loaded = load_node(session.pk, node_id)
    if loaded is None:
        return None
    node, has_children = loaded
    notes = list(Annotation.objects.filter(node_id=node_id).select_related("author"))
    return inspector(node, has_children, notes, edit_targets(session, node))


def edit_targets(session: ChatSession, node: Node) -> tuple[str, ...]:
    """The children a delegating persona's proposal could be sent to instead (for the edit
    form); nothing for personas without children."""
    if not node.is_proposal:
        return ()
    try:
        persona = runs.hierarchy_for(session).find(node.persona)
    except (KeyError, ValueError):
        return ()
    return tuple(persona.children)


def inspector_html(session: ChatSession, node_id: str | None, **flags) -> str:
    ins = inspector_context(session, node_id) if node_id else None
    return render("inspector", {"ins": ins, "base": base_url(session), **flags})


def resync(session: ChatSession) -> str:
    """Every shared pane, as out-of-band swaps: sent on (re)connect and after big changes."""
    ctx = panes_context(session, oob=True)
    html = "".join(render(part, ctx) for part in ("runbar", "personas", "transcript", "tree"))
    return html + group_parts(ctx)


def side_panes(
    session: ChatSession, parts=("runbar", "personas", "transcript"), *, group: bool = False
) -> str:
    """The side panes, out-of-band; with `group`, a group chat's heat and policy panes too."""
    ctx = panes_context(session, oob=True)
    html = "".join(render(part, ctx) for part in parts)
    return html + group_parts(ctx) if group else html


def run_panes(session: ChatSession) -> str:
    """What a run starting or ending changes: the side panes and the group panes."""
    return side_panes(session, group=True)


def node_changed(session: ChatSession, node_id: str, created: bool) -> str:
    """The fragments one node change needs: its row (inserted when new, or the whole tree when
    it opened a branch), the side panes, and its inspector if that is open."""
    from personaweb.web.models import NodeRow

    loaded = load_node(session.pk, node_id)
    if loaded is None:
        return ""
    node, has_children = loaded
    kids = NodeRow.objects.filter(session_id=session.pk, parent_id=node.id).count()
    siblings = (
        NodeRow.objects.filter(session_id=session.pk, parent_id=node.parent_id).count()
        if node.parent_id
        else 2  # a root: re-render the tree (first message, or a new root)
    )
    base = base_url(session)
    # A decision moves a character's heat: the heat pane and the policy table follow it.
    group = node.kind is NodeKind.DECISION
    if siblings > 1 or kids > 1:
        # A new branch changes the shape of the tree: send it whole (bounded by the window).
        html = resync(session)
    else:
        row = make_row(node)
        ctx = {"row": row, "base": base, "live": True}
        if created:
            ctx["follow_from"] = node.parent_id
            html = render("insert", ctx) + side_panes(session, group=group)
        else:
            html = render("row", {**ctx, "oob": True}) + side_panes(session, group=group)
    ins = inspector(node, has_children, _notes(node.id), edit_targets(session, node))
    html += render("inspector", {"ins": ins, "base": base, "oob": True, "live": True})
    return html


def _notes(node_id: str) -> list:
    return list(Annotation.objects.filter(node_id=node_id).select_related("author"))


def tokens(session_id: int, node_data: dict) -> str:
    """Streamed text so far, for the node's row and its inspector (no database access)."""
    node = Node.from_dict(node_data)
    row = Row(node=node, depth=node.persona.count("/"))
    return render("tokens", {"row": row})


def flash(message: str) -> str:
    return render("flash", {"message": message})
