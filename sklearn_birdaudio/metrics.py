"""Metrics and scorers for multi-label bird classification.

Thin wrappers over :mod:`sklearn.metrics` that fix the choices bird-sound evaluation needs:
what to do with species absent from the evaluation data, BirdCLEF's padded cmAP, F1 at a
probability threshold and top-1 accuracy of the primary species.

Targets are a 0/1 indicator matrix ``(n_samples, n_classes)`` (an array or a DataFrame);
1-D labels are also accepted and are binarised against ``classes``, the column order of the
scores (an estimator's ``classes_``). Scores are probabilities ``(n_samples, n_classes)``.

``SCORERS`` maps names to scorers for ``GridSearchCV(scoring=...)`` and ``cross_validate``;
:func:`get_scorer` looks names up there first, then in scikit-learn.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from sklearn.metrics import average_precision_score, f1_score
from sklearn.metrics import get_scorer as sklearn_get_scorer

from ._deprecation import deprecate_positional
from ._validation import check_integer, check_real

__all__ = [
    "SCORERS",
    "f1_at_threshold",
    "get_scorer",
    "make_proba_scorer",
    "mean_average_precision",
    "padded_cmap",
    "top1_accuracy",
]

MAP_AVERAGES = ("macro", "micro")
F1_AVERAGES = ("micro", "macro", "weighted", "samples")


# -- input validation -------------------------------------------------------------------------
def _check_scores(y_score) -> np.ndarray:
    try:
        scores = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"y_score must hold numbers; got {error}") from None
    if scores.ndim != 2:
        raise ValueError(
            "y_score must be a 2-D array of shape (n_samples, n_classes); "
            f"got shape {scores.shape}."
        )
    if not np.isfinite(scores).all():
        raise ValueError("y_score must be finite; it holds NaN or infinite values.")
    return scores


def _check_targets(y_true, y_score, classes=None, name: str = "y_true") -> tuple:
    """Validate ``y_true`` and ``y_score``; return an int indicator matrix and float scores."""
    scores = _check_scores(y_score)
    both_frames = hasattr(y_true, "columns") and hasattr(y_score, "columns")
    if both_frames and list(y_true.columns) != list(y_score.columns):
        raise ValueError(
            f"{name} and y_score are DataFrames with different columns: "
            f"{list(y_true.columns)} and {list(y_score.columns)}; put them in the same order."
        )
    targets = np.asarray(y_true)
    if targets.ndim == 1:
        targets = _binarize(targets, scores.shape[1], classes, name)
    if targets.shape != scores.shape:
        raise ValueError(
            f"{name} and y_score must have the same shape (n_samples, n_classes); got "
            f"{name} {targets.shape} and y_score {scores.shape}."
        )
    if not np.isin(targets, (0, 1)).all():
        raise ValueError(f"{name} must be a 0/1 indicator matrix; it holds other values.")
    return targets.astype(np.int64), scores


def _binarize(labels: np.ndarray, n_classes: int, classes, name: str) -> np.ndarray:
    """One-hot encode 1-D labels against ``classes`` (default: column indices)."""
    classes = np.arange(n_classes) if classes is None else np.asarray(classes)
    if classes.shape != (n_classes,):
        raise ValueError(
            f"classes must hold one label per column of y_score ({n_classes}); "
            f"got shape {classes.shape}."
        )
    if len(np.unique(classes)) != n_classes:
        raise ValueError(f"classes must not repeat labels; got {classes.tolist()}.")
    indicator = labels[:, None] == classes[None, :]
    unknown = ~indicator.any(axis=1)
    if unknown.any():
        raise ValueError(
            f"{name} holds labels that are not in classes: {np.unique(labels[unknown]).tolist()}; "
            f"expected one of {classes.tolist()}."
        )
    return indicator


# -- metrics ----------------------------------------------------------------------------------
@deprecate_positional
def mean_average_precision(y_true, y_score, *, average: str = "macro", classes=None) -> float:
    """Mean average precision (mAP) over classes, skipping classes with no positive.

    Average precision is undefined for a class with no positive sample in ``y_true``
    (scikit-learn scores it 0 with a warning, which drags the macro mean down by the share
    of species that happen to be absent from a fold). Here the macro mean is taken over the
    classes with at least one positive; the micro average pools all classes, so absent ones
    only add negatives.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples, n_classes) or (n_samples,)
        0/1 indicator matrix of the species present, or 1-D labels (see ``classes``).
    y_score : array-like or DataFrame of shape (n_samples, n_classes)
        Predicted probabilities (or any scores that rank samples), one column per class.
    average : {"macro", "micro"}, default="macro"
        ``"macro"``: mean of the per-class average precisions. ``"micro"``: average
        precision of all (sample, class) pairs pooled.
    classes : array-like of shape (n_classes,), optional
        Only for 1-D ``y_true``: the label of each column of ``y_score`` (an estimator's
        ``classes_``). By default the labels are the column indices ``0 .. n_classes - 1``.

    Returns
    -------
    float
        The mean average precision, in [0, 1].

    Raises
    ------
    ValueError
        If ``average`` is not "macro" or "micro", the shapes differ, ``y_true`` is not 0/1,
        ``y_score`` is not finite, or no class has a positive sample.

    See Also
    --------
    padded_cmap : BirdCLEF's variant, which pads every class with positives.
    sklearn.metrics.average_precision_score : The per-class computation.

    Examples
    --------
    >>> y_true = [[1, 0, 0], [0, 1, 0], [1, 0, 0]]  # the third class never occurs
    >>> y_score = [[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.2, 0.1, 0.6]]
    >>> round(mean_average_precision(y_true, y_score), 4)  # mean of AP 0.8333 and 1.0
    0.9167
    >>> round(mean_average_precision(y_true, y_score, average="micro"), 4)
    0.8095
    """
    if average not in MAP_AVERAGES:
        raise ValueError(f"average must be one of {MAP_AVERAGES}; got {average!r}.")
    targets, scores = _check_targets(y_true, y_score, classes)
    has_positive = targets.any(axis=0)
    if not has_positive.any():
        raise ValueError(
            "y_true has no positive sample in any class; average precision is undefined."
        )
    if average == "macro":
        targets, scores = targets[:, has_positive], scores[:, has_positive]
    return float(average_precision_score(targets, scores, average=average))


@deprecate_positional
def padded_cmap(y_true, y_score, *, padding_factor: int = 5, classes=None) -> float:
    """Padded class-wise mean average precision (cmAP), the BirdCLEF 2021/2022 metric.

    ``padding_factor`` rows of all ones are appended to both the targets and the scores
    before taking the macro average precision over all classes. Every class then has
    positives (so none is undefined) and a class's AP can only rise: a lenient metric that
    rewards ranking the true positives of rare species near the top.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples, n_classes) or (n_samples,)
        0/1 indicator matrix of the species present, or 1-D labels (see ``classes``).
    y_score : array-like or DataFrame of shape (n_samples, n_classes)
        Predicted probabilities in [0, 1], one column per class.
    padding_factor : int, default=5
        Number of all-ones rows appended; at least 1.
    classes : array-like of shape (n_classes,), optional
        Only for 1-D ``y_true``: the label of each column of ``y_score``. By default the
        labels are the column indices.

    Returns
    -------
    float
        The padded cmAP, in [0, 1].

    Raises
    ------
    ValueError
        If ``padding_factor`` is not a positive integer, or the inputs are invalid (see
        :func:`mean_average_precision`).

    Examples
    --------
    >>> y_true = [[1, 0], [0, 1], [0, 0]]
    >>> y_score = [[0.9, 0.2], [0.3, 0.1], [0.2, 0.6]]
    >>> padded_cmap(y_true, y_score, padding_factor=1)  # mean of AP 1.0 and 0.75
    0.875
    """
    padding_factor = check_integer(
        padding_factor,
        "padding_factor",
        min_val=1,
        message=f"padding_factor must be a positive integer; got {padding_factor!r}.",
    )
    targets, scores = _check_targets(y_true, y_score, classes)
    padding = np.ones((padding_factor, targets.shape[1]))
    return float(
        average_precision_score(
            np.vstack([targets, padding]), np.vstack([scores, padding]), average="macro"
        )
    )


@deprecate_positional
def f1_at_threshold(
    y_true, y_score, *, threshold: float = 0.5, average: str = "micro", classes=None
) -> float:
    """F1 score of the species predicted present at a probability threshold.

    A class is predicted for a sample when its score is at least ``threshold``; the F1
    score is :func:`sklearn.metrics.f1_score` with ``zero_division=0`` (a class that is
    neither present nor predicted scores 0 in the macro mean rather than warning).

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples, n_classes) or (n_samples,)
        0/1 indicator matrix of the species present, or 1-D labels (see ``classes``).
    y_score : array-like or DataFrame of shape (n_samples, n_classes)
        Predicted probabilities, one column per class.
    threshold : float, default=0.5
        Scores at or above it count as predicted present.
    average : {"micro", "macro", "weighted", "samples"}, default="micro"
        How F1 is averaged, as in :func:`sklearn.metrics.f1_score`.
    classes : array-like of shape (n_classes,), optional
        Only for 1-D ``y_true``: the label of each column of ``y_score``. By default the
        labels are the column indices.

    Returns
    -------
    float
        The F1 score, in [0, 1].

    Raises
    ------
    ValueError
        If ``average`` is not one of the accepted values, ``threshold`` is not a finite
        number, or the inputs are invalid.

    Examples
    --------
    >>> y_true = [[1, 0], [0, 1], [1, 1]]
    >>> y_score = [[0.9, 0.2], [0.3, 0.4], [0.7, 0.6]]
    >>> round(f1_at_threshold(y_true, y_score), 4)  # 3 true positives, 1 missed
    0.8571
    >>> f1_at_threshold(y_true, y_score, threshold=0.35)
    1.0
    """
    if average not in F1_AVERAGES:
        raise ValueError(f"average must be one of {F1_AVERAGES}; got {average!r}.")
    check_real(
        threshold, "threshold", message=f"threshold must be a finite number; got {threshold!r}."
    )
    targets, scores = _check_targets(y_true, y_score, classes)
    predicted = (scores >= threshold).astype(np.int64)
    return float(f1_score(targets, predicted, average=average, zero_division=0))


@deprecate_positional
def top1_accuracy(y_primary, y_score, *, classes=None) -> float:
    """Share of samples whose highest-scored class is their primary species.

    Parameters
    ----------
    y_primary : array-like of shape (n_samples,) or (n_samples, n_classes)
        The primary species: 1-D labels (see ``classes``), or an indicator matrix with a 1
        in the primary column. A row with several 1s counts as correct when the top class
        is any of them (with a full multi-label target this is the top-1 precision);
        every row needs at least one 1.
    y_score : array-like or DataFrame of shape (n_samples, n_classes)
        Predicted probabilities, one column per class. Ties go to the first column, as in
        :func:`numpy.argmax`.
    classes : array-like of shape (n_classes,), optional
        Only for 1-D ``y_primary``: the label of each column of ``y_score``. By default the
        labels are the column indices.

    Returns
    -------
    float
        The top-1 accuracy, in [0, 1].

    Raises
    ------
    ValueError
        If a row of ``y_primary`` has no 1, a label is not in ``classes``, or the inputs
        are otherwise invalid.

    Examples
    --------
    >>> y_score = [[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.3, 0.6]]
    >>> top1_accuracy([0, 2, 2], y_score)
    0.6666666666666666
    >>> top1_accuracy(["wren", "robin", "robin"], y_score, classes=["wren", "tit", "robin"])
    0.6666666666666666
    """
    targets, scores = _check_targets(y_primary, y_score, classes, name="y_primary")
    unlabelled = ~targets.any(axis=1)
    if unlabelled.any():
        raise ValueError(
            f"y_primary must have a 1 in every row; rows {np.flatnonzero(unlabelled)[:10].tolist()}"
            " have none (top-1 accuracy is undefined for them)."
        )
    top = scores.argmax(axis=1)
    return float(targets[np.arange(len(top)), top].mean())


# -- scorers ----------------------------------------------------------------------------------
def _positive_probabilities(estimator, X) -> np.ndarray:
    """``predict_proba`` as one column per class, also for ``MultiOutputClassifier``.

    A list of ``(n_samples, n_classes_j)`` arrays (one per label) becomes the column of
    class 1 of each; a label that never saw class 1 in ``fit`` gets probability 0.
    """
    probabilities = estimator.predict_proba(X)
    if not isinstance(probabilities, list):
        return np.asarray(probabilities)
    classes = getattr(estimator, "classes_", None)
    if not isinstance(classes, list):
        # No classes_ per label to go by: take the last column, as scikit-learn does.
        return np.column_stack([np.asarray(proba)[:, -1] for proba in probabilities])
    # Multiplying by the mask of class 1 picks its column, or gives 0 when it is absent.
    return np.column_stack(
        [
            np.asarray(proba) @ (np.asarray(labels) == 1)
            for proba, labels in zip(probabilities, classes, strict=True)
        ]
    )


class _ProbaScorer:
    """``scorer(estimator, X, y_true)`` that scores the full ``predict_proba`` matrix."""

    def __init__(self, score_func: Callable, greater_is_better: bool, kwargs: dict):
        self._score_func = score_func
        self._sign = 1 if greater_is_better else -1
        self._kwargs = kwargs
        self._takes_classes = "classes" in inspect.signature(score_func).parameters

    def __call__(self, estimator, X, y_true) -> float:
        y_score = _positive_probabilities(estimator, X)
        kwargs = dict(self._kwargs)
        classes = getattr(estimator, "classes_", None)
        if self._takes_classes and np.ndim(y_true) == 1 and not isinstance(classes, list):
            kwargs.setdefault("classes", classes)
        return self._sign * self._score_func(y_true, y_score, **kwargs)

    def __repr__(self) -> str:
        arguments = [getattr(self._score_func, "__name__", repr(self._score_func))]
        if self._sign < 0:
            arguments.append("greater_is_better=False")
        arguments += [f"{key}={value!r}" for key, value in self._kwargs.items()]
        return f"make_proba_scorer({', '.join(arguments)})"


def make_proba_scorer(
    score_func: Callable, *, greater_is_better: bool = True, **kwargs
) -> Callable:
    """Make a scorer that passes an estimator's full ``predict_proba`` to ``score_func``.

    Use it instead of ``sklearn.metrics.make_scorer(..., response_method="predict_proba")``
    for multi-label metrics. scikit-learn decides what to pass from ``estimator.classes_``:
    with exactly two classes (a two-species indicator fitted by ``OneVsRestClassifier`` or
    :class:`~sklearn_birdaudio.AttentionCNNClassifier`) it passes only the second column.
    This scorer always passes ``(n_samples, n_classes)``: the array ``predict_proba``
    returns, or, for ``MultiOutputClassifier``'s list of per-label arrays, each label's
    probability of class 1. With 1-D targets it also passes ``classes=estimator.classes_``
    when ``score_func`` takes a ``classes`` parameter.

    Parameters
    ----------
    score_func : callable
        ``score_func(y_true, y_score, **kwargs) -> float``, e.g. :func:`padded_cmap`.
    greater_is_better : bool, default=True
        If False the score is negated, so that higher is better for model selection.
    **kwargs
        Passed on to ``score_func``.

    Returns
    -------
    callable
        ``scorer(estimator, X, y_true) -> float``, for ``scoring=`` in
        ``GridSearchCV`` and ``cross_validate``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multiclass import OneVsRestClassifier
    >>> X = np.random.default_rng(0).normal(size=(40, 2))
    >>> Y = (X > 0).astype(int)
    >>> model = OneVsRestClassifier(LogisticRegression()).fit(X, Y)
    >>> scorer = make_proba_scorer(padded_cmap, padding_factor=1)
    >>> scorer
    make_proba_scorer(padded_cmap, padding_factor=1)
    >>> scorer(model, X, Y) == padded_cmap(Y, model.predict_proba(X), padding_factor=1)
    True
    """
    return _ProbaScorer(score_func, greater_is_better, kwargs)


SCORERS = {
    "mAP_macro": make_proba_scorer(mean_average_precision, average="macro"),
    "mAP_micro": make_proba_scorer(mean_average_precision, average="micro"),
    "padded_cmAP": make_proba_scorer(padded_cmap),
    "f1_micro": make_proba_scorer(f1_at_threshold, average="micro"),
    "f1_macro": make_proba_scorer(f1_at_threshold, average="macro"),
    "top1_accuracy": make_proba_scorer(top1_accuracy),
}
"""Scorers by name; each scores the full ``predict_proba`` (see :func:`make_proba_scorer`)."""


def get_scorer(scoring) -> Callable:
    """Get a scorer by name from :data:`SCORERS`, else from scikit-learn.

    Our names come first: ``"f1_micro"`` and ``"f1_macro"`` threshold ``predict_proba`` at
    0.5 (:func:`f1_at_threshold`) instead of scoring ``predict`` as scikit-learn's do.

    Parameters
    ----------
    scoring : str or callable
        A key of ``SCORERS`` (``"mAP_macro"``, ``"mAP_micro"``, ``"padded_cmAP"``,
        ``"f1_micro"``, ``"f1_macro"``, ``"top1_accuracy"``), a scikit-learn scorer name, or
        a callable (returned by :func:`sklearn.metrics.get_scorer`).

    Returns
    -------
    callable
        ``scorer(estimator, X, y_true) -> float``.

    Raises
    ------
    ValueError
        If ``scoring`` is a name known neither here nor to scikit-learn.

    Examples
    --------
    >>> get_scorer("padded_cmAP")
    make_proba_scorer(padded_cmap)
    >>> get_scorer("accuracy")
    make_scorer(accuracy_score, response_method='predict')
    """
    if isinstance(scoring, str) and scoring in SCORERS:
        return SCORERS[scoring]
    try:
        return sklearn_get_scorer(scoring)
    except ValueError:
        if not isinstance(scoring, str):
            raise
        raise ValueError(
            f"scoring={scoring!r} is not a known scorer; expected one of {sorted(SCORERS)} "
            "or a name from sklearn.metrics.get_scorer_names()."
        ) from None
