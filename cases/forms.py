"""Forms of the queue and API-client administration pages and of case grants; their choices come through
restrict()."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.forms import ReasonField, RestrictedChoicesForm
from accounts.models import Team, User
from accounts.permissions import Perm
from cases import workflow
from cases.models import Action, Case, CaseLink, Note, Queue, RoutingRule, Scope
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


# --- the case page: its workflow, notes, evidence and links ----------------------------------------

_NOTE_HELP = "Kept encrypted and append-only: an edit becomes a new version, and every version stays."


class NoteField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", _NOTE_HELP)
        super().__init__(max_length=Note.MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 4}), **kwargs)


class MoveForm(forms.Form):
    """One move of the workflow (escalate, return, report, withdraw), with its own reason codes."""

    move = forms.ChoiceField(choices=workflow.Move.choices, widget=forms.HiddenInput)
    reason = forms.ChoiceField(choices=())
    note = NoteField(required=False, label="Note", help_text="Required when the reason is “other”. " + _NOTE_HELP)

    def __init__(self, *args: Any, move: workflow.Move, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"move": move.value})
        kwargs.setdefault("prefix", move.value)
        super().__init__(*args, **kwargs)
        self.title = move.label
        self.fields["reason"].choices = [("", "Choose a reason"), *workflow.MOVES[move].reasons]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("reason") == "other" and not (data.get("note") or "").strip():
            self.add_error("note", "Explain the reason in the note.")
        return data


class CloseForm(forms.Form):
    reason = forms.ChoiceField(label="Closure reason", choices=[("", "Choose a reason"), *Case.ClosureReason.choices])
    note = NoteField(label="Closing note", help_text="The grounds for the closure. " + _NOTE_HELP)


class ReopenForm(forms.Form):
    reason = forms.ChoiceField(label="Reason", choices=[("", "Choose a reason"), *workflow.REOPEN_REASONS])
    note = NoteField(label="Grounds", help_text="Why the case must be worked again. " + _NOTE_HELP)


class NoteForm(forms.Form):
    text = NoteField(label="Note")


class NoteRevisionForm(forms.Form):
    text = NoteField(label="New version")
    version = forms.IntegerField(min_value=1, max_value=32767, widget=forms.HiddenInput)


class EvidenceForm(forms.Form):
    file = forms.FileField(
        help_text="PDF, PNG, JPEG, TIFF, text, CSV, e-mail (.eml), Word or Excel; checked by its content, "
        "hashed with SHA-256 and encrypted."
    )
    description = forms.CharField(max_length=500, required=False)


class LinkForm(forms.Form):
    case = forms.RegexField(
        label="Case reference",
        regex=r"\A\s*(?:[Cc]-?)?0*[1-9][0-9]{0,11}\s*\Z",
        help_text="For example C-000123.",
        error_messages={"invalid": "Give a case reference, such as C-000123."},
    )
    reason = forms.ChoiceField(choices=[("", "Choose a reason"), *CaseLink.Reason.choices])

    def clean_case(self) -> int:
        digits = "".join(ch for ch in self.cleaned_data["case"] if ch.isdigit())
        return int(digits)


class UnlinkForm(forms.Form):
    reason = ReasonField(label="Why the cases are not related")


class BulkForm(RestrictedChoicesForm):
    """A bulk action on the cases ticked in the queue: assign, re-route or change priority."""

    ACTIONS = [("assign", "Assign to"), ("reroute", "Re-route to a queue"), ("priority", "Set the priority")]

    case = forms.TypedMultipleChoiceField(
        label="Cases",
        coerce=int,
        widget=forms.MultipleHiddenInput,
        error_messages={"required": "Tick at least one case."},
    )
    action = forms.ChoiceField(choices=[("", "Choose an action"), *ACTIONS])
    assignee = forms.ModelChoiceField(
        queryset=User.objects.none(), to_field_name="username", required=False, empty_label="Choose a user"
    )
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.none(), to_field_name="slug", required=False, empty_label="Choose a queue"
    )
    priority = forms.TypedChoiceField(
        choices=[("", "Choose a priority"), *Case.Priority.choices], coerce=int, empty_value=None, required=False
    )
    reason = ReasonField()

    def restrict(self, user: Any) -> None:
        # The members of one's own teams who work cases (each case is checked again on its own).
        self.fields["assignee"].queryset = (  # type: ignore[attr-defined]
            User.objects.restrict(user, "colleague")
            .filter(
                is_active=True,
                roles__grants__permission=Perm.WORK_CASES,
                memberships__team__memberships__user=user,
            )
            .distinct()
            .order_by("username")
        )
        self.fields["queue"].queryset = Queue.objects.restrict(user, "route")  # type: ignore[attr-defined]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ticked = self.data.getlist("case") if hasattr(self.data, "getlist") else []
        self.fields["case"].choices = [(value, value) for value in ticked if str(value).isdigit()]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        needed = {"assign": "assignee", "reroute": "queue", "priority": "priority"}.get(data.get("action") or "")
        if needed and data.get(needed) in (None, ""):
            self.add_error(needed, "Choose one for this action.")
        return data
