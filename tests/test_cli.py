"""Tests of the ``birdaudio`` command: train → predict → evaluate → info → plot."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import soundfile

from sklearn_birdaudio import load_model, make_birdsong, read_detections
from sklearn_birdaudio.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, main

RATE = 16000
TINY = [
    "--sample-rate", str(RATE), "--max-epochs", "3", "--window-seconds", "1",
    "--set", "cnn__module__base_filters=8", "--set", "cnn__module__n_blocks=2",
    "--set", "cnn__module__n_heads=2", "--set", "mel__n_mels=32", "--set", "mel__fmax=8000",
    "--set", "mel__hop_length=256", "--set", "cnn__hop_length=256", "--set", "cnn__lr=0.003",
]  # fmt: skip


def write_class_folders(root: Path, n_samples: int, random_state: int) -> list[Path]:
    """Synthetic songs written as root/<species>/<clip>.wav (one species per clip)."""
    X, Y, names = make_birdsong(
        n_samples, n_classes=3, duration=2.0, sample_rate=RATE, n_labels=1.0,
        distractors=0.0, random_state=random_state,
    )  # fmt: skip
    paths = []
    for index, (waveform, labels) in enumerate(zip(X, Y, strict=True)):
        folder = root / names[int(np.argmax(labels))]
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"clip{index:03d}.wav")
        soundfile.write(paths[-1], waveform, RATE)
    return paths


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, data_dir):
    """A trained model, a labelled test folder and a field folder with two broken files."""
    root = tmp_path_factory.mktemp("cli")
    write_class_folders(root / "train", 60, random_state=0)
    test_paths = write_class_folders(root / "test", 18, random_state=1)
    field = root / "field"
    field.mkdir()
    long = np.concatenate([soundfile.read(path, dtype="float32")[0] for path in test_paths[:6]])
    soundfile.write(field / "dawn.wav", long, RATE)
    soundfile.write(field / "dusk.flac", long[::-1].copy(), RATE)
    for broken in ("truncated.wav", "not_audio.wav"):
        shutil.copy(data_dir / broken, field / broken)
    model = root / "model.safetensors"
    # cnn-defaults (the default before the recipe): a validation split, so info has valid_mAP
    arguments = ["--model", "cnn-defaults", "--out", str(model), "-q", *TINY]
    assert main(["train", str(root / "train"), *arguments]) == EXIT_OK
    return root, model


def test_train_saves_a_model_that_info_describes(workspace, capsys):
    _, model = workspace
    assert main(["info", str(model)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Classes (3): species_00, species_01, species_02" in out
    assert "base_filters=8" in out  # the network's settings, in its summary line
    assert "Training: 3 epochs" in out and "best validation mAP" in out
    assert "torch" in out and "scikit-learn" in out


def test_train_saves_the_safe_format_by_default(workspace):
    _, model = workspace
    # A safetensors file: an 8-byte little-endian length, then that many bytes of JSON.
    # (Its first byte is the length's low byte: it may be 0x80, like a pickle's PROTO.)
    data = model.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert isinstance(header, dict) and header
    loaded = load_model(model)  # refuses anything but the safe format
    assert loaded.classes_.tolist() == ["species_00", "species_01", "species_02"]


@pytest.mark.parametrize("name", ["model.joblib", "model.bin"])
def test_a_pickled_model_needs_allow_pickle(workspace, tmp_path, capsys, name):
    _, model = workspace
    pickled = tmp_path / name
    joblib.dump(load_model(model), pickled)
    assert main(["info", str(pickled)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"{pickled}: is a joblib/pickle file, refused" in err
    assert "runs any code" in err and "--allow-pickle" in err
    assert main(["info", str(pickled), "--allow-pickle"]) == EXIT_OK
    assert "Classes (3): species_00, species_01, species_02" in capsys.readouterr().out


def test_a_pickle_suffix_trains_a_joblib_file_with_a_warning(workspace, tmp_path, capsys):
    root, _ = workspace
    out = tmp_path / "model.pkl"
    arguments = ["--max-epochs", "1", "--val-fraction", "0"]
    code = main(["train", str(root / "test"), "--out", str(out), "-q", *TINY, *arguments])
    assert code == EXIT_OK
    assert "is a joblib (pickle) file: loading it runs any code" in capsys.readouterr().err
    assert out.read_bytes().startswith(b"\x80")  # the PROTO opcode: a pickle
    assert main(["info", str(out)]) == EXIT_ERROR
    assert main(["info", str(out), "--allow-pickle"]) == EXIT_OK


def test_predict_writes_tables_and_reports_broken_files(workspace, tmp_path, capsys):
    root, model = workspace
    out = tmp_path / "tables"
    code = main(["predict", str(model), str(root / "field"), "--out", str(out), "-q"])
    assert code == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert "truncated.wav" in captured.err and "not_audio.wav" in captured.err
    tables = sorted(path.name for path in out.iterdir())
    assert tables == [".birdaudio-records", "dawn.birdaudio.csv", "dusk.birdaudio.csv"]
    dawn = read_detections(out / "dawn.birdaudio.csv")
    assert len(dawn) > 0 and set(dawn["file"]) == {str(root / "field" / "dawn.wav")}
    assert (dawn["confidence"] >= 0.1).all()
    assert np.allclose(np.unique(dawn["start_s"]), np.arange(12.0))  # 1-s windows over 12 s


def test_predict_combined_raven_table(workspace, tmp_path):
    root, model = workspace
    out = tmp_path / "all.txt"
    files = [str(root / "field" / "dawn.wav"), str(root / "field" / "dusk.flac")]
    code = main(["predict", str(model), *files, "--out", str(out), "--format", "raven", "-q"])
    assert code == EXIT_OK
    header = out.read_text().splitlines()[0].split("\t")
    assert header[:4] == ["Selection", "View", "Channel", "Begin Time (s)"]
    back = read_detections(out)
    assert set(back["file"]) == set(files)


def test_resume_scores_only_files_without_a_table(workspace, tmp_path, capsys):
    root, model = workspace
    out = tmp_path / "tables"
    command = ["predict", str(model), str(root / "field"), "--out", str(out), "-q"]
    main(command)
    dusk = out / "dusk.birdaudio.csv"
    dawn = out / "dawn.birdaudio.csv"
    dusk_text, dawn_time = dusk.read_text(), dawn.stat().st_mtime_ns
    dusk.unlink()
    capsys.readouterr()
    # The broken files have no table: they are tried again, and reported again.
    assert main([*command, "--resume"]) == EXIT_PARTIAL
    out_text = capsys.readouterr().out
    assert "Resuming: 1 of 4 file(s) complete, skipped; 3 to score (3 no table)." in out_text
    assert dusk.read_text() == dusk_text
    assert dawn.stat().st_mtime_ns == dawn_time  # not rewritten


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_thresholds_file_overrides_min_confidence(workspace, tmp_path, suffix):
    root, model = workspace
    dawn = str(root / "field" / "dawn.wav")
    thresholds = tmp_path / f"thresholds{suffix}"
    if suffix == ".json":
        thresholds.write_text(json.dumps({"species_00": 1.0}))
    else:
        thresholds.write_text("species,threshold\nspecies_00,1.0\n")
    plain, strict = tmp_path / "plain.csv", tmp_path / "strict.csv"
    main(["predict", str(model), dawn, "--out", str(plain), "--min-confidence", "0", "-q"])
    main(["predict", str(model), dawn, "--out", str(strict), "--min-confidence", "0",
          "--thresholds", str(thresholds), "-q"])  # fmt: skip
    plain_rows, strict_rows = read_detections(plain), read_detections(strict)
    assert (plain_rows["label"] == "species_00").sum() == 12  # every window at threshold 0
    assert (strict_rows["label"] == "species_00").sum() == 0
    others = plain_rows[plain_rows["label"] != "species_00"].reset_index(drop=True)
    pd.testing.assert_frame_equal(strict_rows, others)


def test_evaluate_prints_metrics_and_saves_pr_curves(workspace, tmp_path, capsys):
    root, model = workspace
    figure = tmp_path / "pr.png"
    code = main(["evaluate", str(model), str(root / "test"), "--pr-curve", str(figure), "-q"])
    assert code == EXIT_OK
    out = capsys.readouterr().out
    macro = float(out.split("macro mAP")[1].split()[0])
    assert 0.0 <= macro <= 1.0
    for name in ("micro mAP", "padded cmAP", "micro F1 @ 0.5", "species_02"):
        assert name in out
    assert figure.stat().st_size > 5000


def test_evaluate_reads_a_csv_manifest(workspace, tmp_path, capsys):
    root, model = workspace
    paths = sorted((root / "test").rglob("*.wav"))
    manifest = tmp_path / "labels.csv"
    pd.DataFrame(
        {"path": [str(path) for path in paths], "labels": [path.parent.name for path in paths]}
    ).to_csv(manifest, index=False)
    assert main(["evaluate", str(model), str(manifest), "-q"]) == EXIT_OK
    assert f"Data: {len(paths)} recordings" in capsys.readouterr().out


def test_plot_draws_the_spectrogram_with_detections(workspace, tmp_path):
    root, model = workspace
    figure = tmp_path / "dawn.png"
    audio = str(root / "field" / "dawn.wav")
    assert main(["plot", audio, "--model", str(model), "--out", str(figure)]) == EXIT_OK
    assert figure.stat().st_size > 10000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["info", "{not_audio}"], "not a model file"),
        (["info", "{missing}"], "model file not found"),
        (["info", "{json}"], "m.json: not a model file: not in the safetensors format"),
        (["plot", "{field}", "--out", "{tmp}/p.png"], "field: a folder; expected one audio file"),
        (["plot", "{missing}", "--out", "{tmp}/p.png"], "nope.joblib: not found; expected an"),
        (["predict", "{model}", "{tmp}", "--out", "{tmp}/t"], "no audio files in it; expected"),
        (["train", "{missing}", "--out", "{tmp}/m.joblib"], "nope.joblib: not found"),
        (["predict", "{model}", "{field}", "--out", "{tmp}/a.txt", "--resume"], "--resume"),
        (["predict", "{model}", "{field}", "--out", "{tmp}/t", "--thresholds", "{th}"], "wren"),
    ],
)
def test_errors_exit_1_with_a_message(workspace, data_dir, tmp_path, capsys, arguments, message):
    root, model = workspace
    thresholds = tmp_path / "th.json"
    thresholds.write_text(json.dumps({"wren": 0.5}))
    values = {
        "not_audio": data_dir / "not_audio.wav", "missing": tmp_path / "nope.joblib",
        "model": model, "field": root / "field", "tmp": tmp_path, "th": thresholds,
        "json": tmp_path / "m.json",
    }  # fmt: skip
    values["json"].write_text(json.dumps({"model": "not really"}))
    assert main([argument.format(**values) for argument in arguments]) == EXIT_ERROR
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("birdaudio ")]
    assert error_lines and message in error_lines[-1]


def test_invalid_command_line_exits_2():
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--format", "xml"])
    assert exit_info.value.code == 2


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "birdaudio"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in ("train", "predict", "evaluate", "info", "plot"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_a_killed_predict_run_resumes_to_the_uninterrupted_output(workspace, tmp_path):
    """SIGKILL a real `birdaudio predict` midway; --resume then gives the same tables."""
    import signal
    import time

    root, model = workspace
    field = tmp_path / "many"
    field.mkdir()
    dawn, _ = soundfile.read(root / "field" / "dawn.wav", dtype="float32")
    for index in range(12):
        soundfile.write(field / f"rec{index:02d}.wav", np.tile(np.roll(dawn, 997 * index), 5), RATE)
    script = Path(sys.executable).parent / "birdaudio"
    complete, resumed = tmp_path / "complete", tmp_path / "resumed"
    # With the default --jobs -1 the kill may fall inside a write, leaving its hidden
    # temporary file (.NAME.<hex>.tmp): --resume removes it (the folders compare below).
    command = [str(script), "predict", str(model), str(field), "-q"]
    assert subprocess.run([*command, "--out", str(complete)], check=False).returncode == 0

    process = subprocess.Popen([*command, "--out", str(resumed)])
    records = resumed / ".birdaudio-records"  # a table's record is written after it
    deadline = time.monotonic() + 120
    while not list(records.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list(records.glob("*.json")))
    assert 1 <= done < 12, done  # killed midway, after some tables were written

    result = subprocess.run(
        [*command, "--out", str(resumed), "--resume"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert f"Resuming: {done} of 12 file(s) complete, skipped" in result.stdout
    assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in complete.iterdir())
    for table in (path for path in complete.rglob("*") if path.is_file()):  # and records
        assert (resumed / table.relative_to(complete)).read_text() == table.read_text()
