"""ScoreCalibrator: the per-species calibration estimator and its thresholds.

See :mod:`sklearn_birdaudio.calibration` for the model and the practice it follows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.validation import check_is_fitted

from .._deprecation import deprecate_positional
from .._validation import check_integer, check_real
from .logistic import _fit_species, _logit_score
from .reviews import _check_table, _examples, _verdicts, _weights
from .thresholds import _precision_at, _probability_thresholds, _replicate_precision_thresholds


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
    >>> from scipy.special import logit
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

    @deprecate_positional
    def __init__(self, *, min_reviews: int = 20, C: float = 1.0):
        self.min_reviews = min_reviews
        self.C = C

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # a table with 'label' and 'confidence'
        tags.input_tags.string = True
        tags.classifier_tags.multi_class = False
        return tags

    def _check_params(self) -> None:
        check_integer(self.min_reviews, "min_reviews", min_val=1)
        check_real(self.C, "C", min_val=0, include_boundaries="neither")

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
        strictly_between = {"min_val": 0, "max_val": 1, "include_boundaries": "neither"}
        target = precision if precision is not None else probability
        target = check_real(
            target,
            target_name,
            **strictly_between,
            message=f"{target_name} must be a number strictly between 0 and 1, got {target!r}.",
        )
        level = check_real(
            confidence_level,
            "confidence_level",
            **strictly_between,
            message="confidence_level must be a number strictly between 0 and 1, got "
            f"{confidence_level!r}.",
        )
        n_bootstrap = check_integer(
            n_bootstrap,
            "n_bootstrap",
            min_val=0,
            message=f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}.",
        )
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
