"""Forms of the queue administration pages and of case grants."""

from __future__ import annotations

from django import forms

from accounts.forms import ReasonField
from accounts.models import Team, User
from cases.models import Action


class QueueForm(forms.Form):
    slug = forms.SlugField(max_length=50)
    name = forms.CharField(max_length=100)
    team = forms.ModelChoiceField(
        queryset=Team.objects.all(), to_field_name="slug", empty_label="Choose the owning team"
    )
    description = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MoveQueueForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.all(), to_field_name="slug", empty_label=None)


class GrantForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True), to_field_name="username", empty_label="Choose a user"
    )
    access = forms.ChoiceField(choices=[(Action.VIEW.value, "Read only"), (Action.WORK.value, "Work the case")])
    reason = ReasonField()
