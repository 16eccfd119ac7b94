"""Template filters of the case pages."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def masked(value: Any, shown: int = 4) -> str:
    """An identifier with all but its last ``shown`` characters hidden: ``•••• 1234``."""
    text = str(value or "")
    if not text:
        return ""
    return "•••• " + text[-shown:] if len(text) > shown else "••••"
