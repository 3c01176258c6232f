"""Progress bars on stderr (count, rate, time left), silent when turned off (``--no-progress``).

The converters, the evaluation and the teacher-trace run all draw theirs with :func:`progress_bar`.

Example:
    >>> with progress_bar(total=3, desc="scoring", enabled=False) as bar:
    ...     bar.update(3)
    >>> list(progress_bar([1, 2], desc="rows", enabled=False))
    [1, 2]
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress_bar(iterable: Iterable | None = None, *, desc: str, enabled: bool, total: int | None = None,
                 unit: str = " rows") -> Any:
    """A tqdm bar over ``iterable`` (or of ``total`` steps, advanced with ``update``); a silent one when
    not ``enabled``. Use it as an iterable or as a context manager."""
    from tqdm import tqdm  # loaded when a bar is drawn: importing core needs only the standard library

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, mininterval=1.0,
                dynamic_ncols=True, file=sys.stderr)
