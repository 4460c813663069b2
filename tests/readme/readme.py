"""The commands the README shows, as a user would copy them.

A command is a line of a ```sh block (backslash continuations joined, comments and shell
variable assignments aside), or a code span (in a table or in prose) that starts as a command
does: `make ...` or `.venv/bin/...`. tests/readme/test_readme_covered.py fails for any command
no README test runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_STARTS = ("make", ".venv/bin/", "curl ", "export ", "OPENAI_", "OTEL_")


@dataclass(frozen=True)
class Command:
    text: str
    """The command as the README shows it (continuations joined)."""
    line: int
    """Its first line in README.md."""


def _code_block_commands(lines: list[str]) -> list[Command]:
    out: list[Command] = []
    in_sh = False
    pending = ""
    start = 0
    for number, raw in enumerate(lines, 1):
        if raw.startswith("```"):
            in_sh = not in_sh and raw.strip() == "```sh"
            continue
        if not in_sh:
            continue
        text = raw.rstrip()
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1].strip() + " "
            continue
        text = (pending + text.strip()).strip()
        pending = ""
        code = re.sub(r"\s+#\s.*$", "", text).strip()  # a trailing comment
        if code and not code.startswith("#"):
            out.append(Command(code, start))
    return out


def _span_commands(lines: list[str]) -> list[Command]:
    out: list[Command] = []
    in_block = False
    for number, raw in enumerate(lines, 1):
        if raw.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            continue
        for span in re.findall(r"`([^`]+)`", raw):
            if span.startswith(("make ", ".venv/bin/")) or span == "make":
                out.append(Command(span.strip(), number))
    return out


def commands(path: Path = README) -> list[Command]:
    """Every command the README shows, in order (one entry per place it is shown)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return sorted(_code_block_commands(lines) + _span_commands(lines), key=lambda c: c.line)


def command(prefix: str) -> str:
    """The one command the README shows that starts with `prefix` (the test fails when there is
    none, or more than one different one: the README changed and the test must follow)."""
    found = {c.text for c in commands() if c.text.startswith(prefix)}
    assert found, f"the README shows no command starting with {prefix!r}"
    assert len(found) == 1, f"the README shows {len(found)} commands starting with {prefix!r}"
    return found.pop()


def block(prefix: str) -> list[Command]:
    """The commands of the one ```sh block whose first command starts with `prefix`, in order
    (a block is run whole, as a user pastes it)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    spans: list[tuple[int, int]] = []
    opened = 0
    for number, raw in enumerate(lines, 1):
        if raw.startswith("```"):
            if not opened and raw.strip() == "```sh":
                opened = number
            elif opened:
                spans.append((opened, number))
                opened = 0
            elif raw.strip() != "```":
                opened = -number  # another language's block: skip to its end
            else:
                opened = 0
    every = _code_block_commands(lines)
    blocks = [[c for c in every if first < c.line < last] for first, last in spans]
    found = [b for b in blocks if b and b[0].text.startswith(prefix)]
    assert len(found) == 1, f"the README shows {len(found)} blocks starting with {prefix!r}"
    return found[0]
