"""Warnings that point at the user's line, however deep the library warns."""

from __future__ import annotations

import os
import sys

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def caller_stacklevel() -> int:
    """The ``stacklevel`` (for the function calling this one) of the first
    frame outside optax_lode: a warning raised in a helper reached from
    ``Trajectories.from_csv`` or ``load_runs`` names the user's call, not
    the library's line (Python 3.12's ``skip_file_prefixes``, for 3.11)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level
