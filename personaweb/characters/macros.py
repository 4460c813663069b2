"""Character Card macros: `{{char}}`, `{{user}}` and the other common ones, in card text.

Cards written for SillyTavern and its kin say `{{char}}` for the character and `{{user}}` for
the person, and expect the frontend to put the names in before the text reaches a model or a
page. The rules, applied by `Macros.expand` and nowhere else:

1. A macro is `{{name}}` (any case, spaces allowed inside the braces), or one of the legacy
   angle forms `<BOT>`, `<CHAR>`, `<USER>` (any case).
2. Known macros:
   - `char`: the character's nickname if the card gives one (V3), else its name
     (`card_macros` applies this);
   - `user`: the person's display name in this chat;
   - `group`: the names of a group chat's characters, comma-separated (outside a group: the
     character's own name); `charIfNotGroup`: the character's name outside a group, the group's
     names in one;
   - `original`: only where a caller says what it stands for (a card's `system_prompt` and
     `post_history_instructions`, see personas/card_prompt.py); elsewhere it is left alone;
   - `newline` (a line break), `noop` (nothing), and comments `{{// ...}}` (removed).
3. Unknown macros (`{{random:...}}`, `{{time}}`, `{{roll:d6}}`...) are left exactly as they are:
   nothing is guessed, and a person reading the prompt sees what the card asked for.
4. One pass: text that a macro brings in is not expanded again (a name that contains `{{user}}`
   stays as written).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_USER = "User"
"""What `{{user}}` becomes when nobody said who the person is."""

_MACRO = re.compile(
    r"\{\{\s*(//.*?|[A-Za-z_]+)\s*\}\}|<(bot|char|user)>", re.IGNORECASE | re.DOTALL
)


@dataclass(frozen=True)
class Macros:
    """What the macros of one character's card stand for in one chat."""

    char: str
    """The character's name as the card wants it said (the V3 nickname, else the name)."""
    user: str = DEFAULT_USER
    """The person's display name."""
    group: tuple[str, ...] = ()
    """In a group chat: every character's name, in member order; empty outside one."""

    def expand(self, text: str, *, original: str | None = None) -> str:
        """`text` with its known macros replaced (see the module's rules). `original` is what
        `{{original}}` stands for; None leaves it in place (for `fill_original` later)."""
        if "{" not in text and "<" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            word = (match.group(1) or match.group(2) or "").lower()
            if word.startswith("//"):
                return ""
            value = self._value(word, original)
            return match.group(0) if value is None else value

        return _MACRO.sub(replace, text)

    def expand_all(self, texts: Sequence[str]) -> list[str]:
        return [self.expand(t) for t in texts]

    def _value(self, word: str, original: str | None) -> str | None:
        names = ", ".join(self.group) if self.group else self.char
        values = {
            "char": self.char,
            "bot": self.char,
            "user": self.user,
            "group": names,
            "charifnotgroup": names,
            "newline": "\n",
            "noop": "",
        }
        if word == "original":
            return original
        return values.get(word)


def card_macros(
    name: str,
    card_extras: Mapping[str, Any] | None,
    user: str = DEFAULT_USER,
    group: Sequence[str] = (),
) -> Macros:
    """The macros of a character's card: `{{char}}` is its V3 `nickname` when the card gives
    one (kept among the card's other data keys), else its name."""
    nickname = (card_extras or {}).get("nickname")
    said = nickname.strip() if isinstance(nickname, str) and nickname.strip() else name
    return Macros(char=said, user=user or DEFAULT_USER, group=tuple(group))


def fill_original(text: str, original: str) -> str:
    """`text` (already expanded, with `{{original}}` left in place) with it put in."""
    return re.sub(r"\{\{\s*original\s*\}\}", lambda _m: original, text, flags=re.IGNORECASE)


def has_macros(text: str) -> bool:
    """Whether `text` still holds something that looks like a macro (known or not)."""
    return _MACRO.search(text) is not None
