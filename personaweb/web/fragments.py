"""HTML of the debugger's panes for HTTP responses and the WebSocket's connect-time resync,
rendered from templates/web/panes.html. Live frames of runs are rendered by live.py from the
same partials, so a node looks the same whichever way it reaches the browser.

Functions here are synchronous and touch the database.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from personaweb.personas import Node, ResponseDrivenPersona
from personaweb.web import runs
from personaweb.web.building import hierarchy_for
from personaweb.web.models import Annotation, ChatSession, Mode
from personaweb.web.panes import TREE_WINDOW, Inspector, Panes, build_panes, inspector
from personaweb.web.store import load_node, load_tree

PANES = "web/panes.html"
GROUP_PANES = "web/group_panes.html"
GROUP_PARTS = ("heat", "policies")
SHARED_PANES = ("runbar", "personas", "transcript", "tree")


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
        "window": window,
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


def inspector_context(
    session: ChatSession, node_id: str, root: ResponseDrivenPersona | None = None
) -> Inspector | None:
    """The inspector of one node; `root`: the session's hierarchy if the caller has it."""
    loaded = load_node(session.pk, node_id)
    if loaded is None:
        return None
    node, has_children = loaded
    notes = list(Annotation.objects.filter(node_id=node_id).select_related("author"))
    return inspector(node, has_children, notes, edit_targets(session, node, root))


def edit_targets(
    session: ChatSession, node: Node, root: ResponseDrivenPersona | None = None
) -> tuple[str, ...]:
    """The children a delegating persona's proposal could be sent to instead (for the edit
    form); nothing for personas without children."""
    if not node.is_proposal:
        return ()
    try:
        persona = (root or hierarchy_for(session)).find(node.persona)
    except (KeyError, ValueError):
        return ()
    return tuple(persona.children)


def inspector_html(session: ChatSession, node_id: str | None, **flags) -> str:
    ins = inspector_context(session, node_id) if node_id else None
    return render("inspector", {"ins": ins, "base": base_url(session), **flags})


def resync(session: ChatSession, window: int = TREE_WINDOW) -> str:
    """Every shared pane, as out-of-band swaps: on (re)connect and when a browser is told to
    reload its panes. `window`: how many active-path rows the page shows."""
    ctx = panes_context(session, window=window, oob=True)
    return "".join(render(part, ctx) for part in SHARED_PANES) + group_parts(ctx)


def flash(message: str) -> str:
    return render("flash", {"message": message})
