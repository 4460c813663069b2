"""The debugger's HTTP side: pages, fragments and the actions a person takes.

Every view checks ownership (another user's session is a 404, like a missing one). Actions that
the node cannot take are refused with 409 and a plain-text reason, whatever the buttons say.
Views that start runs are async, so the run's task lives on the server's event loop.
"""

from __future__ import annotations

import math

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from personaweb.cast import sessions as card_sessions
from personaweb.characters.sheet import CharacterError, load_bundled
from personaweb.llm.types import LLMProfile
from personaweb.personas import (
    Action,
    ActionRefused,
    Engine,
    Node,
    build_hierarchy,
    export_tree,
)
from personaweb.personas.engine import MAX_INPUT_CHARS, allowed_actions
from personaweb.web import building, fragments, groups, recovery, runs
from personaweb.web.ids import parse_pk
from personaweb.web.models import (
    Annotation,
    Character,
    ChatSession,
    Hierarchy,
    Mode,
    NodeRow,
    Strategy,
)
from personaweb.web.panes import TREE_WINDOW
from personaweb.web.session_format import export_meta
from personaweb.web.store import OrmStore, load_node, load_tree


class AuthedRequest(HttpRequest):
    """What the login_required views get: a real user, and django-htmx's details."""

    user: User
    htmx: HtmxDetails


ACTIONS = ("approve", "approve_turn", "reject", "feedback", "edit", "branch", "retry", "continue")
"""What a person can do to a node (URL /n/<id>/<action>/). approve_turn approves the node and
the rest of its turn; the engine's allowed_actions decides which apply to which node."""


def _flag(post, name: str, default: bool = True) -> bool:
    """A checkbox sent with a hidden "off" before it: the last value wins; absent: default."""
    values = post.getlist(name)
    return default if not values else values[-1] in ("on", "1", "true", "yes")


def refuse(message: str, status: int = 409) -> HttpResponse:
    """A refusal the page shows as a message (plain text, never HTML)."""
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def owned_session(request: AuthedRequest, pk: int) -> ChatSession:
    return get_object_or_404(
        ChatSession.objects.select_related("character"), pk=pk, owner=request.user
    )


async def aowned_session(request: AuthedRequest, pk: int) -> ChatSession:
    user = await request.auser()  # login_required has made sure it is a real user
    try:
        return await ChatSession.objects.select_related("character").aget(pk=pk, owner_id=user.pk)
    except ChatSession.DoesNotExist:
        raise Http404("no such session") from None


# --- home and new sessions --------------------------------------------------------------------


def ensure_characters(user) -> None:
    """Give a person the bundled characters the first time they need one."""
    if Character.objects.filter(owner=user).exists():
        return
    try:
        sheets = load_bundled()
    except CharacterError:
        sheets = []
    Character.objects.bulk_create(
        [Character(owner=user, name=s.name, slug=s.slug, data=s.to_dict()) for s in sheets]
    )


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
    ctx["ins"] = fragments.inspector_context(session, selected) if selected else None
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
    node = get_object_or_404(NodeRow, session=session, pk=node_id)
    text = request.POST.get("text", "").strip()
    label = request.POST.get("label", "").strip()[:60]
    raw_score = request.POST.get("score", "").strip()
    try:
        score = float(raw_score) if raw_score else None
    except ValueError:
        return refuse("the score must be a number", 400)
    if score is not None and not math.isfinite(score):
        return refuse("the score must be a finite number", 400)
    if len(text) > MAX_INPUT_CHARS:
        return refuse(f"the note is too long (at most {MAX_INPUT_CHARS:,} characters)", 400)
    if not (text or label or score is not None):
        return refuse("an annotation needs a note, a label or a score", 400)
    Annotation.objects.create(node=node, author=request.user, text=text, label=label, score=score)
    return HttpResponse(fragments.inspector_html(session, node_id))


@require_POST
@login_required
def set_mode(request: AuthedRequest, pk: int) -> HttpResponse:
    session = owned_session(request, pk)
    mode = request.POST.get("mode", session.mode)
    if mode not in Mode.values:
        return refuse(f"unknown mode {mode!r}", 400)
    known = {info.path for _, info in building.hierarchy_for(session).describe().walk()}
    breakpoints = [p for p in request.POST.getlist("breakpoints") if p in known]
    session.mode = mode
    session.breakpoints = breakpoints
    session.guided = _flag(request.POST, "guided", session.guided)
    session.save(update_fields=["mode", "breakpoints", "guided", "updated_at"])
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


# --- actions that start runs (async: the run belongs to the server's event loop) -------------


async def _leaf_for_send(session: ChatSession) -> str | None:
    tree = await sync_to_async(load_tree)(session)
    return tree.active_leaf(session.active_node) or None


@require_POST
@login_required
async def send(request: AuthedRequest, pk: int) -> HttpResponse:
    session = await aowned_session(request, pk)
    text = request.POST.get("text", "").strip()
    if not text:
        return refuse("the message is empty", 400)
    try:
        # A group chat in manual order: the user picks who speaks next.
        data = await sync_to_async(groups.speaker_data)(session, request.POST.get("speaker", ""))
    except ValueError as exc:
        return refuse(str(exc), 400)
    parent = await _leaf_for_send(session)

    async def first(engine: Engine) -> Node:
        return await engine.send(text, parent, data)

    async def job(engine: Engine, inbound: Node) -> Node:
        return await engine.advance(inbound.id)

    return await _start(session, "send", first, job)


@require_POST
@login_required
async def node_action(request: AuthedRequest, pk: int, node_id: str, action: str) -> HttpResponse:
    session = await aowned_session(request, pk)
    if action not in ACTIONS:
        raise Http404("no such action")
    loaded = await sync_to_async(load_node)(session.pk, node_id)
    if loaded is None:
        raise Http404("no such node")
    node, has_children = loaded
    # The same rule the engine applies: a forced post of a disabled button stops here.
    needs = "approve" if action == "approve_turn" else action
    if needs not in allowed_actions(node, has_children):
        detail = " and already has replies" if has_children else ""
        return refuse(
            f"cannot {action} this {node.kind.value} node: it is {node.status.value}{detail}"
        )
    text = request.POST.get("text", "").strip()
    content = request.POST.get("content", "")
    if action == "feedback" and not text:
        return refuse("feedback is empty", 400)
    if action == "edit" and not content.strip() and node.action != "pass":
        return refuse("the edited content is empty", 400)
    # An edit may also re-route a delegating persona's proposal: "delegate:<child>" or "reply".
    route: tuple[Action | None, str | None] = (None, None)
    chosen = request.POST.get("route", "")
    if chosen == "reply":
        route = (Action.REPLY, None)
    elif chosen.startswith("delegate:"):
        route = (Action.DELEGATE, chosen.partition(":")[2])
    elif chosen:
        return refuse(f"unknown route {chosen!r}", 400)

    async def advance(engine: Engine, leaf: Node) -> Node:
        return await engine.advance(leaf.id)

    if len(text) > MAX_INPUT_CHARS or len(content) > MAX_INPUT_CHARS:
        return refuse(f"the text is too long (at most {MAX_INPUT_CHARS:,} characters)", 400)

    async def rest_of_turn(engine: Engine, approved: Node) -> Node:
        return await engine.advance(approved.id, stop=False)

    if action == "approve_turn":
        return await _start(session, action, lambda e: e.approve(node_id), rest_of_turn)

    firsts = {
        "approve": lambda e: e.approve(node_id),
        "reject": lambda e: e.reject(node_id),
        "feedback": lambda e: e.feedback(node_id, text),
        "edit": lambda e: e.edit(node_id, content, *route),
    }
    if action in firsts:
        return await _start(session, action, firsts[action], advance)

    # branch, retry and continue call the model at once, so that happens in the run; what
    # would refuse them is checked first, so the refusal reaches this response, not a flash.
    async def check(engine: Engine) -> None:
        if action == "branch":
            await engine.check_branch(node_id, text or None)
        elif action == "continue":
            await engine.check_continue(node_id)
        else:
            await engine.check_retry(node_id)

    async def replay(engine: Engine, _none: None) -> Node:
        if action == "branch":
            new = await engine.branch(node_id, text or None)
        elif action == "continue":
            new = await engine.continue_reply(node_id)
        else:
            new = await engine.retry(node_id)
        return await engine.advance(new.id)

    return await _start(session, action, check, replay)


async def _start(session: ChatSession, trigger: str, first, job) -> HttpResponse:
    try:
        await runs.start(session, trigger, job, first=first)
    except runs.RunBusy as exc:
        return refuse(str(exc))
    except ActionRefused as exc:
        return refuse(str(exc))
    return HttpResponse(status=204, headers={"HX-Trigger": "pw:acted"})


@require_POST
@login_required
async def stop(request: AuthedRequest, pk: int) -> HttpResponse:
    session = await aowned_session(request, pk)
    if not await runs.stop(session.pk):
        return refuse("no run in progress")
    return HttpResponse(status=204)
