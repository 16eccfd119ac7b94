"""Queue and API-client administration: each queue belongs to one team, whose members work its cases;
each API client is an upstream system that delivers alerts with its keys."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.administration import refused
from accounts.permissions import Perm
from cases import actions
from cases.forms import (
    ApiClientForm,
    MoveQueueForm,
    QueueForm,
    ReplayForm,
    RevokeKeyForm,
    RoutingRuleChangeForm,
    RoutingRuleForm,
    WebhookActiveForm,
    WebhookForm,
)
from cases.models import ApiClient, ApiKey, Queue, RoutingRule, Webhook
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


# --- API clients and their keys (docs/API.md) ----------------------------------------------------


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def api_clients(request: HttpRequest) -> HttpResponse:
    form = ApiClientForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            client = actions.create_api_client(**form.cleaned_data, acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{client.name} is registered: issue it a key to let it call.")
            return HttpResponseRedirect(reverse("api_clients:detail", args=[client.source]))
    listing = ApiClient.objects.restrict(request.user, "view").annotate(
        active_keys=Count("keys", filter=Q(keys__revoked_at__isnull=True))
    )
    status = 400 if form.errors else 200
    return render(request, "cases/api_clients.html", {"clients": listing, "form": form}, status=status)


def _client(request: HttpRequest, source: str) -> ApiClient:
    return get_object_or_404(ApiClient.objects.restrict(request.user, "manage"), source=source)


def _client_page(
    request: HttpRequest, client: ApiClient, form: Form, status: int = 200, **extra: object
) -> HttpResponse:
    keys = ApiKey.objects.restrict(request.user, "view").filter(client=client).order_by("-created_at")
    context = {"client": client, "keys": keys, "form": form, **extra}
    return render(request, "cases/api_client.html", context, status=status)


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_safe
def api_client(request: HttpRequest, source: str) -> HttpResponse:
    return _client_page(request, _client(request, source), RevokeKeyForm())


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_POST
def api_key_issue(request: HttpRequest, source: str) -> HttpResponse:
    """Issue a key and show its secret on this one answer: it is never shown again."""
    client = _client(request, source)
    try:
        key, secret = actions.issue_api_key(client, acting_user=request.user)  # type: ignore[arg-type]
    except ValidationError as error:
        return _client_page(request, client, RevokeKeyForm(), status=400, errors=error.messages)
    response = _client_page(request, client, RevokeKeyForm(), issued={"key_id": key.key_id, "secret": secret})
    response["Cache-Control"] = "no-store"
    return response


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_POST
def api_key_revoke(request: HttpRequest, source: str, key_id: str) -> HttpResponse:
    client = _client(request, source)
    key = get_object_or_404(ApiKey.objects.restrict(request.user, "manage"), client=client, key_id=key_id)
    form = RevokeKeyForm(request.POST)
    if form.is_valid():
        try:
            actions.revoke_api_key(key, acting_user=request.user, reason=form.cleaned_data["reason"])  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{key.key_id} is revoked: requests signed with it are refused.")
            return HttpResponseRedirect(reverse("api_clients:detail", args=[client.source]))
    return _client_page(request, client, form, status=400)


# --- Routing rules ---------------------------------------------------------------------------------


@requires(Perm.MANAGE_SETTINGS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def routing_rules(request: HttpRequest) -> HttpResponse:
    form = RoutingRuleForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            rule = actions.create_routing_rule(acting_user=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"The rule {rule.name} routes from position {rule.position}.")
            return HttpResponseRedirect(reverse("routing_rules:list"))
    rules = RoutingRule.objects.restrict(request.user, "view").select_related("queue")
    status = 400 if form.errors else 200
    return render(request, "cases/routing_rules.html", {"rules": rules, "form": form}, status=status)


@requires(Perm.MANAGE_SETTINGS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def routing_rule(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(RoutingRule.objects.restrict(request.user, "view").select_related("queue"), pk=pk)
    name = rule.name  # the form writes what was typed onto the instance, even when it is refused
    form = RoutingRuleChangeForm(request.POST if request.method == "POST" else None, instance=rule, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            changed = actions.change_routing_rule(
                rule,
                acting_user=request.user,  # type: ignore[arg-type]
                **{field: form.cleaned_data[field] for field in form.changed_data},
            )
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"The rule {changed.name} is saved.")
            return HttpResponseRedirect(reverse("routing_rules:list"))
    status = 400 if form.errors else 200
    return render(request, "cases/routing_rule.html", {"name": name, "form": form}, status=status)


# --- Webhooks: the receivers of the outbound events --------------------------------------------------


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def webhooks(request: HttpRequest) -> HttpResponse:
    """The receivers; adding one shows its signing secret on that one answer, never again."""
    form = WebhookForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            webhook, secret = actions.create_webhook(**form.cleaned_data, acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            response = _webhook_page(request, webhook, issued=secret)
            response["Cache-Control"] = "no-store"
            return response
    listing = Webhook.objects.restrict(request.user, "view")
    status = 400 if form.errors else 200
    return render(request, "cases/webhooks.html", {"webhooks": listing, "form": form}, status=status)


def _webhook(request: HttpRequest, pk: str) -> Webhook:
    return get_object_or_404(Webhook.objects.restrict(request.user, "manage"), pk=pk)


def _webhook_page(request: HttpRequest, webhook: Webhook, status: int = 200, **extra: object) -> HttpResponse:
    context = {
        "webhook": webhook,
        "replay": extra.pop("replay", None) or ReplayForm(initial={"after": webhook.delivered_through}),
        "switch": extra.pop("switch", None) or WebhookActiveForm(),
        **extra,
    }
    return render(request, "cases/webhook.html", context, status=status)


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_safe
def webhook(request: HttpRequest, pk: str) -> HttpResponse:
    return _webhook_page(request, _webhook(request, pk))


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_POST
def webhook_replay(request: HttpRequest, pk: str) -> HttpResponse:
    hook = _webhook(request, pk)
    form = ReplayForm(request.POST)
    if form.is_valid():
        try:
            actions.replay_webhook(hook, acting_user=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"Events after {form.cleaned_data['after']} will be delivered again.")
            return HttpResponseRedirect(reverse("webhooks:detail", args=[hook.pk]))
    return _webhook_page(request, hook, status=400, replay=form)


@requires(Perm.MANAGE_API_CLIENTS, step_up=True)
@require_POST
def webhook_switch(request: HttpRequest, pk: str) -> HttpResponse:
    """Make a receiver inactive, or active again."""
    hook = _webhook(request, pk)
    form = WebhookActiveForm(request.POST)
    if form.is_valid():
        active = not hook.is_active
        actions.set_webhook_active(hook, active=active, acting_user=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        messages.success(request, f"{hook.name} is {'active' if active else 'inactive'}.")
        return HttpResponseRedirect(reverse("webhooks:detail", args=[hook.pk]))
    return _webhook_page(request, hook, status=400, switch=form)
