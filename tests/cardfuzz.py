"""Hypothesis strategies for untrusted cards: arbitrary JSON (NaN, infinities, lone surrogates,
NUL and all), card-shaped JSON that reaches deep into the reader, and mutated PNG cards."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

from personaweb.characters import png
from tests.cardkit import as_png, community_card

# Every code point, lone surrogates and NUL included (hypothesis leaves surrogates out unless
# told), with macros and card markup mixed in so the readers' own paths are taken too.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=20),
    st.sampled_from(
        ["{{char}}", "{{user}}", "<START>\n{{char}}: hi", "{{original}}", "@@activate"]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)

CARD_KEYS = [
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "alternate_greetings",
    "group_only_greetings",
    "tags",
    "creator",
    "character_version",
    "nickname",
]
OURS_KEYS = ["slug", "mood", "goals", "strategy", "profiles", "talkativeness", "sample_lines"]
ENTRY_KEYS = [
    "keys",
    "secondary_keys",
    "content",
    "enabled",
    "constant",
    "selective",
    "insertion_order",
    "priority",
    "position",
    "case_sensitive",
    "use_regex",
    "name",
    "extensions",
]


def _with_name(data: dict[str, Any], name: Any) -> dict[str, Any]:
    return {**data, "name": name}


ENTRY = st.dictionaries(st.sampled_from(ENTRY_KEYS), st.one_of(JSON, st.lists(TEXT, max_size=3)))
BOOK = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"entries": st.lists(ENTRY, max_size=4)},
        optional={"scan_depth": JSON, "token_budget": JSON, "recursive_scanning": JSON},
    ),
)
OURS = st.dictionaries(st.sampled_from(OURS_KEYS), st.one_of(JSON, st.lists(TEXT, max_size=3)))
DATA = st.builds(
    _with_name,
    st.dictionaries(st.sampled_from(CARD_KEYS), st.one_of(TEXT, JSON, st.lists(TEXT, max_size=3))),
    st.one_of(TEXT, st.just("Mira Vance"), JSON),
).flatmap(
    lambda data: st.fixed_dictionaries(
        {},
        optional={
            "character_book": BOOK,
            "extensions": st.one_of(JSON, st.builds(lambda o: {"personaweb": o}, OURS)),
        },
    ).map(lambda more: {**data, **more})
)
CARD = st.one_of(
    st.builds(
        lambda spec, data: {"spec": spec, "spec_version": "2.0", "data": data},
        st.sampled_from(["chara_card_v2", "chara_card_v3"]),
        DATA,
    ),
    DATA,  # V1: the fields at the top level
    JSON,
)


def encode(value: Any) -> bytes:
    """JSON text as a careless writer makes it: NaN and Infinity as words, surrogates as
    escapes."""
    return json.dumps(value, allow_nan=True).encode()


BASE_PNG = as_png(community_card())


@st.composite
def mutated_pngs(draw: st.DrawFn) -> bytes:
    """A real PNG card, damaged: bytes changed, cut short, bytes inserted, or a well-formed PNG
    whose card chunk holds arbitrary (card-shaped or not) JSON or not-base64 text."""
    data = bytearray(BASE_PNG)
    how = draw(st.sampled_from(["change", "cut", "insert", "card", "text"]))
    if how == "change":
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=40))
    else:
        keyword = draw(st.sampled_from(["chara", "ccv3", "Chara"]))
        if how == "card":
            text = base64.b64encode(encode(draw(CARD))).decode()
        else:
            text = draw(st.text(st.characters(max_codepoint=255), max_size=60))
        chunks = [c for c in png.read_chunks(BASE_PNG) if c.type != b"tEXt"]
        extra = png.Chunk(b"tEXt", keyword.encode() + b"\x00" + text.encode("latin-1"))
        return png.write_chunks([*chunks[:-1], extra, chunks[-1]])
    return bytes(data)
