"""The calibration figure: a species' calibrated P(correct) against the score."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from .._deprecation import deprecate_positional
from ..calibration.reviews import _check_table, _verdicts, decided_reviews
from ..calibration.thresholds import _precision_above

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@deprecate_positional
def plot_calibration(
    calibrator,
    species: str,
    reviews: pd.DataFrame | None = None,
    *,
    threshold_row=None,
    target: float | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot a species' calibrated probability of a correct detection against the score.

    Parameters
    ----------
    calibrator : ScoreCalibrator
        A fitted :class:`~sklearn_birdaudio.calibration.ScoreCalibrator`.
    species : str
        The species drawn; one never reviewed is drawn with the pooled model.
    reviews : DataFrame, optional
        Reviewed detections: columns ``label``, ``confidence`` and ``verdict`` (yes/no,
        1/0 or True/False; "unsure" and empty verdicts are left out), and optionally
        ``weight`` (inverse inclusion probabilities). The species' reviews are drawn as
        points at 0 ("no") and 1 ("yes"), jittered vertically, and with them the estimated
        precision of the reviewed detections at or above each score (weighted), the
        quantity a precision threshold is read from.
    threshold_row : mapping, optional
        The species' row of :meth:`ScoreCalibrator.thresholds` (``threshold``, ``low``,
        ``high``): the threshold is drawn as a vertical line, its interval as a band.
    target : float, optional
        The target probability or precision, drawn as a horizontal line.
    figsize : (float, float), optional
        Figure size in inches; by default ``(9, 5)``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, its legend on the right, titled with the species, its number of
        reviews and, when it uses the pooled model, why.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the calibrator is not fitted.
    ValueError
        If ``reviews`` lacks a column or holds an invalid score or verdict.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_birdaudio.calibration import ScoreCalibrator
    >>> reviews = pd.DataFrame({"label": "wren", "confidence": np.linspace(0.1, 0.95, 40),
    ...     "verdict": ["no", "yes"] * 10 + ["yes"] * 20})
    >>> calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    >>> row = calibrator.thresholds(probability=0.8, n_bootstrap=20, random_state=0).iloc[0]
    >>> fig = plot_calibration(calibrator, "wren", reviews, threshold_row=row, target=0.8)
    >>> fig.axes[0].get_title()
    'wren: 40 reviews'
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    check_is_fitted(calibrator)
    species = str(species)
    fig, ax = plt.subplots(figsize=figsize or (9, 5), layout="constrained")
    grid = np.linspace(0.0, 1.0, 401)
    curve = calibrator.calibrated_probability(pd.DataFrame({"label": species, "confidence": grid}))
    ax.plot(grid, grid, ls=":", color="grey", lw=1, label="score = probability")
    ax.plot(grid, curve, color="C0", lw=2, label="calibrated P(correct | score)")

    if reviews is not None:
        rows = decided_reviews(reviews)
        labels, scores = _check_table(rows, "reviews")
        mine = labels == species
        correct = _verdicts(rows["verdict"].to_numpy()[mine], name="reviews['verdict']")
        scores = scores[mine]
        jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(scores))
        for value, color, name in ((1, "C2", "yes"), (0, "C3", "no")):
            chosen = correct == value
            ax.scatter(
                scores[chosen], value + jitter[chosen], s=14, alpha=0.6, color=color,
                label=f'reviewed "{name}" ({chosen.sum()})',
            )  # fmt: skip
        if len(scores):
            weights = (
                pd.to_numeric(rows["weight"], errors="coerce").to_numpy(dtype=float)[mine]
                if "weight" in rows.columns
                else np.ones(len(scores))
            )
            at = calibrator.calibrated_probability(
                pd.DataFrame({"label": species, "confidence": scores})
            )
            above, precision, valid = _precision_above(scores, weights, at)
            ax.plot(
                above[valid], precision[valid], drawstyle="steps-post", ls="--", color="C1",
                label="estimated precision at or above the score",
            )  # fmt: skip

    if threshold_row is not None:
        threshold = float(threshold_row["threshold"])
        low, high = float(threshold_row["low"]), float(threshold_row["high"])
        name = "never (1.0)" if threshold >= 1.0 else f"{threshold:.3f}"
        ax.axvline(threshold, color="black", lw=1.5, label=f"threshold {name}")
        if np.isfinite(low) and np.isfinite(high):
            ax.axvspan(low, high, color="black", alpha=0.12, lw=0, label="threshold interval")
    if target is not None:
        ax.axhline(target, color="C4", ls="-.", lw=1, label=f"target {target:g}")

    if species in calibrator.species_:
        index = calibrator.species_.index(species)
        title = f"{species}: {calibrator.n_reviews_[index]} reviews"
        if calibrator.pooled_[index]:
            title += f"; pooled model ({calibrator.pooled_reasons_[species]})"
    else:
        title = f"{species}: not reviewed; pooled model"
    ax.set_title(textwrap.fill(title, 70))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlabel("Score (confidence)")
    ax.set_ylabel("P(correct)")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    return fig
