"""`manage.py style_score`: scores replies from a file or stdin with the page's style model."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

LINE = re.compile(r"^\s*(\d+)  score (\d\.\d\d)  distance (\d\.\d\d)  (.*)$")

ARCHAIC = "Nay, thou shalt not have it, for thou art not worthy of the crown."
PLAIN = "No, you can't have it, because you don't deserve the job."


def run(*args: str, stdin: bytes | None = None, monkeypatch=None) -> list[str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    out = io.StringIO()
    call_command("style_score", *args, stdout=out)
    return out.getvalue().splitlines()


def scores(lines: list[str]) -> list[tuple[float, float, str]]:
    rows = [LINE.match(line) for line in lines[:-1]]
    assert all(rows), lines
    return [(float(m[2]), float(m[3]), m[4]) for m in rows if m]


def test_it_prints_each_replys_score_and_distance_then_the_means(tmp_path: Path) -> None:
    replies = tmp_path / "replies.txt"
    replies.write_text(f"{ARCHAIC}\n\n{PLAIN}\n", encoding="utf-8")
    lines = run("--character", "Sara Wilcox", str(replies))
    (archaic, a_dist, a_text), (plain, p_dist, p_text) = scores(lines)
    assert a_text == ARCHAIC and p_text.startswith(PLAIN)
    # The archaic line keeps Sara's voice; the plain one does not (and says whose it sounds like).
    assert archaic > 0.5 > plain
    assert "(sounds like" in p_text
    mean = re.fullmatch(r"mean: score (\d\.\d\d), distance (\d\.\d\d)", lines[-1])
    assert mean is not None, lines[-1]
    assert float(mean[1]) == pytest.approx((archaic + plain) / 2, abs=0.006)
    assert float(mean[2]) == pytest.approx((a_dist + p_dist) / 2, abs=0.006)


def test_it_reads_standard_input_and_finds_a_character_by_slug(monkeypatch) -> None:
    lines = run(
        "--character", "kai_tanaka", "-", stdin=b"yo whats up lol\n", monkeypatch=monkeypatch
    )
    [(score, _, text)] = scores(lines)
    assert text == "yo whats up lol" and score > 0.9
    assert lines[-1].startswith("mean: score ")


def test_odd_bytes_and_control_characters_are_shown_not_obeyed(monkeypatch) -> None:
    raw = "\ufeffthou\u200b art \x1b[31mred\x1b[0m".encode() + b" \xff\xfe tail\n"
    lines = run("--character", "Sara Wilcox", stdin=raw, monkeypatch=monkeypatch)
    [(_, _, text)] = scores(lines)
    assert "\x1b" not in text and "\\x1b[31m" in text  # the escape is printed, not obeyed
    assert "\\u200b" in text and "\ufffd" in text  # invisible and broken bytes are visible


def test_empty_input_is_a_clear_error(monkeypatch) -> None:
    with pytest.raises(CommandError, match="no replies to score"):
        run("--character", "Sara Wilcox", stdin=b"\n  \n", monkeypatch=monkeypatch)


@pytest.mark.django_db
def test_an_unknown_name_says_which_characters_exist(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"no character called 'Nobody'.*Sara Wilcox"):
        run("--character", "Nobody", str(tmp_path / "unused.txt"))


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run("--character", "Sara Wilcox", str(tmp_path / "missing.txt"))


@pytest.mark.django_db
def test_a_persons_own_character_comes_before_the_bundled_namesake(alice, monkeypatch) -> None:
    from personaweb.web.models import Character

    # Alice's Sara Wilcox texts like a teenager: her voice, not the bundled one, is measured.
    Character.objects.create(
        owner=alice,
        name="Sara Wilcox",
        slug="sara_wilcox",
        data={"name": "Sara Wilcox", "sample_lines": ["lol ok", "nah fr", "brb lol", "ngl mid"]},
    )
    reply = b"lol nah fr thats mid\n"
    hers = scores(
        run(
            "--character",
            "Sara Wilcox",
            "--user",
            "alice",
            "-",
            stdin=reply,
            monkeypatch=monkeypatch,
        )
    )
    bundled = scores(run("--character", "Sara Wilcox", "-", stdin=reply, monkeypatch=monkeypatch))
    assert hers[0][0] > 0.5 > bundled[0][0]


@pytest.mark.django_db
def test_a_name_only_people_use_is_found_unless_it_is_ambiguous(alice, bob, monkeypatch) -> None:
    from personaweb.web.models import Character

    def own(owner, lines):
        Character.objects.create(
            owner=owner,
            name="Cap Hook",
            slug="cap_hook",
            data={"name": "Cap Hook", "sample_lines": lines},
        )

    own(alice, ["Arr, the crocodile!", "Smee, my hook!"])
    assert scores(run("--character", "cap hook", "-", stdin=b"Smee!\n", monkeypatch=monkeypatch))
    own(bob, ["Tick tock, tick tock."])
    with pytest.raises(CommandError, match=r"several characters are called.*--user"):
        run("--character", "Cap Hook", "-", stdin=b"Smee!\n", monkeypatch=monkeypatch)
    with pytest.raises(CommandError, match="no user called 'carol'"):
        run(
            "--character", "Cap Hook", "--user", "carol", "-", stdin=b"x\n", monkeypatch=monkeypatch
        )


@pytest.mark.django_db
def test_a_character_without_sample_lines_has_no_voice_to_measure(alice, monkeypatch) -> None:
    from personaweb.web.models import Character

    Character.objects.create(owner=alice, name="Mute", slug="mute", data={"name": "Mute"})
    with pytest.raises(CommandError, match="no sample lines"):
        run("--character", "Mute", "-", stdin=b"...\n", monkeypatch=monkeypatch)
