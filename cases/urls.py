from django.urls import path

from cases import case_views, views

app_name = "cases"

urlpatterns = [
    path("", views.workspace, name="workspace"),
    path("cases/next/", views.next_case, name="next_case"),
    path("cases/bulk/", views.bulk, name="bulk"),
    path("search/", views.case_search, name="search"),
    path("approvals/", case_views.approval_list, name="approvals"),
    path("approvals/<int:pk>/", case_views.approval, name="approval"),
    path("cases/<int:pk>/", case_views.case, name="case"),
    path("cases/<int:pk>/take/", views.take_case, name="case_take"),
    path("cases/<int:pk>/move/", case_views.case_move, name="case_move"),
    path("cases/<int:pk>/close/", case_views.case_close, name="case_close"),
    path("cases/<int:pk>/reopen/", case_views.case_reopen, name="case_reopen"),
    path("cases/<int:pk>/notes/", case_views.note_add, name="note_add"),
    path("cases/<int:pk>/notes/<uuid:thread>/", case_views.note_revise, name="note"),
    path("cases/<int:pk>/evidence/", case_views.evidence_add, name="evidence_add"),
    path("cases/<int:pk>/evidence/<uuid:evidence>/", case_views.evidence_download, name="evidence"),
    path("cases/<int:pk>/related/", case_views.related, name="related"),
    path("cases/<int:pk>/links/", case_views.link, name="link"),
    path("cases/<int:pk>/links/<int:other>/remove/", case_views.unlink, name="unlink"),
    path("cases/<int:pk>/access/", case_views.access, name="access"),
    path("cases/<int:pk>/grants/", case_views.case_grant, name="case_grant"),
    path("cases/<int:pk>/grants/<str:username>/revoke/", case_views.case_revoke, name="case_revoke"),
]
