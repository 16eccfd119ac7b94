"""Fixtures of the account suites."""

from __future__ import annotations

import pytest

from tests.totp import pin_clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """The TOTP verifier's clock, pinned mid-step (see :func:`tests.totp.pin_clock`)."""
    return pin_clock(monkeypatch)
