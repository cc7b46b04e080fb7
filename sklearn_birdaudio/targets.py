"""Checking and encoding targets: missing labels, the kind of target, the loss's encoding.

Every estimator of the package that takes ``y`` reads it through :func:`target_kind`, so a
``None`` among the labels, or labels of types that cannot be compared, give the same
``ValueError`` naming ``y`` wherever they are passed, instead of a ``TypeError`` from deep
inside scikit-learn, or a class silently called ``"nan"``. :func:`encode_targets` turns
``y`` into what the classifier's loss takes (an indicator matrix, NaN where unknown, or
class indices) with its classes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import column_or_1d

__all__ = ["check_no_missing_labels", "encode_targets", "target_kind"]


def check_no_missing_labels(y) -> np.ndarray:
    """``y`` as an array, refused if any label is missing (None, NaN or ``pd.NA``).

    Parameters
    ----------
    y : array-like
        Labels or a 0/1 indicator matrix.

    Returns
    -------
    ndarray
        ``np.asarray(y)``.

    Raises
    ------
    ValueError
        Naming ``y`` and how many labels are missing; or saying that ``y`` is None.

    Examples
    --------
    >>> check_no_missing_labels(["wren", None])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: y contains 1 missing label(s) (None or NaN); expected ...
    """
    if y is None:  # scikit-learn's words, which its checks look for
        raise ValueError("This estimator requires y to be passed, but the target y is None.")
    array = np.asarray(y)
    # Among strings, missing labels are looked for in objects: numpy turns NaN into "nan".
    missing = pd.isna(array if array.dtype.kind in "biuf" else np.asarray(y, dtype=object))
    if missing.any():
        what = "NaN value(s)" if array.dtype.kind == "f" else "missing label(s) (None or NaN)"
        raise ValueError(
            f"y contains {int(missing.sum())} {what}; expected 0/1 indicators or class "
            "labels (NaN is only allowed in X, as padding)."
        )
    return array


def target_kind(y) -> str:
    """:func:`sklearn.utils.multiclass.type_of_target` of ``y``, with clear errors.

    Parameters
    ----------
    y : array-like
        Labels or a 0/1 indicator matrix, without missing values
        (:func:`check_no_missing_labels`).

    Returns
    -------
    str
        ``"binary"``, ``"multiclass"``, ``"multilabel-indicator"``, ...

    Raises
    ------
    ValueError
        If the labels are of types that cannot be compared (``"a"`` and ``1``).

    Examples
    --------
    >>> target_kind(["wren", "robin"]), target_kind([[0, 1], [1, 1]])
    ('binary', 'multilabel-indicator')
    """
    try:
        return type_of_target(y)
    except TypeError as error:  # labels that cannot be sorted together, e.g. "a" and 1
        raise ValueError(
            f"y holds labels of types that cannot be compared ({error}); expected class "
            "labels of one type (all strings or all integers)."
        ) from error


def encode_targets(
    y,
    *,
    allow_unknown: bool,
    classes=None,
    fitted: tuple[np.ndarray, bool] | None = None,
    soft: bool = False,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Targets as the classifier's loss takes them, with their classes and kind.

    Parameters
    ----------
    y : array-like of shape (n_samples, n_classes) or (n_samples,)
        A 0/1 indicator matrix (multi-label; a DataFrame's columns name the classes) or
        class labels (multi-class). A single column is read as labels, with
        scikit-learn's ``DataConversionWarning``.
    allow_unknown : bool
        Whether NaN in a float indicator matrix of two or more columns marks an unknown
        target, kept for a loss that leaves it out; otherwise NaN is a missing label,
        refused.
    classes : array-like, optional
        Every class label, for labels ``y`` that lack some (multi-class), or the names of
        the columns of ``y`` (multi-label). Ignored with ``fitted``.
    fitted : tuple of (ndarray, bool), optional
        The ``classes_`` and ``multilabel_`` of a fitted classifier trained further:
        ``y`` must then have its kind of targets and its classes. ``None`` learns them
        from ``y``.
    soft : bool, default=False
        Whether an indicator matrix may hold probabilities in [0, 1] (soft labels, such
        as a teacher's in distillation) rather than 0/1 only.

    Returns
    -------
    targets : ndarray
        A float32 indicator matrix (NaN where unknown), or int64 indices into ``classes``.
    classes : ndarray
        The class labels: the names of the columns (``classes``, a DataFrame's column
        names, else their positions) or the sorted labels (of ``classes`` when given);
        ``fitted``'s when given.
    multilabel : bool
        Whether ``targets`` is an indicator matrix.

    Raises
    ------
    ValueError
        For missing labels, values other than 0/1 in a matrix, a single class, labels not
        in ``classes``, targets of another kind or classes than ``fitted``'s, or a kind
        of target that is neither labels nor an indicator matrix.

    Examples
    --------
    >>> targets, classes, multilabel = encode_targets(["wren", "owl", "wren"], allow_unknown=True)
    >>> targets.tolist(), classes.tolist(), multilabel
    ([1, 0, 1], ['owl', 'wren'], False)
    >>> encode_targets([[1, float("nan")], [0, 1]], allow_unknown=True)[0].tolist()
    [[1.0, nan], [0.0, 1.0]]
    >>> encode_targets([[0.75, 0.25], [0, 1]], allow_unknown=False, soft=True)[0].tolist()
    [[0.75, 0.25], [0.0, 1.0]]
    """
    columns = list(y.columns) if isinstance(y, pd.DataFrame) else None
    y, unknown = _unknown_targets(y, allow_unknown)
    matrix = y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf"
    if soft and matrix:
        known = y[~unknown].astype(np.float64)
        if not ((known >= 0) & (known <= 1)).all():
            raise ValueError(
                f"y holds values outside [0, 1] (from {known.min()} to {known.max()}); "
                "expected soft labels: probabilities in [0, 1]."
            )
    if matrix and not soft and not np.isin(y[~unknown], (0, 1)).all():
        raise ValueError(
            f"y is a 2-D array with values {np.unique(y[~unknown])[:10].tolist()}; expected "
            "a 0/1 indicator matrix (multi-label)."
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)  # scikit-learn's reading of a column vector
    if soft and matrix:  # an indicator matrix of probabilities
        kind = "multilabel-indicator"
    else:  # type_of_target refuses NaN: the kind is that of the matrix with unknowns as 0.
        kind = target_kind(np.where(unknown, 0.0, y) if unknown.any() else y)
    if kind == "multilabel-indicator":
        if fitted is None:
            names = classes if classes is not None else columns
            names = np.asarray(names if names is not None else range(y.shape[1]))
            if names.shape != (y.shape[1],):
                raise ValueError(f"classes has {names.size} labels but y has {y.shape[1]} columns.")
            fitted = (names, True)
        elif not fitted[1] or y.shape[1] != len(fitted[0]):
            raise ValueError(
                f"y is an indicator matrix of {y.shape[1]} columns; the classifier was "
                f"fitted on {_describe(*fitted)}."
            )
        return y.astype(np.float32), *fitted
    if kind in ("binary", "multiclass") and y.ndim == 1:
        if fitted is None:
            labels = np.unique(y if classes is None else np.asarray(classes))
            if len(labels) < 2:
                raise ValueError(
                    f"y has one class {labels.tolist()}; a classifier needs at least 2 classes."
                )
            fitted = (labels, False)
        elif fitted[1]:
            raise ValueError(
                f"y holds class labels; the classifier was fitted on {_describe(*fitted)}."
            )
        labels = fitted[0]
        unknown = np.setdiff1d(y, labels)
        if unknown.size:
            raise ValueError(
                f"y contains labels {unknown[:10].tolist()} that are not in classes_ "
                f"{labels.tolist()}."
            )
        return np.searchsorted(labels, y).astype(np.int64), *fitted
    raise ValueError(
        f"Unknown label type: y is {kind!r} of shape {y.shape}; expected a 2-D 0/1 "
        "indicator matrix (multi-label) or 1-D class labels (multi-class)."
    )


def _unknown_targets(y, allow_unknown: bool) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as an array and where it is unknown (NaN), if unknown targets are allowed.

    NaN is read as "unknown" only in a float matrix of two or more columns (an indicator
    matrix) and with ``allow_unknown``; anywhere else it is a missing label, refused by
    :func:`check_no_missing_labels`.
    """
    array = np.asarray(y)
    if allow_unknown and array.ndim == 2 and array.shape[1] > 1 and array.dtype.kind == "f":
        unknown = np.isnan(array)
        if unknown.all():
            raise ValueError(
                "y is NaN (unknown) everywhere; expected at least one known 0/1 target."
            )
        return array, unknown
    array = check_no_missing_labels(y)
    return array, np.zeros(array.shape, dtype=bool)


def _describe(classes: np.ndarray, multilabel: bool) -> str:
    """The targets a classifier was fitted on, for messages."""
    kind = "an indicator matrix" if multilabel else "labels"
    return f"{kind} of the classes {classes.tolist()}"
