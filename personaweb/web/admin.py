from __future__ import annotations

from django.contrib import admin

from personaweb.web.models import Annotation, Character, ChatSession, NodeRow, Run


@admin.register(Character)
class CharacterAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner", "updated_at"]
    list_filter = ["owner"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "hierarchy", "mode", "character", "updated_at"]
    list_filter = ["hierarchy", "mode", "owner"]
    search_fields = ["title"]
    raw_id_fields = ["character"]


@admin.register(NodeRow)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["id", "session", "seq", "persona", "kind", "status", "action"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "persona", "content"]
    raw_id_fields = ["session", "parent"]
    list_select_related = ["session"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["node", "author", "label", "score", "created_at"]
    list_filter = ["label"]
    search_fields = ["text", "label"]
    raw_id_fields = ["node"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "session", "trigger", "status", "worker", "started_at", "finished_at"]
    list_filter = ["status", "trigger"]
    raw_id_fields = ["session"]
