"""Traces of persona runs in OpenTelemetry's GenAI conventions, read off the step tree.

Off unless a sink is installed: `from_env` makes one when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Without one the engine does no tracing work and
OpenTelemetry is never imported. This module holds the rules; otel.py hands the spans it makes
to the OpenTelemetry SDK.

What a backend receives:
- one trace per run (one user message), whose root is the top persona's activation;
- an `invoke_agent {name}` span per persona activation (from the message the persona received
  to its applied reply or pass), nested as the activations nest;
- a `chat {model}` span per LLM call, under the activation that made it;
- span events for what people did (approve, reject, feedback, edit, branch, retry, continue:
  what, who, when) and for a group director's heat decisions, with their numbers;
- the messages themselves only when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT is true.

The hard part: an activation may begin in one process and end in another, hours later (review
mode: a person approves the reply on another server). So no span is ever held open in memory;
every span is a function of the tree:

1. **Ids come from the tree.** A trace id is hashed from the node that starts the trace (the
   run's user message), an activation's span id from the trace id and its inbound node, a
   call's span id from its node. Any process computes the same ids from the same nodes.
2. **A span is emitted once, whole, when it ends**, with explicit start and end times (its
   first node's `created_at`, the moment it ended) and its parent named by id. Its events are
   read off the path: the engine records each person's action on the node it made or changed
   (`data["human"]`: what, who, when). So the exported spans have the tree's shape whichever
   process ended which.
3. **What ends a span.** A call ends when its node settles (proposed or failed). An activation
   ends when its persona's reply or pass is applied (approved, or replaced by a person's edit).
   A failed step ends every activation still open on its path, as errors: the run stops there.
   A step cut off by a stopped process does the same when someone retries it (the dying
   process could not say so), at the time the step began.
4. **A branch is a trace of its own.** A node written beside an existing one (a replay, a
   retry, a fresh proposal) starts a new trace, hashed from that node; the activations open
   there are emitted again in it, with ids of their own. No span gets two ends (one trace per
   user message across branches would give an activation one id and two different ends), and
   each trace is one history: the path the person sees, from the branch on.
5. **Every node says where it is.** `data["trace"]` holds its trace id and the span that shows
   it (a message to a persona: that activation; an LLM node: its call; any other node: the
   activation it belongs to), so the inspector can point a person at it.

Until a span ends, its children wait in the backend without it: a run waiting for review shows
its calls before the activations around them, and a branch left waiting for ever never shows
them. A node written while tracing was off has no `data["trace"]`, and a copied session's nodes have
their original's (under new ids, so it does not fit them); either way the node's trace is then
taken to be its run's (hashed from the user message), the one trace a path can tell alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from personaweb.llm.types import CallRecord
from personaweb.personas.persona import ResponseDrivenPersona
from personaweb.personas.state import USER, Event, EventKind, PathState, parent_path
from personaweb.personas.tree import PROPOSAL_KINDS, Action, Node, NodeKind, NodeStatus

TRACE = "trace"
"""Key in a node's data: {"trace_id": 32 hex digits, "span_id": 16 hex digits}."""
HUMAN = "human"
"""Key in a node's data: what people did to or by it, oldest first, each
{"action", "at" (unix time), "by" (who, when the caller said), "on" (the node acted on)}."""
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
CAPTURE_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})

Attribute = str | bool | int | float | Sequence[str]


class Change(StrEnum):
    """What a write did to a node, as far as traces care."""

    CREATED = "created"
    """The node was written for the first time."""
    SETTLED = "settled"
    """A pending proposal got its outcome: proposed, or failed."""
    APPLIED = "applied"
    """A proposal was approved."""


@dataclass(frozen=True)
class SpanEvent:
    """Something that happened during a span."""

    name: str
    at: float
    """Unix time."""
    attributes: dict[str, Attribute] = field(default_factory=dict)


@dataclass(frozen=True)
class Span:
    """One finished span, ready to export."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    """None for the root of a trace."""
    start: float
    """Unix time."""
    end: float
    client: bool
    """True for a call to a model (span kind CLIENT), False for an activation (INTERNAL)."""
    attributes: dict[str, Attribute] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    error: str | None = None
    """Set when the span ended in failure: the reason."""


class SpanSink(Protocol):
    """Where finished spans go (otel.py: the OpenTelemetry SDK)."""

    capture_content: bool
    """Whether spans may carry message content (the person opted in)."""

    def emit(self, span: Span) -> None: ...


@dataclass(frozen=True)
class Site:
    """What the engine knows beyond the nodes."""

    root: ResponseDrivenPersona
    """The hierarchy: persona names and descriptions."""
    conversation: str = ""
    """gen_ai.conversation.id (the web's session); empty: the tree's first node."""
    capture_content: bool = False
    """Whether message content goes on the spans."""


# -- the process's sink ---------------------------------------------------------------------------

_installed: SpanSink | None = None


def install(sink: SpanSink | None) -> None:
    """Make `sink` the one engines use unless given another (None: tracing off)."""
    global _installed
    _installed = sink


def installed() -> SpanSink | None:
    return _installed


def enabled_by(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for traces: an OTLP endpoint, and neither the SDK
    disabled nor the traces exporter set to none."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def from_env(environ: Mapping[str, str]) -> SpanSink | None:
    """An OTLP/HTTP sink when `environ` asks for traces, else None (and no OpenTelemetry
    import). The exporter reads the other standard variables (headers, timeout, service
    name) from the process environment itself."""
    if not enabled_by(environ):
        return None
    from personaweb.personas.otel import OtelSink

    capture = environ.get(CAPTURE_VARIABLE, "").strip().lower() in _CAPTURE_ON
    return OtelSink.from_env(capture_content=capture)


# -- ids ------------------------------------------------------------------------------------------


def _hashed(bits: int, *parts: str) -> int:
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1  # zero is the invalid id


def trace_id_of(node_id: str) -> int:
    """The trace a node starts (a user message, or the first node of a branch)."""
    return _hashed(128, "trace", node_id)


def activation_span_id(trace_id: int, inbound_id: str) -> int:
    """The span of the activation that `inbound_id` starts, in that trace."""
    return _hashed(64, "activation", f"{trace_id:032x}", inbound_id)


def call_span_id(node_id: str) -> int:
    """The span of the LLM call behind a node."""
    return _hashed(64, "call", node_id)


def stamped(node: Node) -> tuple[int, int | None] | None:
    """The (trace id, span id) in a node's data, if it has well-formed ones."""
    value = node.data.get(TRACE)
    if not isinstance(value, Mapping):
        return None
    trace, span = value.get("trace_id"), value.get("span_id")
    if not isinstance(trace, str) or not re.fullmatch(r"[0-9a-f]{32}", trace):
        return None
    if isinstance(span, str) and re.fullmatch(r"[0-9a-f]{16}", span):
        return int(trace, 16), int(span, 16)
    return int(trace, 16), None


def _stamp(trace: int, span: int | None) -> dict[str, str]:
    out = {"trace_id": f"{trace:032x}"}
    if span is not None:
        out["span_id"] = f"{span:016x}"
    return out


# -- reading the path -----------------------------------------------------------------------------


def _activation(state: PathState, persona: str) -> Event | None:
    """The message that started the persona's latest activation on this path."""
    return next((e for e in state.current(persona) if e.kind is EventKind.INBOUND), None)


def _owner(node: Node, state: PathState) -> str:
    """The persona whose activation a node belongs to. A failed step is the working
    persona's, whoever it names (a delegation to a missing child names the child)."""
    if node.kind is NodeKind.ERROR and state.stack:
        return state.stack[-1]
    return node.persona


def _starts_run(node: Node, root: str) -> bool:
    return node.kind is NodeKind.INBOUND and (node.sender == USER or node.persona == root)


def _trace_of(node: Node, state: PathState, root: str) -> int | None:
    """The trace of a node on `state`'s path: its stamp, else its run's."""
    stamp = stamped(node)
    if stamp is not None and _made_for(node, stamp, state):
        return stamp[0]
    run = _activation(state, root)
    return trace_id_of(run.node_id) if run is not None else None


def _made_for(node: Node, stamp: tuple[int, int | None], state: PathState) -> bool:
    """Whether a stamp was made for this node on this path. A copied session's nodes carry
    their original's stamps under new ids: new spans must not join the original's traces."""
    trace, span = stamp
    if span is None:
        return False
    if span == call_span_id(node.id):
        return True
    if node.kind is NodeKind.INBOUND:
        return span == activation_span_id(trace, node.id)
    inbound = _activation(state, _owner(node, state))
    return inbound is not None and span == activation_span_id(trace, inbound.node_id)


def ends_activation(node: Node) -> bool:
    return (
        node.kind in PROPOSAL_KINDS
        and node.status is NodeStatus.APPROVED
        and node.action in (Action.REPLY, Action.PASS)
    )


def _failed(node: Node) -> bool:
    return node.kind is NodeKind.ERROR or node.status is NodeStatus.FAILED


# -- stamps: where a node is ----------------------------------------------------------------------


def stamp(node: Node, parent: PathState | None, root: str, *, branch: bool) -> dict[str, str]:
    """`data["trace"]` for a node about to be written. `parent`: the state of the path up to
    its parent (None for a first node); `branch`: the parent has another child already."""
    if _starts_run(node, root) or branch:
        trace: int | None = trace_id_of(node.id)
    elif parent is not None and parent.path:
        trace = _trace_of(parent.path[-1], parent, root)
    else:
        trace = None
    if trace is None:
        return {}
    if node.kind is NodeKind.INBOUND:
        return _stamp(trace, activation_span_id(trace, node.id))
    if node.call is not None:
        return _stamp(trace, call_span_id(node.id))
    inbound = _activation(parent, _owner(node, parent)) if parent is not None else None
    return _stamp(trace, activation_span_id(trace, inbound.node_id) if inbound else None)


def settled(node: Node) -> dict[str, Any]:
    """A settled proposal's data: once it has a call, the span that shows it is the call's."""
    stamp = stamped(node)
    if node.call is None or stamp is None:
        return node.data
    return {**node.data, TRACE: _stamp(stamp[0], call_span_id(node.id))}


# -- spans: what a change ends --------------------------------------------------------------------


def ends_spans(change: Change, node: Node) -> bool:
    """Whether this change of this node ends any span (so the engine need not read the path
    otherwise)."""
    if change is Change.CREATED:
        return node.call is not None or _failed(node) or ends_activation(node)
    if change is Change.SETTLED:
        return node.call is not None or _failed(node)
    return ends_activation(node)


def spans(change: Change, node: Node, state: PathState, now: float, site: Site) -> list[Span]:
    """The spans that `change` to `node` ends. `state`: the path with the node as its leaf,
    after the change."""
    if not ends_spans(change, node):
        return []
    trace = _trace_of(node, state, site.root.path)
    if trace is None:
        return []
    out: list[Span] = []
    if node.call is not None and change in (Change.CREATED, Change.SETTLED):
        out.append(_call_span(node, node.call, trace, state, now, site, change))
    if ends_activation(node):
        span = _activation_span(node.persona, trace, state, now, site, ending=node)
        if span is not None:
            out.append(span)
    if _failed(node) and change in (Change.CREATED, Change.SETTLED):
        out.extend(open_activations(state, trace, now, node.content or "failed", site))
    return out


def open_activations(
    state: PathState, trace: int, end: float, reason: str, site: Site
) -> list[Span]:
    """Every activation still open on the path, ended as failed (innermost first)."""
    out = []
    for persona in reversed(state.stack):
        span = _activation_span(persona, trace, state, end, site, error=reason)
        if span is not None:
            out.append(span)
    return out


def abandoned(node: Node, state: PathState, site: Site) -> list[Span]:
    """The activations a stopped process left open at `node` (an interrupted step), ended as
    failed when the node began. `state`: the path up to the node."""
    trace = _trace_of(node, state, site.root.path)
    if trace is None:
        return []
    reason = "interrupted: the process running this step stopped"
    return open_activations(state, trace, node.created_at, reason, site)


def _name(site: Site, persona: str) -> tuple[str, str]:
    """A persona's display name and description."""
    try:
        found = site.root.find(persona)
    except KeyError:
        return persona.rpartition("/")[2], ""
    return found.display_name or found.name, found.description


def _conversation(site: Site, state: PathState) -> str:
    return site.conversation or (state.path[0].id if state.path else "")


def _activation_span(
    persona: str,
    trace: int,
    state: PathState,
    end: float,
    site: Site,
    *,
    ending: Node | None = None,
    error: str | None = None,
) -> Span | None:
    inbound = _activation(state, persona)
    if inbound is None:
        return None
    parent: int | None = None
    if persona != site.root.path:
        caller = _activation(state, parent_path(persona))
        parent = activation_span_id(trace, caller.node_id) if caller is not None else None
    name, description = _name(site, persona)
    attributes: dict[str, Attribute] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": name,
        "gen_ai.agent.id": persona,
        "gen_ai.conversation.id": _conversation(site, state),
        "personaweb.node.id": inbound.node_id,
    }
    if description:
        attributes["gen_ai.agent.description"] = description
    if ending is not None:
        attributes["personaweb.ended_by"] = ending.id
    if site.capture_content:
        attributes["gen_ai.input.messages"] = _messages([{"role": "user", "content": inbound.text}])
        if ending is not None and ending.action is Action.REPLY:
            attributes["gen_ai.output.messages"] = _messages(
                [{"role": "assistant", "content": ending.content}], finish_reason="stop"
            )
    return Span(
        name=f"invoke_agent {name}",
        trace_id=trace,
        span_id=activation_span_id(trace, inbound.node_id),
        parent_id=parent,
        start=inbound.created_at,
        end=max(end, inbound.created_at),
        client=False,
        attributes=attributes,
        events=_events(state.current(persona), site),
        error=error,
    )


def _call_span(
    node: Node,
    call: CallRecord,
    trace: int,
    state: PathState,
    now: float,
    site: Site,
    change: Change,
) -> Span:
    inbound = _activation(state, _owner(node, state))
    parent = activation_span_id(trace, inbound.node_id) if inbound is not None else None
    if change is Change.CREATED:
        # A decision's call (a group's pre-pass) ran before its node was written.
        end = node.created_at
        start = end - max(0.0, call.total_latency_s)
    else:
        start, end = node.created_at, max(now, node.created_at)
    # A profile naming no model asks for the endpoint's default; what answered says which.
    model = call.model or call.requested_model
    host, port = _server(call.endpoint)
    attributes: dict[str, Attribute] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "scripted" if call.endpoint.startswith("scripted:") else "openai",
        "gen_ai.request.temperature": float(call.temperature),
        "gen_ai.request.max_tokens": int(call.max_tokens),
        "gen_ai.conversation.id": _conversation(site, state),
        "personaweb.node.id": node.id,
        "personaweb.persona": node.persona,
    }
    if model:
        attributes["gen_ai.request.model"] = call.requested_model or model
    if call.model:
        attributes["gen_ai.response.model"] = call.model
    if call.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = (call.finish_reason,)
    if call.prompt_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = int(call.prompt_tokens)
    if call.completion_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = int(call.completion_tokens)
    if host:
        attributes["server.address"] = host
    if port:
        attributes["server.port"] = port
    if call.attempts:
        # Requests that did not count (an invalid answer re-asked, a refusal retried): the
        # backend's token totals should still see them.
        attributes["personaweb.calls"] = call.calls
        attributes["personaweb.usage.total_tokens"] = call.total_tokens
    error = None
    if _failed(node):
        error = node.content or "failed"
        attributes["error.type"] = _error_type(error)
    if site.capture_content:
        attributes["gen_ai.input.messages"] = _messages(call.messages)
        attributes["gen_ai.output.messages"] = _messages(
            [{"role": "assistant", "content": call.response_text}],
            finish_reason=call.finish_reason or "error",
        )
    events = tuple(_attempt(a, start, site) for a in call.attempts if isinstance(a, Mapping))
    return Span(
        name=f"chat {model}" if model else "chat",
        trace_id=trace,
        span_id=call_span_id(node.id),
        parent_id=parent,
        start=start,
        end=end,
        client=True,
        attributes=attributes,
        events=events,
        error=error,
    )


def _attempt(attempt: Mapping[str, Any], at: float, site: Site) -> SpanEvent:
    attributes: dict[str, Attribute] = {"error.type": _error_type(str(attempt.get("error", "")))}
    for key, name in (
        ("prompt_tokens", "gen_ai.usage.input_tokens"),
        ("completion_tokens", "gen_ai.usage.output_tokens"),
    ):
        if isinstance(attempt.get(key), int):
            attributes[name] = int(attempt[key])
    if attempt.get("finish_reason"):
        attributes["gen_ai.response.finish_reasons"] = (str(attempt["finish_reason"]),)
    attributes["personaweb.error"] = str(attempt.get("error", ""))
    if site.capture_content and attempt.get("response_text"):
        attributes["personaweb.response_text"] = str(attempt["response_text"])
    return SpanEvent("personaweb.attempt", at, attributes)


def _events(events: Sequence[Event], site: Site) -> tuple[SpanEvent, ...]:
    """A persona's activation, as span events: what people did, and the decisions taken."""
    out: list[SpanEvent] = []
    for event in events:
        if event.kind is EventKind.CHILD_RESULT:
            continue  # the child's node: its acts are the child's span's
        for act in human_acts(event.data):
            attributes: dict[str, Attribute] = {
                "personaweb.action": act["action"],
                "personaweb.node.id": event.node_id,
            }
            if act.get("by"):
                attributes["user.name"] = str(act["by"])
            if act.get("on"):
                attributes["personaweb.node.on"] = str(act["on"])
            wrote = event.kind is EventKind.FEEDBACK or act["action"] == "edit"
            if site.capture_content and wrote:
                attributes["personaweb.text"] = event.text  # what the person wrote
            out.append(SpanEvent(f"personaweb.{act['action']}", float(act["at"]), attributes))
        if event.kind is EventKind.DECISION and "character" in event.data:
            out.append(
                SpanEvent("personaweb.heat_decision", event.created_at, _decision(event.data))
            )
    out.sort(key=lambda e: e.at)
    return tuple(out)


def human_acts(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The well-formed entries of a node's `data["human"]` (a tree file may hold anything)."""
    acts = data.get(HUMAN)
    if not isinstance(acts, list):
        return []
    return [
        a
        for a in acts
        if isinstance(a, dict)
        and isinstance(a.get("action"), str)
        and isinstance(a.get("at"), int | float)
        and not isinstance(a.get("at"), bool)
    ]


def _decision(data: Mapping[str, Any]) -> dict[str, Attribute]:
    attributes: dict[str, Attribute] = {
        "personaweb.decision.character": str(data.get("character", "")),
        "personaweb.decision.speak": bool(data.get("speak")),
        "personaweb.decision.chosen": bool(data.get("chosen")),
        "personaweb.decision.policy": str(data.get("policy", "")),
        "personaweb.decision.reason": str(data.get("reason", "")),
    }
    numbers = data.get("numbers")
    if isinstance(numbers, Mapping):
        for key, value in numbers.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[f"personaweb.decision.{key}"] = float(value)
    return attributes


def _messages(messages: Sequence[Mapping[str, Any]], finish_reason: str | None = None) -> str:
    """Messages in the conventions' shape (role and text parts), as JSON text."""
    out = []
    for message in messages:
        item: dict[str, Any] = {
            "role": str(message.get("role", "user")),
            "parts": [{"type": "text", "content": str(message.get("content", ""))}],
        }
        if finish_reason is not None:
            item["finish_reason"] = finish_reason
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def _server(endpoint: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(endpoint)
        return parts.hostname or "", parts.port
    except ValueError:
        return "", None


def _error_type(reason: str) -> str:
    """The error's class from a failure reason ("LLMTimeout: ..."), else "_OTHER"."""
    head = reason.partition(":")[0].strip()
    return head if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", head) else "_OTHER"
