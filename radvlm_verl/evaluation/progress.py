"""The evaluation's progress bars: tqdm on stderr with count, rate and ETA, off with ``--no-progress``.

Example:
    >>> with progress_bar(3, "scoring", enabled=False) as bar:
    ...     bar.update(3)
"""

from __future__ import annotations


def progress_bar(total: int, desc: str, enabled: bool, unit: str = " rows"):
    """A tqdm bar of ``total`` steps (a silent one when not ``enabled``); use it as a context manager."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, mininterval=1.0, dynamic_ncols=True)
