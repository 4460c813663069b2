from __future__ import annotations

from django.urls import path

from personaweb.cast import card_views, lore_views, views

app_name = "cast"

urlpatterns = [
    path("", views.character_list, name="list"),
    path("new/", views.character_new, name="new"),
    path("import/", card_views.character_import, name="import"),
    path("<int:pk>/", views.character_detail, name="detail"),
    path("<int:pk>/edit/", views.character_edit, name="edit"),
    path("<int:pk>/duplicate/", views.character_duplicate, name="duplicate"),
    path("<int:pk>/delete/", views.character_delete, name="delete"),
    path("<int:pk>/confirm-endpoint/", views.character_confirm_endpoint, name="confirm_endpoint"),
    path("<int:pk>/export/<str:fmt>/", card_views.character_export, name="export"),
    path("<int:pk>/lorebook/", lore_views.character_lorebook, name="character_lorebook"),
    path("<int:pk>/samples/", lore_views.character_samples, name="samples"),
    path("session-card/", lore_views.session_card, name="session_card"),
    path("lorebooks/import/", lore_views.lorebook_import, name="lorebook_import"),
    path("lorebooks/<int:pk>/", lore_views.lorebook_detail, name="lorebook"),
    path("lorebooks/<int:pk>/attach/", lore_views.lorebook_attach, name="lorebook_attach"),
    path("lorebooks/<int:pk>/delete/", lore_views.lorebook_delete, name="lorebook_delete"),
    path("lorebooks/<int:pk>/export/", lore_views.lorebook_export, name="lorebook_export"),
]
