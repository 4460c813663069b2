"""`python manage.py style_score --character "Sara Wilcox" [FILE|-]`: score replies from anywhere.

Reads one reply per line (a file, or standard input with `-` or no argument) and prints each
line's style score (P(the character | reply), see personaweb/characters/style.py) and style
distance, then the means:

      1  score 0.97  distance 0.31  Nay, thou shalt not.
      2  score 0.02  distance 0.88  Sure, happy to help!  (sounds like plain speech)
    mean: score 0.50, distance 0.60

It scores with the very model a comparison page uses (`personaweb.compare.style.model_for`:
the bundled cast plus this character), so the numbers agree with the page. Bytes that are not
UTF-8 are replaced, not fatal; control characters are shown escaped, so a reply cannot drive
the terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from statistics import fmean
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from personaweb.characters.plain_voice import PLAIN_SLUG
from personaweb.compare import style
from personaweb.compare.lookup import CharacterNotFound, find_character

SHOWN_CHARS = 72
"""Each reply is echoed after its numbers, cut to this many characters."""


def read_replies(data: bytes) -> list[str]:
    """Non-blank lines of the input, decoded as UTF-8 (bad bytes replaced, a BOM dropped)."""
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    # One reply per line: split on newlines only, not on the other characters str.splitlines
    # treats as line breaks (a form feed or U+2028 inside a reply is part of it).
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line for line in lines if line.strip()]


def printable(text: str, limit: int = SHOWN_CHARS) -> str:
    """The reply for a terminal: control and format characters escaped, cut to `limit`."""
    shown = "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text.strip()
    )
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def speaker(slug: str) -> str:
    return "plain speech" if slug == PLAIN_SLUG else slug


class Command(BaseCommand):
    help = "Score replies (one per line) for how well they keep a character's voice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--character", required=True, help="a character's name or slug")
        parser.add_argument(
            "--user", default="", help="look among this person's characters first (username)"
        )
        parser.add_argument(
            "file", nargs="?", default="-", help="replies, one per line; - (default) is stdin"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            owner = None
            if options["user"]:
                owner = User.objects.filter(username=options["user"]).first()
                if owner is None:
                    raise CommandError(f"no user called {options['user']!r}")
            character = find_character(options["character"], owner)
        except CharacterNotFound as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(
                f"cannot read the database ({exc}); run `manage.py migrate`"
            ) from None
        model = style.model_for(character.slug, character.sample_lines)
        if model is None:
            raise CommandError(
                f"{character.name} ({character.source}) has no sample lines, so there is no "
                "voice to measure; add some on the Characters page"
            )
        replies = read_replies(self._read(options["file"]))
        if not replies:
            raise CommandError("no replies to score: the input has no non-blank lines")
        out = _encodable(self.stdout)
        scores = []
        for number, reply in enumerate(replies, 1):
            score = model.score(reply, character.slug)
            scores.append(score)
            elsewhere = score.predicted_slug != character.slug
            note = f"  (sounds like {speaker(score.predicted_slug)})" if elsewhere else ""
            self.stdout.write(
                out(
                    f"{number:>4}  score {score.probability:.2f}  distance {score.distance:.2f}"
                    f"  {printable(reply)}{note}"
                )
            )
        mean_score = fmean(s.probability for s in scores)
        mean_distance = fmean(s.distance for s in scores)
        self.stdout.write(f"mean: score {mean_score:.2f}, distance {mean_distance:.2f}")

    def _read(self, name: str) -> bytes:
        if name == "-":
            return sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else b""
        try:
            return Path(name).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc.strerror or exc}") from None


def _encodable(stream: Any) -> Any:
    """A function that makes text safe for the stream's encoding (a C-locale terminal cannot
    print every reply a model writes; it gets escapes instead of a UnicodeEncodeError)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"

    def fit(text: str) -> str:
        return text.encode(encoding, errors="backslashreplace").decode(encoding)

    return fit
