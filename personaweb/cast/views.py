"""Pages for a person's characters: list, detail, create, edit, duplicate, delete.

Every view is for the signed-in owner only: another person's character is a 404, exactly like a
missing one, so ids reveal nothing. Card import and export live in `card_views.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.db.models.functions import Lower
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from personaweb.cast import card_page, store
from personaweb.cast.forms import PROFILE_ROLES, CharacterForm, ImportForm, LorebookImportForm
from personaweb.cast.models import Lorebook
from personaweb.cast.sessions import default_user_name
from personaweb.characters.cards import MAX_CARD_BYTES
from personaweb.characters.sheet import CharacterError, CharacterSheet
from personaweb.web.access import AuthedRequest, ensure_characters
from personaweb.web.models import Character

EXPORT_FORMATS = {
    # url part: (label, card version, container)
    "v2.json": ("V2 JSON", 2, "json"),
    "v3.json": ("V3 JSON", 3, "json"),
    "v2.png": ("V2 PNG", 2, "png"),
    "v3.png": ("V3 PNG", 3, "png"),
}


def owned(request: AuthedRequest, pk: int) -> Character:
    """The signed-in person's character, or 404 (also for someone else's)."""
    return get_object_or_404(Character, pk=pk, owner=request.user)


def broken(character: Character, exc: CharacterError) -> HttpResponse:
    """A stored sheet that no longer validates: say so instead of guessing at its fields."""
    return HttpResponse(
        f"The stored character {character.name!r} is invalid ({exc}); fix it in the admin.",
        status=409,
        content_type="text/plain; charset=utf-8",
    )


def list_context(request: AuthedRequest, **extra: Any) -> dict[str, Any]:
    # Meta.ordering does not apply to aggregate queries: order explicitly.
    characters = list(
        Character.objects.filter(owner=request.user)
        .annotate(session_count=Count("sessions"))
        .order_by(Lower("name"), "pk")
    )
    user = default_user_name(request.user)
    for character in characters:
        # Card text reaches the page with its macros filled in, as everywhere.
        character.description_shown = card_page.description(character, user)  # type: ignore[attr-defined]
    return {
        "characters": characters,
        "import_form": ImportForm(),
        "export_formats": EXPORT_FORMATS,
        "max_card_mb": MAX_CARD_BYTES // (1024 * 1024),
        "lorebooks": Lorebook.objects.filter(owner=request.user).annotate(
            attached=Count("characters")
        ),
        "lore_form": LorebookImportForm(),
        **extra,
    }


@require_GET
@login_required
def character_list(request: AuthedRequest) -> HttpResponse:
    # A first visit gets the bundled cast, as the home page does.
    ensure_characters(request.user)
    return render(request, "cast/list.html", list_context(request))


@require_GET
@login_required
def character_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    character = owned(request, pk)
    try:
        sheet = store.sheet_of(character)
    except CharacterError as exc:
        return broken(character, exc)
    return render(
        request,
        "cast/detail.html",
        {
            "character": character,
            "sheet": sheet,
            "card": card_page.shown(sheet, default_user_name(request.user)),
            "profiles": sorted(sheet.profiles.items()),
            "kept_keys": sorted(sheet.extensions) + sorted(sheet.card_extras),
            "export_formats": EXPORT_FORMATS,
            "session_count": character.sessions.count(),
            "attached_books": list(Lorebook.objects.filter(characters=character)),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def character_new(request: AuthedRequest) -> HttpResponse:
    form = CharacterForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and form.sheet is not None:
        character = _save(form, lambda sheet: store.save_new(request.user, sheet))
        if character is not None:
            messages.success(request, f"Created {character.name}.")
            return redirect("cast:detail", pk=character.pk)
    return _form_page(request, form, None, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@login_required
def character_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    character = owned(request, pk)
    try:
        base = store.sheet_of(character)
    except CharacterError as exc:
        return broken(character, exc)
    form = CharacterForm(request.POST or None, base=base)
    saving = request.method == "POST" and form.is_valid() and form.sheet is not None
    if saving and _save(form, lambda sheet: store.save_edit(character, sheet)) is not None:
        messages.success(request, f"Saved {character.name}.")
        return redirect("cast:detail", pk=character.pk)
    return _form_page(request, form, character, status=400 if form.errors else 200)


@require_POST
@login_required
def character_duplicate(request: AuthedRequest, pk: int) -> HttpResponse:
    character = owned(request, pk)
    try:
        sheet = store.sheet_of(character)
    except CharacterError as exc:
        return broken(character, exc)
    name = store.free_name(request.user, store.copy_names(sheet.name))
    copy = sheet.with_changes(name=name, slug=store.free_slug(request.user, _slug_of(name)))
    duplicate = store.apply_sheet(Character(owner=request.user), copy)
    duplicate.avatar = character.avatar  # the copy keeps the card's picture too
    duplicate.save()
    messages.success(request, f"Duplicated {character.name} as {duplicate.name}.")
    return redirect("cast:edit", pk=duplicate.pk)


@require_http_methods(["GET", "POST"])
@login_required
def character_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    # GET asks for confirmation; only the POST (with its CSRF token) deletes.
    character = owned(request, pk)
    if request.method == "POST":
        name = character.name
        character.delete()
        messages.success(request, f"Deleted {name}.")
        return redirect("cast:list")
    return render(
        request,
        "cast/confirm_delete.html",
        {"character": character, "session_count": character.sessions.count()},
    )


# --- helpers -------------------------------------------------------------------------------


def _slug_of(name: str) -> str:
    return CharacterSheet(name=name).slug


def _save(form: CharacterForm, save: Callable[[CharacterSheet], Character]) -> Character | None:
    """Save the form's sheet, or put the reason on the field it names (nothing saved)."""
    assert form.sheet is not None
    try:
        return save(form.sheet)
    except CharacterError as exc:
        form.add_error(form.field_for(str(exc)), str(exc))
        return None


def _form_page(
    request: AuthedRequest, form: CharacterForm, character: Character | None, *, status: int
) -> HttpResponse:
    return render(
        request,
        "cast/form.html",
        {"form": form, "character": character, "profile_roles": PROFILE_ROLES},
        status=status,
    )
