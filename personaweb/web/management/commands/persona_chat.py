"""Chat with a persona hierarchy in the terminal, autonomously or reviewing every proposal."""

from __future__ import annotations

import asyncio
import getpass
import os
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from personaweb.characters.cards import parse_card
from personaweb.characters.macros import DEFAULT_USER
from personaweb.characters.sheet import CharacterError, CharacterSheet, load_bundled
from personaweb.console import ConsoleChat, ConsoleObserver, load_tree
from personaweb.llm import build_chat_model
from personaweb.llm.config import endpoint_from_env
from personaweb.llm.types import LLMProfile
from personaweb.personas import (
    HIERARCHIES,
    STRATEGIES,
    ActionRefused,
    Engine,
    MemoryStore,
    Mode,
    RunConfig,
    build_hierarchy,
)
from personaweb.personas.dialogue import SimpleCharacter, chat_character


@dataclass
class Found:
    """A character for the console, from wherever it was found."""

    character: SimpleCharacter | None
    """As this chat meets it (None for the code team)."""
    profiles: dict[str, LLMProfile]
    """Its per-role LLM profiles."""
    source: str
    """Where it came from, for the banner."""


def bundled_sheets() -> list[CharacterSheet]:
    directory = Path(getattr(settings, "CHARACTERS_DIR", Path(settings.BASE_DIR) / "characters"))
    try:
        return load_bundled(directory)
    except CharacterError as exc:
        raise CommandError(str(exc)) from None


def stored_characters(name: str, owner: str | None) -> list[Any]:
    """Characters in the database called `name` (name or slug, any case; or `#id`), of `owner`
    when given. None found, or no database yet (a fresh clone before `make run`): []."""
    from django.db import DatabaseError, connection

    db = settings.DATABASES["default"]
    if str(db["ENGINE"]).endswith("sqlite3") and not Path(str(db["NAME"])).exists():
        return []  # no database yet: do not create an empty file by asking
    from django.db.models import Q

    from personaweb.web.models import Character

    try:
        if "web_character" not in connection.introspection.table_names():
            return []
        rows = Character.objects.select_related("owner")
        if owner:
            rows = rows.filter(owner__username=owner)
        wanted = name.strip()
        if wanted.startswith("#") and wanted[1:].isdigit():
            return list(rows.filter(pk=int(wanted[1:])))
        return list(rows.filter(Q(name__iexact=wanted) | Q(slug__iexact=wanted)).order_by("pk"))
    except DatabaseError:
        return []


def find_character(name: str, *, owner: str | None, user_name: str | None) -> Found:
    """The character `--character` names, in this order: a card file (JSON or PNG) at that
    path; a character in the database (yours with --owner); a bundled sheet. Its `{{user}}`
    is `user_name`, else, as on the web, its owner's first name or username, else "User"."""
    path = Path(name).expanduser()
    if path.suffix.lower() in {".json", ".png"} or path.is_file():
        try:
            sheet = parse_card(path.read_bytes(), path.name)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        except CharacterError as exc:
            raise CommandError(f"{path.name}: {exc}") from None
        who = user_name or DEFAULT_USER
        # A card's endpoint is never called unconfirmed (README: Characters): its roles use
        # the configured endpoint.
        profiles = {role: replace(p, base_url=None) for role, p in sheet.profiles.items()}
        return Found(chat_character(sheet, user=who), profiles, f"card {path.name}")
    rows = stored_characters(name, owner)
    if len({row.owner_id for row in rows}) > 1:
        owners = ", ".join(sorted({row.owner.username for row in rows}))
        raise CommandError(f"{len(rows)} people have a character {name!r} ({owners}): add --owner")
    if rows:
        from personaweb.cast.sessions import character_of, default_user_name
        from personaweb.web.building import character_profiles

        row = rows[0]
        who = user_name or default_user_name(row.owner)
        return Found(
            character_of(row, user=who),
            character_profiles(row),
            f"{row.owner.username}'s character #{row.pk}",
        )
    if owner:
        raise CommandError(f"{owner!r} has no character {name!r}")
    sheets = bundled_sheets()
    wanted = name.strip().lower()
    for sheet in sheets:
        if wanted in {sheet.slug.lower(), sheet.name.lower()}:
            who = user_name or DEFAULT_USER
            return Found(chat_character(sheet, user=who), dict(sheet.profiles), "bundled sheet")
    known = ", ".join(s.name for s in sheets)
    raise CommandError(
        f"no character {name!r}: not a card file, not in the database, and not bundled "
        f"(bundled characters: {known})"
    )


def login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment
        return ""


class Command(BaseCommand):
    help = "Chat with a persona hierarchy in the terminal (review mode: steer every proposal)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hierarchy", choices=HIERARCHIES, default="dialogue")
        parser.add_argument(
            "--character",
            default="Sara Wilcox",
            help="a card file (JSON or PNG), a character in the database (name, slug or #id), "
            "or a bundled character",
        )
        parser.add_argument("--owner", help="whose character in the database (a username)")
        parser.add_argument(
            "--user-name", help="your name in the chat ({{user}}); default: as on the web"
        )
        parser.add_argument("--strategy", choices=STRATEGIES, default="nested")
        parser.add_argument("--review", action="store_true", help="stop at every proposal")
        parser.add_argument("--save", type=Path, help="write the step tree to this JSON file")
        parser.add_argument("--replay", type=Path, help="a saved tree to replay from")
        parser.add_argument("--from", dest="from_step", help="step to replay from: #seq or id")
        parser.add_argument("--feedback", help="feedback for the replayed step (else: ask)")

    def out(self, text: str) -> None:
        # Django's OutputWrapper adds a newline per write; streamed tokens must not get one.
        self.stdout.write(text, ending="")
        self.stdout.flush()

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["replay"] and not opts["from_step"]:
            raise CommandError("--replay needs --from STEP")
        store = MemoryStore()
        meta = {
            "hierarchy": opts["hierarchy"],
            "character": opts["character"],
            "strategy": opts["strategy"],
        }
        if opts["replay"]:
            try:
                store, saved = load_tree(opts["replay"])
            except OSError as exc:
                raise CommandError(f"cannot read {opts['replay']}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise CommandError(f"{opts['replay']}: {exc}") from None
            meta.update(saved)
        if meta["hierarchy"] not in HIERARCHIES or meta["strategy"] not in STRATEGIES:
            raise CommandError(
                f"the saved tree names hierarchy {meta['hierarchy']!r}, strategy "
                f"{meta['strategy']!r}: not one this version runs"
            )
        found = Found(None, {}, "")
        if meta["hierarchy"] == "dialogue":
            found = find_character(
                meta["character"],
                owner=opts["owner"] or meta.get("owner") or None,
                user_name=opts["user_name"] or meta.get("user") or None,
            )
            assert found.character is not None
            meta["user"] = found.character.user
            if opts["owner"]:
                meta["owner"] = opts["owner"]
        root = build_hierarchy(
            meta["hierarchy"],
            character=found.character,
            strategy=meta["strategy"],
            profiles=found.profiles or None,
        )
        config = endpoint_from_env(os.environ)
        mode = Mode.REVIEW if opts["review"] else Mode.AUTONOMOUS
        with ExitStack() as stack:
            if config.embedded:
                from personaweb.llm.embedded import EmbeddedServer, server_answers

                if not server_answers(config.base_url or ""):
                    self.stdout.write("starting the embedded local model ...")
                    stack.enter_context(EmbeddedServer.from_config(config))
            engine = Engine(
                root,
                store,
                build_chat_model(config),
                RunConfig(mode=mode),
                ConsoleObserver(self.out),
            )
            engine.actor = login_name()  # who approved, rejected, ... (and traces say so)
            chat = ConsoleChat(
                engine, write=self.out, save_to=opts["save"] or opts["replay"], meta=meta
            )
            source = f", {found.source}" if found.source else ""
            self.stdout.write(
                f"{root.display_name} ({meta['hierarchy']}{source}, {mode.value} mode, "
                f"model {config.default_model} at {config.base_url or 'OpenAI'})"
            )
            try:
                if opts["replay"]:
                    feedback = opts["feedback"]
                    if feedback is None:
                        feedback = input("feedback for that step (empty: just re-propose)> ")
                    asyncio.run(chat.replay(opts["from_step"], feedback))
                else:
                    asyncio.run(chat.chat())
            except (ValueError, ActionRefused, EOFError) as exc:
                raise CommandError(str(exc) or type(exc).__name__) from None
