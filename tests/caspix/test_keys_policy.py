"""The Transit policies in deploy/openbao/ against a real OpenBao: enough, and no more."""

from __future__ import annotations

import uuid
from typing import Any

import hvac
import pytest

from caspix.crypto.keys import KeyName, KeyServiceError, TransitService, verify_signature
from tests.openbao import OpenBao


def service(openbao: OpenBao, prefix: str, *policies: str) -> TransitService:
    return TransitService(openbao.config(token=openbao.token_under(prefix, *policies), prefix=prefix))


@pytest.fixture
def prefix() -> str:
    return f"p{uuid.uuid4().hex[:8]}"


@pytest.fixture
def operator(openbao: OpenBao, prefix: str) -> TransitService:
    operator = service(openbao, prefix, "runtime", "operator")  # the operator holds both
    operator.ensure_keys()
    return operator


@pytest.fixture
def runtime(openbao: OpenBao, prefix: str, operator: TransitService) -> TransitService:
    return service(openbao, prefix, "runtime")


def test_it_lets_the_runtime_token_do_its_work(runtime: TransitService) -> None:
    runtime.health()
    for name in (KeyName.DATA, KeyName.INDEX, KeyName.BACKUP):
        data_key = runtime.generate_data_key(name)
        assert runtime.unwrap(name, data_key.wrapped) == data_key.plaintext
        assert runtime.info(name).latest_version == 1
    signature = runtime.sign(KeyName.LEDGER, b"checkpoint")
    verify_signature(runtime.public_keys(KeyName.LEDGER), b"checkpoint", signature)


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.rotate(KeyName.DATA),
        lambda s: s.set_min_decryption_version(KeyName.DATA, 1),
        lambda s: s.rewrap(KeyName.DATA, s.generate_data_key(KeyName.DATA).wrapped),
        lambda s: s.ensure_keys(),
    ],
    ids=["rotate", "retire", "rewrap", "create"],
)
def test_it_refuses_key_management_to_the_runtime_token(runtime: TransitService, operation: Any) -> None:
    with pytest.raises(KeyServiceError, match="refused"):
        operation(runtime)


def test_it_lets_the_operator_rotate_rewrap_and_retire(operator: TransitService) -> None:
    old = operator.generate_data_key(KeyName.DATA)
    assert operator.rotate(KeyName.DATA).latest_version == 2
    rewrapped = operator.rewrap(KeyName.DATA, old.wrapped)
    assert rewrapped.startswith("vault:v2:")
    assert operator.set_min_decryption_version(KeyName.DATA, 2).min_decryption_version == 2
    assert operator.unwrap(KeyName.DATA, rewrapped) == old.plaintext


def test_it_refuses_export_and_deletion_to_the_operator(
    openbao: OpenBao, prefix: str, operator: TransitService
) -> None:
    transit: Any = operator.client.secrets.transit  # hvac's methods are untyped
    with pytest.raises(hvac.exceptions.Forbidden):
        transit.update_key_configuration(name=f"{prefix}-data", deletion_allowed=True, mount_point="transit")
    with pytest.raises(hvac.exceptions.Forbidden):
        transit.update_key_configuration(name=f"{prefix}-data", exportable=True, mount_point="transit")
    with pytest.raises((hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest)):
        transit.delete_key(name=f"{prefix}-data", mount_point="transit")
