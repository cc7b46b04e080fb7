"""Argument checks and limits shared by the figures."""

from __future__ import annotations

import numbers

MAX_NAMES_IN_NOTE = 5  # names listed in a message or a title before "and N more"


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
