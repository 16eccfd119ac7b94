"""The validation gate: a report is checked against its FIU's schema by two validators before
anyone can approve it, lxml (libxml2, XSD 1.0) and xmlschema in XSD 1.1 mode, and every fault is
kept with the path of the element it is about, for the form to show it where it belongs.

The two disagree at the edges (libxml2 reads some patterns differently; XSD 1.1 adds assertions
and the versioning attributes goAML schemas carry): a report must pass both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lxml import etree

from reporting.goaml.schema import parser


@dataclass(frozen=True)
class Fault:
    path: str  # /report/transaction[2]/amount_local
    message: str
    validator: str  # "lxml" or "XSD 1.1"


class Gate:
    """Both validators of one schema, compiled once."""

    def __init__(self, xsd: bytes) -> None:
        import xmlschema

        self._lxml = etree.XMLSchema(etree.fromstring(xsd, parser()))
        self._xsd11 = xmlschema.XMLSchema11(xsd.decode("utf-8"), allow="none", defuse="always")

    def check(self, xml: bytes) -> list[Fault]:
        """Every fault of ``xml``, lxml's first; an unreadable file is one fault at the root."""
        try:
            document = etree.fromstring(xml, parser())
        except etree.XMLSyntaxError as error:
            return [Fault("/", f"the file is not well-formed XML: {error.msg}", "lxml")]
        info = document.getroottree().docinfo
        if info.internalDTD is not None or info.system_url or info.public_id:
            return [Fault("/", "the file declares a DOCTYPE: a goAML report has none", "lxml")]
        faults: list[Fault] = []
        if not self._lxml.validate(document):
            entries: Iterable[Any] = self._lxml.error_log  # type: ignore[assignment]
            faults += [Fault(_clean(entry.path), _plain(entry.message), "lxml") for entry in entries]
        seen = {fault.path for fault in faults}
        import xmlschema

        # Lazy: the file is read a subtree at a time, with no cap on its elements (an eager
        # resource refuses files of over a million elements: an STR of 50,000 transactions).
        resource = xmlschema.XMLResource(xml.decode("utf-8"), lazy=True, allow="none", defuse="always")
        for problem in self._xsd11.iter_errors(resource):
            path = _clean(str(problem.path or "/"))
            if path not in seen:
                faults.append(Fault(path, _plain(str(problem.reason or problem.message)), "XSD 1.1"))
                seen.add(path)
        return faults


@lru_cache(maxsize=8)
def gate_for(xsd: bytes) -> Gate:
    """The gate of a schema (compiling xmlschema's takes a few hundred milliseconds)."""
    return Gate(xsd)


def _clean(path: str) -> str:
    return path or "/"


def _plain(message: str) -> str:
    """libxml2's message without its noise: ``Element 'x': [facet 'pattern'] The value …``."""
    text = message.strip()
    text = re.sub(r"\[facet '(\w+)'\]\s*", "", text)
    return text.replace("{http://www.w3.org/2001/XMLSchema}", "xs:")


def element_of(fault: Fault) -> Any:
    """The name of the element a fault is about (the last step of its path)."""
    step = fault.path.rstrip("/").rsplit("/", 1)[-1]
    return step.split("[", 1)[0]
