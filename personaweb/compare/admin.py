from __future__ import annotations

from django.contrib import admin

from personaweb.compare.models import Comparison, Contender, Vote


class ContenderInline(admin.TabularInline):
    model = Contender
    extra = 0
    fields = ("position", "label", "strategy", "model", "temperature", "session", "error")
    raw_id_fields = ("session",)


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "character", "samples", "blind", "created_at")
    list_filter = ("blind",)
    search_fields = ("title",)
    raw_id_fields = ("owner", "character")
    inlines = [ContenderInline]


@admin.register(Contender)
class ContenderAdmin(admin.ModelAdmin):
    list_display = ("label", "comparison", "position", "strategy", "model", "temperature")
    list_filter = ("strategy",)
    raw_id_fields = ("comparison", "session")


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("comparison", "line_index", "contender", "voter", "created_at")
    raw_id_fields = ("comparison", "contender", "voter")
