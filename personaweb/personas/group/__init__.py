"""Group chats: a director over one dialogue hierarchy per character, deciding who speaks.

Files by job: `director` (the persona, and what a review of its choice means), `conversation`
(reading the conversation off the path), `deciding` (reply policies and turn order),
`ratings` (background heat ratings, kept on the path), `prompts` (what characters are told),
`settings` (GroupSettings and its stored form).
"""

from __future__ import annotations

from personaweb.personas.group.director import (
    DIRECTOR,
    GROUP_MAX_STEPS,
    GroupDirector,
    group_hierarchy,
)
from personaweb.personas.group.ratings import BackgroundRatings, LandedRating
from personaweb.personas.group.settings import (
    GroupSettings,
    group_settings_from_dict,
    group_settings_to_dict,
)
from personaweb.personas.heat.turns import DEFAULT_TURN_CAP

__all__ = [
    "DEFAULT_TURN_CAP",
    "DIRECTOR",
    "GROUP_MAX_STEPS",
    "BackgroundRatings",
    "GroupDirector",
    "GroupSettings",
    "LandedRating",
    "group_hierarchy",
    "group_settings_from_dict",
    "group_settings_to_dict",
]
