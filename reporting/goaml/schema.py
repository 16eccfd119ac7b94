"""An FIU's goAML XSD, read once when an administrator uploads it: checked, and its code lists
and ``supportedIn`` annotations extracted (``docs/goaml.md``: code lists differ between FIUs and
must never be hard-coded).

The XSD is parsed with entity resolution and network access off, compiled by lxml (XSD 1.0) and
by xmlschema in XSD 1.1 mode (the schemas declare ``vc:minVersion="1.1"``, which XSD 1.0 readers
take as leave to ignore the whole schema). Patterns anchored with ``^…$`` are reported: XSD
regular expressions have no anchors, so such a pattern matches the characters literally and
refuses every real value (the UAE 5.0.2 schema as issued).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
GOAML = "http://www.unodc.org/goaml"
MAX_BYTES = 5 * 1024 * 1024


class SchemaError(ValueError):
    """The file is not a goAML XSD this application can use; the message says why."""


@dataclass(frozen=True)
class Code:
    code: str
    label: str


@dataclass
class Extracted:
    """What a goAML XSD defines for the forms and the generator."""

    version: str  # goaml:schemaVersion, "" when the schema does not say
    sha256: str
    code_lists: dict[str, list[Code]] = field(default_factory=dict)
    supported_in: dict[str, str] = field(default_factory=dict)  # element path -> goAML version
    anchored_patterns: list[str] = field(default_factory=list)

    def codes(self, name: str) -> list[str]:
        return [entry.code for entry in self.code_lists.get(name, [])]


def parser() -> etree.XMLParser:
    """The only way Caspix reads XML from outside: no entities, no DTD, no network."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def read(data: bytes) -> Extracted:
    """Check an uploaded XSD and extract what it defines, or raise :class:`SchemaError`."""
    if not data:
        raise SchemaError("the file is empty")
    if len(data) > MAX_BYTES:
        raise SchemaError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB: not a goAML schema")
    try:
        tree = etree.fromstring(data, parser()).getroottree()
    except etree.XMLSyntaxError as error:
        raise SchemaError(f"the file is not well-formed XML: {error.msg} (line {error.lineno})") from None
    if tree.docinfo.internalDTD is not None or tree.docinfo.system_url or tree.docinfo.public_id:
        raise SchemaError("the file declares a DOCTYPE: a goAML schema has none, and it is refused")
    root = tree.getroot()
    if root.tag != f"{{{XS}}}schema":
        raise SchemaError("the file is not an XML Schema (its root is not xs:schema)")
    if root.find(f"{{{XS}}}element[@name='report']") is None:
        raise SchemaError("the schema declares no <report> element: not a goAML report schema")
    if root.get("targetNamespace"):
        raise SchemaError("the schema has a target namespace: goAML reports have none")
    for reference in ("include", "import", "redefine", "override"):
        if root.find(f"{{{XS}}}{reference}") is not None:
            raise SchemaError(f"the schema uses xs:{reference}: upload a single, self-contained goAML XSD")
    try:
        etree.XMLSchema(tree)
    except etree.XMLSchemaParseError as error:
        raise SchemaError(f"lxml cannot compile the schema: {error}") from None
    _compile_11(data)
    return Extracted(
        version=root.get(f"{{{GOAML}}}schemaVersion") or "",
        sha256=hashlib.sha256(data).hexdigest(),
        code_lists=_code_lists(root),
        supported_in=_supported_in(root),
        anchored_patterns=sorted(
            {str(p.get("value")) for p in root.iter(f"{{{XS}}}pattern") if _anchored(str(p.get("value")))}
        ),
    )


def _compile_11(data: bytes) -> None:
    import xmlschema

    try:
        xmlschema.XMLSchema11(data.decode("utf-8"), allow="none", defuse="always")
    except (xmlschema.XMLSchemaException, UnicodeDecodeError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SchemaError(f"the schema does not compile as XSD 1.1: {message}") from None


def _anchored(pattern: str) -> bool:
    return pattern.startswith("^") or (pattern.endswith("$") and not pattern.endswith("\\$"))


def _label(enumeration: Any) -> str:
    """An enumeration's description: its xs:documentation, or the comment goAML schemas put in it."""
    documentation = enumeration.find(f"{{{XS}}}annotation/{{{XS}}}documentation")
    if documentation is not None and (documentation.text or "").strip():
        return " ".join(documentation.text.split())
    for child in enumeration:
        if child.tag is etree.Comment and (child.text or "").strip():
            return " ".join(child.text.split())
    return ""


def _code_lists(root: Any) -> dict[str, list[Code]]:
    lists: dict[str, list[Code]] = {}
    for simple in root.iter(f"{{{XS}}}simpleType"):
        name = simple.get("name")
        if not name:
            continue
        codes = [
            Code(str(enumeration.get("value")), _label(enumeration))
            for enumeration in simple.iterfind(f"{{{XS}}}restriction/{{{XS}}}enumeration")
        ]
        if codes:
            lists[name] = codes
    return lists


def _supported_in(root: Any) -> dict[str, str]:
    """Each declaration annotated ``goaml:supportedIn`` (elements, complex types, sequences), by
    its path from the nearest named definition (``report/schema_version``, ``t_conductor``,
    ``t_account/sequence``)."""
    found: dict[str, str] = {}
    for node in root.iter(f"{{{XS}}}element", f"{{{XS}}}complexType", f"{{{XS}}}sequence"):
        version = node.get(f"{{{GOAML}}}supportedIn")
        if version:
            path = _path(node)
            if node.tag == f"{{{XS}}}sequence":
                path = f"{_path(node.getparent())}/sequence"
            found[path] = version
    return found


def _path(element: Any) -> str:
    names = []
    node = element
    while node is not None and node.tag != f"{{{XS}}}schema":
        if node.tag in (f"{{{XS}}}element", f"{{{XS}}}complexType", f"{{{XS}}}group") and node.get("name"):
            names.append(node.get("name"))
            if node.tag != f"{{{XS}}}element":
                break
        node = node.getparent()
    return "/".join(reversed(names))
