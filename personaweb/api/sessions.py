"""Sessions over HTTP: list and create them, send messages, read the tree, act on nodes.

Every operation calls the function the page calls (web/actions.py): the same checks, the same
refusals, the same engine calls. Operations that start runs are async, so the run's task lives
on the server's event loop, and they answer at once (202) with the run; its steps arrive on
`GET /api/sessions/{pk}/events` or by reading the tree.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from personaweb.api import events, schemas
from personaweb.api.common import (
    ERRORS,
    caller,
    form_data,
    form_errors,
    node_id_of,
    session_of,
)
from personaweb.personas import export_tree
from personaweb.personas.engine import allowed_actions
from personaweb.personas.state import derive
from personaweb.personas.tree import Node
from personaweb.web import actions, building, runs
from personaweb.web.actions import Refused
from personaweb.web.group_forms import GroupChatForm
from personaweb.web.models import Annotation, ChatSession, Hierarchy, Run
from personaweb.web.session_format import export_meta
from personaweb.web.store import OrmStore, load_node, load_tree, path_rows, to_node

router = Router(tags=["sessions"])

MAX_PAGE = 10_000


# --- shapes -----------------------------------------------------------------------------------


def session_out(session: ChatSession, running: bool) -> dict[str, Any]:
    return {
        "id": session.pk,
        "title": session.title,
        "hierarchy": session.hierarchy,
        "strategy": session.strategy,
        "mode": session.mode,
        "guided": session.guided,
        "breakpoints": list(session.breakpoints or []),
        "character": session.character_id,
        "members": [int(m) for m in session.members or [] if isinstance(m, int)],
        "active_node": session.active_node,
        "running": running,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
    }


def run_out(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "session": run.session_id,
        "trigger": run.trigger,
        "status": run.status,
        "start_node": run.start_node,
        "leaf_node": run.leaf_node,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def node_out(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "parent_id": node.parent_id,
        "persona": node.persona,
        "kind": node.kind.value,
        "status": node.status.value,
        "content": node.content,
        "action": node.action.value if node.action else None,
        "target": node.target,
        "sender": node.sender,
        "seq": node.seq,
        "created_at": node.created_at,
    }


def annotation_out(a: Annotation) -> dict[str, Any]:
    return {
        "id": a.pk,
        "node": a.node_id,
        "author": a.author.get_username(),
        "text": a.text,
        "label": a.label,
        "score": a.score,
        "created_at": a.created_at,
    }


# --- sessions ---------------------------------------------------------------------------------


def _list(user: Any) -> list[dict[str, Any]]:
    sessions = list(ChatSession.objects.filter(owner=user))
    going = set(
        Run.objects.filter(session__owner=user, status="running").values_list(
            "session_id", flat=True
        )
    )
    return [session_out(s, s.pk in going) for s in sessions]


@router.get(
    "/sessions", response={200: list[schemas.SessionOut], **ERRORS}, operation_id="list_sessions"
)
def list_sessions(request: HttpRequest) -> Any:
    """Your sessions, most recently changed first."""
    return _list(caller(request))


def _group_form(user: Any, body: schemas.SessionIn) -> GroupChatForm:
    fields: dict[str, Any] = {
        "title": body.title,
        "strategy": body.strategy,
        "mode": body.mode,
        "user_name": body.user_name,
        **body.group.model_dump(),
    }
    for position, member in enumerate(body.members, 1):
        pk = member.character
        fields |= {
            f"position:{pk}": position,
            f"policy:{pk}": member.policy,
            f"greeting:{pk}": member.greeting,
            f"model:{pk}": member.model,
            f"temperature:{pk}": member.temperature,
        }
    data = form_data(
        fields, {"members": [m.character for m in body.members], "lorebooks": body.lorebooks}
    )
    return GroupChatForm(data, owner=user)


def _create(user: Any, body: schemas.SessionIn) -> dict[str, Any]:
    if body.hierarchy == Hierarchy.GROUP:
        form = _group_form(user, body)
        if not form.is_valid():
            raise Refused(form_errors(form.errors), 400)
        session = actions.create_group(user, form)
    else:
        fields: dict[str, Any] = {
            "hierarchy": body.hierarchy,
            "strategy": body.strategy,
            "mode": body.mode,
            "guided": body.guided,
            "title": body.title,
            "character": body.character,
            "user_name": body.user_name,
            "greeting": body.greeting,
        }
        for path, profile in body.profiles.items():
            fields[f"model:{path}"] = profile.model
            fields[f"temperature:{path}"] = profile.temperature
        session = actions.create_session(user, form_data(fields, {"lorebooks": body.lorebooks}))
    return session_out(session, running=False)


@router.post(
    "/sessions", response={201: schemas.SessionOut, **ERRORS}, operation_id="create_session"
)
def create_session(request: HttpRequest, body: schemas.SessionIn) -> Any:
    """A new session: a character's dialogue, the code team, or a group chat (as the home
    page's and the group-chat page's forms make them). It opens with its greetings."""
    return Status(201, _create(caller(request), body))


def _detail(session: ChatSession) -> dict[str, Any]:
    return session_out(session, runs.is_running(session.pk))


@router.get(
    "/sessions/{int:pk}", response={200: schemas.SessionOut, **ERRORS}, operation_id="get_session"
)
async def get_session(request: HttpRequest, pk: int) -> Any:
    session = await session_of(request, pk)
    return await sync_to_async(_detail)(session)


@router.delete("/sessions/{int:pk}", response={204: None, **ERRORS}, operation_id="delete_session")
async def delete_session(request: HttpRequest, pk: int) -> Any:
    """Delete a session and its tree (refused with a 409 while a run is going)."""
    session = await session_of(request, pk)
    await sync_to_async(actions.delete_session)(session)
    return Status(204, None)


@router.put(
    "/sessions/{int:pk}/mode", response={200: schemas.SessionOut, **ERRORS}, operation_id="set_mode"
)
async def set_mode(request: HttpRequest, pk: int, body: schemas.ModeIn) -> Any:
    """How runs proceed: autonomous, review, or breakpoints at the personas named (persona
    paths; unknown ones are dropped)."""
    session = await session_of(request, pk)
    await sync_to_async(actions.set_mode)(session, body.mode, body.breakpoints, body.guided)
    return await sync_to_async(_detail)(session)


@router.get(
    "/sessions/{int:pk}/export",
    response={200: dict[str, Any], **ERRORS},
    operation_id="export_session",
)
async def export_session(request: HttpRequest, pk: int) -> Any:
    """The session file the page's export link gives (every node with its call record)."""
    session = await session_of(request, pk)

    def body() -> str:
        return export_tree(OrmStore(session.pk).all_nodes(), export_meta(session))

    return HttpResponse(await sync_to_async(body)(), content_type="application/json")


# --- runs -------------------------------------------------------------------------------------


@router.post(
    "/sessions/{int:pk}/messages",
    response={202: schemas.RunOut, **ERRORS},
    operation_id="send_message",
)
async def send_message(request: HttpRequest, pk: int, body: schemas.MessageIn) -> Any:
    """Send a message to the session's top persona, under the active branch. Answers at once
    with the run; in review mode it stops at the first proposal."""
    session = await session_of(request, pk)
    run = await actions.send(session, body.text, speaker=body.speaker)
    return Status(202, run_out(run))


@router.post(
    "/sessions/{int:pk}/stop", response={202: schemas.RunOut, **ERRORS}, operation_id="stop_run"
)
async def stop_run(request: HttpRequest, pk: int) -> Any:
    """Stop the session's run, wherever it runs (409 when none is going)."""
    session = await session_of(request, pk)
    run = await Run.objects.filter(session=session, status="running").afirst()
    await actions.stop(session)
    assert run is not None  # stop refuses when no run is going
    await run.arefresh_from_db()
    return Status(202, run_out(run))


class RunsQuery(Schema):
    limit: int = Field(default=20, ge=1, le=200)


@router.get(
    "/sessions/{int:pk}/runs",
    response={200: list[schemas.RunOut], **ERRORS},
    operation_id="list_runs",
)
async def list_runs(request: HttpRequest, pk: int, q: Query[RunsQuery]) -> Any:
    """The session's runs, newest first."""
    session = await session_of(request, pk)
    return [run_out(r) async for r in Run.objects.filter(session=session)[: q.limit]]


@router.get(
    "/sessions/{int:pk}/runs/{int:run_pk}",
    response={200: schemas.RunOut, **ERRORS},
    operation_id="get_run",
)
async def get_run(request: HttpRequest, pk: int, run_pk: int) -> Any:
    session = await session_of(request, pk)
    run = await Run.objects.filter(session=session, pk=run_pk).afirst()
    if run is None:
        raise Refused("no such run", 404)
    return run_out(run)


@router.get(
    "/sessions/{int:pk}/events",
    response={200: None, **ERRORS},
    operation_id="session_events",
    openapi_extra={
        "responses": {
            200: {
                "description": events.DESCRIPTION,
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    },
)
async def session_events(request: HttpRequest, pk: int, q: Query[events.EventsQuery]) -> Any:
    """Server-Sent Events: the session's node changes and run starts and ends, as JSON."""
    session = await session_of(request, pk)
    return await events.response(session, q)


# --- the tree ---------------------------------------------------------------------------------


class TreeQuery(Schema):
    after: int = Field(default=0, ge=0, le=2**63 - 1, description="Only nodes with a higher seq")
    limit: int = Field(default=1000, ge=1, le=MAX_PAGE)


def _tree(session: ChatSession, q: TreeQuery) -> dict[str, Any]:
    tree = load_tree(session)
    page = [n for n in tree.nodes if n.seq > q.after][: q.limit]
    more = page and page[-1].seq < tree.nodes[-1].seq
    return {
        "nodes": [node_out(n) for n in page],
        "active_leaf": tree.active_leaf(session.active_node),
        "total": len(tree),
        "next_after": page[-1].seq if more else None,
    }


@router.get(
    "/sessions/{int:pk}/tree", response={200: schemas.TreeOut, **ERRORS}, operation_id="get_tree"
)
async def get_tree(request: HttpRequest, pk: int, q: Query[TreeQuery]) -> Any:
    """Every node of the session (without call records), oldest first, a page at a time."""
    session = await session_of(request, pk)
    return await sync_to_async(_tree)(session, q)


class PathQuery(Schema):
    node: str = Field(
        default="", max_length=64, description="The path's last node (default: the active leaf)"
    )


def _path(session: ChatSession, node_id: str) -> dict[str, Any]:
    leaf = node_id or load_tree(session).active_leaf(session.active_node)
    rows = path_rows(session.pk, leaf) if leaf else []
    if node_id and not rows:
        raise Refused("no such node", 404)
    path = [to_node(r, with_call=False) for r in rows]
    if not path:
        return {"leaf": "", "nodes": [], "transcript": [], "next": None, "stack": []}
    root = building.hierarchy_for(session)
    state = derive(path, root.path, root.speakers())
    return {
        "leaf": path[-1].id,
        "nodes": [node_out(n) for n in path],
        "transcript": [
            {
                "speaker": line.speaker,
                "text": line.text,
                "node_id": line.node_id,
                "passed": line.passed,
                "truncated": line.truncated,
            }
            for line in state.transcript
        ],
        "next": {
            "kind": state.next.kind.value,
            "persona": state.next.persona,
            "node_id": state.next.node_id,
            "message": state.next.message,
        },
        "stack": list(state.stack),
    }


@router.get(
    "/sessions/{int:pk}/path", response={200: schemas.PathOut, **ERRORS}, operation_id="get_path"
)
async def get_path(request: HttpRequest, pk: int, q: Query[PathQuery]) -> Any:
    """One branch, root to `node` (default: the active leaf): its nodes, the conversation on
    it (the transcript), and what happens next (e.g. `review` of a proposal)."""
    session = await session_of(request, pk)
    return await sync_to_async(_path)(session, node_id_of(q.node) if q.node else "")


def _node(session: ChatSession, node_id: str) -> dict[str, Any]:
    loaded = load_node(session.pk, node_id)
    if loaded is None:
        raise Refused("no such node", 404)
    node, has_children = loaded
    notes = Annotation.objects.filter(node_id=node.id).select_related("author")
    return {
        **node_out(node),
        "data": node.data,
        "call": node.call.to_dict() if node.call else None,
        "has_children": has_children,
        "allowed_actions": sorted(
            {*allowed_actions(node, has_children)}
            | ({"approve_turn"} if "approve" in allowed_actions(node, has_children) else set())
        ),
        "annotations": [annotation_out(a) for a in notes],
    }


@router.get(
    "/sessions/{int:pk}/nodes/{node_id}",
    response={200: schemas.NodeDetail, **ERRORS},
    operation_id="get_node",
)
async def get_node(request: HttpRequest, pk: int, node_id: str) -> Any:
    """One node with its call record (the exact messages sent), its data, its annotations
    and the actions it allows now."""
    session = await session_of(request, pk)
    return await sync_to_async(_node)(session, node_id_of(node_id))


@router.post(
    # Before the actions: "annotations" is not an action, but {action} would match it.
    "/sessions/{int:pk}/nodes/{node_id}/annotations",
    response={201: schemas.AnnotationOut, **ERRORS},
    operation_id="annotate_node",
)
def annotate_node(request: HttpRequest, pk: int, node_id: str, body: schemas.AnnotationIn) -> Any:
    """A note on a node: text, a label, a score (at least one of them)."""
    user = caller(request)
    session = ChatSession.objects.filter(pk=pk, owner=user).first()
    if session is None:
        raise Refused("no such session", 404)
    note = actions.annotate(
        session, node_id_of(node_id), user, text=body.text, label=body.label, score=body.score
    )
    return Status(201, annotation_out(note))


@router.post(
    "/sessions/{int:pk}/nodes/{node_id}/{action}",
    response={202: schemas.RunOut, **ERRORS},
    operation_id="act_on_node",
)
async def act_on_node(
    request: HttpRequest,
    pk: int,
    node_id: str,
    action: schemas.NodeAction,
    body: schemas.NodeActionIn | None = None,
) -> Any:
    """approve, approve_turn (approve and go on to the end of the turn), reject, feedback
    (`text`), edit (`content`, `route`), branch (optional `text`), retry, continue (a reply
    the token limit cut off). Answers at once with the run the action started."""
    session = await session_of(request, pk)
    body = body or schemas.NodeActionIn()
    run = await actions.act(
        session, node_id_of(node_id), action, text=body.text, content=body.content, route=body.route
    )
    return Status(202, run_out(run))
