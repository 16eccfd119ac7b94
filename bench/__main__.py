"""``python -m bench [name ...]``: run every ``bench/bench_*.py`` (or the named ones)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench
from bench.figures import emit


def main(selected: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    for name in names:
        if selected and name.removeprefix("bench_") not in selected and name not in selected:
            continue
        module = importlib.import_module(f"bench.{name}")
        for figure in module.run():
            emit(figure)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
