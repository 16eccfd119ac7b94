from django.urls import path

from reporting import report_views

app_name = "reports"

urlpatterns = [
    path("", report_views.report_list, name="list"),
    path("new/<int:pk>/", report_views.report_new, name="new"),
    path("<int:pk>/", report_views.report, name="report"),
    path("<int:pk>/generate", report_views.report_generate, name="generate"),
    path("<int:pk>/progress", report_views.report_progress, name="progress"),
    path("<int:pk>/request-approval", report_views.report_request, name="request"),
    path("<int:pk>/decide", report_views.report_decide, name="decide"),
    path("<int:pk>/files/<uuid:file>", report_views.report_download, name="download"),
    path("<int:pk>/submitted", report_views.report_submitted, name="submitted"),
    path("<int:pk>/answer", report_views.report_answer, name="answer"),
    path("<int:pk>/abandon", report_views.report_abandon, name="abandon"),
]
