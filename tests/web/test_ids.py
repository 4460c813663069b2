"""Ids from requests: ASCII digits within a database key's range, parsed in one place."""

from __future__ import annotations

import pytest
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from personaweb.web.ids import MAX_PK, parse_index, parse_pk
from personaweb.web.models import ChatSession

# Text that str.isdigit() or int() accept although it is not an id as a person would type one.
TRICKY = [
    "²",
    "\u0661\u0662",
    "\uff11",
    " 1",
    "1 ",
    "+1",
    "-1",
    "1_0",
    "0x1",
    "1.0",
    "1e3",
    "",
    "0",
]


@given(st.integers(min_value=1, max_value=MAX_PK))
def test_it_reads_every_id_written_in_ascii_digits(n):
    assert parse_pk(str(n)) == n


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=25))
def test_it_accepts_text_only_when_it_is_exactly_an_id_in_range(raw):
    parsed = parse_pk(raw)
    if parsed is None:
        assert not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PK)
    else:
        assert raw == str(int(raw)).zfill(len(raw)) and raw.isascii()
        assert 1 <= parsed <= MAX_PK


@pytest.mark.parametrize("raw", [*TRICKY, str(MAX_PK + 1), str(10**30), "9" * 5000, None, 1.0])
def test_it_refuses_what_is_not_an_id(raw):
    assert parse_pk(raw) is None


def test_an_index_is_within_its_size():
    assert parse_index("0", 2) == 0 and parse_index("1", 2) == 1
    assert parse_index("2", 2) is None and parse_index("²", 9) is None
    assert parse_index("-1", 2) is None and parse_index("\u0661", 9) is None


# --- the views that take an id from a form ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("raw", ["²", "\u0661", " 1", str(10**30)])
def test_a_new_session_with_a_character_that_cannot_be_an_id_is_refused(
    client, alice, make_session, raw
):
    make_session(alice)  # a character of alice's exists (its pk might be 1)
    client.force_login(alice)
    before = ChatSession.objects.count()
    response = client.post(reverse("session_new"), {"character": raw, "hierarchy": "dialogue"})
    assert response.status_code == 400
    assert ChatSession.objects.count() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bad", ["²", "\u0661", str(10**30), str(MAX_PK + 1), "-1"])
def test_a_group_chat_with_a_member_that_cannot_be_an_id_is_a_form_error(
    client, alice, make_cast, bad
):
    # A huge id used to reach an IN (...) query and overflow SQLite's integer (a 500).
    ann, bob_baker, _ = make_cast(alice)
    client.force_login(alice)
    response = client.post(reverse("group_new"), {"members": [str(ann.pk), str(bob_baker.pk), bad]})
    assert response.status_code == 400
    assert "is not a valid value" in response.content.decode()
    assert not ChatSession.objects.exists()
