"""Characters over HTTP: CRUD on sheets, Character Card import and export.

The same code as the character pages: sheets are validated by `CharacterSheet`, saved by
cast/store.py (names unique per person, slugs kept, only what exports within the import limit
is stored), cards read and written by cast/card_views.py.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from ninja import File, Router
from ninja.files import UploadedFile
from ninja.responses import Status

from personaweb.api import schemas
from personaweb.api.common import ERRORS, caller, character_of
from personaweb.cast import store
from personaweb.cast.card_views import card_download, import_card
from personaweb.characters.cards import MAX_CARD_BYTES
from personaweb.characters.sheet import CharacterError, CharacterSheet
from personaweb.web.access import ensure_characters
from personaweb.web.actions import Refused
from personaweb.web.models import Character

router = Router(tags=["characters"])

CardFormat = Literal["v2.json", "v3.json", "v2.png", "v3.png"]


def character_out(c: Character, *, sheet: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.pk,
        "name": c.name,
        "slug": c.slug,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }
    if sheet:
        out["sheet"] = {**(c.data or {}), "name": c.name, "slug": c.slug}
    return out


def _sheet(body: schemas.CharacterIn, slug: str = "") -> CharacterSheet:
    data = body.model_dump(exclude_unset=True)
    if slug:
        data["slug"] = slug
    try:
        return CharacterSheet.from_dict(data)
    except CharacterError as exc:
        raise Refused(str(exc), 400) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise Refused(f"not a character sheet: {exc}", 400) from None


def _saved(save: Any, sheet: CharacterSheet) -> Character:
    try:
        character: Character = save(sheet)
    except CharacterError as exc:
        status = 409 if str(exc).startswith("name:") else 400
        raise Refused(str(exc), status) from None
    return character


@router.get(
    "/characters",
    response={200: list[schemas.CharacterOut], **ERRORS},
    operation_id="list_characters",
)
def list_characters(request: HttpRequest) -> Any:
    """Your characters (the bundled cast is copied for you on first use, as on the pages)."""
    user = caller(request)
    ensure_characters(user)
    return [character_out(c) for c in Character.objects.filter(owner=user).order_by("name", "pk")]


@router.post(
    "/characters",
    response={201: schemas.CharacterDetail, **ERRORS},
    operation_id="create_character",
)
def create_character(request: HttpRequest, body: schemas.CharacterIn) -> Any:
    """A new character from a sheet; a name you already use is a 409."""
    user = caller(request)
    character = _saved(lambda s: store.save_new(user, s), _sheet(body))
    return Status(201, character_out(character, sheet=True))


@router.post(
    "/characters/import",
    response={201: schemas.CharacterDetail, **ERRORS},
    operation_id="import_card",
)
def import_character_card(request: HttpRequest, card: File[UploadedFile]) -> Any:
    """A new character from a Character Card file (V1, V2 or V3; JSON or PNG), at most 8 MB.
    A name you already use gets a number, as on the page."""
    if (card.size or 0) > MAX_CARD_BYTES:
        raise Refused(f"the card is larger than {MAX_CARD_BYTES // (1024 * 1024)} MB", 413)
    try:
        character, _note = import_card(
            caller(request), card.read(MAX_CARD_BYTES + 1), card.name or ""
        )
    except CharacterError as exc:
        raise Refused(f"Import refused: {exc}", 400) from None
    return Status(201, character_out(character, sheet=True))


@router.get(
    "/characters/{int:pk}",
    response={200: schemas.CharacterDetail, **ERRORS},
    operation_id="get_character",
)
def get_character(request: HttpRequest, pk: int) -> Any:
    return character_out(character_of(request, pk), sheet=True)


@router.put(
    "/characters/{int:pk}",
    response={200: schemas.CharacterDetail, **ERRORS},
    operation_id="update_character",
)
def update_character(request: HttpRequest, pk: int, body: schemas.CharacterIn) -> Any:
    """Replace the character's sheet (its slug, the id group chats know it by, stays)."""
    character = character_of(request, pk)
    saved = _saved(lambda s: store.save_edit(character, s), _sheet(body, character.slug))
    return character_out(saved, sheet=True)


@router.delete(
    "/characters/{int:pk}", response={204: None, **ERRORS}, operation_id="delete_character"
)
def delete_character(request: HttpRequest, pk: int) -> Any:
    """Delete a character (its sessions stay, without it, as on the page)."""
    character_of(request, pk).delete()
    return Status(204, None)


@router.get(
    "/characters/{int:pk}/card/{fmt}",
    response={200: None, **ERRORS},
    operation_id="export_card",
    openapi_extra={
        "responses": {
            200: {
                "description": "The card file",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        }
    },
)
def export_card(request: HttpRequest, pk: int, fmt: CardFormat) -> Any:
    """The character as a Character Card: V2 or V3, JSON or PNG (the PNG carries the card's
    own picture when it came as one)."""
    character = character_of(request, pk)
    try:
        return card_download(character, fmt)
    except CharacterError as exc:
        raise Refused(f"the stored character is invalid ({exc})", 409) from None
