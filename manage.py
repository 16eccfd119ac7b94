#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caspix.settings")
    from django.core.management import execute_from_command_line

    from caspix.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        # A configuration mistake is the operator's to fix: name it, without a traceback.
        sys.exit(f"Caspix configuration error: {exc}")


if __name__ == "__main__":
    main()
