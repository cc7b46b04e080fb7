"""Writers and readers of detection tables: CSV, Raven Pro selection tables, Audacity labels.

:func:`~sklearn_birdaudio.detection.detect` returns a :class:`pandas.DataFrame` with the
columns ``file, start_s, end_s, label, confidence``. This module writes it in the formats
bioacoustics tools read, laid out as BirdNET-Analyzer writes them, and reads them back:

``"csv"``
    The five columns, comma-separated, with a header row and full float precision: the only
    format that keeps every value exactly.
``"raven"``
    A Raven Pro selection table (tab-separated): one selection per detection, with the
    columns ``Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz),
    High Freq (Hz), Species, Confidence, Begin Path, File Offset (s)``. A table of several
    files is the combined form Raven uses for a list of files opened as one: begin and end
    times are on the timeline of the files played one after another, ``Begin Path`` names the
    file and ``File Offset (s)`` is the start within it. In a per-file table the begin time is
    the time within the file. Low and high frequency are the model's band.
``"audacity"``
    An Audacity label track: one ``start<TAB>end<TAB>label;confidence`` line per detection,
    no header. A label track belongs to one recording.

Raven and Audacity tables hold times and confidences with six decimals, so that a round trip
(:func:`write_detections`, then :func:`read_detections`) gives them back within 1e-6. Every
table is written atomically (:func:`atomic_write_text`): a crash never leaves half a table,
and an existing table is only ever replaced by a complete one.

Text (file names and labels: the ``file`` and ``label`` columns, Raven's ``Begin Path`` and
``Species``, the label before Audacity's last ``;``) reads back exactly, whatever it holds:

- A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, which a
  spreadsheet could run as a formula ("CSV injection"), gets one ``'`` in front, as OWASP
  advises; so does one that starts with ``'``, so that the reader can remove exactly one
  leading ``'`` from every text cell. Numbers are never marked.
- CSV puts a text cell in double quotes (doubling its double quotes) when it holds a comma,
  a double quote or a control character: C0 and C1 controls, DEL, and the Unicode line and
  paragraph separators, line breaks included.
- The tab-separated formats cannot quote, so there a text cell holding a control character
  gets the leading ``'`` too, and in a cell with a leading ``'`` a backslash is written
  ``\\\\``, a tab ``\\t``, a line feed ``\\n``, a carriage return ``\\r`` and any other
  control character ``\\xNN`` or ``\\uNNNN``. Lines end at line feeds or carriage returns
  only, never at the other breaks :meth:`str.splitlines` knows.

Other text is written as it is, backslashes included (Windows paths stay paths), so tables
of ordinary labels and file names are unchanged. An empty label is an empty cell and reads
back as ``""``; so does a missing one (None or NaN). Text that UTF-8 cannot encode (a lone
surrogate) is refused before anything is written. Tables written by other tools are read the
same way: there, too, a text cell that starts with ``'`` loses it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from itertools import accumulate
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

__all__ = [
    "atomic_write_text",
    "read_detections",
    "table_path_for",
    "write_detections",
    "write_detections_per_file",
]

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
# What a per-file table's name ends with, after "<audio file stem>.birdaudio.".
PER_FILE_SUFFIXES = {"csv": "csv", "raven": "selections.txt", "audacity": "labels.txt"}
FORMATS = tuple(PER_FILE_SUFFIXES)
TABLE_TAG = ".birdaudio."
DECIMALS = 6
DEFAULT_FREQUENCY_RANGE = (0.0, 16000.0)
_CANONICAL_INTEGER = r"-?(?:0|[1-9][0-9]*)"
# Text cells that a spreadsheet could run as a formula (OWASP, "CSV injection"), and the
# mark that neutralises them; a cell that starts with the mark gets it too, so that the
# reader can strip exactly one.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MARK = "'"
_MARKED_STARTS = (*_FORMULA_STARTS, _MARK)
# Characters a tool may take for the end of a field or a line (str.splitlines breaks at
# \x0b, \x0c, \x1c-\x1e, \x85, \u2028 and \u2029 too) or that do not show: C0 controls,
# DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_CSV_NEEDS_QUOTES = re.compile(f'[,"{_CONTROLS}]')
_TO_ESCAPE = re.compile(f"[\\\\{_CONTROLS}]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {escape[1]: character for character, escape in _ESCAPES.items()}
_ESCAPE_SEQUENCE = re.compile(r"\\(?:([\\tnr])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))")
_LINE_BREAK = re.compile("\r\n|\r|\n")


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


def _checked_format(format: str) -> str:
    if format not in PER_FILE_SUFFIXES:
        allowed = ", ".join(map(repr, FORMATS))
        raise ValueError(f"format must be one of {allowed}; got {format!r}.")
    return format


def _checked_detections(
    detections: pd.DataFrame, name: str = "detections", other_columns: bool = False
) -> pd.DataFrame:
    """The five columns of a detection table, with files as str and numbers as float.

    ``name`` names the table in errors; ``other_columns`` keeps its other columns too.
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


def _texts(values: pd.Series) -> list[str]:
    """Values as text; a missing one (None, NaN) is empty text, as pandas writes it to CSV."""
    missing = values.isna()
    return ["" if gap else str(value) for value, gap in zip(values, missing, strict=True)]


def _check_encodable_text(rows: pd.DataFrame) -> None:
    """Refuse file names and labels that a UTF-8 table cannot hold: lone surrogates."""
    for column in ("file", "label"):
        for value in _texts(rows[column]):
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


def _failed_files(attrs: dict) -> list[str]:
    return [str(failure["file"]) for failure in attrs.get("errors", [])]


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


def _escaped(match: re.Match) -> str:
    character = match.group()
    if character in _ESCAPES:
        return _ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _unescaped(match: re.Match) -> str:
    named, byte, code = match.groups()
    return _UNESCAPES[named] if named else chr(int(byte or code, 16))


def _csv_cell(text: str) -> str:
    """A text cell of a CSV table: marked if a spreadsheet could run it, quoted if needed."""
    if text.startswith(_MARKED_STARTS):
        text = _MARK + text
    if _CSV_NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _tab_cell(text: str) -> str:
    """A text field of a tab-separated table: marked, and then escaped, where it must be."""
    if text.startswith(_MARKED_STARTS) or _CONTROL.search(text):
        return _MARK + _TO_ESCAPE.sub(_escaped, text)
    return text


def _csv_cell_text(cell: str) -> str:
    """The text of a CSV cell as read (quotes already removed): without its mark."""
    return cell.removeprefix(_MARK)


def _tab_cell_text(field: str) -> str:
    """The text of a tab-separated field: a marked one loses its mark and is unescaped.

    A backslash that starts no escape is kept, as it is in text that other tools wrote.
    """
    if field.startswith(_MARK):
        return _ESCAPE_SEQUENCE.sub(_unescaped, field[1:])
    return field


def _delimited(
    header: Iterable[str] | None, records: Iterable[Iterable[str]], separator: str = "\t"
) -> str:
    lines = [] if header is None else [separator.join(header)]
    lines += [separator.join(record) for record in records]
    return "".join(line + "\n" for line in lines)


def _csv_numbers(values: pd.Series) -> np.ndarray:
    """Numbers as pandas writes them to CSV: the shortest decimal that reads back exactly,
    and an empty cell for NaN."""
    numbers = values.to_numpy(dtype=float)
    texts = numbers.astype(str).astype(object)
    texts[np.isnan(numbers)] = ""
    return texts


def _csv_text(rows: pd.DataFrame) -> str:
    fields = {
        "file": [_csv_cell(file) for file in _texts(rows["file"])],
        "start_s": _csv_numbers(rows["start_s"]),
        "end_s": _csv_numbers(rows["end_s"]),
        "label": [_csv_cell(label) for label in _texts(rows["label"])],
        "confidence": _csv_numbers(rows["confidence"]),
    }
    return _delimited(COLUMNS, zip(*(fields[name] for name in COLUMNS), strict=True), ",")


def _raven_text(
    rows: pd.DataFrame, file_offsets: dict[str, float], frequency_range: tuple[float, float]
) -> str:
    # Offsets and in-file times are rounded before they are added, so that
    # Begin Time - File Offset is the same decimal for every row of a file and a reader
    # recovers in-file times within the rounding of one number.
    offsets = np.round(rows["file"].map(file_offsets).to_numpy(dtype=float), DECIMALS)
    starts = np.round(rows["start_s"].to_numpy(), DECIMALS)
    ends = np.round(rows["end_s"].to_numpy(), DECIMALS)
    n_rows = len(rows)
    low, high = (str(frequency) for frequency in frequency_range)
    fields = {
        "Selection": [str(number) for number in range(1, n_rows + 1)],
        "View": ["Spectrogram 1"] * n_rows,
        "Channel": ["1"] * n_rows,
        "Begin Time (s)": _decimal_text(offsets + starts),
        "End Time (s)": _decimal_text(offsets + ends),
        "Low Freq (Hz)": [low] * n_rows,
        "High Freq (Hz)": [high] * n_rows,
        "Species": [_tab_cell(label) for label in _texts(rows["label"])],
        "Confidence": _decimal_text(rows["confidence"]),
        "Begin Path": [_tab_cell(file) for file in _texts(rows["file"])],
        "File Offset (s)": _decimal_text(starts),
    }
    return _delimited(RAVEN_COLUMNS, zip(*(fields[name] for name in RAVEN_COLUMNS), strict=True))


def _audacity_text(rows: pd.DataFrame) -> str:
    label_texts = [
        f"{_tab_cell(label)};{confidence:.{DECIMALS}f}"
        for label, confidence in zip(_texts(rows["label"]), rows["confidence"], strict=True)
    ]
    starts, ends = _decimal_text(rows["start_s"]), _decimal_text(rows["end_s"])
    return _delimited(None, zip(starts, ends, label_texts, strict=True))


def _table_text(
    rows: pd.DataFrame,
    format: str,
    file_offsets: dict[str, float],
    frequency_range: tuple[float, float],
) -> str:
    if format == "csv":
        return _csv_text(rows)
    if format == "raven":
        return _raven_text(rows, file_offsets, frequency_range)
    return _audacity_text(rows)


def write_detections(
    detections: pd.DataFrame,
    path: str | os.PathLike,
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
        ``"frequency_range"`` (the Raven band; default ``(0.0, 16000.0)``).
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
        would cover several files (use :func:`write_detections_per_file`).

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
    rows = _checked_detections(detections)
    _check_encodable_text(rows)
    frequency_range = _frequency_range(detections.attrs, low_freq, high_freq)
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
    return atomic_write_text(path, _table_text(rows, format, file_offsets, frequency_range))


def _path_hash(audio_file: str) -> str:
    """Eight hex digits of the BLAKE2b hash of the file's absolute path (``/`` separators).

    The path is made absolute with :func:`os.path.abspath` (lexically: symbolic links are
    not followed), so the same file gets the same hash from any working directory.
    """
    absolute = os.path.abspath(audio_file).replace(os.sep, "/")
    data = absolute.encode("utf-8", "surrogateescape")
    return hashlib.blake2b(data, digest_size=4).hexdigest()


def _table_stems(audio_files: Iterable[str]) -> dict[str, str]:
    """The stem of each file's per-file tables, unique among the files (case-insensitively).

    A file keeps its audio stem when no other file of the run has it; files that share a
    stem get ``<stem>-<hash of the path>`` (:func:`_path_hash`). A plain stem that equals
    another file's hashed one is hashed too. The name of a file depends on its own path and
    on whether its stem is shared, not on the order of the files.

    Raises
    ------
    ValueError
        If two files still share a name: the same file given under two spellings
        (``x/rec.wav`` and ``x/./rec.wav``), or a collision of their hashes.
    """
    files = sorted(set(audio_files))
    stems = {file: PurePath(file).stem for file in files}
    while True:
        counts = Counter(stem.casefold() for stem in stems.values())
        shared = [file for file in files if counts[stems[file].casefold()] > 1]
        if not shared:
            return stems
        plain = [file for file in shared if stems[file] == PurePath(file).stem]
        if not plain:
            name = stems[shared[0]]
            clashing = [file for file in shared if stems[file].casefold() == name.casefold()]
            raise ValueError(
                f"the audio files {clashing} would share the table name {name!r}: the same "
                "file given twice under different spellings, or a collision of their path "
                "hashes; expected each audio file once (rename one if they differ)."
            )
        for file in plain:
            stems[file] = f"{stems[file]}-{_path_hash(file)}"


def _per_file_path(table_stem: str, folder: str | os.PathLike, format: str) -> Path:
    return Path(folder) / f"{table_stem}{TABLE_TAG}{PER_FILE_SUFFIXES[format]}"


def table_path_for(
    audio_file: str | os.PathLike,
    folder: str | os.PathLike,
    format: str = "raven",
    audio_files: Iterable[str | os.PathLike] | None = None,
) -> Path:
    """The per-file table that :func:`write_detections_per_file` writes for an audio file.

    The name is ``<audio file stem>.birdaudio.<suffix>`` in ``folder``, with suffix
    ``selections.txt`` (Raven), ``labels.txt`` (Audacity) or ``csv``. Where several files
    of a run share a stem, compared case-insensitively (``x/rec.wav`` and ``y/REC.flac``),
    each of them gets ``<stem>-<hash>`` instead, the hash being the first 8 hex digits of
    the BLAKE2b hash of the file's absolute path (:func:`os.path.abspath`, with ``/``
    separators): ``rec-1f0c3a9e.birdaudio.selections.txt``. A name depends on the file's
    path and on whether another file of the run has its stem, not on the order of the
    files nor on the working directory. A file's name changes when another file with its
    stem joins the run: the names are for people, and ``birdaudio predict --resume`` does
    not rely on them (each table's run record names its source; see
    :mod:`sklearn_birdaudio.runs`).

    Parameters
    ----------
    audio_file : str or path-like
        The audio file, as named in the detection table's ``file`` column.
    folder : str or path-like
        Folder of the per-file tables.
    format : {"csv", "raven", "audacity"}, default="raven"
        The table format.
    audio_files : iterable of str or path-like, optional
        Every audio file of the run, scored or not (``attrs["durations"]`` and
        ``attrs["errors"]``), to tell which stems are shared as the writer did. Without it,
        the name is the plain stem's, which is right for every file whose stem is unique.

    Returns
    -------
    pathlib.Path
        Path of the table.

    Raises
    ------
    ValueError
        If ``format`` is unknown, or two files of ``audio_files`` would share a name (the
        same file under two spellings).

    Examples
    --------
    >>> table_path_for("site/dawn.wav", "tables").as_posix()
    'tables/dawn.birdaudio.selections.txt'
    >>> run = ["x/rec.wav", "y/rec.wav"]
    >>> [table_path_for(file, "t", "csv", audio_files=run).name for file in run] == [
    ...     f"rec-{_path_hash(file)}.birdaudio.csv" for file in run]
    True
    """
    format = _checked_format(format)
    audio_file = os.fspath(audio_file)
    if audio_files is None:
        return _per_file_path(PurePath(audio_file).stem, folder, format)
    stems = _table_stems([*map(os.fspath, audio_files), audio_file])
    return _per_file_path(stems[audio_file], folder, format)


def write_detections_per_file(
    detections: pd.DataFrame,
    folder: str | os.PathLike,
    format: str = "raven",
    low_freq: float | None = None,
    high_freq: float | None = None,
    audio_files: Iterable[str | os.PathLike] | None = None,
) -> list[Path]:
    """Write one table per audio file, as BirdNET-Analyzer does by default.

    Every file in ``detections.attrs["durations"]`` gets a table, so a file scored without
    detections gets a header-only one (an empty one for Audacity): it shows the file was
    scored. A file that failed part-way is in ``attrs["durations"]`` (the seconds scored)
    and in ``attrs["errors"]``: its table holds what was scored before the error. A file
    of which nothing was scored gets none. Files seen only in rows get one too. Raven
    tables are the single-file form: begin and end times are within the file. (Whether a
    table is complete is recorded beside it by ``birdaudio predict``, in a run record:
    see :mod:`sklearn_birdaudio.runs`.)

    Parameters
    ----------
    detections : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, as :func:`detect` returns,
        with its ``attrs`` (see :func:`write_detections`).
    folder : str or path-like
        Where the tables go; created if missing. Names are given by :func:`table_path_for`:
        ``<audio file stem>.birdaudio.<suffix>``, or ``<stem>-<hash>.birdaudio.<suffix>`` for
        files whose stem another file of the run (``attrs["errors"]`` included) also has.
    format : {"raven", "audacity", "csv"}, default="raven"
        Format of the tables (see :func:`write_detections`).
    low_freq, high_freq : float, optional
        Band of the Raven tables; override ``attrs["frequency_range"]``. Without
        ``high_freq``, a file's band stops at its Nyquist frequency (half the sample rate
        its header gives) when that is lower.
    audio_files : iterable of str or path-like, optional
        Every audio file of the whole run, when ``detections`` covers only part of it
        (a resumed run, or one file as ``detect(on_file=...)`` gives it): shared stems are
        then told as for the whole run, as :func:`table_path_for` does with the same list.

    Returns
    -------
    list of pathlib.Path
        The tables written, in file order.

    Raises
    ------
    ValueError
        As :func:`write_detections`, or if two files would share a name (the same file
        under two spellings); checked before any table is written.

    Examples
    --------
    >>> import tempfile
    >>> detections = pd.DataFrame({"file": ["a.wav"], "start_s": [0.0], "end_s": [3.0],
    ...     "label": ["amerob"], "confidence": [0.9]})
    >>> detections.attrs["durations"] = {"a.wav": 10.0, "quiet.wav": 10.0}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = write_detections_per_file(detections, folder, format="audacity")
    ...     [(path.name, path.read_text()) for path in paths]
    [('a.birdaudio.labels.txt', '0.000000\\t3.000000\\tamerob;0.900000\\n'), \
('quiet.birdaudio.labels.txt', '')]
    """
    format = _checked_format(format)
    rows = _checked_detections(detections)
    _check_encodable_text(rows)
    frequency_range = _frequency_range(detections.attrs, low_freq, high_freq)
    durations = _file_durations(detections.attrs, rows)
    run_files = [] if audio_files is None else [os.fspath(file) for file in audio_files]
    table_stems = _table_stems([*run_files, *durations, *_failed_files(detections.attrs)])
    rows_by_file = dict(iter(rows.groupby("file", sort=False)))
    no_rows = rows.iloc[:0]
    return [
        atomic_write_text(
            _per_file_path(table_stems[file], folder, format),
            _table_text(
                rows_by_file.get(file, no_rows),
                format,
                {file: 0.0},
                _frequency_range(detections.attrs, low_freq, high_freq, file)
                if format == "raven"
                else frequency_range,
            ),
        )
        for file in durations
    ]


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


def _read_delimited(text: str, path: Path, separator: str, required: Iterable[str]):
    """Read a table with a header row, every field as str, and check its columns."""
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE if separator == "\t" else csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path}: is empty; expected a table with a header row.") from error
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: lacks the column(s) {missing}; its header is {list(table.columns)}."
        )
    return table


def _numbers(values: pd.Series, path: Path) -> pd.Series:
    try:
        return values.astype(float)
    except ValueError as error:
        raise ValueError(
            f"{path}: column {values.name!r} holds a value that is not a number ({error})."
        ) from error


def _read_csv(text: str, path: Path) -> pd.DataFrame:
    table = _read_delimited(text, path, ",", COLUMNS).loc[:, list(COLUMNS)]
    return table.assign(
        file=table["file"].map(_csv_cell_text), label=table["label"].map(_csv_cell_text)
    )


def _read_raven(text: str, path: Path) -> pd.DataFrame:
    required = ("Begin Time (s)", "End Time (s)", "Species", "Confidence")
    table = _read_delimited(text, path, "\t", required)
    begin_s = _numbers(table["Begin Time (s)"], path)
    end_s = _numbers(table["End Time (s)"], path)
    # Tables that Raven itself writes have no File Offset: their times are within the file.
    start_s = _numbers(table["File Offset (s)"], path) if "File Offset (s)" in table else begin_s
    return pd.DataFrame(
        {
            "file": (
                table["Begin Path"].map(_tab_cell_text)
                if "Begin Path" in table
                else _audio_name(path)
            ),
            "start_s": start_s,
            "end_s": start_s + (end_s - begin_s),
            "label": table["Species"].map(_tab_cell_text),
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
        records.append((_audio_name(path), start_s, end_s, _tab_cell_text(label), confidence))
    return pd.DataFrame(records, columns=list(COLUMNS))


def read_detections(
    path: str | os.PathLike, format: str | None = None, file: str | None = None
) -> pd.DataFrame:
    """Read a table written by :func:`write_detections` or :func:`write_detections_per_file`.

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
    >>> detections = pd.DataFrame({"file": ["a.wav"], "start_s": [0.0], "end_s": [2.5],
    ...     "label": [7], "confidence": [0.25]})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_detections(detections, Path(folder) / "a.txt", format="audacity")
    ...     read_detections(path, file="a.wav")
        file  start_s  end_s  label  confidence
    0  a.wav      0.0    2.5      7        0.25
    """
    path = Path(path)
    try:
        # newline="": a line break inside a quoted CSV cell is text, kept as it is.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: is not UTF-8 text ({error}).") from error
    format = _inferred_format(path, text) if format is None else _checked_format(format)
    readers = {"csv": _read_csv, "raven": _read_raven, "audacity": _read_audacity}
    table = readers[format](text, path)
    if file is not None:
        table["file"] = os.fspath(file)
    numbers = {
        column: _numbers(table[column], path) for column in ("start_s", "end_s", "confidence")
    }
    labels = table["label"].astype(str)
    if len(labels) and labels.str.fullmatch(_CANONICAL_INTEGER).all():
        with contextlib.suppress(OverflowError):  # integers beyond 64 bits stay text
            labels = labels.astype("int64")
    return table.assign(file=table["file"].astype(str), **numbers, label=labels).reset_index(
        drop=True
    )
