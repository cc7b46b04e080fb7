"""Calibrating detection scores from reviewed detections, and choosing thresholds from them.

A detection's score (its ``confidence``) ranks detections but is not the probability that
the detection is correct: a score of 0.8 may be right 95 % of the time for one species and
40 % for another. The accepted practice (Wood & Kahl 2024, "Guidelines for appropriate use
of BirdNET scores and other detector outputs", *Journal of Ornithology*) is to review a
sample of each species' detections, stratified over the score range, fit a logistic
regression of "correct" on the score's logit per species, and read off the threshold that
reaches a target probability or precision. :class:`ScoreCalibrator` does that;
:meth:`ScoreCalibrator.thresholds` returns per-species thresholds with bootstrap intervals,
in the table ``birdaudio predict --thresholds`` reads.

The model is, for species :math:`k` and score :math:`s` clipped to
:math:`[10^{-6}, 1 - 10^{-6}]`,

.. math:: P(\\text{correct} \\mid s) = \\sigma(a_k + b_k \\operatorname{logit}(s)).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.validation import check_is_fitted

__all__ = ["ScoreCalibrator", "decided_reviews"]

EPSILON = 1e-6  # scores are clipped to [EPSILON, 1 - EPSILON] before their logit
NEVER = 1.0  # the threshold of a species whose target is never reached
IDENTITY = (0.0, 1.0)  # intercept and slope of "the score is the probability"
VERDICTS = {"yes": 1, "no": 0, "true": 1, "false": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0}
MAX_SHOWN = 5
MAX_NEWTON_STEPS = 100
MAX_HALVINGS = 40
MAX_BOOTSTRAP_CELLS = 4_000_000  # replicates × detections scored at once (memory bound)


# -- inputs -----------------------------------------------------------------------------


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


def _check_unit_interval(name: str, value) -> float:
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not 0 < value < 1  # also False for NaN
    ):
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}.")
    return float(value)


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


# -- the logistic regressions -----------------------------------------------------------


def _fit_logistic(x, y, weight, group, prior, penalty):
    """Penalised logistic regressions ``y ~ a + b x``, one per group, fitted together.

    Minimises, per group, the weighted negative log-likelihood plus
    ``penalty / 2 * |(a, b) - prior|²`` by Newton's method with step halving, vectorised
    over groups (``group`` indexes the rows of ``prior``, shape ``(n_groups, 2)``).
    """
    n_groups = len(prior)
    theta = prior.copy()

    def objective(theta):
        eta = theta[group, 0] + theta[group, 1] * x
        loss = weight * (np.logaddexp(0.0, eta) - y * eta)
        return np.bincount(group, loss, n_groups) + 0.5 * penalty * ((theta - prior) ** 2).sum(1)

    current = objective(theta)
    for _ in range(MAX_NEWTON_STEPS):
        p = expit(theta[group, 0] + theta[group, 1] * x)
        residual, curvature = weight * (p - y), weight * p * (1.0 - p)
        grad_a = np.bincount(group, residual, n_groups) + penalty * (theta[:, 0] - prior[:, 0])
        grad_b = np.bincount(group, residual * x, n_groups) + penalty * (theta[:, 1] - prior[:, 1])
        h_aa = np.bincount(group, curvature, n_groups) + penalty
        h_ab = np.bincount(group, curvature * x, n_groups)
        h_bb = np.bincount(group, curvature * x * x, n_groups) + penalty
        determinant = h_aa * h_bb - h_ab**2  # > 0: the penalty makes the problem strictly convex
        step = (
            np.column_stack([(h_bb * grad_a - h_ab * grad_b), (h_aa * grad_b - h_ab * grad_a)])
            / determinant[:, np.newaxis]
        )
        scale = np.ones(n_groups)
        for _ in range(MAX_HALVINGS):
            candidate = theta - scale[:, np.newaxis] * step
            value = objective(candidate)
            worse = value > current + 1e-12 * np.abs(current)
            if not worse.any():
                break
            scale[worse] /= 2
        else:
            candidate, value = np.where(worse[:, np.newaxis], theta, candidate), current
        theta, current = candidate, np.minimum(value, current)
        if np.abs(scale[:, np.newaxis] * step).max() < 1e-9:
            break
    return theta


def _fit_species(x, y, weight, species, n_species, replicate, n_replicates, min_reviews, C):
    """Pooled and per-species coefficients of each replicate.

    Returns ``(coefficients (R, K, 2), pooled (R, K) bool, pooled coefficients (R, 2))``.
    """
    penalty = 1.0 / C
    identity = np.tile(IDENTITY, (n_replicates, 1))
    pooled_theta = _fit_logistic(x, y, weight, replicate, identity, penalty)
    group = replicate * n_species + species
    n_groups = n_replicates * n_species
    n_reviews = np.bincount(group, minlength=n_groups)
    n_correct = np.bincount(group, y, n_groups)
    pooled = (n_reviews < min_reviews) | (n_correct == 0) | (n_correct == n_reviews)
    prior = np.repeat(pooled_theta, n_species, axis=0)
    theta = _fit_logistic(x, y, weight, group, prior, penalty)
    theta[pooled] = prior[pooled]
    return (
        theta.reshape(n_replicates, n_species, 2),
        pooled.reshape(n_replicates, n_species),
        pooled_theta,
    )


# -- thresholds -------------------------------------------------------------------------


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


class ScoreCalibrator(ClassifierMixin, BaseEstimator):
    """Per-species logistic calibration of detection scores from reviewed detections.

    Fits, per species, :math:`P(\\text{correct} \\mid s) = \\sigma(a + b\\,\\text{logit}(s))`
    to yes/no verdicts on detections with score :math:`s` (Wood & Kahl 2024), and a
    *pooled* model on the reviews of every species. A species with fewer than
    ``min_reviews`` reviews, or whose verdicts are all "yes" or all "no" (its curve cannot
    be estimated), uses the pooled model; so does a species never reviewed.

    Parameters
    ----------
    min_reviews : int, default=20
        Fewest reviews (yes/no verdicts) of a species for its own model.
    C : float, default=1.0
        Inverse strength of each fit's prior, on the scale of scikit-learn's
        ``LogisticRegression(C=...)``: the penalty ``|(a, b) - prior|² / (2 C)`` is added
        to the (weighted) negative log-likelihood. A species' prior is centred on the
        **pooled** model, and the pooled model's on the identity calibration
        (:math:`a = 0, b = 1`: "the score is the probability"), not on scikit-learn's
        slope 0, which pulls a curve towards a flat line: no sensible belief about a
        detector. The prior is weak: a species with a few hundred reviews ends within a
        fraction of a standard error of its own unpenalised fit; one with a few dozen is
        drawn towards the pooled curve, which steadies its threshold; and one whose
        verdicts the score separates perfectly (all "no" below some score, all "yes"
        above: common with few reviews, and in bootstrap resamples) gets a finite slope
        where maximum likelihood has none. Smaller C shrinks species more strongly
        towards the pooled curve.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        ``[0, 1]``: wrong, correct.
    species_ : list of str
        The reviewed species, sorted.
    intercept_ : ndarray of shape (n_species,)
        :math:`a` of each species (the pooled one where ``pooled_``).
    coef_ : ndarray of shape (n_species,)
        :math:`b`, the slope on the score's logit, of each species.
    n_reviews_ : ndarray of shape (n_species,)
        Reviews (rows of ``X``) of each species.
    pooled_ : ndarray of bool, shape (n_species,)
        Whether each species uses the pooled model.
    pooled_reasons_ : dict of str to str
        Why, for each pooled species: ``"fewer than 20 reviews"``, ``"only yes
        verdicts"`` or ``"only no verdicts"``.
    pooled_intercept_, pooled_coef_ : float
        The pooled model, used for pooled and unseen species.

    See Also
    --------
    sklearn_birdaudio.plotting.plot_calibration : Draw a species' curve and threshold.
    sklearn_birdaudio.review.sample_for_review : Draw the detections to review.

    Notes
    -----
    The reviews may be sampled on the score in any way (stratified, or near a threshold):
    the model conditions on the score, so the fit needs no weights. Estimating precision
    does: it averages over the detections, which a stratified sample does not represent
    unweighted (see :meth:`thresholds`). Intervals are bootstrap percentile intervals:
    approximate, and with few reviews per species rather too narrow than too wide.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.uniform(0.1, 1.0, 400)
    >>> correct = rng.random(400) < expit(-1 + 2 * logit(scores))  # the true curve
    >>> reviews = pd.DataFrame({"label": "wren", "confidence": scores})
    >>> calibrator = ScoreCalibrator().fit(reviews, correct)
    >>> calibrator.intercept_.round(1), calibrator.coef_.round(1)
    (array([-0.9]), array([1.8]))
    >>> table = calibrator.thresholds(probability=0.9, n_bootstrap=50, random_state=0)
    >>> table[["species", "threshold", "low", "high", "pooled"]].round(2)
      species  threshold   low  high  pooled
    0    wren       0.85  0.82  0.88   False
    """

    def __init__(self, min_reviews: int = 20, C: float = 1.0):
        self.min_reviews = min_reviews
        self.C = C

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # a table with 'label' and 'confidence'
        tags.input_tags.string = True
        tags.classifier_tags.multi_class = False
        return tags

    def _check_params(self) -> None:
        if (
            isinstance(self.min_reviews, bool)
            or not isinstance(self.min_reviews, numbers.Integral)
            or self.min_reviews < 1
        ):
            raise ValueError(f"min_reviews must be a positive integer, got {self.min_reviews!r}.")
        if (
            isinstance(self.C, bool)
            or not isinstance(self.C, numbers.Real)
            or not 0 < self.C < np.inf
        ):
            raise ValueError(f"C must be a positive finite number, got {self.C!r}.")

    def fit(self, X: pd.DataFrame, y, sample_weight=None) -> ScoreCalibrator:
        """Fit the pooled model and one model per species.

        Parameters
        ----------
        X : DataFrame
            Reviewed detections with columns ``label`` and ``confidence`` (others are
            ignored): a review table, or a detection table.
        y : array-like of shape (n_rows,)
            Verdicts: 1/0, True/False or "yes"/"no". Undecided reviews must be dropped
            first (:func:`decided_reviews`).
        sample_weight : array-like of shape (n_rows,), optional
            Weights of the reviews in the likelihood, rescaled to a mean of 1 within each
            species (so they change the reviews' relative influence, not how much evidence
            there is against the prior). Do **not** pass a stratified review's inclusion
            weights here: the reviews were sampled on the score, which the model conditions
            on, so the unweighted fit is unbiased and more precise. Pass them to
            :meth:`thresholds`, where they count.

        Returns
        -------
        self : ScoreCalibrator

        Raises
        ------
        ValueError
            If a column is missing, a confidence is NaN or outside [0, 1], a verdict is
            not binary, a weight is negative, or a species' weights sum to zero.
        """
        self._check_params()
        labels, confidence = _check_table(X)
        correct = _verdicts(y, len(labels))
        if len(labels) == 0:
            raise ValueError("X has no rows; expected reviewed detections.")
        weight = _weights(sample_weight, len(labels))
        species, codes = np.unique(labels, return_inverse=True)
        totals = np.bincount(codes, weight, len(species))
        if (totals <= 0).any():
            raise ValueError(
                f"sample_weight sums to zero for species {_examples(species[totals <= 0])}."
            )
        weight = weight / (totals / np.bincount(codes, minlength=len(species)))[codes]
        scores = _logit_score(confidence)
        theta, pooled, pooled_theta = _fit_species(
            scores, correct, weight, codes, len(species), np.zeros_like(codes), 1,
            self.min_reviews, self.C,
        )  # fmt: skip
        self.classes_ = np.array([0, 1])
        self.species_ = [str(name) for name in species]
        self.intercept_, self.coef_ = theta[0, :, 0], theta[0, :, 1]
        self.pooled_intercept_, self.pooled_coef_ = map(float, pooled_theta[0])
        self.n_reviews_ = np.bincount(codes, minlength=len(species))
        self.pooled_ = pooled[0]
        n_correct = np.bincount(codes, correct, len(species))
        self.pooled_reasons_ = {}
        for index in np.flatnonzero(self.pooled_):
            if self.n_reviews_[index] < self.min_reviews:
                reason = f"fewer than {self.min_reviews} reviews"
            else:
                reason = "only yes verdicts" if n_correct[index] > 0 else "only no verdicts"
            self.pooled_reasons_[self.species_[index]] = reason
        # What thresholds() resamples to refit.
        self._reviews = Bunch(
            logit=scores, correct=correct, weight=weight, species=codes, confidence=confidence
        )
        return self

    def _coefficients(self, labels: np.ndarray) -> np.ndarray:
        """``(n_rows, 2)`` intercept and slope of each row's species (pooled if unseen)."""
        rows = pd.Index(self.species_).get_indexer(labels)  # -1: unseen, the pooled row
        theta = np.column_stack([self.intercept_, self.coef_])
        pooled = np.array([[self.pooled_intercept_, self.pooled_coef_]])
        return np.concatenate([theta, pooled])[rows]

    def calibrated_probability(self, X: pd.DataFrame) -> np.ndarray:
        """The calibrated probability that each detection is correct.

        Parameters
        ----------
        X : DataFrame
            Detections with columns ``label`` and ``confidence``; a species not reviewed
            gets the pooled model.

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        check_is_fitted(self)
        labels, confidence = _check_table(X)
        theta = self._coefficients(labels)
        return expit(theta[:, 0] + theta[:, 1] * _logit_score(confidence))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """``[P(wrong), P(correct)]`` of each detection, ``(n_rows, 2)``."""
        probability = self.calibrated_probability(X)
        return np.column_stack([1.0 - probability, probability])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where a detection is more likely correct than not, else 0."""
        return (self.calibrated_probability(X) >= 0.5).astype(np.int64)

    def thresholds(
        self,
        *,
        precision: float | None = None,
        probability: float | None = None,
        reviews: pd.DataFrame | None = None,
        sample_weight=None,
        n_bootstrap: int = 200,
        confidence_level: float = 0.9,
        random_state=None,
    ) -> pd.DataFrame:
        """Per-species score thresholds for a target precision or probability.

        Parameters
        ----------
        precision : float, optional
            Target precision ``q``: each species' threshold is the lowest score ``t`` such
            that the detections scoring at least ``t`` are estimated to be correct in a
            share ``q`` or more, ``Σ w P(correct | s) / Σ w`` over them (``w``: the
            weights below). Candidate thresholds are the detections' scores. Where none
            reaches ``q`` (a species reviewed only at low scores), the threshold is the
            score where its curve reaches ``q``, as for ``probability``: every detection
            above it is then correct with probability ``q`` or more, so their precision
            is at least ``q`` whatever their scores.
        probability : float, optional
            Target probability ``p``: the score where the species' calibrated
            ``P(correct | score)`` reaches ``p`` (solved analytically), for a decision on
            each detection by itself; it may lie below the lowest score reviewed (the
            curve extrapolated). Exactly one of ``precision`` and ``probability``.
        reviews : DataFrame, optional
            The detections over which precision is estimated (columns ``label`` and
            ``confidence``), held fixed in the bootstrap: e.g. every detection of the
            survey (weights 1), whose unreviewed species then get the pooled model's
            thresholds too. By default the reviews ``fit`` was given, resampled with the
            model in the bootstrap, weighted by ``sample_weight``.
        sample_weight : array-like, optional
            Weight of each row of ``reviews`` (of ``fit``'s rows when ``reviews`` is
            None): for a stratified review, each row's inverse inclusion probability (the
            review table's ``weight`` column), so that weighted sums estimate sums over
            all detections. By default ``reviews['weight']`` when ``reviews`` has that
            column, else 1. Unweighted stratified reviews over-represent the high scores
            and overstate precision.
        n_bootstrap : int, default=200
            Bootstrap resamples for the interval: the reviews of each species are
            resampled with replacement, the models refitted and the thresholds recomputed.
            0 leaves ``low`` and ``high`` NaN.
        confidence_level : float, default=0.9
            Of the percentile interval: its bounds are the ``(1 - level) / 2`` and
            ``(1 + level) / 2`` quantiles of the bootstrap thresholds.
        random_state : int, RandomState or None, default=None
            Seeds the bootstrap.

        Returns
        -------
        DataFrame
            One row per species (``species_``, then species of ``reviews`` never
            reviewed), columns ``species, threshold, low, high, n_reviews, pooled,
            estimated_precision``. A threshold of **1.0 means "never"**: no score reaches
            the target (the species' curve stays below it). A species whose curve is flat
            or falling yet above the target gets the lowest score it was reviewed
            at (0 if never reviewed). ``estimated_precision`` is the estimated precision
            of the detections at or above the threshold (NaN where there are none).
            ``attrs`` holds the target and the level, e.g. ``{"precision": 0.9,
            "confidence_level": 0.9}``.

        Raises
        ------
        ValueError
            If both or neither target is given, a target is outside (0, 1), or
            ``reviews`` or ``sample_weight`` is malformed.
        """
        check_is_fitted(self)
        if (precision is None) == (probability is None):
            raise ValueError(
                "give exactly one of precision (a target precision of the detections kept) "
                "and probability (a target probability of each detection being correct)."
            )
        target_name = "precision" if precision is not None else "probability"
        target = _check_unit_interval(
            target_name, precision if precision is not None else probability
        )
        level = _check_unit_interval("confidence_level", confidence_level)
        if (
            isinstance(n_bootstrap, bool)
            or not isinstance(n_bootstrap, numbers.Integral)
            or n_bootstrap < 0
        ):
            raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}.")
        species, labels, population, population_weight = self._population(reviews, sample_weight)
        n_seen, n_replicates = len(self.species_), n_bootstrap + 1
        resampled, theta = self._refit(n_bootstrap, random_state)
        theta[0] = np.column_stack(  # the fitted model itself (the refit is the same)
            [[*self.intercept_, self.pooled_intercept_], [*self.coef_, self.pooled_coef_]]
        )
        # Species never reviewed get the pooled model of each replicate.
        pooled_theta = np.repeat(theta[:, -1:], len(species) - n_seen, axis=1)
        theta = np.concatenate([theta[:, :-1], pooled_theta], axis=1)
        confidence = self._reviews.confidence
        if target_name == "probability":
            lowest = [confidence[rows[0]].min() for rows in resampled]
            lowest += [0.0] * (len(species) - n_seen)
            thresholds = _probability_thresholds(theta, target, np.array(lowest))
        else:
            thresholds = np.empty((n_replicates, len(species)))
        estimated = np.full(len(species), np.nan)
        for k, name in enumerate(species):
            if reviews is None:  # the population is resampled with the reviews
                values, weights = confidence[resampled[k]], population_weight[resampled[k]]
            else:
                mask = labels == name
                if not mask.any():
                    warnings.warn(
                        f"the detections given (reviews) hold none of {name!r}: its "
                        "threshold is 1.0 (never), as there is nothing to estimate its "
                        "precision over.",
                        UserWarning,
                        stacklevel=2,
                    )
                values = np.broadcast_to(population[mask], (n_replicates, mask.sum()))
                weights = np.broadcast_to(population_weight[mask], values.shape)
            if target_name == "precision":
                thresholds[:, k] = _replicate_precision_thresholds(
                    values, weights, theta[:, k], target
                )
            probabilities = expit(theta[0, k, 0] + theta[0, k, 1] * _logit_score(values[0]))
            estimated[k] = _precision_at(thresholds[0, k], values[0], weights[0], probabilities)

        alpha = (1 - level) / 2
        if n_bootstrap:
            low, high = np.quantile(thresholds[1:], [alpha, 1 - alpha], axis=0)
        else:
            low = high = np.full(len(species), np.nan)
        unseen = len(species) - n_seen
        table = pd.DataFrame(
            {
                "species": species,
                "threshold": thresholds[0],
                "low": low,
                "high": high,
                "n_reviews": np.concatenate([self.n_reviews_, np.zeros(unseen, int)]),
                "pooled": np.concatenate([self.pooled_, np.ones(unseen, bool)]),
                "estimated_precision": estimated,
            }
        )
        table.attrs = {target_name: target, "confidence_level": level}
        return table

    def _population(self, reviews, sample_weight):
        """The species of the table, and the labels, scores and weights of the detections
        over which precision is estimated."""
        fitted = self._reviews
        if reviews is None:
            labels = np.asarray(self.species_, dtype=object)[fitted.species]
            weights = _weights(sample_weight, len(labels))
            return list(self.species_), labels, fitted.confidence, weights
        labels, population = _check_table(reviews, "reviews")
        name = "sample_weight"
        if sample_weight is None and "weight" in reviews.columns:
            sample_weight, name = reviews["weight"], "reviews['weight']"
        weights = _weights(sample_weight, len(labels), name)
        species = list(self.species_) + sorted(set(labels) - set(self.species_))
        return species, labels, population, weights

    def _refit(self, n_bootstrap: int, random_state):
        """Each species' rows in replicate 0 (the fit itself) and ``n_bootstrap`` resamples
        (``(R, n_k)`` each), and the coefficients refitted on each, ``(R, K + 1, 2)``: the
        last column is the pooled model."""
        fitted = self._reviews
        rng = check_random_state(random_state)
        resampled = []
        for k in range(len(self.species_)):
            rows = np.flatnonzero(fitted.species == k)
            draws = rng.randint(0, len(rows), size=(n_bootstrap, len(rows)))
            resampled.append(np.vstack([rows, rows[draws]]))
        flat = np.hstack([rows.ravel() for rows in resampled])
        replicate = np.hstack(
            [np.repeat(np.arange(n_bootstrap + 1), rows.shape[1]) for rows in resampled]
        )
        theta, _, pooled_theta = _fit_species(
            fitted.logit[flat], fitted.correct[flat], fitted.weight[flat],
            fitted.species[flat], len(self.species_), replicate, n_bootstrap + 1,
            self.min_reviews, self.C,
        )  # fmt: skip
        return resampled, np.concatenate([theta, pooled_theta[:, np.newaxis]], axis=1)


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


def _logit_score(confidence) -> np.ndarray:
    return logit(np.clip(confidence, EPSILON, 1 - EPSILON))
