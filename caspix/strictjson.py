"""The API's JSON parser: strict JSON, and each object names each key once.

A body that two JSON parsers could read differently (a key given twice: Python keeps the last,
another parser the first) is refused, and so are ``NaN`` and ``Infinity``, which are not JSON.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.parsers import JSONParser

from caspix.problems import Problem


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return json.load(stream, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        except ValueError as error:  # UnicodeDecodeError included
            raise Problem(400, "malformed-request", "The request body is not valid JSON", str(error)) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    made = dict(pairs)
    if len(made) != len(pairs):  # a key given twice was kept once
        raise ValueError("an object names a key twice")
    return made


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
