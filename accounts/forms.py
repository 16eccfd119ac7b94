"""Forms of the administration pages. Validation that needs the database lives in the actions."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Role, Team, User
from accounts.permissions import DESCRIPTIONS, Perm


class ReasonField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "Recorded in the audit ledger with the change.")
        super().__init__(max_length=500, widget=forms.Textarea(attrs={"rows": 2}), **kwargs)


class UserCreateForm(forms.Form):
    username = forms.RegexField(
        regex=r"\A[\w.@+-]{2,150}\Z",
        max_length=150,
        help_text="Letters, digits and @ . + - _ only.",
        error_messages={"invalid": "Use letters, digits and @ . + - _ only (2 to 150 characters)."},
    )
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False, help_text="Where security alerts reach this person, if any.")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="An initial password the person changes at first sign-in.",
    )


class RestrictedChoicesForm(forms.Form):
    """A form whose choices of objects come through ``restrict()`` for the user filling it in."""

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.restrict(user)

    def restrict(self, user: Any) -> None:
        raise NotImplementedError


class RoleChangeForm(RestrictedChoicesForm):
    role = forms.ModelChoiceField(queryset=Role.objects.none(), to_field_name="slug", empty_label=None)
    change = forms.ChoiceField(choices=[("grant", "Grant"), ("revoke", "Revoke")])
    reason = ReasonField(
        help_text="A privileged role (one that administers or approves) waits for a second administrator."
    )

    def restrict(self, user: Any) -> None:
        self.fields["role"].queryset = Role.objects.restrict(user, "view")  # type: ignore[attr-defined]


class ActiveForm(forms.Form):
    reason = ReasonField()


class RoleTemplateForm(forms.Form):
    slug = forms.SlugField(max_length=50, help_text="Lower-case letters, digits and hyphens; fixed once created.")
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    permissions = forms.MultipleChoiceField(
        choices=[(p.value, f"{DESCRIPTIONS[p]} ({p.value})") for p in Perm],
        widget=forms.CheckboxSelectMultiple,
        help_text="From the catalog of business permissions only.",
    )
    mfa_required = forms.BooleanField(
        required=False,
        initial=True,
        label="Holders sign in with a second factor",
        help_text="Required for a template that administers or approves.",
    )
    passkey_sign_in = forms.BooleanField(
        required=False,
        initial=False,
        label="Holders may sign in with a passkey alone",
        help_text="No password; the passkey's own PIN or biometric is required. Not for a template that "
        "administers or approves.",
    )
    reason = ReasonField(help_text="Every template change waits for a second administrator's approval.")


class TeamForm(forms.Form):
    slug = forms.SlugField(max_length=50)
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MemberForm(RestrictedChoicesForm):
    user = forms.ModelChoiceField(queryset=User.objects.none(), to_field_name="username", empty_label="Choose a user")

    def __init__(self, *args: Any, user: Any, team: Team, **kwargs: Any) -> None:
        self.team = team
        super().__init__(*args, user=user, **kwargs)

    def restrict(self, user: Any) -> None:
        people = User.objects.restrict(user, "view").filter(is_active=True).exclude(memberships__team=self.team)
        self.fields["user"].queryset = people  # type: ignore[attr-defined]


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")], widget=forms.RadioSelect)
    seen_hash = forms.RegexField(regex=r"\A[0-9a-f]{64}\Z", widget=forms.HiddenInput)
    reason = ReasonField(required=False, help_text="Required to reject; recorded in the audit ledger.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == "reject" and not (data.get("reason") or "").strip():
            self.add_error("reason", "State why you reject the request.")
        return data
