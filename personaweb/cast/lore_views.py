"""Lorebook pages: import a standalone book (character_book or World Info JSON), edit its
entries, attach it to characters, export and delete it; edit a character's own book; take the
example lines a card hides in its description as sample lines; and the card part of the
new-session form.

One copy of each book (lore_links): importing a book the person has already, or attaching one
to a character that has the same book, asks first what to do.

Ownership as everywhere: another person's book or character is a 404, like a missing one.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from personaweb.cast import lore_forms, lore_links, store
from personaweb.cast.card_page import NO_SAMPLES
from personaweb.cast.forms import LorebookImportForm
from personaweb.cast.models import Lorebook
from personaweb.cast.sessions import default_user_name, greeting_options
from personaweb.cast.uploads import CappedUploadHandler, too_big_request
from personaweb.cast.views import list_context, with_sheet
from personaweb.characters.cards import lines_elsewhere
from personaweb.characters.lorebook import (
    LorebookError,
    complete_book,
    normalise_book,
    read_book,
)
from personaweb.characters.safejson import UnsafeJSON, loads
from personaweb.characters.sheet import MAX_SAMPLE_LINES, CharacterError, CharacterSheet
from personaweb.web.access import AuthedRequest
from personaweb.web.downloads import attachment
from personaweb.web.models import Character

MAX_LOREBOOK_BYTES = 4 * 1024 * 1024
"""The largest lorebook file imported, and the largest a stored book may grow to by edits."""

PENDING_IMPORT = "cast:lorebook_import"
"""The session key of an imported file that duplicates one of the person's books, waiting for
their choice: use the existing book, or the file as its replacement."""
DUPLICATE_CHOICES = ("existing", "replace")


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
    if "duplicate" in request.POST:
        return _resolve_import(request, request.POST["duplicate"])
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
    existing = lore_links.same_standalone(request.user, book)
    if existing is not None:
        # One copy of each book: ask before making a second (the file waits in the session).
        token = secrets.token_urlsafe(12)
        request.session[PENDING_IMPORT] = {
            "token": token,
            "name": name,
            "data": book,
            "existing": existing.pk,
        }
        offer = {"token": token, "name": name, "existing": existing}
        return render(request, "cast/list.html", list_context(request, lore_duplicate=offer))
    with transaction.atomic():
        lorebook = Lorebook.objects.create(owner=request.user, name=name, data=book)
        linked = lore_links.link_book(lorebook)
    entries = len(read_book(book).entries)
    note = linked.note(lorebook)
    messages.success(request, f"Imported the lorebook {name} ({entries} entries).{note}")
    return redirect("cast:lorebook", pk=lorebook.pk)


def _resolve_import(request: AuthedRequest, choice: str) -> HttpResponse:
    """The person's answer to "you have this lorebook already" (see `_import`)."""
    pending = request.session.get(PENDING_IMPORT)
    if choice not in DUPLICATE_CHOICES:
        return _refuse(request, "choose to use the lorebook you have or to replace it")
    if not isinstance(pending, dict) or pending.get("token") != request.POST.get("pending"):
        return _refuse(request, "that import is no longer waiting; import the file again")
    del request.session[PENDING_IMPORT]
    name, book = str(pending["name"]), pending["data"]
    existing = Lorebook.objects.filter(owner=request.user, pk=pending["existing"]).first()
    if choice == "existing" and existing is not None:
        messages.success(request, f"Kept your lorebook {existing.name}; the file was not imported.")
        return redirect("cast:lorebook", pk=existing.pk)
    with transaction.atomic():
        if existing is None:  # deleted meanwhile: the file is the only copy now
            lorebook = Lorebook.objects.create(owner=request.user, name=name, data=book)
            said = f"Imported the lorebook {name}."
        else:
            said = f"Replaced your lorebook {existing.name} with the file {name}"
            lorebook, lorebook.name, lorebook.data = existing, name, book
            lorebook.save()
            kept = sorted(lorebook.characters.values_list("name", flat=True))
            said += f" (still attached to {', '.join(kept)})." if kept else "."
        linked = lore_links.link_book(lorebook)
    messages.success(request, f"{said}{linked.note(lorebook)}")
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
    """Attach the book to exactly the ticked characters (the person's own). A ticked character
    that has the same book already (lore_links) is not attached until the person chooses:
    `duplicates=replace` takes its copy out and attaches this book, `duplicates=skip` leaves it
    as it is."""
    lorebook = owned_book(request, pk)
    wanted = [v for v in request.POST.getlist("characters") if v.isdigit()]
    chosen = list(Character.objects.filter(owner=request.user, pk__in=wanted))
    before = set(lorebook.characters.values_list("pk", flat=True))
    new = [c for c in chosen if c.pk not in before]
    holders = lore_links.copies_of(lorebook.data, new, exclude=lorebook.pk)
    clashes = [(c, holders.of(c)) for c in new if holders.of(c)]
    choice = request.POST.get("duplicates", "")
    if clashes and choice not in ("replace", "skip"):
        error = "choose to replace or to skip" if choice else ""
        return _editor(
            request,
            *lore_forms.forms_for(lorebook.data, lorebook.name),
            lorebook=lorebook,
            status=400 if error else 200,
            duplicates=clashes,
            ticked=[c.pk for c in chosen],
            duplicate_error=error,
        )
    said = ""
    try:
        with transaction.atomic():
            for character, copies in clashes:
                if choice == "replace":
                    lore_links.remove_copies(character, copies)
            skipped = {c.pk for c, _ in clashes} if choice == "skip" else set()
            lorebook.characters.set([c for c in chosen if c.pk not in skipped])
    except CharacterError as exc:  # CardError included
        messages.error(request, f"Nothing was attached: {exc}")
        return redirect("cast:lorebook", pk=lorebook.pk)
    if clashes:
        which = ", ".join(c.name for c, _ in clashes)
        said = (
            f" Replaced the copies {which} had."
            if choice == "replace"
            else f" Skipped {which}: the same book is there already."
        )
    names = sorted(lorebook.characters.values_list("name", flat=True))
    attached = ", ".join(names) if names else "no character"
    messages.success(request, f"{lorebook.name} is attached to {attached}.{said}")
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
    """The book as a `character_book` JSON file, named as it is here, each entry with its
    `use_regex` (complete_book): it imports back as it is, name and all."""
    lorebook = owned_book(request, pk)
    book = complete_book({**lorebook.data, "name": lorebook.name}, lorebook.name)
    body = json.dumps(book, ensure_ascii=False, indent=2).encode("utf-8")
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
    **extra: Any,
) -> HttpResponse:
    ctx: dict[str, Any] = {
        "book_form": book_form,
        "entries": entries,
        "lorebook": lorebook,
        "character": character,
        **extra,
    }
    if lorebook is not None:
        attached = set(lorebook.characters.values_list("pk", flat=True))
        mine = list(Character.objects.filter(owner=request.user))
        # (character, attached, the copies of this book it has)
        holders = lore_links.copies_of(lorebook.data, mine, exclude=lorebook.pk)
        ctx["characters"] = [(c, c.pk in attached, holders.of(c)) for c in mine]
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
        # One copy of each book: a book the character has already adds nothing to the session.
        ctx["has_already"] = lore_links.books_had(character, ctx["lorebooks"])
    return render(request, "cast/_session_card.html", ctx)
