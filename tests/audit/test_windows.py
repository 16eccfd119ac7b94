"""The windows every process shares when asking for sequencing (through the cache, Redis here):
two requests a window at most, whoever commits."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from django.core.cache import cache
from pytest_django.fixtures import Settings

from audit import ledger

WINDOW = 30.0


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> list[float | None]:
    """The countdowns of the tasks asked for, instead of publishing them."""
    asked: list[float | None] = []
    monkeypatch.setattr(ledger, "_publish", asked.append)
    settings.LEDGER = {**settings.LEDGER, "INTEGRATE": "task", "SCHEDULE_WINDOW": WINDOW}
    return asked


def not_at_a_window_end(window: float = WINDOW) -> None:
    """Wait, if need be, until the window's end is more than a second away (the tests' commits
    must share one window)."""
    while window - time.time() % window < 1:
        time.sleep(0.1)


def test_the_first_commit_asks_at_once_a_later_one_for_the_window_end(published: list[float | None]) -> None:
    not_at_a_window_end()
    process = ledger._Scheduler(uuid.uuid4().hex)
    for _ in range(5):
        process()
    assert len(published) == 2
    assert published[0] is None
    assert published[1] is not None
    assert 0 < published[1] <= WINDOW
    remainder = (time.time() + published[1]) % WINDOW  # the task is due at a multiple of the window
    assert min(remainder, WINDOW - remainder) < 0.5


def test_processes_share_the_window(published: list[float | None]) -> None:
    not_at_a_window_end()
    namespace = uuid.uuid4().hex
    first, second, third = (ledger._Scheduler(namespace) for _ in range(3))
    first()  # at once
    second()  # the window's end
    third()  # both asked for already: nothing
    first()
    second()
    third()
    assert [countdown is None for countdown in published] == [True, False]
    assert first.set_until == second.set_until == third.set_until


def test_another_database_has_windows_of_its_own(published: list[float | None]) -> None:
    not_at_a_window_end()
    ledger._Scheduler(uuid.uuid4().hex)()
    ledger._Scheduler(uuid.uuid4().hex)()
    assert published == [None, None]


def test_a_new_window_asks_at_once_again(published: list[float | None], settings: Settings) -> None:
    settings.LEDGER = {**settings.LEDGER, "SCHEDULE_WINDOW": 0.05}
    process = ledger._Scheduler(uuid.uuid4().hex)
    process()
    time.sleep(0.12)
    process()
    assert published == [None, None]


def test_without_the_cache_every_commit_asks_at_once(
    published: list[float | None], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable(*args: object, **kwargs: object) -> bool:
        raise ConnectionError("the cache is out of reach")

    monkeypatch.setattr(cache, "add", unreachable)
    process = ledger._Scheduler(uuid.uuid4().hex)
    with caplog.at_level(logging.WARNING, logger="audit.ledger"):
        process()
        process()
    assert published == [None, None]
    assert "the cache cannot be reached" in caplog.text


def test_the_default_namespace_names_the_database(settings: Settings) -> None:
    key = ledger._Scheduler()._key("now", 1.0)
    again = ledger._Scheduler()._key("now", 1.0)
    assert key == again
    assert key.startswith("audit:integrate:")
    assert key.endswith(":now:1000")
