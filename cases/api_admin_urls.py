from django.urls import path

from cases import administration

app_name = "api_clients"

urlpatterns = [
    path("", administration.api_clients, name="list"),
    path("<slug:source>/", administration.api_client, name="detail"),
    path("<slug:source>/keys/", administration.api_key_issue, name="issue_key"),
    path("<slug:source>/keys/<str:key_id>/revoke/", administration.api_key_revoke, name="revoke_key"),
]
