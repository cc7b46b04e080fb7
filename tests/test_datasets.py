"""Tests of the synthetic song generator and the labelled-data loaders."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.multiclass import OneVsRestClassifier

from sklearn_birdaudio import (
    AudioError,
    MelSpectrogramTransformer,
    load_folder,
    load_manifest,
    make_birdsong,
)

# -- make_birdsong ----------------------------------------------------------------------


def test_shapes_types_and_names():
    X, Y, names = make_birdsong(n_samples=6, n_classes=4, duration=0.5, sample_rate=16000)
    assert X.shape == (6, 8000) and X.dtype == np.float32
    assert Y.shape == (6, 4) and set(np.unique(Y)) <= {0, 1}
    assert names == ["species_00", "species_01", "species_02", "species_03"]
    assert (Y.sum(axis=1) >= 1).all()
    assert np.abs(X).max() <= 1.0  # normalised, never clipped


def test_random_state_makes_it_reproducible():
    first = make_birdsong(n_samples=3, duration=0.5, random_state=7)
    again = make_birdsong(n_samples=3, duration=0.5, random_state=7)
    other = make_birdsong(n_samples=3, duration=0.5, random_state=8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_n_labels_sets_the_number_of_species_per_clip():
    _, single, _ = make_birdsong(n_samples=50, n_classes=5, duration=0.2, n_labels=1)
    assert (single.sum(axis=1) == 1).all()
    _, multi, _ = make_birdsong(
        n_samples=400, n_classes=6, duration=0.2, n_labels=2.0, random_state=0
    )
    assert multi.sum(axis=1).mean() == pytest.approx(2.0, abs=0.2)


def _dominant_mel_band(waveforms):
    spectrograms = MelSpectrogramTransformer(duration=None, top_db=None).fit_transform(waveforms)
    return int(np.argmax(np.nanmean(spectrograms[:, 0], axis=(0, 2))))


def test_a_species_sings_at_the_same_pitch_whatever_the_seed():
    # Species are fixed; only the draws change. Isolate species 3 in two independent sets.
    bands = []
    for seed in (1, 2):
        X, Y, _ = make_birdsong(
            n_samples=30, n_classes=5, n_labels=1, noise=0.0, distractors=0, random_state=seed
        )
        bands.append(_dominant_mel_band(X[Y[:, 3] == 1]))
    assert abs(bands[0] - bands[1]) <= 1
    X, Y, _ = make_birdsong(
        n_samples=30, n_classes=5, n_labels=1, noise=0.0, distractors=0, random_state=3
    )
    assert abs(_dominant_mel_band(X[Y[:, 0] == 1]) - bands[0]) > 3  # species differ


def test_learnable_but_not_trivial():
    """Pooled log-mel + logistic regression learns it, far from chance, but not perfectly."""
    mel = MelSpectrogramTransformer(n_mels=64)

    def pooled(X):
        spectrograms = mel.fit_transform(X)[:, 0]
        return np.concatenate([spectrograms.mean(-1), spectrograms.std(-1)], axis=1)

    X_train, Y_train, _ = make_birdsong(n_samples=150, n_classes=6, random_state=0)
    X_test, Y_test, _ = make_birdsong(n_samples=100, n_classes=6, random_state=1)
    model = OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000))
    scores = model.fit(pooled(X_train), Y_train).predict_proba(pooled(X_test))
    mean_ap = average_precision_score(Y_test, scores, average="macro")
    chance = Y_test.mean()
    assert chance < 0.4
    assert 0.6 < mean_ap < 0.98, mean_ap


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_classes": 2.5}, "n_classes"),
        ({"duration": 0}, "duration"),
        ({"n_labels": 0.5}, "n_labels"),
        ({"n_classes": 3, "n_labels": 4}, "n_labels"),
        ({"noise": -0.1}, "noise"),
        ({"distractors": np.nan}, "distractors"),
        ({"sample_rate": 1000}, "sample_rate"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        make_birdsong(**kwargs)


def test_as_frame_gives_named_columns():
    _, Y, names = make_birdsong(n_samples=3, n_classes=3, duration=0.2, as_frame=True)
    assert isinstance(Y, pd.DataFrame) and list(Y.columns) == names


# -- load_folder ------------------------------------------------------------------------


def test_load_folder_reads_class_subfolders(tmp_path, write_audio):
    for label, names in {"Turdus": ["b.wav", "a.flac"], "Parus": ["c.ogg"]}.items():
        (tmp_path / label).mkdir()
        for name in names:
            write_audio(f"{label}/{name}", np.zeros(800, np.float32), 8000)
    (tmp_path / "Parus" / "notes.txt").write_text("not audio")
    (tmp_path / "Turdus" / "night").mkdir()
    write_audio("Turdus/night/d.wav", np.zeros(800, np.float32), 8000)

    paths, Y, names = load_folder(tmp_path)
    assert names == ["Parus", "Turdus"]
    assert [p.split("/")[-1] for p in paths] == ["c.ogg", "a.flac", "b.wav", "d.wav"]
    np.testing.assert_array_equal(Y, [[1, 0], [0, 1], [0, 1], [0, 1]])
    _, frame, _ = load_folder(tmp_path, classes=["Turdus", "Parus"], as_frame=True)
    assert list(frame.columns) == ["Turdus", "Parus"] and frame["Turdus"].sum() == 3


def test_load_folder_errors(tmp_path):
    with pytest.raises(AudioError, match="not a folder"):
        load_folder(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(AudioError, match="no audio files"):
        load_folder(tmp_path)


# -- load_manifest ----------------------------------------------------------------------


@pytest.fixture
def manifest(tmp_path, write_audio):
    (tmp_path / "audio").mkdir()
    for name in ["a.wav", "b.wav", "c.wav"]:
        write_audio(f"audio/{name}", np.zeros(800, np.float32), 8000)
    table = pd.DataFrame(
        {
            "path": ["audio/a.wav", "audio/b.wav", "audio/c.wav"],
            "primary_label": ["Coereba flaveola", "Loxigilla portoricensis", "Coereba flaveola"],
            "secondary_labels": ["Loxigilla portoricensis; Tiaris olivaceus", "", ""],
            "split": ["train", "train", "test"],
        }
    )
    path = tmp_path / "labels.csv"
    table.to_csv(path, index=False)
    return path


def test_load_manifest_unions_primary_and_secondary_labels(manifest):
    paths, Y, names = load_manifest(manifest)
    assert names == ["Coereba flaveola", "Loxigilla portoricensis", "Tiaris olivaceus"]
    assert paths[0] == str(manifest.parent / "audio" / "a.wav")
    np.testing.assert_array_equal(Y, [[1, 1, 1], [0, 1, 0], [1, 0, 0]])


def test_load_manifest_split_and_training_classes(manifest):
    _, _, train_names = load_manifest(manifest, split="train")
    test_paths, Y_test, test_names = load_manifest(manifest, split="test", classes=train_names)
    assert test_names == train_names and len(test_paths) == 1
    np.testing.assert_array_equal(Y_test, [[1, 0, 0]])
    _, only_primary, names = load_manifest(manifest, label_columns="primary_label")
    assert names == ["Coereba flaveola", "Loxigilla portoricensis"]
    np.testing.assert_array_equal(only_primary, [[1, 0], [0, 1], [1, 0]])


def test_load_manifest_errors(manifest):
    (manifest.parent / "audio" / "b.wav").unlink()
    with pytest.raises(AudioError, match=r"1 listed audio file\(s\) not found.*b\.wav"):
        load_manifest(manifest)
    with pytest.raises(ValueError, match="missing column"):
        load_manifest(manifest, path_column="file")
    with pytest.raises(ValueError, match="no rows"):
        load_manifest(manifest, split="validation")
    with pytest.raises(ValueError, match="not in the given classes"):
        load_manifest(manifest, split="test", classes=["Tiaris olivaceus"])
    with pytest.raises(AudioError, match="manifest not found"):
        load_manifest(manifest.parent / "nope.csv")


def test_real_xeno_canto_manifest(shared_data):
    manifest = shared_data / "xc-puerto-rico" / "labels.csv"
    train_paths, Y_train, names = load_manifest(manifest, split="train")
    test_paths, Y_test, _ = load_manifest(manifest, split="test", classes=names)
    assert (len(train_paths), len(test_paths), len(names)) == (225, 71, 23)
    assert (Y_test.sum(axis=0) >= 1).all()  # the split is stratified by species
    assert Y_train.shape == (225, 23) and (Y_train.sum(axis=1) >= 1).all()
    assert (Y_train.sum(axis=1) > 1).sum() > 50  # secondary labels make it multi-label
