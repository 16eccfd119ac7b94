from django.urls import path

from cases import views

app_name = "cases"

urlpatterns = [
    path("", views.workspace, name="workspace"),
    path("cases/next/", views.next_case, name="next_case"),
    path("search/", views.case_search, name="search"),
    path("cases/<int:pk>/", views.case, name="case"),
    path("cases/<int:pk>/take/", views.take_case, name="case_take"),
    path("cases/<int:pk>/grants/", views.case_grant, name="case_grant"),
    path("cases/<int:pk>/grants/<str:username>/revoke/", views.case_revoke, name="case_revoke"),
]
