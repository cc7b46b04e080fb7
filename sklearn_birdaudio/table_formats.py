"""The formats of detection tables: their names, columns and per-file suffixes.

What the writers (:mod:`sklearn_birdaudio.tables`), the reader
(:mod:`sklearn_birdaudio.table_readers`) and the per-file tables
(:mod:`sklearn_birdaudio.table_files`) share; the formats themselves are described in
:mod:`sklearn_birdaudio.tables`.
"""

from __future__ import annotations

__all__ = ["COLUMNS", "FORMATS", "RAVEN_COLUMNS"]

COLUMNS = ("file", "start_s", "end_s", "label", "confidence")
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Species",
    "Confidence",
    "Begin Path",
    "File Offset (s)",
)
# What a per-file table's name ends with, after "<audio file stem>.birdaudio."; the reader
# takes a table's audio file name from it, table_files names the tables with it.
PER_FILE_SUFFIXES = {"csv": "csv", "raven": "selections.txt", "audacity": "labels.txt"}
FORMATS = tuple(PER_FILE_SUFFIXES)
TABLE_TAG = ".birdaudio."
DECIMALS = 6


def _checked_format(format: str) -> str:
    if format not in PER_FILE_SUFFIXES:
        allowed = ", ".join(map(repr, FORMATS))
        raise ValueError(f"format must be one of {allowed}; got {format!r}.")
    return format
