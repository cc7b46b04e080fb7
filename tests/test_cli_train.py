"""Tests of ``birdaudio train`` and ``evaluate``: splits, named models, early checks of the
options and the data layout, unreadable recordings, and what evaluate prints."""

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from sklearn.pipeline import Pipeline

from sklearn_birdaudio import load_model, make_birdsong
from sklearn_birdaudio.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, main

RATE = 16000
TINY = [
    "--sample-rate", str(RATE), "--max-epochs", "1", "--window-seconds", "1",
    "--batch-size", "8", "--set", "cnn__module__base_filters=4",
    "--set", "cnn__module__n_blocks=1", "--set", "cnn__module__n_heads=1",
    "--set", "mel__n_mels=16", "--set", "mel__fmax=8000", "--set", "mel__hop_length=512",
    "--set", "cnn__crops_per_recording=1",
]  # fmt: skip


class StopBeforeTraining(Exception):
    """Raised by the fit spy: the test has what it needs, no training is done."""


@pytest.fixture
def fit_spy(monkeypatch):
    """Record the model and the recordings ``Pipeline.fit`` is given, and stop there."""
    calls = []

    def fit(self, X, y=None, **params):
        calls.append({"model": self, "X": list(X), "Y": y})
        raise StopBeforeTraining

    monkeypatch.setattr(Pipeline, "fit", fit)
    return calls


@pytest.fixture
def no_audio_read(monkeypatch):
    """Fail the test if any audio is read: headers, waveforms or spectrograms."""
    from sklearn_birdaudio import audio, cli, datasets, features

    def refuse(*args, **kwargs):
        raise AssertionError("audio or data was read")

    monkeypatch.setattr(audio, "audio_info", refuse)
    monkeypatch.setattr(audio, "load_audio", refuse)
    monkeypatch.setattr(features, "load_audio", refuse)
    monkeypatch.setattr(features.MelSpectrogramTransformer, "transform", refuse)
    monkeypatch.setattr(datasets, "load_manifest", refuse)
    monkeypatch.setattr(datasets, "load_folder", refuse)
    assert cli  # the CLI imports these names from their modules when it runs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """12 synthetic one-species clips of 1 s in audio/, and labels.csv with a split column:
    8 train rows, 4 test rows."""
    root = tmp_path_factory.mktemp("dataset")
    (root / "audio").mkdir()
    X, Y, names = make_birdsong(
        12, n_classes=2, duration=1.0, sample_rate=RATE, n_labels=1.0, distractors=0.0,
        random_state=0,
    )  # fmt: skip
    rows = []
    for index, (waveform, labels) in enumerate(zip(X, Y, strict=True)):
        path = f"audio/clip{index:02d}.wav"
        soundfile.write(root / path, waveform, RATE)
        split = "train" if index < 8 else "test"
        rows.append({"path": path, "label": names[int(np.argmax(labels))], "split": split})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """A tiny recipe model trained on the train rows."""
    model = tmp_path_factory.mktemp("model") / "model.safetensors"
    arguments = [str(dataset / "labels.csv"), "--split", "train", "--out", str(model)]
    assert main(["train", *arguments, "-q", *TINY]) == EXIT_OK
    return model


def test_the_front_ends_hop_reaches_the_classifier_end_to_end(dataset, trained, capsys):
    """TINY trains with --set mel__hop_length=512 at 16 kHz: the classifier learns it, and the
    saved model's detect windows are those of the front end."""
    from sklearn_birdaudio import get_audio_spec, load_model

    model = load_model(trained)
    spec = get_audio_spec(model)
    assert (spec.sample_rate, spec.hop_length) == (RATE, 512)
    assert model.named_steps["cnn"].audio_spec_ == spec
    assert model.named_steps["cnn"]._window_frames == 1 + RATE // 512  # --window-seconds 1


def paths_of(dataset: Path, split: str) -> list[str]:
    table = pd.read_csv(dataset / "labels.csv")
    return [str(dataset / path) for path in table.loc[table["split"] == split, "path"]]


# -- 1. splits --------------------------------------------------------------------------


def test_split_train_fits_on_the_train_rows_only(dataset, fit_spy, tmp_path, capsys):
    manifest = str(dataset / "labels.csv")
    with pytest.raises(StopBeforeTraining):
        main(["train", manifest, "--split", "train", "--out", str(tmp_path / "m.st"), *TINY])
    assert fit_spy[0]["X"] == paths_of(dataset, "train")
    assert not set(fit_spy[0]["X"]) & set(paths_of(dataset, "test"))
    captured = capsys.readouterr()
    assert "Data: 8 recordings of 2 classes" in captured.out and "(split 'train')" in captured.out
    assert "warning" not in captured.err


def test_an_unused_split_column_is_warned_about(dataset, fit_spy, tmp_path, capsys):
    with pytest.raises(StopBeforeTraining):
        main(["train", str(dataset / "labels.csv"), "--out", str(tmp_path / "m.st"), *TINY])
    assert len(fit_spy[0]["X"]) == 12  # as asked: all rows, but said so
    assert (
        "labels.csv has a 'split' column (train: 8, test: 4); training on all 12 rows — pass "
        "--split train to hold the test rows out"
    ) in capsys.readouterr().err


def test_split_column_option_names_another_column(dataset, fit_spy, tmp_path):
    table = pd.read_csv(dataset / "labels.csv").rename(columns={"split": "fold"})
    manifest = tmp_path / "folds.csv"
    table.assign(path=[str(dataset / path) for path in table["path"]]).to_csv(manifest)
    with pytest.raises(StopBeforeTraining):
        main(["train", str(manifest), "--split", "test", "--split-column", "fold",
              "--out", str(tmp_path / "m.st"), *TINY])  # fmt: skip
    assert fit_spy[0]["X"] == paths_of(dataset, "test")


@pytest.mark.parametrize("layout", ["folder", "no split column", "unknown split"])
def test_a_split_the_data_cannot_apply_is_an_error(dataset, tmp_path, capsys, layout):
    if layout == "folder":
        data = tmp_path / "folders"
        (data / "wren").mkdir(parents=True)
        shutil.copy(dataset / "audio" / "clip00.wav", data / "wren")
        message, split = "is a folder of class sub-folders, which has no 'split' column", "train"
    elif layout == "no split column":
        data = tmp_path / "plain.csv"
        pd.read_csv(dataset / "labels.csv").drop(columns="split").to_csv(data, index=False)
        message, split = "has no 'split' column (--split-column); found ['path', 'label']", "train"
    else:
        data, split = dataset / "labels.csv", "valid"
        message = "no rows of {} have split == 'valid'; its 'split' values are ['test', 'train']"
        message = message.format(data)
    arguments = ["train", str(data), "--split", split, "--out", str(tmp_path / "m.st"), *TINY]
    assert main(arguments) == EXIT_ERROR
    assert message in capsys.readouterr().err


def test_evaluate_scores_only_the_split_asked_for(dataset, trained, capsys):
    manifest = str(dataset / "labels.csv")
    assert main(["evaluate", str(trained), manifest, "--split", "test", "-q"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "Data: 4 recordings" in captured.out and "warning" not in captured.err
    assert main(["evaluate", str(trained), manifest, "-q"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "Data: 12 recordings" in captured.out
    assert "scoring all 12 rows — pass --split test to score only the test rows" in captured.err


# -- 2. named models --------------------------------------------------------------------


def test_the_default_model_is_the_recipe_and_says_why(dataset, fit_spy, tmp_path, capsys):
    with pytest.raises(StopBeforeTraining):
        main(["train", str(dataset / "labels.csv"), "--split", "train",
              "--out", str(tmp_path / "m.st"), "--sample-rate", str(RATE)])  # fmt: skip
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("Model: recipe (the default; --model to choose)")
    assert "0.623" in first_line
    cnn = fit_spy[0]["model"].named_steps["cnn"]
    assert cnn.module__subtract_band_median and cnn.crops_per_recording == 6
    assert cnn.max_epochs == 30 and cnn.lr == 2e-3  # the recipe's, not overridden
    assert fit_spy[0]["model"].named_steps["mel"].sample_rate == RATE


@pytest.mark.parametrize("name", ["cnn-defaults", "cnn"])
def test_cnn_defaults_and_its_deprecated_alias(dataset, fit_spy, tmp_path, capsys, name):
    with pytest.raises(StopBeforeTraining):
        main(["train", str(dataset / "labels.csv"), "--split", "train", "--model", name,
              "--out", str(tmp_path / "m.st")])  # fmt: skip
    captured = capsys.readouterr()
    assert "Model: cnn-defaults (chosen with --model)" in captured.out
    assert ("--model cnn is now called cnn-defaults" in captured.err) == (name == "cnn")
    cnn = fit_spy[0]["model"].named_steps["cnn"]
    assert "module__base_filters" not in cnn.get_params()  # the module's own default: 64
    assert not getattr(cnn, "module__subtract_band_median", False)
    assert cnn.validation_fraction == 0.2
    assert cnn.max_epochs == 50 and cnn.lr == 1e-3


# -- 3. early validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-epochs", "0"], "--max-epochs 0: expected an integer >= 1"),
        (["--max-epochs", "-2"], "--max-epochs -2: expected an integer >= 1"),
        (["--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
        (["--lr", "0"], "--lr 0: expected a number > 0"),
        (["--lr", "-0.1"], "--lr -0.1: expected a number > 0"),
        (["--val-fraction", "1"], "--val-fraction 1: expected in [0, 1)"),
        (["--val-fraction", "-0.1"], "--val-fraction -0.1: expected in [0, 1)"),
        (["--window-seconds", "0"], "--window-seconds 0: expected a number > 0"),
        (["--set", "cnn__no_such=1"], "--set cnn__no_such=1: no parameter 'no_such' in Attent"),
        (["--set", "mel__n_mel=8"], "--set mel__n_mel=8: no parameter 'n_mel' in MelSpectrog"),
        (
            ["--set", "cnn__hop_length=256"],
            "--set cnn__hop_length=256: the classifier has no "
            "hop_length of its own any more: it learns it from the front end's spectrograms, "
            "here mel__hop_length=512. Set mel__hop_length instead.",
        ),
    ],
)
def test_bad_options_are_refused_before_any_audio_is_read(
    dataset, no_audio_read, tmp_path, capsys, arguments, message
):
    out = tmp_path / "m.safetensors"
    start = time.perf_counter()
    assert main(["train", str(dataset / "labels.csv"), "--out", str(out), *arguments]) == 1
    assert time.perf_counter() - start < 1.0
    assert message in capsys.readouterr().err
    assert not out.exists()


# -- 4. layout checks -------------------------------------------------------------------


def test_a_dataset_folder_is_read_through_its_labels_csv(dataset, fit_spy, tmp_path, capsys):
    with pytest.raises(StopBeforeTraining):
        main(["train", str(dataset), "--split", "train", "--out", str(tmp_path / "m.st")])
    assert f"{dataset} holds the manifest labels.csv" in capsys.readouterr().out
    assert fit_spy[0]["X"] == paths_of(dataset, "train")
    assert list(fit_spy[0]["Y"].columns) == ["species_00", "species_01"]  # not ["audio"]


def test_a_folder_whose_only_class_is_audio_is_refused(dataset, tmp_path, capsys):
    shutil.copytree(dataset / "audio", tmp_path / "recordings" / "audio")
    arguments = ["train", str(tmp_path / "recordings"), "--out", str(tmp_path / "m.st")]
    assert main(arguments) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "its only class sub-folder is 'audio'" in err and "CSV manifest" in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("nonexistent", None, "{data}: not found"),
        ("empty.csv", "", "{data}: the file is empty; expected a CSV manifest"),
        ("nopath.csv", "file,label\na.wav,wren\n", "{data}: no 'path' column"),
    ],
)
def test_data_errors_name_the_file(no_audio_read, tmp_path, capsys, name, content, message):
    data = tmp_path / name
    if content is not None:
        data.write_text(content)
    assert main(["train", str(data), "--out", str(tmp_path / "m.st")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert message.format(data=data) in err
    if name == "nopath.csv":
        assert "found ['file', 'label']" in err


def test_a_table_of_events_is_refused_as_a_manifest(no_audio_read, tmp_path, capsys):
    """A soundscape's annotations (path, label, start, end) list each recording once per
    event: read as a manifest, their times were dropped and recordings repeated."""
    data = tmp_path / "labels.csv"
    data.write_text("path,label,start,end\naudio/a.mp3,wren,0,5\naudio/a.mp3,tody,5,10\n")
    for command in (["train", str(data), "--out", str(tmp_path / "m.st")],
                    ["train", str(tmp_path), "--out", str(tmp_path / "m.st")]):  # fmt: skip
        assert main(command) == EXIT_ERROR
        err = capsys.readouterr().err
        assert f"{data}: has the time columns ['start', 'end']: a table of events" in err


def test_a_recording_on_two_rows_is_refused(dataset, tmp_path, capsys):
    rows = pd.read_csv(dataset / "labels.csv")
    repeated = pd.concat([rows, rows.iloc[[0]].assign(label="other")])
    manifest = dataset / "repeated.csv"  # beside audio/, which its paths are relative to
    repeated.to_csv(manifest, index=False)
    try:
        assert main(["train", str(manifest), "--out", str(tmp_path / "m.st")]) == EXIT_ERROR
    finally:
        manifest.unlink()
    err = capsys.readouterr().err
    assert "1 recording(s) listed on more than one row" in err and "clip00.wav" in err


# -- 5. unreadable recordings -----------------------------------------------------------


@pytest.fixture
def with_broken(dataset, data_dir, tmp_path):
    """The train rows plus an unreadable file, a truncated one, and one whose header reads
    but whose samples do not (a NaN: found only when the spectrograms are computed)."""
    table = pd.read_csv(dataset / "labels.csv")
    table = table[table["split"] == "train"].assign(path=lambda t: str(dataset) + "/" + t["path"])
    for broken in ("truncated.wav", "not_audio.wav"):
        shutil.copy(data_dir / broken, tmp_path / broken)
    waveform = np.full(RATE, 0.1, dtype="float32")
    waveform[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", waveform, RATE, subtype="FLOAT")
    broken = [str(tmp_path / name) for name in ("truncated.wav", "not_audio.wav", "nan.wav")]
    rows = pd.DataFrame({"path": broken, "label": "species_00", "split": "train"})
    manifest = tmp_path / "broken.csv"
    pd.concat([table, rows]).to_csv(manifest, index=False)
    return manifest, broken


def test_train_skips_unreadable_recordings_and_exits_3(with_broken, dataset, tmp_path, capsys):
    manifest, broken = with_broken
    out = tmp_path / "model.safetensors"
    assert main(["train", str(manifest), "--out", str(out), "-q", *TINY]) == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert "3 recording(s) could not be read and were left out of training" in err
    for file in broken:
        assert f"  {file}: " in err
    assert "truncated" in err and "NaN" in err
    assert load_model(out).classes_.tolist() == ["species_00", "species_01"]


def test_strict_aborts_on_an_unreadable_recording(with_broken, tmp_path, capsys):
    manifest, broken = with_broken
    out = tmp_path / "model.safetensors"
    arguments = ["train", str(manifest), "--out", str(out), "--strict", "-q", *TINY]
    assert main(arguments) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "2 recording(s) cannot be read (--strict)" in err
    assert broken[0] in err and broken[1] in err
    assert not out.exists()


# -- 6. evaluate ------------------------------------------------------------------------


def test_evaluate_shows_progress_top1_and_explains_padded_cmap(dataset, trained, capsys):
    manifest = str(dataset / "labels.csv")
    assert main(["evaluate", str(trained), manifest, "--split", "test"]) == EXIT_OK
    captured = capsys.readouterr()
    top1 = float(captured.out.split("top-1 accuracy")[1].split()[0])
    assert top1 in (0.0, 0.25, 0.5, 0.75, 1.0)  # 4 recordings
    assert "padded cmAP: BirdCLEF's padded class-wise mAP" in captured.out
    assert "5 rows" in captured.out
    assert "log-mel" in captured.err  # the progress bar
    assert main(["evaluate", str(trained), manifest, "--split", "test", "-q"]) == EXIT_OK
    assert "log-mel" not in capsys.readouterr().err


def test_evaluate_top1_uses_the_primary_label(dataset, trained, tmp_path, capsys):
    """A secondary label that the model ranks first does not count as a top-1 hit."""
    model = load_model(trained)
    test = paths_of(dataset, "test")
    scores = model.predict_proba(test)
    best = [model.classes_[index] for index in np.argmax(scores, axis=1)]
    other = [model.classes_[1 - index] for index in np.argmax(scores, axis=1)]
    manifest = tmp_path / "primary.csv"
    # Every recording's primary label is the class the model ranks second, its secondary
    # label the one it ranks first: top-1 is 0 on the primary species.
    pd.DataFrame({"path": test, "primary_label": other, "secondary_labels": best}).to_csv(
        manifest, index=False
    )
    assert main(["evaluate", str(trained), str(manifest), "-q"]) == EXIT_OK
    out = capsys.readouterr().out
    assert float(out.split("top-1 accuracy")[1].split()[0]) == 0.0
    assert "their primary species" in out


def test_evaluate_skips_unreadable_recordings_and_exits_3(with_broken, trained, tmp_path, capsys):
    """The 3 broken files are listed, and the scores are those of the 8 readable ones."""
    manifest, broken = with_broken
    assert main(["evaluate", str(trained), str(manifest), "-q"]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert "3 recording(s) could not be read and were left out of the scores" in captured.err
    for file in broken:
        assert f"  {file}: " in captured.err
    readable = pd.read_csv(manifest).iloc[:8]
    readable.to_csv(tmp_path / "readable.csv", index=False)
    assert main(["evaluate", str(trained), str(tmp_path / "readable.csv"), "-q"]) == EXIT_OK
    assert (
        capsys.readouterr().out.split("padded cmAP:")[0].splitlines()[1:]
        == (captured.out.split("padded cmAP:")[0].splitlines()[1:])
    )  # the same scores, line for line after the "Data:" line


def test_evaluate_strict_aborts_on_an_unreadable_recording(with_broken, trained, capsys):
    manifest, broken = with_broken
    assert main(["evaluate", str(trained), str(manifest), "--strict", "-q"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "2 recording(s) cannot be read (--strict)" in err and broken[1] in err
