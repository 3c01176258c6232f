"""The converters' error for malformed input, in a module of its own so that every converter
module (the row writer and the leakage check among them) can import it without an import cycle."""

from __future__ import annotations


class ConversionError(ValueError):
    """Malformed input; the message names the file and the row or line."""
