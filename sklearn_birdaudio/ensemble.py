"""Voting ensembles that handle multi-label targets as well as multi-class ones.

:class:`sklearn.ensemble.VotingClassifier` raises ``NotImplementedError`` on multi-label
targets, which is what bird recordings have (a primary species and background ones).
:class:`VotingClassifier` here takes the same parameters and handles both.
"""

from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import Bunch, get_tags
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._deprecation import deprecate_positional
from ._validation import check_real
from .targets import check_no_missing_labels, target_kind

__all__ = ["VotingClassifier"]

VOTING = ("soft", "hard")


def _fit_one(estimator, X, y):
    return clone(estimator).fit(X, y)


class VotingClassifier(ClassifierMixin, BaseEstimator):
    """Soft or hard voting over classifiers, for multi-label and multi-class targets.

    Parameters
    ----------
    estimators : list of (str, estimator)
        The classifiers (pipelines of mel + CNN, or any classifier with
        ``predict_proba`` returning ``(n_samples, n_classes)``). They are cloned and
        fitted on the same data; their ``classes_`` must agree.
    voting : {"soft", "hard"}, default="soft"
        ``"soft"`` averages the predicted probabilities (weighted); ``"hard"`` takes a
        weighted majority of the predictions (per class for multi-label targets).
    weights : list of float, optional
        Weight of each estimator (uniform by default).
    threshold : float, default=0.5
        Multi-label only: probability (soft) or share of weighted votes (hard) from which
        a class is predicted present, in (0, 1].
    n_jobs : int, optional
        Estimators fitted in parallel (joblib).

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted clones.
    named_estimators_ : Bunch
        The same, by name.
    classes_ : ndarray
        The classes, in the column order of ``predict_proba``.
    multilabel_ : bool
        Whether the targets were an indicator matrix.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multioutput import MultiOutputClassifier
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    >>> vote = VotingClassifier([("a", LogisticRegression()), ("b", LogisticRegression(C=0.1))])
    >>> vote.fit(X, Y[:, 0]).predict(X[:2]).shape
    (2,)
    """

    @deprecate_positional
    def __init__(self, estimators, *, voting="soft", weights=None, threshold=0.5, n_jobs=None):
        self.estimators = estimators
        self.voting = voting
        self.weights = weights
        self.threshold = threshold
        self.n_jobs = n_jobs

    # -- nested parameters, as scikit-learn's ensembles expose them ---------------------
    def get_params(self, deep=True):
        params = super().get_params(deep=False)
        if deep and self._names():
            for name, estimator in self.estimators:
                params[name] = estimator
                for key, value in estimator.get_params(deep=True).items():
                    params[f"{name}__{key}"] = value
        return params

    def _names(self) -> list:
        """Names of the estimators, or none while ``estimators`` is malformed (fit says so)."""
        try:
            return [name for name, _ in self.estimators]
        except (TypeError, ValueError):
            return []

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        members = [estimator for _, estimator in self.estimators] if self._names() else []
        member_tags = [get_tags(estimator) for estimator in members]
        tags.input_tags.sparse = bool(member_tags) and all(t.input_tags.sparse for t in member_tags)
        tags.input_tags.allow_nan = bool(member_tags) and all(
            t.input_tags.allow_nan for t in member_tags
        )
        return tags

    def set_params(self, **params):
        if "estimators" in params:
            self.estimators = params.pop("estimators")
        names = self._names()
        replaced = {name: params.pop(name) for name in list(params) if name in names}
        if replaced:
            self.estimators = [(name, replaced.get(name, est)) for name, est in self.estimators]
        nested = {}
        for key in [key for key in params if "__" in key and key.split("__")[0] in names]:
            name, sub_key = key.split("__", 1)
            nested.setdefault(name, {})[sub_key] = params.pop(key)
        for name, estimator in self.estimators if names else []:
            if name in nested:
                estimator.set_params(**nested[name])
        return super().set_params(**params)

    # -- fitting ------------------------------------------------------------------------
    def _check_params(self) -> np.ndarray:
        if not self._names():
            raise ValueError("estimators must be a non-empty list of (name, estimator) pairs.")
        names = [name for name, _ in self.estimators]
        if len(set(names)) != len(names):
            raise ValueError(f"estimator names must be unique, got {names}.")
        if self.voting not in VOTING:
            raise ValueError(f"voting must be one of {VOTING}, got {self.voting!r}.")
        check_real(
            self.threshold,
            "threshold",
            min_val=0,
            max_val=1,
            include_boundaries="right",
            message=f"threshold must be a number in (0, 1], got {self.threshold!r}.",
        )
        weights = np.ones(len(names)) if self.weights is None else np.asarray(self.weights, float)
        if weights.shape != (len(names),) or (weights < 0).any() or weights.sum() == 0:
            raise ValueError(
                f"weights must be {len(names)} non-negative numbers, not all zero; got "
                f"{self.weights!r}."
            )
        return weights / weights.sum()

    def fit(self, X, y):
        """Fit a clone of every estimator on ``X`` and ``y``.

        Parameters
        ----------
        X : as the estimators accept (paths, waveforms, spectrograms, ...)
        y : array-like of shape (n_samples, n_classes) or (n_samples,)
            Indicator matrix (multi-label, DataFrame columns name the classes) or labels.

        Returns
        -------
        self : VotingClassifier
        """
        self._check_params()
        # y itself goes to the members (a DataFrame names classes)
        targets = check_no_missing_labels(y)
        if targets.ndim == 2 and targets.shape[1] == 1 and not hasattr(y, "columns"):
            y = targets = column_or_1d(targets, warn=True)  # a column vector is labels
        self.multilabel_ = target_kind(targets) == "multilabel-indicator"
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_one)(estimator, X, y) for _, estimator in self.estimators
        )
        self.named_estimators_ = Bunch(
            **{
                name: fitted
                for (name, _), fitted in zip(self.estimators, self.estimators_, strict=True)
            }
        )
        self.classes_ = self._agreed_classes(targets)
        if hasattr(self.estimators_[0], "feature_names_in_"):
            self.feature_names_in_ = self.estimators_[0].feature_names_in_
        return self

    @property
    def n_features_in_(self) -> int:
        """Number of features of the first estimator's input (as scikit-learn's voting).

        The members check their own input: a pipeline that reads audio takes windows of
        any length, which an ensemble-level feature count would refuse.
        """
        try:
            check_is_fitted(self, "estimators_")
        except NotFittedError as error:
            raise AttributeError(
                f"{type(self).__name__} object has no n_features_in_ attribute."
            ) from error
        return self.estimators_[0].n_features_in_

    # -- model files (sklearn_birdaudio.persistence) -------------------------------------
    def _safe_state(self) -> dict | None:
        """What a model file keeps of this fitted ensemble; ``None`` when unfitted.

        Returns
        -------
        state : dict or None
            ``estimators_`` (the fitted members), ``classes_`` (1-D array),
            ``multilabel_`` (bool) and, when fitted on a DataFrame, ``feature_names_in_``.
        """
        if not hasattr(self, "estimators_"):
            return None
        state = {
            "estimators_": list(self.estimators_),
            "classes_": np.asarray(self.classes_),
            "multilabel_": bool(self.multilabel_),
        }
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = self.feature_names_in_
        return state

    def _restore_safe_state(self, state: dict) -> None:
        """Become the fitted ensemble that :meth:`_safe_state` described.

        Parameters
        ----------
        state : dict
            As :meth:`_safe_state` returns it, every value already checked by the caller
            (one fitted member for each of ``estimators``, in order).
        """
        self.estimators_ = list(state["estimators_"])
        names = [name for name, _ in self.estimators]
        self.named_estimators_ = Bunch(**dict(zip(names, self.estimators_, strict=True)))
        self.classes_ = state["classes_"]
        self.multilabel_ = state["multilabel_"]
        if "feature_names_in_" in state:
            self.feature_names_in_ = state["feature_names_in_"]

    # -- prediction ---------------------------------------------------------------------
    def _agreed_classes(self, targets: np.ndarray) -> np.ndarray:
        """The members' common classes; a multi-label member may number them by position.

        scikit-learn's multi-label classifiers (``OneVsRestClassifier``, ...) call the
        columns of an indicator matrix ``0 .. n - 1`` whatever their names, where
        :class:`~sklearn_birdaudio.AttentionCNNClassifier` takes a DataFrame's column
        names: both agree when the columns are in the same order, which they are.
        """
        members = [np.asarray(fitted.classes_) for fitted in self.estimators_]
        positions = np.arange(targets.shape[1]) if self.multilabel_ else None
        named = [classes for classes in members if not np.array_equal(classes, positions)]
        classes = named[0] if named else members[0]
        for (name, _), fitted in zip(self.estimators, members, strict=True):
            if np.array_equal(fitted, classes) or (
                self.multilabel_ and np.array_equal(fitted, positions)
            ):
                continue
            raise ValueError(
                f"estimator {name!r} has classes {list(fitted)}, another has "
                f"{list(classes)}; every estimator must see the same classes."
            )
        return classes

    def predict_proba(self, X) -> np.ndarray:
        """Weighted average of the estimators' probabilities (soft voting only)."""
        check_is_fitted(self)
        if self.voting != "soft":
            raise AttributeError("predict_proba is only available with voting='soft'.")
        weights = self._check_params()
        return sum(
            weight * np.asarray(estimator.predict_proba(X))
            for weight, estimator in zip(weights, self.estimators_, strict=True)
        )

    def predict(self, X) -> np.ndarray:
        """Predicted classes: a 0/1 matrix (multi-label) or labels (multi-class)."""
        check_is_fitted(self)
        weights = self._check_params()
        if self.voting == "soft":
            probabilities = self.predict_proba(X)
            if self.multilabel_:
                return (probabilities >= self.threshold).astype(np.int64)
            return self.classes_[probabilities.argmax(axis=1)]
        votes = [np.asarray(estimator.predict(X)) for estimator in self.estimators_]
        if self.multilabel_:
            share = sum(weight * vote for weight, vote in zip(weights, votes, strict=True))
            return (share >= self.threshold).astype(np.int64)
        index = {label: column for column, label in enumerate(self.classes_)}
        tally = np.zeros((len(votes[0]), len(self.classes_)))
        for weight, vote in zip(weights, votes, strict=True):
            tally[np.arange(len(vote)), [index[label] for label in vote]] += weight
        return self.classes_[tally.argmax(axis=1)]
