"""Lorebook pages: import a standalone book (character_book or World Info JSON), edit its
entries, attach it to characters, export and delete it; edit a character's own book; take the
example lines a card hides in its description as sample lines; and the card part of the
new-session form.

Ownership as everywhere: another person's book or character is a 404, like a missing one.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from personaweb.cast import lore_forms, store
from personaweb.cast.card_page import NO_SAMPLES
from personaweb.cast.forms import LorebookImportForm
from personaweb.cast.models import Lorebook
from personaweb.cast.sessions import default_user_name, greeting_options
from personaweb.cast.uploads import CappedUploadHandler, too_big_request
from personaweb.cast.views import list_context, with_sheet
from personaweb.characters.cards import lines_elsewhere
from personaweb.characters.lorebook import LorebookError, normalise_book, read_book
from personaweb.characters.safejson import UnsafeJSON, loads
from personaweb.characters.sheet import MAX_SAMPLE_LINES, CharacterError, CharacterSheet
from personaweb.web.access import AuthedRequest
from personaweb.web.downloads import attachment
from personaweb.web.models import Character

MAX_LOREBOOK_BYTES = 4 * 1024 * 1024
"""The largest lorebook file imported, and the largest a stored book may grow to by edits."""


def owned_book(request: AuthedRequest, pk: int) -> Lorebook:
    return get_object_or_404(Lorebook, pk=pk, owner=request.user)


def _size(book: dict[str, Any]) -> int:
    return len(json.dumps(book, ensure_ascii=False).encode("utf-8"))


# --- standalone books ---------------------------------------------------------------------------


@csrf_exempt  # only so that the upload handler can be set before the body is parsed ...
@require_POST
@login_required
def lorebook_import(request: AuthedRequest) -> HttpResponse:
    if too_big_request(request, MAX_LOREBOOK_BYTES):
        return _refuse(request, f"the upload is larger than {_limit()}")
    cap = CappedUploadHandler(MAX_LOREBOOK_BYTES, request)
    request.upload_handlers.insert(0, cap)
    return _import(request, cap)


@csrf_protect  # ... and the CSRF check runs here, as Django's docs show for upload handlers
def _import(request: AuthedRequest, cap: CappedUploadHandler) -> HttpResponse:
    form = LorebookImportForm(request.POST, request.FILES)
    if cap.too_big:
        return _refuse(request, f"the file is larger than {_limit()}")
    if not form.is_valid():
        return _refuse(request, "choose a lorebook file (JSON) to import")
    upload = form.cleaned_data["book"]
    data = upload.read(MAX_LOREBOOK_BYTES + 1)
    if len(data) > MAX_LOREBOOK_BYTES:
        return _refuse(request, f"the file is larger than {_limit()}")
    try:
        book = normalise_book(loads(data, "lorebook"))
    except (UnsafeJSON, LorebookError) as exc:
        return _refuse(request, str(exc))
    stem = (upload.name or "lorebook").rsplit(".", 1)[0][:120] or "lorebook"
    name = read_book(book, stem).name[:120]
    lorebook = Lorebook.objects.create(owner=request.user, name=name, data=book)
    entries = len(read_book(book).entries)
    messages.success(request, f"Imported the lorebook {name} ({entries} entries).")
    return redirect("cast:lorebook", pk=lorebook.pk)


def _refuse(request: AuthedRequest, reason: str) -> HttpResponse:
    ctx = list_context(request, lore_error=f"Lorebook import refused: {reason}")
    return render(request, "cast/list.html", ctx, status=400)


def _limit() -> str:
    return f"{MAX_LOREBOOK_BYTES // (1024 * 1024)} MB"


@require_http_methods(["GET", "POST"])
@login_required
def lorebook_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    lorebook = owned_book(request, pk)
    book_form, entries = lore_forms.forms_for(lorebook.data, lorebook.name, request.POST or None)
    if request.method == "POST" and book_form.is_valid() and entries.is_valid():
        updated = lore_forms.apply(lorebook.data, book_form, entries)
        if _size(updated) > MAX_LOREBOOK_BYTES:
            book_form.add_error(None, f"the lorebook would be larger than {_limit()}")
        else:
            lorebook.data = updated
            lorebook.name = book_form.cleaned_data["name"]
            lorebook.save()
            messages.success(request, f"Saved the lorebook {lorebook.name}.")
            return redirect("cast:lorebook", pk=lorebook.pk)
    status = 400 if request.POST else 200
    return _editor(request, book_form, entries, lorebook=lorebook, status=status)


@require_POST
@login_required
def lorebook_attach(request: AuthedRequest, pk: int) -> HttpResponse:
    """Attach the book to exactly the ticked characters (the person's own)."""
    lorebook = owned_book(request, pk)
    wanted = [v for v in request.POST.getlist("characters") if v.isdigit()]
    lorebook.characters.set(Character.objects.filter(owner=request.user, pk__in=wanted))
    names = sorted(lorebook.characters.values_list("name", flat=True))
    attached = ", ".join(names) if names else "no character"
    messages.success(request, f"{lorebook.name} is attached to {attached}.")
    return redirect("cast:lorebook", pk=lorebook.pk)


@require_POST
@login_required
def lorebook_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    lorebook = owned_book(request, pk)
    name = lorebook.name
    lorebook.delete()
    messages.success(request, f"Deleted the lorebook {name}.")
    return redirect("cast:list")


@require_GET
@login_required
def lorebook_export(request: AuthedRequest, pk: int) -> HttpResponse:
    """The book as a `character_book` JSON file (it imports back as it is)."""
    lorebook = owned_book(request, pk)
    body = json.dumps(lorebook.data, ensure_ascii=False, indent=2).encode("utf-8")
    return attachment(body, f"lorebook-{lorebook.pk}.json")


# --- a character's own book ----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
@with_sheet
def character_lorebook(
    request: AuthedRequest, character: Character, sheet: CharacterSheet
) -> HttpResponse:
    fallback = f"{sheet.name}'s lorebook"
    book = sheet.character_book
    book_form, entries = lore_forms.forms_for(book, fallback, request.POST or None)
    if request.method == "POST" and book_form.is_valid() and entries.is_valid():
        updated = lore_forms.apply(book, book_form, entries)
        try:
            store.save_edit(character, sheet.with_changes(character_book=updated))
        except CharacterError as exc:  # CardError included
            book_form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved {sheet.name}'s lorebook.")
            return redirect("cast:detail", pk=character.pk)
    return _editor(
        request, book_form, entries, character=character, status=400 if request.POST else 200
    )


def _editor(
    request: AuthedRequest,
    book_form: lore_forms.BookForm,
    entries: Any,
    *,
    lorebook: Lorebook | None = None,
    character: Character | None = None,
    status: int = 200,
) -> HttpResponse:
    ctx: dict[str, Any] = {
        "book_form": book_form,
        "entries": entries,
        "lorebook": lorebook,
        "character": character,
    }
    if lorebook is not None:
        attached = set(lorebook.characters.values_list("pk", flat=True))
        ctx["characters"] = [
            (c, c.pk in attached) for c in Character.objects.filter(owner=request.user)
        ]
        ctx["problems"] = read_book(lorebook.data).problems
    elif character is not None:
        own = character.data.get("character_book") or {"entries": []}
        ctx["problems"] = read_book(own).problems
    return render(request, "cast/lorebook.html", ctx, status=status)


# --- sample lines from elsewhere -----------------------------------------------------------------


@require_POST
@login_required
@with_sheet
def character_samples(
    request: AuthedRequest, character: Character, sheet: CharacterSheet
) -> HttpResponse:
    """Take the example lines the card wrote in its description or greeting as sample lines."""
    found = [f.line for f in lines_elsewhere(sheet)][:MAX_SAMPLE_LINES]
    if sheet.sample_lines or not found:
        messages.error(request, "There are no example lines to take.")
        return redirect("cast:detail", pk=character.pk)
    try:
        store.save_edit(character, sheet.with_changes(sample_lines=found))
    except CharacterError as exc:  # CardError included
        messages.error(request, f"Could not take them: {exc}")
        return redirect("cast:detail", pk=character.pk)
    messages.success(request, f"Took {len(found)} sample line{'s' if len(found) != 1 else ''}.")
    return redirect("cast:detail", pk=character.pk)


# --- the card part of the new-session form -------------------------------------------------------


@require_GET
@login_required
def session_card(request: AuthedRequest) -> HttpResponse:
    """For the home page's new-session form: the chosen character's greetings, its sample-line
    warning, and the person's lorebooks to attach (re-rendered when the character changes)."""
    raw = request.GET.get("character", "")
    character = None
    if raw.isdigit():
        character = Character.objects.filter(owner=request.user, pk=int(raw)).first()
    ctx: dict[str, Any] = {
        "character": character,
        "lorebooks": Lorebook.objects.filter(owner=request.user),
    }
    if character is not None:
        ctx["greetings"] = greeting_options(
            character, None, group=False, user=default_user_name(request.user)
        )
        if not (character.data or {}).get("sample_lines"):
            ctx["warning"] = NO_SAMPLES
        ctx["attached"] = list(
            Lorebook.objects.filter(characters=character).values_list("name", flat=True)
        )
    return render(request, "cast/_session_card.html", ctx)
