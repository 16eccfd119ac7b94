"""How a benchmark reports a figure."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    ceiling: float
    ratio: float

    @classmethod
    def throughput(cls, name: str, value: float, unit: str, ceiling: float) -> Figure:
        return cls(name, round(value, 3), unit, round(ceiling, 3), round(value / ceiling, 3))

    @classmethod
    def latency(cls, name: str, value: float, unit: str, ceiling: float) -> Figure:
        return cls(name, round(value, 3), unit, round(ceiling, 3), round(ceiling / value, 3))


def emit(figure: Figure) -> None:
    print(json.dumps(asdict(figure)), flush=True)
    sys.stdout.flush()
