"""Tests of sklearn_birdaudio.metrics: values against scikit-learn and BirdCLEF's reference
padded cmAP, the handling of absent classes, validation errors, and the scorers inside
cross_validate and GridSearchCV."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, top_k_accuracy_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.preprocessing import label_binarize

from sklearn_birdaudio.metrics import (
    SCORERS,
    f1_at_threshold,
    get_scorer,
    make_proba_scorer,
    mean_average_precision,
    padded_cmap,
    top1_accuracy,
)


def random_problem(seed, n_samples=60, n_classes=4, missing=()):
    """Random indicator targets (every class present except ``missing``) and scores in [0, 1)."""
    rng = np.random.default_rng(seed)
    y_true = (rng.random((n_samples, n_classes)) < 0.3).astype(int)
    y_true[rng.integers(n_samples), :] = 1
    y_true[:, list(missing)] = 0
    return y_true, rng.random((n_samples, n_classes))


def multilabel_data(n_labels=3, n_samples=90, seed=0):
    """Features and a multi-label target that depends on them (so models beat chance)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, 5))
    Y = (X[:, :n_labels] + rng.normal(scale=0.8, size=(n_samples, n_labels)) > 0).astype(int)
    return X, Y


def kaggle_padded_cmap(solution: pd.DataFrame, submission: pd.DataFrame, padding_factor=5):
    """BirdCLEF 2021/2022's reference metric, as published with the competitions."""
    solution = solution.drop(["row_id"], axis=1, errors="ignore")
    submission = submission.drop(["row_id"], axis=1, errors="ignore")
    new_rows = pd.DataFrame([[1] * len(solution.columns)] * padding_factor)
    new_rows.columns = solution.columns
    padded_solution = pd.concat([solution, new_rows]).reset_index(drop=True)
    padded_submission = pd.concat([submission, new_rows]).reset_index(drop=True)
    return average_precision_score(
        padded_solution.values, padded_submission.values, average="macro"
    )


def passed_scores(y_true, y_score):
    """A score function that returns what the scorer passed it."""
    return y_score


# -- mean_average_precision -------------------------------------------------------------------
@pytest.mark.parametrize("average", ["macro", "micro"])
def test_map_equals_sklearn_when_every_class_has_positives(average):
    y_true, y_score = random_problem(0)
    expected = average_precision_score(y_true, y_score, average=average)
    assert mean_average_precision(y_true, y_score, average=average) == pytest.approx(expected)
    frame = mean_average_precision(pd.DataFrame(y_true), pd.DataFrame(y_score), average=average)
    assert frame == pytest.approx(expected)


def test_macro_map_skips_classes_without_positives():
    y_true, y_score = random_problem(1, n_classes=5, missing=(1, 3))
    kept = [0, 2, 4]
    expected = np.mean([average_precision_score(y_true[:, c], y_score[:, c]) for c in kept])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warns when it meets an absent class
        result = mean_average_precision(y_true, y_score)
    assert result == pytest.approx(expected)
    # scikit-learn's own macro mean counts the absent classes as 0.
    with pytest.warns(UserWarning):
        assert average_precision_score(y_true, y_score, average="macro") < result


def test_micro_map_keeps_classes_without_positives():
    y_true, y_score = random_problem(2, missing=(0,))
    expected = average_precision_score(y_true.ravel(), y_score.ravel())
    assert mean_average_precision(y_true, y_score, average="micro") == pytest.approx(expected)


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_map_raises_when_no_class_has_positives(average):
    y_true, y_score = random_problem(3, missing=range(4))
    with pytest.raises(ValueError, match="no positive sample in any class"):
        mean_average_precision(y_true, y_score, average=average)


def test_map_rejects_unknown_average():
    y_true, y_score = random_problem(4)
    with pytest.raises(
        ValueError, match=r"average must be one of \('macro', 'micro'\); got 'samples'"
    ):
        mean_average_precision(y_true, y_score, average="samples")


def test_map_of_1d_labels_binarises_against_classes():
    rng = np.random.default_rng(5)
    classes = np.array(["robin", "tit", "wren"])
    labels = rng.choice(classes, size=40)
    y_score = rng.random((40, 3))
    expected = average_precision_score(label_binarize(labels, classes=classes), y_score)
    assert mean_average_precision(labels, y_score, classes=classes) == pytest.approx(expected)
    indices = np.searchsorted(classes, labels)
    assert mean_average_precision(indices, y_score) == pytest.approx(expected)


# -- padded_cmap --------------------------------------------------------------------------------
def test_padded_cmap_hand_example_and_kaggle_reference():
    y_true = np.array([[1, 0], [0, 1], [0, 0]])
    y_score = np.array([[0.9, 0.2], [0.3, 0.1], [0.2, 0.6]])
    # Class 0: the 5 padding rows and its positive rank first: AP 1. Class 1: 5 padding rows,
    # then two negatives, then its positive at rank 8: AP (5 + 6/8) / 6 = 23/24.
    assert padded_cmap(y_true, y_score) == pytest.approx((1 + 23 / 24) / 2)
    assert padded_cmap(y_true, y_score, padding_factor=1) == pytest.approx((1 + 0.75) / 2)
    columns = ["amerob", "norcar"]
    solution = pd.DataFrame(y_true, columns=columns).assign(row_id=["a", "b", "c"])
    submission = pd.DataFrame(y_score, columns=columns).assign(row_id=["a", "b", "c"])
    assert padded_cmap(y_true, y_score) == pytest.approx(kaggle_padded_cmap(solution, submission))


@pytest.mark.parametrize("padding_factor", [1, 5])
def test_padded_cmap_equals_kaggle_reference_on_random_data(padding_factor):
    y_true, y_score = random_problem(6, n_classes=6, missing=(2,))
    solution, submission = pd.DataFrame(y_true), pd.DataFrame(y_score)
    expected = kaggle_padded_cmap(solution, submission, padding_factor)
    score = padded_cmap(solution, submission, padding_factor=padding_factor)
    assert score == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
def test_padded_cmap_is_at_least_macro_map(seed):
    y_true, y_score = random_problem(seed, n_classes=6, missing=(seed % 6,))
    macro = mean_average_precision(y_true, y_score)
    assert macro < padded_cmap(y_true, y_score, padding_factor=1) < padded_cmap(y_true, y_score)


@pytest.mark.parametrize("padding_factor", [0, -1, 2.5, True, "5"])
def test_padded_cmap_rejects_bad_padding_factor(padding_factor):
    y_true, y_score = random_problem(7)
    with pytest.raises(ValueError, match="padding_factor must be a positive integer"):
        padded_cmap(y_true, y_score, padding_factor=padding_factor)


# -- f1_at_threshold and top1_accuracy ------------------------------------------------------------
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "samples"])
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.9])
def test_f1_at_threshold_equals_f1_of_thresholded_scores(threshold, average):
    y_true, y_score = random_problem(8)
    predicted = (y_score >= threshold).astype(int)
    expected = f1_score(y_true, predicted, average=average, zero_division=0)
    score = f1_at_threshold(y_true, y_score, threshold=threshold, average=average)
    assert score == pytest.approx(expected)


def test_f1_at_threshold_rejects_binary_average():
    y_true, y_score = random_problem(9)
    with pytest.raises(ValueError, match=r"average must be one of .*got 'binary'"):
        f1_at_threshold(y_true, y_score, average="binary")


def test_top1_accuracy_hand_example():
    y_score = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.3, 0.6], [0.5, 0.5, 0.0]])
    # Top classes: 0, 1, 2, and 0 (a tie goes to the first column).
    assert top1_accuracy([0, 2, 2, 1], y_score) == 0.5
    assert top1_accuracy(np.eye(3, dtype=int)[[0, 2, 2, 1]], y_score) == 0.5
    names = ["wren", "tit", "robin"]
    assert top1_accuracy(["wren", "robin", "robin", "tit"], y_score, classes=names) == 0.5
    # Several 1s in a row: correct when the top class is any of them.
    several = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 1], [0, 1, 1]])
    assert top1_accuracy(several, y_score) == 0.5


def test_top1_accuracy_equals_sklearn_top_k_on_multiclass_labels():
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 5, size=50)
    y_score = rng.random((50, 5))
    assert top1_accuracy(labels, y_score) == pytest.approx(
        top_k_accuracy_score(labels, y_score, k=1)
    )


def test_top1_accuracy_rejects_rows_without_primary():
    y_primary = np.array([[1, 0], [0, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"a 1 in every row; rows \[1\] have none"):
        top1_accuracy(y_primary, np.full((3, 2), 0.5))


# -- validation ---------------------------------------------------------------------------------
def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"got y_true \(4, 3\) and y_score \(4, 2\)"):
        mean_average_precision(np.ones((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"got y_primary \(3, 2\) and y_score \(4, 2\)"):
        top1_accuracy(np.eye(2)[[0, 1, 1]], np.ones((4, 2)))


@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        ([[1, 0], [0, 2]], [[0.1, 0.2], [0.3, 0.4]], "y_true must be a 0/1 indicator"),
        ([[1, 0], [0, 1]], [[0.1, np.nan], [0.3, 0.4]], "y_score must be finite"),
        ([[1, 0], [0, 1]], [[0.1, np.inf], [0.3, 0.4]], "y_score must be finite"),
        ([1, 0], [0.1, 0.2], r"y_score must be a 2-D array .* got shape \(2,\)"),
        ([[1, 0], [0, 1]], [["a", "b"], ["c", "d"]], "y_score must hold numbers"),
        ([0, 3], [[0.1, 0.2], [0.3, 0.4]], r"labels that are not in classes: \[3\]"),
    ],
)
def test_invalid_inputs_raise_clear_errors(y_true, y_score, message):
    with pytest.raises(ValueError, match=message):
        mean_average_precision(y_true, y_score)


def test_classes_must_match_score_columns():
    with pytest.raises(
        ValueError, match=r"one label per column of y_score \(3\); got shape \(2,\)"
    ):
        padded_cmap(["a", "b"], np.ones((2, 3)), classes=["a", "b"])
    with pytest.raises(ValueError, match="classes must not repeat labels"):
        padded_cmap(["a", "b"], np.ones((2, 2)), classes=["a", "a"])


def test_dataframes_with_different_columns_are_rejected():
    y_true = pd.DataFrame([[1, 0], [0, 1]], columns=["tit", "wren"])
    y_score = pd.DataFrame([[0.9, 0.1], [0.2, 0.8]], columns=["wren", "tit"])
    with pytest.raises(ValueError, match="different columns"):
        padded_cmap(y_true, y_score)


# -- scorers ------------------------------------------------------------------------------------
MODELS = {
    "one-vs-rest": OneVsRestClassifier(LogisticRegression()),
    "multi-output": MultiOutputClassifier(LogisticRegression()),
}
METRICS = {
    "mAP_macro": lambda y, p: mean_average_precision(y, p),
    "mAP_micro": lambda y, p: mean_average_precision(y, p, average="micro"),
    "padded_cmAP": padded_cmap,
    "f1_micro": f1_at_threshold,
    "f1_macro": lambda y, p: f1_at_threshold(y, p, average="macro"),
    "top1_accuracy": top1_accuracy,
}


def probabilities(model, X):
    """predict_proba as (n_samples, n_labels), converting MultiOutputClassifier's list."""
    proba = model.predict_proba(X)
    return np.column_stack([p[:, 1] for p in proba]) if isinstance(proba, list) else proba


def test_every_scorer_has_a_reference_metric():
    assert set(SCORERS) == set(METRICS)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_scorers_in_cross_validate_match_metrics_on_predict_proba(model):
    X, Y = multilabel_data()
    Y[~Y.any(axis=1), 0] = 1  # top-1 accuracy needs a label in every row
    results = cross_validate(
        model,
        X,
        Y,
        cv=3,
        scoring=SCORERS,
        return_estimator=True,
        return_indices=True,
        error_score="raise",
    )
    for fold, (fitted, test) in enumerate(
        zip(results["estimator"], results["indices"]["test"], strict=True)
    ):
        proba = probabilities(fitted, X[test])
        for name, metric in METRICS.items():
            assert results[f"test_{name}"][fold] == pytest.approx(metric(Y[test], proba)), name
    assert results["test_mAP_macro"].mean() > 0.7  # informative features: far above chance


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_scorers_in_grid_search_match_metrics_on_refitted_folds(model):
    X, Y = multilabel_data(seed=1)
    Y[~Y.any(axis=1), 0] = 1  # top-1 accuracy needs a label in every row
    cv = KFold(3, shuffle=True, random_state=0)
    grid = {"estimator__C": [0.01, 1.0]}
    search = GridSearchCV(
        model, grid, scoring=SCORERS, refit="padded_cmAP", cv=cv, error_score="raise"
    )
    search.fit(X, Y)
    for candidate, C in enumerate(grid["estimator__C"]):
        for fold, (train, test) in enumerate(cv.split(X)):
            fitted = clone(model).set_params(estimator__C=C).fit(X[train], Y[train])
            expected = padded_cmap(Y[test], probabilities(fitted, X[test]))
            score = search.cv_results_[f"split{fold}_test_padded_cmAP"][candidate]
            assert score == pytest.approx(expected)
    best = search.cv_results_["mean_test_padded_cmAP"].max()
    assert search.best_score_ == pytest.approx(best)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_scorer_passes_every_column_with_two_labels(model):
    # With two labels, classes_ looks binary to scikit-learn, whose predict_proba scorers
    # would keep only the second column.
    X, Y = multilabel_data(n_labels=2)
    fitted = clone(model).fit(X, Y)
    passed = make_proba_scorer(passed_scores)(fitted, X, Y)
    np.testing.assert_allclose(passed, probabilities(fitted, X))
    assert passed.shape == (len(X), 2)
    assert SCORERS["mAP_macro"](fitted, X, Y) == pytest.approx(
        mean_average_precision(Y, probabilities(fitted, X))
    )


def test_multi_output_label_fitted_on_one_class_gets_its_probability():
    X, Y = multilabel_data()
    Y[:, 0], Y[:, 2] = 0, 1  # label 0 never present, label 2 always
    fitted = MultiOutputClassifier(DummyClassifier(strategy="prior")).fit(X, Y)
    passed = make_proba_scorer(passed_scores)(fitted, X, Y)
    np.testing.assert_array_equal(passed[:, 0], 0.0)
    np.testing.assert_array_equal(passed[:, 2], 1.0)
    np.testing.assert_allclose(passed[:, 1], Y[:, 1].mean())


def test_scorers_with_multiclass_labels_use_estimator_classes():
    X, Y = multilabel_data()
    labels = np.array(["robin", "tit", "wren"])[Y.argmax(axis=1)]
    model = LogisticRegression().fit(X, labels)
    # LogisticRegression predicts the argmax of predict_proba: top-1 accuracy is its accuracy.
    assert SCORERS["top1_accuracy"](model, X, labels) == pytest.approx(model.score(X, labels))
    expected = average_precision_score(
        label_binarize(labels, classes=model.classes_), model.predict_proba(X)
    )
    assert SCORERS["mAP_macro"](model, X, labels) == pytest.approx(expected)


def test_make_proba_scorer_negates_losses_and_has_a_repr():
    X, Y = multilabel_data()
    model = OneVsRestClassifier(LogisticRegression()).fit(X, Y)
    loss = make_proba_scorer(lambda y, p: float(np.abs(y - p).mean()), greater_is_better=False)
    assert loss(model, X, Y) == pytest.approx(-np.abs(Y - model.predict_proba(X)).mean())
    assert repr(SCORERS["f1_macro"]) == "make_proba_scorer(f1_at_threshold, average='macro')"


def test_get_scorer_returns_ours_then_sklearn_ones():
    assert get_scorer("padded_cmAP") is SCORERS["padded_cmAP"]
    X, Y = multilabel_data()
    model = OneVsRestClassifier(LogisticRegression()).fit(X, Y)
    assert get_scorer("accuracy")(model, X, Y) == pytest.approx(accuracy_score(Y, model.predict(X)))
    with pytest.raises(ValueError, match=r"scoring='mAP' is not a known scorer.*'mAP_macro'"):
        get_scorer("mAP")


# -- properties ---------------------------------------------------------------------------------
@st.composite
def targets_and_scores(draw):
    """An indicator matrix with a positive in every class, scores in [0, 1], a permutation."""
    n_samples = draw(st.integers(2, 12))
    n_classes = draw(st.integers(1, 5))
    y_true = draw(hnp.arrays(np.int64, (n_samples, n_classes), elements=st.integers(0, 1)))
    positive_rows = draw(
        st.lists(st.integers(0, n_samples - 1), min_size=n_classes, max_size=n_classes)
    )
    y_true[positive_rows, np.arange(n_classes)] = 1
    # Few distinct values, so that ties between scores are common.
    y_score = draw(
        hnp.arrays(np.float64, (n_samples, n_classes), elements=st.sampled_from([0, 0.25, 0.5, 1]))
        | hnp.arrays(np.float64, (n_samples, n_classes), elements=st.floats(0, 1))
    )
    order = np.array(draw(st.permutations(range(n_samples))))
    return y_true, y_score, order


METRIC_PROPERTIES = {
    "mAP macro": lambda y, p: mean_average_precision(y, p),
    "mAP micro": lambda y, p: mean_average_precision(y, p, average="micro"),
    "padded cmAP": padded_cmap,
    "padded cmAP x1": lambda y, p: padded_cmap(y, p, padding_factor=1),
}


@pytest.mark.parametrize("metric", METRIC_PROPERTIES.values(), ids=METRIC_PROPERTIES.keys())
@settings(max_examples=60, deadline=None)
@given(problem=targets_and_scores())
def test_ranking_metric_properties(metric, problem):
    y_true, y_score, order = problem
    value = metric(y_true, y_score)
    assert -1e-12 <= value <= 1 + 1e-12  # scikit-learn's sum may overshoot 1 by an ulp
    assert metric(y_true[order], y_score[order]) == pytest.approx(value, abs=1e-12)
    assert metric(y_true, y_true.astype(float)) == pytest.approx(1.0)
