"""Console interactive mode: chat with a persona hierarchy in a terminal.

Pure Python over the core (no Django); `manage.py persona_chat` is a thin shell around it.
Input and output are injected so tests can drive a whole session.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from personaweb.personas import (
    Action,
    ActionRefused,
    Engine,
    MemoryStore,
    Mode,
    Node,
    NodeKind,
    NodeStatus,
    RunConfig,
    export_tree,
    import_tree,
)
from personaweb.personas.state import NextKind, PathState

InputFn = Callable[[str], str]
OutputFn = Callable[[str], None]

HELP = (
    "  Enter = approve   r = reject   e = edit (type your version)   a = switch to autonomous\n"
    "  q = quit   anything else = feedback to the persona that proposed this"
)
END_OF_INPUT = "(end of input: the proposal waits for review; replay the saved tree to go on)"


def describe(node: Node) -> str:
    """One line for a node, as the console shows it."""
    who = node.persona
    if node.kind is NodeKind.INBOUND:
        return f"#{node.seq} {who} <- {node.sender}: {node.content}"
    if node.kind is NodeKind.ERROR:
        return f"#{node.seq} {who} FAILED: {node.content}"
    if node.kind is NodeKind.FEEDBACK:
        return f"#{node.seq} feedback to {who}: {node.content}"
    if node.action is Action.DELEGATE:
        return f"#{node.seq} {who} -> delegate to {node.target}: {node.content}"
    if node.action is Action.PASS:
        return f"#{node.seq} {who} -> pass (chooses not to answer)"
    edited = " (edited)" if node.kind is NodeKind.EDIT else ""
    return f"#{node.seq} {who} -> reply{edited}: {node.content}"


@dataclass
class ConsoleObserver:
    """Prints streamed text as it arrives, so a slow model still shows progress."""

    write: OutputFn
    shown: dict[str, int] = field(default_factory=dict)

    async def node_changed(self, node: Node, state: PathState | None, created: bool) -> None:
        if node.id in self.shown and node.status is not NodeStatus.STREAMING:
            self.write("\n")
            del self.shown[node.id]

    async def tokens(self, node: Node, text: str) -> None:
        start = self.shown.get(node.id)
        if start is None:
            self.write(f"  ... {node.persona} is writing: ")
            start = 0
        self.write(text[start:])
        self.shown[node.id] = len(text)


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class ConsoleChat:
    """A review-or-autonomous chat loop over one Engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        read: InputFn = input,
        write: OutputFn | None = None,
        save_to: Path | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.read = read
        self.write = write or _stdout
        self.save_to = save_to
        self.meta = meta or {}
        self.leaf: str | None = None

    def say(self, line: str) -> None:
        self.write(line + "\n")

    async def chat(self) -> None:
        """Read user messages until EOF or 'q'."""
        self.say("Type a message (q to quit).")
        try:
            while True:
                try:
                    text = self.read("you> ")
                except EOFError:
                    break
                if text.strip().lower() in {"q", "quit", "exit"}:
                    break
                if not text.strip():
                    continue
                try:
                    node = await self.engine.send(text, self.leaf)
                except ActionRefused as exc:
                    self.say(f"! {exc}")
                    continue
                if not await self.drive(node.id):
                    break
        finally:
            self.save()  # whatever ends the chat, what happened is kept

    async def drive(self, leaf_id: str) -> bool:
        """Run from a leaf until the top persona answers. False when the user quits."""
        current = leaf_id
        while True:
            leaf = await self.engine.advance(current)
            current = leaf.id
            self.leaf = current
            state = await self.engine.state(current)
            kind = state.next.kind
            if kind is NextKind.DONE:
                last = state.transcript[-1]
                name = self.engine.root.display_name
                self.say(f"{name}: {last.text}" if not last.passed else f"{name} says nothing.")
                return True
            if kind is NextKind.FAILED:
                self.say(describe(leaf))
                try:
                    answer = self.read("retry? [Y/n] ").strip().lower()
                except EOFError:
                    return False
                if answer in {"", "y", "yes"}:
                    try:
                        current = (await self.engine.retry(leaf.id)).id
                        continue
                    except ActionRefused as exc:
                        self.say(f"! {exc}")
                return True
            if kind is not NextKind.REVIEW:
                self.say(f"! the run stopped unexpectedly ({kind.value})")
                return True
            self.say(describe(leaf))
            try:
                choice = self.read("review> ")
                command = choice.strip().lower()
                version = self.read("your version> ") if command == "e" else ""
            except EOFError:
                self.say(END_OF_INPUT)
                return False
            if command in {"", "y"}:
                await self.engine.approve(leaf.id)
            elif command == "r":
                await self.engine.reject(leaf.id)
            elif command == "e":
                try:
                    current = (await self.engine.edit(leaf.id, version)).id
                except ActionRefused as exc:
                    self.say(f"! {exc}")
            elif command == "a":
                self.engine.config = RunConfig(
                    mode=Mode.AUTONOMOUS,
                    max_depth=self.engine.config.max_depth,
                    max_steps=self.engine.config.max_steps,
                )
                await self.engine.approve(leaf.id)
                self.say("(autonomous from here)")
            elif command in {"q", "quit"}:
                return False
            elif command in {"?", "h", "help"}:
                self.say(HELP)
            else:
                fb = await self.engine.feedback(leaf.id, choice)
                current = fb.id

    async def replay(self, step: str, feedback: str | None) -> None:
        """Branch from a saved step (by #seq or id prefix) and continue the run."""
        node = self.find(step)
        self.say(f"replaying from {describe(node)}")
        branched = await self.engine.branch(node.id, feedback=feedback or None)
        try:
            going_on = await self.drive(branched.id)
        except BaseException:
            self.save()
            raise
        if going_on:
            await self.chat()
        else:
            self.save()

    def find(self, step: str) -> Node:
        store = self.engine.store
        if not isinstance(store, MemoryStore):
            raise ValueError("replay needs a loaded tree")
        key = step.strip()
        by_seq = key.startswith("#") or key.isdigit()
        key = key.lstrip("#")
        for node in store.all():
            if (by_seq and str(node.seq) == key) or (not by_seq and node.id.startswith(key)):
                return node
        raise ValueError(f"no step {step!r} in the saved tree")

    def save(self) -> None:
        if self.save_to is None or not isinstance(self.engine.store, MemoryStore):
            return
        self.save_to.write_text(export_tree(self.engine.store.all(), self.meta), encoding="utf-8")
        self.say(f"(tree saved to {self.save_to})")


def load_tree(path: Path) -> tuple[MemoryStore, dict[str, str]]:
    """A saved tree and its metadata (hierarchy, character)."""
    nodes, meta = import_tree(path.read_text(encoding="utf-8"))
    return MemoryStore(nodes), {str(k): str(v) for k, v in meta.items()}
