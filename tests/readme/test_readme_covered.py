"""Every command the README shows is run by a README test: a test claims a command by reading
it from the README with `command("prefix")` or `block("prefix")` (tests/readme/readme.py), so a
command added to the README without a test, or a test whose command left the README, fails."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.readme.readme import block, command, commands

HERE = Path(__file__).resolve().parent


def claimed_prefixes() -> tuple[set[str], set[str]]:
    """The literal prefixes the README tests pass to command() and to block()."""
    singles: set[str] = set()
    blocks: set[str] = set()
    for path in sorted(HERE.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in {"command", "block"} or not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                (singles if node.func.id == "command" else blocks).add(first.value)
    return singles, blocks


def test_every_readme_command_is_run_by_a_test():
    singles, blocks = claimed_prefixes()
    covered = {command(prefix) for prefix in singles}
    covered |= {c.text for prefix in blocks for c in block(prefix)}
    missing = [f"README.md:{c.line}: {c.text}" for c in commands() if c.text not in covered]
    assert not missing, "README commands no test runs:\n" + "\n".join(missing)


def test_the_claims_are_read_from_the_tests():
    singles, blocks = claimed_prefixes()
    assert ".venv/bin/python manage.py llm_check" in singles
    assert ".venv/bin/python manage.py persona_chat --hierarchy" in blocks
