from django.urls import path

from cases import administration

app_name = "webhooks"

urlpatterns = [
    path("", administration.webhooks, name="list"),
    path("<uuid:pk>/", administration.webhook, name="detail"),
    path("<uuid:pk>/replay/", administration.webhook_replay, name="replay"),
    path("<uuid:pk>/active/", administration.webhook_switch, name="switch"),
]
