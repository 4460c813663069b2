"""The debugger's HTTP side: pages, fragments and the actions a person takes.

Every view checks ownership (another user's session is a 404, like a missing one). Actions that
the node cannot take are refused with 409 and a plain-text reason, whatever the buttons say.
Views that start runs are async, so the run's task lives on the server's event loop.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from personaweb.personas import (
    export_tree,
)
from personaweb.web import actions, building, fragments, groups, recovery
from personaweb.web.access import (
    AuthedRequest,
    aowned_session,
    ensure_characters,
    owned_session,
    refuse,
)
from personaweb.web.downloads import attachment
from personaweb.web.ids import parse_pk
from personaweb.web.models import (
    Character,
    ChatSession,
    Hierarchy,
    Strategy,
)
from personaweb.web.panes import TREE_WINDOW
from personaweb.web.session_format import export_meta
from personaweb.web.store import OrmStore, load_tree

# --- home and new sessions --------------------------------------------------------------------


@require_GET
@login_required
def home(request: AuthedRequest) -> HttpResponse:
    recovery.ensure_recovered()
    ensure_characters(request.user)
    sessions = (
        ChatSession.objects.filter(owner=request.user)
        .select_related("character")
        .annotate(node_count=Count("nodes"))
    )
    characters = list(Character.objects.filter(owner=request.user))
    # The form opens on the first character, with the strategy its sheet asks for.
    first = characters[0] if characters else None
    strategy = building.character_strategy(first)
    return render(
        request,
        "web/home.html",
        {
            "sessions": sessions,
            "characters": characters,
            "persona_infos": actions.persona_infos("dialogue", strategy),
            **_strategy_context(first, strategy),
        },
    )


def _strategy_context(character: Character | None, strategy: str) -> dict[str, object]:
    return {"strategies": Strategy.choices, "strategy": strategy, "strategy_from": character}


@require_GET
@login_required
def profile_fields(request: AuthedRequest) -> HttpResponse:
    kind = actions.session_kind(request.GET)
    if kind is None:
        return refuse("unknown hierarchy or strategy", 400)
    return render(
        request, "web/home.html#profile-fields", {"persona_infos": actions.persona_infos(*kind)}
    )


@require_GET
@login_required
def strategy_field(request: AuthedRequest) -> HttpResponse:
    """The new-session form's strategy, set to the chosen character's (re-rendered when the
    character changes), with the persona fields of that strategy swapped in beside it."""
    character = None
    if (pk := parse_pk(request.GET.get("character", ""))) is not None:
        character = Character.objects.filter(owner=request.user, pk=pk).first()
    strategy = building.character_strategy(character)
    kind = actions.session_kind({**request.GET.dict(), "strategy": strategy})
    if kind is None:
        return refuse("unknown hierarchy", 400)
    field = render(request, "web/home.html#strategy-field", _strategy_context(character, strategy))
    personas = render(
        request,
        "web/home.html#profile-fields",
        {"persona_infos": actions.persona_infos(*kind), "oob": True},
    )
    return HttpResponse(field.content + personas.content)


@require_POST
@login_required
def session_new(request: AuthedRequest) -> HttpResponse:
    try:
        session = actions.create_session(request.user, request.POST)
    except actions.Refused as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        return refuse(exc.message, exc.status)
    return redirect(session)


# --- the debugger page -----------------------------------------------------------------------


def _window(request: AuthedRequest) -> int:
    try:
        return max(TREE_WINDOW, min(int(request.GET.get("window", TREE_WINDOW)), 100_000))
    except ValueError:
        return TREE_WINDOW


@require_GET
@login_required
def session_page(request: AuthedRequest, pk: int) -> HttpResponse:
    recovery.ensure_recovered()
    session = owned_session(request, pk)
    selected = request.GET.get("node", "")
    window = _window(request)
    ctx = fragments.panes_context(session, window=window, selected=selected)
    if not selected and ctx["p"].waiting:
        # Review mode: open the proposal that waits for this person.
        selected = ctx["selected"] = ctx["p"].waiting
    ctx["ins"] = (
        fragments.inspector_context(session, selected, ctx["p"].hierarchy) if selected else None
    )
    if session.hierarchy == Hierarchy.GROUP:
        ctx.update(groups.page_context(session))
    return render(request, "web/session.html", ctx)


@require_GET
@login_required
def tree_pane(request: AuthedRequest, pk: int) -> HttpResponse:
    session = owned_session(request, pk)
    ctx = fragments.panes_context(session, window=_window(request))
    return HttpResponse(fragments.render("tree", ctx))


@require_GET
@login_required
def panes(request: AuthedRequest, pk: int) -> HttpResponse:
    """Every shared pane as out-of-band swaps, for the page's window: what a browser fetches
    when a live frame tells it to reload (a new branch, a frame too big to send)."""
    session = owned_session(request, pk)
    return HttpResponse(fragments.resync(session, _window(request)))


@require_GET
@login_required
def inspect(request: AuthedRequest, pk: int, node_id: str) -> HttpResponse:
    session = owned_session(request, pk)
    ins = fragments.inspector_context(session, node_id)
    if ins is None:
        raise Http404("no such node")
    return HttpResponse(
        fragments.render("inspector", {"ins": ins, "base": fragments.base_url(session)})
    )


@require_POST
@login_required
def select(request: AuthedRequest, pk: int, node_id: str) -> HttpResponse:
    """Inspect a node; if it lies on another branch, make that branch the active one."""
    session = owned_session(request, pk)
    tree = load_tree(session)
    if node_id not in tree.by_id:
        raise Http404("no such node")
    active = tree.active_leaf(session.active_node)
    on_path = any(n.id == node_id for n in tree.path(active))
    html = fragments.inspector_html(session, node_id)
    if not on_path:
        session.active_node = tree.newest_leaf_below(node_id)
        session.save(update_fields=["active_node", "updated_at"])
        ctx = fragments.panes_context(session, oob=True, selected=node_id)
        html += "".join(
            fragments.render(part, ctx) for part in ("runbar", "personas", "transcript", "tree")
        )
    return HttpResponse(html)


@require_POST
@login_required
def annotate(request: AuthedRequest, pk: int, node_id: str) -> HttpResponse:
    session = owned_session(request, pk)
    try:
        actions.annotate(
            session,
            node_id,
            request.user,
            text=request.POST.get("text", ""),
            label=request.POST.get("label", ""),
            score=request.POST.get("score", "").strip(),
        )
    except actions.Refused as exc:
        return refuse(exc.message, exc.status)
    return HttpResponse(fragments.inspector_html(session, node_id))


@require_POST
@login_required
def set_mode(request: AuthedRequest, pk: int) -> HttpResponse:
    session = owned_session(request, pk)
    try:
        actions.set_mode(
            session,
            request.POST.get("mode", session.mode),
            request.POST.getlist("breakpoints"),
            actions.flag(request.POST, "guided", session.guided),
        )
    except actions.Refused as exc:
        return refuse(exc.message, exc.status)
    ctx = fragments.panes_context(session)
    return HttpResponse(fragments.render("runbar", ctx))


@require_GET
@login_required
def export(request: AuthedRequest, pk: int) -> HttpResponse:
    session = owned_session(request, pk)
    nodes = OrmStore(session.pk).all_nodes()
    body = export_tree(nodes, export_meta(session))
    return attachment(body, f"session-{session.pk}.json", content_type="application/json")


@require_POST
@login_required
def delete(request: AuthedRequest, pk: int) -> HttpResponse:
    session = owned_session(request, pk)
    try:
        actions.delete_session(session)
    except actions.Refused as exc:
        return refuse(exc.message, exc.status)
    if request.htmx:
        return HttpResponseClientRedirect("/")
    return redirect("home")


# --- actions (async: a run belongs to the server's event loop) --------------------------------


def _acted(run: object) -> HttpResponse:
    return HttpResponse(status=204, headers={"HX-Trigger": "pw:acted"})


@require_POST
@login_required
async def send(request: AuthedRequest, pk: int) -> HttpResponse:
    session = await aowned_session(request, pk)
    try:
        run = await actions.send(
            session, request.POST.get("text", ""), speaker=request.POST.get("speaker", "")
        )
    except actions.Refused as exc:
        return refuse(exc.message, exc.status)
    return _acted(run)


@require_POST
@login_required
async def node_action(request: AuthedRequest, pk: int, node_id: str, action: str) -> HttpResponse:
    session = await aowned_session(request, pk)
    if action not in actions.NODE_ACTIONS:
        raise Http404("no such action")
    try:
        run = await actions.act(
            session,
            node_id,
            action,
            text=request.POST.get("text", ""),
            content=request.POST.get("content", ""),
            route=request.POST.get("route", ""),
            actor=(await request.auser()).get_username(),
        )
    except actions.Refused as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        return refuse(exc.message, exc.status)
    return _acted(run)


@require_POST
@login_required
async def stop(request: AuthedRequest, pk: int) -> HttpResponse:
    session = await aowned_session(request, pk)
    try:
        await actions.stop(session)
    except actions.Refused as exc:
        return refuse(exc.message, exc.status)
    return HttpResponse(status=204)
