"""Pages for a person's characters: list, detail, create, edit, duplicate, delete.

Every view is for the signed-in owner only: another person's character is a 404, exactly like a
missing one, so ids reveal nothing; a stored sheet that no longer validates is a 409 that says
so (`with_sheet`). Card import and export live in `card_views.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.db.models.functions import Lower
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from personaweb.cast import card_page, lore_links, store
from personaweb.cast.forms import PROFILE_ROLES, CharacterForm, ImportForm, LorebookImportForm
from personaweb.cast.models import Lorebook
from personaweb.cast.sessions import default_user_name
from personaweb.characters.cards import MAX_CARD_BYTES
from personaweb.characters.sheet import CharacterError, CharacterSheet
from personaweb.web import building
from personaweb.web.access import AuthedRequest, ensure_characters, refuse
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
    return refuse(
        f"The stored character {character.name!r} is invalid ({exc}); fix it in the admin."
    )


SheetView = Callable[Concatenate[AuthedRequest, Character, CharacterSheet, ...], HttpResponse]


def with_sheet(view: SheetView) -> Callable[..., HttpResponse]:
    """The view gets the signed-in person's character (`pk`, else 404) and its validated sheet
    (a sheet that no longer validates answers 409, `broken`)."""

    @functools.wraps(view)
    def wrapper(request: AuthedRequest, pk: int, *args: Any, **kwargs: Any) -> HttpResponse:
        character = owned(request, pk)
        try:
            sheet = store.sheet_of(character)
        except CharacterError as exc:
            return broken(character, exc)
        return view(request, character, sheet, *args, **kwargs)

    return wrapper


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
@with_sheet
def character_detail(
    request: AuthedRequest, character: Character, sheet: CharacterSheet
) -> HttpResponse:
    confirmed = set(character.confirmed_endpoints or [])
    return render(
        request,
        "cast/detail.html",
        {
            "character": character,
            "sheet": sheet,
            "card": card_page.shown(sheet, default_user_name(request.user)),
            # (role, profile, whether its endpoint is confirmed)
            "profiles": [
                (role, p, p.base_url in confirmed) for role, p in sorted(sheet.profiles.items())
            ],
            "unconfirmed": building.unconfirmed_endpoints(character),
            "kept_keys": sorted(sheet.extensions) + sorted(sheet.card_extras),
            "export_formats": EXPORT_FORMATS,
            "session_count": character.sessions.count(),
            "attached_books": list(Lorebook.objects.filter(characters=character)),
            "missing_world": lore_links.missing_world(character),
        },
    )


@require_POST
@login_required
def character_confirm_endpoint(request: AuthedRequest, pk: int) -> HttpResponse:
    """The owner agrees that this character's profiles may call an endpoint its card named.
    Only an endpoint the profiles name can be confirmed."""
    character = owned(request, pk)
    url = request.POST.get("url", "")
    if url in (character.confirmed_endpoints or []):
        messages.info(request, f"{url} was already confirmed.")
    elif url in building.unconfirmed_endpoints(character):
        character.confirmed_endpoints = [*(character.confirmed_endpoints or []), url]
        character.save(update_fields=["confirmed_endpoints", "updated_at"])
        messages.success(request, f"Confirmed {url}: {character.name}'s profiles may call it.")
    else:
        return refuse("that endpoint is not in this character's profiles", 400)
    return redirect("cast:detail", pk=character.pk)


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
@with_sheet
def character_edit(
    request: AuthedRequest, character: Character, base: CharacterSheet
) -> HttpResponse:
    form = CharacterForm(request.POST or None, base=base)
    saving = request.method == "POST" and form.is_valid() and form.sheet is not None
    if saving and _save(form, lambda sheet: store.save_edit(character, sheet)) is not None:
        messages.success(request, f"Saved {character.name}.")
        return redirect("cast:detail", pk=character.pk)
    return _form_page(request, form, character, status=400 if form.errors else 200)


@require_POST
@login_required
@with_sheet
def character_duplicate(
    request: AuthedRequest, character: Character, sheet: CharacterSheet
) -> HttpResponse:
    name = store.free_name(request.user, store.copy_names(sheet.name))
    copy = sheet.with_changes(name=name, slug=store.free_slug(request.user, _slug_of(name)))
    duplicate = store.apply_sheet(Character(owner=request.user), copy)
    duplicate.avatar = character.avatar  # the copy keeps the card's picture too
    duplicate.confirmed_endpoints = list(character.confirmed_endpoints or [])  # same owner
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
    # The form does not edit endpoints (cards bring them): say which roles have one, and
    # whether the owner has confirmed it.
    endpoints = []
    if character is not None and form.base is not None:
        confirmed = set(character.confirmed_endpoints or [])
        endpoints = [
            (role, p.base_url, p.base_url in confirmed)
            for role, p in sorted(form.base.profiles.items())
            if p.base_url
        ]
    return render(
        request,
        "cast/form.html",
        {
            "form": form,
            "character": character,
            "profile_roles": PROFILE_ROLES,
            "endpoints": endpoints,
        },
        status=status,
    )
