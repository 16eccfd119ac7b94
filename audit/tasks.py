"""The ledger's background work: sequencing and sealing."""

from __future__ import annotations

from celery import shared_task

from audit import ledger
from audit.forward import ForwardError, forward


@shared_task(ignore_result=True)
def integrate_ledger(seal_when_idle: bool = True) -> int:
    """Sequence every pending event and sign a checkpoint when due (idempotent: a no-op when
    nothing is pending, and only one integrator works at a time). The beat's run checks the
    checkpoint in any case; a run asked for by a commit only when it sequenced something."""
    return ledger.integrate_all(seal_when_idle=seal_when_idle)


@shared_task(ignore_result=True)
def verify_ledger(scope: str = "incremental") -> bool:
    """Verify the ledger (incrementally every few minutes, fully once a day); True when intact."""
    from audit import integrity

    return bool(integrity.run(scope).intact)


@shared_task(ignore_result=True)
def seal_segments() -> int:
    """Write every checkpoint not yet sealed to each segment store configured; returns how many
    segment writes (idempotent: each store has its cursor, and a segment is never written twice)."""
    from audit import segments

    return segments.seal_segments()


@shared_task(ignore_result=True, autoretry_for=(ForwardError,), retry_backoff=True, retry_jitter=True, max_retries=5)
def forward_ledger() -> int:
    """Forward the ledger's new events to the SIEM; returns how many were sent (idempotent: the
    cursor moves only after delivery, and only one forwarder works at a time)."""
    return forward()
