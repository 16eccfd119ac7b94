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
    # 1xx accounts: users, roles, teams and the four-eyes approvals of access changes
    USER_CREATED = 100
    USER_DEACTIVATED = 101
    USER_REACTIVATED = 102
    SIGNED_IN = 103
    SIGN_IN_FAILED = 104
    SIGNED_OUT = 105
    SIGN_IN_LOCKED_OUT = 106
    CREDENTIAL_STUFFING_SUSPECTED = 107
    FORGED_REQUEST_REFUSED = 108
    APPROVAL_REQUESTED = 110
    APPROVAL_GRANTED = 111
    APPROVAL_REJECTED = 112
    APPROVAL_EXPIRED = 113
    APPROVAL_REFUSED = 114
    APPROVAL_WITHDRAWN = 115  # by its maker, before anyone decided it
    ROLE_GRANTED = 120
    ROLE_REVOKED = 121
    ROLE_TEMPLATE_CREATED = 122
    ROLE_TEMPLATE_CHANGED = 123
    TEAM_CREATED = 130
    TEAM_MEMBER_ADDED = 131
    TEAM_MEMBER_REMOVED = 132
    SECOND_FACTOR_VERIFIED = 140
    SECOND_FACTOR_FAILED = 141
    FACTOR_ADDED = 142
    FACTOR_REMOVED = 143
    RECOVERY_CODES_ISSUED = 144
    FACTOR_DISABLED = 145
    SESSION_ENDED = 150
    SESSION_REFRESHED = 151  # the identity provider confirmed a federated session again

    # 2xx cases: queues, cases and the explicit grants of a case
    QUEUE_CREATED = 201
    QUEUE_CHANGED = 202
    CASE_ACCESS_GRANTED = 210
    CASE_ACCESS_REVOKED = 211
    ALERT_INGESTED = 220
    CASE_OPENED = 221
    API_CLIENT_CREATED = 230
    API_CLIENT_CHANGED = 231
    API_KEY_ISSUED = 232
    API_KEY_REVOKED = 233
    API_REQUEST_REFUSED = 234  # a request that failed authentication: a security event
    ROUTING_RULE_CREATED = 240
    ROUTING_RULE_CHANGED = 241
    WEBHOOK_CREATED = 250
    WEBHOOK_REPLAYED = 251
    WEBHOOK_CHANGED = 252  # made active or inactive
    # the analysts' workspace
    CASE_TAKEN = 260  # an analyst took the most urgent waiting case (next case)
    CASES_SEARCHED = 261  # who looked for which identifier (by blind index), and how many cases
    CASE_STATUS_CHANGED = 262  # escalated, returned, sent to reporting, withdrawn from it
    CASE_CLOSURE_PROPOSED = 263  # waiting for a second person's approval
    CASE_CLOSED = 264
    CASE_CLOSURE_DECLINED = 265  # the proposal was rejected or expired: the case is back where it was
    CASE_REOPEN_REQUESTED = 266
    CASE_REOPENED = 267
    CASE_REOPEN_DECLINED = 268
    NOTE_ADDED = 270
    NOTE_REVISED = 271  # a new version of a note; the earlier ones stay
    EVIDENCE_ADDED = 272
    EVIDENCE_DOWNLOADED = 273
    CASES_LINKED = 274
    CASES_UNLINKED = 275
    CASE_ASSIGNED = 276  # by someone else than the assignee (a lead's bulk action)
    CASE_REROUTED = 277  # moved to another queue
    CASE_PRIORITY_CHANGED = 278

    # 3xx reporting: FIU profiles, suspicious transaction reports
    FIU_PROFILE_CREATED = 300
    FIU_SCHEMA_UPLOADED = 301  # a goAML XSD, with its SHA-256, became the profile's current schema
    FIU_CALENDAR_CHANGED = 302  # the deadline rule, weekend or holidays of a profile
    REPORT_DRAFTED = 310
    REPORT_SAVED = 311  # which parts of the draft changed, never their content
    REPORT_GENERATION_REQUESTED = 312
    REPORT_GENERATED = 313  # the file's SHA-256 and the gate's verdict
    REPORT_SUBMISSION_REQUESTED = 314  # four-eyes, bound to the file's SHA-256
    REPORT_APPROVED = 315
    REPORT_APPROVAL_DECLINED = 316
    REPORT_DOWNLOADED = 317
    REPORT_SUBMITTED = 318  # the FIU's reference, the date and the channel
    REPORT_ACKNOWLEDGED = 319
    REPORT_REJECTED = 320  # by the FIU: the report is a draft again, with the FIU's reason
    REPORT_DEADLINE_NEAR = 321
    REPORT_ABANDONED = 322
    # oversight: dashboards, access reviews, evidence packs and regulatory exports
    DASHBOARD_EXPORTED = 330  # a dashboard table as CSV: which table, which filters
    ACCESS_REVIEW_TAKEN = 340  # a snapshot of who holds what, with its SHA-256
    ACCESS_REVIEW_EXPORTED = 341  # a snapshot as CSV or PDF
    ACCESS_REVIEW_SIGNED_OFF = 342  # a manager signed off the snapshot of that SHA-256
    EXPORT_REQUESTED = 350  # an evidence pack or a regulatory export: its kind and scope
    EXPORT_BUILT = 351  # the pack's SHA-256, its manifest's and its size
    EXPORT_FAILED = 352  # the build gave up; the reason, never a record's content
    EXPORT_DOWNLOADED = 353
    EXPORT_EXPIRED = 354  # its encrypted content was erased after the configured time

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
