"""Checking targets: missing labels, and the kind of target (labels or an indicator matrix).

Every estimator of the package that takes ``y`` reads it through :func:`target_kind`, so a
``None`` among the labels, or labels of types that cannot be compared, give the same
``ValueError`` naming ``y`` wherever they are passed, instead of a ``TypeError`` from deep
inside scikit-learn, or a class silently called ``"nan"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import type_of_target

__all__ = ["check_no_missing_labels", "target_kind"]


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
