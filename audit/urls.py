from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.home, name="home"),
    path("events/", views.events, name="events"),
    path("events/<int:seq>/", views.event, name="event"),
    path("ledger-keys", views.ledger_keys, name="ledger_keys"),
]
