"""Key rotation without downtime: rotate, rewrap, retire, re-index.

* ``rotate(name)``: a new version of a key-encryption key. For ``data`` a new data key wrapped by
  it is made at once, so new writes use the new version while every older version still decrypts.
* ``rewrap``: every live data key still wrapped by an older version is re-wrapped by the latest, in
  batches of one transaction each; a run that stops is resumed by running it again (it selects
  what is still on an older version). Rows are never touched: they name their data key, not the
  key-encryption key.
* ``retire``: raises ``min_decryption_version`` to the oldest version a live data key still uses,
  so older versions can decrypt nothing again (the local keyring destroys their material).
* ``reindex``: moves blind indexes to the newest index key, in batches, resumable the same way;
  searches cover every live index key meanwhile. Old index keys are then retired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import Min, Q
from django.utils import timezone

from caspix.crypto import events
from caspix.crypto.envelope import ACTIVE_KEY_TTL, cache, create_data_key, rewrap_record
from caspix.crypto.fields import BlindIndexField
from caspix.crypto.keys import KeyInfo, KeyName, key_service
from caspix.crypto.models import KEK_FOR, DataKeyRecord, Purpose

#: Key-encryption keys whose wrapped values live in the database (``ledger`` signs and
#: ``backup`` wraps keys kept inside backup files: neither is rewrapped here).
REWRAPPABLE = (KeyName.DATA, KeyName.INDEX)

Progress = Callable[[int], object]


def _purposes(kek: KeyName) -> list[str]:
    return [purpose for purpose, name in KEK_FOR.items() if name == kek]


def rotate(name: KeyName) -> KeyInfo:
    info = key_service().rotate(name)
    with transaction.atomic():
        details: dict[str, object] = {"version": info.latest_version}
        if name is KeyName.DATA:
            details["data_key"] = create_data_key(Purpose.DATA).pk
        events.emit("KEY_ROTATED", str(name), **details)
    cache.forget_active()
    return info


def pending_rewrap(kek: KeyName, latest: int) -> models.QuerySet[DataKeyRecord]:
    return DataKeyRecord.objects.live().filter(purpose__in=_purposes(kek), kek_version__lt=latest)


def rewrap(kek: KeyName, *, batch_size: int = 500, progress: Progress | None = None) -> int:
    """Re-wrap every live data key of ``kek`` under its latest version; returns how many moved."""
    latest = key_service().info(kek).latest_version
    done = 0
    try:
        while True:
            with transaction.atomic():
                batch = list(
                    pending_rewrap(kek, latest).select_for_update(skip_locked=True).order_by("id")[:batch_size]
                )
                if not batch:
                    return done
                for record in batch:
                    rewrap_record(record, latest)
            done += len(batch)
            if progress:
                progress(len(batch))
    finally:
        if done:  # what was re-wrapped is recorded, even when an interruption stops the rest
            with transaction.atomic():
                events.emit("DATA_KEYS_REWRAPPED", str(kek), count=done, version=latest)


@dataclass(frozen=True)
class Retirement:
    kek: KeyName
    before: int
    after: int
    latest: int


def retire(kek: KeyName) -> Retirement:
    """Raise ``min_decryption_version`` of ``kek`` to the oldest version still in use."""
    service = key_service()
    info = service.info(kek)
    oldest = DataKeyRecord.objects.live().filter(purpose__in=_purposes(kek)).aggregate(v=Min("kek_version"))["v"]
    target = info.latest_version if oldest is None else oldest
    if target > info.min_decryption_version:
        service.set_min_decryption_version(kek, target)
        with transaction.atomic():
            events.emit("KEY_VERSIONS_RETIRED", str(kek), below=target, previous=info.min_decryption_version)
    return Retirement(kek, info.min_decryption_version, max(target, info.min_decryption_version), info.latest_version)


# --- blind indexes -------------------------------------------------------------------------------


def blind_index_fields() -> Iterator[tuple[type[models.Model], list[BlindIndexField]]]:
    for model in apps.get_models():
        fields = [f for f in model._meta.local_fields if isinstance(f, BlindIndexField)]
        if fields:
            yield model, fields


def _stale(fields: list[BlindIndexField], active: int) -> Q:
    stale = Q()
    for field in fields:
        stale |= Q(**{f"{field.name}__isnull": False}) & ~Q(**{f"{field.name}__startswith": f"{active}:"})
    return stale


def pending_reindex(active: int) -> int:
    return sum(model._default_manager.filter(_stale(fields, active)).count() for model, fields in blind_index_fields())


def new_index_key() -> int:
    """A new blind-index key: new writes use it at once, searches cover it and the older ones."""
    with transaction.atomic():
        record = create_data_key(Purpose.INDEX)
        events.emit("BLIND_INDEX_KEY_CREATED", f"data key {record.pk}")
    cache.forget_active()
    return record.pk


def wait(seconds: float) -> None:
    time.sleep(seconds)


def _index_key_age(key_id: int) -> float:
    created = DataKeyRecord.objects.values_list("created_at", flat=True).get(pk=key_id)
    return (timezone.now() - created).total_seconds()


def reindex(*, batch_size: int = 500, progress: Progress | None = None) -> int:
    """Recompute every blind index not under the active index key; returns the rows updated.

    Rows move only once the key is ``ACTIVE_KEY_TTL`` old: by then every process searches under
    it too, so no search misses a row that has moved.
    """
    cache.forget_active()
    active = cache.active(Purpose.INDEX)
    age = _index_key_age(active)
    if age < ACTIVE_KEY_TTL:
        wait(ACTIVE_KEY_TTL - age)
    done = 0
    for model, fields in blind_index_fields():
        manager: Any = model._default_manager
        while True:
            with transaction.atomic():
                batch = list(manager.filter(_stale(fields, active)).select_for_update().order_by("pk")[:batch_size])
                if not batch:
                    break
                for row in batch:
                    for field in fields:
                        getattr(row, field.source_attname())  # open the source
                    row.save(update_fields=[field.name for field in fields])
            done += len(batch)
            if progress:
                progress(len(batch))
    if done:
        with transaction.atomic():
            events.emit("BLIND_INDEXES_REBUILT", f"data key {active}", rows=done)
    return done


def retire_index_keys() -> int:
    """Retire every index key but the active one, once no blind index uses them."""
    cache.forget_active()
    active = cache.active(Purpose.INDEX)
    older = DataKeyRecord.objects.live().of(Purpose.INDEX).exclude(pk=active)
    if not older.exists():
        return 0
    if _index_key_age(active) < 2 * ACTIVE_KEY_TTL:
        # Other processes may still be writing under the previous key for up to ACTIVE_KEY_TTL.
        raise RuntimeError(f"the index key is younger than {2 * ACTIVE_KEY_TTL:.0f} s: run reindex again, then retire")
    remaining = pending_reindex(active)
    if remaining:
        raise RuntimeError(f"{remaining} rows still have blind indexes under an older key: run reindex first")
    with transaction.atomic():
        ids = list(older.values_list("id", flat=True))
        retired = older.update(retired_at=timezone.now())
        events.emit("INDEX_KEYS_RETIRED", f"data key {active}", retired=ids)
    cache.forget_active()
    return retired
