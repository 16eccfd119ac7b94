"""A pack is built by a real Celery worker (Redis broker, PostgreSQL); a worker killed with
SIGKILL mid-build leaves nothing visible, and the build is taken over and completes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.test import override_settings

from audit.ledger import integrate_all
from cases import casework
from caspix_verify import verify_pack
from reporting import exports, tasks
from reporting.models import Export, ExportPart
from tests.caspix.test_celery_worker import ROOT, wait_until, worker_database_url
from tests.recorded import sequenced_and_pending
from tests.reporting import reporting_world as rw
from tests.reporting.test_exports import public_keys

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FILES = 4
FILE_SIZE = 12 * 1024 * 1024  # 48 MB of attachments: long enough a build to kill it mid-way


def start_worker(queue: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CASPIX_ENV": "test",
        "DATABASE_URL": worker_database_url(),
        "CASPIX_EXPORT_STALE_SECONDS": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "caspix", "worker", "--queues", queue, "--pool", "solo"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> str:
    """Tasks go to this test's own queue (parallel runs never share deliveries)."""
    name = f"test-export-{uuid.uuid4().hex}"
    monkeypatch.setattr(tasks.build_export, "delay", lambda pk: tasks.build_export.apply_async(args=(pk,), queue=name))
    return name


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert b"Traceback" not in (stderr or b""), stderr.decode()


def test_a_worker_killed_mid_pack_leaves_nothing_and_the_build_completes(queue: str) -> None:
    setup = rw.build()
    for n in range(FILES):
        data = (f"statement line {n} ".encode() * (FILE_SIZE // 17))[:FILE_SIZE]
        casework.add_evidence(setup.case, f"statement-{n}.txt", data, acting_user=setup.analyst)
    integrate_all()
    first = start_worker(queue)
    try:
        export = exports.request_export(
            Export.Kind.CASE_PACK, case=setup.case, acting_user=setup.world.users["auditor"]
        )
        assert wait_until(lambda: Export.objects.get(pk=export.pk).status != Export.Status.QUEUED, 60)
        first.send_signal(signal.SIGKILL)  # mid-build: the pack takes seconds to write
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=30)
    export.refresh_from_db()
    assert export.status == Export.Status.RUNNING, "the worker finished before it could be killed"
    assert not ExportPart.objects.filter(export=export).exists()  # nothing of it is visible
    second = start_worker(queue)
    try:
        time.sleep(1.5)  # the first worker's heartbeat goes stale
        with override_settings(CASPIX_EXPORT_STALE_SECONDS=1):
            assert exports.resume_exports() == 1  # the beat's backstop asks for it again
        assert wait_until(lambda: Export.objects.get(pk=export.pk).finished, 120)
    finally:
        stop(second)
    export.refresh_from_db()
    assert export.status == Export.Status.READY, export.failure
    assert export.attempts == 2
    _, chunks = exports.download(str(export.pk), acting_user=setup.world.users["auditor"])
    result = verify_pack(io.BytesIO(b"".join(chunks)), public_keys())
    assert result.intact, result.problems
    built = [e for e in sequenced_and_pending() if e["name"] == "EXPORT_BUILT"]
    assert len(built) == 1  # one build made it, once
