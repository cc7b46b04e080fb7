"""Writers of detection tables: CSV, Raven Pro selection tables, Audacity labels.

The formats are described in :mod:`sklearn_birdaudio.tables`, the public face of the tables
(writers, readers and per-file tables); this module writes one table, atomically.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from itertools import accumulate
from pathlib import Path

import numpy as np
import pandas as pd

from ._deprecation import deprecate_positional
from .table_formats import COLUMNS, DECIMALS, RAVEN_COLUMNS, _checked_format
from .text_cells import csv_cell, csv_number_cells, delimited_text, tab_cell, texts

__all__ = ["atomic_write_text", "check_detections", "per_file_texts", "write_detections"]

DEFAULT_FREQUENCY_RANGE = (0.0, 16000.0)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to a file atomically: all of it or, on any error, nothing.

    The text goes to a temporary file in the same folder, which is flushed to disk and then
    renamed onto ``path`` with :func:`os.replace` (atomic on POSIX and Windows). If anything
    fails, the temporary file is removed and a file already at ``path`` is left as it was.
    Missing parent folders are created. Line endings are written as given.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    text : str
        Its whole content.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = atomic_write_text(Path(folder) / "new" / "notes.txt", "a\\n")
    ...     path.read_text(), sorted(p.name for p in path.parent.iterdir())
    ('a\\n', ['notes.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Mode 0o666 lets the umask decide the permissions, as open() does; tempfile.mkstemp
    # would leave the table readable by its owner only.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    descriptor = os.open(temporary, flags, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


@deprecate_positional
def check_detections(
    detections: pd.DataFrame, name: str = "detections", *, other_columns: bool = False
) -> pd.DataFrame:
    """Check a detection table: the five columns, with files as str and numbers as float.

    Parameters
    ----------
    detections : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, as
        :func:`~sklearn_birdaudio.detect` returns.
    name : str, default="detections"
        What error messages call the table.
    other_columns : bool, default=False
        Keep the table's other columns too, where they are.

    Returns
    -------
    pandas.DataFrame
        A copy with a fresh index: ``file`` as str, ``start_s``, ``end_s`` and
        ``confidence`` as float, labels as given.

    Raises
    ------
    TypeError
        If ``detections`` is not a DataFrame.
    ValueError
        If a column is missing, or a number column holds something that is not a number.

    Examples
    --------
    >>> rows = check_detections(pd.DataFrame({"file": [1], "start_s": [0], "end_s": [3],
    ...     "label": ["wren"], "confidence": [1]}))
    >>> rows["file"].tolist(), rows["end_s"].tolist()
    (['1'], [3.0])
    """
    if not isinstance(detections, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas DataFrame with the columns {list(COLUMNS)}; "
            f"got {type(detections).__name__}."
        )
    missing = [column for column in COLUMNS if column not in detections.columns]
    if missing:
        raise ValueError(
            f"{name} is missing the column(s) {missing}; a detection table has the "
            f"columns {list(COLUMNS)}, as detect() returns; got {list(detections.columns)}."
        )
    rows = detections if other_columns else detections.loc[:, list(COLUMNS)]
    rows = rows.reset_index(drop=True).assign(file=lambda table: table["file"].astype(str))
    for column in ("start_s", "end_s", "confidence"):
        try:
            rows[column] = rows[column].astype(float)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name}[{column!r}] must hold numbers; converting it failed: {error}."
            ) from error
    return rows


def _check_encodable_text(rows: pd.DataFrame) -> None:
    """Refuse file names and labels that a UTF-8 table cannot hold: lone surrogates."""
    for column in ("file", "label"):
        for value in texts(rows[column]):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(
                    f"detections[{column!r}] holds {value!r}, which UTF-8 cannot encode "
                    f"({error.reason}: {value[error.start : error.end]!r}); tables are UTF-8 "
                    "text, so expected text without lone surrogates (a file name that is not "
                    "UTF-8 on disk decodes to them: rename the file)."
                ) from error


def _file_durations(attrs: dict, rows: pd.DataFrame) -> dict[str, float]:
    """Duration of every file, in table order.

    Files in ``attrs["durations"]`` come first, in its order, then files seen only in rows,
    whose duration is taken as their last detection's end.
    """
    durations = {str(file): float(seconds) for file, seconds in attrs.get("durations", {}).items()}
    last_ends = rows.groupby("file", sort=False)["end_s"].max()
    for file, end_s in last_ends.items():
        durations.setdefault(file, float(end_s))
    return durations


def _frequency_range(
    attrs: dict, low_freq: float | None, high_freq: float | None, audio_file: str | None = None
) -> tuple[float, float]:
    """The Raven band: the arguments, else ``attrs["frequency_range"]``, else the default.

    With ``audio_file`` (a per-file table), a default high edge is capped at the file's
    Nyquist frequency, read from its header: a 22.05 kHz recording holds nothing above
    11025 Hz, whatever band the model's front end covers after resampling. A file whose
    header cannot be read keeps the band.
    """
    default_low, default_high = attrs.get("frequency_range") or DEFAULT_FREQUENCY_RANGE
    low = float(default_low if low_freq is None else low_freq)
    high = float(default_high if high_freq is None else high_freq)
    if high_freq is None and audio_file is not None:
        from .audio import AudioError, audio_info

        try:
            nyquist = audio_info(audio_file).sample_rate / 2
        except (AudioError, OSError, TypeError, ValueError):
            nyquist = np.inf
        if low < nyquist < high:
            high = float(nyquist)
    if not (0 <= low < high < np.inf):
        raise ValueError(
            "low_freq and high_freq (or detections.attrs['frequency_range']) must satisfy "
            f"0 <= low_freq < high_freq < inf; got low_freq={low}, high_freq={high}."
        )
    return low, high


def _decimal_text(values: Iterable[float]) -> list[str]:
    return [f"{value:.{DECIMALS}f}" for value in values]


def _csv_text(rows: pd.DataFrame) -> str:
    fields = {
        "file": [csv_cell(file) for file in texts(rows["file"])],
        "start_s": csv_number_cells(rows["start_s"]),
        "end_s": csv_number_cells(rows["end_s"]),
        "label": [csv_cell(label) for label in texts(rows["label"])],
        "confidence": csv_number_cells(rows["confidence"]),
    }
    return delimited_text(COLUMNS, zip(*(fields[name] for name in COLUMNS), strict=True), ",")


def _raven_text(
    rows: pd.DataFrame, file_offsets: dict[str, float], bands: dict[str, tuple[float, float]]
) -> str:
    """Raven Pro's selection table; ``bands`` holds each file's Low and High Freq."""
    # Offsets and in-file times are rounded before they are added, so that
    # Begin Time - File Offset is the same decimal for every row of a file and a reader
    # recovers in-file times within the rounding of one number.
    offsets = np.round(rows["file"].map(file_offsets).to_numpy(dtype=float), DECIMALS)
    starts = np.round(rows["start_s"].to_numpy(), DECIMALS)
    ends = np.round(rows["end_s"].to_numpy(), DECIMALS)
    n_rows = len(rows)
    band_texts = {file: (str(low), str(high)) for file, (low, high) in bands.items()}
    low_texts = [band_texts[file][0] for file in rows["file"]]
    high_texts = [band_texts[file][1] for file in rows["file"]]
    fields = {
        "Selection": [str(number) for number in range(1, n_rows + 1)],
        "View": ["Spectrogram 1"] * n_rows,
        "Channel": ["1"] * n_rows,
        "Begin Time (s)": _decimal_text(offsets + starts),
        "End Time (s)": _decimal_text(offsets + ends),
        "Low Freq (Hz)": low_texts,
        "High Freq (Hz)": high_texts,
        "Species": [tab_cell(label) for label in texts(rows["label"])],
        "Confidence": _decimal_text(rows["confidence"]),
        "Begin Path": [tab_cell(file) for file in texts(rows["file"])],
        "File Offset (s)": _decimal_text(starts),
    }
    return delimited_text(
        RAVEN_COLUMNS, zip(*(fields[name] for name in RAVEN_COLUMNS), strict=True)
    )


def _audacity_text(rows: pd.DataFrame) -> str:
    label_texts = [
        f"{tab_cell(label)};{confidence:.{DECIMALS}f}"
        for label, confidence in zip(texts(rows["label"]), rows["confidence"], strict=True)
    ]
    starts, ends = _decimal_text(rows["start_s"]), _decimal_text(rows["end_s"])
    return delimited_text(None, zip(starts, ends, label_texts, strict=True))


def _table_text(
    rows: pd.DataFrame,
    format: str,
    file_offsets: dict[str, float],
    bands: dict[str, tuple[float, float]],
) -> str:
    """The table's text; ``bands`` (Raven's frequencies) maps every file of ``rows``."""
    if format == "csv":
        return _csv_text(rows)
    if format == "raven":
        return _raven_text(rows, file_offsets, bands)
    return _audacity_text(rows)


def _bands(attrs: dict, files, low_freq, high_freq, format: str) -> dict:
    """Each file's Raven band (capped at its Nyquist frequency); none for other formats."""
    _frequency_range(attrs, low_freq, high_freq)  # checked with or without files
    if format != "raven":
        return {}
    return {file: _frequency_range(attrs, low_freq, high_freq, file) for file in files}


@deprecate_positional
def write_detections(
    detections: pd.DataFrame,
    path: str | os.PathLike,
    *,
    format: str = "csv",
    low_freq: float | None = None,
    high_freq: float | None = None,
) -> Path:
    """Write a detection table to one file.

    Parameters
    ----------
    detections : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, as :func:`detect` returns. Its
        ``attrs`` are used when present: ``"durations"`` (seconds per file; the Raven timeline
        takes a file missing from it as long as its last detection's end) and
        ``"frequency_range"`` (the Raven band; default ``(0.0, 16000.0)``). Each row's
        High Freq is at most its own file's Nyquist frequency, read from the file's header,
        unless ``high_freq`` is given.
    path : str or path-like
        The table to write; missing parent folders are created. It is written atomically.
    format : {"csv", "raven", "audacity"}, default="csv"
        ``"csv"``: the five columns at full precision. ``"raven"``: a Raven Pro selection
        table; with several files, the combined form whose times run on the files played
        one after another (in ``attrs["durations"]`` order, then row order). ``"audacity"``:
        an Audacity label track, ``label;confidence`` as label text; one audio file only.
        In every format, file names and labels are escaped so that they read back exactly
        and no cell starts a spreadsheet formula (see the module's description); a missing
        label (None, NaN) is written as an empty one.
    low_freq, high_freq : float, optional
        Band written in Raven's ``Low Freq (Hz)`` and ``High Freq (Hz)``; override
        ``attrs["frequency_range"]``.

    Returns
    -------
    pathlib.Path
        The table written.

    Raises
    ------
    ValueError
        If ``format`` is unknown, a column is missing, the band is invalid, a file name or
        label holds text that UTF-8 cannot encode (a lone surrogate), or an Audacity track
        would cover several files (use
        :func:`~sklearn_birdaudio.table_files.write_detections_per_file`).

    Examples
    --------
    >>> import tempfile
    >>> detections = pd.DataFrame({"file": ["a.wav", "b.wav"], "start_s": [0.0, 3.0],
    ...     "end_s": [3.0, 5.5], "label": ["amerob", "norcar"], "confidence": [0.9, 0.75]})
    >>> detections.attrs["durations"] = {"a.wav": 10.0, "b.wav": 5.5}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_detections(detections, Path(folder) / "run.txt", format="raven")
    ...     lines = path.read_text().splitlines()
    >>> lines[2].split("\\t")
    ['2', 'Spectrogram 1', '1', '13.000000', '15.500000', '0.0', '16000.0', 'norcar', \
'0.750000', 'b.wav', '3.000000']
    """
    format = _checked_format(format)
    rows = check_detections(detections)
    _check_encodable_text(rows)
    files = rows["file"].unique()
    if format == "audacity" and len(files) > 1:
        raise ValueError(
            f"An Audacity label track belongs to one audio file, but detections cover "
            f"{len(files)} files ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''}); use "
            "write_detections_per_file(detections, folder, format='audacity') to write one "
            "label track per file."
        )
    durations = _file_durations(detections.attrs, rows)
    # Each file starts where the files before it end.
    starts_s = list(accumulate(durations.values(), initial=0.0))[:-1]
    file_offsets = dict(zip(durations, starts_s, strict=True))
    bands = _bands(detections.attrs, durations, low_freq, high_freq, format)
    return atomic_write_text(path, _table_text(rows, format, file_offsets, bands))


@deprecate_positional
def per_file_texts(
    detections: pd.DataFrame,
    *,
    format: str = "raven",
    low_freq: float | None = None,
    high_freq: float | None = None,
) -> dict[str, str]:
    """The text of each audio file's own table, in file order.

    What :func:`~sklearn_birdaudio.table_files.write_detections_per_file` writes: a table
    for every file in ``detections.attrs["durations"]``, in its order, then for every file
    seen only in rows; a file without detections gets a header-only table (an empty one for
    Audacity). Raven tables are the single-file form (times within the file).

    Parameters
    ----------
    detections : pandas.DataFrame
        As for :func:`write_detections`.
    format : {"raven", "audacity", "csv"}, default="raven"
        Format of the tables.
    low_freq, high_freq : float, optional
        Band of the Raven tables; override ``attrs["frequency_range"]``. Without
        ``high_freq``, a file's band stops at its Nyquist frequency (half the sample rate
        its header gives) when that is lower.

    Returns
    -------
    dict of str to str
        Each audio file's table.

    Raises
    ------
    ValueError
        As :func:`write_detections`, but for the Audacity track of several files.
    """
    format = _checked_format(format)
    rows = check_detections(detections)
    _check_encodable_text(rows)
    durations = _file_durations(detections.attrs, rows)
    bands = _bands(detections.attrs, durations, low_freq, high_freq, format)
    rows_by_file = dict(iter(rows.groupby("file", sort=False)))
    no_rows = rows.iloc[:0]
    return {
        file: _table_text(
            rows_by_file.get(file, no_rows),
            format,
            {file: 0.0},
            bands,
        )
        for file in durations
    }
