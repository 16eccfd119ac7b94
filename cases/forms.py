"""Forms of the queue and API-client administration pages and of case grants; their choices come through
restrict()."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.forms import ReasonField, RestrictedChoicesForm
from accounts.models import Team, User
from accounts.permissions import Perm
from cases.models import Action, Queue, RoutingRule, Scope
from cases.outbox import EVENT_TYPES
from cases.search import Kind as SearchKind


class TeamChoiceForm(RestrictedChoicesForm):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug", empty_label=None)

    def restrict(self, user: Any) -> None:
        self.fields["team"].queryset = Team.objects.restrict(user, "view")  # type: ignore[attr-defined]


class QueueForm(TeamChoiceForm):
    slug = forms.SlugField(max_length=50)
    name = forms.CharField(max_length=100)
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), to_field_name="slug", empty_label="Choose the owning team"
    )
    description = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MoveQueueForm(TeamChoiceForm):
    pass


class GrantForm(RestrictedChoicesForm):
    user = forms.ModelChoiceField(queryset=User.objects.none(), to_field_name="username", empty_label="Choose a user")
    access = forms.ChoiceField(choices=[(Action.VIEW.value, "Read only"), (Action.WORK.value, "Work the case")])
    reason = ReasonField()

    def restrict(self, user: Any) -> None:
        colleagues = (
            User.objects.restrict(user, "colleague")
            .filter(is_active=True, roles__grants__permission=Perm.WORK_CASES)
            .exclude(pk=user.pk)
            .distinct()
        )
        self.fields["user"].queryset = colleagues  # type: ignore[attr-defined]


class ApiClientForm(forms.Form):
    name = forms.CharField(max_length=100)
    source = forms.SlugField(max_length=50, help_text="How routing rules and alerts name this system.")
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)
    networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="CIDR blocks it calls from, one a line (e.g. 10.20.0.0/16); none: any address.",
    )
    rate_limit = forms.IntegerField(min_value=1, max_value=1_000_000, initial=600, help_text="Requests a minute.")

    def clean_networks(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["networks"].splitlines() if line.strip()]


class RevokeKeyForm(forms.Form):
    reason = ReasonField()


class RoutingRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    """A routing rule's conditions and what it decides; a blank condition matches every alert."""

    class Meta:
        model = RoutingRule
        fields = [
            "position",
            "name",
            "scenario",
            "source",
            "currency",
            "min_amount",
            "max_amount",
            "queue",
            "priority",
        ]
        help_texts = {
            "position": "Rules are tried in this order; the first that matches decides.",
            "min_amount": "Inclusive; the alert's amount is the total of its transactions in one currency.",
            "max_amount": "Exclusive.",
        }

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].queryset = Queue.objects.restrict(user, "view")  # type: ignore[attr-defined]


class RoutingRuleChangeForm(RoutingRuleForm):
    """A rule as it stands, to change; an inactive rule routes nothing until made active again."""

    class Meta(RoutingRuleForm.Meta):
        fields = [*RoutingRuleForm.Meta.fields, "is_active"]
        labels = {"is_active": "Active"}
        help_texts = {**RoutingRuleForm.Meta.help_texts, "is_active": "Untick to stop routing by this rule."}


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.URLField(
        max_length=500, label="URL", assume_scheme="https", help_text="Where the events are POSTed, over https."
    )
    event_types = forms.MultipleChoiceField(
        choices=[(kind, kind) for kind in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type, including those added later.",
    )


class ReplayForm(forms.Form):
    after = forms.IntegerField(
        min_value=0, label="Send again every event after sequence number", help_text="0 sends every event again."
    )
    reason = ReasonField()


class WebhookActiveForm(forms.Form):
    reason = ReasonField()


class SearchForm(forms.Form):
    kind = forms.ChoiceField(label="Search by", choices=SearchKind.choices)
    q = forms.CharField(
        label="Exactly", max_length=200, help_text="Identifiers match whole, ignoring spaces, separators and case."
    )
