"""Training data from reviewed detections: the "label, retrain" step of the agile loop.

Agile modelling (as in Perch-Hoplite) turns a classifier's detections into training data:
score the recordings, review a sample of the detections, add the verified windows to the
training set, train again. ``birdaudio review`` writes a review table, one detection per
row, with a verdict an ecologist fills in; :func:`reviewed_training_data` reads such tables
and cuts the reviewed windows out of their recordings:

- ``yes``: the window is a *positive* of its label (target 1);
- ``no``: the window is a *hard negative* of its label (target 0): the model said the
  species sings there and the reviewer says it does not;
- ``unsure`` or empty: not used.

A verdict speaks about one species only, so the window's targets for the other classes are
*unknown* (NaN). :class:`~sklearn_birdaudio.AttentionCNNClassifier` leaves unknown targets
out of its loss (:class:`~sklearn_birdaudio.losses.MaskedBCEWithLogitsLoss`); filling them
with 0 instead would teach the network that a reviewed bird's window holds no other
species, while other birds often sing in it.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .audio import AudioError, load_audio
from .review import REVIEW_COLUMNS, read_review

__all__ = ["reviewed_training_data"]

# The columns used here: all a DataFrame of reviews needs (review_id names rows in errors).
NEEDED_COLUMNS = ("file", "start_s", "end_s", "label", "verdict")
TARGET_OF_VERDICT = {"yes": 1.0, "no": 0.0}
IGNORED_VERDICTS = ("unsure", "")
# Windows whose times agree to a microsecond are the same window.
TIME_DECIMALS = 6


def reviewed_training_data(
    reviews,
    *,
    classes=None,
    sample_rate: int = 32000,
    unknown: float = math.nan,
    add_classes: bool = True,
) -> tuple[list[np.ndarray], pd.DataFrame]:
    """The reviewed windows of review tables, as waveforms and targets to train on.

    Each ``yes`` or ``no`` row of a review table (written by ``birdaudio review``; see
    :data:`~sklearn_birdaudio.review.REVIEW_COLUMNS`) names a window ``[start_s, end_s]``
    of a recording ``file`` and a ``label``. ``yes`` makes the window a positive of the
    label (target 1), ``no`` a hard negative (target 0); ``unsure`` and empty verdicts are
    skipped. Rows about the same window (same file, start and end, across all the tables)
    are merged into one training example holding each row's target.

    Parameters
    ----------
    reviews : str, path-like, DataFrame, or a list of them
        Review tables: ``review.csv`` files, read with
        :func:`~sklearn_birdaudio.review.read_review` (which removes the ``'`` that marks
        formula-like text and normalises the verdicts), or DataFrames such as it returns.
        A DataFrame needs the columns ``file``, ``start_s``, ``end_s``, ``label`` and
        ``verdict`` (``yes``, ``no``, ``unsure`` or empty, in any case; ``review_id``,
        when present, names rows in errors). A relative ``file`` is looked for in the
        current folder (where ``birdaudio predict`` was run), then next to its review
        file.
    classes : list of str, optional
        The classes of the training data, in column order (``load_folder``'s or
        ``load_manifest``'s ``class_names``). Default: the reviewed labels, sorted.
    sample_rate : int, default=32000
        Sample rate of the returned waveforms: that of the pipeline's
        :class:`~sklearn_birdaudio.MelSpectrogramTransformer`.
    unknown : float, default=nan
        The target of every class a window's reviews do not mention. NaN marks it
        unknown, which :class:`~sklearn_birdaudio.AttentionCNNClassifier` leaves out of
        its loss. 0 treats it as absent: only for estimators that refuse NaN targets, at
        the price of teaching them that no other species sings in a reviewed window.
    add_classes : bool, default=True
        A reviewed label not in ``classes`` becomes a new class (a column after
        ``classes``, new labels sorted), as agile modelling adds species from reviews;
        its targets in the original training data are then unknown (NaN once the two
        ``Y`` are concatenated). ``False`` refuses such labels.

    Returns
    -------
    X : list of ndarray of float32
        Each reviewed window's mono waveform at ``sample_rate``, loaded with
        ``load_audio(file, sample_rate, offset_seconds=start_s,
        duration_seconds=end_s - start_s)``, in the order the windows first appear.
    Y : DataFrame of float, shape (len(X), n_classes)
        The targets: 1 (``yes``), 0 (``no``) or ``unknown``; columns ``classes`` then
        any new labels.

    Raises
    ------
    ValueError
        Naming the review file and data row (and ``review_id``): a missing column, a verdict
        other than yes/no/unsure/empty, an empty label, times that are not
        ``0 <= start_s < end_s``, a ``yes`` and a ``no`` for the same label and window
        (set one of them to ``unsure`` or correct it), a new label with
        ``add_classes=False``, a review file that is missing or not CSV.
    AudioError
        Naming the review row and the recording: a recording that is missing or cannot
        be read, a window past its end.

    Warns
    -----
    UserWarning
        When no row has a ``yes`` or ``no`` verdict.

    See Also
    --------
    load_folder, load_manifest : The training data the reviewed windows are added to.

    Examples
    --------
    The waveforms and targets add to those of the original training data; a
    :class:`~sklearn_birdaudio.MelSpectrogramTransformer` takes a list mixing paths and
    waveforms (at its ``sample_rate``):

    >>> import pandas as pd
    >>> from sklearn_birdaudio import load_folder, reviewed_training_data
    >>> X, Y, classes = load_folder("train/", as_frame=True)  # doctest: +SKIP
    >>> X_reviewed, Y_reviewed = reviewed_training_data(
    ...     ["review.csv"], classes=classes, sample_rate=32000
    ... )  # doctest: +SKIP
    >>> X_all = X + X_reviewed  # doctest: +SKIP
    >>> Y_all = pd.concat([Y, Y_reviewed], ignore_index=True)  # doctest: +SKIP
    >>> pipeline.fit(X_all, Y_all)  # doctest: +SKIP
    """
    if not (unknown == 0 or (isinstance(unknown, float) and math.isnan(unknown))):
        raise ValueError(f"unknown must be NaN or 0, got {unknown!r}.")
    if isinstance(reviews, (str, os.PathLike, pd.DataFrame)):
        reviews = [reviews]
    reviews = list(reviews)
    if not reviews:
        raise ValueError("reviews is empty; expected at least one review table.")
    windows: dict[tuple, dict] = {}
    n_skipped = 0
    for position, review in enumerate(reviews):
        name, folder, table = _read(review, position)
        for row in _reviewed_rows(name, table):
            if row["verdict"] in IGNORED_VERDICTS:
                n_skipped += 1
                continue
            path = _source_path(row["file"], folder)
            key = (os.path.abspath(path), row["start_s"], row["end_s"])
            window = windows.setdefault(
                key, {"path": path, "folder": folder, "row": row, "targets": {}}
            )
            target = TARGET_OF_VERDICT[row["verdict"]]
            earlier = window["targets"].get(row["label"])
            if earlier is not None and earlier[0] != target:
                raise ValueError(_conflict(row, earlier[1], target))
            window["targets"].setdefault(row["label"], (target, row))
    if not windows:
        warnings.warn(
            f"The review tables hold no 'yes' or 'no' verdict ({n_skipped} unsure or empty "
            "row(s)): no reviewed window to train on.",
            UserWarning,
            stacklevel=2,
        )
    columns = _columns(windows.values(), classes, add_classes)
    Y = pd.DataFrame(np.full((len(windows), len(columns)), float(unknown)), columns=columns)
    X = []
    for index, window in enumerate(windows.values()):
        for label, (target, _) in window["targets"].items():
            Y.loc[index, label] = target
        X.append(_load_window(window, sample_rate))
    return X, Y


def _read(review, position: int) -> tuple[str, Path | None, pd.DataFrame]:
    """``(name, folder, table)`` of a review: how errors name it, where it lies, its rows."""
    if isinstance(review, pd.DataFrame):
        return f"reviews[{position}]", None, review.reset_index(drop=True)
    path = Path(review)
    if not path.is_file():
        raise ValueError(f"{path}: review file not found; expected a review table (CSV).")
    return str(path), path.parent, read_review(path).reset_index(drop=True)


def _reviewed_rows(name: str, table: pd.DataFrame):
    """Yield each row of a review table as a checked dict (verdict lower-case, times float)."""
    missing = [column for column in NEEDED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"{name}: missing column(s) {missing}; found {list(table.columns)}, expected "
            f"a review table with columns {list(REVIEW_COLUMNS)}."
        )
    for index, cells in enumerate(table.to_dict("records")):
        review_id = _text(cells.get("review_id"))
        # Counted from 1 after the header, and named by review_id, as read_review does.
        where = f"{name}: data row {index + 1}"
        row = {"where": where + (f" (review_id {review_id!r})" if review_id else "")}
        row["verdict"] = _text(cells["verdict"]).lower()
        if row["verdict"] not in (*TARGET_OF_VERDICT, *IGNORED_VERDICTS):
            raise ValueError(
                f"{row['where']}: verdict {cells['verdict']!r}; expected yes, no, unsure or "
                "an empty cell."
            )
        if row["verdict"] in IGNORED_VERDICTS:
            yield row
            continue
        row["label"], row["file"] = _text(cells["label"]), _text(cells["file"])
        for column in ("label", "file"):
            if not row[column]:
                raise ValueError(f"{row['where']}: empty {column} in a '{row['verdict']}' row.")
        for column in ("start_s", "end_s"):
            try:
                row[column] = round(float(cells[column]), TIME_DECIMALS)
            except (TypeError, ValueError):
                row[column] = math.nan
        if not (0 <= row["start_s"] < row["end_s"] < math.inf):
            raise ValueError(
                f"{row['where']}: window start_s={cells['start_s']!r}, "
                f"end_s={cells['end_s']!r}; expected seconds with 0 <= start_s < end_s."
            )
        yield row


def _text(cell) -> str:
    """A cell as stripped text; missing cells (None, NaN) as ''."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)) or cell is pd.NA:
        return ""
    return str(cell).strip()


def _source_path(file: str, folder: Path | None) -> str:
    """The recording ``file`` names: as written, else relative to the review's folder."""
    if os.path.isabs(file) or os.path.exists(file) or folder is None:
        return file
    beside = folder / file
    return str(beside) if beside.exists() else file


def _conflict(row: dict, earlier: dict, target: float) -> str:
    verdict = {1.0: "yes", 0.0: "no"}
    return (
        f"{row['where']} says '{verdict[target]}' and {earlier['where']} says "
        f"'{verdict[1.0 - target]}' for {row['label']!r} in the same window "
        f"({row['file']}, {row['start_s']:g}-{row['end_s']:g} s); set one of them to "
        "'unsure' to leave the window out for this label, or correct it."
    )


def _columns(windows, classes, add_classes: bool) -> list[str]:
    """``classes`` then the new labels (sorted), refused without ``add_classes``."""
    first_row = {}
    for window in windows:
        for label, (_, row) in window["targets"].items():
            first_row.setdefault(label, row)
    known = [] if classes is None else [str(label) for label in classes]
    new = sorted(set(first_row) - set(known))
    if new and classes is not None and not add_classes:
        examples = "; ".join(f"{label!r} ({first_row[label]['where']})" for label in new[:10])
        raise ValueError(
            f"reviewed label(s) not in classes: {examples}; expected labels among "
            f"{known[:10]}{' ...' if len(known) > 10 else ''}, or add_classes=True to "
            "train them as new classes."
        )
    return known + new


def _load_window(window: dict, sample_rate: int) -> np.ndarray:
    """The waveform of a reviewed window; errors name the review row and the recording."""
    row, path = window["row"], window["path"]
    if not os.path.isfile(path):
        looked = ""
        if not os.path.isabs(row["file"]):
            looked = f" in the current folder {os.getcwd()}"
            if window["folder"] is not None:
                looked += f" nor in the review file's folder {window['folder']}"
        raise AudioError(
            f"{row['where']}: source recording {row['file']} not found{looked}; expected the "
            "recording the detection was made in."
        )
    try:
        return load_audio(
            path,
            sample_rate=sample_rate,
            offset_seconds=row["start_s"],
            duration_seconds=row["end_s"] - row["start_s"],
        )
    except AudioError as error:
        raise AudioError(f"{row['where']}: {error}") from error
