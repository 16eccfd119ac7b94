from django.urls import path

from reporting import administration

app_name = "fiu_profiles"

urlpatterns = [
    path("", administration.profiles, name="list"),
    path("<slug:slug>/", administration.profile, name="detail"),
    path("<slug:slug>/rules", administration.rules, name="rules"),
    path("<slug:slug>/holidays", administration.holiday, name="holiday"),
]
