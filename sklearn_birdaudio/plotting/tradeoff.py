"""The accuracy-speed figure: every model's score against how fast it runs, and the front."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["pareto_front", "plot_accuracy_speed"]


def pareto_front(scores, speeds) -> np.ndarray:
    """Which models no other model beats on both score and speed.

    Parameters
    ----------
    scores, speeds : array-like of shape (n_models,)
        Higher is better for both (macro mAP, times real time).

    Returns
    -------
    ndarray of bool, shape (n_models,)
        True for a model that no other has at least as high on both and higher on one.

    Examples
    --------
    >>> pareto_front([0.6, 0.9, 0.8, 0.5], [1000, 60, 900, 500]).tolist()
    [True, True, True, False]
    """
    scores, speeds = np.asarray(scores, dtype=float), np.asarray(speeds, dtype=float)
    if scores.shape != speeds.shape or scores.ndim != 1:
        raise ValueError(
            f"scores and speeds must be 1-D of one length, got shapes {scores.shape} and "
            f"{speeds.shape}."
        )
    at_least = (scores[None, :] >= scores[:, None]) & (speeds[None, :] >= speeds[:, None])
    better = (scores[None, :] > scores[:, None]) | (speeds[None, :] > speeds[:, None])
    return ~(at_least & better).any(axis=1)


def plot_accuracy_speed(
    models: pd.DataFrame,
    *,
    score: str = "macro mAP",
    speed: str = "x real time",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot each model's score against its speed, with the Pareto front a user chooses from.

    Parameters
    ----------
    models : DataFrame
        One row per model: a ``name`` column, the ``score`` and ``speed`` columns, and
        optionally ``low`` and ``high`` (an interval of the score, drawn as an error bar)
        and ``group`` (models of one group share a colour and a legend entry, such as
        "ours" and "BirdNET").
    score : str, default="macro mAP"
        Column of the score (higher is better), drawn on the y axis.
    speed : str, default="x real time"
        Column of the speed (higher is better), drawn on a logarithmic x axis.
    title : str, optional
        The figure's title.
    figsize : (float, float), optional
        Figure size in inches; by default ``(8, 5)``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a labelled point per model, the front as a dashed step line.

    Raises
    ------
    ValueError
        If a column is missing, or a speed is not positive.
    """
    import matplotlib.pyplot as plt

    missing = [column for column in ("name", score, speed) if column not in models.columns]
    if missing:
        raise ValueError(f"models lacks the columns {missing}; it has {list(models.columns)}.")
    speeds = models[speed].to_numpy(dtype=float)
    if not (np.isfinite(speeds) & (speeds > 0)).all():
        raise ValueError(f"every {speed!r} must be a positive number, got {speeds.tolist()}.")
    scores = models[score].to_numpy(dtype=float)
    groups = models["group"] if "group" in models.columns else pd.Series(["models"] * len(models))
    figure, axes = plt.subplots(figsize=figsize or (8, 5), layout="constrained")
    colours = plt.get_cmap("tab10")
    for index, group in enumerate(dict.fromkeys(groups)):
        rows = (groups == group).to_numpy()
        errors = None
        if {"low", "high"} <= set(models.columns):
            errors = np.vstack(
                [scores[rows] - models["low"][rows], models["high"][rows] - scores[rows]]
            )
        axes.errorbar(
            speeds[rows], scores[rows], yerr=errors, fmt="o", ms=7, capsize=3,
            color=colours(index), label=str(group),
        )  # fmt: skip
    for name, x, y in zip(models["name"], speeds, scores, strict=True):
        axes.annotate(str(name), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = pareto_front(scores, speeds)
    order = np.argsort(speeds[front])
    axes.step(
        speeds[front][order], scores[front][order], where="post", ls="--", color="grey",
        lw=1, label="Pareto front",
    )  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel(f"speed ({speed}, log scale)")
    axes.set_ylabel(score)
    axes.grid(alpha=0.3, which="both")
    axes.legend(loc="lower left", fontsize=8)
    if title:
        axes.set_title(title)
    return figure
