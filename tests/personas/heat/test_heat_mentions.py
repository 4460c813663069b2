"""Mention parsing, group questions, and media/link detection."""

from __future__ import annotations

import pytest
from heat_cast import ANN, BOB, CARA, CAST

from personaweb.personas.heat import (
    GroupMessage,
    Member,
    addresses_group,
    is_group_question,
    parse_mentions,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@ann what do you think?", {"ann"}),
        ("@Ann what do you think?", {"ann"}),
        ("@cara_diaz, any ideas", {"cara_diaz"}),
        ("@cara-diaz, any ideas", {"cara_diaz"}),
        ("@CaraDiaz any ideas", {"cara_diaz"}),
        ("@Cara Diaz any ideas", {"cara_diaz"}),
        ("what about you, cara?", {"cara_diaz"}),
        ("CARA DIAZ, front and centre!", {"cara_diaz"}),
        ("Cara\n   Diaz would know.", {"cara_diaz"}),
        ("Annie, pass the salt.", {"ann"}),
        ("Ann's soup was great.", {"ann"}),
        ("(Bob) said so.", {"bob"}),
        ("Bob... are you there", {"bob"}),
        ('"Ann!" shouted Bob.', {"ann", "bob"}),
        ("Ann and Bob, hi", {"ann", "bob"}),
    ],
)
def test_it_finds_handles_and_plain_names(text: str, expected: set[str]) -> None:
    assert parse_mentions(text, CAST) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Annabelle is coming too.",  # inside a longer word
        "I planned it annually.",
        "Mary-Ann brought wine.",  # a hyphenated compound is another name
        "Ann-Marie brought wine.",
        "write to chef@ann.example",  # e-mail addresses are not mentions
        "see https://example.com/ann/bob for the recipe",  # nor paths in links
        "bobsled races tonight",
        "the @annex is closed",
        "Diaz is a surname here.",  # last names only count as aliases
        "",
    ],
)
def test_it_ignores_names_inside_other_words(text: str) -> None:
    assert parse_mentions(text, CAST) == set()


def test_everyone_handles_mention_every_member() -> None:
    assert parse_mentions("@everyone dinner is ready", CAST) == {"ann", "bob", "cara_diaz"}
    assert parse_mentions("@here quick poll", CAST) == {"ann", "bob", "cara_diaz"}


def test_names_with_punctuation_and_several_words() -> None:
    cast = [
        Member("obrien", "Miles O'Brien", aliases=("O'Brien",)),
        Member("picard", "Jean-Luc Picard"),
        Member("r2", "R2-D2"),
    ]
    with_a_second_miles = [*cast, Member("m", "Miles Edgeworth")]
    assert parse_mentions("Thanks, O'Brien.", with_a_second_miles) == {"obrien"}
    assert parse_mentions("Thanks, Miles.", with_a_second_miles) == set()
    assert parse_mentions("jean-luc, engage!", cast) == {"picard"}
    assert parse_mentions("Jean, engage!", cast) == set()  # half a hyphenated name
    assert parse_mentions("beep, r2-d2?", cast) == {"r2"}
    assert parse_mentions("@r2 beep", cast) == {"r2"}


def test_a_shared_first_name_mentions_neither_but_full_names_still_work() -> None:
    cast = [Member("ann_lee", "Ann Lee"), Member("ann_park", "Ann Park")]
    assert parse_mentions("Ann, come here", cast) == set()
    assert parse_mentions("Ann Park, come here", cast) == {"ann_park"}
    assert parse_mentions("@ann_lee come here", cast) == {"ann_lee"}


def test_a_member_whose_whole_name_is_the_shared_first_name_keeps_it() -> None:
    cast = [Member("ann", "Ann"), Member("ann_park", "Ann Park")]
    assert parse_mentions("Ann, come here", cast) == {"ann"}


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("What should we cook tonight?", True),
        ("Anyone up for a walk, Ann?", True),  # names Ann but asks the room
        ("Does everybody like pie", False),  # addresses the room but asks nothing
        ("Ann, what do you think?", False),  # a question to Ann only
        ("We cook at eight.", False),
        ("see https://example.com/?q=pie", False),  # the '?' is in a link
    ],
)
def test_group_questions(text: str, group: bool) -> None:
    assert is_group_question(text, CAST) is group


def test_addresses_group_knows_the_usual_words() -> None:
    assert addresses_group("hey you all")
    assert addresses_group("Y'all ready?")
    assert addresses_group("@all listen")
    assert not addresses_group("I ate it all")


@pytest.mark.parametrize(
    ("text", "media", "link"),
    [
        ("look https://example.com/cat.PNG", True, True),
        ("look https://example.com/cat.png?size=2", True, True),
        ("read www.example.com/article", False, True),
        ("![cat](cat.gif)", True, False),
        ("[image] my lunch", True, False),
        ("[attachment: recipe.pdf]", True, False),
        ("data:image/png;base64,AAAA", True, False),
        ("the file is called notes.png", False, False),  # not a link, not an upload
        ("plain words", False, False),
    ],
)
def test_messages_detect_media_and_links(text: str, media: bool, link: bool) -> None:
    message = GroupMessage("user", text, 0.0)
    assert (message.has_media, message.has_link) == (media, link)


def test_a_caller_may_flag_an_attachment_the_text_does_not_show() -> None:
    message = GroupMessage("user", "look", 0.0, has_media=True)
    assert message.has_media
    assert GroupMessage.from_dict(message.to_dict()) == message


def test_members_reject_the_user_slug_and_bad_talkativeness() -> None:
    with pytest.raises(ValueError):
        Member("user", "User")
    with pytest.raises(ValueError):
        Member("x", "X", talkativeness=1.5)


def test_the_cast_is_what_the_tests_assume() -> None:
    assert [m.first_name for m in (ANN, BOB, CARA)] == ["Ann", "Bob", "Cara"]
