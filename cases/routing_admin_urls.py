from django.urls import path

from cases import administration

app_name = "routing_rules"

urlpatterns = [
    path("", administration.routing_rules, name="list"),
    path("<int:pk>/", administration.routing_rule, name="detail"),
]
