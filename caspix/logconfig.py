"""Logging: one JSON line per record on standard output, masked, with request and user ids.

The masking and context filters sit on the handler, not on loggers, so every record that
reaches output passes through them, whichever logger emitted it and however it propagated.
"""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.json import JsonFormatter

_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(user_id)s"


class CaspixJsonFormatter(JsonFormatter):
    """JSON lines with stable key names and UTC ISO-8601 times."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__(_FIELDS, *args, **kwargs)

    def formatTime(self, record: Any, datefmt: str | None = None) -> str:  # noqa: N802 (stdlib name)
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


def build_logging(level: str) -> dict[str, Any]:
    """The ``LOGGING`` dict for Django, Celery workers and gunicorn alike."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "caspix.requestcontext.ContextFilter"},
            "mask": {"()": "caspix.masking.MaskingFilter"},
        },
        "formatters": {"json": {"()": "caspix.logconfig.CaspixJsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["context", "mask"],
                "formatter": "json",
            },
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Replace Django's defaults: no console-only-in-DEBUG handler, and no e-mailing of
            # tracebacks (AdminEmailHandler would send them unmasked).
            "django": {"handlers": [], "level": level, "propagate": True},
            "django.server": {"handlers": [], "level": level, "propagate": True},
            "django.db.backends": {"handlers": [], "level": "WARNING", "propagate": True},
            "gunicorn.error": {"handlers": [], "level": level, "propagate": True},
            "celery": {"handlers": [], "level": level, "propagate": True},
            # fpdf2's font subsetting narrates each table it prunes at INFO: dozens of lines a PDF.
            "fontTools": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
