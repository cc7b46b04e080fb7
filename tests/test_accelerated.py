"""Tests of the accelerate-backed classifier (single process, on this machine's CPU)."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from test_classifier import TINY_CNN, spectrograms

from sklearn_birdaudio import AttentionCNNClassifier

accelerate = pytest.importorskip(
    "accelerate", reason='needs the accelerate extra: pip install "sklearn-birdaudio[accelerate]"'
)
from sklearn_birdaudio.accelerated import AcceleratedAttentionCNNClassifier  # noqa: E402

QUICK = {**TINY_CNN, "max_epochs": 3}


@pytest.fixture(scope="module")
def data():
    return spectrograms(40, 0)


@pytest.fixture(scope="module")
def fitted(data):
    X, Y, _ = data
    return AcceleratedAttentionCNNClassifier(**QUICK).fit(X, Y)


def test_one_process_trains_exactly_like_the_plain_classifier(fitted, data):
    X, Y, _ = data
    plain = AttentionCNNClassifier(**QUICK).fit(X, Y)
    np.testing.assert_array_equal(fitted.predict_proba(X), plain.predict_proba(X))
    assert [row["train_loss"] for row in fitted.history] == [
        row["train_loss"] for row in plain.history
    ]
    assert fitted.accelerator is None  # the parameter stays as set
    assert isinstance(fitted.accelerator_, accelerate.Accelerator)


def test_a_given_accelerator_is_used_and_kept(data):
    X, Y, _ = data
    accelerator = accelerate.Accelerator(cpu=True)
    model = AcceleratedAttentionCNNClassifier(accelerator=accelerator, **QUICK).fit(X, Y)
    assert model.accelerator is accelerator and model.accelerator_ is accelerator
    assert model.predict_proba(X).shape == (len(X), Y.shape[1])


def test_verbose_0_prints_nothing_and_verbose_1_the_epoch_log(data, capsys):
    X, Y, _ = data
    AcceleratedAttentionCNNClassifier(**{**QUICK, "max_epochs": 2}).fit(X, Y)
    assert capsys.readouterr().out == ""  # skorch's mixin alone prints every epoch here
    AcceleratedAttentionCNNClassifier(**{**QUICK, "max_epochs": 2, "verbose": 1}).fit(X, Y)
    out = capsys.readouterr().out
    assert "train_loss" in out and out.count("\n") >= 4  # header, rule, two epochs


def test_the_fitted_classifier_pickles_and_clones(fitted, data):
    X, *_ = data
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    params = clone(fitted).get_params()
    assert params["accelerator"] is None and params["unwrap_after_train"] is True
    assert params["module__base_filters"] == TINY_CNN["module__base_filters"]
    assert not hasattr(clone(fitted), "accelerator_")


def test_multiclass_targets_and_validation_scores(data):
    X, Y, names = data
    labels = np.asarray(names)[Y.argmax(axis=1)]
    model = AcceleratedAttentionCNNClassifier(**{**QUICK, "max_epochs": 6}).fit(X, labels)
    probabilities = model.predict_proba(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert "valid_mAP" in model.history[-1]
    assert np.mean(model.predict(X) == labels) > 1 / len(names)  # learned beyond chance
