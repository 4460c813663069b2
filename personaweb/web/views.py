"""The debugger's HTTP side: pages, fragments and the actions a person takes.

Every view checks ownership (another user's session is a 404, like a missing one). Actions that
the node cannot take are refused with 409 and a plain-text reason, whatever the buttons say.
Views that start runs are async, so the run's task lives on the server's event loop.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from personaweb.cast import sessions as card_sessions
from personaweb.llm.types import LLMProfile
from personaweb.personas import (
    build_hierarchy,
    export_tree,
)
from personaweb.web import actions, building, fragments, groups, recovery, runs
from personaweb.web.access import (
    AuthedRequest,
    aowned_session,
    ensure_characters,
    owned_session,
    refuse,
)
from personaweb.web.ids import parse_pk
from personaweb.web.models import (
    Character,
    ChatSession,
    Hierarchy,
    Mode,
    Strategy,
)
from personaweb.web.panes import TREE_WINDOW
from personaweb.web.session_format import export_meta
from personaweb.web.store import OrmStore, load_tree


def _flag(post, name: str, default: bool = True) -> bool:
    """A checkbox sent with a hidden "off" before it: the last value wins; absent: default."""
    values = post.getlist(name)
    return default if not values else values[-1] in ("on", "1", "true", "yes")


# --- home and new sessions --------------------------------------------------------------------


def persona_infos(hierarchy: str, strategy: str = "nested"):
    """The personas a new session of this kind will have (for its model/temperature fields)."""
    if hierarchy == "dialogue":
        root = build_hierarchy("dialogue", character={"name": "Character"}, strategy=strategy)
    else:
        root = build_hierarchy(hierarchy)
    return [{"depth": d, "info": info} for d, info in root.describe().walk()]


def _kind(get) -> tuple[str, str] | None:
    hierarchy = get.get("hierarchy", Hierarchy.DIALOGUE)
    strategy = get.get("strategy", Strategy.NESTED)
    if hierarchy not in (Hierarchy.DIALOGUE, Hierarchy.CODE) or strategy not in Strategy.values:
        return None
    return hierarchy, strategy


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
    return render(
        request,
        "web/home.html",
        {
            "sessions": sessions,
            "characters": Character.objects.filter(owner=request.user),
            "persona_infos": persona_infos("dialogue"),
            "strategies": Strategy.choices,
        },
    )


@require_GET
@login_required
def profile_fields(request: AuthedRequest) -> HttpResponse:
    kind = _kind(request.GET)
    if kind is None:
        return refuse("unknown hierarchy or strategy", 400)
    return render(request, "web/home.html#profile-fields", {"persona_infos": persona_infos(*kind)})


def _profiles_from_form(post, hierarchy: str, strategy: str) -> dict[str, dict]:
    profiles = {}
    for item in persona_infos(hierarchy, strategy):
        info = item["info"]
        if info.role_kind == "code":
            continue
        model = post.get(f"model:{info.path}", "").strip()[:200]
        raw_t = post.get(f"temperature:{info.path}", "").strip()
        try:
            temperature = float(raw_t) if raw_t else info.profile.temperature
        except ValueError:
            raise ValueError(f"temperature for {info.path} must be a number") from None
        if not 0 <= temperature <= 2:
            raise ValueError(f"temperature for {info.path} must be between 0 and 2")
        if model != info.profile.model or temperature != info.profile.temperature:
            profile = LLMProfile(
                model=model,
                temperature=temperature,
                max_tokens=info.profile.max_tokens,
                timeout_s=info.profile.timeout_s,
            )
            profiles[info.path] = profile.to_dict()
    return profiles


@require_POST
@login_required
def session_new(request: AuthedRequest) -> HttpResponse:
    kind = _kind(request.POST)
    mode = request.POST.get("mode", Mode.REVIEW)
    if kind is None:
        return refuse("unknown hierarchy or strategy", 400)
    hierarchy, strategy = kind
    if mode not in Mode.values:
        return refuse(f"unknown mode {mode!r}", 400)
    character = None
    if request.POST.get("character"):
        if (character_pk := parse_pk(request.POST["character"])) is None:
            return refuse("unknown character", 400)
        character = get_object_or_404(Character, pk=character_pk, owner=request.user)
    if hierarchy == Hierarchy.DIALOGUE and character is None:
        return refuse("a dialogue session needs a character", 400)
    try:
        profiles = _profiles_from_form(request.POST, hierarchy, strategy)
        # The card side of the form: the person's name, the greeting, session lorebooks.
        cast = [character] if character is not None and hierarchy == Hierarchy.DIALOGUE else []
        choices = card_sessions.read_choices(request.POST, request.user, cast, group=False)
    except ValueError as exc:
        return refuse(str(exc), 400)
    title = request.POST.get("title", "").strip()[:200]
    if not title:
        title = f"{character.name} · {hierarchy}" if character else f"{hierarchy} session"
    with transaction.atomic():
        session = ChatSession.objects.create(
            owner=request.user,
            title=title,
            character=character if hierarchy == Hierarchy.DIALOGUE else None,
            hierarchy=hierarchy,
            strategy=strategy,
            mode=mode,
            guided=_flag(request.POST, "guided"),
            profiles=profiles,
        )
        if session.character is not None:
            card_sessions.start(session, choices, building.hierarchy_for(session))
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
            _flag(request.POST, "guided", session.guided),
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
    response = HttpResponse(
        export_tree(nodes, export_meta(session)), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="session-{session.pk}.json"'
    return response


@require_POST
@login_required
def delete(request: AuthedRequest, pk: int) -> HttpResponse:
    session = owned_session(request, pk)
    if runs.is_running(session.pk):
        return refuse("stop the run before deleting the session")
    session.delete()
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
