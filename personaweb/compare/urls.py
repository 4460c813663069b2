from __future__ import annotations

from django.urls import path

from personaweb.compare import exports, views

app_name = "compare"

urlpatterns = [
    path("", views.comparison_list, name="list"),
    path("new/", views.comparison_new, name="new"),
    path("<int:pk>/", views.comparison_detail, name="detail"),
    path("<int:pk>/board/", views.board, name="board"),
    path("<int:pk>/c/<int:contender_pk>/", views.column, name="column"),
    path("<int:pk>/vote/", views.vote, name="vote"),
    path("<int:pk>/reveal/", views.reveal, name="reveal"),
    path("<int:pk>/rerun/", views.rerun, name="rerun"),
    path("<int:pk>/resume/", views.resume, name="resume"),
    path("<int:pk>/judge/", views.judge, name="judge"),
    path("<int:pk>/delete/", views.delete, name="delete"),
    path("<int:pk>/export.json", exports.export_json, name="export_json"),
    path("<int:pk>/export.csv", exports.export_csv, name="export_csv"),
    path("<int:pk>/figures.csv", exports.export_figures_csv, name="export_figures_csv"),
    path("<int:pk>/charts/<slug:name>.svg", views.chart_svg, name="chart"),
]
