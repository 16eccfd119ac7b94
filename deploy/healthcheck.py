"""Container health probe: ``GET http://127.0.0.1:$PORT/healthz``; exit 0 on 200, 1 otherwise.

Run by the image's HEALTHCHECK and by docker-compose.yml. Standard library only: a probe that
loaded Django would be slow and could fail for reasons that are not the web process's health.

Django answers 400 to a Host header that is not in ``ALLOWED_HOSTS``, so the probe sends the first
host of ``CASPIX_ALLOWED_HOSTS`` rather than ``127.0.0.1``. A redirect counts as a failure (it is
never followed), and proxy variables are ignored: the probe only ever talks to loopback.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping

TIMEOUT_SECONDS = 4.0


def probe_host(environ: Mapping[str, str]) -> str:
    for item in environ.get("CASPIX_ALLOWED_HOSTS", "").split(","):
        # ".bank.example" allows the domain and its subdomains; "*" allows anything.
        host = item.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def probe_url(environ: Mapping[str, str]) -> str:
    port = int(environ.get("PORT", "").strip() or "8000")
    return f"http://127.0.0.1:{port}/healthz"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def probe(environ: Mapping[str, str]) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    request = urllib.request.Request(probe_url(environ), headers={"Host": probe_host(environ)})  # noqa: S310
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(0 if probe(os.environ) else 1)
