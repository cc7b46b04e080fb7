"""Tests of save_model/load_model: exact round trips, no pickle, refusal of bad files."""

import copy
import itertools
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_array_equal
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from skorch.callbacks import EpochScoring
from test_classifier import songs, tiny_pipeline

from sklearn_birdaudio import (
    DroppedParameterWarning,
    MelSpectrogramTransformer,
    VotingClassifier,
    detect,
    load_model,
    model_saved_at,
    save_model,
)
from sklearn_birdaudio.augment import SpecAugment

FAST = {"max_epochs": 2}


def public_params(model) -> dict:
    """``get_params(deep=True)`` as reprs, without estimators and skorch's private entries."""
    return {
        key: repr(value)
        for key, value in model.get_params(deep=True).items()
        if not hasattr(value, "get_params")
        and key.split("__")[-1] not in ("steps", "estimators")
        and not any(part.startswith("_") for part in key.split("__"))
    }


def file_parts(path) -> tuple[dict, bytes]:
    """A safetensors file's header (model description parsed) and its tensor bytes.

    The save time is left out: two saves a moment apart may fall in different seconds.
    """
    content = path.read_bytes()
    header_size = int.from_bytes(content[:8], "little")
    header = json.loads(content[8 : 8 + header_size])
    # The metadata's key order varies from save to save, so compare it parsed.
    header["__metadata__"]["model"] = json.loads(header["__metadata__"]["model"])
    assert model_saved_at(path) is not None  # a well-formed time, then dropped
    del header["__metadata__"]["saved_at"]
    return header, content[8 + header_size :]


def round_trip(model, folder):
    path = save_model(model, folder / "model.safetensors")
    return load_model(path), path


@pytest.fixture(scope="module")
def data():
    X_train, Y_train, _ = songs(24, 0, as_frame=True)
    X_test, _, _ = songs(8, 1)
    return X_train, Y_train, X_test


@pytest.fixture(scope="module")
def multilabel(data, tmp_path_factory):
    X_train, Y_train, _ = data
    model = tiny_pipeline(**FAST).fit(X_train, Y_train)
    rng_state = torch.get_rng_state()
    loaded, path = round_trip(model, tmp_path_factory.mktemp("multilabel"))
    assert torch.equal(torch.get_rng_state(), rng_state)  # loading draws no random numbers
    return model, loaded, path


def test_multilabel_pipeline_round_trip_is_exact(multilabel, data):
    model, loaded, _ = multilabel
    X_test = data[2]
    assert isinstance(loaded, Pipeline) and list(loaded.named_steps) == ["mel", "cnn"]
    assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert_array_equal(loaded.predict(X_test), model.predict(X_test))
    net, original = loaded.named_steps["cnn"], model.named_steps["cnn"]
    assert net.classes_.tolist() == original.classes_.tolist() == list(data[1].columns)
    assert net.multilabel_ is True and net.n_mels_ == original.n_mels_ == 32
    assert public_params(loaded) == public_params(model)
    for key in ("train_loss", "valid_loss", "valid_mAP"):
        assert net.history_[:, key] == original.history_[:, key]


def test_loaded_model_keeps_working(multilabel, data, tmp_path):
    model, loaded, path = multilabel
    recording = np.concatenate(data[2][:4])  # 4 s
    expected = detect(model, recording, input_sample_rate=16000, min_confidence=0, verbose=0)
    found = detect(loaded, recording, input_sample_rate=16000, min_confidence=0, verbose=0)
    assert len(found) == 4 * 4  # every class in every 1-s window
    pd.testing.assert_frame_equal(found, expected)
    # Saving the loaded model again writes the same content: nothing was lost or changed.
    again = save_model(loaded, tmp_path / "again.safetensors")
    assert file_parts(again) == file_parts(path)


def test_multiclass_round_trip_with_string_labels(data, tmp_path):
    X_train, Y_train, X_test = data
    labels = np.asarray(Y_train.columns)[np.argmax(Y_train.to_numpy(), axis=1)]
    model = tiny_pipeline(**FAST).fit(X_train, labels)
    loaded, _ = round_trip(model, tmp_path)
    assert loaded.named_steps["cnn"].multilabel_ is False
    assert loaded.classes_.dtype == model.classes_.dtype
    assert_array_equal(loaded.classes_, model.classes_)
    assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert_array_equal(loaded.predict(X_test), model.predict(X_test))


def test_voting_ensemble_round_trip(data, tmp_path):
    X_train, Y_train, X_test = data
    labels = np.argmax(Y_train.to_numpy(), axis=1)  # integer labels
    model = VotingClassifier(
        [("a", tiny_pipeline(**FAST)), ("b", tiny_pipeline(random_state=1, **FAST))],
        weights=[2.0, 1.0],
    ).fit(X_train, labels)
    loaded, _ = round_trip(model, tmp_path)
    assert isinstance(loaded, VotingClassifier) and list(loaded.named_estimators_) == ["a", "b"]
    assert loaded.weights == [2.0, 1.0] and loaded.voting == "soft"
    assert public_params(loaded) == public_params(model)
    assert not hasattr(loaded.estimators[0][1].named_steps["cnn"], "module_")  # templates
    assert loaded.classes_.tolist() == model.classes_.tolist() == [0, 1, 2, 3]
    assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert_array_equal(loaded.predict(X_test), model.predict(X_test))


def test_the_file_is_a_safetensors_header_and_raw_tensors_only(multilabel):
    _, _, path = multilabel
    content = path.read_bytes()
    header_size = int.from_bytes(content[:8], "little")
    header = json.loads(content[8 : 8 + header_size])
    # Every byte is the JSON header or tensor data: there is no room for a pickle.
    ends = sorted(entry["data_offsets"] for key, entry in header.items() if key != "__metadata__")
    assert ends[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(ends))
    assert 8 + header_size + ends[-1][1] == len(content)
    with safe_open(str(path), framework="pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    assert "net0/input_norm.running_mean" in keys  # batch-norm statistics are saved
    description = json.loads(metadata["model"])
    assert description["$estimator"] == "sklearn.pipeline.Pipeline"
    assert metadata["format"] == "sklearn-birdaudio-model" and metadata["format_version"] == "1"


def rewrite(path, target, *, model=None, **metadata):
    """Copy the model at ``path`` to ``target`` with its metadata changed."""
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        new = {**handle.metadata(), **metadata}
    if model is not None:
        new["model"] = model(new["model"])
    save_file(tensors, str(target), metadata=new)
    return target


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"sklearn_birdaudio.AttentionCNN"', '"os.system"', "names class 'os.system'"),
        (
            '"sklearn_birdaudio.MelSpectrogramTransformer"',
            '"birdaudio_sentinel.Evil"',
            "names estimator 'birdaudio_sentinel.Evil'",
        ),
        ('"threshold": 0.5', '"threshold": 7', "cnn__threshold=7 is outside its domain"),
        ('"crop": "start"', '"crop": "../x"', "mel__crop='../x' is outside its domain"),
        ('"$tuple"', '"$eval"', "unknown tag '$eval'"),
    ],
)
def test_a_tampered_description_is_refused_without_running_anything(
    multilabel, tmp_path, monkeypatch, old, new, message
):
    _, _, path = multilabel
    with safe_open(str(path), framework="pt") as handle:
        assert old in handle.metadata()["model"]
    tampered = rewrite(path, tmp_path / "tampered.safetensors", model=lambda t: t.replace(old, new))
    monkeypatch.setattr(os, "system", lambda *args: pytest.fail("os.system was called"))
    with pytest.raises(ValueError, match="invalid model description") as error:
        load_model(tampered)
    assert str(tampered) in str(error.value) and message in str(error.value)
    assert "birdaudio_sentinel" not in sys.modules


def truncated(path, target):
    target.write_bytes(path.read_bytes()[:-100])
    return target


def text(path, target):
    target.write_text("model = 'wren'\n")
    return target


def pickled(path, target):
    import joblib

    joblib.dump({"not": "a model"}, target)
    return target


def foreign(path, target):
    save_file({"weight": torch.zeros(3)}, str(target))
    return target


def newer(path, target):
    return rewrite(path, target, format_version="2")


def broken_weights(path, target):
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    tensors["net0/head.weight"] = tensors["net0/head.weight"][:2]
    save_file(tensors, str(target), metadata=metadata)
    return target


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (truncated, "not a model file"),
        (text, "not a model file"),
        (pickled, "is a joblib/pickle file, refused"),
        (foreign, "without a sklearn-birdaudio model description"),
        (newer, "format version '2'"),
        (broken_weights, "the weights do not fit the network"),
    ],
)
def test_a_file_that_is_not_a_valid_model_is_a_value_error(multilabel, tmp_path, make, message):
    _, _, path = multilabel
    target = make(path, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match=r"expected|upgrade|trust") as error:
        load_model(target)
    assert str(target) in str(error.value) and message in str(error.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        load_model(tmp_path / "nope.safetensors")


def test_unsupported_models_are_a_type_error(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(TypeError, match=r"KNeighborsClassifier.*joblib"):
        save_model(KNeighborsClassifier(3).fit(X, y), tmp_path / "m.safetensors")
    pipeline = Pipeline([("mel", MelSpectrogramTransformer()), ("knn", KNeighborsClassifier())])
    pipeline.named_steps["knn"].fit(X, y)
    with pytest.raises(TypeError, match=r"KNeighborsClassifier \(at knn\)"):
        save_model(pipeline, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_scikit_learn_linear_models_round_trip_exactly(tmp_path):
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0.3, X[:, 2] + X[:, 3] > 0]).astype(int)
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.5)))
    model.fit(X, Y)
    loaded = load_model(save_model(model, tmp_path / "linear.safetensors"))
    assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert_array_equal(loaded[-1].estimators_[1].coef_, model[-1].estimators_[1].coef_)
    assert loaded[-1].estimators_[1].coef_.shape == (1, 5)


def test_unfitted_models_are_not_fitted_errors(tmp_path):
    with pytest.raises(NotFittedError):
        save_model(tiny_pipeline(), tmp_path / "m.safetensors")
    with pytest.raises(NotFittedError):
        save_model(VotingClassifier([("a", tiny_pipeline())]), tmp_path / "m.safetensors")


def test_parameters_that_cannot_be_stored(multilabel, data, tmp_path):
    model = copy.deepcopy(multilabel[0])
    model.set_params(cnn__predict_nonlinearity=lambda logits: logits)
    with pytest.raises(TypeError, match="cnn__predict_nonlinearity"):
        save_model(model, tmp_path / "m.safetensors")
    # Training-only parameters and caches are left out, with a warning.
    model = copy.deepcopy(multilabel[0])
    scoring = EpochScoring("accuracy", name="accuracy")
    model.set_params(
        cnn__callbacks=[("accuracy", scoring)],
        cnn__augment=[SpecAugment()],
        mel__memory=tmp_path / "cache",
    )
    with pytest.warns(UserWarning) as record:
        loaded, _ = round_trip(model, tmp_path)
    messages = sorted(str(warning.message) for warning in record)
    assert len(messages) == 3
    assert messages[0].startswith("cnn__augment is not saved")
    assert messages[1].startswith("cnn__callbacks is not saved")
    assert messages[2].startswith("mel__memory=PosixPath(")
    assert loaded.named_steps["mel"].memory is None
    assert loaded.named_steps["cnn"].callbacks is None
    assert loaded.named_steps["cnn"].augment is None
    assert_array_equal(loaded.predict_proba(data[2]), model.predict_proba(data[2]))


def test_the_default_augmentation_is_saved_by_name(multilabel, tmp_path):
    model = copy.deepcopy(multilabel[0]).set_params(cnn__augment="default")
    loaded, _ = round_trip(model, tmp_path)
    assert loaded.named_steps["cnn"].augment == "default"


def test_a_device_in_the_file_is_not_restored(multilabel, data, tmp_path):
    model, _, path = multilabel
    for device in ("cuda", "meta", "bogus:9"):
        moved = rewrite(
            path,
            tmp_path / "device.safetensors",
            model=lambda text, device=device: text.replace(
                '"inference": "fused"', f'"inference": "fused", "device": "{device}"'
            ),
        )
        with pytest.warns(DroppedParameterWarning, match="cnn__device") as record:
            loaded = load_model(moved)
        assert record[0].message.dropped == {"cnn__device": (device, "a device")}
        assert loaded.named_steps["cnn"].device == "auto"
        assert_array_equal(loaded.predict_proba(data[2]), model.predict_proba(data[2]))
