"""TOTP seeds are encrypted at rest and tokens verify once (ASVS 13.3.1, 6.5.1, 6.5.5)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django_otp.oath import totp

from accounts.models import TOTPDevice, User
from caspix.crypto.envelope import DecryptionError

pytestmark = pytest.mark.django_db


def current_token(device: TOTPDevice) -> int:
    return int(totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=0))


def stored_seed(device: TOTPDevice) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM accounts_totpdevice WHERE id = %s", [device.pk])
        return bytes(cursor.fetchone()[0])


def test_it_stores_the_seed_encrypted(analyst: User) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="phone")
    seed = TOTPDevice.objects.get(pk=device.pk).key
    assert len(seed) == 40
    raw = stored_seed(device)
    assert seed.encode() not in raw
    assert bytes.fromhex(seed) not in raw
    assert "redacted" in repr(TOTPDevice.objects.get(pk=device.pk).key)


def test_it_accepts_the_current_token_once(analyst: User) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="phone")
    token = current_token(device)
    assert TOTPDevice.objects.get(pk=device.pk).verify_token(token)
    assert not TOTPDevice.objects.get(pk=device.pk).verify_token(token)  # a replay in the same step


def test_it_refuses_a_wrong_token_and_throttles(analyst: User) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="phone")
    wrong = (current_token(device) + 1) % 10**6
    assert not device.verify_token(wrong)
    again = TOTPDevice.objects.get(pk=device.pk)
    assert again.throttling_failure_count == 1
    assert not again.verify_token(current_token(again))  # throttled, even with the right token


def test_it_refuses_what_is_not_a_number(analyst: User) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="phone")
    assert not device.verify_token("not a number")
    assert TOTPDevice.objects.get(pk=device.pk).throttling_failure_count == 1


def test_it_refuses_a_seed_copied_from_another_device(analyst: User, lead: User) -> None:
    mine = TOTPDevice.objects.create(user=analyst, name="phone")
    theirs = TOTPDevice.objects.create(user=lead, name="phone")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_totpdevice SET key = %s WHERE id = %s", [stored_seed(theirs), mine.pk])
    with pytest.raises(DecryptionError):
        TOTPDevice.objects.get(pk=mine.pk).verify_token(123456)


def test_it_validates_the_seed(analyst: User) -> None:
    with pytest.raises(ValidationError, match="hex-encoded"):
        TOTPDevice(user=analyst, name="phone", key="not hex").full_clean()


def test_it_steps_every_30_seconds_at_most(analyst: User) -> None:
    """ASVS 6.5.5: the database refuses a longer step."""
    assert TOTPDevice.objects.create(user=analyst, name="phone").step == 30
    with pytest.raises(IntegrityError), transaction.atomic():
        TOTPDevice.objects.create(user=analyst, name="slow", step=60)
