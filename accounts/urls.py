from django.urls import path

from accounts import administration, oidc, passkeys, saml, signin, views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", signin.login, name="login"),
    path("logout/", signin.logout, name="logout"),
    path("login/verify/", signin.verify, name="verify"),
    path("login/enrol/", signin.enrol, name="enrol"),
    path("login/passkey/begin/", passkeys.authenticate_begin, name="passkey_authenticate_begin"),
    path("login/passkey/complete/", passkeys.authenticate_complete, name="passkey_authenticate_complete"),
    path("account/passkeys/begin/", passkeys.register_begin, name="passkey_register_begin"),
    path("account/passkeys/complete/", passkeys.register_complete, name="passkey_register_complete"),
    path("account/passkeys/<int:pk>/remove/", signin.passkey_remove, name="passkey_remove"),
    path("oidc/login/", oidc.start, name="oidc_login"),
    path("oidc/callback/", oidc.callback, name="oidc_callback"),
    path("saml/metadata/", saml.metadata, name="saml_metadata"),
    path("saml/login/", saml.start, name="saml_login"),
    path("saml/acs/", saml.acs, name="saml_acs"),
    path("account/factors/", signin.factors, name="factors"),
    path("account/factors/<int:pk>/remove/", signin.factor_remove, name="factor_remove"),
    path("account/recovery-codes/", signin.recovery_codes, name="recovery_codes"),
    path("account/sessions/", signin.my_sessions, name="sessions"),
    path("account/requests/<int:pk>/withdraw/", views.approval_withdraw, name="approval_withdraw"),
    path("account/sessions/<int:pk>/end/", signin.session_end, name="session_end"),
    path("account/sessions/end-others/", signin.sessions_end_others, name="sessions_end_others"),
    path("account/keepalive/", signin.keepalive, name="keepalive"),
    path(
        "administration/users/<str:username>/sessions/end/", administration.user_sessions_end, name="user_sessions_end"
    ),
    path("administration/", administration.users, name="admin_home"),
    path("administration/users/new/", administration.user_new, name="user_new"),
    path("administration/users/<str:username>/", administration.user, name="user"),
    path("administration/users/<str:username>/roles/", administration.user_roles, name="user_roles"),
    path("administration/users/<str:username>/active/", administration.user_active, name="user_active"),
    path("administration/roles/", administration.roles, name="roles"),
    path("administration/roles/new/", administration.role_new, name="role_new"),
    path("administration/roles/<slug:slug>/", administration.role, name="role"),
    path("administration/roles/<slug:slug>/edit/", administration.role_edit, name="role_edit"),
    path("administration/teams/", administration.teams, name="teams"),
    path("administration/teams/<slug:slug>/", administration.team, name="team"),
    path(
        "administration/teams/<slug:slug>/members/<str:username>/remove/",
        administration.team_remove,
        name="team_remove",
    ),
    path("administration/approvals/", administration.approval_list, name="approvals"),
    path("administration/approvals/<int:pk>/", administration.approval, name="approval"),
]
