"""deploy/healthcheck.py: 200 from /healthz on loopback is healthy; anything else is not."""

from __future__ import annotations

import http.server
import runpy
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HEALTHCHECK = Path(__file__).resolve().parents[2] / "deploy" / "healthcheck.py"


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return runpy.run_path(str(HEALTHCHECK))


class Recorder:
    def __init__(self) -> None:
        self.status = 200
        self.location = ""
        self.requests: list[tuple[str, str | None]] = []


@pytest.fixture
def server() -> Iterator[tuple[int, Recorder]]:
    recorder = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.requests.append((self.path, self.headers.get("Host")))
            self.send_response(recorder.status)
            if recorder.location:
                self.send_header("Location", recorder.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


def environ(port: int, **extra: str) -> dict[str, str]:
    return {"PORT": str(port), "CASPIX_ALLOWED_HOSTS": "caspix.bank.example,other.example", **extra}


def test_it_is_healthy_on_200_and_sends_an_allowed_host(module: dict[str, Any], server: tuple[int, Recorder]) -> None:
    port, recorder = server
    probe: Callable[[dict[str, str]], bool] = module["probe"]
    assert probe(environ(port)) is True
    assert recorder.requests == [("/healthz", "caspix.bank.example")]


@pytest.mark.parametrize("status", [500, 503, 400, 404])
def test_it_is_unhealthy_on_an_error(module: dict[str, Any], server: tuple[int, Recorder], status: int) -> None:
    port, recorder = server
    recorder.status = status
    assert module["probe"](environ(port)) is False


def test_it_does_not_follow_a_redirect(module: dict[str, Any], server: tuple[int, Recorder]) -> None:
    port, recorder = server
    recorder.status = 301
    recorder.location = f"http://127.0.0.1:{port}/elsewhere"
    assert module["probe"](environ(port)) is False
    assert [path for path, _ in recorder.requests] == ["/healthz"]


def test_it_ignores_proxy_settings(
    module: dict[str, Any], server: tuple[int, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = server
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert module["probe"](environ(port)) is True


def test_it_is_unhealthy_when_nothing_listens(module: dict[str, Any]) -> None:
    assert module["probe"](environ(1)) is False


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("caspix.bank.example", "caspix.bank.example"),
        (" .bank.example , x.example", "bank.example"),
        ("*,caspix.bank.example", "caspix.bank.example"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_it_picks_a_host_django_allows(module: dict[str, Any], allowed: str, host: str) -> None:
    assert module["probe_host"]({"CASPIX_ALLOWED_HOSTS": allowed}) == host


def test_it_probes_port_8000_by_default(module: dict[str, Any]) -> None:
    assert module["probe_url"]({}) == "http://127.0.0.1:8000/healthz"
