"""Start gunicorn on a free loopback port and drive it with wrk."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# wrk prints this JSON after its human-readable summary.
WRK_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format('\\n{"requests": %d, "seconds": %f, "errors": %d, "non2xx": %d, '
    .. '"p50_us": %f, "p95_us": %f, "p99_us": %f}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(settings: str = "bench.settings", workers: int = 2) -> Iterator[str]:
    """gunicorn with the test settings and the benchmarks' URLconf; yields its base URL."""
    with serve({**os.environ, "CASPIX_ENV": "test"}, settings, workers) as base:
        yield base


@contextmanager
def gunicorn_process(
    env: dict[str, str], settings: str = "caspix.settings", workers: int = 1
) -> Iterator[Callable[[str], Any]]:
    """gunicorn with the given environment; yields a GET function for paths on it."""
    with serve(env, settings, workers) as base:
        yield lambda path: urllib.request.urlopen(base + path, timeout=10)  # noqa: S310 (loopback)


@contextmanager
def serve(env: dict[str, str], settings: str, workers: int) -> Iterator[str]:
    """gunicorn with exactly this environment and settings module; yields its base URL."""
    port = free_port()
    env = {**env, "DJANGO_SETTINGS_MODULE": settings}
    command = [sys.executable, "-m", "gunicorn", "caspix.wsgi:application", "--config", "deploy/gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--max-requests", "0"]
    with tempfile.TemporaryFile() as log:  # a pipe nobody reads would stall the server once full
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        failed = True
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310 (loopback)
                        if response.status == 200:
                            break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("gunicorn did not start") from None
                    time.sleep(0.2)
            yield base
            failed = False
        finally:
            process.terminate()
            process.wait(timeout=30)
            if failed:  # what the server said, to diagnose the failure
                log.seek(0)
                sys.stderr.write(log.read()[-20_000:].decode(errors="replace"))


def wrk(url: str, seconds: int = 10, connections: int = 16, threads: int = 1) -> dict[str, float]:
    """Load ``url`` for ``seconds`` and return requests/s and latency percentiles (ms)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_REPORT)
    try:
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    report = json.loads(output.strip().splitlines()[-1])
    if report["errors"] or report["non2xx"]:
        raise RuntimeError(f"wrk saw failures on {url}: {report}")
    return {
        "rps": report["requests"] / report["seconds"],
        "p50_ms": report["p50_us"] / 1000,
        "p95_ms": report["p95_us"] / 1000,
        "p99_ms": report["p99_us"] / 1000,
    }
