"""Typed, fail-loud readers for configuration from the environment.

Every setting Caspix reads comes through these functions. A secret may be given directly
(``NAME``) or as a path to a file holding it (``NAME_FILE``, as Docker and Kubernetes secrets
mount them); both at once is an error, because one of them would be silently ignored.

A missing or unreadable value raises :class:`ConfigError` naming the variable and what is
expected, so a misconfigured process stops at start-up instead of running half-configured.
"""

from __future__ import annotations

import builtins
import decimal
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and what is expected."""


class Env:
    """Reads typed values from an environment mapping (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def _raw(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def is_set(self, name: builtins.str) -> builtins.bool:
        return self._raw(name) is not None or self._raw(f"{name}_FILE") is not None

    def str(
        self, name: builtins.str, default: builtins.str | None = None, *, choices: tuple[builtins.str, ...] = ()
    ) -> builtins.str:
        value = self._raw(name)
        if value is None:
            if default is None:
                raise ConfigError(f"{name} is required" + _expecting(choices))
            value = default
        if choices and value not in choices:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")
        return value

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean (expected true/false, 1/0, yes/no, on/off)")

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a whole number") from None
        if minimum is not None and number < minimum:
            raise ConfigError(f"{name}={number} is below the minimum {minimum}")
        if maximum is not None and number > maximum:
            raise ConfigError(f"{name}={number} is above the maximum {maximum}")
        return number

    def list(self, name: builtins.str, default: tuple[builtins.str, ...] = ()) -> builtins.list[builtins.str]:
        """A comma-separated list; blank items are dropped."""
        value = self._raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def amounts(self, name: builtins.str, default: builtins.str) -> builtins.dict[builtins.str, decimal.Decimal]:
        """Amounts by currency, comma-separated: ``EUR 10000, USD 10000`` (ISO 4217 codes)."""
        value = self._raw(name) or default
        amounts: builtins.dict[builtins.str, decimal.Decimal] = {}
        for item in value.split(","):
            parts = item.split()
            if not item.strip():
                continue
            if len(parts) != 2 or not (len(parts[0]) == 3 and parts[0].isalpha() and parts[0].isupper()):
                raise ConfigError(f"{name} holds {item.strip()!r}: expected a currency code and an amount, EUR 10000")
            try:
                amount = decimal.Decimal(parts[1])
            except decimal.InvalidOperation:
                raise ConfigError(f"{name} holds {item.strip()!r}, whose amount is not a number") from None
            if not amount.is_finite() or amount < 0:
                raise ConfigError(f"{name} holds {item.strip()!r}: an amount is zero or more")
            if parts[0] in amounts:
                raise ConfigError(f"{name} names {parts[0]} twice")
            amounts[parts[0]] = amount
        return amounts

    def networks(
        self, name: builtins.str, default: tuple[builtins.str, ...] = ()
    ) -> builtins.list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """A comma-separated list of CIDR ranges (a bare address is a /32 or /128)."""
        networks = []
        for item in self.list(name, default):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"{name} holds {item!r}, which is not an IP address or CIDR range") from None
        return networks

    def secret(
        self, name: builtins.str, default: builtins.str | None = None, *, min_length: builtins.int = 1
    ) -> builtins.str:
        """A secret from ``NAME`` or from the file named by ``NAME_FILE``.

        The value never appears in an error message, only its name and the problem.
        """
        direct = self._raw(name)
        file_name = self._raw(f"{name}_FILE")
        if direct is not None and file_name is not None:
            raise ConfigError(f"{name} and {name}_FILE are both set; set only one")
        if file_name is not None:
            value = _read_secret_file(name, Path(file_name))
        elif direct is not None:
            value = direct
        elif default is not None:
            value = default
        else:
            raise ConfigError(f"{name} (or {name}_FILE, a path to a file holding it) is required")
        if len(value) < min_length:
            raise ConfigError(f"{name} is too short: at least {min_length} characters are required")
        return value

    def optional_secret(self, name: builtins.str) -> builtins.str | None:
        if not self.is_set(name):
            return None
        return self.secret(name)


def _read_secret_file(name: str, path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE points to {path}, which cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}_FILE points to {path}, which is not UTF-8 text") from None
    if not value:
        raise ConfigError(f"{name}_FILE points to {path}, which is empty")
    return value


def _expecting(choices: tuple[str, ...]) -> str:
    return f" (one of {', '.join(choices)})" if choices else ""
