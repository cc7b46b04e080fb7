"""Reading detection tables back: :func:`read_detections`, for every format.

The inverse of :func:`~sklearn_birdaudio.tables.write_detections` and
:func:`~sklearn_birdaudio.table_files.write_detections_per_file` (which describe the
formats), and a reader of the Raven selection tables and Audacity label tracks other
tools write. :mod:`sklearn_birdaudio.tables` re-exports :func:`read_detections`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._deprecation import deprecate_positional
from .table_formats import COLUMNS, PER_FILE_SUFFIXES, TABLE_TAG, _checked_format
from .text_cells import (
    csv_cell_text,
    labels_from_text,
    read_delimited,
    read_table_text,
    tab_cell_text,
)

__all__ = ["read_detections"]

_LINE_BREAK = re.compile("\r\n|\r|\n")


def _audio_name(table_path: Path) -> str:
    """The audio file a table was written for, as far as its name tells: its stem."""
    for suffix in PER_FILE_SUFFIXES.values():
        if table_path.name.endswith(TABLE_TAG + suffix):
            return table_path.name[: -len(TABLE_TAG + suffix)]
    return table_path.stem


def _inferred_format(path: Path, text: str) -> str:
    if path.suffix.lower() == ".csv":
        return "csv"
    return "raven" if text.startswith("Selection\t") else "audacity"


def _numbers(values: pd.Series, path: Path) -> pd.Series:
    try:
        return values.astype(float)
    except ValueError as error:
        raise ValueError(
            f"{path}: column {values.name!r} holds a value that is not a number ({error})."
        ) from error


def _read_csv(text: str, path: Path) -> pd.DataFrame:
    table = read_delimited(text, path, ",", COLUMNS).loc[:, list(COLUMNS)]
    return table.assign(
        file=table["file"].map(csv_cell_text), label=table["label"].map(csv_cell_text)
    )


def _read_raven(text: str, path: Path) -> pd.DataFrame:
    required = ("Begin Time (s)", "End Time (s)", "Species", "Confidence")
    table = read_delimited(text, path, "\t", required)
    begin_s = _numbers(table["Begin Time (s)"], path)
    end_s = _numbers(table["End Time (s)"], path)
    # Tables that Raven itself writes have no File Offset: their times are within the file.
    start_s = _numbers(table["File Offset (s)"], path) if "File Offset (s)" in table else begin_s
    return pd.DataFrame(
        {
            "file": (
                table["Begin Path"].map(tab_cell_text)
                if "Begin Path" in table
                else _audio_name(path)
            ),
            "start_s": start_s,
            "end_s": start_s + (end_s - begin_s),
            "label": table["Species"].map(tab_cell_text),
            "confidence": table["Confidence"],
        }
    )


def _label_and_confidence(label_text: str) -> tuple[str, float]:
    """Split BirdNET's ``label;confidence`` at the last ``;`` (a label may hold ``;``); text
    without a number after it is all label, with an unknown (NaN) confidence."""
    label, separator, confidence = label_text.rpartition(";")
    try:
        return (label, float(confidence)) if separator else (label_text, np.nan)
    except ValueError:
        return label_text, np.nan


def _read_audacity(text: str, path: Path) -> pd.DataFrame:
    records = []
    # Only LF, CR and CR LF end a line: a label may hold the other breaks splitlines() knows.
    for line_number, line in enumerate(_LINE_BREAK.split(text), start=1):
        # Audacity writes a spectral selection as an extra line starting with a backslash.
        if not line.strip() or line.startswith("\\"):
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(
                f"{path}, line {line_number}: expected 'start<TAB>end<TAB>label' as in an "
                f"Audacity label track; got {line!r}."
            )
        start_s, end_s, label_text = fields
        label, confidence = _label_and_confidence(label_text)
        records.append((_audio_name(path), start_s, end_s, tab_cell_text(label), confidence))
    return pd.DataFrame(records, columns=list(COLUMNS))


@deprecate_positional
def read_detections(
    path: str | os.PathLike, *, format: str | None = None, file: str | None = None
) -> pd.DataFrame:
    """Read a table written by :func:`write_detections` or
    :func:`~sklearn_birdaudio.table_files.write_detections_per_file`.

    Parameters
    ----------
    path : str or path-like
        The table.
    format : {"csv", "raven", "audacity"}, optional
        Its format. By default: ``"csv"`` for a ``.csv`` file, ``"raven"`` when the first
        line starts with ``Selection<TAB>``, otherwise ``"audacity"``.
    file : str, optional
        The audio file of every row, overriding what the table says. Without it the file
        comes from the table's ``file`` column (CSV) or ``Begin Path`` (Raven); an
        Audacity track (or a Raven table without ``Begin Path``) does not name its audio
        file, so it is the table's name without ``.birdaudio.<suffix>`` (or without its
        suffix): ``"dawn"`` for ``dawn.birdaudio.labels.txt``.

    Returns
    -------
    pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, in table order. From a Raven
        table, ``start_s`` is ``File Offset (s)`` and ``end_s`` is ``start_s`` plus the
        selection's length. File names and labels are unescaped (see the module's
        description): a text cell that starts with ``'`` loses it. Labels come back as
        ``int`` when every label of the table is an integer written plainly (``"3"``, not
        ``"03"``) that fits in 64 bits, otherwise as ``str``. An Audacity label without
        ``;confidence`` gives a NaN confidence.

    Raises
    ------
    ValueError
        If ``format`` is unknown, the file is not UTF-8 text, a needed column is missing, or
        a line or value is malformed.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_birdaudio.tables import write_detections
    >>> detections = pd.DataFrame({"file": ["a.wav"], "start_s": [0.0], "end_s": [2.5],
    ...     "label": [7], "confidence": [0.25]})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_detections(detections, Path(folder) / "a.txt", format="audacity")
    ...     read_detections(path, file="a.wav")
        file  start_s  end_s  label  confidence
    0  a.wav      0.0    2.5      7        0.25
    """
    path = Path(path)
    text = read_table_text(path)
    format = _inferred_format(path, text) if format is None else _checked_format(format)
    readers = {"csv": _read_csv, "raven": _read_raven, "audacity": _read_audacity}
    table = readers[format](text, path)
    if file is not None:
        table["file"] = os.fspath(file)
    numbers = {
        column: _numbers(table[column], path) for column in ("start_s", "end_s", "confidence")
    }
    return table.assign(
        file=table["file"].astype(str), **numbers, label=labels_from_text(table["label"])
    ).reset_index(drop=True)
