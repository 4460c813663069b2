"""Null action: the character's own reply call may choose to say nothing.

One call decides and answers at once (cheaper in latency than a pre-pass, dearer in tokens
when the answer is a pass). The prompt gets `pass_instruction()`; the reply goes through
`interpret_reply()`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from personaweb.personas.heat.decision import Decision, ReplyPolicy

PASS_MARKER = "[pass]"
"""What the instruction asks the model to write when it would rather stay quiet."""

# Models dress the marker up: "PASS", "[PASS]", "(pass)", "*pass*", "`[pass]`", "pass."
_DRESSING = "\\s\"'`*_.,!:;~()\\[\\]{}<>-"
_PASS_ONLY = re.compile(rf"^[{_DRESSING}]*pass[{_DRESSING}]*$", re.IGNORECASE)
# Other markers only count in brackets: a bare "Silence!" may well be a line of dialogue.
_BRACKETED = re.compile(
    r"^\s*[`*]*[\[(<{]\s*(?:null|none|no[ _-]?(?:response|reply)|silence|skip)\s*[\])>}][`*.]*\s*$",
    re.IGNORECASE,
)


def pass_instruction(name: str) -> str:
    """The sentence to add to a character's prompt so that its reply call may pass."""
    return (
        f"If {name} would naturally stay quiet here (the message is meant for someone else, "
        f"{name} has nothing of their own to add, or has spoken a lot already), "
        f"reply with exactly {PASS_MARKER} and nothing else."
    )


def _strip_name_prefix(text: str, names: Iterable[str]) -> str:
    # Chat models like to echo the transcript format: "Ann: [pass]".
    for name in names:
        if not name.strip():
            continue
        prefix = re.compile(rf"^\s*\**{re.escape(name)}\**\s*:\s*", re.IGNORECASE)
        stripped = prefix.sub("", text, count=1)
        if stripped != text:
            return stripped
    return text


def is_pass(text: str | None, names: Iterable[str] = ()) -> bool:
    """True when a reply means "I pass": empty, or only the pass marker in any dressing.

    `names` are speaker names the model may have put in front ("Ann: PASS"). A reply that
    merely contains the word ("I'll pass on dessert") is an answer, not a pass.
    """
    if text is None:
        return True
    text = _strip_name_prefix(text, names)
    return not text.strip() or bool(_PASS_ONLY.match(text) or _BRACKETED.match(text))


def interpret_reply(character: str, text: str | None, names: Iterable[str] = ()) -> Decision:
    """The null-action Decision for a finished reply call."""
    names = list(names)
    if is_pass(text, names):
        shown = (text or "").strip()
        reason = f"passed in its reply ({shown!r})" if shown else "passed with an empty reply"
        return Decision(character, False, ReplyPolicy.NULL_ACTION, reason, {"passed": 1.0})
    length = float(len((text or "").strip()))
    return Decision(
        character,
        True,
        ReplyPolicy.NULL_ACTION,
        "answered in its reply (no pass marker)",
        {"passed": 0.0, "reply_chars": length},
    )
