"""The intake API: ``POST /api/v1/alerts``, ``POST /api/v1/alerts/bulk``, ``GET /api/v1/alerts/<id>``.

Each view is signed (``SignedRequest``), scoped (``HasScope``: ``required_scope``) and rate
limited per client; errors are RFC 9457 problems (``caspix.problems``). A POST needs an
``Idempotency-Key``. Thin: parse → check → ``cases.intake.ingest`` → answer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases.api import idempotency, schemas
from cases.api.auth import ClientRate, HasScope, SignedRequest, raw_path
from cases.api.schemas import AlertBatch, AlertSchema, kept_payload
from cases.intake import Incoming, NoRouteError, Outcome, ingest
from cases.models import Alert, ApiClient, ApiKey, Scope
from caspix.access import ACCESS_ATTRIBUTE
from caspix.problems import Problem
from caspix.strictjson import StrictJSONParser


class IntakeView(APIView):
    authentication_classes = [SignedRequest]
    permission_classes = [HasScope]
    throttle_classes = [ClientRate]
    parser_classes = [StrictJSONParser]
    required_scope: Scope = Scope.ALERTS_WRITE

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > settings.INTAKE["MAX_BODY_BYTES"]:
            raise Problem(
                413, "too-large", "The request body is too large", f"at most {settings.INTAKE['MAX_BODY_BYTES']} bytes"
            )
        super().initial(request, *args, **kwargs)


setattr(IntakeView, ACCESS_ATTRIBUTE, ("gated", "a request signed by an API client holding the view's scope"))


def signer(request: Request) -> ApiClient:
    """The client whose key signed the request (``SignedRequest`` authenticated it)."""
    key = request.auth
    if not isinstance(key, ApiKey):
        raise Problem(401, "unauthenticated", "The request is not signed as required", "no signature")
    return key.client


def answer_of(outcome: Outcome) -> dict[str, Any]:
    alert = outcome.alert
    return {
        "id": str(alert.pk),
        "external_id": alert.external_id,
        "case": alert.case.reference,
        "result": "created" if outcome.created else "duplicate",
    }


def incoming_of(attrs: dict[str, Any]) -> Incoming:
    return Incoming(
        external_id=attrs["external_id"],
        scenario=attrs["scenario"],
        occurred_at=attrs["occurred_at"],
        subject=attrs["subject"],
        score=attrs.get("score"),
        accounts=attrs.get("accounts", []),
        transactions=attrs.get("transactions", []),
        payload=kept_payload(attrs),
    )


def _by_field(faults: list[schemas.Fault]) -> dict[str, list[str]]:
    """The faults as DRF's error detail, keyed by JSON path (``caspix.problems`` lists them)."""
    detail: dict[str, list[str]] = {}
    for fault in faults:
        detail.setdefault(fault["field"], []).append(fault["message"])
    return detail


def _ingest(client: ApiClient, alerts: list[Incoming], claim: idempotency.Claim, answer: Any) -> list[Outcome]:
    try:
        return ingest(client, alerts, finish=lambda outcomes: claim.store(*answer(outcomes)))
    except NoRouteError as error:
        raise Problem(503, "not-routed", "Intake has no routing rule for this alert", str(error)) from None


ALERT_ANSWER = inline_serializer(
    "AlertAccepted",
    {
        "id": serializers.UUIDField(),
        "external_id": serializers.CharField(),
        "case": serializers.CharField(),
        "result": serializers.ChoiceField(["created", "duplicate"]),
    },
)
IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER,
    {"type": "string", "pattern": "^[!-~]{1,255}$"},
    OpenApiParameter.HEADER,
    required=True,
    description="unique per client and request: a retry under the same key gets the first answer",
)
PROBLEM = inline_serializer(
    "Problem",
    {
        "type": serializers.CharField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "instance": serializers.CharField(required=False),
        "errors": serializers.ListField(
            child=inline_serializer(
                "FieldError", {"field": serializers.CharField(), "message": serializers.CharField()}
            ),
            required=False,
        ),
    },
)
_PROBLEM_STATUSES = {
    400: "the body or a header cannot be read",
    401: "the signature is missing or refused",
    403: "the client lacks the scope, or calls from outside its networks",
    404: "no such alert among the client's own",
    409: "the same Idempotency-Key is being served",
    413: "the body or the batch is over its limit",
    422: "the request breaks the schema, or reuses a key for another request",
    429: "over the client's rate limit",
    503: "no routing rule takes the alert: nothing was kept",
}


def problems(*statuses: int) -> dict[Any, OpenApiResponse]:
    """The RFC 9457 answers an operation may give, as the OpenAPI description names them."""
    return {
        (status, "application/problem+json"): OpenApiResponse(PROBLEM, description=_PROBLEM_STATUSES[status])
        for status in statuses
    }


WRITE_PROBLEMS = problems(400, 401, 403, 409, 413, 422, 429, 503)
EXAMPLE_ALERT = {
    "external_id": "TMS-2026-000123",
    "scenario": "card-velocity",
    "score": 87.5,
    "occurred_at": "2026-11-24T10:15:00Z",
    "subject": {"customer_id": "CUST-0042", "name": "Erika Mustermann", "country": "DE"},
    "accounts": [{"number": "DE89 3704 0044 0532 0130 00", "currency": "EUR"}],
    "transactions": [
        {
            "occurred_at": "2026-11-24T10:14:02+01:00",
            "amount": "1250.00",
            "currency": "EUR",
            "direction": "debit",
            "channel": "card_not_present",
            "account": "DE89370400440532013000",
            "card_number": "4111 1111 1111 1111",
        }
    ],
}


class AlertCreate(IntakeView):
    @extend_schema(
        request=AlertSchema,
        parameters=[IDEMPOTENCY_KEY],
        examples=[OpenApiExample("a card alert", value=EXAMPLE_ALERT, request_only=True)],
        responses={201: ALERT_ANSWER, 200: ALERT_ANSWER, **WRITE_PROBLEMS},
    )
    def post(self, request: Request) -> Response:
        client = signer(request)
        django_request: HttpRequest = request._request
        key = idempotency.key_of(request.headers)
        print_ = idempotency.fingerprint("POST", raw_path(django_request), django_request.body)
        with idempotency.claim(client, key, print_) as claim:
            if claim.replay is not None:
                return Response(
                    claim.replay.response, status=claim.replay.status, headers={"Idempotent-Replayed": "true"}
                )
            try:
                attrs = schemas.validate(request.data)
            except schemas.SchemaError as error:
                raise serializers.ValidationError(_by_field(error.faults)) from None

            def answer(outcomes: list[Outcome]) -> tuple[int, dict[str, Any]]:
                return (201 if outcomes[0].created else 200), answer_of(outcomes[0])

            outcomes = _ingest(client, [incoming_of(attrs)], claim, answer)
        status, body = answer(outcomes)
        return Response(body, status=status)


class AlertBulk(IntakeView):
    @extend_schema(
        request=AlertBatch,
        parameters=[IDEMPOTENCY_KEY],
        examples=[
            OpenApiExample(
                "two card alerts",
                value=[EXAMPLE_ALERT, {**EXAMPLE_ALERT, "external_id": "TMS-2026-000124"}],
                request_only=True,
            )
        ],
        responses={
            200: inline_serializer(
                "BulkResults",
                {
                    "accepted": serializers.IntegerField(),
                    "rejected": serializers.IntegerField(),
                    "results": serializers.ListField(child=serializers.DictField()),
                },
            ),
            **WRITE_PROBLEMS,
        },
    )
    def post(self, request: Request) -> Response:
        client = signer(request)
        django_request: HttpRequest = request._request
        key = idempotency.key_of(request.headers)
        print_ = idempotency.fingerprint("POST", raw_path(django_request), django_request.body)
        items: Any = request.data
        if not isinstance(items, list) or not items:
            raise Problem(
                422,
                "invalid-request",
                "The request does not follow the schema",
                "the body is a non-empty array of alerts",
            )
        if len(items) > settings.INTAKE["BULK_MAX"]:
            raise Problem(
                413, "too-many-alerts", "Too many alerts in one request", f"at most {settings.INTAKE['BULK_MAX']}"
            )
        with idempotency.claim(client, key, print_) as claim:
            if claim.replay is not None:
                return Response(
                    claim.replay.response, status=claim.replay.status, headers={"Idempotent-Replayed": "true"}
                )
            results: list[dict[str, Any] | None] = [None] * len(items)
            valid: list[tuple[int, Incoming]] = []
            for index, item in enumerate(items):
                try:
                    valid.append((index, incoming_of(schemas.validate(item))))
                except schemas.SchemaError as error:
                    results[index] = {"index": index, "status": 422, "errors": error.faults}

            def answer(outcomes: list[Outcome]) -> tuple[int, dict[str, Any]]:
                for (index, _), outcome in zip(valid, outcomes, strict=True):
                    results[index] = {"index": index, "status": 201 if outcome.created else 200, **answer_of(outcome)}
                accepted = sum(1 for result in results if result and result["status"] != 422)
                return 200, {"accepted": accepted, "rejected": len(items) - accepted, "results": results}

            # Nothing valid: nothing is kept, and the answer, all refusals, is not stored either.
            outcomes = _ingest(client, [incoming for _, incoming in valid], claim, answer) if valid else []
        status, body = answer(outcomes)
        return Response(body, status=status)


class AlertDetail(IntakeView):
    required_scope = Scope.ALERTS_READ

    @extend_schema(
        responses={
            200: inline_serializer(
                "AlertStatus",
                {
                    "id": serializers.UUIDField(),
                    "external_id": serializers.CharField(),
                    "scenario": serializers.CharField(),
                    "received_at": serializers.DateTimeField(),
                    "case": serializers.CharField(),
                    "case_status": serializers.CharField(),
                },
            ),
            **problems(400, 401, 403, 404, 413, 429),
        }
    )
    def get(self, request: Request, pk: str) -> Response:
        alert = get_object_or_404(Alert.objects.restrict(signer(request), "view").select_related("case"), pk=pk)
        return Response(
            {
                "id": str(alert.pk),
                "external_id": alert.external_id,
                "scenario": alert.scenario,
                "received_at": alert.received_at.isoformat(),
                "case": alert.case.reference,
                "case_status": alert.case.status,
            }
        )
