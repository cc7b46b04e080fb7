"""Tests of AttentionCNNClassifier: learning, targets, windows, composition, persistence."""

import os
import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import VotingClassifier
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.metrics import accuracy_score, average_precision_score, f1_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from skorch.exceptions import DeviceWarning

from sklearn_birdaudio import MelSpectrogramTransformer, make_birdsong
from sklearn_birdaudio.classifier import AttentionCNNClassifier
from sklearn_birdaudio.training import RandomWindows, validation_map, window_starts

SAMPLE_RATE = 16000
MEL = {
    "sample_rate": SAMPLE_RATE, "duration": 1.0, "n_fft": 512, "hop_length": 256,
    "n_mels": 32, "fmax": 8000,
}  # fmt: skip
TINY_CNN = {
    "module__base_filters": 8, "module__n_blocks": 3, "module__n_heads": 4,
    "module__dropout": 0.1, "lr": 3e-3, "max_epochs": 15, "window_seconds": 1.0,
    "overlap_seconds": 0.5, "random_state": 0, "verbose": 0,
}  # fmt: skip


def tiny_pipeline(**cnn_params):
    return Pipeline(
        [
            ("mel", MelSpectrogramTransformer(**MEL)),
            ("cnn", AttentionCNNClassifier(**{**TINY_CNN, **cnn_params})),
        ]
    )


def songs(n_samples, random_state, **kwargs):
    return make_birdsong(
        n_samples, n_classes=4, duration=1.0, sample_rate=SAMPLE_RATE,
        random_state=random_state, **kwargs,
    )  # fmt: skip


def spectrograms(n_samples, random_state, long_recordings=False, n_mels=32):
    """Spectrograms of 1-s clips, or of recordings of 0.6-2.5 s padded with NaN."""
    duration = 2.5 if long_recordings else 1.0
    waveforms, Y, names = make_birdsong(
        n_samples, n_classes=4, duration=duration, sample_rate=SAMPLE_RATE,
        random_state=random_state,
    )  # fmt: skip
    if long_recordings:
        lengths = np.random.default_rng(random_state).uniform(0.6, duration, n_samples)
        waveforms = [wave[: int(seconds * SAMPLE_RATE)] for wave, seconds in zip(
            waveforms, lengths, strict=True)]  # fmt: skip
    mel = MelSpectrogramTransformer(**{**MEL, "n_mels": n_mels, "duration": None})
    return mel.fit_transform(list(waveforms)), Y, names


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread, and no slower beside other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same_weights(model, reference):
    weights, expected = model.module_.state_dict(), reference.module_.state_dict()
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(weights[name], tensor), name


@pytest.fixture(scope="module")
def multilabel_data():
    X_train, Y_train, names = songs(120, 0, as_frame=True)
    X_test, Y_test, _ = songs(60, 1)
    return X_train, Y_train, X_test, Y_test, names


@pytest.fixture(scope="module")
def fitted(multilabel_data):
    X_train, Y_train, *_ = multilabel_data
    return tiny_pipeline().fit(X_train, Y_train)


# -- learning ---------------------------------------------------------------------------


def test_multilabel_pipeline_learns_far_above_the_prior(fitted, multilabel_data):
    _, Y_train, X_test, Y_test, names = multilabel_data
    probabilities = fitted.predict_proba(X_test)
    assert probabilities.shape == (60, 4)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    prior = DummyClassifier(strategy="prior").fit(np.zeros((len(Y_train), 1)), Y_train)
    prior_scores = np.column_stack([p[:, 1] for p in prior.predict_proba(np.zeros((60, 1)))])
    model_map = average_precision_score(Y_test, probabilities, average="macro")
    prior_map = average_precision_score(Y_test, prior_scores, average="macro")
    assert model_map >= prior_map + 0.3, (model_map, prior_map)
    # F1 from sklearn.metrics on the thresholded predictions.
    predictions = fitted.predict(X_test)
    assert set(np.unique(predictions)) <= {0, 1} and predictions.shape == (60, 4)
    for average in ("micro", "macro", "samples"):
        assert f1_score(Y_test, predictions, average=average, zero_division=0) > 0.5
    assert list(fitted.named_steps["cnn"].classes_) == names


# Validation split, early stopping, shuffled batches and dropout: every random draw.
REPRODUCIBLE = {
    **TINY_CNN, "module__base_filters": 4, "module__n_blocks": 2, "module__n_heads": 2,
    "max_epochs": 4, "batch_size": 8, "validation_fraction": 0.25, "patience": 2,
}  # fmt: skip


@pytest.mark.parametrize("long_recordings", [False, True], ids=["clips", "random-windows"])
def test_fixed_random_state_reproduces_weights_and_predictions(long_recordings, one_thread):
    X, Y, _ = spectrograms(32, 0, long_recordings)
    if long_recordings:
        assert np.isnan(X).any() and X.shape[-1] > 2 * TINY_CNN["window_seconds"] * 62
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    first = AttentionCNNClassifier(**REPRODUCIBLE).fit(X, Y)
    # Seeded without touching the global generators.
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()  # noqa: NPY002
    again = AttentionCNNClassifier(**REPRODUCIBLE).fit(X, Y)
    assert_same_weights(again, first)
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))
    assert again.history_[:, "valid_loss"] == first.history_[:, "valid_loss"]
    other = AttentionCNNClassifier(**{**REPRODUCIBLE, "random_state": 1}).fit(X, Y)
    assert not np.allclose(other.predict_proba(X), first.predict_proba(X))


REPRODUCE_IN_ANOTHER_PROCESS = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from test_classifier import REPRODUCIBLE, spectrograms
from sklearn_birdaudio import AttentionCNNClassifier
X, Y, _ = spectrograms(32, 0, long_recordings=True)
model = AttentionCNNClassifier(**REPRODUCIBLE).fit(X, Y)
torch.save(model.module_.state_dict(), {out!r})
"""


def test_fixed_random_state_reproduces_the_weights_in_another_process(tmp_path, one_thread):
    out = tmp_path / "weights.pt"
    script = REPRODUCE_IN_ANOTHER_PROCESS.format(tests=os.path.dirname(__file__), out=str(out))
    # Another hash seed too: nothing may depend on the order of a set or dict of strings.
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, env=env)
    X, Y, _ = spectrograms(32, 0, long_recordings=True)
    here = AttentionCNNClassifier(**REPRODUCIBLE).fit(X, Y).module_.state_dict()
    there = torch.load(out, weights_only=True)
    assert there.keys() == here.keys()
    for name, tensor in here.items():
        assert torch.equal(there[name], tensor), name


def test_history_records_losses_and_validation_map(fitted):
    history = fitted.named_steps["cnn"].history_
    assert len(history) == 15
    for key in ("train_loss", "valid_loss", "valid_mAP", "dur"):
        assert all(np.isfinite(history[:, key]))
    assert history[-1, "train_loss"] < history[0, "train_loss"]
    assert history[-1, "valid_mAP"] > history[0, "valid_mAP"]


def test_multiclass_labels_are_learned_and_returned():
    X_train, Y_train, names = songs(120, 0, n_labels=1)
    X_test, Y_test, _ = songs(60, 1, n_labels=1)
    labels = np.asarray(names)
    pipeline = tiny_pipeline().fit(X_train, labels[Y_train.argmax(axis=1)])
    cnn = pipeline.named_steps["cnn"]
    assert not cnn.multilabel_ and list(cnn.classes_) == names
    probabilities = pipeline.predict_proba(X_test)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    predictions = pipeline.predict(X_test)
    assert predictions.dtype.kind == "U"
    assert accuracy_score(labels[Y_test.argmax(axis=1)], predictions) > 0.6  # chance 0.25


def test_early_stopping_stops_when_validation_map_stalls_and_restores_the_best(multilabel_data):
    X_train, Y_train, *_ = multilabel_data
    pipeline = tiny_pipeline(lr=0.3, max_epochs=40, patience=2).fit(X_train, Y_train)
    cnn = pipeline.named_steps["cnn"]
    history = cnn.history_
    assert len(history) < 40
    best = int(np.argmax(history[:, "valid_mAP"]))
    assert len(history) - 1 - best == 2  # stopped `patience` epochs after the best
    # the best epoch's weights are restored: validating again gives the best score
    spectrograms = pipeline.named_steps["mel"].transform(X_train)
    targets = cnn._encode_targets(Y_train, reset=False)
    valid = cnn.get_split_datasets(spectrograms, targets)[1]
    pairs = [valid[i] for i in range(len(valid))]
    X_valid, y_valid = np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs])
    assert validation_map(cnn, X_valid, y_valid) == pytest.approx(history[best, "valid_mAP"])


# -- windows ----------------------------------------------------------------------------


def test_random_windows_stay_inside_the_audio():
    spectrograms = np.full((3, 1, 4, 100), np.nan, dtype=np.float32)
    spectrograms[0, ..., :100] = np.arange(100)
    spectrograms[1, ..., :30] = np.arange(30)
    spectrograms[2, ..., :6] = np.arange(6)  # shorter than the window
    batch = [(spectrogram, np.zeros(2, np.float32)) for spectrogram in spectrograms]
    collate = RandomWindows(window_frames=10, random_state=0)
    starts = set()
    for _ in range(50):
        crops, _ = collate(batch)
        crops = crops.numpy()
        assert crops.shape == (3, 1, 4, 10)
        assert not np.isnan(crops[:2]).any()
        assert (np.diff(crops[0, 0, 0]) == 1).all()  # one contiguous run of frames
        np.testing.assert_array_equal(crops[2, 0, 0, :6], np.arange(6))
        assert np.isnan(crops[2, ..., 6:]).all()
        starts.add(int(crops[1, 0, 0, 0]))
    assert starts <= set(range(21)) and len(starts) > 10


def test_long_inputs_are_scored_window_by_window(fitted):
    cnn = fitted.named_steps["cnn"]
    X, _, _ = make_birdsong(2, n_classes=4, duration=3.0, sample_rate=SAMPLE_RATE, random_state=5)
    long = MelSpectrogramTransformer(**{**MEL, "duration": None}).fit_transform(list(X))
    window = cnn._window_frames
    starts = window_starts(long.shape[-1], window, cnn._hop_frames)
    assert len(starts) >= 4 and starts[-1] + window == long.shape[-1]
    per_window = np.stack(
        [cnn.predict_proba(long[..., start : start + window]) for start in starts], axis=1
    )
    np.testing.assert_allclose(cnn.predict_proba(long), per_window.max(axis=1), rtol=1e-5)
    cnn.set_params(aggregation="mean")
    try:
        mean = cnn.predict_proba(long)
    finally:
        cnn.set_params(aggregation="max")
    assert (mean <= per_window.max(axis=1) + 1e-6).all()


def test_prediction_batch_size_changes_speed_not_results(fitted):
    cnn = fitted.named_steps["cnn"]
    X, _, _ = make_birdsong(5, n_classes=4, duration=3.0, sample_rate=SAMPLE_RATE, random_state=7)
    long = MelSpectrogramTransformer(**{**MEL, "duration": None}).fit_transform(list(X))
    assert cnn._predict_batch_size == 1  # the CPU default
    by_one = cnn.predict_proba(long)
    try:
        cnn.set_params(predict_batch_size=3)
        assert cnn._predict_batch_size == 3
        by_three = cnn.predict_proba(long)
        cnn.set_params(predict_batch_size=None)
        cnn.iterator_valid__batch_size = -1  # skorch's own setting wins; -1: all at once
        whole = cnn.predict_proba(long)
    finally:
        cnn.set_params(predict_batch_size=None)
        vars(cnn).pop("iterator_valid__batch_size", None)
    np.testing.assert_allclose(by_three, by_one, atol=1e-5)
    np.testing.assert_allclose(whole, by_one, atol=1e-5)


def test_padding_never_counts_as_audio(fitted):
    cnn = fitted.named_steps["cnn"]
    X, _, _ = make_birdsong(2, n_classes=4, duration=2.5, sample_rate=SAMPLE_RATE, random_state=6)
    mel = MelSpectrogramTransformer(**{**MEL, "duration": None})
    short = mel.fit_transform([X[0][:20000]])
    batch = mel.fit_transform([X[0][:20000], X[1]])  # the short one padded with NaN
    np.testing.assert_allclose(cnn.predict_proba(batch)[0], cnn.predict_proba(short)[0], atol=1e-5)


# -- composition ------------------------------------------------------------------------


def test_clone_and_params_keep_the_extra_parameters():
    cnn = AttentionCNNClassifier(threshold=0.3, window_seconds=2.0, random_state=4)
    copy = clone(cnn)
    params = copy.get_params()
    assert (params["threshold"], params["window_seconds"], params["random_state"]) == (0.3, 2.0, 4)
    assert params["device"] == "auto" and params["max_epochs"] == 50 and params["lr"] == 1e-3
    assert params["batch_size"] == 32 and params["optimizer__weight_decay"] == 1e-5
    copy.set_params(threshold=0.7, module__n_blocks=2)
    assert copy.threshold == 0.7 and copy.get_params()["module__n_blocks"] == 2


def test_a_fitted_net_takes_new_module_and_criterion_params_with_device_auto():
    X, Y, _ = spectrograms(8, random_state=0)
    cnn = AttentionCNNClassifier(**TINY_CNN).fit(X, Y)
    assert cnn.device == "auto"
    cnn.set_params(module__dropout=0.0, criterion__reduction="sum")  # skorch re-makes both
    assert cnn.device == "auto" and cnn.module_.dropout.p == 0.0
    assert cnn.criterion_.reduction == "sum"
    assert next(cnn.module_.parameters()).device.type in ("cpu", "cuda")
    epochs = len(cnn.history)
    cnn.partial_fit(X, Y)  # the new optimizer resumes the learning-rate schedule
    assert len(cnn.history) > epochs
    cnn.set_params(device="cpu")  # the device itself is set as given
    assert cnn.device == "cpu"
    assert cnn.predict_proba(X).shape == (8, Y.shape[1])


def test_grid_search_over_learning_rate_and_mel_bands(multilabel_data):
    X_train, Y_train, *_ = multilabel_data
    search = GridSearchCV(
        tiny_pipeline(max_epochs=3, validation_fraction=None),
        {"cnn__lr": [1e-3, 3e-3], "mel__n_mels": [16, 32]},
        cv=KFold(2),
        scoring="average_precision",
    )
    search.fit(X_train[:60], Y_train[:60])
    assert search.best_params_["mel__n_mels"] in (16, 32)
    assert search.cv_results_["mean_test_score"].shape == (4,)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_cross_validate_and_sklearn_voting_on_multiclass():
    X, Y, names = songs(80, 2, n_labels=1)
    y = np.asarray(names)[Y.argmax(axis=1)]
    quick = {"max_epochs": 10, "validation_fraction": None}
    scores = cross_validate(
        tiny_pipeline(**quick), X, y, cv=KFold(2), scoring=["accuracy", "f1_macro"]
    )
    assert scores["test_accuracy"].shape == (2,)
    assert scores["test_accuracy"].mean() > 0.3  # chance 0.25, 40 clips per fold
    assert np.isfinite(scores["test_f1_macro"]).all()
    voting = VotingClassifier(
        [("a", tiny_pipeline(**quick)), ("b", tiny_pipeline(**quick, random_state=1))],
        voting="soft",
    ).fit(X, y)
    assert voting.predict_proba(X).shape == (80, 4)
    assert set(voting.predict(X)) <= set(names)


def test_joblib_round_trip_predicts_identically(fitted, multilabel_data, tmp_path):
    X_test = multilabel_data[2]
    joblib.dump(fitted, tmp_path / "model.joblib")
    restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X_test), fitted.predict_proba(X_test))
    assert restored.named_steps["cnn"].get_params()["device"] == "auto"


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a CPU-only machine")
@pytest.mark.filterwarnings("ignore:Setting self.device = cpu:skorch.exceptions.DeviceWarning")
def test_a_model_saved_for_cuda_loads_and_predicts_on_a_cpu(fitted, multilabel_data, tmp_path):
    X_test = multilabel_data[2]
    model = pickle.loads(pickle.dumps(fitted))
    model.named_steps["cnn"].device = "cuda"  # as if it had been trained with device="cuda"
    joblib.dump(model, tmp_path / "cuda.joblib")
    with pytest.warns(DeviceWarning, match="CUDA"):
        restored = joblib.load(tmp_path / "cuda.joblib")
    assert str(restored.named_steps["cnn"].device) == "cpu"
    np.testing.assert_array_equal(restored.predict_proba(X_test), fitted.predict_proba(X_test))


# -- errors and output ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.zeros((4, 10)), np.eye(2)[[0, 1, 0, 1]], "expected log-mel spectrograms"),
        (np.zeros((4, 1, 8, 10)), np.linspace(0, 1, 4), "expected a 2-D 0/1 indicator"),
        (np.zeros((4, 1, 8, 10)), np.array(["a"] * 4), "one class"),
        (np.zeros((4, 1, 0, 10)), np.array([0, 1, 0, 1]), "at least one sample, mel band"),
        (np.zeros((4, 1, 8, 10), complex), np.array([0, 1, 0, 1]), "Complex data"),
        (np.zeros((4, 1, 8, 10)), None, "requires y to be passed"),
        (np.zeros((4, 1, 8, 10)), np.array([0, "a", 1, "b"], object), "Unknown label"),
        (np.full((2, 1, 8, 10), np.nan), np.array([0, 1]), "no valid frame"),
        (np.full((2, 1, 8, 10), np.inf), np.array([0, 1]), "infinite"),
    ],
)
def test_bad_inputs_are_named(X, y, message):
    with pytest.raises(ValueError, match=message):
        AttentionCNNClassifier(verbose=0).fit(X, y)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"aggregation": "median"}, "aggregation"),
        ({"overlap_seconds": 5.0}, "overlap_seconds"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"threshold": 1.0}, "threshold"),
        ({"predict_batch_size": 0}, "predict_batch_size"),
    ],
)
def test_bad_parameters_are_named(params, parameter):
    with pytest.raises(ValueError, match=parameter):
        AttentionCNNClassifier(verbose=0, **params).fit(np.zeros((4, 1, 8, 10)), [0, 1, 0, 1])


def test_mismatched_mel_bands_between_fit_and_predict(fitted):
    with pytest.raises(ValueError, match="expecting 32 features as input"):
        fitted.named_steps["cnn"].predict_proba(np.zeros((1, 1, 64, 63), np.float32))


def test_verbose_zero_is_silent_and_one_prints_epochs(capsys, multilabel_data):
    X_train, Y_train, *_ = multilabel_data
    tiny_pipeline(max_epochs=1).fit(X_train[:20], Y_train[:20])
    assert capsys.readouterr().out == ""
    tiny_pipeline(max_epochs=1, verbose=1).fit(X_train[:20], Y_train[:20])
    assert "train_loss" in capsys.readouterr().out


QUICK = {
    **TINY_CNN, "module__base_filters": 4, "module__n_blocks": 1, "module__n_heads": 1,
    "max_epochs": 1, "validation_fraction": None,
}  # fmt: skip


def test_sparse_input_and_unknown_fit_parameters_are_refused():
    X = np.zeros((4, 1, 8, 10), np.float32)
    with pytest.raises(TypeError, match="sparse input is not supported"):
        AttentionCNNClassifier(**QUICK).fit(scipy.sparse.csr_matrix(np.zeros((4, 80))), [0, 1] * 2)
    with pytest.raises(TypeError, match="sample_weight"):  # never silently ignored
        AttentionCNNClassifier(**QUICK).fit(X, [0, 1] * 2, sample_weight=np.ones(4))
    with pytest.raises(NotFittedError):
        AttentionCNNClassifier(**QUICK).predict_proba(X)


def test_fitted_state_is_neither_a_parameter_nor_cloned(one_thread):
    X, Y, _ = spectrograms(8, 0, n_mels=16)
    cnn = AttentionCNNClassifier(**QUICK)
    assert not hasattr(cnn, "n_features_in_")
    cnn.fit(X, Y)
    assert cnn.n_features_in_ == cnn.n_mels_ == 16  # mel bands: the features of a frame
    assert not [name for name in cnn.get_params() if name.startswith("_")]
    assert not hasattr(clone(cnn), "_seed")


def test_a_column_vector_y_is_read_as_labels_with_a_warning(one_thread):
    X, Y, _ = spectrograms(8, 0, n_mels=16)
    labels = np.array(["owl", "wren"])[Y[:, :1] % 2]
    with pytest.warns(DataConversionWarning):
        cnn = AttentionCNNClassifier(**QUICK).fit(X, labels)
    assert cnn.classes_.tolist() == ["owl", "wren"] and not cnn.multilabel_


def test_partial_fit_trains_on_from_the_current_weights(one_thread):
    X, Y, names = spectrograms(12, 0, n_mels=16, long_recordings=True)
    labels = np.asarray(names)[Y.argmax(axis=1)]
    cnn = AttentionCNNClassifier(**{**QUICK, "max_epochs": 2})
    cnn.partial_fit(X[:6], labels[:6], classes=names)  # the first call may lack classes
    assert cnn.classes_.tolist() == sorted(names) and len(cnn.history_) == 2
    before = {key: tensor.clone() for key, tensor in cnn.module_.state_dict().items()}
    cnn.partial_fit(X[6:], labels[6:])
    assert len(cnn.history_) == 4
    assert not all(torch.equal(before[key], cnn.module_.state_dict()[key]) for key in before)
    with pytest.raises(ValueError, match=r"labels \['kite'\] that are not in classes_"):
        cnn.partial_fit(X[:2], ["kite", labels[0]])
    with pytest.raises(ValueError, match="expecting 16 features"):
        cnn.partial_fit(np.zeros((2, 1, 8, 40)), labels[:2])
    with pytest.raises(ValueError, match="fitted on labels"):
        cnn.partial_fit(X[:2], Y[:2])
    # partial_fit from the same state is reproducible, like fit.
    again = AttentionCNNClassifier(**{**QUICK, "max_epochs": 2})
    again.partial_fit(X[:6], labels[:6], classes=names).partial_fit(X[6:], labels[6:])
    twice = AttentionCNNClassifier(**{**QUICK, "max_epochs": 2})
    twice.partial_fit(X[:6], labels[:6], classes=names).partial_fit(X[6:], labels[6:])
    assert_same_weights(again, twice)
