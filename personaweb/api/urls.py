from __future__ import annotations

from django.urls import path, re_path

from personaweb.api import views
from personaweb.api.api import api, not_found

urlpatterns = [
    path("api/", api.urls),
    re_path(r"^api/", not_found),  # after the API: any other /api/ path is a JSON 404
    path("tokens/", views.token_list, name="api_tokens"),
    path("tokens/new/", views.token_create, name="api_token_create"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="api_token_revoke"),
]
