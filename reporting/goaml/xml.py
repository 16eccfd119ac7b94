"""goAML XML, written and read by the FIU's own schema: never by string formatting.

:class:`Shape` compiles an uploaded goAML XSD into what the writer needs: for each element, its
children in the schema's order, how often each may occur, and the XSD built-in type its text
has. :meth:`Shape.write_to` turns a report given as nested dictionaries into XML with lxml, in the
schema's element order, whatever order the dictionary holds, streaming it to a file an element of
the report at a time (a repeated element, such as 50,000 transactions, may be given as any
iterable, a generator included: each is written and freed in turn); :meth:`Shape.write` returns
the same bytes; :func:`read` turns goAML XML back into typed dictionaries. The traps of
``docs/goaml.md`` are handled here, once:

* dates are written ``YYYY-MM-DDTHH:MM:SS``, the wall-clock time as given (never shifted to
  another time zone: a local midnight stays on its day); a date alone becomes midnight;
* amounts are :class:`~decimal.Decimal` (floats are refused), written with ``.``, no grouping, no
  exponent, and no more fraction digits than the schema allows;
* an empty optional element is left out; an empty required one is an error naming it;
* an element with a fixed value is written with that value as the schema spells it
  (``is_primary`` is ``1``, which lxml requires where ``true`` is the same boolean);
* text is escaped by lxml, so ``&``, ``<`` and quotes in a narrative cannot break the file;
* no namespace; an element the schema does not declare where it is given is an error.
"""

from __future__ import annotations

import copy
import datetime
import io
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, BinaryIO

from lxml import etree

from reporting.goaml.schema import XS, parser

UNBOUNDED = -1
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


# Types told apart before the slower checks against the abstract Mapping and Iterable.
class Shared(dict[str, Any]):
    """A part of a report that recurs unchanged (the customer's account in each of 50,000
    transactions): written once per :meth:`Shape.write_to`, then copied by lxml wherever it
    recurs at the same place in the schema. It must not change while the report is written."""


_LISTS = (list, tuple)
_MAPPINGS = (dict, Mapping)
_COLLECTIONS = (dict, list, tuple)
_SCALARS = (Decimal, int, float, datetime.date)
_VALUES = (str, dict, list, tuple, Decimal, int, datetime.date, type(None))  # not read as streams


class WriteError(ValueError):
    """The report cannot be written as the schema demands; ``path`` names the element."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass
class Content:
    """The children of a complex type, in the schema's order, and its choices. Shared by every
    element of a named type (goAML's types are recursive: a person's related persons…)."""

    children: list[Element] = field(default_factory=list)
    # Each xs:choice: the names each of its alternatives may hold (one alternative at most).
    choice_groups: list[list[frozenset[str]]] = field(default_factory=list)

    # Read once the schema is compiled (a recursive type's content is filled after it is shared).

    @cached_property
    def declared(self) -> dict[str, Element]:
        """Each child name's first declaration (one declared again further on, in another branch,
        is written where it is first declared)."""
        first: dict[str, Element] = {}
        for child in self.children:
            first.setdefault(child.name, child)
        return first

    @cached_property
    def choices(self) -> list[tuple[frozenset[str], list[frozenset[str]]]]:
        """Each choice as all the names it holds, and its alternatives."""
        return [(frozenset().union(*alternatives), alternatives) for alternatives in self.choice_groups]

    @cached_property
    def position(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.declared)}

    @cached_property
    def always(self) -> frozenset[str]:
        """The children that are written, or refused as missing, even when not given."""
        return frozenset(name for name, child in self.declared.items() if not child.optional)


@dataclass
class Element:
    """An element declaration: its name, occurrences, and either its content or a simple type."""

    name: str
    min_occurs: int = 1
    max_occurs: int = 1
    fixed: str | None = None
    builtin: str = "string"  # the XSD built-in type of its text (simple content)
    fraction_digits: int | None = None
    content: Content | None = None  # None: simple content
    in_optional_group: bool = False  # inside a sequence or choice that may be left out whole
    in_repeated_group: bool = False  # inside a sequence or choice that may repeat

    @property
    def children(self) -> list[Element] | None:
        return self.content.children if self.content is not None else None

    @property
    def choice_groups(self) -> list[list[frozenset[str]]]:
        return self.content.choice_groups if self.content is not None else []

    @property
    def many(self) -> bool:
        return self.max_occurs != 1 or self.in_repeated_group

    @property
    def optional(self) -> bool:
        return self.min_occurs == 0 or self.in_optional_group


class Shape:
    """A goAML schema, compiled for writing and reading reports (``root``: ``report``)."""

    def __init__(self, xsd: bytes, root: str = "report") -> None:
        self._schema = etree.fromstring(xsd, parser())
        self._types = {node.get("name"): node for node in self._schema if node.get("name")}
        self._contents: dict[str, Content] = {}
        declaration = self._schema.find(f"{{{XS}}}element[@name='{root}']")
        if declaration is None:
            raise ValueError(f"the schema declares no <{root}> element")
        self.root = self._element(declaration)

    # --- compiling the schema ------------------------------------------------------------------

    def _element(self, node: Any) -> Element:
        if node.get("ref"):
            node = self._types[node.get("ref")]
        element = Element(
            name=str(node.get("name")),
            min_occurs=int(node.get("minOccurs", "1")),
            max_occurs=_max(node.get("maxOccurs", "1")),
            fixed=node.get("fixed"),
        )
        type_name = node.get("type")
        complex_type = node.find(f"{{{XS}}}complexType")
        simple_type = node.find(f"{{{XS}}}simpleType")
        if type_name is not None and not type_name.startswith("xs:"):
            definition = self._types[type_name]
            if definition.tag == f"{{{XS}}}complexType":
                element.content = self._named_content(type_name, definition)
                return element
            simple_type = definition
        if complex_type is not None:
            element.content = Content()
            self._particles(complex_type, element.content)
        elif simple_type is not None:
            element.builtin, element.fraction_digits = self._simple(simple_type)
        elif type_name is not None:
            element.builtin = type_name.removeprefix("xs:")
        return element

    def _named_content(self, name: str, definition: Any) -> Content:
        content = self._contents.get(name)
        if content is None:  # registered before it is filled: a recursive reference finds it
            content = self._contents[name] = Content()
            self._particles(definition, content)
        return content

    def _particles(self, node: Any, owner: Content, optional: bool = False, repeated: bool = False) -> None:
        for child in node:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            inner = optional or child.get("minOccurs") == "0"
            again = repeated or child.get("maxOccurs", "1") != "1"
            if tag == f"{{{XS}}}element":
                element = self._element(child)
                element.in_optional_group, element.in_repeated_group = optional, repeated
                owner.children.append(element)
            elif tag in (f"{{{XS}}}sequence", f"{{{XS}}}all"):
                self._particles(child, owner, inner, again)
            elif tag == f"{{{XS}}}choice":
                alternatives = []
                for alternative in child:
                    if not isinstance(alternative.tag, str):
                        continue
                    before = len(owner.children)
                    self._particles([alternative], owner, True, again)
                    alternatives.append(frozenset(c.name for c in owner.children[before:]))
                owner.choice_groups.append(alternatives)
            elif tag == f"{{{XS}}}group" and child.get("ref"):
                self._particles(self._types[child.get("ref")], owner, inner, again)
            elif tag in (f"{{{XS}}}complexContent", f"{{{XS}}}simpleContent"):
                for derivation in child:
                    base = derivation.get("base")
                    if base and not base.startswith("xs:") and base in self._types:
                        self._particles(self._types[base], owner, optional, repeated)
                    self._particles(derivation, owner, optional, repeated)

    def _simple(self, node: Any) -> tuple[str, int | None]:
        fraction: int | None = None
        for _ in range(20):
            restriction = node.find(f"{{{XS}}}restriction")
            if restriction is None:
                return "string", fraction  # a list or a union: written as text
            digits = restriction.find(f"{{{XS}}}fractionDigits")
            if digits is not None and fraction is None:
                fraction = int(str(digits.get("value")))
            base = str(restriction.get("base"))
            if base.startswith("xs:"):
                return base.removeprefix("xs:"), fraction
            node = self._types[base]
        raise ValueError("a simple type derives from itself")

    # --- writing -------------------------------------------------------------------------------

    def write(self, report: Mapping[str, Any]) -> bytes:
        """The report as goAML XML (UTF-8, with its declaration), or :class:`WriteError`."""
        buffer = io.BytesIO()
        self.write_to(buffer, report)
        return buffer.getvalue()

    def write_to(self, output: BinaryIO, report: Mapping[str, Any]) -> None:
        """Write the report to ``output`` as goAML XML, the same bytes :meth:`write` returns, an
        element of the report at a time: a repeated element (``transaction``…) may be given as any
        iterable, a generator included, which is read once and never held whole. On
        :class:`WriteError` what was written is incomplete (lxml still closes ``<report>``): the
        output must be discarded."""
        self._written: dict[tuple[int, int], tuple[Shared, Any]] = {}  # Shared parts, for this file
        with etree.xmlfile(output, encoding="UTF-8") as document:
            document.write_declaration(standalone=True)
            with document.element(self.root.name):
                for child, value, path in self._occurrences(self.root, report, self.root.name):
                    element = etree.Element(child.name)
                    self._put(element, child, value, path)
                    document.write(element)

    def _fill(self, node: Any, declaration: Element, data: Any, path: str) -> None:
        for child, value, here in self._occurrences(declaration, data, path):
            self._put(etree.SubElement(node, child.name), child, value, here)

    def _put(self, element: Any, declaration: Element, value: Any, path: str) -> None:
        if declaration.content is None:
            element.text = _text(declaration, value, path)
        elif isinstance(value, Shared):
            key = (id(declaration), id(value))
            known = self._written.get(key)
            if known is None:  # written (and checked) once, kept as a template
                self._fill(element, declaration, value, path)
                self._written[key] = (value, copy.deepcopy(element))
            else:
                element.extend(copy.deepcopy(child) for child in known[1])
        else:
            self._fill(element, declaration, value, path)

    def _occurrences(self, declaration: Element, data: Any, path: str) -> Iterator[tuple[Element, Any, str]]:
        """The children to write under ``declaration``, in the schema's order, each as its
        declaration, its value and its path; :class:`WriteError` for what the schema refuses. A
        list or tuple is checked whole first; any other iterable is read lazily, once."""
        content = declaration.content
        if content is None or not isinstance(data, _MAPPINGS):
            raise WriteError(path, "expected the element's children (a mapping)")
        if not content.declared.keys() >= data.keys():
            strangers = sorted(set(data) - content.declared.keys())
            raise WriteError(path, f"the schema declares no {', '.join(strangers)} here")
        # An iterable's first present item is read now: whether it holds any decides choices.
        streams = {name: _first_present(value) for name, value in data.items() if _is_stream(value)}
        for names_of_choice, alternatives in content.choices:
            if names_of_choice.isdisjoint(data):
                continue
            given = {name for name in names_of_choice.intersection(data) if _given(data, streams, name)}
            if given and not any(given <= names for names in alternatives):
                raise WriteError(path, f"{', '.join(sorted(given))} are alternatives of one choice: give one of them")
        for name in sorted(content.always.union(data), key=content.position.__getitem__):
            child = content.declared[name]
            value = data.get(name)
            where = f"{path}/{name}"
            values: Iterable[Any] | None
            if name in streams:
                values = streams[name]
            elif isinstance(value, _LISTS):
                values = [v for v in value if _present(v)] or None
            elif _present(value):  # one value: the usual case
                yield child, value, f"{where}[1]" if child.many else where
                continue
            else:
                values = None
            if values is None:
                if not child.optional and child.fixed is None:
                    raise WriteError(where, "is required")
                if child.fixed is not None and not child.optional:
                    yield child, child.fixed, where
                continue
            if not child.many:
                raise WriteError(where, "occurs once here, not as a list")
            at_most = UNBOUNDED if child.in_repeated_group else child.max_occurs
            if isinstance(values, list):
                if at_most != UNBOUNDED and len(values) > at_most:
                    raise WriteError(where, f"occurs at most {at_most} times")
                if len(values) < child.min_occurs:
                    raise WriteError(where, f"occurs at least {child.min_occurs} times")
            count = 0
            for count, item in enumerate(values, start=1):
                if at_most != UNBOUNDED and count > at_most:
                    raise WriteError(where, f"occurs at most {at_most} times")
                yield child, item, f"{where}[{count}]"
            if count < child.min_occurs:
                raise WriteError(where, f"occurs at least {child.min_occurs} times")


def _max(value: str) -> int:
    return UNBOUNDED if value == "unbounded" else int(value)


def _is_stream(value: Any) -> bool:
    """An iterable of values other than a list or tuple (a generator…): read lazily, once."""
    if isinstance(value, _VALUES):
        return False
    return isinstance(value, Iterable) and not isinstance(value, bytes | Mapping)


def _first_present(values: Iterable[Any]) -> Iterator[Any] | None:
    """The present items of ``values``, read lazily; None when there are none."""
    present = filter(_present, values)
    for first in present:
        return itertools.chain(iter((first,)), present)  # an iterator, which lets go of it once read
    return None


def _given(data: Mapping[str, Any], streams: Mapping[str, Iterator[Any] | None], name: str) -> bool:
    """Whether an alternative of a choice is given (a list counts even if its items are empty)."""
    return streams[name] is not None if name in streams else _present(data.get(name))


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    if isinstance(value, _COLLECTIONS):
        return len(value) > 0
    return isinstance(value, _SCALARS) or not isinstance(value, Mapping) or len(value) > 0


def _text(declaration: Element, value: Any, path: str) -> str:
    builtin = declaration.builtin
    if builtin == "string" and declaration.fixed is None and isinstance(value, str):
        return value  # the usual case, which the checks below would come to
    if declaration.fixed is not None:
        if value is not True and str(value) != declaration.fixed:
            raise WriteError(path, f"is fixed to {declaration.fixed}")
        return declaration.fixed
    if isinstance(value, float):
        raise WriteError(path, "a float is not an exact amount: give a Decimal")
    if builtin in ("dateTime", "date"):
        if isinstance(value, datetime.datetime):
            moment = value.replace(tzinfo=None, microsecond=0)  # the wall-clock time as given
        elif isinstance(value, datetime.date):
            moment = datetime.datetime(value.year, value.month, value.day)  # noqa: DTZ001 (goAML's wall clock)
        else:
            raise WriteError(path, "expected a date or a date and time")
        if moment.year < 1753:
            raise WriteError(path, "is before 1753-01-01, which goAML refuses")
        return moment.strftime(_DATE_FORMAT) if builtin == "dateTime" else moment.strftime("%Y-%m-%d")
    if builtin in ("decimal",):
        if not isinstance(value, Decimal | int) or isinstance(value, bool):
            raise WriteError(path, "expected an amount (a Decimal)")
        amount = Decimal(value)
        if not amount.is_finite():
            raise WriteError(path, "is not a finite amount")
        exponent = amount.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if declaration.fraction_digits is not None and places > declaration.fraction_digits:
            raise WriteError(path, f"has {places} decimal places; the schema allows {declaration.fraction_digits}")
        return format(amount, "f")
    if builtin in ("int", "integer", "long", "short", "positiveInteger", "nonNegativeInteger"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise WriteError(path, "expected a whole number")
        return str(value)
    if builtin == "boolean":
        if not isinstance(value, bool):
            raise WriteError(path, "expected yes or no (a boolean)")
        return "true" if value else "false"
    if not isinstance(value, str):
        raise WriteError(path, f"expected text, not {type(value).__name__}")
    return value


# --- reading -------------------------------------------------------------------------------------


def read(shape: Shape, xml: bytes) -> dict[str, Any]:
    """goAML XML as the typed dictionaries :meth:`Shape.write` takes (entities and network off)."""
    root = etree.fromstring(xml, parser())
    if root.tag != shape.root.name:
        raise ValueError(f"the root element is <{root.tag}>, not <{shape.root.name}>")
    return _read(root, shape.root)


def _read(node: Any, declaration: Element) -> dict[str, Any]:
    by_name = {child.name: child for child in declaration.children or []}
    data: dict[str, Any] = {}
    for child in node:
        if not isinstance(child.tag, str):
            continue  # a comment or processing instruction
        child_declaration = by_name.get(child.tag)
        if child_declaration is None:
            raise ValueError(f"<{child.tag}> is not declared in <{declaration.name}>")
        value = (
            _read(child, child_declaration)
            if child_declaration.children is not None
            else _value(child_declaration, child.text or "")
        )
        if child_declaration.many:
            data.setdefault(child.tag, []).append(value)
        else:
            data[child.tag] = value
    return data


def _value(declaration: Element, text: str) -> Any:
    if declaration.fixed is not None:
        return True if declaration.builtin == "boolean" else text
    builtin = declaration.builtin
    try:
        if builtin == "dateTime":
            return datetime.datetime.strptime(text.strip(), _DATE_FORMAT)  # noqa: DTZ007 (goAML's wall clock)
        if builtin == "date":
            return datetime.date.fromisoformat(text.strip())
        if builtin == "decimal":
            return Decimal(text.strip())
        if builtin in ("int", "integer", "long", "short", "positiveInteger", "nonNegativeInteger"):
            return int(text.strip())
        if builtin == "boolean":
            return text.strip() in ("true", "1")
    except (ValueError, InvalidOperation) as error:
        raise ValueError(f"<{declaration.name}> holds {text!r}, not a {builtin}") from error
    return text
