from django.urls import path

from reporting import export_views

app_name = "exports"

urlpatterns = [
    path("", export_views.export_list, name="list"),
    path("<uuid:pk>/", export_views.export_page, name="export"),
    path("<uuid:pk>/progress", export_views.export_progress, name="progress"),
    path("<uuid:pk>/download", export_views.export_download, name="download"),
]
