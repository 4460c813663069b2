"""Every URL pattern of the site, walked from the resolver: a malformed id, or an id of
someone else's (bob's), is a 4xx for GET and POST alike, never a server error.

The admin (Django's own, staff only) is left out; everything else is found by walking
personaweb.urls, so a new page is covered the day it is added. The JSON API (/api/) is walked
too, signed in by the session cookie as its docs page is (its token side has tests/api/).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from personaweb.api import tokens
from personaweb.compare.setup import ContenderSpec, create_comparison
from personaweb.web.models import Character, ChatSession, Run
from tests.web.test_views import chain

pytestmark = pytest.mark.usefixtures("clean_runs")

MALFORMED = ["²", "abc", "0123456789abcdef0123456789abcdef01234567", str(10**30), "0"]
"""Ids that cannot name anything: not digits at all, text that str.isdigit() accepts, a 40-digit
hex (longer than a node id), a number that overflows SQLite's and PostgreSQL's integers, 0."""

PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")

# What the forms of the site post, so that a view gets as far as its id checks.
FORM = {
    "text": "hello",
    "content": "an edit",
    "mode": "review",
    "policy": "heuristic",
    "line": "0",
    "label": "note",
    "score": "1",
    "character": "²",
    "contender": "²",
    "members": "²",
    "speaker": "²",
}
# The API reads JSON: the same fields, typed as its schemas want them, so that an operation
# gets past its body's validation to its id checks.
API_BODY = {
    "text": "hello",
    "content": "an edit",
    "mode": "review",
    "line": 0,
    "contender": 1,
    "label": "note",
    "score": 1,
}
QUERY = {"window": "²", "node": "²", "from": "²", "part": "columns", "hierarchy": "dialogue"}


@dataclass(frozen=True)
class Route:
    route: str
    """The full route, e.g. `compare/<int:pk>/c/<int:contender_pk>/`."""
    name: str

    @property
    def params(self) -> list[str]:
        return [m["name"] for m in PARAM.finditer(self.route)]

    def url(self, values: dict[str, str]) -> str:
        return "/" + PARAM.sub(lambda m: values[m["name"]], self.route)


def walk(patterns: list, prefix: str = "") -> Iterator[Route]:
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            if route.startswith("admin/"):
                continue
            yield from walk(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            yield Route(route, p.name or "")


ROUTES = list(walk(get_resolver().url_patterns))


def test_the_walk_finds_every_app():
    # If the walk broke, every test below would pass on nothing.
    prefixes = {r.route.split("/", 1)[0] for r in ROUTES}
    assert {"s", "characters", "compare", "sessions", "groups", "accounts", "api"} <= prefixes
    assert len([r for r in ROUTES if r.params]) >= 20


def sara_for(owner) -> Character:
    return Character.objects.create(
        owner=owner,
        name="Sara Wilcox",
        slug=f"sara_{owner.pk}",
        data={"name": "Sara Wilcox", "sample_lines": ["Leave all the rest to me."]},
    )


def objects_of(owner) -> dict[str, dict[str, str]]:
    """One of everything a URL can name, owned by `owner`: values per app, per param."""
    character = sara_for(owner)
    session = ChatSession.objects.create(owner=owner, title="s", character=character)
    node = chain(session, 3)[1]
    ann = Character.objects.create(owner=owner, name="Ann", slug="ann", data={"name": "Ann"})
    group = ChatSession.objects.create(
        owner=owner, title="g", hierarchy="group", members=[character.pk, ann.pk]
    )
    comparison = create_comparison(
        owner, character, ["Hi"], [ContenderSpec("single"), ContenderSpec("nested")]
    )
    contender = comparison.contenders.first()
    assert contender is not None
    run = Run.objects.create(session=session, trigger="send", status="done", start_node=node.id)
    token = tokens.create(owner, "script").row
    common = {
        "node_id": node.id,
        "action": "approve",
        "fmt": "v2.json",
        "name": "score",
        "kind": "preferences",
        "run_pk": str(run.pk),
    }
    return {
        "token": {**common, "pk": str(token.pk)},
        "web": {**common, "pk": str(session.pk), "other": str(group.pk)},
        "group": {**common, "pk": str(group.pk), "other": str(group.pk)},
        "compare": {
            **common,
            "pk": str(comparison.pk),
            "contender_pk": str(contender.pk),
        },
        "cast": {**common, "pk": str(character.pk)},
    }


def app_of(route: Route) -> str:
    if route.route.startswith(("characters/", "api/characters")):
        return "cast"
    if route.route.startswith(("compare/", "api/comparisons")):
        return "compare"
    if route.route.startswith("tokens/"):
        return "token"
    return "group" if route.name.startswith("group_") else "web"


def answers(client, url: str) -> list[tuple[str, int]]:
    """GET (with query parameters) and POST (with form fields) of one URL."""
    if url.startswith("/api/"):
        posted = client.post(url, API_BODY, content_type="application/json")
    else:
        posted = client.post(url, FORM)
    return [("GET", client.get(url, QUERY).status_code), ("POST", posted.status_code)]


@pytest.fixture
def world(alice, bob) -> dict[str, dict[str, dict[str, str]]]:
    return {"alice": objects_of(alice), "bob": objects_of(bob)}


# One test per rule, each over every route: the setup (two users, one of everything each) is
# made once, and a failure lists every route that broke the rule, not just the first.

WITH_IDS = [r for r in ROUTES if r.params]


@pytest.mark.django_db  # nothing here starts a run: a rolled-back transaction is enough
def test_a_malformed_id_is_a_4xx(client, alice, world):
    client.force_login(alice)
    problems = []
    for route in WITH_IDS:
        mine = world["alice"][app_of(route)]
        for param in route.params:
            for bad in MALFORMED:
                # The other parameters are alice's own, so the view gets as far as this one.
                url = route.url({**mine, param: bad})
                for method, status in answers(client, url):
                    if not 400 <= status < 500:
                        problems.append((method, url, status))
    assert not problems


@pytest.mark.django_db
def test_someone_elses_id_is_a_404_like_a_missing_one(client, alice, world):
    client.force_login(alice)
    problems = []
    for route in WITH_IDS:
        theirs, mine = world["bob"][app_of(route)], world["alice"][app_of(route)]
        for param in route.params:
            if param in ("action", "fmt", "name", "kind"):
                continue  # names, not ids of anything anyone owns
            url = route.url({**mine, param: theirs[param]})
            for method, status in answers(client, url):
                # 405 (a GET of a POST-only view, or the reverse) says nothing about the id.
                if status not in (404, 405):
                    problems.append((method, url, status))
    assert not problems


@pytest.mark.django_db(transaction=True)  # some of these start runs, in other threads
def test_no_page_fails_on_odd_query_or_form_values(client, alice, world, llm_server):
    # The owner's own ids, and the odd values of QUERY and FORM: whatever the answer, it is
    # not a server error (the test client raises on one, failing the test).
    client.force_login(alice)
    problems = []
    for route in ROUTES:
        if route.name in ("logout", "delete"):
            continue  # they would take away the login or the objects the next routes use
        url = route.url(world["alice"][app_of(route)])
        for method, status in answers(client, url):
            if status >= 500:
                problems.append((method, url, status))
    assert not problems


@pytest.mark.django_db
def test_a_group_chat_whose_members_were_all_deleted_still_opens(client, alice, make_cast):
    ann, bob_baker, _ = make_cast(alice)
    session = ChatSession.objects.create(
        owner=alice, title="g", hierarchy="group", members=[ann.pk, bob_baker.pk]
    )
    client.force_login(alice)
    for character in (ann, bob_baker):
        assert client.post(f"/characters/{character.pk}/delete/").status_code == 302
    assert client.get(session.get_absolute_url()).status_code == 200
