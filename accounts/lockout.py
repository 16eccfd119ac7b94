"""Failed sign-ins: lockout with back-off per account and per source, and credential stuffing.

django-axes counts the failures and refuses a locked account or source before the password is
even checked (``AxesStandaloneBackend``); this module gives it Caspix's policy:

* an account, or a source address, is locked after ``AXES_FAILURE_LIMIT`` consecutive failures,
  for one minute, doubling with every further failure up to an hour (``cool_off``);
* a locked attempt answers exactly as a wrong password does, but with 429 and a "try again
  later" message that names no account, so the page never tells whether an account exists;
* many accounts failing from one source within a window is credential stuffing: it is recorded
  in the ledger once per window and mailed to the security recipients.

Every lockout is a ledger event (the ledger goes to the SIEM); no log line carries the account
name or the address.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.alerts import security_alert_recipients
from accounts.models import StuffingAlarm, User
from audit.events import EventType
from audit.ledger import Actor, record
from caspix.requestcontext import client_address

logger = logging.getLogger(__name__)

MAX_COOL_OFF = timedelta(hours=1)


def cool_off(request: HttpRequest | None) -> timedelta:
    """One minute at the limit, doubling with each failure beyond it, at most an hour."""
    failures = getattr(request, "axes_failures_since_start", None) or settings.AXES_FAILURE_LIMIT
    beyond = max(0, int(failures) - int(settings.AXES_FAILURE_LIMIT))
    wait: timedelta = min(timedelta(minutes=1) * (2 ** min(beyond, 10)), MAX_COOL_OFF)
    return wait


def client_ip(request: HttpRequest) -> str | None:
    """The source as the rest of Caspix sees it (the deployment's proxy, never a forged header)."""
    return client_address(request)


def locked_out(
    request: HttpRequest, credentials: dict[str, Any] | None = None, *args: Any, **kwargs: Any
) -> HttpResponse:
    """The answer to a locked account or source: the sign-in page, 429, a message naming nothing."""
    from accounts.signin import LoginView

    username = str((credentials or {}).get("username") or request.POST.get("username", ""))[:150]
    user = User.objects.filter(username=username).first() if username else None
    with transaction.atomic(durable=True):
        record(
            EventType.SIGN_IN_LOCKED_OUT,
            actor=Actor(user.pk, user.username, "") if user is not None else Actor(None, "unknown account", ""),
            object_type="user" if user is not None else "",
            object_id=user.pk if user is not None else "",
            reason="too many failures",
        )
    logger.warning("sign-in refused: an account or a source is locked after repeated failures")
    form = AuthenticationForm(request)
    context = {"form": form, "locked_out": True, "next": request.POST.get("next", "")}
    return render(request, LoginView.template_name, context, status=429)


def note_failure(request: HttpRequest) -> None:
    """After a failed sign-in: raise the credential-stuffing alarm when one source has failed on
    many accounts within the window (once per source and window)."""
    source = client_ip(request)
    if source is None:
        return
    window = timedelta(minutes=settings.CASPIX_STUFFING_WINDOW_MINUTES)
    accounts = (
        AccessAttempt.objects.filter(ip_address=source, attempt_time__gte=timezone.now() - window)
        .values("username")
        .distinct()
        .count()
    )
    if accounts < settings.CASPIX_STUFFING_ACCOUNTS:
        return
    number = int(timezone.now().timestamp() // window.total_seconds())
    try:
        with transaction.atomic(durable=True):
            StuffingAlarm.objects.create(source=source, window=number)
            _raise_alarm(source, accounts)
    except IntegrityError:
        return  # raised already for this source in this window, by this process or another
    logger.warning("credential stuffing suspected: many accounts failed from one source")


def _raise_alarm(source: str, accounts: int) -> None:
    record(
        EventType.CREDENTIAL_STUFFING_SUSPECTED,
        actor=Actor.system("sign-in protection"),
        object_type="source",
        object_id=source,
        reason=f"{accounts} accounts failed within {settings.CASPIX_STUFFING_WINDOW_MINUTES} minutes",
    )
    transaction.on_commit(lambda: _mail_alert(accounts))


def _mail_alert(accounts: int) -> None:
    recipients = security_alert_recipients()
    if not recipients:
        return
    send_mail(
        subject="[Caspix] Credential stuffing suspected",
        message=(
            f"Sign-in failed on {accounts} accounts from one source within "
            f"{settings.CASPIX_STUFFING_WINDOW_MINUTES} minutes. The source is locked out while it "
            "keeps failing. The audit ledger (CREDENTIAL_STUFFING_SUSPECTED) names it."
        ),
        from_email=None,
        recipient_list=recipients,
    )
