"""TOTP in tests: the verifier's clock pinned mid-step, and the code an authenticator app shows."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django_otp.oath import TOTP

import accounts.models
from accounts.models import TOTPDevice

STEP = 30


def pin_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """The TOTP verifier's clock, pinned mid-step: no test straddles a 30 s boundary by chance."""
    now = (time.time() // STEP) * STEP + STEP / 2
    monkeypatch.setattr(accounts.models, "time", SimpleNamespace(time=lambda: now))
    return now


def code_at(device: TOTPDevice, at: float) -> str:
    """What the user's authenticator app shows at ``at`` (its own clock: no server drift)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    totp.time = at
    return f"{totp.token():0{device.digits}d}"
