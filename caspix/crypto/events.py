"""Key, rotation and backup events, handed to whoever records them (the audit ledger).

``caspix`` sits below ``audit`` and cannot import it: the ledger subscribes here when its app is
ready, and key operations call :func:`emit` inside their own transaction, so the event commits
with the change it describes. With no subscriber (a process without the ledger app), an event
goes to the log only.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("caspix.security")


@dataclass(frozen=True)
class KeyEvent:
    kind: str  # the ledger's EventType name, e.g. "KEY_ROTATED"
    subject: str  # the key, data key or backup the event is about
    details: dict[str, Any] = field(default_factory=dict)
    operator: str = field(default_factory=lambda: _operator())


Listener = Callable[[KeyEvent], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def emit(kind: str, subject: str, **details: Any) -> None:
    event = KeyEvent(kind, subject, details)
    logger.info("key event", extra={"event": kind, "subject": subject})
    for listener in _listeners:
        listener(event)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        return "unknown"
