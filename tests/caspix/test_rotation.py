"""Key rotation without downtime: rotate_key, rewrap (--retire), reindex (--new-key, --retire), ensure_keys."""

from __future__ import annotations

import datetime
import io
import struct
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from caspix.crypto import blind, envelope, keys, rotation
from caspix.crypto.cards import tokenise
from caspix.crypto.envelope import cache, create_data_key
from caspix.crypto.keys import KeyName, KeyServiceError
from caspix.crypto.models import DataKeyRecord, Purpose
from tests.crypto_app.models import Person
from tests.openbao import OpenBao, transit_backend

pytestmark = pytest.mark.django_db

NATIONAL_IDS = ["AB123456C", "CD234567E", "EF345678G", "GH456789J"]


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """reindex waits ACTIVE_KEY_TTL for other processes; this test process is the only one."""
    monkeypatch.setattr(rotation, "wait", lambda seconds: None)


def run(*args: str) -> str:
    stdout = io.StringIO()
    call_command(*args, stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def reload(person: Person) -> Person:
    return Person.objects.get(pk=person.pk)


def envelope_key(person: Person, column: str = "national_id") -> DataKeyRecord:
    """The data key named in the header of a stored envelope."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM crypto_tests_person WHERE id = %s", [person.pk])  # noqa: S608
        _, key_id = struct.unpack_from(">BI", bytes(cursor.fetchone()[0]))
    return DataKeyRecord.objects.get(pk=key_id)


def stored_index(person: Person) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT national_id_index FROM crypto_tests_person WHERE id = %s", [person.pk])
        value: str = cursor.fetchone()[0]
        return value


def index_key_of(person: Person) -> int:
    return int(stored_index(person).split(":")[0])


def people(count: int = len(NATIONAL_IDS)) -> list[Person]:
    return [Person.objects.create(name=f"p{n}", national_id=NATIONAL_IDS[n]) for n in range(count)]


def found(national_id: str) -> list[str]:
    return list(Person.objects.filter(national_id_index__matches=national_id).values_list("name", flat=True))


def all_found(rows: list[Person]) -> bool:
    return all(found(reload(person).national_id.lower()) == [person.name] for person in rows)


def written_under_data_keys(count: int) -> list[Person]:
    """One row under each of ``count`` data keys wrapped by the current version."""
    rows = []
    for n in range(count):
        if n:
            create_data_key(Purpose.DATA)
        rows.append(
            Person.objects.create(name=f"p{n}", national_id=NATIONAL_IDS[n], born=datetime.date(1980, 1, n + 1))
        )
    return rows


def assert_decrypts(rows: list[Person]) -> None:
    cache.clear()  # unwrap every data key again, from what the database now holds
    for n, person in enumerate(rows):
        again = reload(person)
        assert again.national_id == NATIONAL_IDS[n]
        assert again.born == datetime.date(1980, 1, n + 1)


class FailingAfter:
    """Wraps a callable so that it raises KeyServiceError once it has been called ``calls`` times."""

    def __init__(self, inner: Any, calls: int) -> None:
        self.inner = inner
        self.calls = calls
        self.failing = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing and self.calls == 0:
            raise KeyServiceError("the key service cannot be reached (ConnectionError)")
        self.calls -= 1
        return self.inner(*args, **kwargs)


# --- rotate_key --------------------------------------------------------------------------------


def test_it_sends_new_writes_to_the_new_version_at_once(keyring: keys.LocalKeyring) -> None:
    before = written_under_data_keys(1)
    out = run("rotate_key", "data")
    assert "data is now at v2" in out
    assert "next: manage.py rewrap, then manage.py rewrap --retire" in out
    after = Person.objects.create(name="after", national_id="XY987654Z")
    assert envelope_key(after).kek_version == 2
    assert envelope_key(after).wrapped.startswith("local:v2:")
    assert envelope_key(before[0]).kek_version == 1
    assert keyring.info(KeyName.DATA) == keys.KeyInfo(KeyName.DATA, 2, 1)
    assert_decrypts(before)
    assert reload(after).national_id == "XY987654Z"


@pytest.mark.parametrize("name", [KeyName.LEDGER, KeyName.BACKUP])
def test_it_rotates_ledger_and_backup_keys_without_a_rewrap_hint(keyring: keys.LocalKeyring, name: KeyName) -> None:
    written_under_data_keys(1)
    data_keys = DataKeyRecord.objects.count()
    out = run("rotate_key", name)
    assert f"{name} is now at v2" in out
    assert "rewrap" not in out
    assert keyring.info(name) == keys.KeyInfo(name, 2, 1)
    assert keyring.info(KeyName.DATA).latest_version == 1
    assert DataKeyRecord.objects.count() == data_keys


def test_it_signs_with_the_new_ledger_version_and_still_verifies_the_old(keyring: keys.LocalKeyring) -> None:
    old = keyring.sign(KeyName.LEDGER, b"checkpoint 1")
    run("rotate_key", "ledger")
    new = keyring.sign(KeyName.LEDGER, b"checkpoint 2")
    assert (old.version, new.version) == (1, 2)
    public = keyring.public_keys(KeyName.LEDGER)
    assert sorted(public) == [1, 2]
    keys.verify_signature(public, b"checkpoint 1", old)
    keys.verify_signature(public, b"checkpoint 2", new)


def test_it_refuses_an_unknown_key_name(keyring: keys.LocalKeyring) -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        run("rotate_key", "card")


# --- rewrap ------------------------------------------------------------------------------------


def test_it_rewraps_every_live_data_key_under_the_latest_version(keyring: keys.LocalKeyring) -> None:
    rows = written_under_data_keys(3)
    old = {r.pk: (r.wrapped, keyring.unwrap(KeyName.DATA, r.wrapped)) for r in DataKeyRecord.objects.of(Purpose.DATA)}
    assert len(old) == 3
    run("rotate_key", "data")
    out = run("rewrap")
    assert "data: 3 data keys re-wrapped under v2" in out
    assert "index: 0 data keys re-wrapped under v1" in out
    for record in DataKeyRecord.objects.of(Purpose.DATA):
        assert record.kek_version == 2
        assert record.wrapped.startswith("local:v2:")
        if record.pk in old:
            wrapped, plaintext = old[record.pk]
            assert record.wrapped != wrapped
            assert keyring.unwrap(KeyName.DATA, record.wrapped) == plaintext  # the data key itself is the same
            assert record.rewrapped_at is not None
    assert_decrypts(rows)


def test_it_rewraps_nothing_on_a_second_run(keyring: keys.LocalKeyring) -> None:
    written_under_data_keys(2)
    run("rotate_key", "data")
    run("rewrap")
    wrapped = list(DataKeyRecord.objects.values_list("wrapped", flat=True))
    out = run("rewrap")
    assert "data: 0 data keys re-wrapped under v2" in out
    assert "index: 0 data keys re-wrapped under v1" in out
    assert list(DataKeyRecord.objects.values_list("wrapped", flat=True)) == wrapped


def test_it_resumes_an_interrupted_rewrap(keyring: keys.LocalKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = written_under_data_keys(4)
    run("rotate_key", "data")
    flaky = FailingAfter(keyring.rewrap, calls=2)
    monkeypatch.setattr(keyring, "rewrap", flaky)
    with pytest.raises(CommandError, match="rewrap stopped, run it again to resume"):
        run("rewrap", "--key", "data", "--batch-size", "1")
    versions = sorted(DataKeyRecord.objects.of(Purpose.DATA).values_list("kek_version", flat=True))
    assert versions == [1, 1, 2, 2, 2]  # two moved, in their own transactions; the new key was born at v2
    assert_decrypts(rows)

    flaky.failing = False
    out = run("rewrap", "--key", "data", "--batch-size", "1")
    assert "data: 2 data keys re-wrapped under v2" in out
    assert "index" not in out
    assert set(DataKeyRecord.objects.of(Purpose.DATA).values_list("kek_version", flat=True)) == {2}
    assert_decrypts(rows)


def test_it_retires_the_versions_no_data_key_uses(keyring: keys.LocalKeyring) -> None:
    rows = written_under_data_keys(2)
    old_wrapped = envelope_key(rows[0]).wrapped
    run("rotate_key", "data")
    out = run("rewrap", "--retire")
    assert "data: decrypts from v2 (was v1; latest v2)" in out
    assert "index: decrypts from v1 (was v1; latest v1)" in out
    assert keyring.info(KeyName.DATA) == keys.KeyInfo(KeyName.DATA, 2, 2)
    assert keyring.info(KeyName.INDEX) == keys.KeyInfo(KeyName.INDEX, 1, 1)
    assert_decrypts(rows)
    with pytest.raises(keys.IntegrityError):
        keyring.unwrap(KeyName.DATA, old_wrapped)
    with pytest.raises(keys.IntegrityError):  # nor in another process: the material is gone
        keys.LocalKeyring(keyring.path).unwrap(KeyName.DATA, old_wrapped)


def test_it_retires_only_up_to_the_oldest_version_in_use(keyring: keys.LocalKeyring) -> None:
    rows = written_under_data_keys(1)
    run("rotate_key", "data")
    run("rewrap")
    run("rotate_key", "data")  # v3, with nothing re-wrapped to it yet
    retirement = rotation.retire(KeyName.DATA)
    assert (retirement.before, retirement.after, retirement.latest) == (1, 2, 3)
    assert keyring.info(KeyName.DATA) == keys.KeyInfo(KeyName.DATA, 3, 2)
    assert_decrypts(rows)


def test_it_rewraps_index_and_card_keys_and_keeps_tokens_and_searches(keyring: keys.LocalKeyring) -> None:
    rows = people(2)
    card = tokenise("4111 1111 1111 1111")
    out = run("rotate_key", "index")
    assert "index is now at v2" in out
    assert "next: manage.py rewrap" in out
    assert not DataKeyRecord.objects.filter(kek_version=2).exists()  # no new index key: only new wrapping
    out = run("rewrap", "--key", "index", "--retire")
    assert "index: 2 data keys re-wrapped under v2" in out  # the index key and the card key
    assert "index: decrypts from v2 (was v1; latest v2)" in out
    assert set(DataKeyRecord.objects.of(Purpose.CARD).values_list("kek_version", flat=True)) == {2}
    cache.clear()
    assert tokenise("4111-1111-1111-1111") == card
    assert all_found(rows)


def test_it_refuses_a_batch_size_below_one_for_rewrap(keyring: keys.LocalKeyring) -> None:
    for size in ("0", "-1"):
        with pytest.raises(CommandError, match="--batch-size must be at least 1"):
            run("rewrap", "--batch-size", size)


# --- reindex -----------------------------------------------------------------------------------


def test_it_moves_every_blind_index_to_a_new_index_key(keyring: keys.LocalKeyring) -> None:
    rows = people()
    blank = Person.objects.create(name="blank")
    old_key = cache.active(Purpose.INDEX)
    before = {person.pk: stored_index(person) for person in rows}
    assert all_found(rows)

    out = run("reindex", "--new-key")
    new_key = cache.active(Purpose.INDEX)
    assert new_key != old_key
    assert f"new index key {new_key}" in out
    assert f"{len(rows)} rows re-indexed under index key {new_key}" in out
    for person in rows:
        assert stored_index(person).startswith(f"{new_key}:")
        assert stored_index(person) != before[person.pk]
    assert reload(blank).national_id_index is None
    assert all_found(rows)
    assert "0 rows re-indexed" in run("reindex")


def test_it_keeps_search_working_through_an_interrupted_reindex(
    keyring: keys.LocalKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = people()
    old_key = cache.active(Purpose.INDEX)
    flaky = FailingAfter(blind.digest, calls=2)
    monkeypatch.setattr(blind, "digest", flaky)
    with pytest.raises(CommandError, match="reindex stopped, run it again to resume"):
        run("reindex", "--new-key", "--batch-size", "1")
    new_key = DataKeyRecord.objects.live().of(Purpose.INDEX).latest("id").pk
    assert Counter(index_key_of(person) for person in rows) == {old_key: 2, new_key: 2}
    assert all_found(rows)  # during: each search covers both live index keys

    flaky.failing = False
    assert f"2 rows re-indexed under index key {new_key}" in run("reindex", "--batch-size", "1")
    assert {index_key_of(person) for person in rows} == {new_key}
    assert all_found(rows)


def test_it_refuses_to_retire_an_index_key_rows_still_use(
    keyring: keys.LocalKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = people(3)
    rotation.new_index_key()
    monkeypatch.setattr(rotation, "ACTIVE_KEY_TTL", 0)
    with pytest.raises(RuntimeError, match="3 rows still have blind indexes under an older key: run reindex first"):
        rotation.retire_index_keys()
    assert DataKeyRecord.objects.live().of(Purpose.INDEX).count() == 2
    assert all_found(rows)
    assert "1 older index keys retired" in run("reindex", "--retire")


def test_it_refuses_to_retire_while_the_new_index_key_is_young(keyring: keys.LocalKeyring) -> None:
    rows = people(3)
    old_key = cache.active(Purpose.INDEX)
    with pytest.raises(CommandError, match="younger than 10 s: run reindex again, then retire"):
        run("reindex", "--new-key", "--retire")
    new_key = cache.active(Purpose.INDEX)
    assert {index_key_of(person) for person in rows} == {new_key}  # the re-index itself was done
    assert DataKeyRecord.objects.get(pk=old_key).retired_at is None

    DataKeyRecord.objects.filter(pk=new_key).update(
        created_at=timezone.now() - datetime.timedelta(seconds=2 * envelope.ACTIVE_KEY_TTL + 1)
    )
    out = run("reindex", "--retire")
    assert "0 rows re-indexed" in out
    assert "1 older index keys retired" in out
    assert DataKeyRecord.objects.get(pk=old_key).retired_at is not None
    assert DataKeyRecord.objects.get(pk=new_key).retired_at is None
    assert cache.live(Purpose.INDEX) == [new_key]
    assert all_found(rows)
    assert blind.terms(blind.Kind.NATIONAL_ID, NATIONAL_IDS[0]) == [
        blind.digest(blind.Kind.NATIONAL_ID, NATIONAL_IDS[0])
    ]


def test_it_refuses_a_batch_size_below_one_for_reindex(keyring: keys.LocalKeyring) -> None:
    people(1)
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        run("reindex", "--new-key", "--batch-size", "0")
    assert DataKeyRecord.objects.of(Purpose.INDEX).count() == 1  # refused before making a key


def test_it_moves_no_row_before_every_process_searches_under_the_new_key(
    keyring: keys.LocalKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other processes list the live index keys every ACTIVE_KEY_TTL: reindex waits that long."""
    rows = people(1)
    events: list[str] = []
    monkeypatch.setattr(rotation, "ACTIVE_KEY_TTL", 5.0)
    monkeypatch.setattr(rotation, "wait", lambda seconds: events.append(f"slept {seconds:.0f}"))
    digest = blind.digest

    def moving(*args: Any) -> str:
        events.append("moved a row")
        return digest(*args)

    monkeypatch.setattr(blind, "digest", moving)
    run("reindex", "--new-key")
    assert events[0] == "slept 5"
    assert "moved a row" in events[1:]
    assert found(NATIONAL_IDS[0]) == [rows[0].name]


# --- ensure_keys -------------------------------------------------------------------------------


def test_it_ensures_keys_idempotently(keyring: keys.LocalKeyring) -> None:
    first = run("ensure_keys")
    for name in KeyName:
        assert f"{name}: latest v1, decrypts from v1" in first
    assert "keys ready on the local backend" in first
    keyring_file = keyring.path.read_bytes()
    data_keys = list(DataKeyRecord.objects.values_list("purpose", "wrapped"))
    assert sorted(purpose for purpose, _ in data_keys) == [Purpose.DATA, Purpose.INDEX]

    assert run("ensure_keys") == first
    assert keyring.path.read_bytes() == keyring_file
    assert list(DataKeyRecord.objects.values_list("purpose", "wrapped")) == data_keys


def test_it_shows_rotated_and_retired_versions_in_ensure_keys(keyring: keys.LocalKeyring) -> None:
    run("rotate_key", "ledger")
    run("rotate_key", "data")
    run("rewrap", "--retire")
    out = run("ensure_keys")
    assert "data: latest v2, decrypts from v2" in out
    assert "ledger: latest v2, decrypts from v1" in out
    assert "backup: latest v1, decrypts from v1" in out


def test_it_reports_a_key_service_failure_in_ensure_keys(
    keyring: keys.LocalKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyring, "ensure_keys", FailingAfter(keyring.ensure_keys, calls=0))
    with pytest.raises(CommandError, match=r"the key service \(local\) refused"):
        run("ensure_keys")


# --- against OpenBao Transit -------------------------------------------------------------------


@pytest.fixture
def transit(openbao: OpenBao) -> Iterator[keys.KeyService]:
    with transit_backend(openbao.config()) as service:  # keys of this test's own
        assert service.name == "transit"
        service.ensure_keys()
        yield service


def test_it_rotates_rewraps_and_retires_through_openbao(transit: keys.KeyService) -> None:
    rows = written_under_data_keys(2)
    old = {r.pk: (r.wrapped, transit.unwrap(KeyName.DATA, r.wrapped)) for r in DataKeyRecord.objects.of(Purpose.DATA)}
    assert all(wrapped.startswith("vault:v1:") for wrapped, _ in old.values())

    assert "data is now at v2" in run("rotate_key", "data")
    after = Person.objects.create(name="after", national_id="XY987654Z")
    assert envelope_key(after).wrapped.startswith("vault:v2:")

    out = run("rewrap", "--retire")
    assert "data: 2 data keys re-wrapped under v2" in out
    assert "data: decrypts from v2 (was v1; latest v2)" in out
    assert transit.info(KeyName.DATA) == keys.KeyInfo(KeyName.DATA, 2, 2)
    for pk, (wrapped, plaintext) in old.items():
        record = DataKeyRecord.objects.get(pk=pk)
        assert record.kek_version == 2
        assert record.wrapped.startswith("vault:v2:")
        assert transit.unwrap(KeyName.DATA, record.wrapped) == plaintext
        with pytest.raises(keys.IntegrityError, match="retired"):
            transit.unwrap(KeyName.DATA, wrapped)
    assert_decrypts(rows)
    assert reload(after).national_id == "XY987654Z"


def test_it_rotates_the_index_key_through_openbao(transit: keys.KeyService) -> None:
    rows = people(2)
    card = tokenise("5555 5555 5555 4444")
    run("rotate_key", "index")
    assert "index: 2 data keys re-wrapped under v2" in run("rewrap", "--key", "index", "--retire")
    assert "2 rows re-indexed" in run("reindex", "--new-key")
    cache.clear()
    assert envelope.cache.live(Purpose.INDEX) == list(
        DataKeyRecord.objects.live().of(Purpose.INDEX).values_list("id", flat=True)
    )
    assert tokenise("5555555555554444") == card
    assert all_found(rows)
