"""Importing a session from a file (the debugger's export), as a new session of the importer's.

The checks on the file are in session_format.py. Creating is all or nothing, in one
transaction: characters, the session and every node, or nothing at all. Rules:
- Node ids are global keys (NodeRow.id), so a file imported twice, or next to the session it
  came from, would collide: the file's ids are kept when all are free (a move to another
  machine keeps them, so export -> import -> export gives the same ids), and otherwise every
  node gets a new id, consistently (parents, the active node, and ids inside node data such
  as a group decision's `heard` follow).
- A dialogue's character: the importer's character of the same slug if its sheet is the same
  as the file's; otherwise the file's sheet becomes a new character of theirs (named "X (2)"
  if "X" is taken). A file without a sheet (older exports, the console) names its character:
  the importer's character of that name.
- A group chat addresses its members by slug (`director/<slug>/...` in every node), so each
  member is the importer's character of that slug, or a new one from the file's sheet.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from personaweb.cast import store as cast_store
from personaweb.cast.uploads import CappedUploadHandler, too_big_request
from personaweb.characters.sheet import CharacterError, CharacterSheet
from personaweb.personas.tree import Node
from personaweb.web.access import AuthedRequest, ensure_characters
from personaweb.web.models import Character, ChatSession, Hierarchy, NodeRow
from personaweb.web.session_format import SessionFile, SessionFileError, read_session_file
from personaweb.web.store import OrmStore

SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
"""Ids kept as they are: they fit NodeRow.id and go into URLs (/n/<id>/...) unescaped."""


def max_bytes() -> int:
    return int(settings.SESSION_IMPORT_MAX_MB) * 1024 * 1024


# --- the page -----------------------------------------------------------------------------------


@csrf_exempt  # only so that the upload handler can be set before the body is parsed ...
@require_http_methods(["GET", "POST"])
@login_required
def session_import(request: AuthedRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request)
    if too_big_request(request, max_bytes()):
        return _page(request, f"the upload is larger than {settings.SESSION_IMPORT_MAX_MB} MB")
    cap = CappedUploadHandler(max_bytes(), request)
    request.upload_handlers.insert(0, cap)
    return _import(request, cap)


@csrf_protect  # ... and the CSRF check runs here, as Django's docs show for upload handlers
def _import(request: AuthedRequest, cap: CappedUploadHandler) -> HttpResponse:
    upload = request.FILES.get("file")
    if cap.too_big:
        return _page(request, f"the file is larger than {settings.SESSION_IMPORT_MAX_MB} MB")
    if upload is None:
        return _page(request, "choose a session file (.json, from a session's export link)")
    try:
        found = read_session_file(upload.read(max_bytes() + 1), max_bytes())
        session = import_session(request.user, found)
    except SessionFileError as exc:
        return _page(request, str(exc))
    return redirect(session)


def _page(request: AuthedRequest, error: str = "") -> HttpResponse:
    """The import page, with the reason a file was refused (nothing was created)."""
    ctx = {"import_error": f"Import refused: {error}" if error else "", **form_context()}
    return render(request, "web/session_import.html", ctx, status=400 if error else 200)


def form_context() -> dict[str, Any]:
    return {"import_max_mb": settings.SESSION_IMPORT_MAX_MB}


# --- creating -----------------------------------------------------------------------------------


def import_session(owner: Any, found: SessionFile) -> ChatSession:
    """A new session of `owner` holding every node of the file (SessionFileError if its
    character cannot be found); nothing is created unless all of it is."""
    ensure_characters(owner)  # the bundled characters, so a file using one reuses it
    keep = all(SAFE_ID.fullmatch(n.id) for n in found.nodes) and _ids_free(found.nodes)
    nodes, active = (found.nodes, found.active_node) if keep else _renumbered(found)
    try:
        with transaction.atomic():
            return _create(owner, found, nodes, active)
    except IntegrityError:
        if not keep:
            raise
    # Another import took these ids between the check and the insert.
    nodes, active = _renumbered(found)
    with transaction.atomic():
        return _create(owner, found, nodes, active)


def _create(owner: Any, found: SessionFile, nodes: list[Node], active: str) -> ChatSession:
    character: Character | None = None
    members: list[Character] = []
    if found.hierarchy == Hierarchy.DIALOGUE:
        character = _dialogue_character(owner, found)
    elif found.hierarchy == Hierarchy.GROUP:
        members = [_member(owner, sheet) for sheet in found.members]
    title = found.title or (
        f"{character.name} · {found.hierarchy}" if character else f"{found.hierarchy} session"
    )
    session = ChatSession.objects.create(
        owner=owner,
        title=title,
        character=character,
        hierarchy=found.hierarchy,
        strategy=found.strategy,
        mode=found.mode,
        guided=found.guided,
        breakpoints=found.breakpoints,
        profiles=found.profiles,
        members=[m.pk for m in members],
        group_settings=found.group_settings,
        active_node=active,
    )
    OrmStore(session.pk).add_many([n.copy() for n in nodes])
    return session


def _ids_free(nodes: list[Node]) -> bool:
    ids = [n.id for n in nodes]
    # In slices: SQLite limits the parameters of one query.
    return not any(
        NodeRow.objects.filter(id__in=ids[i : i + 500]).exists() for i in range(0, len(ids), 500)
    )


def _renumbered(found: SessionFile) -> tuple[list[Node], str]:
    """Copies of the nodes under new ids, with every reference to an old id following."""
    new = {n.id: uuid.uuid4().hex for n in found.nodes}
    out = []
    for node in found.nodes:
        copy = node.copy()
        copy.id = new[node.id]
        copy.parent_id = new[node.parent_id] if node.parent_id is not None else None
        copy.data = _with_new_ids(node.data, new)
        out.append(copy)
    return out, new.get(found.active_node, "")


def _with_new_ids(value: Any, new: dict[str, str]) -> Any:
    # Node data refers to other nodes by id (a group decision's "heard", an edit's
    # "edited_from", a continuation's "continued_from"). Ids are 32 random hex digits, so a
    # text equal to one is a reference.
    if isinstance(value, str):
        return new.get(value, value)
    if isinstance(value, dict):
        return {k: _with_new_ids(v, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_new_ids(v, new) for v in value]
    return value


def _same_sheet(character: Character, sheet: CharacterSheet) -> bool:
    try:
        return cast_store.sheet_of(character).to_dict() == sheet.to_dict()
    except (CharacterError, TypeError):
        return False


def _new_character(owner: Any, sheet: CharacterSheet, slug: str) -> Character:
    name = cast_store.free_name(owner, cast_store.numbered_names(sheet.name))
    character = Character(owner=owner)
    cast_store.apply_sheet(character, sheet.with_changes(name=name, slug=slug))
    character.save()
    return character


def _dialogue_character(owner: Any, found: SessionFile) -> Character:
    sheet = found.character
    if sheet is not None:
        same = Character.objects.filter(owner=owner, slug=sheet.slug).first()
        if same is not None and _same_sheet(same, sheet):
            return same
        return _new_character(owner, sheet, cast_store.free_slug(owner, sheet.slug))
    name = found.character_name
    named = (
        Character.objects.filter(owner=owner)
        .filter(Q(name__iexact=name) | Q(slug__iexact=name))
        .first()
        if name
        else None
    )
    if named is not None:
        return named
    if found.character_problem:
        raise SessionFileError(found.character_problem)
    if not name:
        raise SessionFileError("this dialogue file does not say who its character is")
    raise SessionFileError(
        f"this dialogue file's character is {name!r}, and you have no character of that "
        "name: import or create it on the Characters page first"
    )


def _member(owner: Any, sheet: CharacterSheet) -> Character:
    same = Character.objects.filter(owner=owner, slug=sheet.slug).first()
    return same if same is not None else _new_character(owner, sheet, sheet.slug)
