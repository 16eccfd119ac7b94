"""The reporting app's work in Celery workers: writing and checking reports, their deadlines."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def generate_report(file_id: str) -> None:
    """Write a queued report file and put it through the gate (idempotent: a file no longer
    queued is left alone, so a redelivered task does nothing twice)."""
    from reporting.reports import generate

    generate(file_id)


@shared_task(ignore_result=True)
def escalate_report_deadlines() -> None:
    from reporting.reports import escalate_deadlines

    escalate_deadlines()
