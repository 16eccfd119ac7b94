"""The administration pages: users, role templates, teams and pending approvals.

Each view validates its form, calls one action and redirects (post/redirect/get); a refused change
comes back as the form's error, in the words of the action that refused it. Privileged role
changes and every role-template change leave as four-eyes requests, not as changes.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, QuerySet
from django.forms import BaseForm, Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import actions, approvals, sessions
from accounts.forms import (
    ActiveForm,
    DecisionForm,
    MemberForm,
    RoleChangeForm,
    RoleTemplateForm,
    TeamForm,
    UserCreateForm,
)
from accounts.models import ApprovalRequest, Membership, Role, Team, User
from accounts.permissions import DESCRIPTIONS, Perm
from accounts.review import role_history
from caspix.access import requires

ACCESS_KINDS = ("role_change", "role_template")


def refused(form: BaseForm, error: ValidationError) -> None:
    for message in error.messages:
        form.add_error(None, message)


def redirect(name: str, *args: object) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse(name, args=args))


# --- users ----------------------------------------------------------------------------------------


@requires(Perm.MANAGE_USERS)
@require_safe
def users(request: HttpRequest) -> HttpResponse:
    listing = (
        User.objects.restrict(request.user, "manage")
        .order_by("username")
        .prefetch_related(Prefetch("roles", queryset=Role.objects.restrict(request.user, "view").order_by("name")))
        .prefetch_related(Prefetch("teams", queryset=Team.objects.restrict(request.user, "view").order_by("name")))
    )
    return render(request, "accounts/admin_home.html", {"users": listing})


@requires(Perm.MANAGE_USERS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def user_new(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            user = actions.create_user(**form.cleaned_data, acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{user.username} was created, with no role yet.")
            return redirect("accounts:user", user.username)
    return render(request, "accounts/user_new.html", {"form": form}, status=400 if form.errors else 200)


def _user_page(request: HttpRequest, user: User, role_form: Form, active_form: Form, status: int = 200) -> HttpResponse:
    history = role_history([user.pk]).get(user.pk, [])
    names = dict(
        User.objects.restrict(request.user, "view")
        .filter(pk__in={c.maker_id for c in history} | {c.approver_id for c in history})
        .values_list("pk", "username")
    )
    pending = (
        ApprovalRequest.objects.restrict(request.user, "view")
        .filter(kind="role_change", status=ApprovalRequest.Status.PENDING, payload__user=user.pk)
        .select_related("maker")
    )
    context = {
        "subject": user,
        "roles": user.roles.prefetch_related("grants"),
        "teams": user.teams.all(),
        "history": [
            (change, names.get(change.maker_id or 0), names.get(change.approver_id or 0))
            for change in reversed(history)
        ],
        "pending": pending,
        "role_form": role_form,
        "active_form": active_form,
        "sessions": sessions.live_sessions(user),
    }
    return render(request, "accounts/user.html", context, status=status)


@requires(Perm.MANAGE_USERS, step_up=True)
@require_safe
def user(request: HttpRequest, username: str) -> HttpResponse:
    subject = get_object_or_404(User.objects.restrict(request.user, "manage"), username=username)
    return _user_page(request, subject, RoleChangeForm(user=request.user), ActiveForm())


@requires(Perm.MANAGE_USERS, step_up=True)
@require_POST
def user_roles(request: HttpRequest, username: str) -> HttpResponse:
    subject = get_object_or_404(User.objects.restrict(request.user, "manage"), username=username)
    form = RoleChangeForm(request.POST, user=request.user)
    if form.is_valid():
        role: Role = form.cleaned_data["role"]
        change: str = form.cleaned_data["change"]
        try:
            if role.is_privileged():
                approvals.request_change(
                    "role_change",
                    {"user": subject.pk, "role": role.slug, "change": change},
                    acting_user=request.user,  # type: ignore[arg-type]
                    reason=form.cleaned_data["reason"],
                )
                messages.success(request, f"The {change} of {role.name} waits for a second administrator's approval.")
            else:
                actions.change_role(subject, role, change, acting_user=request.user)  # type: ignore[arg-type]
                messages.success(request, f"{role.name}: {change} done.")
        except ValidationError as error:
            refused(form, error)
        else:
            return redirect("accounts:user", subject.username)
    return _user_page(request, subject, form, ActiveForm(), status=400)


@requires(Perm.MANAGE_USERS, step_up=True)
@require_POST
def user_active(request: HttpRequest, username: str) -> HttpResponse:
    subject = get_object_or_404(User.objects.restrict(request.user, "manage"), username=username)
    form = ActiveForm(request.POST)
    if form.is_valid():
        try:
            activate = not subject.is_active
            actions.set_active(subject, activate, acting_user=request.user, reason=form.cleaned_data["reason"])  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{subject.username} is {'active' if activate else 'deactivated'}.")
            return redirect("accounts:user", subject.username)
    return _user_page(request, subject, RoleChangeForm(user=request.user), form, status=400)


# --- role templates -------------------------------------------------------------------------------


@requires(Perm.MANAGE_ROLES)
@require_safe
def roles(request: HttpRequest) -> HttpResponse:
    listing = (
        Role.objects.restrict(request.user, "view").prefetch_related("grants").annotate(holders=Count("assignments"))
    )
    return render(request, "accounts/roles.html", {"roles": listing, "descriptions": _descriptions()})


def _descriptions() -> dict[str, str]:
    return {p.value: text for p, text in DESCRIPTIONS.items()}


@requires(Perm.MANAGE_ROLES, step_up=True)
@require_safe
def role(request: HttpRequest, slug: str) -> HttpResponse:
    template = get_object_or_404(Role.objects.restrict(request.user, "view").prefetch_related("grants"), slug=slug)
    form = None
    if not template.builtin:
        initial = {
            **_fields_of(template),
            "permissions": template.permissions(),
            "mfa_required": template.mfa_required,
            "passkey_sign_in": template.passkey_sign_in,
        }
        form = RoleTemplateForm(initial=initial)
        form.fields["slug"].disabled = True
    return _role_page(request, template, form)


def _fields_of(template: Role) -> dict[str, str]:
    return {"slug": template.slug, "name": template.name, "description": template.description}


def _role_page(request: HttpRequest, template: Role, form: Form | None, status: int = 200) -> HttpResponse:
    context = {
        "template": template,
        "descriptions": _descriptions(),
        "holders": template.users.order_by("username"),
        "form": form,
    }
    return render(request, "accounts/role.html", context, status=status)


def _request_template(request: HttpRequest, form: RoleTemplateForm, change: str) -> bool:
    data = form.cleaned_data
    payload = {
        "change": change,
        "slug": data["slug"],
        "name": data["name"],
        "description": data["description"],
        "permissions": sorted(data["permissions"]),
        "mfa_required": data["mfa_required"],
        "passkey_sign_in": data["passkey_sign_in"],
    }
    try:
        approvals.request_change("role_template", payload, acting_user=request.user, reason=data["reason"])  # type: ignore[arg-type]
    except ValidationError as error:
        refused(form, error)
        return False
    messages.success(request, f"The template {data['name']} waits for a second administrator's approval.")
    return True


@requires(Perm.MANAGE_ROLES, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def role_new(request: HttpRequest) -> HttpResponse:
    form = RoleTemplateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid() and _request_template(request, form, "create"):
        return redirect("accounts:approvals")
    return render(request, "accounts/role_new.html", {"form": form}, status=400 if form.errors else 200)


@requires(Perm.MANAGE_ROLES, step_up=True)
@require_POST
def role_edit(request: HttpRequest, slug: str) -> HttpResponse:
    template = get_object_or_404(Role.objects.restrict(request.user, "manage"), slug=slug, builtin=False)
    form = RoleTemplateForm(request.POST, initial=_fields_of(template))
    form.fields["slug"].disabled = True  # the slug is fixed: the posted one is ignored
    if form.is_valid() and _request_template(request, form, "edit"):
        return redirect("accounts:approvals")
    return _role_page(request, template, form, status=400)


# --- teams ----------------------------------------------------------------------------------------


def _teams(user: User | AnonymousUser) -> QuerySet[Team]:
    return Team.objects.restrict(user, "view").annotate(size=Count("memberships")).order_by("name")


@requires(Perm.MANAGE_TEAMS)
@require_http_methods(["GET", "HEAD", "POST"])
def teams(request: HttpRequest) -> HttpResponse:
    form = TeamForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            team = actions.create_team(**form.cleaned_data, acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"The team {team.name} was created.")
            return redirect("accounts:team", team.slug)
    status = 400 if form.errors else 200
    return render(request, "accounts/teams.html", {"teams": _teams(request.user), "form": form}, status=status)


def _team_page(
    request: HttpRequest, team: Team, form: Form, status: int = 200, errors: list[str] | None = None
) -> HttpResponse:
    members = (
        Membership.objects.restrict(request.user, "view")
        .filter(team=team)
        .select_related("user")
        .order_by("user__username")
    )
    context = {"team": team, "members": members, "form": form, "errors": errors or []}
    return render(request, "accounts/team.html", context, status=status)


@requires(Perm.MANAGE_TEAMS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def team(request: HttpRequest, slug: str) -> HttpResponse:
    subject = get_object_or_404(Team.objects.restrict(request.user, "manage"), slug=slug)
    form = MemberForm(request.POST if request.method == "POST" else None, user=request.user, team=subject)
    if request.method == "POST" and form.is_valid():
        try:
            actions.add_members(subject, [form.cleaned_data["user"]], acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{form.cleaned_data['user'].username} joined {subject.name}.")
            return redirect("accounts:team", subject.slug)
    return _team_page(request, subject, form, status=400 if form.errors else 200)


@requires(Perm.MANAGE_TEAMS, step_up=True)
@require_POST
def team_remove(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    subject = get_object_or_404(Team.objects.restrict(request.user, "manage"), slug=slug)
    member = get_object_or_404(User.objects.restrict(request.user, "manage"), username=username)
    try:
        actions.remove_member(subject, member, acting_user=request.user)  # type: ignore[arg-type]
    except ValidationError as error:
        return _team_page(
            request, subject, MemberForm(user=request.user, team=subject), status=400, errors=error.messages
        )
    messages.success(request, f"{member.username} left {subject.name}.")
    return redirect("accounts:team", subject.slug)


# --- four-eyes approvals of access changes --------------------------------------------------------


@requires(Perm.APPROVE_ACCESS_CHANGE)
@require_safe
def approval_list(request: HttpRequest) -> HttpResponse:
    requests = (
        ApprovalRequest.objects.restrict(request.user, "view")
        .filter(kind__in=ACCESS_KINDS)
        .select_related("maker", "decided_by")
    )
    pending = requests.filter(status=ApprovalRequest.Status.PENDING).order_by("expires_at")
    decided = requests.exclude(status=ApprovalRequest.Status.PENDING).order_by("-decided_at")[:50]
    return render(request, "accounts/approvals.html", {"pending": pending, "decided": decided})


def _approval_page(request: HttpRequest, subject: ApprovalRequest, form: Form, status: int = 200) -> HttpResponse:
    context = {
        "approval": subject,
        "form": form,
        "own": subject.maker_id == request.user.pk,
        "payload": [(key, _shown(request.user, key, value)) for key, value in sorted(subject.payload.items())],
    }
    return render(request, "accounts/approval.html", context, status=status)


def _shown(user: User | AnonymousUser, key: str, value: object) -> object:
    if key == "user" and isinstance(value, int):
        username = User.objects.restrict(user, "view").filter(pk=value).values_list("username", flat=True).first()
        return f"{username or 'unknown user'} (id {value})"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return value


@requires(Perm.APPROVE_ACCESS_CHANGE, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def approval(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(
        ApprovalRequest.objects.restrict(request.user, "view").select_related("maker", "decided_by"),
        pk=pk,
        kind__in=ACCESS_KINDS,
    )
    if request.method != "POST":
        return _approval_page(request, subject, DecisionForm(initial={"seen_hash": subject.payload_hash}))
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _approval_page(request, subject, form, status=400)
    data = form.cleaned_data
    try:
        if data["decision"] == "approve":
            approvals.approve(subject.pk, acting_user=request.user, seen_hash=data["seen_hash"], reason=data["reason"])  # type: ignore[arg-type]
        else:
            approvals.reject(subject.pk, acting_user=request.user, reason=data["reason"])  # type: ignore[arg-type]
    except approvals.ApprovalRefusedError as error:
        form.add_error(None, str(error))
        subject.refresh_from_db()
        return _approval_page(request, subject, form, status=409)
    messages.success(request, f"Request {subject.pk} is {'approved' if data['decision'] == 'approve' else 'rejected'}.")
    return redirect("accounts:approvals")


@requires(Perm.MANAGE_USERS, step_up=True)
@require_POST
def user_sessions_end(request: HttpRequest, username: str) -> HttpResponse:
    """End every session of a user (a lost laptop, a suspected takeover)."""
    subject = get_object_or_404(User.objects.restrict(request.user, "manage"), username=username)
    ended = sessions.end_all(subject, acting_user=request.user, reason="ended by an administrator")  # type: ignore[arg-type]
    messages.success(request, f"{ended} session{'s' if ended != 1 else ''} of {subject.username} ended.")
    return redirect("accounts:user", subject.username)
