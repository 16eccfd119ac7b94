"""Forms of the FIU profile pages."""

from __future__ import annotations

from django import forms

from reporting.goaml.schema import MAX_BYTES


class SchemaUploadForm(forms.Form):
    xsd = forms.FileField(
        label="goAML schema (XSD)",
        help_text="The single goAMLSchema.xsd your FIU issues; its code lists are read from it.",
    )
    version = forms.RegexField(
        regex=r"\A[0-9][0-9.]{0,19}\Z",
        required=False,
        help_text="Only if the schema does not state it (goaml:schemaVersion), e.g. 4.0.2.",
        error_messages={"invalid": "A version is digits and dots, e.g. 5.0.2."},
    )

    def clean_xsd(self) -> bytes:
        upload = self.cleaned_data["xsd"]
        if upload.size > MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MiB.")
        data: bytes = upload.read()
        self.filename = upload.name
        return data


class FiuProfileForm(SchemaUploadForm):
    name = forms.CharField(max_length=200, label="FIU", help_text="As your reports name it.")
    slug = forms.SlugField(max_length=50)
    rentity_id = forms.IntegerField(
        label="Reporting entity id", min_value=1, max_value=2_147_483_647, help_text="The bank's id at this FIU."
    )
    rentity_branch = forms.CharField(max_length=255, required=False, label="Reporting entity branch")
    currency_code_local = forms.RegexField(
        regex=r"\A[A-Z]{3}\Z",
        label="Local currency",
        help_text="ISO 4217, e.g. AED; it must be in the schema's currency list.",
        error_messages={"invalid": "Three capital letters, e.g. AED."},
    )

    field_order = ["name", "slug", "rentity_id", "rentity_branch", "currency_code_local", "xsd", "version"]


WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


class RulesForm(forms.Form):
    report_due_days = forms.IntegerField(
        min_value=1, max_value=365, label="A report is due after", help_text="Business days after suspicion was formed."
    )
    warn_days = forms.IntegerField(
        min_value=0, max_value=364, label="Escalate when", help_text="Business days or fewer are left."
    )
    weekend = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, required=False, widget=forms.CheckboxSelectMultiple, label="Weekend"
    )
    time_zone = forms.CharField(
        max_length=64,
        label="Time zone",
        help_text="goAML dates carry no offset: they are written in this zone, e.g. Asia/Dubai.",
    )
    reporting_user_code = forms.CharField(
        max_length=100, required=False, label="goAML user code", help_text="Where the FIU's schema asks for one."
    )


class HolidayForm(forms.Form):
    day = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    name = forms.CharField(max_length=100)
    remove = forms.BooleanField(required=False, widget=forms.HiddenInput)
