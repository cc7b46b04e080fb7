"""Per-file detection tables: what each audio file's table is called, and writing them.

:func:`write_detections_per_file` writes one table per audio file, as BirdNET-Analyzer does
by default, in any format of :mod:`sklearn_birdaudio.tables`, and :func:`table_path_for`
says which file that is: ``<audio file stem>.birdaudio.<suffix>``, or
``<stem>-<hash>.birdaudio.<suffix>`` for files of a run that share a stem.

This module builds on :mod:`sklearn_birdaudio.tables` (the formats, and each format's
suffix, which the reader also uses to name a table's audio file); ``tables`` re-exports
:func:`table_path_for` and :func:`write_detections_per_file` on first use, for code that
imports them from there.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path, PurePath

import pandas as pd

from ._deprecation import deprecate_positional
from .table_formats import PER_FILE_SUFFIXES, TABLE_TAG, _checked_format
from .table_writers import atomic_write_text, per_file_texts

__all__ = ["table_path_for", "write_detections_per_file"]


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


@deprecate_positional
def table_path_for(
    audio_file: str | os.PathLike,
    folder: str | os.PathLike,
    *,
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
    >>> [table_path_for(file, "t", format="csv", audio_files=run).name for file in run] == [
    ...     f"rec-{_path_hash(file)}.birdaudio.csv" for file in run]
    True
    """
    format = _checked_format(format)
    audio_file = os.fspath(audio_file)
    if audio_files is None:
        return _per_file_path(PurePath(audio_file).stem, folder, format)
    stems = _table_stems([*map(os.fspath, audio_files), audio_file])
    return _per_file_path(stems[audio_file], folder, format)


@deprecate_positional
def write_detections_per_file(
    detections: pd.DataFrame,
    folder: str | os.PathLike,
    *,
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
        Columns ``file, start_s, end_s, label, confidence``, as
        :func:`~sklearn_birdaudio.detect` returns, with its ``attrs`` (see
        :func:`~sklearn_birdaudio.tables.write_detections`).
    folder : str or path-like
        Where the tables go; created if missing. Names are given by :func:`table_path_for`:
        ``<audio file stem>.birdaudio.<suffix>``, or ``<stem>-<hash>.birdaudio.<suffix>`` for
        files whose stem another file of the run (``attrs["errors"]`` included) also has.
    format : {"raven", "audacity", "csv"}, default="raven"
        Format of the tables (see :func:`~sklearn_birdaudio.tables.write_detections`).
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
        As :func:`~sklearn_birdaudio.tables.write_detections`, or if two files would share
        a name (the same file under two spellings); checked before any table is written.

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
    texts = per_file_texts(detections, format=format, low_freq=low_freq, high_freq=high_freq)
    run_files = [] if audio_files is None else [os.fspath(file) for file in audio_files]
    table_stems = _table_stems([*run_files, *texts, *_failed_files(detections.attrs)])
    return [
        atomic_write_text(_per_file_path(table_stems[file], folder, format), text)
        for file, text in texts.items()
    ]


def _failed_files(attrs: dict) -> list[str]:
    return [str(failure["file"]) for failure in attrs.get("errors", [])]
