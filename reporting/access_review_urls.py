from django.urls import path

from reporting import access_review_views

app_name = "access_review"

urlpatterns = [
    path("", access_review_views.review_list, name="list"),
    path("take", access_review_views.review_take, name="take"),
    path("<uuid:pk>/", access_review_views.review, name="review"),
    path("<uuid:pk>/sign-off", access_review_views.review_sign_off, name="sign_off"),
    path("<uuid:pk>/download.<str:file_format>", access_review_views.review_download, name="download"),
]
