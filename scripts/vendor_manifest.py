"""Rewrite static/vendor/VENDORED.json from the vendored files and the pins in package.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "static" / "vendor"
FILES = {
    "htmx.org": ["htmx/htmx.min.js"],
    "chart.js": ["chartjs/chart.umd.min.js", "chartjs/chart.umd.min.js.map"],
    "dejavu-fonts-ttf": ["dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf"],
}


def main() -> None:
    pins = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    manifest = {
        package: {
            "version": pins[package],
            "source": f"npm package {package}, pinned in package.json and package-lock.json; refreshed by make vendor",
            "files": {name: "sha256:" + hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() for name in names},
        }
        for package, names in FILES.items()
    }
    (VENDOR / "VENDORED.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
