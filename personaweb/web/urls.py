from __future__ import annotations

from django.urls import path

from personaweb.web import group_views, session_files, views

urlpatterns = [
    path("", views.home, name="home"),
    path("sessions/new/", views.session_new, name="session_new"),
    path("sessions/profile-fields/", views.profile_fields, name="profile_fields"),
    path("sessions/strategy-field/", views.strategy_field, name="strategy_field"),
    path("sessions/import/", session_files.session_import, name="session_import"),
    path("groups/new/", group_views.group_new, name="group_new"),
    path("s/<int:pk>/replay/", group_views.replay, name="group_replay"),
    path("s/<int:pk>/vs/<int:other>/", group_views.versus, name="group_versus"),
    path("s/<int:pk>/", views.session_page, name="session"),
    path("s/<int:pk>/tree/", views.tree_pane, name="tree"),
    path("s/<int:pk>/panes/", views.panes, name="panes"),
    path("s/<int:pk>/send/", views.send, name="send"),
    path("s/<int:pk>/mode/", views.set_mode, name="mode"),
    path("s/<int:pk>/stop/", views.stop, name="stop"),
    path("s/<int:pk>/export/", views.export, name="export"),
    path("s/<int:pk>/delete/", views.delete, name="delete"),
    path("s/<int:pk>/select/<str:node_id>/", views.select, name="select"),
    path("s/<int:pk>/inspect/<str:node_id>/", views.inspect, name="inspect"),
    path("s/<int:pk>/n/<str:node_id>/annotate/", views.annotate, name="annotate"),
    path("s/<int:pk>/n/<str:node_id>/<str:action>/", views.node_action, name="node_action"),
]
