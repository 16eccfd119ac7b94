"""Queue administration: each queue belongs to one team, whose members work its cases."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.administration import refused
from accounts.permissions import Perm
from cases import actions
from cases.forms import MoveQueueForm, QueueForm
from cases.models import Queue
from caspix.access import requires


@requires(Perm.MANAGE_TEAMS)
@require_http_methods(["GET", "HEAD", "POST"])
def queues(request: HttpRequest) -> HttpResponse:
    form = QueueForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            queue = actions.create_queue(**form.cleaned_data, acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"The queue {queue.name} was created for {queue.team.name}.")
            return HttpResponseRedirect(reverse("queues:list"))
    listing = (
        Queue.objects.restrict(request.user, "view")
        .select_related("team")
        .annotate(size=Count("cases"))
        .order_by("name")
    )
    status = 400 if form.errors else 200
    return render(request, "cases/queues.html", {"queues": listing, "form": form}, status=status)


def _queue_page(request: HttpRequest, queue: Queue, form: Form, status: int = 200) -> HttpResponse:
    return render(request, "cases/queue.html", {"queue": queue, "form": form}, status=status)


@requires(Perm.MANAGE_TEAMS)
@require_safe
def queue(request: HttpRequest, slug: str) -> HttpResponse:
    subject = get_object_or_404(Queue.objects.restrict(request.user, "manage").select_related("team"), slug=slug)
    return _queue_page(request, subject, MoveQueueForm(initial={"team": subject.team}, user=request.user))


@requires(Perm.MANAGE_TEAMS)
@require_POST
def queue_move(request: HttpRequest, slug: str) -> HttpResponse:
    subject = get_object_or_404(Queue.objects.restrict(request.user, "manage").select_related("team"), slug=slug)
    form = MoveQueueForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            actions.move_queue(subject, form.cleaned_data["team"], acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{subject.name} now belongs to {form.cleaned_data['team'].name}.")
            return HttpResponseRedirect(reverse("queues:detail", args=[subject.slug]))
    return _queue_page(request, subject, form, status=400)
