"""Limits shared by the figures; their parameter checks are `sklearn_birdaudio._validation`."""

from __future__ import annotations

from .._validation import check_integer

MAX_NAMES_IN_NOTE = 5  # names listed in a message or a title before "and N more"


def _check_positive_int(name: str, value) -> None:
    # Left for curves.py until it calls check_integer(value, name, min_val=1) itself.
    check_integer(value, name, min_val=1)
