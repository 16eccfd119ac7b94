"""The reporting app's work in Celery workers: reports and their deadlines, evidence packs and exports."""

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


@shared_task(ignore_result=True)
def build_export(export_id: str) -> None:
    """Build a queued evidence pack or export (idempotent: one that is ready, failed, or being
    built by a live worker is left alone, so a redelivered task does nothing twice)."""
    from reporting.exports import build_export as build

    build(export_id)


@shared_task(ignore_result=True)
def resume_exports() -> None:
    from reporting.exports import resume_exports as resume

    resume()


@shared_task(ignore_result=True)
def expire_exports() -> None:
    from reporting.exports import expire_exports as expire

    expire()
