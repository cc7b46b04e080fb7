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
and an existing table is only ever replaced by a complete one. One table per audio file and
its name are :mod:`sklearn_birdaudio.table_files`' (``write_detections_per_file`` and
``table_path_for``); the writers are :mod:`sklearn_birdaudio.table_writers`', the reader
:mod:`sklearn_birdaudio.table_readers`'. Every public name of the three can be imported from
here: this module is their facade, and nothing in the package imports it but the command.

Text (file names and labels: the ``file`` and ``label`` columns, Raven's ``Begin Path`` and
``Species``, the label before Audacity's last ``;``) reads back exactly, whatever it holds:
cells are written and read by :mod:`sklearn_birdaudio.text_cells`, which marks a cell that a
spreadsheet could run as a formula with a leading ``'``, quotes (CSV) or escapes
(tab-separated formats) control characters, and leaves other text as it is. Lines end at line
feeds or carriage returns only, never at the other breaks :meth:`str.splitlines` knows. An
empty label is an empty cell and reads back as ``""``; so does a missing one (None or NaN).
Text that UTF-8 cannot encode (a lone surrogate) is refused before anything is written.
Tables written by other tools are read the same way: there, too, a text cell that starts with
``'`` loses it.
"""

from __future__ import annotations

from .table_files import table_path_for, write_detections_per_file
from .table_formats import COLUMNS, FORMATS, PER_FILE_SUFFIXES, RAVEN_COLUMNS, TABLE_TAG
from .table_readers import read_detections
from .table_writers import atomic_write_text, check_detections, per_file_texts, write_detections

__all__ = [
    "atomic_write_text",
    "read_detections",
    "table_path_for",
    "write_detections",
    "write_detections_per_file",
]
__all__ += ["COLUMNS", "FORMATS", "PER_FILE_SUFFIXES", "RAVEN_COLUMNS", "TABLE_TAG"]  # data
__all__ += ["check_detections", "per_file_texts"]
