"""URL map: the app's pages, login/logout, the admin, and the JSON API (/api/)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("characters/", include("personaweb.cast.urls")),
    path("compare/", include("personaweb.compare.urls")),
    path("training/", include("personaweb.training.urls")),
    path("", include("personaweb.api.urls")),
    path("", include("personaweb.web.urls")),
]
