"""Tests of score calibration: curves and thresholds against known generators, the
bootstrap, the scikit-learn contract, inputs, the figure and ``birdaudio calibrate``.

Reviews are drawn from a known logistic ``P(correct | score) = σ(a + b logit(score))``, so
the true curve, probability threshold and precision of any threshold are known.
"""

import json
import pickle
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.image import imread
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from sklearn_birdaudio import ScoreCalibrator, decided_reviews, detect, plot_calibration
from sklearn_birdaudio.cli import EXIT_OK, CommandError, _read_thresholds, main
from sklearn_birdaudio.review import REVIEW_COLUMNS

LOW = 0.1  # the lowest score of the simulated detection tables (predict's --min-confidence)
THRESHOLD_COLUMNS = [
    "species", "threshold", "low", "high", "n_reviews", "pooled", "estimated_precision",
]  # fmt: skip


def true_curve(intercept: float, slope: float, scores) -> np.ndarray:
    return expit(intercept + slope * logit(np.clip(scores, 1e-6, 1 - 1e-6)))


def detection_scores(rng, n: int) -> np.ndarray:
    """Scores of a detection table: most near LOW, few high (as detectors give)."""
    return LOW + (1 - LOW) * rng.beta(1, 3, n)


def stratified_sample(rng, scores, per_stratum: int, n_strata: int = 10):
    """Equal allocation over equal-width score strata; weights N_h / n_h."""
    edges = np.linspace(LOW, 1, n_strata + 1)
    strata = np.clip(np.digitize(scores, edges[1:-1]), 0, n_strata - 1)
    rows, weights = [], []
    for stratum in range(n_strata):
        members = np.flatnonzero(strata == stratum)
        if len(members):
            drawn = rng.choice(members, min(per_stratum, len(members)), replace=False)
            rows.append(drawn)
            weights.append(np.full(len(drawn), len(members) / len(drawn)))
    return np.concatenate(rows), np.concatenate(weights)


def reviews_of(rng, label: str, scores, intercept: float, slope: float) -> pd.DataFrame:
    correct = rng.random(len(scores)) < true_curve(intercept, slope, scores)
    return pd.DataFrame(
        {"label": label, "confidence": scores, "verdict": np.where(correct, "yes", "no")}
    )


def uniform_reviews(seed: int, curves: dict, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.concat(
        [reviews_of(rng, name, rng.uniform(LOW, 1, n), *curve) for name, curve in curves.items()],
        ignore_index=True,
    )


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# -- the fitted curves ------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    st.floats(-2.0, 2.0),
    st.floats(0.5, 3.0),
    st.integers(0, 2**32 - 1),
)
def test_fitted_curve_recovers_the_true_curve(intercept, slope, seed):
    reviews = uniform_reviews(seed, {"wren": (intercept, slope)}, 3000)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    grid = pd.DataFrame({"label": "wren", "confidence": np.linspace(0.05, 0.95, 91)})
    fitted = calibrator.calibrated_probability(grid)
    assert np.abs(fitted - true_curve(intercept, slope, grid["confidence"])).max() < 0.06
    assert not calibrator.pooled_[0]


@pytest.mark.parametrize(("intercept", "slope"), [(0.0, 2.0), (-1.0, 1.5), (1.0, 0.8)])
def test_probability_threshold_is_the_true_curves(intercept, slope):
    reviews = uniform_reviews(0, {"wren": (intercept, slope), "owl": (0.5, 1.0)}, 3000)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    table = calibrator.thresholds(probability=0.8, n_bootstrap=0).set_index("species")
    expected = expit((logit(0.8) - intercept) / slope)
    assert table.loc["wren", "threshold"] == pytest.approx(expected, abs=0.03)
    assert table.loc["owl", "threshold"] == pytest.approx(expit(logit(0.8) - 0.5), abs=0.03)
    assert np.isnan(table["low"]).all()  # no bootstrap, no interval


def test_a_weak_prior_leaves_a_well_reviewed_species_near_its_own_fit():
    """With C=1 and 500 reviews a species' fit is within half a standard error of its
    unpenalised maximum-likelihood fit (scikit-learn's), moved towards the pooled one."""
    reviews = uniform_reviews(1, {"wren": (-1.0, 2.0), "owl": (1.0, 0.5)}, 500)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    pooled = np.array([calibrator.pooled_intercept_, calibrator.pooled_coef_])
    for index, name in enumerate(calibrator.species_):
        mine = reviews[reviews["label"] == name]
        scores = logit(mine["confidence"].to_numpy())
        reference = LogisticRegression(C=np.inf).fit(scores[:, None], mine["verdict"] == "yes")
        own = np.r_[reference.intercept_, reference.coef_[0]]
        p = expit(own[0] + own[1] * scores)
        design = np.column_stack([np.ones_like(scores), scores])
        standard_error = np.sqrt(
            np.diag(np.linalg.inv(design.T @ (design * (p * (1 - p))[:, None])))
        )
        fitted = np.array([calibrator.intercept_[index], calibrator.coef_[index]])
        assert (np.abs(fitted - own) < 0.5 * standard_error).all()
        assert (np.sign(fitted - own) == np.sign(pooled - own)).all()


def test_a_strong_prior_shrinks_species_to_the_pooled_curve_not_to_a_flat_one():
    reviews = uniform_reviews(2, {"wren": (-2.0, 3.0), "owl": (2.0, 0.5)}, 100)
    own = ScoreCalibrator(C=1.0).fit(reviews, reviews["verdict"])
    shrunk = ScoreCalibrator(C=1e-4).fit(reviews, reviews["verdict"])
    assert abs(own.intercept_[0] - own.intercept_[1]) > 2  # the species differ
    # Towards the pooled model, itself drawn towards "the score is the probability"
    # (slope 1), where scikit-learn's default L2 would give slope 0 (a flat curve).
    np.testing.assert_allclose(shrunk.intercept_, shrunk.pooled_intercept_, atol=0.01)
    np.testing.assert_allclose(shrunk.coef_, shrunk.pooled_coef_, atol=0.01)
    assert shrunk.pooled_coef_ == pytest.approx(1.0, abs=0.05)


def test_verdicts_separated_by_the_score_give_a_finite_curve():
    scores = np.linspace(LOW, 1, 30)
    reviews = pd.DataFrame({"label": "wren", "confidence": scores})
    verdicts = scores > 0.6  # all "no" below, all "yes" above: no finite MLE
    calibrator = ScoreCalibrator().fit(reviews, verdicts)
    assert not calibrator.pooled_[0]
    assert 0 < calibrator.coef_[0] < 15
    threshold = calibrator.thresholds(probability=0.5, n_bootstrap=0)["threshold"][0]
    assert 0.5 < threshold < 0.7


def test_verdict_forms_give_the_same_fit():
    reviews = uniform_reviews(3, {"wren": (0.0, 2.0)}, 200)
    correct = (reviews["verdict"] == "yes").to_numpy()
    fits = [
        ScoreCalibrator().fit(reviews, verdicts)
        for verdicts in (
            correct,
            correct.astype(int),
            correct.astype(float),
            reviews["verdict"].str.upper().tolist(),
            np.where(correct, " yes ", "No"),
        )
    ]
    for fit in fits[1:]:
        assert fit.coef_ == pytest.approx(fits[0].coef_)
        assert fit.intercept_ == pytest.approx(fits[0].intercept_)


def test_sample_weight_is_a_relative_weight_of_the_reviews():
    reviews = uniform_reviews(4, {"wren": (0.0, 2.0)}, 100)
    doubled = pd.concat([reviews, reviews.iloc[:50]], ignore_index=True)
    weights = np.r_[np.full(50, 2.0), np.ones(50)]
    by_weight = ScoreCalibrator().fit(reviews, reviews["verdict"], sample_weight=weights)
    by_copies = ScoreCalibrator().fit(doubled, doubled["verdict"])
    scaled = ScoreCalibrator().fit(reviews, reviews["verdict"], sample_weight=weights * 1000)
    # Weights are rescaled to a mean of 1: 150 weighted "reviews" become 100.
    assert by_weight.coef_ == pytest.approx(scaled.coef_)
    assert by_weight.coef_ != pytest.approx(by_copies.coef_, abs=1e-6)
    assert by_weight.coef_ == pytest.approx(by_copies.coef_, abs=0.15)


# -- pooling ----------------------------------------------------------------------------


def test_few_reviews_or_one_verdict_use_the_pooled_model():
    reviews = uniform_reviews(5, {"wren": (0.0, 2.0), "owl": (1.0, 1.0)}, 200)
    rng = np.random.default_rng(5)
    extra = pd.DataFrame(
        {
            "label": ["rare"] * 3 + ["sure"] * 30 + ["never"] * 30,
            "confidence": rng.uniform(LOW, 1, 63),
            "verdict": ["yes", "no", "yes"] + ["yes"] * 30 + ["no"] * 30,
        }
    )
    reviews = pd.concat([reviews, extra], ignore_index=True)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    assert calibrator.species_ == ["never", "owl", "rare", "sure", "wren"]
    assert calibrator.pooled_.tolist() == [True, False, True, True, False]
    assert calibrator.pooled_reasons_ == {
        "never": "only no verdicts",
        "rare": "fewer than 20 reviews",
        "sure": "only yes verdicts",
    }
    assert calibrator.n_reviews_.tolist() == [30, 200, 3, 30, 200]
    pooled = calibrator.pooled_
    np.testing.assert_array_equal(calibrator.coef_[pooled], calibrator.pooled_coef_)
    np.testing.assert_array_equal(calibrator.intercept_[pooled], calibrator.pooled_intercept_)
    table = calibrator.thresholds(probability=0.8, n_bootstrap=20, random_state=0)
    assert table["pooled"].tolist() == pooled.tolist()
    assert table["n_reviews"].tolist() == [30, 200, 3, 30, 200]
    # Species pooled alike get the same threshold.
    assert len(set(table.loc[pooled, "threshold"].round(12))) == 1
    assert ScoreCalibrator(min_reviews=3).fit(reviews, reviews["verdict"]).pooled_.tolist() == [
        True, False, False, True, False,
    ]  # fmt: skip


def test_unseen_species_get_the_pooled_model():
    reviews = uniform_reviews(6, {"wren": (0.0, 2.0), "owl": (1.0, 1.0)}, 200)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    scores = np.array([0.2, 0.5, 0.9])
    unseen = calibrator.predict_proba(pd.DataFrame({"label": "kiwi", "confidence": scores}))
    pooled = true_curve(calibrator.pooled_intercept_, calibrator.pooled_coef_, scores)
    np.testing.assert_allclose(unseen[:, 1], pooled)
    population = pd.DataFrame(
        {"label": ["wren", "owl", "kiwi"] * 50, "confidence": np.linspace(LOW, 1, 150)}
    )
    table = calibrator.thresholds(precision=0.8, reviews=population, n_bootstrap=10)
    assert table["species"].tolist() == ["owl", "wren", "kiwi"]
    assert table.iloc[2][["n_reviews", "pooled"]].tolist() == [0, True]


# -- thresholds -------------------------------------------------------------------------


def precision_problem(seed: int):
    """A species' detections, a stratified review of them and a fresh set of detections."""
    rng = np.random.default_rng(seed)
    scores = detection_scores(rng, 20000)
    rows, weights = stratified_sample(rng, scores, per_stratum=50)
    reviews = reviews_of(rng, "wren", scores[rows], 0.0, 2.0).assign(weight=weights)
    fresh = detection_scores(rng, 400000)
    fresh_correct = rng.random(len(fresh)) < true_curve(0.0, 2.0, fresh)
    return reviews, scores, fresh, fresh_correct


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_threshold_reaches_the_target_on_fresh_detections(seed):
    reviews, scores, fresh, fresh_correct = precision_problem(seed)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    weighted = calibrator.thresholds(
        precision=0.9, sample_weight=reviews["weight"], n_bootstrap=0
    ).iloc[0]
    over_all = calibrator.thresholds(
        precision=0.9, reviews=pd.DataFrame({"label": "wren", "confidence": scores}), n_bootstrap=0
    ).iloc[0]
    for row in (weighted, over_all):
        assert row["estimated_precision"] >= 0.9
        assert fresh_correct[fresh >= row["threshold"]].mean() == pytest.approx(0.9, abs=0.04)
    # The review's weight column is used when the review table is the population.
    by_column = calibrator.thresholds(precision=0.9, reviews=reviews, n_bootstrap=0)
    assert by_column["threshold"][0] == weighted["threshold"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ignoring_stratified_weights_overstates_precision(seed):
    reviews, _, fresh, fresh_correct = precision_problem(seed)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    weighted = calibrator.thresholds(precision=0.9, sample_weight=reviews["weight"], n_bootstrap=0)
    unweighted = calibrator.thresholds(precision=0.9, n_bootstrap=0)
    achieved_weighted = fresh_correct[fresh >= weighted["threshold"][0]].mean()
    achieved_unweighted = fresh_correct[fresh >= unweighted["threshold"][0]].mean()
    # Equal allocation over-represents the rare high scores: unweighted, the detections
    # just above a threshold (most of them, and the least often correct) count too little.
    assert unweighted["threshold"][0] < weighted["threshold"][0]
    assert achieved_unweighted < 0.885
    assert achieved_unweighted < achieved_weighted - 0.03


def test_unreachable_targets_give_never():
    reviews = uniform_reviews(7, {"poor": (-3.0, 0.3), "falling": (0.5, -1.0)}, 400)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    assert calibrator.coef_[calibrator.species_.index("falling")] < 0
    for target in ({"probability": 0.95}, {"precision": 0.95}):
        table = calibrator.thresholds(**target, n_bootstrap=20, random_state=0)
        assert table["threshold"].tolist() == [1.0, 1.0]
        assert table["high"].tolist() == [1.0, 1.0]
        assert table["estimated_precision"].isna().all()


def test_a_species_reviewed_only_at_low_scores_gets_its_curves_threshold_not_never():
    # The species' reviews all score below 0.4, where it is rarely right: no set of them
    # reaches 0.9 precision. Its curve does reach 0.9, at a higher score: that score is
    # the threshold, and the detections above it, once they come, keep the promise.
    rng = np.random.default_rng(11)
    intercept, slope = 1.0, 1.5
    low_scores = rng.uniform(LOW, 0.4, 3000)
    reviews = reviews_of(rng, "veery", low_scores, intercept, slope)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    [threshold] = calibrator.thresholds(precision=0.9, n_bootstrap=0)["threshold"]
    [by_curve] = calibrator.thresholds(probability=0.9, n_bootstrap=0)["threshold"]
    assert 0.4 < threshold < 1.0 and threshold == pytest.approx(by_curve)
    fresh = rng.uniform(LOW, 1, 200_000)
    kept = fresh[fresh >= threshold]
    assert true_curve(intercept, slope, kept).mean() >= 0.9


def test_a_curve_always_above_the_target_gives_the_lowest_reviewed_score():
    reviews = uniform_reviews(8, {"wren": (0.0, 2.0)}, 300)
    reviews["confidence"] = reviews["confidence"].clip(0.3, None)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    calibrator.coef_[0], calibrator.intercept_[0] = 0.0, 5.0  # flat at 0.993
    table = calibrator.thresholds(probability=0.9, n_bootstrap=0)
    assert table["threshold"][0] == pytest.approx(0.3)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.floats(0.05, 0.99), min_size=2, max_size=4),
    st.booleans(),
)
def test_thresholds_rise_with_the_target_and_keep_their_promise(seed, targets, weighted):
    rng = np.random.default_rng(seed)
    reviews = reviews_of(rng, "wren", rng.uniform(0, 1, 60), rng.normal(), rng.uniform(0.3, 3))
    weights = rng.uniform(0.5, 20, 60) if weighted else None
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    previous = {"precision": -1.0, "probability": -1.0}
    for target in sorted(targets):
        for name in previous:
            row = calibrator.thresholds(
                **{name: target}, sample_weight=weights, n_bootstrap=0
            ).iloc[0]
            assert 0 <= row["threshold"] <= 1
            assert row["threshold"] >= previous[name] - 1e-12
            previous[name] = row["threshold"]
            if name == "precision" and row["threshold"] < 1:
                if np.isnan(row["estimated_precision"]):
                    # No reviewed score reaches the target: the curve's threshold, above them.
                    by_curve = calibrator.thresholds(probability=target, n_bootstrap=0)
                    assert row["threshold"] == pytest.approx(by_curve["threshold"][0])
                    assert row["threshold"] > reviews["confidence"].max()
                else:
                    assert row["estimated_precision"] >= target - 1e-9
                    assert row["threshold"] in set(reviews["confidence"])


# -- the bootstrap ----------------------------------------------------------------------


def test_bootstrap_intervals_cover_the_true_thresholds():
    truth_probability = expit(logit(0.9) / 2.0)  # the true curve σ(2 logit s) reaches 0.9
    covered = {"probability": 0, "precision": 0}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        reviews = reviews_of(rng, "wren", rng.uniform(LOW, 1, 80), 0.0, 2.0)
        calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
        row = calibrator.thresholds(probability=0.9, random_state=seed).iloc[0]
        covered["probability"] += row["low"] <= truth_probability <= row["high"]
        # Precision over a known set of detections, whose true precision curve is known.
        population = pd.DataFrame({"label": "wren", "confidence": detection_scores(rng, 3000)})
        truth = ScoreCalibrator().fit(reviews, reviews["verdict"])
        truth.intercept_[:], truth.coef_[:] = 0.0, 2.0
        truth_precision = truth.thresholds(precision=0.9, reviews=population, n_bootstrap=0)
        row = calibrator.thresholds(precision=0.9, reviews=population, random_state=seed).iloc[0]
        covered["precision"] += row["low"] <= truth_precision["threshold"][0] <= row["high"]
        assert row["low"] <= row["threshold"] <= row["high"] or row["threshold"] == 1.0
    assert covered["probability"] >= 8  # of 10, for 90 % intervals (9 and 9 when written)
    assert covered["precision"] >= 8


def test_the_bootstrap_is_reproducible_with_a_seed():
    reviews = uniform_reviews(9, {"wren": (0.0, 2.0), "owl": (1.0, 1.0)}, 60)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    first = calibrator.thresholds(precision=0.9, n_bootstrap=50, random_state=3)
    again = calibrator.thresholds(precision=0.9, n_bootstrap=50, random_state=3)
    other = calibrator.thresholds(precision=0.9, n_bootstrap=50, random_state=4)
    pd.testing.assert_frame_equal(first, again)
    assert first["threshold"].tolist() == other["threshold"].tolist()  # the fit's own
    assert first["low"].tolist() != other["low"].tolist()
    state = np.random.RandomState(3)
    pd.testing.assert_frame_equal(
        first, calibrator.thresholds(precision=0.9, n_bootstrap=50, random_state=state)
    )
    wider = calibrator.thresholds(
        precision=0.9, n_bootstrap=50, random_state=3, confidence_level=0.99
    )
    assert (wider["low"] <= first["low"]).all() and (wider["high"] >= first["high"]).all()


def test_thresholds_of_twenty_species_take_seconds():
    curves = {f"species_{k:02d}": (k / 10 - 1, 0.5 + k / 8) for k in range(20)}
    reviews = uniform_reviews(10, curves, 50)
    weights = np.random.default_rng(10).uniform(1, 30, len(reviews))
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    start = time.perf_counter()
    precision = calibrator.thresholds(precision=0.9, sample_weight=weights, random_state=0)
    probability = calibrator.thresholds(probability=0.9, random_state=0)
    assert time.perf_counter() - start < 10  # about 0.5 s on one core
    assert len(precision) == len(probability) == 20
    assert precision[["low", "high"]].notna().all().all()


# -- the scikit-learn contract and inputs ----------------------------------------------


def test_scikit_learn_basics():
    reviews = uniform_reviews(11, {"wren": (0.0, 2.0), "owl": (1.0, 1.0)}, 100)
    calibrator = ScoreCalibrator(min_reviews=5, C=0.5)
    assert calibrator.get_params() == {"min_reviews": 5, "C": 0.5}
    copy = clone(calibrator)
    assert copy.get_params() == calibrator.get_params() and copy is not calibrator
    for method in ("predict", "predict_proba", "calibrated_probability"):
        with pytest.raises(NotFittedError):
            getattr(calibrator, method)(reviews)
    with pytest.raises(NotFittedError):
        calibrator.thresholds(precision=0.9)
    assert calibrator.fit(reviews, reviews["verdict"]) is calibrator
    probabilities = calibrator.predict_proba(reviews)
    assert probabilities.shape == (200, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_array_equal(calibrator.classes_, [0, 1])
    np.testing.assert_array_equal(calibrator.predict(reviews), probabilities[:, 1] >= 0.5)
    correct = (reviews["verdict"] == "yes").astype(int)
    assert calibrator.score(reviews, correct) > 0.6
    restored = pickle.loads(pickle.dumps(calibrator))
    np.testing.assert_array_equal(restored.predict_proba(reviews), probabilities)
    pd.testing.assert_frame_equal(
        restored.thresholds(precision=0.9, n_bootstrap=10, random_state=0),
        calibrator.thresholds(precision=0.9, n_bootstrap=10, random_state=0),
    )
    unchecked = ScoreCalibrator(min_reviews="x")  # __init__ stores; fit validates
    assert unchecked.get_params()["min_reviews"] == "x"
    with pytest.raises(ValueError, match="min_reviews must be a positive integer, got 'x'"):
        unchecked.fit(reviews, reviews["verdict"])


GOOD = pd.DataFrame({"label": ["wren", "owl"], "confidence": [0.3, 0.8]})


@pytest.mark.parametrize(
    ("X", "y", "params", "message"),
    [
        (GOOD.drop(columns="confidence"), [1, 0], {}, "no column ['confidence']"),
        (GOOD.rename(columns={"label": "species"}), [1, 0], {}, "no column ['label']"),
        (GOOD.to_numpy(), [1, 0], {}, "must be a pandas DataFrame"),
        (GOOD, ["yes", "maybe"], {}, "'maybe'"),
        (GOOD, ["yes", "unsure"], {}, "decided_reviews"),
        (GOOD, [1, 2], {}, "binary verdicts"),
        (GOOD, [1, 0, 1], {}, "3 verdicts but X has 2 rows"),
        (GOOD.assign(confidence=[0.3, np.nan]), [1, 0], {}, "NaN or missing in 1 row"),
        (GOOD.assign(confidence=[0.3, 1.5]), [1, 0], {}, "scores in [0, 1]; got 1.5"),
        (GOOD.assign(confidence=[0.3, "high"]), [1, 0], {}, "must be numbers; got 'high'"),
        (GOOD.assign(label=["wren", None]), [1, 0], {}, "'label'] is missing"),
        (GOOD, [1, 0], {"min_reviews": 0}, "min_reviews must be a positive integer"),
        (GOOD, [1, 0], {"C": 0.0}, "C must be a positive finite number"),
        (GOOD, [1, 0], {"C": np.inf}, "C must be a positive finite number"),
    ],
)
def test_bad_fit_inputs_are_named(X, y, params, message):
    with pytest.raises((ValueError, TypeError)) as error:
        ScoreCalibrator(**params).fit(X, y)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of precision"),
        ({"precision": 0.9, "probability": 0.9}, "exactly one of precision"),
        ({"precision": 1.0}, "precision must be a number strictly between 0 and 1"),
        ({"probability": float("nan")}, "probability must be"),
        ({"precision": 0.9, "confidence_level": 1}, "confidence_level must be"),
        ({"precision": 0.9, "n_bootstrap": -1}, "n_bootstrap must be a non-negative"),
        ({"precision": 0.9, "sample_weight": [1.0, -1.0]}, "non-negative numbers; got -1.0"),
        ({"precision": 0.9, "sample_weight": [1.0]}, "one weight per row (2)"),
        ({"precision": 0.9, "reviews": GOOD.drop(columns="label")}, "reviews has no column"),
        (
            {"precision": 0.9, "reviews": GOOD.assign(weight=[1.0, np.nan])},
            "reviews['weight'] must be finite",
        ),
    ],
)
def test_bad_threshold_arguments_are_named(kwargs, message):
    calibrator = ScoreCalibrator().fit(GOOD, [1, 0])
    with pytest.raises(ValueError) as error:
        calibrator.thresholds(**kwargs)
    assert message in str(error.value)


def test_weights_summing_to_zero_for_a_species_are_refused():
    with pytest.raises(ValueError, match="sums to zero for species 'owl'"):
        ScoreCalibrator().fit(GOOD, [1, 0], sample_weight=[1.0, 0.0])


def test_decided_reviews_drops_unsure_and_empty_verdicts():
    reviews = pd.DataFrame(
        {
            "label": "wren",
            "confidence": [0.2, 0.4, 0.6, 0.8, 0.9],
            "verdict": ["yes", "unsure", "", " No ", np.nan],
        }
    )
    assert decided_reviews(reviews)["confidence"].tolist() == [0.2, 0.8]
    with pytest.raises(ValueError, match="'verdict' column"):
        decided_reviews(reviews.drop(columns="verdict"))


# -- the figure -------------------------------------------------------------------------


def test_plot_calibration_draws_curve_reviews_threshold_and_target():
    reviews = uniform_reviews(12, {"wren": (0.0, 2.0)}, 60)
    reviews = pd.concat(
        [reviews, pd.DataFrame({"label": "rare", "confidence": [0.5, 0.9], "verdict": "yes"})]
    ).assign(weight=1.0)
    calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    table = calibrator.thresholds(precision=0.9, random_state=0, n_bootstrap=30)
    row = table.set_index("species").loc["wren"]
    fig = plot_calibration(calibrator, "wren", reviews, threshold_row=row, target=0.9)
    ax = fig.axes[0]
    assert ax.get_title() == "wren: 60 reviews"
    curve = ax.get_lines()[1]
    expected = calibrator.calibrated_probability(
        pd.DataFrame({"label": "wren", "confidence": curve.get_xdata()})
    )
    np.testing.assert_allclose(curve.get_ydata(), expected)
    vertical = [line for line in ax.get_lines() if line.get_label().startswith("threshold")]
    assert vertical[0].get_xdata()[0] == pytest.approx(row["threshold"])
    points = sum(len(collection.get_offsets()) for collection in ax.collections)
    assert points == 60
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "target 0.9" in labels and "threshold interval" in labels
    pooled = plot_calibration(calibrator, "rare", reviews)
    assert pooled.axes[0].get_title() == "rare: 2 reviews; pooled model (fewer than 20 reviews)"
    unseen = plot_calibration(calibrator, "kiwi")
    assert unseen.axes[0].get_title() == "kiwi: not reviewed; pooled model"


# -- the thresholds file and the command -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("t.json", json.dumps({"wren": 0.6, "owl": 1}), {"wren": 0.6, "owl": 1.0}),
        ("t.csv", "wren,0.6\nowl,1\n", {"wren": 0.6, "owl": 1.0}),
        ("t.csv", "species,threshold\nwren,0.6\n", {"wren": 0.6}),
        ("t.csv", "name,value\nwren,0.6\n", {"wren": 0.6}),
        (
            "t.csv",
            "threshold,species,low,high,n_reviews,pooled,estimated_precision\n"
            "0.6,wren,0.5,0.7,30,False,0.91\n1.0,'=owl,0.9,1.0,3,True,\n",
            {"wren": 0.6, "=owl": 1.0},
        ),
    ],
)
def test_read_thresholds_reads_every_form(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert _read_thresholds(path) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wren,0.6,1\n", "expected two columns"),
        ("species,threshold\nwren,high\n", "'high' of 'wren' is not a number"),
        ("species,threshold,pooled\nwren,,True\n", "'' of 'wren' is not a number"),
        ("wren,0.6\nowl,x\n", "'x' of 'owl' is not a number"),
        ("", "not a CSV"),
    ],
)
def test_read_thresholds_names_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        _read_thresholds(path)


class ConstantScores(ClassifierMixin, BaseEstimator):
    """Scores every class of the i-th one-second window of a ramp (its samples are their
    indices) at (i + 0.5) / n_windows."""

    def __init__(self, classes=("owl", "wren"), n_windows=10):
        self.classes = classes
        self.n_windows = n_windows

    def fit(self, X=None, y=None):
        self.classes_ = np.asarray(self.classes)
        return self

    def predict_proba(self, X):
        starts = np.array([window[0] for window in X]) / 32000  # a ramp: sample indices
        score = (starts + 0.5) / self.n_windows  # 0.05, 0.15, ... 0.95
        return np.repeat(score[:, np.newaxis], len(self.classes_), axis=1)


def write_review_csv(path, seed: int = 13):
    """A review.csv as 'birdaudio review' writes it, verdicts filled in."""
    rng = np.random.default_rng(seed)
    reviews = pd.concat(
        [
            reviews_of(rng, "wren", rng.uniform(LOW, 1, 40), 0.0, 2.0),
            reviews_of(rng, "owl", rng.uniform(LOW, 1, 40), 1.0, 1.0),
            reviews_of(rng, "'=rare", rng.uniform(LOW, 1, 4), 0.0, 2.0),  # marked, as written
        ],
        ignore_index=True,
    )
    n = len(reviews)
    reviews.loc[[0, 1, 41], "verdict"] = ["unsure", "", "unsure"]
    table = reviews.assign(
        review_id=[f"{index:04d}" for index in range(n)], file="a.wav", start_s=np.arange(n),
        end_s=np.arange(n) + 3.0, weight=rng.uniform(1, 5, n), stratum=0,
        clip=[f"clips/{index:04d}.wav" for index in range(n)], clip_start_s=0.0,
        clip_end_s=3.0, spectrogram="s.png",
    )[list(REVIEW_COLUMNS)]  # fmt: skip
    table.to_csv(path, index=False)


def test_calibrate_writes_thresholds_and_plots_that_predict_reads(tmp_path, capsys):
    review = tmp_path / "review.csv"
    write_review_csv(review)
    out = tmp_path / "out" / "thresholds.csv"
    code = main(["calibrate", str(review), "--precision", "0.9", "--out", str(out),
                 "--bootstrap", "30", "-q"])  # fmt: skip
    assert code == EXIT_OK
    printed = capsys.readouterr().out
    assert "Reviews: 81 with a yes/no verdict, of 3 species" in printed
    assert "used for: =rare (fewer than 20 reviews)" in printed
    written = pd.read_csv(out)
    assert list(written.columns) == THRESHOLD_COLUMNS
    assert written["species"].tolist() == ["'=rare", "owl", "wren"]  # marked for spreadsheets
    assert written["pooled"].tolist() == [True, False, False]
    assert written["n_reviews"].tolist() == [4, 39, 38]
    thresholds = _read_thresholds(out)
    assert thresholds == dict(zip(["=rare", "owl", "wren"], written["threshold"], strict=True))

    plots = sorted((tmp_path / "out" / "thresholds_plots").iterdir())
    assert [path.name for path in plots] == ["owl.png", "rare.png", "wren.png"]
    for path in plots:
        image = imread(path)
        assert image.shape[:2] == (500, 900)
        assert image[..., :3].std() > 0.05  # drawn on, not blank

    # predict's detect takes them: 1.0 (never) included.
    thresholds = {"owl": 1.0, "wren": thresholds["wren"]}
    model = ConstantScores().fit()
    detections = detect(model, np.arange(32000 * 10, dtype=np.float32), window_seconds=1.0,
                        input_sample_rate=32000, thresholds=thresholds, verbose=0)  # fmt: skip
    assert "owl" not in set(detections["label"])
    wren = detections[detections["label"] == "wren"]
    expected = (np.arange(10) + 0.5) / 10 >= thresholds["wren"]
    assert len(wren) == expected.sum() > 0


def test_calibrate_over_detection_tables_and_with_probability(tmp_path, capsys):
    review = tmp_path / "review.csv"
    write_review_csv(review)
    rng = np.random.default_rng(14)
    tables = tmp_path / "tables"
    tables.mkdir()
    for name, labels in (("a", ["wren", "owl"]), ("b", ["wren", "kiwi"])):
        pd.DataFrame(
            {"file": f"{name}.wav", "start_s": 0.0, "end_s": 3.0, "label": labels * 100,
             "confidence": rng.uniform(LOW, 1, 200)}
        ).to_csv(tables / f"{name}.birdaudio.csv", index=False)  # fmt: skip
    out = tmp_path / "thresholds.csv"
    code = main(["calibrate", str(review), "--precision", "0.8", "--out", str(out),
                 "--detections", str(tables), "--no-plots", "--bootstrap", "0"])  # fmt: skip
    assert code == EXIT_OK
    captured = capsys.readouterr()
    printed = captured.out
    assert "Precision estimated over 400 detections" in printed
    assert "warning: the detections given (reviews) hold none of '=rare'" in captured.err
    assert "kiwi (not reviewed)" in printed
    assert not (tmp_path / "thresholds_plots").exists()
    written = pd.read_csv(out)
    assert written["species"].tolist() == ["'=rare", "owl", "wren", "kiwi"]
    assert written["low"].isna().all()

    plots = tmp_path / "figures"
    code = main(["calibrate", str(review), "--probability", "0.9", "--out", str(out),
                 "--plots", str(plots), "--bootstrap", "10"])  # fmt: skip
    assert code == EXIT_OK
    assert len(list(plots.glob("*.png"))) == 3


def test_calibrate_errors_exit_1_with_a_message(tmp_path, capsys):
    review = tmp_path / "review.csv"
    pd.DataFrame([["0001", "a.wav", 0, 3, "wren", 0.5, 1, 0, "c", 0, 3, "s", "unsure"]],
                 columns=REVIEW_COLUMNS).to_csv(review, index=False)  # fmt: skip
    out = str(tmp_path / "t.csv")
    assert main(["calibrate", str(review), "--precision", "0.9", "--out", out]) == 1
    assert "no review has a 'yes' or 'no' verdict" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "nope.csv"), "--precision", "0.9", "--out", out]) == 1
    assert "review file not found" in capsys.readouterr().err
    write_review_csv(review)
    assert main(["calibrate", str(review), "--precision", "1.5", "--out", out]) == 1
    assert "precision must be a number strictly between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate", str(review), "--out", out])  # no target
