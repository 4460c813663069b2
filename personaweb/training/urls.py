from __future__ import annotations

from django.urls import path

from personaweb.training import views

app_name = "training"

urlpatterns = [
    path("", views.training_page, name="page"),
    path("<slug:kind>.jsonl", views.training_download, name="download"),
]
