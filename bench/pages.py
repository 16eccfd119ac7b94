"""Pages timed through Django's whole stack in one process, against the bare layout's time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bench.figures import Figure

CEILING = "bare_page"  # the page of the layout with nothing in it, /__bench__/page


def interleaved(client: Any, pages: Mapping[str, Callable[[], str]], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per request of each page, ``rounds`` times, the pages taken in turn so that a
    slow moment of the machine hits every page alike."""
    samples: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(rounds):
        for name, url in pages.items():
            target = url()
            start = time.perf_counter()
            response = client.get(target)
            samples[name].append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{target} answered {response.status_code}")
    return samples


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def latency_figures(samples: Mapping[str, list[float]], names: Iterable[str]) -> list[Figure]:
    """p50 and p95 of each named page, each against the same percentile of :data:`CEILING`."""
    base50, base95 = percentiles(samples[CEILING])
    figures = []
    for name in names:
        p50, p95 = percentiles(samples[name])
        figures += [Figure.latency(f"{name}_p50", p50, "ms", base50), Figure.latency(f"{name}_p95", p95, "ms", base95)]
    return figures
