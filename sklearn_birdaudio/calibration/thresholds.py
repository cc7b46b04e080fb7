"""Score thresholds from calibrated curves: for a target probability or precision.

Thresholds are computed for every bootstrap replicate at once (arrays whose first axis is
the replicate); a threshold of ``NEVER`` (1.0) means that no score reaches the target.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from .logistic import EPSILON, _logit_score

NEVER = 1.0  # the threshold of a species whose target is never reached
MAX_BOOTSTRAP_CELLS = 4_000_000  # replicates × detections scored at once (memory bound)


def _probability_thresholds(theta, target: float, lowest) -> np.ndarray:
    """The score where ``σ(a + b logit(s)) = target``, NEVER or ``lowest`` where none is."""
    intercept, slope = theta[..., 0], theta[..., 1]
    goal = logit(target)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        crossing = expit((goal - intercept) / slope)
    never = crossing > 1 - EPSILON
    # A flat or falling curve is above the target everywhere or nowhere near the top.
    always = intercept + slope * logit(1 - EPSILON) >= goal
    flat = slope <= 0
    threshold = np.where(never, NEVER, crossing)
    return np.where(flat, np.where(always, lowest, NEVER), threshold)


def _precision_above(scores, weights, probabilities):
    """Per row: scores sorted from the highest, and the precision of the detections at or
    above each, ``Σ w p / Σ w``; ``valid`` marks the last of tied scores (where a threshold
    may sit) with a positive weight above it."""
    order = np.argsort(-scores, axis=-1, kind="stable")
    scores = np.take_along_axis(scores, order, -1)
    weights = np.take_along_axis(weights, order, -1)
    probabilities = np.take_along_axis(probabilities, order, -1)
    total = np.cumsum(weights, axis=-1)
    correct = np.cumsum(weights * probabilities, axis=-1)
    precision = np.divide(correct, total, out=np.full_like(total, np.nan), where=total > 0)
    valid = np.ones(scores.shape, dtype=bool)
    valid[..., :-1] = scores[..., 1:] < scores[..., :-1]
    return scores, precision, valid & (total > 0)


def _precision_thresholds(scores, weights, probabilities, target: float):
    """The lowest threshold whose detections have an estimated precision ≥ ``target``.

    Arrays are ``(n_replicates, n_detections)``; returns the thresholds and their estimated
    precision, ``(NEVER, NaN)`` where no threshold reaches the target.
    """
    n_replicates = scores.shape[0]
    if scores.shape[1] == 0:
        return np.full(n_replicates, NEVER), np.full(n_replicates, np.nan)
    scores, precision, valid = _precision_above(scores, weights, probabilities)
    reached = valid & (precision >= target - 1e-12)
    last = scores.shape[1] - 1 - np.argmax(reached[:, ::-1], axis=1)
    rows = np.arange(n_replicates)
    found = reached.any(axis=1)
    return (
        np.where(found, scores[rows, last], NEVER),
        np.where(found, precision[rows, last], np.nan),
    )


def _precision_at(threshold: float, scores, weights, probabilities) -> float:
    above = scores >= threshold
    total = weights[above].sum()
    return float((weights[above] * probabilities[above]).sum() / total) if total > 0 else np.nan


def _replicate_precision_thresholds(values, weights, theta, target) -> np.ndarray:
    """Precision thresholds of each replicate's curve, in chunks that fit in memory."""
    n_replicates, n_detections = values.shape
    chunk = max(1, MAX_BOOTSTRAP_CELLS // max(n_detections, 1))
    thresholds = np.empty(n_replicates)
    for start in range(0, n_replicates, chunk):
        part = slice(start, start + chunk)
        probabilities = expit(theta[part, 0:1] + theta[part, 1:2] * _logit_score(values[part]))
        found = _precision_thresholds(values[part], weights[part], probabilities, target)[0]
        # Where no set of the scores at hand reaches the target (none scored high enough),
        # the curve decides: for a rising curve every detection scoring at least the score
        # where P(correct | s) = target is correct with probability >= target, so those
        # detections reach the target precision whatever their scores turn out to be.
        lowest = values[part].min(axis=1) if n_detections else np.zeros(len(found))
        by_curve = _probability_thresholds(theta[part], target, lowest)
        thresholds[part] = np.where(found == NEVER, by_curve, found)
    return thresholds
