"""A linear classifier for embeddings that keeps the species names of multi-label targets.

scikit-learn's multi-label classifiers number the columns of an indicator matrix
(``OneVsRestClassifier(...).classes_`` is ``[0, 1, ...]`` whatever the DataFrame's column
names), so detection tables would say ``0`` where they should say ``Turdus plumbeus``.
:class:`EmbeddingLogisticRegression` is one-vs-rest logistic regression whose
``classes_`` are the species.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.validation import check_is_fitted

from ._deprecation import deprecate_positional
from .targets import check_no_missing_labels, target_kind

__all__ = ["EmbeddingLogisticRegression"]


class EmbeddingLogisticRegression(ClassifierMixin, BaseEstimator):
    """One-vs-rest logistic regression on embeddings, with named classes.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength of each species' logistic regression.
    class_weight : None or "balanced", default=None
        As for :class:`~sklearn.linear_model.LogisticRegression`.
    max_iter : int, default=5000
        Iterations of each solver.
    threshold : float, default=0.5
        ``predict``'s threshold for multi-label targets.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        A DataFrame target's column names (multi-label), positions for an unnamed
        indicator matrix, or the labels (multi-class).
    multilabel_ : bool
    estimator_ : OneVsRestClassifier
        The fitted one-vs-rest logistic regressions.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = np.random.default_rng(0).normal(size=(40, 4))
    >>> Y = pd.DataFrame({"owl": X[:, 0] > 0, "wren": X[:, 1] > 0}).astype(int)
    >>> EmbeddingLogisticRegression().fit(X, Y).classes_.tolist()
    ['owl', 'wren']
    """

    @deprecate_positional
    def __init__(self, *, C=1.0, class_weight=None, max_iter=5000, threshold=0.5):
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.threshold = threshold

    def fit(self, X, y):
        """Fit one logistic regression per species.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings.
        y : DataFrame or array-like of shape (n_samples, n_classes), or (n_samples,)
            A 0/1 indicator matrix (its DataFrame columns name the classes) or labels.

        Returns
        -------
        self : EmbeddingLogisticRegression
        """
        targets = check_no_missing_labels(y)
        self.multilabel_ = target_kind(targets) == "multilabel-indicator"
        logistic = LogisticRegression(
            C=self.C, class_weight=self.class_weight, max_iter=self.max_iter
        )
        self.estimator_ = OneVsRestClassifier(logistic).fit(X, targets)
        if self.multilabel_ and hasattr(y, "columns"):
            self.classes_ = np.asarray([str(column) for column in y.columns], dtype=object)
        else:
            self.classes_ = np.asarray(self.estimator_.classes_)
        self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class, ``(n_samples, n_classes)``."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """A 0/1 matrix at ``threshold`` (multi-label) or the most probable label."""
        probabilities = self.predict_proba(X)
        if self.multilabel_:
            return (probabilities >= self.threshold).astype(np.int64)
        return self.classes_[probabilities.argmax(axis=1)]
