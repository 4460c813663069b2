"""Character Card import (upload) and export (download), V2 and V3, JSON and PNG.

A card is untrusted input: it is size-capped while it streams in, parsed by
`personaweb.characters.parse_card` (which validates the sheet), and only a card that passes
everything creates a row. Export writes back whatever the card carried that we do not model
(unknown `extensions` keys and other `data` keys), so a round trip loses nothing; and a card
is only stored if its largest export can be imported back (`check_exportable`): a PNG card
carries its text twice, base64-encoded, so a card near the limit would otherwise export larger
than PersonaWeb reads.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from personaweb.cast import lore_links, store
from personaweb.cast.forms import ImportForm
from personaweb.cast.uploads import CappedUploadHandler, too_big_request
from personaweb.cast.views import EXPORT_FORMATS, broken, list_context, owned
from personaweb.characters.cards import (
    MAX_CARD_BYTES,
    CardError,
    card_to_json,
    card_to_png,
    check_exportable,
    parse_card,
    picture_of,
)
from personaweb.characters.png import is_png
from personaweb.characters.sheet import CharacterError
from personaweb.web.access import AuthedRequest
from personaweb.web.downloads import attachment
from personaweb.web.models import Character

CONTENT_TYPES = {"json": "application/json; charset=utf-8", "png": "image/png"}


@require_GET
@login_required
def character_export(request: AuthedRequest, pk: int, fmt: str) -> HttpResponse:
    character = owned(request, pk)
    if fmt not in EXPORT_FORMATS:
        raise Http404("no such card format")
    try:
        return card_download(character, fmt)
    except CharacterError as exc:
        return broken(character, exc)


def card_download(character: Character, fmt: str) -> HttpResponse:
    """The character as a card file in one of EXPORT_FORMATS (the page and the API).
    CharacterError when its stored sheet no longer validates."""
    _, version, container = EXPORT_FORMATS[fmt]
    sheet = store.sheet_of(character)
    if container == "png":
        # The card's own picture when it came as a PNG; a generated avatar otherwise.
        image = bytes(character.avatar) if character.avatar else None
        body: bytes | str = card_to_png(sheet, version, image=image)
    else:
        body = card_to_json(sheet, version)
    return attachment(body, f"{sheet.slug}.card-v{version}.{container}", CONTENT_TYPES[container])


@csrf_exempt  # only so that the upload handler can be set before the body is parsed ...
@require_POST
@login_required
def character_import(request: AuthedRequest) -> HttpResponse:
    if too_big_request(request, MAX_CARD_BYTES):
        return _refuse(request, f"the upload is larger than {_limit()}")
    cap = CappedUploadHandler(MAX_CARD_BYTES, request)
    request.upload_handlers.insert(0, cap)
    return _import(request, cap)


@csrf_protect  # ... and the CSRF check runs here, as Django's docs show for upload handlers
def _import(request: AuthedRequest, cap: CappedUploadHandler) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if cap.too_big:
        return _refuse(request, f"the card is larger than {_limit()}")
    if not form.is_valid():
        return _refuse(request, "choose a card file (JSON or PNG) to import", form=form)
    upload = form.cleaned_data["card"]
    data = upload.read(MAX_CARD_BYTES + 1)  # never more than the cap, whatever the handler
    try:
        character, note = import_card(request.user, data, upload.name or "")
    except CharacterError as exc:  # CardError is a CharacterError
        return _refuse(request, str(exc))
    messages.success(request, f"Imported {upload.name}{note}")
    return redirect("cast:detail", pk=character.pk)


def import_card(owner: User, data: bytes, filename: str) -> tuple[Character, str]:
    """A new character of `owner`'s from a card file (the page and the API), and a note on
    what changed on the way in (a new name, a picture not kept). CharacterError says why a
    card is refused; nothing is created then."""
    if len(data) > MAX_CARD_BYTES:
        raise CardError(f"the card is larger than {_limit()}")
    sheet = parse_card(data, filename)
    # Only the picture is kept of the PNG: the card text is stored apart and written back in.
    picture = picture_of(data) if is_png(data) else None
    dropped = ""
    try:
        # The card as it came must leave EXPORT_HEADROOM: the rename below may use some.
        check_exportable(sheet, picture)
    except CardError as exc:
        if picture is None:
            raise
        try:
            check_exportable(sheet, None)  # the card fits without its picture: keep the card
        except CardError:
            raise exc from None
        picture = None
        dropped = (
            " Its picture was not kept: with it, the card would export larger than can be "
            "imported back, so exports show a plain avatar."
        )
    wanted = sheet.name
    name = store.free_name(owner, store.numbered_names(wanted))
    sheet = sheet.with_changes(name=name, slug=store.free_slug(owner, sheet.slug))
    check_exportable(sheet, picture, headroom=0)  # renamed, it still reads back
    character = store.apply_sheet(Character(owner=owner), sheet)
    character.avatar = picture
    with transaction.atomic():
        character.save()
        # The World Info book the card names (extensions.world), when the person has it.
        world = lore_links.link_world(character)
    note = "" if name == wanted else f" as {name} ({wanted} was taken)"
    if world is not None:
        dropped += f" Attached your lorebook {world.name}: the card names it as its world."
    return character, f"{note}.{dropped}"


def _refuse(request: AuthedRequest, reason: str, form: ImportForm | None = None) -> HttpResponse:
    """The list page again, with the reason; nothing was created."""
    ctx = list_context(request, import_error=f"Import refused: {reason}")
    if form is not None:
        ctx["import_form"] = form
    return render(request, "cast/list.html", ctx, status=400)


def _limit() -> str:
    return f"{MAX_CARD_BYTES // (1024 * 1024)} MB"
