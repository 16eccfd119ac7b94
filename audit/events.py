"""What the ledger records: event types numbered by domain.

The number is what the ledger stores and what an auditor filters on; the name is its stable
spelling in reports. Numbers are never reused or renumbered; a retired type keeps its number.

* 1xx  sign-in, sessions, users, roles (accounts)
* 2xx  alerts and cases (cases)
* 3xx  reports to the FIU, dashboards, evidence packs (reporting)
* 4xx  keys, encryption and backups (caspix.crypto)
* 5xx  the ledger itself
"""

from __future__ import annotations

from enum import IntEnum


class EventType(IntEnum):
    # 1xx accounts: access changes and their four-eyes approvals
    APPROVAL_REQUESTED = 110
    APPROVAL_GRANTED = 111
    APPROVAL_REJECTED = 112
    APPROVAL_EXPIRED = 113
    APPROVAL_REFUSED = 114
    ROLE_GRANTED = 120
    ROLE_REVOKED = 121

    # 4xx keys, encryption and backups
    KEY_ROTATED = 401
    DATA_KEYS_REWRAPPED = 402
    KEY_VERSIONS_RETIRED = 403
    BLIND_INDEX_KEY_CREATED = 404
    BLIND_INDEXES_REBUILT = 405
    INDEX_KEYS_RETIRED = 406
    BACKUP_WRITTEN = 410
    BACKUP_RESTORED = 411
    BACKUP_REFUSED = 412
    INTEGRITY_INCIDENT = 420

    # 5xx the ledger itself
    LEDGER_VERIFIED = 501
    LEDGER_VERIFICATION_FAILED = 502
    SEGMENT_SEALED = 510
