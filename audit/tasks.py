"""The ledger's background work: sequencing and sealing."""

from __future__ import annotations

from celery import shared_task

from audit import ledger


@shared_task(ignore_result=True)
def integrate_ledger() -> int:
    """Sequence every pending event and sign a checkpoint when due (idempotent: a no-op when
    nothing is pending, and only one integrator works at a time)."""
    return ledger.integrate_all()


@shared_task(ignore_result=True)
def verify_ledger(scope: str = "incremental") -> bool:
    """Verify the ledger (incrementally every few minutes, fully once a day); True when intact."""
    from audit import integrity

    return bool(integrity.run(scope).intact)
