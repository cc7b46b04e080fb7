"""Tests of the voting ensemble for multi-label and multi-class targets."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import VotingClassifier as SklearnVoting
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.multiclass import OneVsRestClassifier
from test_classifier import songs, tiny_pipeline

from sklearn_birdaudio.ensemble import VotingClassifier


@pytest.fixture(scope="module")
def multilabel():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5]).astype(int)
    return X, Y


def members():
    return [
        ("strong", OneVsRestClassifier(LogisticRegression(C=10.0))),
        ("weak", OneVsRestClassifier(LogisticRegression(C=0.01))),
    ]


def test_soft_vote_is_the_weighted_mean_of_probabilities(multilabel):
    X, Y = multilabel
    vote = VotingClassifier(members(), weights=[3, 1]).fit(X, Y)
    strong, weak = (member.fit(X, Y).predict_proba(X) for _, member in members())
    expected = 0.75 * strong + 0.25 * weak
    np.testing.assert_allclose(vote.predict_proba(X), expected)
    np.testing.assert_array_equal(vote.predict(X), (expected >= 0.5).astype(int))
    assert vote.multilabel_ and list(vote.classes_) == [0, 1, 2]
    assert set(vote.named_estimators_) == {"strong", "weak"}


def test_hard_vote_is_a_weighted_majority_per_class(multilabel):
    X, Y = multilabel
    dominated = VotingClassifier(members(), voting="hard", weights=[2, 1]).fit(X, Y)
    strong = members()[0][1].fit(X, Y).predict(X)
    np.testing.assert_array_equal(dominated.predict(X), strong)
    three = VotingClassifier(
        [*members(), ("third", OneVsRestClassifier(LogisticRegression(C=1.0)))], voting="hard"
    ).fit(X, Y)
    votes = np.stack([estimator.predict(X) for estimator in three.estimators_])
    np.testing.assert_array_equal(three.predict(X), (votes.sum(axis=0) >= 2).astype(int))
    with pytest.raises(AttributeError, match="voting='soft'"):
        three.predict_proba(X)


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_multiclass_matches_scikit_learn(multilabel, voting):
    X, _ = multilabel
    y = np.array(["wren", "robin", "tit"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    ours = VotingClassifier(members(), voting=voting, weights=[1, 2]).fit(X, y)
    theirs = SklearnVoting(members(), voting=voting, weights=[1, 2]).fit(X, y)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    if voting == "soft":
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X))


def test_is_a_proper_estimator(multilabel):
    X, Y = multilabel
    vote = VotingClassifier(members())
    params = vote.get_params()
    assert params["strong__estimator__C"] == 10.0 and params["weak"] is vote.estimators[1][1]
    copy = clone(vote).set_params(weak__estimator__C=1.0, weights=[1, 1])
    assert copy.estimators[1][1].estimator.C == 1.0 and vote.estimators[1][1].estimator.C == 0.01
    search = GridSearchCV(
        vote, {"weights": [[1, 0], [0, 1]], "strong__estimator__C": [0.1, 10.0]}, cv=KFold(3)
    ).fit(X, Y)
    assert search.best_params_["weights"] == [1, 0]  # the strong member alone wins
    fitted = vote.fit(X, Y)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"estimators": []}, "non-empty"),
        ({"voting": "median"}, "voting"),
        ({"weights": [1, 2, 3]}, "weights"),
        ({"weights": [0, 0]}, "weights"),
        ({"estimators": [("a", LogisticRegression()), ("a", LogisticRegression())]}, "unique"),
    ],
)
def test_bad_parameters_are_named(multilabel, params, message):
    X, Y = multilabel
    with pytest.raises(ValueError, match=message):
        VotingClassifier(**{"estimators": members(), **params}).fit(X, Y[:, 0])


def test_ensemble_of_cnn_pipelines_on_multilabel_songs():
    X, Y, names = songs(60, 3, as_frame=True)
    vote = VotingClassifier(
        [("a", tiny_pipeline(max_epochs=2)), ("b", tiny_pipeline(max_epochs=2, random_state=1))]
    ).fit(X, Y)
    first, second = (member.predict_proba(X[:8]) for member in vote.estimators_)
    np.testing.assert_allclose(vote.predict_proba(X[:8]), (first + second) / 2, rtol=1e-6)
    assert list(vote.classes_) == names and vote.predict(X[:8]).shape == (8, 4)


class NamedColumns(ClassifierMixin, BaseEstimator):
    """A multi-label classifier that names its classes after a DataFrame's columns, as
    AttentionCNNClassifier and BirdNETClassifier do (scikit-learn's number them)."""

    def __init__(self, C=1.0, names=None):
        self.C = C
        self.names = names

    def fit(self, X, y):
        self.model_ = OneVsRestClassifier(LogisticRegression(C=self.C)).fit(X, np.asarray(y))
        self.classes_ = np.asarray(self.names if self.names is not None else y.columns)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def test_members_that_number_or_name_the_columns_vote_together(multilabel):
    import pandas as pd

    X, Y = multilabel
    frame = pd.DataFrame(Y, columns=["owl", "wren", "tody"])
    voting = VotingClassifier(
        [("positional", OneVsRestClassifier(LogisticRegression())),
         ("named", NamedColumns(C=0.1))]
    ).fit(X, frame)  # fmt: skip
    assert voting.classes_.tolist() == ["owl", "wren", "tody"]
    expected = np.mean([m.predict_proba(X) for m in voting.estimators_], axis=0)
    np.testing.assert_allclose(voting.predict_proba(X), expected)
    shuffled = NamedColumns(names=["wren", "owl", "tody"])
    with pytest.raises(ValueError, match="every estimator must see the same classes"):
        VotingClassifier([("a", NamedColumns()), ("b", shuffled)]).fit(X, frame)
