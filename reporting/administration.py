"""Administration of FIU profiles: the FIUs reports go to, and their goAML schemas."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.administration import refused
from accounts.permissions import Perm
from caspix.access import requires
from reporting import actions
from reporting.forms import FiuProfileForm, HolidayForm, RulesForm, SchemaUploadForm
from reporting.models import FiuProfile, FiuSchema, Holiday

# The code lists a report is filled from, in the order the profile page shows them.
SHOWN_LISTS = (
    "report_type",
    "report_indicator_type",
    "funds_type",
    "conduction_type",
    "account_type",
    "identifier_type",
    "currency_type",
    "country_type",
)


@requires(Perm.MANAGE_SETTINGS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def profiles(request: HttpRequest) -> HttpResponse:
    form = FiuProfileForm(request.POST if request.method == "POST" else None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            profile = actions.create_profile(
                slug=data["slug"],
                name=data["name"],
                rentity_id=data["rentity_id"],
                rentity_branch=data["rentity_branch"],
                currency_code_local=data["currency_code_local"],
                filename=form.filename,
                data=data["xsd"],
                version=data["version"],
                acting_user=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"The profile {profile.name} is ready.")
            return HttpResponseRedirect(reverse("fiu_profiles:detail", args=[profile.slug]))
    listed = FiuProfile.objects.restrict(request.user, "view").prefetch_related("schemas")
    status = 400 if form.errors else 200
    return render(request, "reporting/fiu_profiles.html", {"profiles": listed, "form": form}, status=status)


@requires(Perm.MANAGE_SETTINGS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def profile(request: HttpRequest, slug: str) -> HttpResponse:
    subject = get_object_or_404(FiuProfile.objects.restrict(request.user, "view"), slug=slug)
    form = SchemaUploadForm(request.POST if request.method == "POST" else None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            stored = actions.upload_schema(
                subject,
                filename=form.filename,
                data=form.cleaned_data["xsd"],
                version=form.cleaned_data["version"],
                acting_user=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"goAML {stored.version} is now the schema of {subject.name}.")
            return HttpResponseRedirect(reverse("fiu_profiles:detail", args=[subject.slug]))
    return _profile_page(request, subject, form=form, status=400 if form.errors else 200)


def _profile_page(request: HttpRequest, subject: FiuProfile, status: int = 200, **forms: Any) -> HttpResponse:
    schemas = list(
        FiuSchema.objects.restrict(request.user, "view")
        .filter(profile=subject)
        .defer("xsd")
        .select_related("uploaded_by")
    )
    current = next((s for s in schemas if s.is_current), None)
    lists = [(name, current.codes(name)) for name in SHOWN_LISTS if current and current.code_lists.get(name)]
    rules = RulesForm(
        initial={
            "report_due_days": subject.report_due_days,
            "warn_days": subject.warn_days,
            "weekend": subject.weekend,  # [] counts every day: shown as no day ticked
            "time_zone": subject.time_zone,
            "reporting_user_code": subject.reporting_user_code,
        }
    )
    context = {
        "profile": subject,
        "schemas": schemas,
        "current": current,
        "lists": lists,
        "form": forms.get("form") or SchemaUploadForm(),
        "rules_form": forms.get("rules_form") or rules,
        "holiday_form": forms.get("holiday_form") or HolidayForm(),
        "holidays": Holiday.objects.restrict(request.user, "view").filter(
            profile=subject, day__gte=timezone.localdate() - datetime.timedelta(days=366)
        ),
    }
    return render(request, "reporting/fiu_profile.html", context, status=status)


@requires(Perm.MANAGE_SETTINGS, step_up=True)
@require_POST
def rules(request: HttpRequest, slug: str) -> HttpResponse:
    """The FIU's deadline rule, weekend, time zone and the bank's goAML user code."""
    subject = get_object_or_404(FiuProfile.objects.restrict(request.user, "manage"), slug=slug)
    form = RulesForm(request.POST)
    if form.is_valid():
        try:
            actions.set_rules(subject, **form.cleaned_data, acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"The rules of {subject.name} are saved; open reports are re-dated.")
            return HttpResponseRedirect(reverse("fiu_profiles:detail", args=[subject.slug]) + "#calendar")
    return _profile_page(request, subject, rules_form=form, status=400)


@requires(Perm.MANAGE_SETTINGS, step_up=True)
@require_POST
def holiday(request: HttpRequest, slug: str) -> HttpResponse:
    """Add a holiday to the FIU's calendar, or remove one (``remove``)."""
    subject = get_object_or_404(FiuProfile.objects.restrict(request.user, "manage"), slug=slug)
    form = HolidayForm(request.POST)
    removing = request.POST.get("remove") == "True"
    if removing:
        form.fields["name"].required = False
    if form.is_valid():
        data = form.cleaned_data
        try:
            if removing:
                actions.remove_holiday(subject, day=data["day"], acting_user=request.user)  # type: ignore[arg-type]
            else:
                actions.add_holiday(subject, day=data["day"], name=data["name"], acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"The calendar of {subject.name} is changed; open reports are re-dated.")
            return HttpResponseRedirect(reverse("fiu_profiles:detail", args=[subject.slug]) + "#calendar")
    return _profile_page(request, subject, holiday_form=form, status=400)
