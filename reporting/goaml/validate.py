"""The validation gate: a report is checked against its FIU's schema by two validators before
anyone can approve it, lxml (libxml2, XSD 1.0) and xmlschema in XSD 1.1 mode, and every fault is
kept with the path of the element it is about, for the form to show it where it belongs.

The two disagree at the edges (libxml2 reads some patterns differently; XSD 1.1 adds assertions
and the versioning attributes goAML schemas carry): a report must pass both.

:meth:`Gate.check_file` reads a file as a stream, its memory bounded by one child of the report
(a transaction), not by the file (an STR of 50,000 transactions is about 75 MB);
:meth:`Gate.check` goes through it. What each validator checks:

* **lxml checks every element**, as libxml2 parses the file (``iterparse`` with the schema:
  libxml2's streaming validation, which needs no tree, so each child of the report is cleared
  once read). Streaming, libxml2 reports no position: when it finds faults, the file is parsed a
  second time with a parser target that follows the path of each element, and each fault takes
  the path of the element libxml2 was on when it reported it (it reports just after the start or
  the end of the element a fault is about; text between elements just after the element before
  it, naming their parent). The file is also read once more without the schema: with it,
  libxml2 reports a file that breaks off after a fault as that fault alone.
* **xmlschema (XSD 1.1)** checks the report's own sequence of children at the end (the children
  emptied, ``max_depth=1``), and each child of the report as it is read: in full if its
  *structure* (its elements' names, order and nesting) has not been found valid before; if it
  has, each of its leaves whose value has not been found valid before, against its declaration.
  A whole transaction costs xmlschema about 0.7 ms (35 s for 50,000), more than half of it
  matching content models, which depends on the structure alone. This is the whole XSD 1.1
  check when validity is decided element by element, checked once for the schema
  (:func:`decided_element_by_element`: no identity constraint, assertion, type alternative, ID,
  IDREF, ENTITY, QName or NOTATION type) and for each child (one with an attribute, a comment, a
  processing instruction or text beside elements is checked in full): an element is then valid
  when its children's names match its content model and each child is valid, so two children of
  one structure can differ only in their leaves' values, and a leaf is valid by its declaration
  and its value alone. The goAML schemas qualify: they use no XSD 1.1 construct
  (``vc:minVersion="1.1"`` is their only XSD 1.1 feature). A schema that does not is checked by
  xmlschema over the whole file, lazily (:meth:`Gate._whole`).

Each validator lists at most :data:`MAX_FAULTS` faults: a file with more is refused all the same.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, BinaryIO, cast

from lxml import etree

from reporting.goaml.schema import XS, parser

MAX_FAULTS = 1000
# What xmlschema remembers as found valid, at most (then forgotten, and checked again).
_MAX_SHAPES = 4_096  # structures of children, with their leaves: a few kilobytes each
_MAX_VALUES = 100_000  # leaf values: about a hundred bytes each
_DOCTYPE = "the file declares a DOCTYPE: a goAML report has none"
_SAFE: dict[str, Any] = {  # schema.parser()'s options, for iterparse and the parser targets
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
}
# Anything in a subtree besides elements and its leaves' text: such a subtree is checked whole.
_IRREGULAR = etree.XPath(
    "boolean(descendant-or-self::*[@* or (* and text()[normalize-space()])]"
    " | descendant::comment() | descendant::processing-instruction())"
)

_NAMED = re.compile(r"Element '([^']+)'")  # how libxml2 starts a message about an element
Source = str | os.PathLike[str] | BinaryIO  # a path, or a seekable binary file


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
        self._by_element = decided_element_by_element(self._xsd11)
        # The names of the global elements and of their children: the only ones read one by one.
        globals_ = self._xsd11.elements.values()
        names = {element.name for element in globals_} | {child.name for element in globals_ for child in element}
        self._names = sorted(name for name in names if name)

    def check(self, xml: bytes) -> list[Fault]:
        """Every fault of ``xml``, lxml's first; an unreadable file is one fault at the root."""
        return self.check_file(io.BytesIO(xml))

    def check_file(self, source: Source) -> list[Fault]:
        """Every fault of the file (a path, or a seekable binary file), lxml's first, read as a
        stream (see the module); an unreadable file is one fault at the root, and a file with a
        DOCTYPE is refused as soon as its root is read."""
        start = 0 if isinstance(source, str | os.PathLike) else source.tell()
        pass_ = _Xsd11(self._xsd11, enabled=self._by_element)
        events = etree.iterparse(_opened(source), events=("start", "end"), tag=self._names, schema=self._lxml, **_SAFE)
        root: Any = None
        broken: etree.XMLSyntaxError | None = None
        try:
            for event, element in events:
                if event == "start":
                    if root is None and element.getparent() is None:
                        root = element
                        if _has_doctype(element.getroottree().docinfo):
                            return [Fault("/", _DOCTYPE, "lxml")]
                elif root is not None and element.getparent() is root:
                    pass_.child(element)
        except etree.XMLSyntaxError as error:
            broken = error  # a fault of the schema, or the file cannot be read: told apart below
        invalid = any(entry.domain == etree.ErrorDomains.SCHEMASV for entry in _errors(events.error_log))
        if broken is not None or invalid:
            # With the schema plugged in, libxml2 reports a parse error after a fault of the
            # schema as that fault: the file is read again without it.
            doctype, unreadable = self._read_again(source, start)
            if doctype:
                return [Fault("/", _DOCTYPE, "lxml")]
            if unreadable is None and broken is not None and not invalid:
                unreadable = broken.msg
            if unreadable is not None:
                return [Fault("/", f"the file is not well-formed XML: {unreadable}", "lxml")]
        faults = self._located(source, start) if invalid else []
        if invalid and not faults:  # not expected: libxml2 reports the same faults on both passes
            faults = [Fault("/", _plain(e.message), "lxml") for e in _errors(events.error_log)][:MAX_FAULTS]
        second = pass_.faults(root) if self._by_element else self._whole(source, start)
        seen = {fault.path for fault in faults}
        for fault in second[:MAX_FAULTS]:
            if fault.path not in seen:
                faults.append(fault)
                seen.add(fault.path)
        return faults

    def _read_again(self, source: Source, start: int) -> tuple[bool, str | None]:
        """Whether the file declares a DOCTYPE, and why it is not well-formed XML (None if it
        is), read without the schema and without building anything."""
        if not isinstance(source, str | os.PathLike):
            source.seek(start)
        seen = _Doctype()
        try:
            etree.parse(_opened(source), etree.XMLParser(target=cast(Any, seen), **_SAFE))
        except etree.XMLSyntaxError as error:
            return seen.declared, error.msg
        return seen.declared, None

    def _located(self, source: Source, start: int) -> list[Fault]:
        """lxml's faults with their paths: the file parsed again, its elements followed."""
        if not isinstance(source, str | os.PathLike):
            source.seek(start)
        paths = _Paths()
        paths.parser = etree.XMLParser(target=cast(Any, paths), schema=self._lxml, **_SAFE)
        with contextlib.suppress(etree.XMLSyntaxError):  # the faults are noted as they come
            etree.parse(_opened(source), paths.parser)
        return paths.found()

    def _whole(self, source: Source, start: int) -> list[Fault]:
        """xmlschema over the whole file, lazily (a subtree at a time, with no cap on its
        elements), for a schema whose validity is not decided element by element."""
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as file:
                return self._lazy(file)
        source.seek(start)
        return self._lazy(source)

    def _lazy(self, file: BinaryIO) -> list[Fault]:
        import xmlschema

        resource = xmlschema.XMLResource(file, lazy=True, allow="none", defuse="always")
        return [_xsd11_fault(str(problem.path or "/"), problem) for problem in self._xsd11.iter_errors(resource)]


def decided_element_by_element(schema: Any) -> bool:
    """Whether the XSD 1.1 validity of a document against ``schema`` is decided element by
    element: nothing in the schema relates an element to another one (identity constraints,
    assertions, type alternatives, ID and IDREF, ENTITY), or reads the namespace context of a
    value (QName, NOTATION)."""
    from xmlschema.validators import (
        XsdAlternative,
        XsdAssert,
        XsdAttribute,
        XsdComplexType,
        XsdElement,
        XsdIdentity,
        XsdSimpleType,
    )

    related = [schema.maps.types[f"{{{XS}}}{name}"] for name in ("ID", "IDREF", "ENTITY", "QName", "NOTATION")]

    def relates(simple: Any) -> bool:
        if simple.is_list():
            return relates(simple.item_type)
        if simple.is_union():
            return any(relates(member) for member in simple.member_types)
        facets = getattr(simple, "facets", {})
        return f"{{{XS}}}assertion" in facets or any(simple.is_derived(other) for other in related)

    for component in schema.iter_components():
        if isinstance(component, XsdIdentity | XsdAssert | XsdAlternative):
            return False
        xsd_type = component.type if isinstance(component, XsdElement | XsdAttribute) else component
        simple = xsd_type.content if isinstance(xsd_type, XsdComplexType) else xsd_type  # simple content
        if isinstance(simple, XsdSimpleType) and relates(simple):
            return False
    return True


class _Xsd11:
    """xmlschema's pass over one file, fed each child of the root as it is read."""

    def __init__(self, schema: Any, *, enabled: bool) -> None:
        self.schema = schema
        self.enabled = enabled
        self.declarations: dict[str, Any] = {}  # a child's name -> its declaration in the root
        self.shapes: dict[tuple[Any, ...], list[tuple[int, str, Any]]] = {}  # structures found valid -> leaves
        self.values: set[tuple[Any, str]] = set()  # (declaration, text) of leaves found valid
        self.counts: dict[str, int] = {}  # the root's children read so far, by name
        self.found: list[tuple[str, int, str, str]] = []  # child's name and position, path below it, message
        self.last: Any = None
        self.context: Any = None  # xmlschema's validation context for the leaves

    def child(self, element: Any) -> None:
        """Check a child of the root, read whole, then empty it (it stays, for the root's check)."""
        # A child of a name no global element declares is not reported alone: empty it too.
        sibling = element.getprevious()
        while sibling is not None and sibling is not self.last:
            sibling.clear()
            sibling = sibling.getprevious()
        self.last = element
        tag = element.tag
        position = self.counts[tag] = self.counts.get(tag, 0) + 1
        if self.enabled and len(self.found) < MAX_FAULTS:
            self._check(element, tag, position)
        tail = element.tail  # the root's own text: kept for its check if it is more than spaces
        element.clear()
        if tail and tail.strip():
            element.tail = tail

    def _check(self, element: Any, tag: str, position: int) -> None:
        declaration = self._declaration(element)
        if declaration is None:
            return  # not declared here: the root's own check says so
        shape = None if _IRREGULAR(element) else tuple((node.tag, len(node)) for node in element.iter())
        leaves = self.shapes.get(shape) if shape is not None else None
        if leaves is None:
            problems = list(declaration.iter_errors(element))
            for problem in problems:
                self.found.append((tag, position, _below(str(problem.path or "")), _message(problem)))
            if not problems and shape is not None:
                known = self._leaves(element, declaration)
                if known is not None:
                    if len(self.shapes) >= _MAX_SHAPES:
                        self.shapes.clear()
                    self.shapes[shape] = known
            return
        nodes = list(element.iter())
        for index, path, leaf in leaves:
            node = nodes[index]
            value = (leaf, node.text or "")
            if value in self.values:
                continue
            problems = self._leaf_problems(leaf, node)
            for problem in problems:
                self.found.append((tag, position, path + _below(str(problem.path or "")), _message(problem)))
            if not problems:
                self._remember(value)

    def _remember(self, value: tuple[Any, str]) -> None:
        if len(self.values) >= _MAX_VALUES:
            self.values.clear()
        self.values.add(value)

    def _leaf_problems(self, leaf: Any, node: Any) -> list[Any]:
        """xmlschema's check of a leaf against its declaration, in one validation context kept
        for the file and cleared before each leaf (making a context costs about 25 µs, the check
        of a value about 3: ``iter_errors`` makes one for each call)."""
        if self.context is None:
            import xmlschema
            from xmlschema.validators import ValidationContext

            self.context = ValidationContext(xmlschema.XMLResource(node))
        self.context.clear()
        leaf.raw_decode(node, "lax", self.context)
        return list(self.context.errors)

    def _declaration(self, element: Any) -> Any:
        tag = element.tag
        if tag not in self.declarations:
            root = self.schema.elements.get(element.getparent().tag)
            self.declarations[tag] = root.find(tag) if root is not None else None
        return self.declarations[tag]

    def _leaves(self, element: Any, declaration: Any) -> list[tuple[int, str, Any]] | None:
        """Each leaf of a valid child: its index in document order, its path below the child,
        and its declaration (None if one cannot be told: the structure is then not kept)."""
        tree = etree.ElementTree(element)
        leaves = []
        for index, node in enumerate(element.iter()):
            if len(node):
                continue
            path = _below(tree.getpath(node))
            leaf = declaration.find(re.sub(r"\[\d+\]", "", path).lstrip("/")) if path else declaration
            if leaf is None:
                return None
            leaves.append((index, path, leaf))
            self._remember((leaf, node.text or ""))
        return leaves

    def faults(self, root: Any) -> list[Fault]:
        """The root's own check (its children emptied, not descended into), then each child's
        faults, with the paths they have in the file."""
        if root is None:
            return []
        found = [
            _xsd11_fault(str(problem.path or "/"), problem) for problem in self.schema.iter_errors(root, max_depth=1)
        ]
        prefix = f"/{root.tag}"
        for tag, position, below, message in self.found:
            step = f"{tag}[{position}]" if self.counts[tag] > 1 else tag
            found.append(Fault(f"{prefix}/{step}{below}", message, "XSD 1.1"))
        return found


class _Doctype:
    """Parser target that only notes a DOCTYPE."""

    def __init__(self) -> None:
        self.declared = False

    def doctype(self, *_: object) -> None:
        self.declared = True

    def close(self) -> None:
        return None


class _Paths:
    """Parser target of lxml's second pass: follows the path of each element, and gives each
    fault libxml2 reports the path of the element it was on (it reports a fault just after the
    start or the end of its element, before the parser moves on), or of the ancestor the fault
    names."""

    def __init__(self) -> None:
        self.parser: Any = None
        # Each open element: how many children of each name it has had, and its path.
        self.open: list[tuple[dict[str, int], tuple[tuple[dict[str, int], str, int], ...]]] = [({}, ())]
        self.current: tuple[tuple[dict[str, int], str, int], ...] = ()
        self.logged = 0
        self.noted: list[tuple[tuple[tuple[dict[str, int], str, int], ...], str]] = []

    def start(self, tag: str, attrib: Any) -> None:
        self._note()
        counts, path = self.open[-1]
        position = counts[tag] = counts.get(tag, 0) + 1
        self.current = (*path, (counts, tag, position))
        self.open.append(({}, self.current))

    def end(self, tag: str) -> None:
        self._note()
        self.current = self.open.pop()[1]

    def close(self) -> None:
        self._note()

    def _note(self) -> None:
        if len(self.noted) >= MAX_FAULTS:
            return
        log = self.parser.error_log
        if len(log) > self.logged:
            for entry in list(log)[self.logged :]:
                if entry.domain == etree.ErrorDomains.SCHEMASV:
                    self.noted.append((self._of(entry.message), _plain(entry.message)))
            self.logged = len(log)

    def _of(self, message: str) -> tuple[tuple[dict[str, int], str, int], ...]:
        """The path of the element a message names (``Element 'report': …``): the one libxml2 was
        on, or one of its ancestors (text between elements is reported after the element before
        it, about their parent)."""
        named = _NAMED.match(message)
        path = self.current
        while named and path and path[-1][1] != named.group(1):
            path = path[:-1]
        return path or self.current

    def found(self) -> list[Fault]:
        """The faults, their paths written once every element's siblings are counted (a
        position is written only where siblings share the name, as libxml2 writes paths)."""
        faults = []
        for path, message in self.noted[:MAX_FAULTS]:
            steps = (tag if counts[tag] == 1 else f"{tag}[{position}]" for counts, tag, position in path)
            faults.append(Fault("/" + "/".join(steps), message, "lxml"))
        return faults


@lru_cache(maxsize=8)
def gate_for(xsd: bytes) -> Gate:
    """The gate of a schema (compiling xmlschema's takes a few hundred milliseconds)."""
    return Gate(xsd)


def _opened(source: Source) -> Any:
    return os.fspath(source) if isinstance(source, str | os.PathLike) else source


def _has_doctype(info: Any) -> bool:
    return bool(info.internalDTD is not None or info.system_url or info.public_id)


def _errors(log: Any) -> Iterator[Any]:
    """The errors of a log (not its warnings)."""
    return (entry for entry in log if entry.level >= etree.ErrorLevels.ERROR)


def _below(path: str) -> str:
    """The path without its first step: ``/transaction/amount_local`` → ``/amount_local``."""
    steps = path.split("/", 2)
    return "/" + steps[2] if len(steps) > 2 else ""


def _xsd11_fault(path: str, problem: Any) -> Fault:
    return Fault(_clean(path), _message(problem), "XSD 1.1")


def _message(problem: Any) -> str:
    return _plain(str(problem.reason or problem.message))


def _clean(path: str) -> str:
    return path or "/"


def _plain(message: str) -> str:
    """libxml2's message without its noise: ``Element 'x': [facet 'pattern'] The value …``."""
    text = message.strip()
    text = re.sub(r"\[facet '(\w+)'\]\s*", "", text)
    return text.replace("{http://www.w3.org/2001/XMLSchema}", "xs:")
