"""A progress bar on the command's stderr (quiet when stderr is not a terminal)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


@contextmanager
def progress_bar(total: int, label: str, stream: Any) -> Iterator[tqdm[Any]]:
    with tqdm(total=total, desc=label, unit="key" if "key" in label else "row", file=stream, disable=None) as bar:
        yield bar
