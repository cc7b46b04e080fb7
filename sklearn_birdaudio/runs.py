"""Run records: what each per-file table of a ``birdaudio predict`` run covers.

A per-file run (``birdaudio predict --out FOLDER``, or :func:`~sklearn_birdaudio.detect`
with ``on_file=``) writes one table per audio file as each file is scored. A table alone
does not say whether it is complete: a table of a file whose reading failed part-way, one
truncated or edited after the run, or one written for another file with the same name
all look like finished tables. So each table gets a *run record*, a small JSON file that
says what the table covers; ``birdaudio predict --resume`` skips a file only when its
record vouches for its table (:meth:`PerFileRun.redo_reason`).

Where records are
-----------------
In a hidden sub-folder of the tables' folder: ``FOLDER/.birdaudio-records/<table
name>.json``. The folder itself holds only tables, as Raven, Audacity and BirdNET users
expect, and no pattern for tables (``*.csv``, ``*.selections.txt``, ``*.birdaudio.*``)
lists a record.

What a record holds
-------------------
``source``
    The audio file as given (``path``), its absolute path (``absolute_path``, which
    identifies it), and its ``size`` in bytes and modification time ``mtime_ns``, taken
    before it was scored. Size and time identify the version of the file without reading
    hours of audio again; a file rewritten with the same size within the file system's
    timestamp resolution (1 ns to 2 s) would pass for the old one.
``status``, ``error``, ``seconds_scored``
    ``"complete"``, or ``"partial"`` when reading failed part-way (``error`` says why);
    the seconds of audio the table covers.
``table``
    The table's ``name``, ``format`` and the SHA-256 of its bytes (``sha256``).
``model_sha256``, ``settings``
    The SHA-256 of the model file's bytes, and the detection settings that shape the
    table (``min_confidence``, ``overlap_seconds``, ``thresholds``).

A record holds nothing that changes from one run to the next (no time of writing), so an
interrupted run, once resumed, leaves the same records as well as the same tables as an
uninterrupted one.

The order of writes
-------------------
The table is written first, then its record, both atomically
(:func:`~sklearn_birdaudio.tables.atomic_write_text`): the record is the commit marker.
A run stopped between the two leaves a table without a record, which is redone. A record
left from an earlier run vouches only for a table whose bytes it hashed, of the source as
it was then, with the same model and settings, so it can never vouch for another table.

Records guard against accidents (crashes, partial reads, edits, changed inputs, shared
names), not against forgery: a hand-made record that matches is believed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .table_files import _per_file_path, _table_stems, write_detections_per_file
from .table_formats import _checked_format
from .table_writers import atomic_write_text

__all__ = ["PerFileRun", "SourceState", "file_sha256", "record_path_for"]

RECORDS_FOLDER = ".birdaudio-records"
RECORD_VERSION = 1
COMPLETE, PARTIAL = "complete", "partial"
_HASH_CHUNK_BYTES = 1 << 20
# The fields of a record and their types; a record without one of them is unreadable.
_RECORD_SHAPE = {
    "record_version": int,
    "source": {
        "path": str,
        "absolute_path": str,
        "size": (int, type(None)),
        "mtime_ns": (int, type(None)),
    },
    "status": str,
    "error": (str, type(None)),
    "seconds_scored": (int, float),
    "table": {"name": str, "format": str, "sha256": str},
    "model_sha256": (str, type(None)),
    "settings": dict,
}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits, read in 1 MiB chunks.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    str
        The hex digest.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "empty"
    ...     _ = path.write_bytes(b"")
    ...     file_sha256(path)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def record_path_for(table_path: str | os.PathLike) -> Path:
    """The run record of a per-file table: ``<folder>/.birdaudio-records/<name>.json``.

    Examples
    --------
    >>> record_path_for("tables/dawn.birdaudio.csv").as_posix()
    'tables/.birdaudio-records/dawn.birdaudio.csv.json'
    """
    table_path = Path(table_path)
    return table_path.parent / RECORDS_FOLDER / f"{table_path.name}.json"


@dataclass(frozen=True)
class SourceState:
    """Which audio file, and which version of it: what a record's ``source`` holds.

    Attributes
    ----------
    path : str
        The file as given.
    absolute_path : str
        :func:`os.path.abspath` of it: what identifies the file.
    size, mtime_ns : int or None
        Its size in bytes and modification time in nanoseconds; None when it could not
        be read (a missing file).
    """

    path: str
    absolute_path: str
    size: int | None
    mtime_ns: int | None

    @classmethod
    def of(cls, audio_file: str | os.PathLike) -> SourceState:
        """The state of ``audio_file`` now."""
        path = os.fspath(audio_file)
        try:
            status = os.stat(path)
        except OSError:
            return cls(path, os.path.abspath(path), None, None)
        return cls(path, os.path.abspath(path), status.st_size, status.st_mtime_ns)


def _has_shape(value, shape) -> bool:
    if isinstance(shape, dict):
        return isinstance(value, dict) and all(
            key in value and _has_shape(value[key], field) for key, field in shape.items()
        )
    return isinstance(value, shape) and not isinstance(value, bool)


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value))


class PerFileRun:
    """The per-file tables of one run, their names and their run records.

    Creating it names every file's table (:func:`~sklearn_birdaudio.table_path_for`) and
    takes the state of every audio file (:class:`SourceState`), before anything is
    scored: a file that changes while it is scored is then redone by the next resume.

    Parameters
    ----------
    audio_files : iterable of str or path-like
        Every audio file of the run.
    folder : str or path-like
        The folder of the tables.
    format : {"csv", "raven", "audacity"}, default="raven"
        The tables' format.
    model_sha256 : str, optional
        SHA-256 of the model file (:func:`file_sha256`); tables made with another model
        are redone.
    settings : mapping, optional
        JSON-serialisable detection settings that shape the tables (thresholds, overlap);
        tables made with other settings are redone.

    Raises
    ------
    ValueError
        If ``format`` is unknown, or two files would share a table name (the same file
        given under two spellings).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     a, b = str(Path(folder) / "a.wav"), str(Path(folder) / "b.wav")
    ...     _ = Path(a).write_bytes(b"audio")  # only its size and time are looked at
    ...     run = PerFileRun([a, b], Path(folder) / "tables", format="csv")
    ...     detections = pd.DataFrame({"file": [a], "start_s": [0.0], "end_s": [1.0],
    ...         "label": ["wren"], "confidence": [0.5]})
    ...     detections.attrs["durations"] = {a: 3.0}
    ...     _ = run.write(detections)  # the table of a.wav, then its record
    ...     list(run.redo_reasons().values())
    [None, 'no table']
    """

    def __init__(
        self,
        audio_files: Iterable[str | os.PathLike],
        folder: str | os.PathLike,
        format: str = "raven",
        model_sha256: str | None = None,
        settings: Mapping | None = None,
    ):
        self.audio_files = [os.fspath(file) for file in audio_files]
        self.folder = Path(folder)
        self.format = _checked_format(format)
        self.model_sha256 = model_sha256
        self.settings = _as_json(dict(settings or {}))
        stems = _table_stems(self.audio_files)
        self.tables = {
            file: _per_file_path(stems[file], self.folder, self.format) for file in self.audio_files
        }
        self.sources = {file: SourceState.of(file) for file in self.audio_files}

    def redo_reason(self, audio_file: str) -> str | None:
        """Why ``audio_file`` must be scored again, or None when its table is complete.

        A file is skipped only when its table exists and its record is readable, names
        this file, matches its size and modification time, this format, model and
        settings, says ``"complete"``, and hashes the table's bytes as they are now.

        Returns
        -------
        str or None
            ``"no table"``, ``"no record"``, ``"unreadable record"``, ``"record of another
            source"``, ``"source missing"``, ``"source changed"``, ``"other format"``,
            ``"other model"``, ``"other settings"``, ``"partial"``, ``"table differs from
            its record"``; None to skip the file.
        """
        table = self.tables[audio_file]
        if not table.is_file():
            return "no table"
        try:
            record = json.loads(record_path_for(table).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "no record"
        except (OSError, ValueError):  # UnicodeDecodeError and JSON errors are ValueErrors
            return "unreadable record"
        if not _has_shape(record, _RECORD_SHAPE) or record["record_version"] != RECORD_VERSION:
            return "unreadable record"
        source, recorded = self.sources[audio_file], record["source"]
        if recorded["absolute_path"] != source.absolute_path:
            return "record of another source"
        if source.size is None:
            return "source missing"
        if (recorded["size"], recorded["mtime_ns"]) != (source.size, source.mtime_ns):
            return "source changed"
        if record["table"]["format"] != self.format:
            return "other format"
        if record["model_sha256"] != self.model_sha256:
            return "other model"
        if record["settings"] != self.settings:
            return "other settings"
        if record["status"] != COMPLETE:
            return "partial"
        if record["table"]["sha256"] != file_sha256(table):
            return "table differs from its record"
        return None

    def remove_leftovers(self) -> list[Path]:
        """Delete the temporary files a killed run left for this run's tables and records.

        :func:`~sklearn_birdaudio.tables.atomic_write_text` writes ``.<name>.<16 hex>.tmp``
        next to each file before renaming it; a run killed between the two leaves it
        behind. Only such names of this run's own tables and records are deleted (one run
        per folder at a time, as for resuming).

        Returns
        -------
        list of pathlib.Path
            The files deleted.
        """
        removed = []
        for table in self.tables.values():
            for target in (table, record_path_for(table)):
                pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{16}}\.tmp")
                if not target.parent.is_dir():
                    continue
                for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
                    if pattern.fullmatch(leftover.name):
                        leftover.unlink(missing_ok=True)
                        removed.append(leftover)
        return removed

    def redo_reasons(self) -> dict[str, str | None]:
        """:meth:`redo_reason` of every file of the run, in run order."""
        return {file: self.redo_reason(file) for file in self.audio_files}

    def write(self, detections: pd.DataFrame) -> list[Path]:
        """Write the tables of scored files, then their records; for ``detect(on_file=)``.

        Parameters
        ----------
        detections : pandas.DataFrame
            Detections of files of the run with their ``attrs``, as :func:`detect` gives
            them to ``on_file``: every file in ``attrs["durations"]`` gets its table
            (:func:`~sklearn_birdaudio.write_detections_per_file`) and a record, marked
            partial when the file is also in ``attrs["errors"]``.

        Returns
        -------
        list of pathlib.Path
            The tables written.
        """
        tables = write_detections_per_file(
            detections, self.folder, format=self.format, audio_files=self.audio_files
        )
        errors = detections.attrs.get("errors", [])
        error_of = {str(entry["file"]): str(entry["error"]) for entry in errors}
        for file, seconds in detections.attrs.get("durations", {}).items():
            self._write_record(file, float(seconds), error_of.get(file))
        return tables

    def _write_record(self, audio_file: str, seconds_scored: float, error: str | None) -> Path:
        table, source = self.tables[audio_file], self.sources[audio_file]
        record = {
            "record_version": RECORD_VERSION,
            "source": {
                "path": source.path,
                "absolute_path": source.absolute_path,
                "size": source.size,
                "mtime_ns": source.mtime_ns,
            },
            "status": COMPLETE if error is None else PARTIAL,
            "error": error,
            "seconds_scored": seconds_scored,
            "table": {"name": table.name, "format": self.format, "sha256": file_sha256(table)},
            "model_sha256": self.model_sha256,
            "settings": self.settings,
        }
        text = json.dumps(record, indent=2) + "\n"
        return atomic_write_text(record_path_for(table), text)
