from django.urls import path

from reporting import administration

app_name = "fiu_profiles"

urlpatterns = [
    path("", administration.profiles, name="list"),
    path("<slug:slug>/", administration.profile, name="detail"),
]
