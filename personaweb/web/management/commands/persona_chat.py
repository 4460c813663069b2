"""Chat with a persona hierarchy in the terminal, autonomously or reviewing every proposal."""

from __future__ import annotations

import asyncio
import getpass
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from personaweb.characters.sheet import CharacterError, load_bundled
from personaweb.console import ConsoleChat, ConsoleObserver, load_tree
from personaweb.llm import build_chat_model
from personaweb.llm.config import endpoint_from_env
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


def find_character(name: str) -> Any:
    directory = Path(getattr(settings, "CHARACTERS_DIR", Path(settings.BASE_DIR) / "characters"))
    try:
        sheets = load_bundled(directory)
    except CharacterError as exc:
        raise CommandError(str(exc)) from None
    wanted = name.strip().lower()
    for sheet in sheets:
        if wanted in {sheet.slug.lower(), sheet.name.lower()}:
            return sheet
    known = ", ".join(s.name for s in sheets)
    raise CommandError(f"no character {name!r}; bundled characters: {known}")


def login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment
        return ""


class Command(BaseCommand):
    help = "Chat with a persona hierarchy in the terminal (review mode: steer every proposal)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hierarchy", choices=HIERARCHIES, default="dialogue")
        parser.add_argument("--character", default="Sara Wilcox")
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
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot read {opts['replay']}: {exc}") from None
            meta.update(saved)
        character = find_character(meta["character"]) if meta["hierarchy"] == "dialogue" else None
        profiles = getattr(character, "profiles", None) or None
        root = build_hierarchy(
            meta["hierarchy"], character=character, strategy=meta["strategy"], profiles=profiles
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
            self.stdout.write(
                f"{root.display_name} ({meta['hierarchy']}, {mode.value} mode, "
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
