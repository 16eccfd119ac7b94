"""The FIUs' schemas and samples, read where the project's reference data lives (never copied
into the repository): ``CASPIX_FIU_DATA``, by default ``../shared/data/fiu`` beside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIU_DATA = Path(os.environ.get("CASPIX_FIU_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "fiu"))

UAE = "goaml-uae-5.0.2/goAMLSchema.strict-validators.xsd"
UAE_AS_ISSUED = "goaml-uae-5.0.2/goAMLSchema.xsd"
GENERIC = "goaml-generic-5.0.1/goAMLSchema.xsd"
PPATK = "goaml-ppatk-4.0.2/goAMLSchema.xsd"
# Caspix's own goAML-shaped test schema (tests/reporting/data): always there, so the report
# workflow is tested whether or not the FIUs' reference data is.
OWN = "own"
OWN_SCHEMA = Path(__file__).resolve().parent / "data" / "goaml-test.xsd"


def fiu_file(relative: str) -> bytes:
    """The bytes of a reference file (or of the own test schema), or a skip that says where it
    was looked for."""
    path = OWN_SCHEMA if relative == OWN else FIU_DATA / relative
    if not path.exists():
        pytest.skip(f"the FIU reference data is not at {FIU_DATA} (set CASPIX_FIU_DATA): {relative} is needed")
    return path.read_bytes()
