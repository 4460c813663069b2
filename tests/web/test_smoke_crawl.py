"""A smoke crawl of the whole site: alice gets one of everything, made the way the pages make
it (real runs against the scripted LLM, so every session has a real tree), then every URL
pattern of personaweb.urls is filled with her real ids and fetched.

- As alice, no page is a server error or shows a template variable that does not resolve,
  each GET answers what CRAWL says (200, or 405 for a POST-only view, 302, 404), and each
  200 shows what it is about: the session's title, message and reply, the character's name
  and card text, the node's content, the comparison's script.
- As bob, every URL naming one of her things is a 404, exactly like a missing id (a GET of a
  POST-only view is a 405 for anyone); the pages without her ids (lists, forms, PUBLIC ones)
  answer him as they answer her; and no page of his shows anything of hers.
- Signed out, only the PUBLIC patterns answer; the others send to the login (the API: 401).
- As a superuser, every page of the admin (walked apart: see ADMIN) answers.

CRAWL says how each pattern is filled and what it shows; EXEMPT lists patterns left out, each
with its reason (none today). A pattern in neither fails both tests below, so the crawl
cannot shrink silently when the site grows, and an entry whose pattern went away fails too.
Failures are collected, not raised one by one: a run lists every URL that broke a rule.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils.html import escape

from personaweb.api import tokens
from personaweb.api.models import ApiToken
from personaweb.cast.models import Lorebook
from personaweb.compare import charts, running
from personaweb.compare.models import Comparison, Contender
from personaweb.compare.setup import ContenderSpec, create_comparison
from personaweb.llm.scripted_server import ServerError
from personaweb.personas import NodeKind
from personaweb.training.exports import KINDS
from personaweb.web import runs
from personaweb.web.models import Character, ChatSession, NodeRow, Run, RunStatus
from tests.cardkit import community_card
from tests.live import scripted_llm
from tests.scripted_replies import group_responder
from tests.web.test_groups import group_form

pytestmark = pytest.mark.django_db(transaction=True)  # runs write from their own threads

RUN_DEADLINE_S = 30.0
"""How long one run (or a comparison's runs) may take before the test fails."""
REQUEST_DEADLINE_S = 20.0
"""How long one GET (its whole body, for an event stream) may take before the test fails."""


# --- the scripted LLM: every persona of every hierarchy -----------------------------------------


def _code_lead(messages: list[dict[str, str]]) -> str:
    """The code team's lead, along its plan: planner, coder, reviewer, then the reply."""
    step = next(
        (
            m["content"]
            for m in reversed(messages)
            if m["role"] == "user" and m["content"].startswith(("Message from", "Reply from"))
        ),
        "",
    )
    said = step.partition(": ")[2]
    if step.startswith("Message from"):
        decision = {"action": "delegate", "to": "planner", "message": said}
    elif step.startswith("Reply from planner"):
        decision = {"action": "delegate", "to": "coder", "message": f"Task and plan: {said}"}
    elif step.startswith("Reply from coder"):
        decision = {"action": "delegate", "to": "reviewer", "message": said}
    else:
        decision = {"action": "reply", "to": "caller", "message": f"Shipped. Review: {said}"}
    return json.dumps(decision)


def smoke_responder(body: dict[str, Any]) -> str:
    """The code team and the comparison's judge here; the dialogue and group personas as the
    other suites script them (tests/scripted_replies.py)."""
    messages = body["messages"]
    system = messages[0]["content"]
    if system.startswith("You lead a small coding team"):
        return _code_lead(messages)
    if system.startswith("You plan small programming tasks"):
        return "1. Print a greeting."
    if system.startswith("You write Python"):
        return "```python\nprint('ahoy')\n```"
    if system.startswith("You check Python code"):
        return "APPROVED"
    if system.startswith("You review code"):
        return "- prints as asked\nReady to ship."
    if system.startswith("You rate"):
        return json.dumps({"score": 0.6, "reason": "In voice."})
    return group_responder(body)


# --- the patterns ---------------------------------------------------------------------------------

PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
IDS = {"pk", "other", "node_id", "contender_pk", "run_pk"}
"""Parameters that name someone's object (the others, fmt, name, kind and action, are names):
a URL with one of them is alice's, and a 404 for bob."""

ADMIN = "admin/"
"""Django's admin, staff only: walked apart (test_the_admin_answers_a_superuser), since its
patterns are made per registered model and filled by the admin's own URL names."""


def walk(patterns: list, prefix: str = "", into_admin: bool = False) -> Iterator[str]:
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            if route == ADMIN and not into_admin:
                yield route  # the include itself: alice and bob are sent to the admin login
                continue
            yield from walk(p.url_patterns, route, into_admin)
        elif isinstance(p, URLPattern):
            yield route


def all_routes() -> list[str]:
    # The API declares one pattern per operation; operations on one path share the URL (its
    # view dispatches on the method), so a GET crawl visits each path once.
    return list(dict.fromkeys(walk(get_resolver().url_patterns)))


def admin_routes() -> set[str]:
    # As ResolverMatch.route spells them (a regex pattern's leading ^ dropped).
    walked = walk(get_resolver().url_patterns, into_admin=True)
    return {r.replace("/^", "/") for r in walked if r.startswith(ADMIN)}


def params_of(route: str) -> set[str]:
    return {m["name"] for m in PARAM.finditer(route)}


def url_of(route: str, values: dict[str, Any]) -> str:
    return "/" + PARAM.sub(lambda m: str(values[m["name"]]), route)


# --- alice's world --------------------------------------------------------------------------------

TITLES = {
    "single": "Quokka single chat",
    "nested": "Quokka nested card chat",
    "linear": "Quokka linear chat",
    "code": "Quokka code team",
    "group": "Quokka tavern group",
    "branched": "Quokka branched review",
    "failed": "Quokka failed turn",
}
SAID = {
    "single": "Where are we bound, Mira?",
    "nested": "Show me the compass, Mira.",
    "linear": "Is the kraken real?",
    "code": "Write a program that greets a sailor.",
    "group": "Ann, how was the hunt today?",
    "branched": "Tell me of the storm.",
    "failed": "Are you listening?",
}
LONG_GREETING = (
    "*{{char}} rolls up a chart and pins it under a brass compass, eyes narrowed at the door.* "
    "You're the new hand, {{user}}? Don't touch that. "
    + " ".join(
        f"*She taps reef number {i} with a pencil.* That one took a ship in the year {1700 + i}."
        for i in range(1, 25)
    )
)
GREETING_END = "That one took a ship in the year 1724."
BOOK_NAME = "Quokka Ports Atlas"
BOOK_ENTRY = "Tortuga pays its pilots in silver, and late."
WORLD_INFO = {
    "name": BOOK_NAME,
    "entries": {
        "0": {
            "uid": 0,
            "key": ["Tortuga"],
            "keysecondary": [],
            "comment": "Tortuga",
            "content": BOOK_ENTRY,
            "constant": False,
            "selective": False,
            "order": 100,
            "position": 0,
            "disable": False,
        }
    },
}
"""A standalone lorebook, as SillyTavern's World Info files are."""
COMPARISON_TITLE = "Quokka strategy bake-off"
SCRIPT = ["Who are you, sailor?", "Where is the treasure?"]
TOKEN_NAME = "Quokka deploy script"
NOTE = "Quokka note"


@dataclass
class World:
    mira: Character
    """Imported from a community card, with its character_book and a standalone book."""
    cast: list[Character]
    book: Lorebook
    sessions: dict[str, ChatSession]
    """By kind: single, nested, linear, code, group, replay, branched, failed, imported."""
    shown_nodes: dict[str, list[NodeRow]]
    """Per session kind, the nodes whose inspector (and API node) the crawl opens."""
    comparison: Comparison
    contenders: list[Contender]
    token: ApiToken
    run: Run
    markers: list[str] = field(default_factory=list)
    """Texts only alice's things contain: none may show on bob's pages."""


async def finished(what: str, awaitable: Awaitable[Any], timeout: float = RUN_DEADLINE_S) -> Any:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        pytest.fail(f"gave up after {timeout:g} s waiting for {what}")


async def wait_for_run(session: ChatSession, what: str) -> None:
    await finished(f"the run of {what} (session {session.pk})", runs.wait(session.pk))
    going = Run.objects.filter(session=session, status=RunStatus.RUNNING)
    assert not await going.aexists(), f"{what}: its run is still going after its wait"


async def post(client: Any, url: str, data: dict[str, Any] | None = None) -> Any:
    response = await client.post(url, data or {})
    assert response.status_code in (200, 201, 204, 302), (
        f"POST {url}: {response.status_code} {response.content[:300]!r}"
    )
    return response


async def nodes_of(session: ChatSession) -> list[NodeRow]:
    return [n async for n in NodeRow.objects.filter(session=session).order_by("seq")]


async def new_session(client: Any, title: str, **form: Any) -> ChatSession:
    await post(client, reverse("session_new"), {"title": title, **form})
    return await ChatSession.objects.aget(title=title)


async def send(client: Any, session: ChatSession, text: str, what: str) -> None:
    response = await client.post(f"{session.get_absolute_url()}send/", {"text": text})
    assert response.status_code == 204, f"send to {what}: {response.status_code}"
    await wait_for_run(session, what)


async def build_world(client: Any, alice: Any, llm: Any, make_cast: Any) -> World:
    """One of everything, made through the pages (the product's own functions where no page
    makes it), with real runs on the scripted LLM."""
    # A community card (V2 JSON: narrated *actions*, a long greeting, example dialogue in the
    # description, a character_book), imported on the Characters page.
    card = community_card(first_mes=LONG_GREETING)
    upload = SimpleUploadedFile("mira.json", json.dumps(card).encode(), "application/json")
    await post(client, reverse("cast:import"), {"card": upload})
    mira = await Character.objects.aget(owner=alice, name="Mira Vance")
    # A standalone lorebook, imported and attached to Mira.
    upload = SimpleUploadedFile("ports.json", json.dumps(WORLD_INFO).encode(), "application/json")
    await post(client, reverse("cast:lorebook_import"), {"book": upload})
    book = await Lorebook.objects.aget(owner=alice)
    await post(client, reverse("cast:lorebook_attach", args=[book.pk]), {"characters": [mira.pk]})
    cast = await sync_to_async(make_cast)(alice)  # Ann, Bob and Cara (tests/conftest.py)

    sessions: dict[str, ChatSession] = {}
    # One autonomous turn of the card per strategy; the nested chat names the person and has
    # the standalone book as a session lorebook.
    for strategy in ("single", "nested", "linear"):
        extra = {"lorebooks": [book.pk], "user_name": "Joe"} if strategy == "nested" else {}
        session = await new_session(
            client,
            TITLES[strategy],
            hierarchy="dialogue",
            strategy=strategy,
            character=mira.pk,
            mode="autonomous",
            **extra,
        )
        await send(client, session, SAID[strategy], f"the {strategy} chat")
        sessions[strategy] = session
    # The code team, autonomous: lead, planner, coder (implementer and tester), reviewer.
    code = await new_session(client, TITLES["code"], hierarchy="code", mode="autonomous")
    await send(client, code, SAID["code"], "the code team")
    sessions["code"] = code
    # A group chat, made on its form, one turn; then its replay under another policy.
    await post(client, reverse("group_new"), group_form(cast, title=TITLES["group"]))
    group = await ChatSession.objects.aget(title=TITLES["group"])
    await send(client, group, SAID["group"], "the group chat")
    sessions["group"] = group
    replay_url = reverse("group_replay", args=[group.pk])
    await post(client, replay_url, {"policy": "prepass", "order": "pooled"})
    others = ChatSession.objects.filter(owner=alice, hierarchy="group").exclude(pk=group.pk)
    sessions["replay"] = replay = await others.aget()
    await wait_for_run(replay, "the group replay")
    # A review chat with a branch: the orchestrator's first proposal approved, the
    # responder's line rejected and its second take approved (a preference pair), an
    # annotation, then a new branch from the first proposal: the message has two children.
    branched = await new_session(
        client,
        TITLES["branched"],
        hierarchy="dialogue",
        strategy="nested",
        character=mira.pk,
        mode="review",
        greeting="none",
    )
    base = branched.get_absolute_url()
    await send(client, branched, SAID["branched"], "the review chat")
    first = (await nodes_of(branched))[-1]
    await post(client, f"{base}n/{first.id}/approve/")
    await wait_for_run(branched, "the approval")
    line = (await nodes_of(branched))[-1]
    await post(client, f"{base}n/{line.id}/reject/")
    await wait_for_run(branched, "the rejection")
    take = (await nodes_of(branched))[-1]
    assert take.parent_id == line.id, "the rejection made no second take"
    await post(client, f"{base}n/{take.id}/approve/")
    await wait_for_run(branched, "the second take's approval")
    await post(client, f"{base}n/{first.id}/branch/")
    await wait_for_run(branched, "the branch")
    await post(client, f"{base}n/{line.id}/annotate/", {"text": NOTE, "label": "good"})
    forks = [n async for n in NodeRow.objects.filter(parent_id=first.parent_id)]
    assert len(forks) == 2, "the branch did not give the message a second child"
    sessions["branched"] = branched
    # A failed turn: the model answers an error the client does not retry.
    failed = await new_session(
        client,
        TITLES["failed"],
        hierarchy="dialogue",
        strategy="nested",
        character=mira.pk,
        mode="review",
        greeting="none",
    )
    llm.enqueue(ServerError(400, headers={"x-should-retry": "false"}))
    await send(client, failed, SAID["failed"], "the failing chat")
    error = (await nodes_of(failed))[-1]
    assert (error.kind, error.status) == (NodeKind.ERROR, "failed"), "no ERROR node"
    sessions["failed"] = failed
    # A session file: the nested chat exported and imported back.
    exported = await client.get(f"{sessions['nested'].get_absolute_url()}export/")
    upload = SimpleUploadedFile("nested.json", exported.content, "application/json")
    await post(client, reverse("session_import"), {"file": upload})
    mine = ChatSession.objects.filter(owner=alice)
    known = [s.pk for s in sessions.values()]
    sessions["imported"] = await mine.exclude(pk__in=known).aget()

    # A blind comparison of the three strategies, played to its end, voted on and judged.
    comparison = await sync_to_async(create_comparison)(
        alice,
        mira,
        SCRIPT,
        [ContenderSpec("single"), ContenderSpec("nested"), ContenderSpec("linear")],
        blind=True,
        title=COMPARISON_TITLE,
    )
    await running.start(comparison)
    await finished("the comparison's runs", running.wait(comparison, RUN_DEADLINE_S))
    contenders = [c async for c in comparison.contenders.order_by("position")]
    for index in range(len(SCRIPT)):
        vote = {"line": index, "contender": contenders[0].pk}
        await post(client, reverse("compare:vote", args=[comparison.pk]), vote)
    await post(client, reverse("compare:judge", args=[comparison.pk]))

    # Every run ended done, or stopped for a person (review mode), but the one meant to fail.
    ended = [(r.session.title, r.status) async for r in Run.objects.select_related("session")]
    well = (RunStatus.DONE, RunStatus.STOPPED)
    bad = [e for e in ended if e[1] not in well and e[0] != TITLES["failed"]]
    assert not bad, f"runs that did not end well: {bad}"

    shown: dict[str, list[NodeRow]] = {}
    for kind, session in sessions.items():
        await session.arefresh_from_db()
        rows = await nodes_of(session)
        assert rows, f"the {kind} session has no nodes"
        # Its root and active leaf, an error or group decision if any, and on the branched
        # chat both children of the forked message and the rejected line.
        picks = [rows[0], rows[-1]]
        picks += [r for r in rows if r.kind in (NodeKind.ERROR, NodeKind.DECISION)][:2]
        if kind == "branched":
            picks += [*forks, line]
        shown[kind] = list({r.id: r for r in picks}.values())

    token = await sync_to_async(tokens.create)(alice, TOKEN_NAME)
    run = await Run.objects.filter(session=sessions["nested"]).alatest("pk")
    markers = [*TITLES.values(), "Mira Vance", "Ann Archer", BOOK_NAME, BOOK_ENTRY]
    markers += [COMPARISON_TITLE, TOKEN_NAME, SAID["group"], NOTE]
    return World(
        mira=mira,
        cast=cast,
        book=book,
        sessions=sessions,
        shown_nodes=shown,
        comparison=comparison,
        contenders=contenders,
        token=token.row,
        run=run,
        markers=markers,
    )


# --- how each pattern is filled, and what it shows ------------------------------------------------

Shows = tuple[str | bytes, ...]


@dataclass(frozen=True)
class Visit:
    """One URL of a pattern: what the GET answers, what its body must contain (if a 200), and
    whether the URL names one of alice's things (then bob's GET is a 404)."""

    url: str
    status: int = 200
    shows: Shows = ()
    hers: bool = True


Fill = Callable[[str, World], list[Visit]]


def query_string(query: dict[str, Any] | None) -> str:
    return f"?{urlencode(query, doseq=True)}" if query else ""


def html(*texts: str) -> Shows:
    return tuple(escape(t) for t in texts)


def in_json(*texts: str) -> Shows:
    return tuple(json.dumps(t)[1:-1] for t in texts)


def page(
    show: Callable[[World], Shows] = lambda w: (),
    status: int = 200,
    query: Callable[[World], dict[str, Any]] | None = None,
    hers: bool = False,
) -> Fill:
    """A pattern without ids: one visit. Bob gets his own version of the page (the same
    status, none of alice's things on it), unless its query names one of hers (`hers`)."""

    def visits(route: str, w: World) -> list[Visit]:
        url = url_of(route, {}) + query_string(query(w) if query else None)
        return [Visit(url, status, show(w), hers)]

    return visits


def post_only(fill: Fill | None = None) -> Fill:
    """A view for POST (or PUT, DELETE) only: a GET is a 405 for anyone, whatever the ids."""

    def visits(route: str, w: World) -> list[Visit]:
        return [Visit(v.url, 405, (), v.hers) for v in (fill or page())(route, w)]

    return visits


def each_session(
    show: Callable[[str, ChatSession], Shows] = lambda kind, s: (),
    kinds: tuple[str, ...] | None = None,
    query: dict[str, Any] | None = None,
) -> Fill:
    def visits(route: str, w: World) -> list[Visit]:
        return [
            Visit(url_of(route, {"pk": s.pk}) + query_string(query), 200, show(kind, s))
            for kind, s in w.sessions.items()
            if kinds is None or kind in kinds
        ]

    return visits


def each_node(show: Callable[[NodeRow], Shows] = lambda n: (), **names: str) -> Fill:
    def visits(route: str, w: World) -> list[Visit]:
        return [
            Visit(
                url_of(route, {"pk": w.sessions[kind].pk, "node_id": n.id, **names}), 200, show(n)
            )
            for kind, rows in w.shown_nodes.items()
            for n in rows
        ]

    return visits


def each_character(show: Callable[[Character], Shows] = lambda c: html(c.name)) -> Fill:
    def visits(route: str, w: World) -> list[Visit]:
        return [Visit(url_of(route, {"pk": c.pk}), 200, show(c)) for c in (w.mira, *w.cast)]

    return visits


CARD_FORMATS = ("v2.json", "v3.json", "v2.png", "v3.png")
PNG = b"\x89PNG\r\n\x1a\n"


def each_card_format() -> Fill:
    def visits(route: str, w: World) -> list[Visit]:
        return [
            Visit(
                url_of(route, {"pk": w.mira.pk, "fmt": fmt}),
                200,
                (PNG,) if fmt.endswith("png") else ("Mira Vance", "The kraken sleeps"),
            )
            for fmt in CARD_FORMATS
        ]

    return visits


def the_book(show: Shows = ()) -> Fill:
    return lambda route, w: [Visit(url_of(route, {"pk": w.book.pk}), 200, show)]


def the_comparison(show: Callable[[World], Shows] = lambda w: ()) -> Fill:
    return lambda route, w: [Visit(url_of(route, {"pk": w.comparison.pk}), 200, show(w))]


def each_contender() -> Fill:
    """Each column: its label (shown, as alice voted on every line) and its replies."""
    return lambda route, w: [
        Visit(
            url_of(route, {"pk": w.comparison.pk, "contender_pk": c.pk}),
            200,
            html(c.label, "Mira Vance here, line 2.", "judge 0.60"),
        )
        for c in w.contenders
    ]


def each_chart() -> Fill:
    return lambda route, w: [
        Visit(url_of(route, {"pk": w.comparison.pk, "name": name}), 200, (b"<svg",))
        for name in charts.CHARTS
    ]


def training_records(kind: str, w: World) -> Shows:
    """What each kind holds of alice's work: the review chat's rejected first take against
    its approved second one, its approved steps, her blind votes."""
    branched = f'"session": {w.sessions["branched"].pk}'
    return {
        "preferences": (branched, *in_json("Mira Vance here, line 1.", "Mira Vance here, line 2.")),
        "sft": (branched,),
        "votes": (f'"comparison": {w.comparison.pk}', *in_json(SCRIPT[0])),
    }[kind]


def each_kind() -> Fill:
    """Every kind of training data: all of alice's, and filtered to one of her sessions (a
    filter naming another's session is a 404, like a missing one)."""

    def visits(route: str, w: World) -> list[Visit]:
        found = []
        for kind in KINDS:
            url = url_of(route, {"kind": kind})
            found.append(Visit(url, 200, training_records(kind, w), hers=False))
            if kind != "votes":  # votes come from comparisons, not from a session
                only = query_string({"session": w.sessions["branched"].pk})
                found.append(Visit(url + only, 200, training_records(kind, w)))
        return found

    return visits


def the_token() -> Fill:
    return lambda route, w: [Visit(url_of(route, {"pk": w.token.pk}))]


def the_run() -> Fill:
    return lambda route, w: [
        Visit(
            url_of(route, {"pk": w.sessions["nested"].pk, "run_pk": w.run.pk}),
            200,
            (f'"id": {w.run.pk}', f'"status": "{RunStatus.DONE}"'),
        )
    ]


def versus() -> Fill:
    return lambda route, w: [
        Visit(
            url_of(route, {"pk": w.sessions["group"].pk, "other": w.sessions["replay"].pk}),
            200,
            html(w.sessions["group"].title, w.sessions["replay"].title, REPLIES["group"]),
        )
    ]


SAME_AS = {"imported": "nested", "replay": "group"}
"""Sessions holding another's conversation: the import of an export, a group replay."""
REPLIES = {
    "single": "Mira Vance here, line 2.",
    "nested": "[styled] Mira Vance here, line 2.",
    "linear": "[styled] Mira Vance here, line 2.",
    "code": "Shipped. Review: - prints as asked",
    "group": "Ann Archer here, line 1.",
    "branched": "waiting for review of orchestrator",
    "failed": "orchestrator failed: retry it",
}
"""What each session's page shows of its last turn: the scripted LLM's words, or the run
bar's state where the turn waits for a person or failed."""


def session_page(kind: str, s: ChatSession) -> Shows:
    """The title, the person's message, the turn's outcome; the card's long greeting (with
    `{{user}}` the name given on the form); the linear strategy's alignment score."""
    of = SAME_AS.get(kind, kind)
    texts = [s.title, SAID[of], REPLIES[of]]
    if of in ("single", "nested", "linear"):
        texts.append(GREETING_END)
    if of == "nested":
        texts.append("You're the new hand, Joe?")
    if of == "linear":
        texts.append("align 0.80")
    return html(*texts)


def leaf(kind: str, s: ChatSession) -> Shows:
    return (s.active_node,)


def api_session(kind: str, s: ChatSession) -> Shows:
    return (*in_json(s.title), s.active_node)


def runs_of(kind: str, s: ChatSession) -> Shows:
    # An imported session has no runs: its tree came from the file.
    return ("[]",) if kind == "imported" else (f'"session": {s.pk}',)


def first_line(text: str, size: int = 40) -> list[str]:
    return [text.splitlines()[0][:size]] if text.strip() else []


def inspector(n: NodeRow) -> Shows:
    return (n.id, *html(*first_line(n.content)))


def api_node(n: NodeRow) -> Shows:
    return (n.id, *in_json(*first_line(n.content)))


def character_page(c: Character) -> Shows:
    """The name; for the card, its example dialogue (kept in the description), the end of
    its long greeting and its character_book; for the others, their sample line."""
    if c.name == "Mira Vance":
        return html(c.name, "North is where I say it is, sailor.", GREETING_END, "Tide Atlas")
    return html(c.name, f"{c.name.split()[0]} speaking.")


def character_form(c: Character) -> Shows:
    """The edit form, filled in (the card's book is edited on its own page)."""
    return tuple(t for t in character_page(c) if t != "Tide Atlas")


def character_book(c: Character) -> Shows:
    if c.name == "Mira Vance":
        return html(c.name, "The kraken sleeps under the Grey Reef")
    return html(c.name)


def api_character(c: Character) -> Shows:
    if c.name == "Mira Vance":
        return in_json(c.name, "The kraken sleeps under the Grey Reef", GREETING_END)
    return in_json(c.name)


def names_of_all(w: World) -> Shows:
    return html(*(c.name for c in (w.mira, *w.cast)))


def home(w: World) -> Shows:
    return (*html(*(s.title for s in w.sessions.values())), *names_of_all(w))


CRAWL: dict[str, Fill] = {
    # accounts
    "accounts/login/": page(lambda w: ('name="username"',)),
    "accounts/logout/": post_only(),
    # characters, cards and lorebooks
    "characters/": page(names_of_all),
    "characters/new/": page(lambda w: ('name="name"',)),
    "characters/import/": post_only(),
    "characters/<int:pk>/": each_character(character_page),
    "characters/<int:pk>/edit/": each_character(character_form),
    "characters/<int:pk>/duplicate/": post_only(each_character()),
    "characters/<int:pk>/delete/": each_character(),  # GET: the confirmation
    "characters/<int:pk>/confirm-endpoint/": post_only(each_character()),
    "characters/<int:pk>/export/<str:fmt>/": each_card_format(),
    "characters/<int:pk>/lorebook/": each_character(character_book),
    "characters/<int:pk>/samples/": post_only(each_character()),
    # The new-session form's card part: bob sees nothing of alice's character (200, empty).
    "characters/session-card/": page(
        lambda w: html("*Mira Vance rolls up a chart", BOOK_NAME),
        query=lambda w: {"character": w.mira.pk},
    ),
    "characters/lorebooks/import/": post_only(),
    "characters/lorebooks/<int:pk>/": the_book(html(BOOK_NAME, BOOK_ENTRY, "Mira Vance")),
    "characters/lorebooks/<int:pk>/attach/": post_only(the_book()),
    "characters/lorebooks/<int:pk>/delete/": post_only(the_book()),
    "characters/lorebooks/<int:pk>/export/": the_book(in_json(BOOK_ENTRY)),
    # comparisons
    "compare/": page(lambda w: html(COMPARISON_TITLE, "Mira Vance")),
    "compare/new/": lambda route, w: [
        *page(lambda w: ('name="script"',))(route, w),
        # A re-run's form, filled from the comparison it repeats.
        *page(lambda w: html(*SCRIPT), query=lambda w: {"from": w.comparison.pk}, hers=True)(
            route, w
        ),
    ],
    "compare/<int:pk>/": the_comparison(
        lambda w: html(COMPARISON_TITLE, *SCRIPT, "[styled] Mira Vance here, line 2.")
    ),
    "compare/<int:pk>/board/": the_comparison(lambda w: html(*SCRIPT, "judge 0.60")),
    "compare/<int:pk>/c/<int:contender_pk>/": each_contender(),
    "compare/<int:pk>/vote/": post_only(the_comparison()),
    "compare/<int:pk>/reveal/": post_only(the_comparison()),
    "compare/<int:pk>/rerun/": post_only(the_comparison()),
    "compare/<int:pk>/resume/": post_only(the_comparison()),
    "compare/<int:pk>/judge/": post_only(the_comparison()),
    "compare/<int:pk>/delete/": post_only(the_comparison()),
    "compare/<int:pk>/export.json": the_comparison(lambda w: in_json(COMPARISON_TITLE, *SCRIPT)),
    "compare/<int:pk>/export.csv": the_comparison(lambda w: (*SCRIPT, "Mira Vance here")),
    "compare/<int:pk>/figures.csv": the_comparison(lambda w: ("llm_calls_per_reply",)),
    "compare/<int:pk>/charts/<slug:name>.svg": each_chart(),
    # training data
    "training/": page(lambda w: (*KINDS, *html(*TITLES.values()))),
    "training/<slug:kind>.jsonl": each_kind(),
    # the JSON API (signed in by the session cookie, as its docs page is)
    "api/openapi.json": page(lambda w: ('"openapi"',)),
    "api/docs": page(lambda w: ("swagger",)),
    "api/sessions": page(lambda w: tuple(TITLES.values())),
    "api/sessions/<int:pk>": each_session(api_session),
    "api/sessions/<int:pk>/mode": post_only(each_session()),
    "api/sessions/<int:pk>/export": each_session(leaf),
    "api/sessions/<int:pk>/messages": post_only(each_session()),
    "api/sessions/<int:pk>/stop": post_only(each_session()),
    "api/sessions/<int:pk>/runs": each_session(runs_of),
    "api/sessions/<int:pk>/runs/<int:run_pk>": the_run(),
    # Server-Sent Events, cut short: ?timeout=0 ends the stream after its hello.
    "api/sessions/<int:pk>/events": each_session(
        lambda kind, s: ("event: hello", f'"session": {s.pk}', "event: end"), query={"timeout": 0}
    ),
    "api/sessions/<int:pk>/tree": each_session(leaf),
    "api/sessions/<int:pk>/path": each_session(leaf),
    "api/sessions/<int:pk>/nodes/<node_id>": each_node(api_node),
    "api/sessions/<int:pk>/nodes/<node_id>/annotations": post_only(each_node()),
    "api/sessions/<int:pk>/nodes/<node_id>/<action>": post_only(each_node(action="approve")),
    "api/characters": page(lambda w: in_json(*(c.name for c in (w.mira, *w.cast)))),
    "api/characters/import": post_only(),
    "api/characters/<int:pk>": each_character(api_character),
    "api/characters/<int:pk>/card/<fmt>": each_card_format(),
    "api/comparisons": page(lambda w: in_json(COMPARISON_TITLE)),
    "api/comparisons/<int:pk>": the_comparison(lambda w: in_json(COMPARISON_TITLE, *SCRIPT)),
    "api/comparisons/<int:pk>/results": the_comparison(lambda w: ('"votes": 2',)),
    "api/comparisons/<int:pk>/votes": post_only(the_comparison()),
    "api/comparisons/<int:pk>/reveal": post_only(the_comparison()),
    "api/training/<kind>": each_kind(),
    # django-ninja's root: a 404 by design (it is there to name the API's base path).
    "api/": page(status=404),
    # The project's catch-all after the API: any other /api/ path is a JSON 404.
    "^api/": lambda route, w: [Visit("/api/quokka/nowhere", 404, ('"detail"',), hers=False)],
    # API tokens
    "tokens/": page(lambda w: html(TOKEN_NAME)),
    "tokens/new/": post_only(),
    "tokens/<int:pk>/revoke/": post_only(the_token()),
    # sessions: the debugger, group chats, session files
    "": page(home),
    "sessions/new/": post_only(),
    "sessions/profile-fields/": page(lambda w: ("planner",), query=lambda w: {"hierarchy": "code"}),
    # Bob gets the field without alice's character in it (200, nothing of hers).
    "sessions/strategy-field/": page(
        lambda w: ("Mira Vance",), query=lambda w: {"character": w.mira.pk}
    ),
    "sessions/import/": page(lambda w: ('name="file"',)),
    "groups/new/": page(lambda w: html(*(c.name for c in w.cast))),
    "s/<int:pk>/replay/": post_only(each_session(kinds=("group", "replay"))),
    "s/<int:pk>/vs/<int:other>/": versus(),
    "s/<int:pk>/": each_session(session_page),
    "s/<int:pk>/tree/": each_session(leaf),
    "s/<int:pk>/panes/": each_session(leaf),
    "s/<int:pk>/send/": post_only(each_session()),
    "s/<int:pk>/mode/": post_only(each_session()),
    "s/<int:pk>/stop/": post_only(each_session()),
    "s/<int:pk>/export/": each_session(leaf),
    "s/<int:pk>/delete/": post_only(each_session()),
    "s/<int:pk>/select/<str:node_id>/": post_only(each_node()),
    "s/<int:pk>/inspect/<str:node_id>/": each_node(inspector),
    "s/<int:pk>/n/<str:node_id>/annotate/": post_only(each_node()),
    "s/<int:pk>/n/<str:node_id>/<str:action>/": post_only(each_node(action="approve")),
    # The admin, to alice and bob (not staff): its login. Its pages: see ADMIN.
    ADMIN: page(status=302),
}
"""Every crawled pattern: how it is filled from alice's things, what her GET answers and what
a 200 shows."""

PUBLIC = {
    "accounts/login/": "the login page",
    "api/openapi.json": "the API's OpenAPI document, as public as its docs",
    "api/docs": "the API's docs page (Swagger UI, django-ninja's own static files)",
    "api/": "django-ninja's root: a 404 to anyone",
    "^api/": "the project's catch-all for other /api/ paths: a JSON 404 to anyone",
}
"""Patterns that answer without a sign-in, each with what it is. Every other one needs it.
(Static files are not in the URLconf: daphne and the deploy serve them.)"""

EXEMPT: dict[str, str] = {}
"""Patterns the crawl does not visit, each with its reason. None today: every pattern of
personaweb.urls can be filled from alice's things."""

NOT_IN_THE_URLCONF = {
    "ws/s/<int:session_id>/": (
        "the debugger's WebSocket (personaweb/web/routing.py), routed by Channels outside the "
        "URLconf; tests/web/test_consumers.py and test_ws_routing.py cover it (its SSE "
        "sibling, api/sessions/<pk>/events, is crawled)"
    ),
}
"""Endpoints the resolver does not list, written down so the crawl's edges are known."""


# --- templates, fetching and the rules ------------------------------------------------------------

INVALID = "@@INVALID:%s@@"
"""What a template shows for a variable that does not resolve (string_if_invalid)."""
INVALID_SHOWN = re.compile(r"@@INVALID:([^@]*)@@")
SILENT_BY_DESIGN = {
    "c.data.strategy": (
        'cast/list.html: `|default:"nested"` for a sheet that names no strategy (with '
        "string_if_invalid set, Django skips the filters of a variable that does not resolve)"
    ),
    "ins.node.id": "web/panes.html: `|default:''` when no node is in the inspector",
    "chosen.persona": "training/page.html: a filter not in the query is an empty field",
    "chosen.since": "training/page.html: a filter not in the query is an empty field",
    "chosen.until": "training/page.html: a filter not in the query is an empty field",
}
"""Variables the project's templates leave unresolved on purpose: where, and why."""


@pytest.fixture
def strict_templates(settings):
    """Templates that show a variable that does not resolve (instead of an empty string), with
    their debug information kept. The copy keeps the partials loader template_partials set."""
    templates = copy.deepcopy(django_settings.TEMPLATES)
    for engine in templates:
        engine.setdefault("OPTIONS", {})
        engine["OPTIONS"]["string_if_invalid"] = INVALID
        engine["OPTIONS"]["debug"] = True
    settings.TEMPLATES = templates


SILENT_SEEN: set[str] = set()
"""The SILENT_BY_DESIGN variables the crawl met (an entry never met is stale)."""


def unresolved(text: str) -> list[str]:
    found = set(INVALID_SHOWN.findall(text))
    SILENT_SEEN.update(found & SILENT_BY_DESIGN.keys())
    return sorted(found - SILENT_BY_DESIGN.keys())


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    location: str = ""
    error: str = ""
    """What the view raised (the test client re-raises it), if it did."""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def is_text(self) -> bool:
        return not self.content_type.startswith("image/png")


async def _read(response: Any) -> bytes:
    if not response.streaming:
        return bytes(response.content)
    if response.is_async:
        return b"".join([chunk async for chunk in response.streaming_content])
    return b"".join(response.streaming_content)


async def fetch(client: Any, url: str) -> Answer:
    async def get() -> Answer:
        try:
            response = await client.get(url)
        except Exception as exc:  # a server error: the client re-raises what the view raised
            return Answer(500, b"", "", error=f"{type(exc).__name__}: {exc}"[:500])
        return Answer(
            response.status_code,
            await _read(response),
            response.get("Content-Type", ""),
            response.get("Location", ""),
        )

    return await finished(f"GET {url} (its status and its whole body)", get(), REQUEST_DEADLINE_S)


def owner_problems(who: str, visit: Visit, answer: Answer, templates: bool = True) -> list[str]:
    where = f"{who} GET {visit.url}"
    if answer.error:
        return [f"{where}: raised {answer.error}"]
    problems = []
    if answer.status != visit.status:
        snippet = f" {answer.text[:200]!r}" if answer.status >= 400 else ""
        problems.append(f"{where}: {answer.status}, expected {visit.status}{snippet}")
    if templates and answer.is_text and (invalid := unresolved(answer.text)):
        problems.append(f"{where}: template variables that do not resolve: {invalid}")
    if answer.status == 200:
        for needle in visit.shows:
            if (needle if isinstance(needle, bytes) else needle.encode()) not in answer.body:
                problems.append(f"{where}: does not show {needle!r}")
    return problems


def stranger_problems(
    who: str, expected: int, visit: Visit, answer: Answer, markers: list[str]
) -> list[str]:
    where = f"{who} GET {visit.url}"
    if answer.error:
        return [f"{where}: raised {answer.error}"]
    problems = []
    if answer.status != expected:
        problems.append(f"{where}: {answer.status}, expected {expected}")
    elif expected == 302 and not answer.location.startswith(("/accounts/login/", "/admin/login/")):
        problems.append(f"{where}: sent to {answer.location}, not to a login page")
    if answer.is_text:
        text = answer.text
        if leaked := [m for m in markers if m in text or escape(m) in text]:
            problems.append(f"{where}: shows alice's {leaked}")
        if invalid := unresolved(text):
            problems.append(f"{where}: template variables that do not resolve: {invalid}")
    return problems


def for_bob(visit: Visit) -> int:
    """Another's id is a 404, like a missing one. A GET of a POST-only view is a 405 for
    anyone (the method is refused before any id is looked at): it tells nothing either. A
    page without her ids is bob's own version of it, answered as hers was."""
    return 404 if visit.hers and visit.status != 405 else visit.status


def for_anonymous(route: str, visit: Visit) -> int:
    """Signed out: a public page answers as to alice; a POST-only view is a 405; the API
    wants a token (401); any other page sends to the login (302)."""
    if route in PUBLIC or visit.status == 405:
        return visit.status
    return 401 if visit.url.startswith("/api/") else 302


def admin_visits() -> list[Visit]:
    """Every admin page, for a superuser: the site's own, each app's, and each registered
    model's list, add form and (for its first object) change, history, delete and the
    object's bare URL (a redirect to its change form), view-on-site where it has a page."""
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.contrib.contenttypes.models import ContentType

    found = [
        Visit(reverse("admin:index"), 200, ("Site administration",)),
        Visit(reverse("admin:login"), 302),  # signed in already: on to the index
        Visit(reverse("admin:logout"), 405),
        Visit(reverse("admin:password_change"), 200),
        Visit(reverse("admin:password_change_done"), 200),
        Visit(reverse("admin:autocomplete"), 403),  # no model has autocomplete fields
        Visit(reverse("admin:jsi18n"), 200),
        Visit("/admin/quokka/nowhere/", 404),  # the admin's catch-all
    ]
    registry = admin.site._registry
    for label in sorted({model._meta.app_label for model in registry}):
        found.append(Visit(reverse("admin:app_list", args=[label]), 200))
    for model in registry:
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"no {model.__name__} to open in the admin"
        found += [Visit(reverse(f"{name}_changelist")), Visit(reverse(f"{name}_add"))]
        for view in ("change", "history", "delete"):
            found.append(Visit(reverse(f"{name}_{view}", args=[obj.pk]), 200, html(str(obj))))
        bare = reverse(f"{name}_change", args=[obj.pk]).removesuffix("change/")
        found.append(Visit(bare, 302))
        if hasattr(model, "get_absolute_url"):
            content_type = ContentType.objects.get_for_model(model)
            site = reverse("admin:view_on_site", args=[content_type.pk, obj.pk])
            found.append(Visit(site, 302))
    alice = User.objects.get(username="alice")
    found.append(Visit(reverse("admin:auth_user_password_change", args=[alice.pk]), 200))
    return found


# --- the tests ------------------------------------------------------------------------------------


def test_every_url_pattern_is_crawled_or_exempt():
    routes = set(all_routes())
    assert len(routes) >= 80, "the walk found too few patterns: is it still entering includes?"
    assert {"characters/<int:pk>/", "compare/<int:pk>/", "s/<int:pk>/", ADMIN} <= routes
    unknown = sorted(routes - CRAWL.keys() - EXEMPT.keys())
    stale = sorted((CRAWL.keys() | EXEMPT.keys() | PUBLIC.keys()) - routes)
    both = sorted(CRAWL.keys() & EXEMPT.keys())
    assert not unknown, (
        "URL patterns the smoke crawl neither fills nor exempts: add each to CRAWL (how to "
        f"fill it, what it shows) or to EXEMPT (why not): {unknown}"
    )
    assert not stale, f"CRAWL, EXEMPT or PUBLIC entries for patterns now gone: {stale}"
    assert not both, f"patterns both crawled and exempt: {both}"


async def test_every_page_as_its_owner_as_a_stranger_and_as_staff(
    async_client, alice, bob, django_user_model, monkeypatch, strict_templates, make_cast
):
    started = time.monotonic()
    SILENT_SEEN.clear()
    with scripted_llm(monkeypatch, smoke_responder) as llm:
        await sync_to_async(async_client.force_login)(alice)
        world = await build_world(async_client, alice, llm, make_cast)
        built = time.monotonic() - started

        routes = all_routes()
        problems = [
            f"{route}: neither crawled nor exempt (see CRAWL and EXEMPT)"
            for route in routes
            if route not in CRAWL and route not in EXEMPT
        ]
        visits: list[tuple[str, Visit]] = []
        for route in routes:
            found = CRAWL[route](route, world) if route in CRAWL else []
            if not found and route in CRAWL:
                problems.append(f"{route}: its fill found nothing of alice's to visit")
            if params_of(route) & IDS:
                problems += [
                    f"{v.url}: names alice's things, yet not `hers`" for v in found if not v.hers
                ]
            visits += [(route, v) for v in found]

        for _, visit in visits:
            problems += owner_problems("alice", visit, await fetch(async_client, visit.url))

        stranger = AsyncClient()
        await sync_to_async(stranger.force_login)(bob)
        anonymous = AsyncClient()
        for route, visit in visits:
            answer = await fetch(stranger, visit.url)
            problems += stranger_problems("bob", for_bob(visit), visit, answer, world.markers)
            answer = await fetch(anonymous, visit.url)
            expected = for_anonymous(route, visit)
            problems += stranger_problems("anonymous", expected, visit, answer, world.markers)

        # The admin, as a superuser. Django's admin templates rely on silent variables, so
        # only its answers and contents are checked; every admin pattern must be visited.
        root = await sync_to_async(django_user_model.objects.create_superuser)(
            "root", "root@example.com", None
        )
        await sync_to_async(_group_for_the_admin)()
        staff = AsyncClient()
        await sync_to_async(staff.force_login)(root)
        admin = await sync_to_async(admin_visits)()
        for visit in admin:
            answer = await fetch(staff, visit.url)
            problems += owner_problems("root", visit, answer, templates=False)
        seen = {resolve(v.url.partition("?")[0]).route for v in admin}
        problems += [f"{r}: an admin pattern the crawl misses" for r in admin_routes() - seen]
        stale = sorted(SILENT_BY_DESIGN.keys() - SILENT_SEEN)
        problems += [f"SILENT_BY_DESIGN[{v!r}]: no page leaves it unresolved now" for v in stale]

    took = time.monotonic() - started
    print(
        f"\nsmoke crawl: {len(routes)} patterns ({len(admin_routes())} more in the admin); "
        f"{len(visits)} URLs as alice, as bob and signed out, {len(admin)} admin URLs; "
        f"world built in {built:.1f} s, {took:.1f} s in all"
    )
    assert not problems, f"{len(problems)} problem(s) in the crawl:\n" + "\n".join(problems)


def _group_for_the_admin() -> None:
    """auth's Group is registered in the admin too; one group gives its object pages."""
    from django.contrib.auth.models import Group

    Group.objects.create(name="Quokka crew")
