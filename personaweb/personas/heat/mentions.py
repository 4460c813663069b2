"""Who a message is addressed to: @mentions, plain names, and questions to the whole group."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

from personaweb.personas.heat.chat import Member, strip_links

# Addressing the room as a whole mentions every member, as in most chat apps.
_EVERYONE_HANDLES = re.compile(r"(?<![\w@])@(?:everyone|all|here|channel)(?![\w-])", re.IGNORECASE)
_GROUP_WORDS = re.compile(
    r"(?<![\w-])(?:every(?:one|body)|any(?:one|body)|some(?:one|body)|all of you|you all|"
    r"y'?all|you guys|guys|folks|people|team|gang)(?![\w-])",
    re.IGNORECASE,
)
# Before a name: not a word character, not '@' (an '@' has its own rule), and not a hyphenated
# compound such as "Mary-Ann". After it: not a word character and not "-word" either.
# Possessives ("Ann's") still count, because the apostrophe is not a word character.
_BEFORE = r"(?<![\w@])(?<!\w-)"
_AFTER = r"(?!\w)(?!-\w)"


def _phrase(name: str) -> str:
    """A regex for a name whose words may be separated by any run of whitespace."""
    return r"\s+".join(re.escape(word) for word in name.split())


@lru_cache(maxsize=512)
def _compile(alternatives: tuple[str, ...], handle: bool) -> re.Pattern[str] | None:
    if not alternatives:
        return None
    # Longest first, so "Sara Wilcox" wins over "Sara" inside one alternation.
    body = "|".join(_phrase(a) for a in sorted(alternatives, key=len, reverse=True))
    before = r"(?<![\w@])@" if handle else _BEFORE
    after = r"(?![\w-])" if handle else _AFTER
    return re.compile(rf"{before}(?:{body}){after}", re.IGNORECASE)


def _plain_names(member: Member, ambiguous: set[str]) -> tuple[str, ...]:
    names = [member.name, *member.aliases]
    if member.first_name.casefold() not in ambiguous:
        names.append(member.first_name)
    return tuple(n for n in dict.fromkeys(names) if n.strip())


def _handles(member: Member, ambiguous: set[str]) -> tuple[str, ...]:
    # "@Sara Wilcox", "@SaraWilcox", "@sara_wilcox", "@sara-wilcox" and "@Sara" all address her.
    squashed = "".join(member.name.split())
    handles = [member.slug, member.slug.replace("_", "-"), member.name, squashed, *member.aliases]
    if member.first_name.casefold() not in ambiguous:
        handles.append(member.first_name)
    return tuple(h for h in dict.fromkeys(handles) if h.strip())


def _ambiguous_first_names(members: Sequence[Member]) -> set[str]:
    """First names shared by several members: "Ann" alone cannot say which Ann is meant."""
    # A member whose whole name is "Ann" keeps it: the full name is always matched.
    counts = Counter(m.first_name.casefold() for m in members if m.first_name)
    return {name for name, n in counts.items() if n > 1}


def parse_mentions(text: str, members: Iterable[Member]) -> set[str]:
    """The slugs of the members a message names, by @handle or plainly.

    Recognised, case-insensitively and only as whole words: `@slug`, `@Full Name`,
    `@FullName`, `@First`, the plain full name, the plain first name and any alias.
    `@everyone`, `@all` and `@here` mention every member. Text inside links never counts,
    nor do e-mail addresses or names inside longer words ("Annabelle" does not mention Ann).
    A first name shared by two members mentions neither; their full names still work.
    """
    members = list(members)
    text = strip_links(text)
    if _EVERYONE_HANDLES.search(text):
        return {m.slug for m in members}
    ambiguous = _ambiguous_first_names(members)
    mentioned: set[str] = set()
    for member in members:
        for alternatives, handle in (
            (_handles(member, ambiguous), True),
            (_plain_names(member, ambiguous), False),
        ):
            pattern = _compile(alternatives, handle)
            if pattern is not None and pattern.search(text):
                mentioned.add(member.slug)
                break
    return mentioned


def addresses_group(text: str) -> bool:
    """True when the text speaks to the room: "everyone", "anyone", "you all", "@here", ..."""
    text = strip_links(text)
    return bool(_EVERYONE_HANDLES.search(text) or _GROUP_WORDS.search(text))


def is_question(text: str) -> bool:
    """True when the text asks something (a question mark outside links)."""
    return "?" in strip_links(text)


def is_group_question(text: str, members: Iterable[Member]) -> bool:
    """A question to the whole group: it asks, and either names no one or addresses the room.

    "What should we cook?" and "Anyone up for a walk, Ann?" are; "Ann, what do you think?"
    is a question to Ann only.
    """
    if not is_question(text):
        return False
    return addresses_group(text) or not parse_mentions(text, members)
