"""A goAML STR with 50,000 transactions: written by the UAE 5.0.2 schema and put through the
validation gate (lxml and xmlschema in XSD 1.1 mode), against lxml's own parse and validation of
the same file. Target ([str]): at most 15 s and 200 MB of peak memory.

Both sides stream, as an export does: the transactions come from a generator, are written to a
temporary file a transaction at a time (``Shape.write_to``), and the file is checked as it is
read (``Gate.check_file``).

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


def _child(function: str, path: str) -> dict[str, float]:
    code = f"import django; django.setup(); from bench.bench_str import {function}; {function}({path!r})"
    env = {**os.environ, "CASPIX_ENV": "test", "DJANGO_SETTINGS_MODULE": "bench.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"{function} failed: {done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run() -> list[Figure]:
    if not (SCHEMA.exists() and SAMPLE.exists()):
        print(f"bench_str: the FIU reference data is not at {FIU_DATA} (set CASPIX_FIU_DATA)", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(prefix="bench-str-") as folder:
        path = str(Path(folder) / "str.xml")
        ours = _child("generate_and_gate", path)
        ceiling = _child("lxml_only", path)
    if ours["faults"] or ceiling["faults"]:
        raise RuntimeError(f"the generated STR does not validate: {ours['faults']} faults")
    return [
        Figure.latency("str_50k_generate_and_gate", ours["seconds"], "s", ceiling["seconds"]),
        Figure.latency("str_50k_generate_and_gate_vs_target", ours["seconds"], "s", TARGET_SECONDS),
        Figure.latency("str_50k_peak_memory", ours["mb"], "MB", TARGET_MB),
        Figure.latency("str_50k_lxml_peak_memory", ceiling["mb"], "MB", TARGET_MB),
    ]
