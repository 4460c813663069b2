"""The group-chat message and member types every heat policy reads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

USER = "user"
"""The speaker slug of the human in the chat."""

_LINK = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>()]+", re.IGNORECASE)
_MEDIA_EXTENSIONS = (
    "png|jpe?g|gif|webp|bmp|svg|heic|avif|mp4|mov|webm|mkv|avi|mp3|wav|ogg|oga|m4a|flac|opus"
)
_MEDIA_URL = re.compile(
    rf"(?:\bhttps?://|\bwww\.)[^\s<>()]+?\.(?:{_MEDIA_EXTENSIONS})(?:[?#][^\s<>()]*)?(?![\w.])",
    re.IGNORECASE,
)
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\([^)\s]+[^)]*\)")
_DATA_URI = re.compile(r"\bdata:(?:image|video|audio)/[\w.+-]+[;,]", re.IGNORECASE)
# Chat front-ends insert placeholders like "[image]" or "[attachment: cat.png]" for uploads.
_MEDIA_PLACEHOLDER = re.compile(
    r"\[(?:image|photo|picture|video|audio|voice|gif|sticker|file|attachment)\b[^\]]*\]",
    re.IGNORECASE,
)


def detect_link(text: str) -> bool:
    """True when the text carries a web link (http(s):// or www.)."""
    return _LINK.search(text) is not None


def detect_media(text: str) -> bool:
    """True when the text carries an image, video or audio: a media URL, a markdown image,
    a data URI, or an upload placeholder such as `[image]`."""
    return any(
        pattern.search(text) is not None
        for pattern in (_MARKDOWN_IMAGE, _DATA_URI, _MEDIA_PLACEHOLDER, _MEDIA_URL)
    )


def strip_links(text: str) -> str:
    """The text with links blanked out, so that `https://x.com/ann` does not mention Ann."""
    return _LINK.sub(" ", text)


@dataclass(frozen=True)
class Member:
    """A character taking part in a group chat."""

    slug: str
    """Stable identifier, e.g. `sara_wilcox`; what every function returns and keys on."""
    name: str
    """Display name, e.g. `Sara Wilcox`; its first word also counts as a mention."""
    aliases: tuple[str, ...] = ()
    """Other names that count as a mention (nicknames, a last name, a title)."""
    talkativeness: float = 0.5
    """Chance 0..1 of being drafted in natural turn order without being mentioned."""
    persona: str = ""
    """A short description of the character, quoted in the LLM pre-pass and rating prompts."""

    def __post_init__(self) -> None:
        if not self.slug or self.slug == USER:
            raise ValueError(f"a member needs a slug other than {USER!r}: got {self.slug!r}")
        if not 0.0 <= self.talkativeness <= 1.0:
            raise ValueError(f"talkativeness must be within 0..1: got {self.talkativeness}")

    @property
    def first_name(self) -> str:
        """The first word of the display name."""
        words = self.name.split()
        return words[0] if words else ""


@dataclass(frozen=True)
class GroupMessage:
    """One message of a group chat, as every other member hears it."""

    speaker: str
    """Slug of the member who wrote it, or `USER` for the human."""
    text: str
    """What was said."""
    timestamp: float
    """When it was said, in seconds on the session's clock."""
    has_media: bool = field(default=False)
    """Carries an image, video or audio; detected from the text, or set by the caller."""
    has_link: bool = field(default=False)
    """Carries a web link; detected from the text, or set by the caller."""

    def __post_init__(self) -> None:
        # A caller who knows about an attachment may set a flag; detection only ever adds.
        object.__setattr__(self, "has_media", self.has_media or detect_media(self.text))
        object.__setattr__(self, "has_link", self.has_link or detect_link(self.text))

    @property
    def from_user(self) -> bool:
        """True when the human wrote it."""
        return self.speaker == USER

    def to_dict(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker,
            "text": self.text,
            "timestamp": self.timestamp,
            "has_media": self.has_media,
            "has_link": self.has_link,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupMessage:
        return cls(
            speaker=str(data["speaker"]),
            text=str(data.get("text", "")),
            timestamp=float(data.get("timestamp", 0.0)),
            has_media=bool(data.get("has_media", False)),
            has_link=bool(data.get("has_link", False)),
        )


def member_by_slug(members: Sequence[Member], slug: str) -> Member:
    """The member with that slug; KeyError names the slug when there is none."""
    for member in members:
        if member.slug == slug:
            return member
    raise KeyError(slug)


def display_name(members: Sequence[Member], slug: str) -> str:
    """The name to show for a speaker slug: the member's name, `User` for the human."""
    if slug == USER:
        return "User"
    try:
        return member_by_slug(members, slug).name
    except KeyError:
        return slug


def since_last_user_message(history: Sequence[GroupMessage]) -> Sequence[GroupMessage]:
    """The messages after the human's last one (all of them if the human never spoke)."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].from_user:
            return history[index + 1 :]
    return history


def turns_since_user(history: Sequence[GroupMessage], speaker: str | None = None) -> int:
    """How many character messages followed the human's last one (only `speaker`'s if given)."""
    tail = since_last_user_message(history)
    return sum(1 for m in tail if not m.from_user and (speaker is None or m.speaker == speaker))


def exchanges_with(
    history: Sequence[GroupMessage], character: str, speaker: str, window: int = 6
) -> int:
    """How often, in the last `window` messages, `character` answered right after `speaker`.

    This is the back-and-forth count both the heuristic and the pre-pass fatigue build on.
    """
    recent = history[-window:] if window > 0 else []
    return sum(
        1
        for previous, current in pairwise(recent)
        if current.speaker == character and previous.speaker == speaker
    )
