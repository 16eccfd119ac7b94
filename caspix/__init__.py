"""Caspix: settings, URLs, the Celery app, middleware and the key service (the ground floor)."""

from caspix.celery import app as celery_app

__all__ = ["celery_app"]
