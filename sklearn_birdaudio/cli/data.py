"""The labelled data of ``train`` and ``evaluate``: class folders or CSV manifests.

Everything about the layout (missing or empty files, columns, the split) is checked from
the file system and the CSV header before any audio is read.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from .errors import CommandError

MANIFEST_NAMES = ("labels.csv", "manifest.csv")
LABEL_COLUMN_CANDIDATES = (("primary_label", "secondary_labels"), ("labels",), ("label",))


def _find_manifest(folder: Path) -> Path | None:
    """The manifest of a dataset folder: its labels.csv or manifest.csv, or its one *.csv."""
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = [path for path in folder.glob("*.csv") if path.is_file()]
    return found[0] if len(found) == 1 else None


def manifest_columns(data: Path) -> list[str]:
    """The header of a CSV manifest.

    Parameters
    ----------
    data : Path
        The manifest.

    Returns
    -------
    list of str
        Its column names.

    Raises
    ------
    CommandError
        One line naming the file, when it is empty or cannot be read as a CSV.
    """
    import pandas as pd

    try:
        return list(pd.read_csv(data, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise CommandError(
            f"{data}: the file is empty; expected a CSV manifest with a header row naming a "
            "'path' column and label columns."
        ) from None
    except (ValueError, pd.errors.ParserError) as error:  # binary, not UTF-8 ...
        raise CommandError(
            f"{data}: cannot be read as a CSV manifest ({type(error).__name__}: {error})."
        ) from None


def resolve_data(data: Path, command: str) -> Path:
    """The CSV manifest or class folder ``data`` names, checked before any audio is read.

    A dataset folder holding a manifest (``labels.csv``, ``manifest.csv`` or a single
    ``*.csv``) is read through it, and said so; a folder whose only sub-folder is
    ``audio`` is refused: its recordings would all be one class called "audio".

    Parameters
    ----------
    data : Path
        The data argument of the command.
    command : str
        The command's name, for the messages.

    Returns
    -------
    Path
        A CSV manifest or a folder of class sub-folders.

    Raises
    ------
    CommandError
        When ``data`` does not exist or is neither of the two.
    """
    if not data.exists():
        raise CommandError(
            f"{data}: not found; expected a folder of class sub-folders or a CSV manifest."
        )
    if not data.is_dir():
        if data.suffix.lower() != ".csv":
            raise CommandError(
                f"{data}: expected a folder of class sub-folders or a CSV manifest (.csv)."
            )
        return data
    manifest = _find_manifest(data)
    if manifest is not None:
        print(f"Data: {data} holds the manifest {manifest.name}; reading the labels from it")
        return manifest
    sub_folders = [path.name for path in data.iterdir() if path.is_dir()]
    if sub_folders == ["audio"]:
        raise CommandError(
            f"{data}: its only class sub-folder is 'audio', so every recording would be one "
            f"class called 'audio'; give a CSV manifest of the recordings and their labels "
            f"instead (birdaudio {command} labels.csv, with a 'path' column and label "
            "columns), or a folder with one sub-folder per class."
        )
    return data


def _split_counts(data: Path, split_column: str) -> Counter:
    import pandas as pd

    values = pd.read_csv(data, usecols=[split_column], dtype=str, keep_default_na=False)
    return Counter(values[split_column])


def _check_split(data: Path, columns: list[str] | None, split, split_column, command) -> None:
    """Refuse a --split the data cannot apply; warn when a split column goes unused."""
    if split is not None:
        if columns is None:
            raise CommandError(
                f"--split {split}: {data} is a folder of class sub-folders, which has no "
                f"{split_column!r} column; --split needs a CSV manifest with one."
            )
        if split_column not in columns:
            raise CommandError(
                f"--split {split}: {data} has no {split_column!r} column (--split-column); "
                f"found {columns}."
            )
        counts = _split_counts(data, split_column)
        if split not in counts:
            raise CommandError(
                f"--split {split}: no rows of {data} have {split_column} == {split!r}; its "
                f"{split_column!r} values are {sorted(counts)}."
            )
        return
    if columns is None or split_column not in columns:
        return
    counts = _split_counts(data, split_column)
    if len(counts) < 2:
        return
    described = ", ".join(f"{name}: {count}" for name, count in counts.most_common())
    wanted = "train" if command == "train" else "test"
    if wanted not in counts:
        ranked = [name for name, _ in counts.most_common()]
        wanted = ranked[0] if command == "train" else ranked[-1]
    others = " and ".join(name or "''" for name in counts if name != wanted)
    verb, purpose = (
        ("training on", f"to hold the {others} rows out")
        if command == "train"
        else ("scoring", f"to score only the {wanted} rows")
    )
    print(
        f"birdaudio {command}: warning: {data.name} has a {split_column!r} column "
        f"({described}); {verb} all {sum(counts.values())} rows — pass --split {wanted} "
        f"{purpose}",
        file=sys.stderr,
    )


def _label_columns(data: Path, columns: list[str]) -> tuple[str, ...]:
    for candidate in LABEL_COLUMN_CANDIDATES:
        present = tuple(column for column in candidate if column in columns)
        if present and candidate[0] in present:
            return present
    raise CommandError(
        f"{data}: no label column; expected 'primary_label' (and optionally "
        f"'secondary_labels'), 'labels' or 'label' next to 'path'; found {columns}."
    )


def load_data(
    data: Path,
    *,
    classes=None,
    split: str | None = None,
    split_column: str = "split",
    command: str = "train",
):
    """Recordings and targets of a folder of class sub-folders or a CSV manifest.

    Parameters
    ----------
    data : Path
        A folder of class sub-folders, a CSV manifest, or a folder holding one.
    classes : list of str, optional
        The classes of the targets (a model's); default: those found.
    split : str, optional
        Only the manifest rows whose ``split_column`` is this.
    split_column : str, default="split"
        The manifest column naming each row's split.
    command : str, default="train"
        The command's name, for the messages (and the split it suggests).

    Returns
    -------
    X : list of str
        The audio files.
    Y : pandas.DataFrame
        Their binary targets, one column per class.
    classes : list of str
        The classes.

    Raises
    ------
    CommandError
        For a layout that cannot be read, found before any audio is read.
    """
    from ..datasets import load_folder, load_manifest

    data = resolve_data(data, command)
    if data.is_dir():
        _check_split(data, None, split, split_column, command)
        return load_folder(data, classes=classes, as_frame=True)
    columns = manifest_columns(data)
    if "path" not in columns:
        raise CommandError(
            f"{data}: no 'path' column (the audio files, relative to the manifest's folder); "
            f"found {columns}."
        )
    _check_not_events(data, columns)
    label_columns = _label_columns(data, columns)
    _check_split(data, columns, split, split_column, command)
    X, Y, classes = load_manifest(
        data,
        label_columns=label_columns,
        split=split,
        split_column=split_column,
        classes=classes,
        as_frame=True,
    )
    _check_one_row_per_recording(data, X)
    return X, Y, classes


# Columns of a table of events inside recordings (annotations, detections), not of a
# manifest of recordings: start/end times.
EVENT_TIME_COLUMNS = ("start", "end", "start_s", "end_s", "begin time (s)", "end time (s)")


def _check_not_events(data: Path, columns: list[str]) -> None:
    times = [column for column in columns if column.lower() in EVENT_TIME_COLUMNS]
    if times:
        raise CommandError(
            f"{data}: has the time columns {times}: a table of events inside recordings "
            "(e.g. soundscape annotations), not a manifest; expected one row per recording "
            "with its labels. To score such recordings against their events, run 'birdaudio "
            "predict' on them."
        )


def _check_one_row_per_recording(data: Path, X: list) -> None:
    repeated = [path for path, rows in Counter(X).items() if rows > 1]
    if repeated:
        shown = ", ".join(repeated[:3]) + (", ..." if len(repeated) > 3 else "")
        raise CommandError(
            f"{data}: {len(repeated)} recording(s) listed on more than one row ({shown}); "
            "expected one row per recording, several labels in one cell separated by ';'."
        )


def readable_recordings(X, Y, *, strict: bool, action: str = "train on"):
    """Drop the recordings whose header cannot be read (cheap: no decoding).

    Parameters
    ----------
    X : list
        Paths (and reviewed windows, arrays, which are kept).
    Y : DataFrame
        Their targets.
    strict : bool
        Refuse them all in one message instead (``--strict``).
    action : str, default="train on"
        What the command does with them, for the message when none is left.

    Returns
    -------
    X, Y : the readable recordings and their targets
    skipped : list of (str, str)
        The files left out and why.

    Raises
    ------
    CommandError
        With ``strict``, or when no recording is readable.
    """
    from ..audio import AudioError, audio_info

    skipped = []
    for file in X:
        if not isinstance(file, (str, Path)):
            continue
        try:
            audio_info(file)
        except AudioError as error:
            skipped.append((str(file), str(error).removeprefix(f"{file}: ")))
    if not skipped:
        return X, Y, []
    if strict or len(skipped) == len(X):
        listed = "; ".join(f"{file}: {error}" for file, error in skipped)
        why = "--strict" if strict else f"none is left to {action}"
        raise CommandError(f"{len(skipped)} recording(s) cannot be read ({why}): {listed}")
    return (*drop_recordings(X, Y, {file for file, _ in skipped}), skipped)


def failed_recording(error, files: list) -> str | None:
    """The file an ``AudioError`` names (its message starts with the path), or ``None``.

    The longest matching path wins, so that ``a.wav`` is not taken for ``a.wav.mp3``.
    """
    failed = [str(file) for file in files if isinstance(file, (str, Path))
              and str(error).startswith(str(file))]  # fmt: skip
    return max(failed, key=len) if failed else None


def drop_recordings(X, Y, files: set):
    """X and Y without the recordings ``files`` (reviewed windows, arrays, are kept)."""
    keep = [index for index, file in enumerate(X) if not (isinstance(file, str) and file in files)]
    return [X[index] for index in keep], Y.iloc[keep].reset_index(drop=True)


def print_skipped(skipped: list, command: str, what: str) -> None:
    """List the recordings a command left out, on stderr."""
    print(
        f"birdaudio {command}: {len(skipped)} recording(s) could not be read and were left out "
        f"of {what} (--strict aborts instead):",
        file=sys.stderr,
    )
    for file, error in skipped:
        print(f"  {file}: {error}", file=sys.stderr)
