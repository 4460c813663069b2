"""A session as a file: the settings its export carries, and the checks an upload must pass.

The file is `personas.tree.export_tree`'s JSON (format `personaweb.tree/1`): every node, and
the session's settings in `meta`. `export_meta` writes these meta keys; on the way in, only
`hierarchy` is required (files from before this module had title, hierarchy and mode only; the
console writes hierarchy, character and strategy):

    title, hierarchy, strategy, mode, guided, breakpoints, profiles, group_settings,
    active_node, character (the character's name: the console's --replay reads it),
    character_sheet (dialogue: the character's sheet), member_sheets (group: each member's
    sheet, in member order)

An uploaded file is untrusted. `read_session_file` refuses it, with a sentence saying why
(`SessionFileError`), unless all of this holds:
- At most `max_bytes`; UTF-8 JSON without NaN or Infinity, numbers within 64 bits, nesting
  at most MAX_DEPTH deep, and no NUL or lone surrogate in any text: no database column (nor
  PostgreSQL's jsonb) could store those, and a page could not show them.
- Every node is an object whose fields have their types and fit their columns: id (text),
  parent_id (text or null), persona and sender (at most 300 characters), target (at most
  120), kind, status and action (text), content (text), created_at (a number), seq (a whole
  number), data (an object), call (null or a call record whose numbers are numbers).
- The tree passes the core's own checks (`personas.tree.import_tree`, as the console's
  import): the format, known kinds, statuses and actions, no id twice, every parent present,
  no cycle.
- meta names a hierarchy, strategy and mode we know; profiles, group settings, breakpoints
  are of their shapes and within their limits; the character sheets validate.

What is let through unchanged: every node with its id, status, content, call record and data,
so export -> import -> export gives the same nodes. Two things change on the way in:
- Nodes left `pending` or `streaming` (the exporting run was mid-call) become `interrupted`,
  as after a restart: the page offers to resume them.
- A profile's `base_url` is dropped: a file must not send this server's API key to an
  endpoint of its choosing. The persona uses the configured endpoint.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from personaweb.characters.sheet import CharacterError, CharacterSheet
from personaweb.llm.types import LLMProfile
from personaweb.personas.tree import UNFINISHED, Node, NodeStatus, TreeFormatError, import_tree
from personaweb.web.group_forms import MAX_MEMBERS
from personaweb.web.models import Character, ChatSession, Hierarchy, Mode, Strategy

MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects (a real export nests about 6 deep)."""
MAX_NODES = 200_000
MAX_PROFILES = 200
MAX_BREAKPOINTS = 200
_INT_LIMIT = 2**63

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_PERSONA_LIMIT = 300  # NodeRow.persona and NodeRow.sender
_TARGET_LIMIT = 120  # NodeRow.target
_ACTION_LIMIT = 20  # NodeRow.action
_TITLE_LIMIT = 200  # ChatSession.title
_PROFILE_FIELDS = frozenset(LLMProfile.__dataclass_fields__)


class SessionFileError(ValueError):
    """The upload is not a session file this server can take; the message says why."""


@dataclass
class SessionFile:
    """What an uploaded session file holds, checked."""

    nodes: list[Node]
    """Every node, parents before children, in the file's order otherwise."""
    hierarchy: str
    title: str = ""
    strategy: str = Strategy.NESTED
    mode: str = Mode.REVIEW
    guided: bool = True
    breakpoints: list[str] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """LLMProfile dicts by persona path, without base_url."""
    group_settings: dict[str, Any] = field(default_factory=dict)
    active_node: str = ""
    character_name: str = ""
    """The character's name, for files that carry no sheet (older exports, the console)."""
    character: CharacterSheet | None = None
    character_problem: str = ""
    """Why the file's character sheet was not usable, if it had one."""
    members: list[CharacterSheet] = field(default_factory=list)


# --- export ---------------------------------------------------------------------------------


def raw_sheet(character: Any) -> dict[str, Any]:
    """A character row's sheet as it is stored, with the row's name and slug."""
    return {**dict(character.data or {}), "name": character.name, "slug": character.slug}


def export_meta(session: ChatSession) -> dict[str, Any]:
    """Everything a session needs besides its nodes, for `export_tree`'s meta."""
    meta: dict[str, Any] = {
        "title": session.title,
        "hierarchy": session.hierarchy,
        "strategy": session.strategy,
        "mode": session.mode,
        "guided": session.guided,
        "breakpoints": list(session.breakpoints or []),
        "profiles": dict(session.profiles or {}),
        "active_node": session.active_node,
    }
    if session.hierarchy == Hierarchy.GROUP:
        ids = [i for i in session.members or [] if isinstance(i, int)]
        rows = Character.objects.filter(owner_id=session.owner_id, pk__in=ids)
        by_id = {c.pk: c for c in rows}
        meta["group_settings"] = dict(session.group_settings or {})
        meta["member_sheets"] = [raw_sheet(by_id[i]) for i in ids if i in by_id]
    elif session.character is not None:
        meta["character"] = session.character.name
        meta["character_sheet"] = raw_sheet(session.character)
    return meta


# --- reading an upload ------------------------------------------------------------------------


def read_session_file(raw: bytes, max_bytes: int) -> SessionFile:
    """The checked contents of an uploaded file, or SessionFileError."""
    if len(raw) > max_bytes:
        raise SessionFileError(f"the file is larger than {max_bytes // (1024 * 1024)} MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SessionFileError("the file is not UTF-8 text") from None
    doc = _parse(text)
    if not isinstance(doc, dict):
        raise SessionFileError("the file is not a PersonaWeb session (not a JSON object)")
    raw_nodes = doc.get("nodes", [])
    if not isinstance(raw_nodes, list):
        raise SessionFileError("nodes must be a list")
    if len(raw_nodes) > MAX_NODES:
        raise SessionFileError(f"the file has {len(raw_nodes):,} nodes; at most {MAX_NODES:,}")
    for i, item in enumerate(raw_nodes):
        _check_node(i, item)
    try:
        nodes, meta = import_tree(text)
    except TreeFormatError as exc:
        raise SessionFileError(str(exc)) from None
    for node in nodes:
        if node.status in UNFINISHED:
            node.status = NodeStatus.INTERRUPTED
    session = _read_meta(meta, {n.id for n in nodes})
    session.nodes = parents_first(nodes)
    return session


def _refuse_constant(name: str) -> Any:
    raise SessionFileError(f"the file holds {name}, which is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SessionFileError(f"the number {text[:40]} is too large")
    return value


def _parse(text: str) -> Any:
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except SessionFileError:
        raise
    except RecursionError:
        raise SessionFileError(f"the JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python reads
        raise SessionFileError(f"not JSON: {exc}") from None
    _check_values(doc)
    return doc


def _check_values(doc: Any) -> None:
    """Depth, text and integer limits over the whole document (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise SessionFileError(f"the JSON nests deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value)
        elif _is_number(value) and isinstance(value, int) and not -_INT_LIMIT <= value < _INT_LIMIT:
            raise SessionFileError("the file holds a whole number larger than 64 bits")


def _check_text(text: str) -> None:
    if _BAD_TEXT.search(text):
        raise SessionFileError("the file holds a NUL character or a lone surrogate in its text")


# --- nodes ---------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_node(index: int, item: Any) -> None:
    where = f"node {index + 1}"
    if not isinstance(item, dict):
        raise SessionFileError(f"{where} is not an object")
    if not isinstance(item.get("id"), str) or not item["id"]:
        raise SessionFileError(f"{where}: id must be text")
    where = f"node {item['id'][:40]}"
    if item.get("parent_id") is not None and not isinstance(item["parent_id"], str):
        raise SessionFileError(f"{where}: parent_id must be text or null")
    persona = item.get("persona")
    if not isinstance(persona, str) or not persona or len(persona) > _PERSONA_LIMIT:
        raise SessionFileError(f"{where}: persona must be a path of 1 to 300 characters")
    for name in ("kind", "status", "content", "sender"):
        if name in item and not isinstance(item[name], str):
            raise SessionFileError(f"{where}: {name} must be text")
    if len(item.get("sender", "")) > _PERSONA_LIMIT:
        raise SessionFileError(f"{where}: sender is longer than 300 characters")
    for name, limit in (("action", _ACTION_LIMIT), ("target", _TARGET_LIMIT)):
        value = item.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise SessionFileError(f"{where}: {name} must be text of at most {limit} characters")
    if "created_at" in item and not _is_number(item["created_at"]):
        raise SessionFileError(f"{where}: created_at must be a number")
    seq = item.get("seq", 0)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise SessionFileError(f"{where}: seq must be a whole number")
    if item.get("data") is not None and not isinstance(item["data"], dict):
        raise SessionFileError(f"{where}: data must be an object")
    if item.get("call") is not None:
        _check_call(where, item["call"])


_CALL_TEXT = ("model", "response_text", "endpoint")
_CALL_OPTIONAL_INT = ("prompt_tokens", "completion_tokens")


def _check_call(where: str, call: Any) -> None:
    """A call record the inspector can show: it adds up tokens and times, so the numbers
    must be numbers."""
    where = f"{where}: call"
    if not isinstance(call, dict):
        raise SessionFileError(f"{where} must be an object")
    messages = call.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        raise SessionFileError(f"{where}: messages must be a list of {{role, content}} texts")
    for name in _CALL_TEXT:
        if name in call and not isinstance(call[name], str):
            raise SessionFileError(f"{where}: {name} must be text")
    if "model" not in call or not _is_number(call.get("temperature")):
        raise SessionFileError(f"{where}: needs a model and a temperature")
    if not isinstance(call.get("max_tokens"), int) or isinstance(call["max_tokens"], bool):
        raise SessionFileError(f"{where}: max_tokens must be a whole number")
    for name in _CALL_OPTIONAL_INT:
        value = call.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise SessionFileError(f"{where}: {name} must be a whole number or null")
    if "latency_s" in call and not _is_number(call["latency_s"]):
        raise SessionFileError(f"{where}: latency_s must be a number")
    if call.get("finish_reason") is not None and not isinstance(call["finish_reason"], str):
        raise SessionFileError(f"{where}: finish_reason must be text or null")
    if "usage_estimated" in call and not isinstance(call["usage_estimated"], bool):
        raise SessionFileError(f"{where}: usage_estimated must be true or false")
    attempts = call.get("attempts", [])
    if not isinstance(attempts, list) or not all(_attempt_ok(a) for a in attempts):
        raise SessionFileError(f"{where}: attempts must be objects with numeric tokens and times")
    trimmed = call.get("trimmed")
    if trimmed is not None and not isinstance(trimmed, dict):
        raise SessionFileError(f"{where}: trimmed must be an object or null")


def _attempt_ok(attempt: Any) -> bool:
    if not isinstance(attempt, dict):
        return False
    numbers = ("prompt_tokens", "completion_tokens", "latency_s")
    return all(attempt.get(k) is None or _is_number(attempt[k]) for k in numbers)


def parents_first(nodes: list[Node]) -> list[Node]:
    """The nodes in the file's order, except that a parent always comes before its children
    (a hand-edited file may list them otherwise; pages and seq numbers assume it)."""
    placed: set[str] = set()
    waiting: dict[str, list[Node]] = {}
    out: list[Node] = []
    for node in nodes:
        if node.parent_id is not None and node.parent_id not in placed:
            waiting.setdefault(node.parent_id, []).append(node)
            continue
        ready = [node]
        while ready:
            current = ready.pop(0)
            out.append(current)
            placed.add(current.id)
            ready.extend(waiting.pop(current.id, []))
    return out


# --- meta -------------------------------------------------------------------------------------


def _choice(meta: dict[str, Any], key: str, allowed: list[str], default: str | None) -> str:
    value = meta.get(key, default)
    if value is None:
        raise SessionFileError(f"meta.{key} is missing: the file does not say which {key} it ran")
    if not isinstance(value, str) or value not in allowed:
        raise SessionFileError(f"meta.{key} {value!r} is not one of {', '.join(allowed)}")
    return value


def _read_meta(meta: dict[str, Any], ids: set[str]) -> SessionFile:
    hierarchy = _choice(meta, "hierarchy", list(Hierarchy.values), None)
    title = meta.get("title", "")
    guided = meta.get("guided", True)
    active = meta.get("active_node", "")
    if not isinstance(title, str):
        raise SessionFileError("meta.title must be text")
    if not isinstance(guided, bool):
        raise SessionFileError("meta.guided must be true or false")
    if not isinstance(active, str):
        raise SessionFileError("meta.active_node must be text")
    session = SessionFile(
        nodes=[],
        hierarchy=hierarchy,
        title=title.strip()[:_TITLE_LIMIT],
        strategy=_choice(meta, "strategy", list(Strategy.values), Strategy.NESTED),
        mode=_choice(meta, "mode", list(Mode.values), Mode.REVIEW),
        guided=guided,
        breakpoints=_breakpoints(meta.get("breakpoints", [])),
        profiles=_profiles(meta.get("profiles", {})),
        active_node=active if active in ids else "",
    )
    if hierarchy == Hierarchy.GROUP:
        session.group_settings = _group_settings(meta.get("group_settings", {}))
        session.members = _members(meta.get("member_sheets"))
    elif hierarchy == Hierarchy.DIALOGUE:
        name = meta.get("character", "")
        session.character_name = name.strip() if isinstance(name, str) else ""
        if meta.get("character_sheet") is not None:
            try:
                session.character = _sheet("meta.character_sheet", meta["character_sheet"])
            except SessionFileError as exc:
                # A sheet stored before today's limits: the character's name may still find
                # one of the importer's own characters.
                session.character_problem = str(exc)
    return session


def _breakpoints(raw: Any) -> list[str]:
    if not isinstance(raw, list) or len(raw) > MAX_BREAKPOINTS:
        raise SessionFileError(f"meta.breakpoints must be a list of at most {MAX_BREAKPOINTS}")
    if not all(isinstance(p, str) and 0 < len(p) <= 300 for p in raw):
        raise SessionFileError("meta.breakpoints must be persona paths")
    return list(dict.fromkeys(raw))


def profile_dict(where: str, raw: Any) -> dict[str, Any]:
    """An LLMProfile dict within the limits the forms apply, without base_url."""
    if not isinstance(raw, dict):
        raise SessionFileError(f"{where} must be an object")
    unknown = sorted(set(raw) - _PROFILE_FIELDS)
    if unknown:
        raise SessionFileError(f"{where}: unknown field {unknown[0]!r}")
    model = raw.get("model", "")
    temperature = raw.get("temperature", 0.7)
    max_tokens = raw.get("max_tokens", LLMProfile.max_tokens)
    timeout = raw.get("timeout_s", LLMProfile.timeout_s)
    context = raw.get("context_tokens")
    stop = raw.get("stop", [])
    if not isinstance(model, str) or len(model) > 200:
        raise SessionFileError(f"{where}.model must be text of at most 200 characters")
    if not _is_number(temperature) or not 0 <= temperature <= 2:
        raise SessionFileError(f"{where}.temperature must be a number from 0 to 2")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise SessionFileError(f"{where}.max_tokens must be a whole number above 0")
    if not _is_number(timeout) or not 0 < timeout <= 3600:
        raise SessionFileError(f"{where}.timeout_s must be a number of seconds up to 3600")
    if context is not None and (not isinstance(context, int) or isinstance(context, bool)):
        raise SessionFileError(f"{where}.context_tokens must be a whole number or null")
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 16:
        raise SessionFileError(f"{where}.stop must be a list of at most 16 texts")
    profile = LLMProfile.from_dict(raw)
    return replace(profile, base_url=None).to_dict()


def _profiles(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or len(raw) > MAX_PROFILES:
        raise SessionFileError(f"meta.profiles must be an object of at most {MAX_PROFILES}")
    out = {}
    for path, profile in raw.items():
        if not 0 < len(path) <= 300:
            raise SessionFileError("meta.profiles: keys must be persona paths")
        out[path] = profile_dict(f"meta.profiles[{path[:60]!r}]", profile)
    return out


_GROUP_KEYS = (
    "policy",
    "overrides",
    "order",
    "half_life_s",
    "threshold",
    "turn_cap",
    "prepass_threshold",
    "history_window",
)


def _group_settings(raw: Any) -> dict[str, Any]:
    """The settings the group form writes, checked by the core's own reader; nothing else
    (`replay_of` names a session of the exporting server)."""
    from personaweb.personas.group import group_settings_from_dict

    if not isinstance(raw, dict):
        raise SessionFileError("meta.group_settings must be an object")
    settings = {k: raw[k] for k in _GROUP_KEYS if k in raw}
    overrides = settings.get("overrides", {})
    if not isinstance(overrides, dict) or len(overrides) > MAX_MEMBERS:
        raise SessionFileError("meta.group_settings.overrides must be an object")
    if "prepass_profile" in raw:
        where = "meta.group_settings.prepass_profile"
        settings["prepass_profile"] = profile_dict(where, raw["prepass_profile"])
    try:
        group_settings_from_dict(settings)
    except (ValueError, TypeError) as exc:
        raise SessionFileError(f"meta.{exc}") from None
    return settings


def _sheet(where: str, raw: Any) -> CharacterSheet:
    try:
        return CharacterSheet.from_dict(raw)
    except (CharacterError, TypeError) as exc:
        raise SessionFileError(f"{where}: {exc}") from None


def _members(raw: Any) -> list[CharacterSheet]:
    if raw is None:
        raise SessionFileError(
            "this group chat file does not carry its members' sheets (meta.member_sheets); "
            "export it again from a PersonaWeb that writes them"
        )
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_MEMBERS:
        raise SessionFileError(f"meta.member_sheets must be a list of 1 to {MAX_MEMBERS} sheets")
    sheets = [_sheet(f"meta.member_sheets[{i}]", s) for i, s in enumerate(raw)]
    slugs = [s.slug for s in sheets]
    if len(set(slugs)) != len(slugs):
        raise SessionFileError("meta.member_sheets names a character twice")
    return sheets
