"""The tables calibration reads: reviewed detections, their verdicts and weights.

A review or detection table gives each detection's species (``label``) and score
(``confidence``); a review adds the ecologist's ``verdict`` and, for a stratified sample,
each row's ``weight``. The checks here name the table, the column and the values at fault.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VERDICTS = {"yes": 1, "no": 0, "true": 1, "false": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0}
MAX_SHOWN = 5


def _examples(values) -> str:
    values = list(dict.fromkeys(values))
    shown = ", ".join(repr(value) for value in values[:MAX_SHOWN])
    return shown + (f" and {len(values) - MAX_SHOWN} more" if len(values) > MAX_SHOWN else "")


def _check_table(X, name: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """The ``label`` (as str) and ``confidence`` (float) columns of a detection table."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas DataFrame with columns 'label' and 'confidence' (a "
            f"detection or review table), got {type(X).__name__}."
        )
    missing = [column for column in ("label", "confidence") if column not in X.columns]
    if missing:
        raise ValueError(
            f"{name} has no column {missing}; expected 'label' and 'confidence' (a detection "
            f"or review table), got columns {list(X.columns)}."
        )
    labels = X["label"]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())
        raise ValueError(f"{name}['label'] is missing in {len(rows)} row(s), e.g. {rows[:5]}.")
    confidence = pd.to_numeric(X["confidence"], errors="coerce").to_numpy(dtype=float)
    not_numbers = np.isnan(confidence) & X["confidence"].notna().to_numpy()
    if not_numbers.any():
        raise ValueError(
            f"{name}['confidence'] must be numbers; got "
            f"{_examples(X['confidence'].to_numpy()[not_numbers])}."
        )
    if np.isnan(confidence).any():
        rows = np.flatnonzero(np.isnan(confidence))
        raise ValueError(
            f"{name}['confidence'] is NaN or missing in {len(rows)} row(s), e.g. {rows[:5]}; "
            "every detection needs a score in [0, 1]."
        )
    outside = (confidence < 0) | (confidence > 1)
    if outside.any():
        raise ValueError(
            f"{name}['confidence'] must be scores in [0, 1]; got "
            f"{_examples(confidence[outside].tolist())}."
        )
    return labels.astype(str).to_numpy(dtype=object), confidence


def _verdicts(y, n_rows: int | None = None, name: str = "y") -> np.ndarray:
    """0/1 from verdicts given as 1/0, True/False or "yes"/"no" (any case)."""
    if np.ndim(y) != 1:
        raise ValueError(f"{name} must be 1-D verdicts, got shape {np.shape(y)}.")
    values = pd.Series(np.asarray(y, dtype=object))
    if n_rows is not None and len(values) != n_rows:
        raise ValueError(f"{name} has {len(values)} verdicts but X has {n_rows} rows.")
    correct = values.astype(str).str.strip().str.lower().map(VERDICTS)
    if correct.isna().any():
        bad = values[correct.isna()].to_numpy()
        raise ValueError(
            f"{name} must be binary verdicts (1/0, True/False or 'yes'/'no'); got {len(bad)} "
            f"other value(s): {_examples(bad.tolist())}. Drop undecided reviews ('unsure', "
            "empty) first, e.g. with decided_reviews(reviews)."
        )
    return correct.to_numpy(dtype=float)


def _weights(sample_weight, n_rows: int, name: str = "sample_weight") -> np.ndarray:
    """Non-negative finite weights, one per row (ones when None)."""
    if sample_weight is None:
        return np.ones(n_rows)
    weights = pd.to_numeric(pd.Series(np.asarray(sample_weight).ravel()), errors="coerce")
    weights = weights.to_numpy(dtype=float)
    if np.ndim(sample_weight) != 1 or len(weights) != n_rows:
        raise ValueError(
            f"{name} must hold one weight per row ({n_rows}), got shape {np.shape(sample_weight)}."
        )
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        values = np.asarray(sample_weight, dtype=object)[bad].tolist()
        raise ValueError(f"{name} must be finite non-negative numbers; got {_examples(values)}.")
    return weights


def decided_reviews(reviews: pd.DataFrame) -> pd.DataFrame:
    """The rows of a review table whose verdict is "yes" or "no".

    Parameters
    ----------
    reviews : DataFrame
        A review table (as ``birdaudio review`` writes and
        :func:`sklearn_birdaudio.review.read_review` reads) with a ``verdict`` column.

    Returns
    -------
    DataFrame
        The rows with a yes/no verdict (any case, surrounding spaces ignored), in order,
        with their index: "unsure" and empty verdicts are left out.

    Raises
    ------
    ValueError
        If there is no ``verdict`` column.

    Examples
    --------
    >>> reviews = pd.DataFrame({"label": ["wren"] * 3, "confidence": [0.2, 0.5, 0.9],
    ...     "verdict": ["no", "unsure", "Yes"]})
    >>> decided_reviews(reviews)["verdict"].tolist()
    ['no', 'Yes']
    """
    if not isinstance(reviews, pd.DataFrame) or "verdict" not in reviews.columns:
        columns = list(reviews.columns) if isinstance(reviews, pd.DataFrame) else None
        raise ValueError(f"reviews must be a DataFrame with a 'verdict' column, got {columns}.")
    verdicts = reviews["verdict"].astype(str).str.strip().str.lower()
    return reviews[verdicts.isin(("yes", "no")).to_numpy()]
