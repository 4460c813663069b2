"""API tokens: made and revoked on a page, stored as a hash, sent as a Bearer header; the
session cookie works too, with the pages' CSRF check (token calls need none)."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from personaweb.api.models import ApiToken
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db


def test_a_call_without_a_token_is_a_401_with_a_json_body(client):
    response = client.get("/api/sessions")
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_a_wrong_or_malformed_token_is_a_401(client, alice_token):
    for header in (f"Bearer {alice_token}x", "Bearer pw_", "Bearer ²", f"Basic {alice_token}"):
        assert client.get("/api/sessions", headers={"Authorization": header}).status_code == 401


def test_the_token_page_shows_a_new_token_once_and_keeps_only_its_hash(client, alice):
    client.force_login(alice)
    page = client.post("/tokens/new/", {"name": "my notebook"}).content.decode()
    secret = page.split('<pre class="token" hx-disable>')[1].split("</pre>")[0]
    assert secret.startswith("pw_") and len(secret) > 40
    row = ApiToken.objects.get(owner=alice)
    assert row.name == "my notebook"
    assert row.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {row.name, row.prefix, row.digest} and secret.startswith(row.prefix)
    # Shown once: the list afterwards names it, and never shows it again.
    listing = client.get("/tokens/").content.decode()
    assert "my notebook" in listing and secret not in listing
    assert Client().get("/api/sessions", headers=bearer(secret)).status_code == 200


def test_a_revoked_token_stops_working_at_once(client, alice, alice_token):
    assert client.get("/api/sessions", headers=bearer(alice_token)).status_code == 200
    client.force_login(alice)
    row = ApiToken.objects.get(owner=alice)
    assert client.post(f"/tokens/{row.pk}/revoke/").status_code == 302
    assert Client().get("/api/sessions", headers=bearer(alice_token)).status_code == 401


def test_nobody_revokes_someone_elses_token(client, alice, bob, bob_token):
    client.force_login(alice)
    row = ApiToken.objects.get(owner=bob)
    assert client.post(f"/tokens/{row.pk}/revoke/").status_code == 404
    assert Client().get("/api/sessions", headers=bearer(bob_token)).status_code == 200


def test_a_token_records_when_it_was_last_used(client, alice, alice_token):
    assert ApiToken.objects.get(owner=alice).last_used_at is None
    client.get("/api/sessions", headers=bearer(alice_token))
    assert ApiToken.objects.get(owner=alice).last_used_at is not None


def test_a_cookie_call_needs_csrf_and_a_token_call_does_not(alice, alice_token):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    body = {"name": "Ann"}
    # A signed-in browser reads freely, but a write without the CSRF token is refused ...
    assert browser.get("/api/characters").status_code == 200
    refused = browser.post("/api/characters", body, content_type="application/json")
    assert refused.status_code == 403 and refused.json() == {"detail": "CSRF check Failed"}
    # ... and goes through with it, as the pages' htmx posts do.
    browser.get("/tokens/")  # sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    made = browser.post(
        "/api/characters", body, content_type="application/json", headers={"X-CSRFToken": csrf}
    )
    assert made.status_code == 201
    # A script with a token needs no CSRF token: no browser sends that header by itself.
    script = Client(enforce_csrf_checks=True)
    response = script.post(
        "/api/characters",
        {"name": "Bo"},
        content_type="application/json",
        headers=bearer(alice_token),
    )
    assert response.status_code == 201


def no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), keys  # Swagger UI refuses a document that repeats one
    return dict(pairs)


def test_the_schema_and_the_docs_page_need_no_cdn(client):
    schema = json.loads(
        client.get("/api/openapi.json").content, object_pairs_hook=no_duplicate_keys
    )
    events = schema["paths"]["/api/sessions/{pk}/events"]["get"]["responses"]["200"]
    assert list(events["content"]) == ["text/event-stream"]
    assert schema["openapi"].startswith("3.")
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    docs = client.get("/api/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in docs
    assert "https://" not in docs and "//cdn" not in docs
    # Served from django-ninja's own static files (the "ninja" app), as asgi.py serves /static/.
    assert finders.find("ninja/swagger-ui-bundle.js") and finders.find("ninja/swagger-ui.css")
