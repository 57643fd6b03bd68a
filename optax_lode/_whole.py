"""Counts given by the user (steps, ticks, windows): whole numbers, not truncated.

``int(1.5)`` is 1: a count passed as a float (a computed ``steps / 2``, say)
would silently become another count, so it is refused with its name.
"""

from __future__ import annotations

from typing import Any


def whole(name: str, value: Any) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name``."""
    try:
        ok = not isinstance(value, (bool, str, bytes)) and int(value) == value
    except (TypeError, ValueError, OverflowError):  # None, nan, inf
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a whole number; got {value!r}.")
    return int(value)
