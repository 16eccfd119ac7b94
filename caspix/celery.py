"""The Celery application, configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caspix.settings")

app = Celery("caspix")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(sender: Task[Any, Any] | None = None, **kwargs: Any) -> None:
    """Around each task, what Django does around each request: close a database connection
    that is broken or older than ``CONN_MAX_AGE`` (the tasks reuse it: ``CELERY_DB_REUSE_MAX``).
    Not for a task run eagerly, inside the caller's request and perhaps its transaction."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections as close

    close()
