from __future__ import annotations

from django.urls import path

from personaweb.cast import card_views, views

app_name = "cast"

urlpatterns = [
    path("", views.character_list, name="list"),
    path("new/", views.character_new, name="new"),
    path("import/", card_views.character_import, name="import"),
    path("<int:pk>/", views.character_detail, name="detail"),
    path("<int:pk>/edit/", views.character_edit, name="edit"),
    path("<int:pk>/duplicate/", views.character_duplicate, name="duplicate"),
    path("<int:pk>/delete/", views.character_delete, name="delete"),
    path("<int:pk>/export/<str:fmt>/", card_views.character_export, name="export"),
]
