"""Curves of how well a model does: per-epoch training curves, precision-recall curves."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve
from sklearn.utils.validation import check_is_fitted

from .._deprecation import deprecate_positional
from .._validation import check_integer
from ..composition import final_estimator
from .spectrograms import MAX_NAMES_IN_NOTE

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _history_rows(history) -> list:
    """The per-epoch records of a History, or of a fitted classifier or pipeline."""
    if isinstance(history, list):  # a skorch History is a list of dicts
        return history
    estimator = final_estimator(history)
    if not hasattr(estimator, "history_"):
        raise TypeError(
            "history must be a fitted AttentionCNNClassifier, a Pipeline ending in one, or a "
            f"skorch History, got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    return estimator.history_


def _series(rows: list, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of ``key`` over the epochs that recorded it."""
    pairs = [(row.get("epoch", index), row[key]) for index, row in enumerate(rows, 1) if key in row]
    epochs, values = zip(*pairs, strict=True) if pairs else ((), ())
    return np.asarray(epochs, dtype=int), np.asarray(values, dtype=float)


@deprecate_positional
def plot_training_curves(history, *, figsize: tuple[float, float] | None = None) -> Figure:
    """Plot the loss and validation mAP of each training epoch.

    Parameters
    ----------
    history : AttentionCNNClassifier, Pipeline or skorch History
        A fitted classifier, a fitted pipeline ending in one, or its ``history_``.
    figsize : (float, float), optional
        Figure size in inches; by default ``(8, 6)`` with validation mAP, ``(8, 4)``
        without.

    Returns
    -------
    matplotlib.figure.Figure
        The first axes hold the training loss and, when the model was validated, the
        validation loss and a vertical line at the best epoch (lowest validation loss:
        the weights early stopping restores). When the history records ``valid_mAP``,
        second axes below hold it, with the same vertical line.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the classifier is not fitted.
    ValueError
        If the history is empty or records no ``train_loss``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skorch.history import History
    >>> from sklearn_birdaudio.plotting import plot_training_curves
    >>> history = History(
    ...     [
    ...         {"epoch": 1, "train_loss": 0.9, "valid_loss": 0.8, "valid_mAP": 0.4},
    ...         {"epoch": 2, "train_loss": 0.6, "valid_loss": 0.7, "valid_mAP": 0.6},
    ...         {"epoch": 3, "train_loss": 0.5, "valid_loss": 0.75, "valid_mAP": 0.6},
    ...     ]
    ... )
    >>> fig = plot_training_curves(history)
    >>> len(fig.axes)
    2
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = _history_rows(history)
    if len(rows) == 0:
        raise ValueError("history is empty; expected the records of at least one epoch.")
    train_epochs, train_loss = _series(rows, "train_loss")
    if len(train_epochs) == 0:
        raise ValueError(
            f"history records no train_loss; expected skorch's per-epoch keys, got "
            f"{sorted(rows[-1])}."
        )
    valid_epochs, valid_loss = _series(rows, "valid_loss")
    map_epochs, valid_map = _series(rows, "valid_mAP")

    n_axes = 2 if len(map_epochs) else 1
    fig, axes = plt.subplots(
        n_axes, 1, sharex=True, squeeze=False, figsize=figsize or (8, 2 + 2 * n_axes),
        layout="constrained",
    )  # fmt: skip
    axes = axes[:, 0]
    loss_axes = axes[0]
    loss_axes.plot(train_epochs, train_loss, marker="o", ms=3, label="training loss")
    if len(valid_epochs):
        loss_axes.plot(valid_epochs, valid_loss, marker="o", ms=3, label="validation loss")
    if len(map_epochs):
        axes[1].plot(map_epochs, valid_map, marker="o", ms=3, color="C2", label="validation mAP")
        axes[1].set_ylabel("Validation mAP")
        axes[1].set_ylim(0, 1)  # the whole range: noise between epochs must not look like progress
    if not np.isnan(valid_loss).all():  # all() of no epochs is True: nothing validated
        best_epoch = valid_epochs[np.nanargmin(valid_loss)]
        for ax in axes:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch ({best_epoch})")
    loss_axes.set_ylabel("Loss")
    loss_axes.legend(fontsize="small")
    axes[-1].set_xlabel("Epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _column_names(table) -> list | None:
    return list(table.columns) if isinstance(table, pd.DataFrame) else None


def _indicator_from_labels(labels: np.ndarray, classes) -> np.ndarray:
    known = {str(name) for name in classes}
    unknown = sorted({str(label) for label in labels} - known)
    if unknown:
        raise ValueError(
            f"y_true has labels {unknown[:MAX_NAMES_IN_NOTE]} that are not in classes "
            f"{[str(name) for name in classes]}."
        )
    names = np.asarray([str(name) for name in classes])
    return (labels.astype(str)[:, np.newaxis] == names[np.newaxis, :]).astype(int)


def _targets_and_scores(y_true, y_score, classes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(indicator, scores, class names)``, both matrices ``(n_samples, n_classes)``."""
    true_names, score_names = _column_names(y_true), _column_names(y_score)
    if true_names is not None and score_names is not None:
        if set(map(str, true_names)) != set(map(str, score_names)):
            raise ValueError(
                f"y_true and y_score are DataFrames with different columns: {true_names} and "
                f"{score_names}; expected the same class names."
            )
        y_score = y_score[true_names]  # same order as y_true
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim != 2:
        raise ValueError(
            f"y_score must be a 2-D array (n_samples, n_classes), got shape {scores.shape}."
        )
    labels = np.asarray(y_true)
    if labels.ndim == 1:
        if classes is None:
            classes = score_names if score_names is not None else np.unique(labels)
            if len(classes) != scores.shape[1]:
                raise ValueError(
                    f"y_true holds {len(classes)} distinct labels but y_score has "
                    f"{scores.shape[1]} columns; pass classes (e.g. the model's classes_) to "
                    "say which class each column scores."
                )
        indicator = _indicator_from_labels(labels, classes)
    elif labels.ndim == 2:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(
                "y_true as a 2-D array must be a 0/1 indicator matrix (n_samples, n_classes); "
                "pass 1-D class labels with classes to binarize them."
            )
        indicator = labels.astype(int)
    else:
        raise ValueError(
            f"y_true must be 1-D labels or a 2-D indicator matrix, got shape {labels.shape}."
        )
    if indicator.shape != scores.shape:
        raise ValueError(
            f"y_true has shape {indicator.shape} (as an indicator matrix) but y_score has shape "
            f"{scores.shape}; expected the same (n_samples, n_classes)."
        )
    if classes is None:
        classes = true_names or score_names or range(scores.shape[1])
    names = [str(name) for name in classes]
    if len(names) != scores.shape[1]:
        raise ValueError(
            f"classes has {len(names)} names but y_score has {scores.shape[1]} columns."
        )
    return indicator, scores, names


def _names_note(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_IN_NOTE])
    return shown + (
        f" and {len(names) - MAX_NAMES_IN_NOTE} more" if len(names) > MAX_NAMES_IN_NOTE else ""
    )


@deprecate_positional
def plot_precision_recall(
    y_true,
    y_score,
    *,
    classes=None,
    max_classes: int = 10,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot per-class and micro-averaged precision-recall curves.

    Parameters
    ----------
    y_true : array-like or DataFrame
        A 0/1 indicator matrix ``(n_samples, n_classes)`` (a DataFrame's columns name the
        classes), or 1-D class labels, binarized with ``classes``.
    y_score : array-like or DataFrame of shape (n_samples, n_classes)
        Scores of each class, e.g. ``predict_proba``. When both ``y_true`` and
        ``y_score`` are DataFrames their columns are matched by name.
    classes : array-like, optional
        The class of each column of ``y_score`` (e.g. the model's ``classes_``). By
        default the DataFrame columns, else the sorted labels of a 1-D ``y_true``, else
        the column indices.
    max_classes : int, default=10
        Most classes drawn: those with the most positives. Classes without a positive
        have no curve; the title names them.
    figsize : (float, float), optional
        Figure size in inches; by default ``(9, 6)`` (the legend takes the right part).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a curve per class drawn, labelled with its average precision (AP), and
        the micro-averaged curve over every class (thick, black). The legend is to the
        right of the axes; the title says how many of the classes are drawn and why the
        others are not.

    Raises
    ------
    ValueError
        If the shapes of ``y_true`` and ``y_score`` differ, a label is not in
        ``classes``, or ``y_true`` has no positive at all.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sklearn_birdaudio.plotting import plot_precision_recall
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> y_score = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.1, 0.5]])
    >>> fig = plot_precision_recall(y_true, y_score, classes=["wren", "tody"])
    >>> [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    ['wren (AP 1.00)', 'tody (AP 0.83)', 'micro-average (AP 0.95)']
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    max_classes = check_integer(max_classes, "max_classes", min_val=1)
    indicator, scores, names = _targets_and_scores(y_true, y_score, classes)
    positives = indicator.sum(axis=0)
    with_positives = np.flatnonzero(positives > 0)
    if len(with_positives) == 0:
        raise ValueError(
            "y_true has no positive label in any class; precision and recall are undefined."
        )
    most_frequent_first = with_positives[np.argsort(-positives[with_positives], kind="stable")]
    shown = most_frequent_first[:max_classes]

    fig, ax = plt.subplots(figsize=figsize or (9, 6), layout="constrained")
    for column in shown:
        precision, recall, _ = precision_recall_curve(indicator[:, column], scores[:, column])
        average_precision = average_precision_score(indicator[:, column], scores[:, column])
        ax.plot(
            recall,
            precision,
            drawstyle="steps-post",
            label=f"{names[column]} (AP {average_precision:.2f})",
        )
    precision, recall, _ = precision_recall_curve(indicator.ravel(), scores.ravel())
    micro_average_precision = average_precision_score(indicator, scores, average="micro")
    ax.plot(
        recall,
        precision,
        drawstyle="steps-post",
        color="black",
        lw=3,
        label=f"micro-average (AP {micro_average_precision:.2f})",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    # Beside the axes, not on them: with many classes a legend inside hides the curves.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0)

    drawn = f"{len(shown)} of {len(names)} classes drawn"
    if len(shown) < len(with_positives):
        drawn += f": the {len(shown)} with the most positives (max_classes={max_classes})"
    notes = [drawn]
    without = [names[column] for column in np.flatnonzero(positives == 0)]
    if without:
        notes.append(f"no positives, not shown: {_names_note(without)}")
    ax.set_title("\n".join(["Precision-recall", *(textwrap.fill(note, 70) for note in notes)]))
    return fig
