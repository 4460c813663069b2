"""What the Characters app stores beside the character rows: standalone lorebooks, and who the
person is in each chat (the name a card's `{{user}}` stands for).

They live here, not in `web`, because they belong to cards: a lorebook is card data (see
characters/lorebook.py), and the name is what card text says to the person.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Lorebook(models.Model):
    """A lorebook a person imported (a `character_book` or SillyTavern World Info file),
    attachable to their characters and their sessions."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lorebooks"
    )
    name = models.CharField(max_length=120)
    data = models.JSONField(
        default=dict, help_text="The book in Character Card character_book form"
    )
    characters = models.ManyToManyField(
        "web.Character",
        blank=True,
        related_name="lorebooks",
        help_text="Characters whose prompts it is scanned for, in every session",
    )
    sessions = models.ManyToManyField(
        "web.ChatSession",
        blank=True,
        related_name="lorebooks",
        help_text="Sessions whose every character it is scanned for",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class SessionUser(models.Model):
    """Who the person is in one chat: what `{{user}}` in its characters' cards stands for."""

    session = models.OneToOneField(
        "web.ChatSession", on_delete=models.CASCADE, related_name="card_user"
    )
    name = models.CharField(max_length=80)

    def __str__(self) -> str:
        return self.name
