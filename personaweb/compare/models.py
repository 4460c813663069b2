"""A comparison: one character, a script of user lines, and contenders that each answer it in
their own chat session (so every reply has a debugger tree behind it). Votes come from blind
mode; judge scores from the optional LLM judge."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from personaweb.web.models import Character, ChatSession, Strategy

LETTERS = "ABCDEFGH"


class Comparison(models.Model):
    """Contenders answering the same script as the same character."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comparisons"
    )
    title = models.CharField(max_length=200)
    character = models.ForeignKey(
        Character, null=True, on_delete=models.SET_NULL, related_name="comparisons"
    )
    script = models.JSONField(default=list, help_text="The user lines, in order")
    samples = models.PositiveSmallIntegerField(
        default=1, help_text="Replies per line per contender, replayed from the same prefix"
    )
    blind = models.BooleanField(default=False, help_text="Hide which contender is which")
    revealed = models.BooleanField(default=False, help_text="Blind mode: labels shown on request")
    judge_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("compare:detail", args=[self.pk])


class Contender(models.Model):
    """One strategy/model/temperature; its replies live in its own chat session."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="contenders")
    position = models.PositiveSmallIntegerField(
        help_text="Column order; in blind mode shuffled at creation, so A is not the first row"
    )
    label = models.CharField(max_length=200)
    strategy = models.CharField(max_length=20, choices=Strategy)
    model = models.CharField(max_length=200, blank=True, default="")
    temperature = models.FloatField(default=0.7)
    session = models.ForeignKey(
        ChatSession, null=True, on_delete=models.SET_NULL, related_name="contenders"
    )
    error = models.TextField(blank=True, default="", help_text="Why its run could not start")
    judge = models.JSONField(
        default=dict, blank=True, help_text="LLM-judge verdicts by line index: {score, reason}"
    )

    class Meta:
        ordering = ["comparison", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "position"], name="contender_position_per_comparison"
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def letter(self) -> str:
        return LETTERS[self.position] if self.position < len(LETTERS) else str(self.position + 1)


class Vote(models.Model):
    """A person's pick of the best reply to one line (one per person per line, changeable)."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="votes")
    line_index = models.PositiveIntegerField()
    contender = models.ForeignKey(Contender, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comparison_votes"
    )
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["comparison", "line_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "line_index", "voter"], name="one_vote_per_line_per_voter"
            )
        ]

    def __str__(self) -> str:
        return f"line {self.line_index}: {self.contender}"
