"""Character Cards for the tests, built here to the V2 and V3 specs (none taken from elsewhere).

`community_card()` is the kind of card most people bring: a V2 card written for SillyTavern,
with `{{char}}` / `{{user}}` throughout, example dialogue in its description as `<START>`
blocks and `mes_example` left empty, alternate greetings, its own system prompt and
post-history instructions, and a four-entry `character_book`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from personaweb.characters import png

STYLE_RULE = "Write {{char}}'s next reply in a sea shanty's rhythm."
AFTER_RULE = "Stay as {{char}}; never speak for {{user}}."


def lore_entry(keys: list[str], content: str, **fields: Any) -> dict[str, Any]:
    """A `character_book` entry with the fields the V2 spec requires, and any others given."""
    return {
        "keys": keys,
        "content": content,
        "extensions": {},
        "enabled": True,
        "insertion_order": 100,
        **fields,
    }


def captain_book() -> dict[str, Any]:
    """Four entries: keyed, selective (needs a second key), constant, and disabled."""
    return {
        "name": "Tide Atlas",
        "description": "What Mira knows of the sea.",
        "scan_depth": 2,
        "token_budget": 400,
        "recursive_scanning": False,
        "extensions": {"other_tool": {"kept": True}},
        "entries": [
            lore_entry(
                ["compass"],
                "{{char}}'s compass was her mother's; she lets no one, {{user}} least, touch it.",
                id=1,
                name="The compass",
                comment="keyed",
                priority=5,
                position="before_char",
            ),
            lore_entry(
                ["kraken"],
                "The kraken sleeps under the Grey Reef and wakes at storms.",
                id=2,
                name="The kraken",
                selective=True,
                secondary_keys=["storm", "reef"],
                position="after_char",
                insertion_order=20,
            ),
            lore_entry(
                [],
                "The year is 1720; the Brine Company rules these waters.",
                id=3,
                name="The world",
                constant=True,
                insertion_order=1,
            ),
            lore_entry(["treasure"], "A decoy entry that must never fire.", id=4, enabled=False),
        ],
    }


def community_card(**data: Any) -> dict[str, Any]:
    """A V2 card as community tools write it (see the module's docstring)."""
    fields: dict[str, Any] = {
        "name": "Mira Vance",
        "description": (
            "{{char}} is the cartographer of the Gull, a brig that owes money in every port. "
            "She distrusts {{user}}, whom the captain took on last night.\n"
            "<START>\n"
            "{{user}}: Where are we?\n"
            "{{char}}: North is where I say it is, sailor.\n"
            "<START>\n"
            "{{user}}: Can I see the chart?\n"
            "{{char}}: Touch my charts and you swim, {{user}}.\n"
        ),
        "personality": "Dry, exact, {{char}} never wastes a word on {{user}}.",
        "scenario": "{{user}} has just come aboard the Gull, and {{char}} is plotting a storm.",
        "first_mes": (
            "*{{char}} rolls up a chart.* You're the new hand, {{user}}? Don't touch that."
        ),
        "mes_example": "",
        "creator_notes": "Works best with a firm hand on the tiller.",
        "system_prompt": "{{original}} " + STYLE_RULE,
        "post_history_instructions": AFTER_RULE,
        "alternate_greetings": [
            "*{{char}} doesn't look up.* Charts. Then questions, {{user}}.",
            "Storm's coming, {{user}}. Tie yourself to something.",
        ],
        "character_book": captain_book(),
        "tags": ["sea", "adventure"],
        "creator": "the tests",
        "character_version": "1.2",
        "extensions": {"talkativeness": "0.6", "fav": False, "world": "Tide Atlas"},
    }
    fields.update(data)
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": fields}


def v3_card(**data: Any) -> dict[str, Any]:
    """The same character as a V3 card: V3's required fields, group greetings, a nickname."""
    card = community_card(**data)
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    card["data"] = {
        "group_only_greetings": ["Everyone aboard? {{char}} counts heads: {{group}}."],
        "nickname": "Mira",
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        "creation_date": 1700000000,
        "modification_date": 1700000001,
        **card["data"],
    }
    for item in card["data"]["character_book"]["entries"]:
        item.setdefault("use_regex", False)
    return card


def as_json(card: dict[str, Any]) -> bytes:
    return json.dumps(card).encode()


def as_png(card: dict[str, Any], image: bytes | None = None) -> bytes:
    """The card in a PNG the way community tools write a V2 one: a `chara` tEXt chunk."""
    payload = base64.b64encode(json.dumps(card).encode()).decode()
    keyword = "ccv3" if card.get("spec") == "chara_card_v3" else "chara"
    return png.with_text(image or png.solid_avatar("a portrait"), {keyword: payload})


# A narrated card, written for the tests in the community's style: *actions*, a long greeting,
# example dialogue in the description, macros everywhere, and no mood, goals or personality.
WREN_GREETING = (
    "*The lamp room smells of paraffin and salt. {{char}} doesn't turn from the great lens "
    "when the trapdoor bangs open; she only lifts a hand, fingers black with soot.*\n\n"
    '"Close that behind you, {{user}}, or the wind will have the flame." *A pause, a glance '
    "over her shoulder, the first in a year at a face that isn't her own in the glass.* "
    "\"You rowed out in this? Then you're either a fool or you're running. Sit. Tell me "
    'which."'
)
WREN_DESCRIPTION = (
    "{{char}} keeps the light on Gannet Rock. She talks little, notices everything, and "
    "trusts the sea more than people.\n"
    "<START>\n"
    "{{user}}: Is the light still lit?\n"
    "{{char}}: *taps the glass with one knuckle* Every night. Whether anyone sails or not.\n"
    "<START>\n"
    "{{user}}: Do you ever leave?\n"
    '{{char}}: *snorts* "Leave? And who\'d wind the clockwork, you?"'
)


def wren_card(**data: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "Wren Alder",
        "description": WREN_DESCRIPTION,
        "personality": "",
        "scenario": "{{user}} has rowed to the rock in a storm.",
        "first_mes": WREN_GREETING,
        "mes_example": "",
        "creator_notes": "",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": ["lighthouse"],
        "creator": "the tests",
        "character_version": "1",
        "extensions": {},
    }
    fields.update(data)
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": fields}


NOTE = {"prompt": "{{char}} is hiding a letter from {{user}}.", "depth": 2, "role": "system"}
"""A character note (`extensions.depth_prompt`) for `wren_card`."""
