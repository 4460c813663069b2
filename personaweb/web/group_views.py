"""Group chats' own pages: the new-group-chat form, replaying a conversation under another
reply policy, and the two conversations side by side.

Ownership as everywhere: another person's session or character is a 404 (or a form error),
exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from personaweb.cast import sessions as card_sessions
from personaweb.personas import Engine, Node, NodeKind
from personaweb.personas.state import NextKind
from personaweb.web import actions, runs
from personaweb.web.access import AuthedRequest, aowned_session, ensure_characters, refuse
from personaweb.web.group_forms import ORDER_CHOICES, POLICY_CHOICES, GroupChatForm
from personaweb.web.models import ChatSession, Hierarchy, Mode
from personaweb.web.panes import Panes, build_panes
from personaweb.web.store import load_tree, path_rows, to_node

# --- a new group chat ---------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def group_new(request: AuthedRequest) -> HttpResponse:
    ensure_characters(request.user)
    if request.method != "POST":
        form = GroupChatForm(owner=request.user)
        return render(request, "web/group_new.html", {"form": form})
    form = GroupChatForm(request.POST, owner=request.user)
    if not form.is_valid():
        return render(request, "web/group_new.html", {"form": form}, status=400)
    session = actions.create_group(request.user, form)
    return redirect(session)


# --- replay under another policy -----------------------------------------------------------------


@dataclass(frozen=True)
class UserLine:
    text: str
    data: dict[str, Any]


def user_lines(session: ChatSession) -> list[UserLine]:
    """The user's messages on the session's active branch, oldest first."""
    leaf = load_tree(session).active_leaf(session.active_node)
    if not leaf:
        return []
    out = []
    # The path with its data: a user's pick of speaker (manual order) lives there.
    for node in (to_node(row) for row in path_rows(session.pk, leaf)):
        if node.kind is NodeKind.INBOUND and node.sender == "user" and "/" not in node.persona:
            speaker = node.data.get("speaker")
            out.append(UserLine(node.content, {"speaker": speaker} if speaker else {}))
    return out


def create_replay(source: ChatSession, policy: str, order: str) -> ChatSession:
    """A new group session: the source's members and settings under another policy/order.

    The chosen policy applies to every character (per-character overrides are dropped, or the
    comparison would mix policies); the replay runs autonomously."""
    settings = dict(source.group_settings or {})
    settings.update(policy=policy, overrides={}, replay_of=source.pk)
    if order:
        settings["order"] = order
    label = policy + (f", {order} order" if order else "")
    return ChatSession.objects.create(
        owner_id=source.owner_id,
        title=f"{source.title} · replay ({label})"[:200],
        hierarchy=Hierarchy.GROUP,
        strategy=source.strategy,
        mode=Mode.AUTONOMOUS,
        members=list(source.members or []),
        group_settings=settings,
        profiles=dict(source.profiles or {}),
    )


def replay_job(lines: list[UserLine], opened: str | None = None):
    """The first message now (under the replay's greetings, `opened`, if it has any); the rest
    in the run, each once the previous turn is done."""

    async def first(engine: Engine) -> Node:
        return await engine.send(lines[0].text, opened, lines[0].data or None)

    async def job(engine: Engine, inbound: Node) -> Node:
        leaf = await engine.advance(inbound.id)
        for line in lines[1:]:
            state = await engine.state(leaf.id)
            if state.next.kind is not NextKind.DONE:
                return leaf  # failed or stopped: the replay ends where the turn did
            inbound = await engine.send(line.text, leaf.id, line.data or None)
            leaf = await engine.advance(inbound.id)
        return leaf

    return first, job


@require_POST
@login_required
async def replay(request: AuthedRequest, pk: int) -> HttpResponse:
    source = await aowned_session(request, pk)
    if source.hierarchy != Hierarchy.GROUP:
        raise Http404("not a group chat")
    policy = request.POST.get("policy", "")
    order = request.POST.get("order", "")
    if policy not in dict(POLICY_CHOICES):
        return refuse(f"unknown reply policy {policy!r}", 400)
    if order and order not in dict(ORDER_CHOICES):
        return refuse(f"unknown turn order {order!r}", 400)
    lines = await sync_to_async(user_lines)(source)
    if not lines:
        return refuse("nothing to replay: this branch has no messages of yours")
    target = await sync_to_async(create_replay)(source, policy, order)
    # The replay opens as the source did: the person's name, lorebooks, greetings.
    opened = await sync_to_async(card_sessions.copy_opening)(source, target)
    first, job = replay_job(lines, opened)
    await runs.start(target, "replay", job, first=first)
    url = reverse("group_versus", args=[source.pk, target.pk])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


# --- side by side ---------------------------------------------------------------------------------


def column(session: ChatSession) -> Panes:
    return build_panes(session, load_tree(session), runs.is_running(session.pk))


@require_GET
@login_required
def versus(request: AuthedRequest, pk: int, other: int) -> HttpResponse:
    left = get_object_or_404(ChatSession, pk=pk, owner=request.user, hierarchy=Hierarchy.GROUP)
    right = get_object_or_404(ChatSession, pk=other, owner=request.user, hierarchy=Hierarchy.GROUP)
    columns = [column(left), column(right)]
    ctx = {
        "columns": columns,
        "running": any(c.running for c in columns),
        "left": left,
        "right": right,
    }
    if request.GET.get("part") == "columns":
        return render(request, "web/group_versus.html#columns", ctx)
    return render(request, "web/group_versus.html", ctx)
