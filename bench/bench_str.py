"""A goAML STR with 50,000 transactions: written by the UAE 5.0.2 schema and put through the
validation gate (lxml and xmlschema in XSD 1.1 mode), against lxml's own parse and validation of
the same file. Target ([str]): at most 15 s and 200 MB of peak memory.

Both sides stream, as an export does: the transactions come from a generator, are written to a
temporary file a transaction at a time (``Shape.write_to``), and the file is checked as it is
read (``Gate.check_file``).

The worker's whole task is measured too (``str_50k_report_task``): a case of 50,000 transactions
in a scratch PostgreSQL database, its report's file generated as the Celery worker does it
(``reporting.reports.generate``): the transactions read from the database and decrypted, mapped
by the draft, written, checked by the gate and the FIU's rules, and stored encrypted.

Each figure is measured in a fresh process, so that peak memory (``ru_maxrss``, above what the
process held before) is that of the work alone. The schema and the STR sample come from the FIU
reference data (``CASPIX_FIU_DATA``, by default ``../shared/data/fiu``); without it the benchmark
says so and reports nothing.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.database import environment, manage, scratch_database
from bench.figures import Figure
from bench.server import ROOT

TRANSACTIONS = int(os.environ.get("CASPIX_BENCH_STR_TRANSACTIONS", "50000"))
FIU_DATA = Path(os.environ.get("CASPIX_FIU_DATA", ROOT.parent / "shared" / "data" / "fiu"))
SCHEMA = FIU_DATA / "goaml-uae-5.0.2" / "goAMLSchema.strict-validators.xsd"
SAMPLE = FIU_DATA / "goaml-uae-5.0.2" / "samples" / "STR.xml"
TARGET_SECONDS = 15.0
TARGET_MB = 200.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate_and_gate(path: str) -> None:
    """Child: write the report to ``path`` from a generator of transactions and check the file
    with both validators; print seconds and MB."""
    from reporting.goaml import xml
    from reporting.goaml.validate import Gate

    xsd = SCHEMA.read_bytes()
    shape = xml.Shape(xsd)
    gate = Gate(xsd)
    report = xml.read(shape, SAMPLE.read_bytes())
    transaction = report["transaction"][0]
    before = _peak_mb()
    start = time.perf_counter()
    report["transaction"] = (dict(transaction, transactionnumber=f"TXN-{n:06d}") for n in range(TRANSACTIONS))
    with open(path, "wb") as output:
        shape.write_to(output, report)
    faults = gate.check_file(path)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "mb": _peak_mb() - before, "faults": len(faults)}))


def lxml_only(path: str) -> None:
    """Child: lxml parses and validates the same file (the ceiling)."""
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    before = _peak_mb()
    start = time.perf_counter()
    ok = schema.validate(etree.parse(path, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)))
    print(json.dumps({"seconds": time.perf_counter() - start, "mb": _peak_mb() - before, "faults": 0 if ok else 1}))


def fill_case() -> None:
    """Child, in the scratch database: a case in reporting with 50,000 transactions (COPY, each
    encrypted as in use) of 500 counterparties, a UAE profile, a completed draft and its queued
    file; prints the file's id."""
    import datetime
    from decimal import Decimal

    from django.utils import timezone

    from accounts.models import Membership, Team
    from cases.models import Account, Alert, ApiClient, Case, Party, Queue, Transaction
    from caspix.bulk import copy_in
    from reporting import actions, drafting, reports
    from reporting.models import ReportFile
    from tests.factories import make_user
    from tests.reporting.reporting_world import complete

    admin, analyst = make_user("bench-admin", ["admin"]), make_user("bench-analyst", ["analyst"])
    team = Team.objects.create(slug="aml", name="AML")
    Membership.objects.create(team=team, user=analyst)
    queue = Queue.objects.create(slug="aml", name="AML queue", team=team)
    profile = actions.create_profile(
        slug="uae",
        name="UAE FIU",
        rentity_id=2079,
        rentity_branch="Head office",
        currency_code_local="AED",
        filename=SCHEMA.name,
        data=SCHEMA.read_bytes(),
        acting_user=admin,
    )
    party = Party(country="AE")
    party.customer_id, party.name, party.national_id = "CUST-1", "Layla Hassan", "784198512345671"
    party.date_of_birth = datetime.date(1989, 7, 2)
    party.save()
    account = Account(party=party, currency="AED")
    account.number = "AE070331234567890123456"
    account.save()
    case = Case.objects.create(title="Structuring", queue=queue, party=party, status=Case.Status.STR)
    client = ApiClient.objects.create(name="Core banking", source="core", scopes=["alerts:write"])
    alert = Alert(
        client=client, external_id="bench", scenario="structuring", occurred_at=timezone.now(), party=party, case=case
    )
    alert.payload = "{}"
    alert.save()
    start = timezone.now() - datetime.timedelta(days=30)
    rows = []
    for n in range(TRANSACTIONS):
        tx = Transaction(
            alert=alert,
            account=account,
            external_id=f"TX-{n:08d}",
            occurred_at=start + datetime.timedelta(seconds=40 * n),
            amount=Decimal(f"{1000 + n % 9000}.{n % 100:02d}"),
            currency="USD" if n % 10 == 0 else "AED",
            minor_units=2,
            direction=Transaction.Direction.DEBIT if n % 3 else Transaction.Direction.CREDIT,
            channel=Transaction.Channel.TRANSFER if n % 2 else Transaction.Channel.ONLINE_BANKING,
            counterparty_country="GB" if n % 2 else "AE",
        )
        tx.counterparty_name = f"Counterparty {n % 500} Trading"
        tx.counterparty_account = f"GB29NWBK6016133192{n % 500:04d}"
        rows.append(tx)
    copy_in(Transaction, rows)
    del rows
    report = reports.start(case, profile, report_code="STR", suspicion_on=timezone.localdate(), acting_user=analyst)
    schema = profile.current_schema()
    if schema is None:
        raise RuntimeError("the profile has no schema")
    content = complete(drafting.loads(report), schema)
    for party_ in content["counterparties"].values():
        party_.update(institution_name="NatWest", swift="NWBKGB2L")
    report = reports.save(report, content, revision=report.revision, acting_user=analyst)
    made = ReportFile.objects.create(  # as request_generation queues it, without a broker
        report=report, revision=report.revision, schema=schema, total=TRANSACTIONS, requested_by=analyst
    )
    print(json.dumps({"file": str(made.pk)}))


def report_task(file_id: str, path: str) -> None:
    """Child: the worker's task on the filled case (``reports.generate``); the stored file is
    written to ``path`` for lxml's own check (the ceiling)."""
    from reporting import reports
    from reporting.models import ReportFile, ReportFileContent

    before = _peak_mb()
    start = time.perf_counter()
    reports.generate(file_id)
    seconds = time.perf_counter() - start
    peak = _peak_mb() - before  # before the file is read back for the ceiling below
    made = ReportFile.objects.get(pk=file_id)
    if made.status == ReportFile.Status.VALID:
        Path(path).write_bytes(ReportFileContent.objects.get(file=made).xml())
    faults = 0 if made.status == ReportFile.Status.VALID else max(1, len(made.faults))
    print(json.dumps({"seconds": seconds, "mb": peak, "faults": faults, "done": made.done}))


def _child(function: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    call = ", ".join(repr(arg) for arg in args)
    code = f"import django; django.setup(); from bench.bench_str import {function}; {function}({call})"
    env = env or {**os.environ, "CASPIX_ENV": "test", "DJANGO_SETTINGS_MODULE": "bench.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"{function} failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run() -> list[Figure]:
    if not (SCHEMA.exists() and SAMPLE.exists()):
        print(f"bench_str: the FIU reference data is not at {FIU_DATA} (set CASPIX_FIU_DATA)", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(prefix="bench-str-") as folder:
        path = str(Path(folder) / "str.xml")
        ours = _child("generate_and_gate", path)
        ceiling = _child("lxml_only", path)
        task_path = str(Path(folder) / "task.xml")
        with scratch_database("bench_str") as database:
            env = environment(database)
            manage(env, "migrate", "--noinput", "--verbosity", "0")
            filled = _child("fill_case", env=env)
            task = _child("report_task", filled["file"], task_path, env=env)
        if task["faults"]:
            raise RuntimeError(f"the report of the filled case does not validate: {task['faults']} faults")
        task_ceiling = _child("lxml_only", task_path)
    if ours["faults"] or ceiling["faults"]:
        raise RuntimeError(f"the generated STR does not validate: {ours['faults']} faults")
    return [
        Figure.latency("str_50k_generate_and_gate", ours["seconds"], "s", ceiling["seconds"]),
        Figure.latency("str_50k_generate_and_gate_vs_target", ours["seconds"], "s", TARGET_SECONDS),
        Figure.latency("str_50k_peak_memory", ours["mb"], "MB", TARGET_MB),
        Figure.latency("str_50k_lxml_peak_memory", ceiling["mb"], "MB", TARGET_MB),
        Figure.latency("str_50k_report_task", task["seconds"], "s", task_ceiling["seconds"]),
        Figure.latency("str_50k_report_task_vs_target", task["seconds"], "s", TARGET_SECONDS),
        Figure.latency("str_50k_report_task_peak_memory", task["mb"], "MB", TARGET_MB),
    ]
