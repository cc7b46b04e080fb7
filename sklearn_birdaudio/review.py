"""Reviewing detections: draw a sample to check, export it as clips and a page, read verdicts.

A detection table says where a model heard each species, not how often it is right. To
know, a person listens to a sample of the detections and says yes, no or unsure; the
precision of each species (at any score) is then estimated from the verdicts. The sample
has to be drawn so that the estimate is valid, and the review has to be quick.

:func:`sample_for_review`
    Draws the sample, per species. ``"stratified"`` spreads it over the whole score range,
    as Wood & Kahl (2024, "Guidelines for appropriate use of BirdNET scores and other
    detector outputs", J. Ornithol.) advise, and gives each row the weight a
    Horvitz-Thompson estimate needs. ``"margin"`` takes the detections nearest a threshold
    (uncertainty sampling, as agile modelling with Perch-Hoplite does), to improve a model
    or place a threshold, not to estimate precision.
:func:`export_review` (:mod:`sklearn_birdaudio.review_page`)
    Writes a review folder: one audio clip and one spectrogram per sampled detection,
    ``review.csv`` and ``index.html``, a page that plays each clip and takes verdicts from
    the keyboard, then saves ``review.csv`` with them filled in. It needs no server or
    network: open it from the folder (``file://``).
:func:`read_review`
    Reads a ``review.csv`` back, verdicts normalised to ``"yes"``, ``"no"``, ``"unsure"`` or
    ``""`` (not reviewed).

``review.csv`` has the columns :data:`REVIEW_COLUMNS` and follows the CSV conventions of
:mod:`sklearn_birdaudio.text_cells`: a text cell that a spreadsheet could run as a formula
(or that starts with ``'``) gets one ``'`` in front, and a cell holding a comma, a double
quote or a control character is quoted, so that any label or file name reads back exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._validation import check_integer, check_real
from .review_page import (
    NUMBER_COLUMNS,
    REVIEW_COLUMNS,
    SkippedClipsWarning,
    check_scored_detections,
    export_review,
)
from .table_formats import COLUMNS
from .text_cells import csv_cell_text, labels_from_text, read_delimited, read_table_text, texts

__all__ = [
    "REVIEW_COLUMNS",
    "SkippedClipsWarning",
    "export_review",
    "read_review",
    "sample_for_review",
]

STRATEGIES = ("stratified", "margin")
# What a reviewer may have typed in the verdict column, case-insensitively.
VERDICTS = {
    **dict.fromkeys(("yes", "y", "1", "true"), "yes"),
    **dict.fromkeys(("no", "n", "0", "false"), "no"),
    **dict.fromkeys(("unsure", "u"), "unsure"),
    "": "",
}
# Scores are clipped this far inside (0, 1) before the logit, which is infinite at 0 and 1.
LOGIT_EPSILON = 1e-12


# -- sampling ---------------------------------------------------------------------------


def _check_count(name: str, value) -> int:
    return check_integer(value, name, min_val=1)


def _equal_allocation(counts: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """How many rows to draw from each bin: as equal as the bins' sizes allow.

    Every bin gets the same share, a bin with fewer rows gives all it has and the rest is
    shared by the others; what cannot be shared equally goes one row each to bins drawn at
    random. ``n`` is at most ``counts.sum()``.
    """
    allocation = np.zeros_like(counts)
    remaining = n
    while remaining > 0:
        open_bins = np.flatnonzero(allocation < counts)
        share, extra = divmod(remaining, len(open_bins))
        if share == 0:
            allocation[rng.choice(open_bins, size=extra, replace=False)] += 1
            break
        added = np.minimum(counts[open_bins] - allocation[open_bins], share)
        allocation[open_bins] += added
        remaining -= int(added.sum())
    return allocation


def _stratified(strata: np.ndarray, n: int, n_bins: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Positions drawn (into ``strata``) and their weights, for one species."""
    counts = np.bincount(strata, minlength=n_bins)
    filled = np.flatnonzero(counts)
    if n < len(filled):
        # Too few rows to visit every bin: n bins drawn at random, one row from each. A row
        # of bin b is then drawn with probability (n / n_filled) / counts[b].
        bins = rng.choice(filled, size=n, replace=False)
        allocation = np.zeros_like(counts)
        allocation[bins] = 1
        bin_weights = counts * len(filled) / n
    else:
        allocation = _equal_allocation(counts, n, rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            bin_weights = counts / allocation
    positions, weights = [], []
    for stratum in np.flatnonzero(allocation):
        members = np.flatnonzero(strata == stratum)
        positions.append(rng.choice(members, size=allocation[stratum], replace=False))
        weights.append(np.full(allocation[stratum], bin_weights[stratum], dtype=float))
    return np.concatenate(positions), np.concatenate(weights)


def _margin(confidence: np.ndarray, n: int, threshold: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` positions whose score is nearest ``threshold`` in logit space."""
    clipped = np.clip(confidence, LOGIT_EPSILON, 1 - LOGIT_EPSILON)
    distance = np.abs(np.log(clipped / (1 - clipped)) - np.log(threshold / (1 - threshold)))
    order = np.lexsort((rng.random_sample(len(distance)), distance))  # ties: at random
    return order[:n], np.ones(n)


def sample_for_review(
    detections: pd.DataFrame,
    *,
    n_per_species: int = 20,
    n_bins: int = 5,
    strategy: str = "stratified",
    threshold: float = 0.5,
    min_confidence: float | None = None,
    species=None,
    random_state=None,
) -> pd.DataFrame:
    """Draw, per species, the detections a person should check.

    The score range ``[min_confidence, 1]`` is cut into ``n_bins`` bins of equal width (the
    strata; a bin holds scores from its lower edge up to, not including, its upper edge,
    and the last one includes 1). Equal-width bins rather than quantiles: they cover the
    whole score range (the high scores, which hold few detections, included) and they are
    the same for every species, so precision per bin compares across species.

    Parameters
    ----------
    detections : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, as
        :func:`~sklearn_birdaudio.detect` or :func:`~sklearn_birdaudio.read_detections`
        returns; other columns are dropped.
    n_per_species : int, default=20
        Detections drawn per species (label); all of them when a species has fewer.
    n_bins : int, default=5
        Number of score bins.
    strategy : {"stratified", "margin"}, default="stratified"
        ``"stratified"``: each species' sample is spread over the bins, as equal a number
        per bin as the bins hold (a bin with fewer detections gives all it has, the others
        share the rest; what cannot be shared equally goes one each to bins drawn at
        random), drawn at random within each bin. Each row's ``weight`` is the inverse of
        its probability of being drawn, given how many were drawn from its bin: the
        bin's number of detections divided by the number drawn from it. The weights of a
        species sum to its number of detections, and a weighted mean of verdicts (yes =
        1, no = 0) estimates its precision without bias (Horvitz-Thompson). With fewer
        rows than non-empty bins, ``n_per_species`` bins are drawn at random and one
        detection from each; the weight is then ``count of the bin * non-empty bins /
        n_per_species``, and the weights sum to the number of detections on average only.
        ``"margin"``: the detections whose score is nearest ``threshold`` in logit space
        (uncertainty sampling; ties broken at random), each with weight 1. These rows
        show where the model hesitates, to improve it or place a threshold; they do not
        represent the detections, so no precision can be estimated from them.
    threshold : float, default=0.5
        The score the ``"margin"`` strategy samples around, in (0, 1).
    min_confidence : float, optional
        Only detections scoring at least this are drawn, and the bins start there. By
        default every detection is eligible and the bins start at the lowest score of
        the table (the ``--min-confidence`` of ``birdaudio predict``, more or less).
    species : iterable of str, optional
        Only these species (labels compared as text).
    random_state : int, RandomState instance or None, default=None
        Seeds the draw: the same seed and table give the same sample.

    Returns
    -------
    pandas.DataFrame
        The sampled rows: ``file, start_s, end_s, label, confidence``, plus ``weight``
        (float) and ``stratum`` (the score bin, 0 to ``n_bins - 1``, for both strategies),
        ordered by species, then by falling score. ``attrs`` holds ``"strategy"``,
        ``"bin_edges"`` (``n_bins + 1`` scores), ``"threshold"`` and ``"n_detections"``
        (the eligible detections of each species).

    Raises
    ------
    ValueError
        If a column is missing, a score is outside [0, 1] or NaN, a time is invalid, a
        parameter is out of range, or ``species`` names a species without detections.

    Examples
    --------
    >>> detections = pd.DataFrame({"file": "a.wav", "start_s": np.arange(10.0),
    ...     "end_s": np.arange(1.0, 11.0), "label": "wren",
    ...     "confidence": np.linspace(0.1, 1.0, 10)})
    >>> sample = sample_for_review(detections, n_per_species=5, n_bins=5, random_state=0)
    >>> sample["stratum"].tolist(), float(sample["weight"].sum())
    ([4, 3, 2, 1, 0], 10.0)
    """
    rows = check_scored_detections(detections).loc[:, list(COLUMNS)]
    n_per_species = _check_count("n_per_species", n_per_species)
    n_bins = _check_count("n_bins", n_bins)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}; got {strategy!r}.")
    check_real(
        threshold, "threshold", min_val=0, max_val=1, include_boundaries="neither",
        message=f"threshold must be a number strictly between 0 and 1; got {threshold!r}.",
    )  # fmt: skip
    if min_confidence is not None:
        check_real(
            min_confidence, "min_confidence", min_val=0, max_val=1, include_boundaries="left",
            message=f"min_confidence must be a number in [0, 1) or None; got {min_confidence!r}.",
        )  # fmt: skip
        rows = rows[rows["confidence"] >= min_confidence].reset_index(drop=True)
    labels = np.array(texts(rows["label"]), dtype=object)
    if species is not None:
        wanted = [str(name) for name in ([species] if isinstance(species, str) else species)]
        present = set(labels)
        unknown = [name for name in wanted if name not in present]
        if unknown:
            known = sorted(present)
            raise ValueError(
                f"species {unknown} have no detections to review; the table's species are "
                f"{known[:20]}{' ...' if len(known) > 20 else ''}."
            )
        keep = np.isin(labels, wanted)
        rows, labels = rows[keep].reset_index(drop=True), labels[keep]

    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    confidence = rows["confidence"].to_numpy()
    lowest = float(min_confidence if min_confidence is not None else confidence.min(initial=1.0))
    edges = np.linspace(lowest, 1.0, n_bins + 1)
    strata = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    chosen, weights, counts = [], [], {}
    for label in sorted(set(labels)):
        members = np.flatnonzero(labels == label)
        counts[label] = len(members)
        n = min(n_per_species, len(members))
        if strategy == "stratified":
            positions, member_weights = _stratified(strata[members], n, n_bins, rng)
        else:
            positions, member_weights = _margin(confidence[members], n, threshold, rng)
        chosen.append(members[positions])
        weights.append(member_weights)
    chosen = np.concatenate(chosen) if chosen else np.zeros(0, dtype=int)
    sample = rows.iloc[chosen].assign(
        weight=np.concatenate(weights) if weights else np.zeros(0),
        stratum=strata[chosen],
        _label=labels[chosen],
    )
    sample = sample.sort_values(["_label", "confidence"], ascending=[True, False], kind="stable")
    sample = sample.drop(columns="_label").reset_index(drop=True)
    sample.attrs = {
        "strategy": strategy,
        "bin_edges": edges.tolist(),
        "threshold": float(threshold),
        "n_detections": counts,
    }
    return sample


# -- reading verdicts back --------------------------------------------------------------


def _number_column(values: pd.Series, column: str, path: Path, review_ids) -> np.ndarray:
    numbers_ = np.full(len(values), np.nan)
    for row, text in enumerate(values):
        text = text.strip()
        if not text:
            continue
        try:
            numbers_[row] = float(text)
        except ValueError:
            raise ValueError(
                f"{path}: data row {row + 1} (review_id {review_ids[row]!r}): {column} is "
                f"{text!r}; expected a number."
            ) from None
    return numbers_


def read_review(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``review.csv`` written by :func:`export_review`, its verdicts filled in or not.

    Parameters
    ----------
    path : str or path-like
        The file: the one :func:`export_review` wrote, the one the review page saves, or
        either edited in a spreadsheet (extra columns are kept).

    Returns
    -------
    pandas.DataFrame
        The columns :data:`REVIEW_COLUMNS` first, then any others (as text). Text cells
        lose the ``'`` that marks them (see :mod:`sklearn_birdaudio.text_cells`); labels are
        ``int`` when all are plain integers, as :func:`~sklearn_birdaudio.read_detections`
        reads them. ``stratum`` is ``int`` when no cell is empty. ``verdict`` is ``"yes"``,
        ``"no"``, ``"unsure"`` or ``""`` (not reviewed); ``y``, ``n``, ``u``, ``1``, ``0``,
        ``true`` and ``false`` are accepted in any case, with spaces around.

    Raises
    ------
    ValueError
        If the file is not UTF-8 text, a column is missing, a number is malformed, or a
        verdict is none of the above: the message names the file, the data row (counted
        from 1 after the header), its ``review_id`` and the value.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "review.csv"
    >>> _ = path.write_text(",".join(REVIEW_COLUMNS) + "\\n"
    ...     "0001,a.wav,1.0,4.0,wren,0.8,2.5,3,clips/0001.wav,1.0,4.0,spectrograms/0001.png,Y\\n")
    >>> row = read_review(path).iloc[0]
    >>> row["label"], float(row["weight"]), int(row["stratum"]), row["verdict"]
    ('wren', 2.5, 3, 'yes')
    """
    path = Path(path)
    table = read_delimited(read_table_text(path), path, ",", REVIEW_COLUMNS)
    for column in table.columns:
        table[column] = table[column].map(csv_cell_text)
    review_ids = table["review_id"].tolist()
    for column in NUMBER_COLUMNS:
        table[column] = _number_column(table[column], column, path, review_ids)
    stratum = _number_column(table["stratum"], "stratum", path, review_ids)
    whole = np.isfinite(stratum).all() and (stratum == np.round(stratum)).all()
    table["stratum"] = stratum.astype(np.int64) if whole else stratum
    table["label"] = labels_from_text(table["label"])
    verdicts = []
    for row, value in enumerate(table["verdict"]):
        verdict = VERDICTS.get(value.strip().lower())
        if verdict is None:
            raise ValueError(
                f"{path}: data row {row + 1} (review_id {review_ids[row]!r}): verdict "
                f"{value!r} is not one of yes, no, unsure (or y/n/u, 1/0, true/false, any "
                "case), or empty for not reviewed."
            )
        verdicts.append(verdict)
    table["verdict"] = verdicts
    others = [column for column in table.columns if column not in REVIEW_COLUMNS]
    return table.loc[:, [*REVIEW_COLUMNS, *others]].reset_index(drop=True)
