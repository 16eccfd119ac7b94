from django.urls import path

from cases import administration

app_name = "queues"

urlpatterns = [
    path("", administration.queues, name="list"),
    path("<slug:slug>/", administration.queue, name="detail"),
    path("<slug:slug>/team/", administration.queue_move, name="move"),
]
