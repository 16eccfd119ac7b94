"""The login page against a bare Django view, on the same gunicorn, under wrk on loopback."""

from __future__ import annotations

from bench.figures import Figure
from bench.server import gunicorn, wrk

WARM_UP_SECONDS = 2
SECONDS = 10


def run() -> list[Figure]:
    with gunicorn() as base:
        for path in ("/__bench__/bare", "/login/"):
            wrk(base + path, seconds=WARM_UP_SECONDS)
        ceiling = wrk(base + "/__bench__/bare", seconds=SECONDS)
        login = wrk(base + "/login/", seconds=SECONDS)
    return [
        Figure.throughput("login_page_rps", login["rps"], "requests/s", ceiling["rps"]),
        Figure.latency("login_page_p95", login["p95_ms"], "ms", ceiling["p95_ms"]),
    ]
