"""Rows for characters, chat sessions, the step tree, annotations and runs.

Only store.py maps between a core `personas.Node` and a `NodeRow`; everything else reads rows.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse


def new_hex() -> str:
    return uuid.uuid4().hex


class Character(models.Model):
    """A character sheet owned by one person."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="characters"
    )
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120)
    data = models.JSONField(default=dict, help_text="The character sheet (CharacterSheet.to_dict)")
    avatar = models.BinaryField(
        null=True,
        blank=True,
        editable=False,
        help_text="The PNG an imported card came in: its picture goes back out on export",
    )
    confirmed_endpoints = models.JSONField(
        default=list,
        blank=True,
        help_text="The endpoints (base URLs) its owner agreed the sheet's profiles may call. "
        "Kept beside the sheet, not in it: cards and session files never carry it",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "slug"], name="character_slug_per_owner")
        ]

    def __str__(self) -> str:
        return self.name


class Hierarchy(models.TextChoices):
    DIALOGUE = "dialogue", "Character dialogue"
    CODE = "code", "Code writing"
    GROUP = "group", "Group chat"


class Strategy(models.TextChoices):
    SINGLE = "single", "single prompt"
    NESTED = "nested", "nested: orchestrator, responder, style rewriter"
    LINEAR = "linear", "linear: code-managed pipeline with goal alignment"


class Mode(models.TextChoices):
    AUTONOMOUS = "autonomous", "Autonomous"
    REVIEW = "review", "Review every proposal"
    BREAKPOINTS = "breakpoints", "Breakpoints"


class ChatSession(models.Model):
    """One conversation with a persona hierarchy, and its tree of steps."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions"
    )
    title = models.CharField(max_length=200)
    character = models.ForeignKey(
        Character, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    hierarchy = models.CharField(max_length=20, choices=Hierarchy, default=Hierarchy.DIALOGUE)
    strategy = models.CharField(
        max_length=20,
        choices=Strategy,
        default=Strategy.NESTED,
        help_text="How a character's replies are made (dialogue and group chats)",
    )
    members = models.JSONField(
        default=list, blank=True, help_text="Group chats: the characters' ids, in list order"
    )
    group_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Group chats: reply policy, overrides, turn order, heat settings",
    )
    mode = models.CharField(max_length=20, choices=Mode, default=Mode.REVIEW)
    guided = models.BooleanField(
        default=True,
        help_text="Orchestrators offer only the moves their plan allows (for small models)",
    )
    breakpoints = models.JSONField(default=list, blank=True, help_text="Persona paths")
    profiles = models.JSONField(
        default=dict, blank=True, help_text="LLMProfile dicts by persona path"
    )
    active_node = models.CharField(
        max_length=32, blank=True, default="", help_text="The leaf of the active branch"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("session", args=[self.pk])


class NodeRow(models.Model):
    """One step of a session's tree (core: personas.tree.Node)."""

    id = models.CharField(primary_key=True, max_length=32, default=new_hex, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="nodes")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    persona = models.CharField(max_length=300)
    kind = models.CharField(max_length=20)
    status = models.CharField(max_length=20)
    content = models.TextField(blank=True, default="")
    action = models.CharField(max_length=20, blank=True, default="")
    target = models.CharField(max_length=120, blank=True, default="")
    sender = models.CharField(max_length=300, blank=True, default="")
    call = models.JSONField(null=True, blank=True, help_text="CallRecord.to_dict()")
    data = models.JSONField(default=dict, blank=True)
    seq = models.PositiveIntegerField()
    created_at = models.FloatField(help_text="Unix time (the core's clock)")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "web_node"
        verbose_name = "node"
        # session_id, not session: ordering by the relation would order by ChatSession's own
        # ordering, joining web_chatsession into every query of nodes.
        ordering = ["session_id", "seq"]
        constraints = [
            # Creation order within a session: the store numbers nodes, and two writers that
            # ever raced would be refused here rather than share a number.
            models.UniqueConstraint(fields=["session", "seq"], name="node_session_seq_unique")
        ]
        indexes = [
            models.Index(fields=["session", "parent"], name="node_session_parent"),
            models.Index(fields=["session", "status"], name="node_session_status"),
        ]

    def __str__(self) -> str:
        return f"{self.persona} {self.kind} #{self.seq}"


class Annotation(models.Model):
    """A person's note on a node: free text, an optional label and an optional score."""

    node = models.ForeignKey(NodeRow, on_delete=models.CASCADE, related_name="annotations")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations"
    )
    text = models.TextField(blank=True, default="")
    label = models.CharField(max_length=60, blank=True, default="")
    score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.label or self.text[:40]


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped (waiting for a person)"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted (process stopped)"


class Run(models.Model):
    """One stretch of engine work on a session, from a start node until it had to stop."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="runs")
    start_node = models.CharField(max_length=32)
    leaf_node = models.CharField(max_length=32, blank=True, default="")
    trigger = models.CharField(max_length=20, default="send", help_text="send, approve, ...")
    status = models.CharField(max_length=20, choices=RunStatus, default=RunStatus.RUNNING)
    worker = models.CharField(max_length=120, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status"], name="run_status")]
        constraints = [
            # One run at a time per session, across every process sharing the database: two
            # clicks (or two tabs, or two servers) cannot both start one.
            models.UniqueConstraint(
                fields=["session"],
                condition=models.Q(status="running"),
                name="one_running_run_per_session",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"
