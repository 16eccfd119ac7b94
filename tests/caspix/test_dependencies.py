"""The pinned lxml/xmlsec pair shares one libxml2 (security-notes: python3-saml)."""

from __future__ import annotations

import subprocess
import sys


def test_it_imports_xmlsec_and_the_saml_toolkit_together() -> None:
    # A fresh interpreter: the "lxml & xmlsec libxml2 library version mismatch" error fires at import.
    probe = (
        "import lxml.etree as e, xmlsec, onelogin.saml2.auth\nprint(e.LIBXML_VERSION == xmlsec.get_libxml_version())"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
