"""The ``birdaudio`` command without traps: defaults, refusals, summaries and figures."""

import datetime
import json
import os
import re
import stat
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import soundfile
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_cli import RATE, TINY, write_class_folders

import sklearn_birdaudio.audio
import sklearn_birdaudio.detection
from sklearn_birdaudio import load_model, read_detections, save_model
from sklearn_birdaudio.cli import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    build_parser,
    main,
)
from sklearn_birdaudio.persistence import model_saved_at
from sklearn_birdaudio.plotting import (
    plot_detections,
    plot_precision_recall,
    plot_training_curves,
)
from sklearn_birdaudio.plotting.spectrograms import _class_colors
from sklearn_birdaudio.tables import write_detections, write_detections_per_file

CLASSES = ["species_00", "species_01", "species_02"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny trained model, three short recordings and one of 70 s."""
    root = tmp_path_factory.mktemp("polish")
    paths = write_class_folders(root / "train", 30, random_state=0)
    field = root / "field"
    field.mkdir()
    for path in paths[:3]:
        (field / path.name).write_bytes(path.read_bytes())
    noise = np.random.default_rng(0).normal(scale=0.1, size=70 * RATE).astype(np.float32)
    soundfile.write(root / "long.wav", noise, RATE)
    model = root / "model.safetensors"
    # cnn-defaults: with a validation split, as tests/test_cli.py trains it
    arguments = ["--model", "cnn-defaults", "--out", str(model), "-q", *TINY]
    assert main(["train", str(root / "train"), *arguments]) == EXIT_OK
    return root, model


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def parse(*arguments):
    return build_parser().parse_args(list(arguments))


# 1. predict uses every core by default


def test_predict_scores_files_on_every_core_by_default(workspace, tmp_path, monkeypatch):
    from sklearn_birdaudio import detection

    root, model = workspace
    asked, real_detect = [], detection.detect

    def spy(*args, **kwargs):
        asked.append(kwargs["n_jobs"])
        return real_detect(*args, **kwargs)

    monkeypatch.setattr(detection, "detect", spy)
    field = [str(path) for path in sorted((root / "field").glob("*.wav"))]
    main(["predict", str(model), *field, "--out", str(tmp_path / "t"), "-q"])
    main(["predict", str(model), *field, "--out", str(tmp_path / "u"), "-q", "--jobs", "1"])
    assert asked == [-1, 1]
    help_text = build_parser()._subparsers._group_actions[0].choices["predict"].format_help()
    assert "default -1: one per core" in " ".join(help_text.split())


# 2. missing inputs are refused up front


def test_predict_refuses_missing_inputs_before_loading_the_model(workspace, tmp_path, capsys):
    root, _ = workspace
    not_a_model = tmp_path / "model.safetensors"
    not_a_model.write_text("not a model")  # loading it would fail with another message
    out = tmp_path / "tables"
    arguments = ["predict", str(not_a_model), str(root / "field"), str(tmp_path / "gone.wav")]
    code = main([*arguments, str(tmp_path / "gone"), "--out", str(out), "-q"])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"birdaudio predict: error: input(s) not found: {tmp_path / 'gone.wav'}, "
        f"{tmp_path / 'gone'}."
    ]
    assert not out.exists()  # nothing scored, nothing written


# 3. --species


def test_species_keeps_only_those_classes_in_every_table(workspace, tmp_path, capsys):
    root, model = workspace
    base = ["predict", str(model), str(root / "field"), "--min-confidence", "0", "-q"]
    assert main([*base, "--out", str(tmp_path / "all")]) == EXIT_OK
    everything = pd.concat(map(read_detections, sorted((tmp_path / "all").glob("*.csv"))))
    assert set(everything["label"]) == set(CLASSES)  # every class scores >= 0
    assert main([*base, "--out", str(tmp_path / "one"), "--species", "species_01"]) == EXIT_OK
    tables = sorted((tmp_path / "one").glob("*.csv"))
    assert len(tables) == 3
    per_file = pd.concat(map(read_detections, tables), ignore_index=True)
    assert set(per_file["label"]) == {"species_01"}
    expected = everything[everything["label"] == "species_01"].reset_index(drop=True)
    pd.testing.assert_frame_equal(per_file, expected, check_dtype=False)
    combined = tmp_path / "two.csv"
    species = ["--species", "species_02", "species_00"]
    assert main([*base, "--out", str(combined), *species]) == EXIT_OK
    assert set(read_detections(combined)["label"]) == {"species_00", "species_02"}


def test_an_unknown_species_is_an_error_listing_the_classes(workspace, tmp_path, capsys):
    root, model = workspace
    arguments = ["predict", str(model), str(root / "field"), "--out", str(tmp_path / "t")]
    assert main([*arguments, "--species", "species_01", "wren", "-q"]) == EXIT_ERROR
    assert capsys.readouterr().err.splitlines() == [
        "birdaudio predict: error: --species: wren not among the model's 3 classes: "
        "species_00, species_01, species_02."
    ]


def test_resume_redoes_the_tables_of_other_species(workspace, tmp_path, capsys):
    root, model = workspace
    base = ["predict", str(model), str(root / "field"), "--out", str(tmp_path), "-q"]
    assert main([*base, "--species", "species_01"]) == EXIT_OK
    capsys.readouterr()
    assert main([*base, "--species", "species_01", "--resume"]) == EXIT_OK
    assert "3 of 3 file(s) complete" in capsys.readouterr().out
    assert main([*base, "--resume"]) == EXIT_OK
    assert "0 of 3 file(s) complete" in capsys.readouterr().out


# 4. info


def test_info_is_a_readable_summary(workspace, capsys):
    _, model = workspace
    assert main(["info", str(model)]) == EXIT_OK
    out = capsys.readouterr().out
    loaded = load_model(model)
    n_weights = sum(p.numel() for p in loaded.named_steps["cnn"].module_.parameters())
    assert "Kind: Pipeline: mel (MelSpectrogramTransformer) -> cnn (AttentionCNNClassifier)" in out
    assert "Classes (3): species_00, species_01, species_02" in out
    assert "at 16000 Hz, hop 256, 32 mel bands, 20-8000 Hz; windows of 1 s" in out
    assert f"{n_weights:,} weights" in out and "base_filters=8" in out
    assert "Training: 3 epochs; best validation loss" in out and "validation mAP" in out
    assert "24 training examples per epoch" in out  # 30 recordings, 20% held out
    assert "Versions: sklearn-birdaudio" in out
    assert re.search(
        r"^Model: .*model\.safetensors \(saved \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\)$", out, re.M
    )
    assert "<function" not in out and " at 0x" not in out
    assert len(out.splitlines()) < 12


def test_info_json_is_the_same_summary(workspace, capsys):
    _, model = workspace
    assert main(["info", str(model), "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == CLASSES
    assert summary["steps"] == [
        ["mel", "MelSpectrogramTransformer"],
        ["cnn", "AttentionCNNClassifier"],
    ]
    assert summary["front_end"]["n_mels"] == 32 and summary["front_end"]["sample_rate"] == RATE
    assert summary["training"]["epochs"] == 3
    assert summary["training"]["training_examples_per_epoch"] == 24
    assert summary["network"]["n_weights"] > 0
    assert summary["licence"] is None and summary["not_restored"] == {}
    saved = datetime.datetime.strptime(summary["saved_at"], "%Y-%m-%dT%H:%M:%SZ")
    age = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - saved
    assert datetime.timedelta(0) <= age < datetime.timedelta(hours=1)


@pytest.mark.parametrize("forged", ["\x1b[2Jsoon", "2026-12-05T06:30:00Z" * 100, "yesterday"])
def test_a_save_date_not_in_its_form_is_not_shown(workspace, tmp_path, capsys, forged):
    _, model = workspace
    with safe_open(str(model), "pt") as handle:
        metadata = handle.metadata()
    edited = tmp_path / "edited.safetensors"
    save_file(load_file(str(model)), str(edited), metadata={**metadata, "saved_at": forged})
    assert model_saved_at(edited) is None and model_saved_at(model) is not None
    assert main(["info", str(edited)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "saved" not in out.splitlines()[0] and "\x1b" not in out


def test_info_shows_the_parameters_not_restored(workspace, tmp_path, capsys):
    _, model = workspace
    with safe_open(str(model), "pt") as handle:
        metadata = handle.metadata()
    description = metadata["model"]
    assert '"inference": "fused"' in description
    metadata["model"] = description.replace(
        '"inference": "fused"', '"inference": "fused", "device": "cuda"'
    )
    moved = tmp_path / "moved.safetensors"
    save_file(load_file(str(model)), str(moved), metadata=metadata)
    assert main(["info", str(moved)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "Not restored from the model file (defaults used): cnn__device = 'cuda' (a device)" in (
        captured.out
    )
    assert "  cnn__device = 'cuda'  (a device)" in captured.err  # as every command lists them
    assert main(["info", str(moved), "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["not_restored"] == {"cnn__device": {"value": "'cuda'", "reason": "a device"}}


# 5. plot


def test_plot_defaults_to_the_first_minute_and_predicts_threshold():
    args = parse("plot", "a.wav", "--out", "a.png")
    assert (args.start, args.duration) == (0.0, 60.0)
    assert args.min_confidence == parse("predict", "m", "x", "--out", "o").min_confidence == 0.1


def test_plot_draws_a_window_of_a_long_file(workspace, tmp_path, capsys, monkeypatch):
    root, model = workspace
    reads = []
    load_audio = sklearn_birdaudio.audio.load_audio

    def spy(source, *args, **kwargs):
        if isinstance(source, (str, os.PathLike)):  # files, not the waveforms read from them
            reads.append((kwargs.get("offset_seconds", 0.0), kwargs.get("duration_seconds")))
        return load_audio(source, *args, **kwargs)

    monkeypatch.setattr(sklearn_birdaudio.audio, "load_audio", spy)
    figure = tmp_path / "long.png"
    audio = str(root / "long.wav")
    assert main(["plot", audio, "--out", str(figure)]) == EXIT_OK
    assert "0-60 s (of 70 s" in capsys.readouterr().out
    assert reads == [(0.0, 60.0)]
    reads.clear()
    arguments = ["plot", audio, "--model", str(model), "--out", str(figure)]
    assert main([*arguments, "--start", "12.5", "--duration", "5"]) == EXIT_OK
    assert "12.5-17.5 s" in capsys.readouterr().out
    # the model scores from the window holding 12.5 s (1 s windows from 0 s); the figure reads
    assert reads == [(12.0, 5.5), (12.5, 5.0)]
    assert main([*arguments, "--start", "80"]) == EXIT_ERROR
    assert "past the end" in capsys.readouterr().err


def test_plot_detections_reads_only_the_part_shown(workspace, monkeypatch):
    root, _ = workspace
    from sklearn_birdaudio import MelSpectrogramTransformer

    reads = []
    load_audio = sklearn_birdaudio.audio.load_audio

    def spy(source, *args, **kwargs):
        if isinstance(source, (str, os.PathLike)):
            reads.append(kwargs)
        return load_audio(source, *args, **kwargs)

    monkeypatch.setattr(sklearn_birdaudio.audio, "load_audio", spy)
    path = str(root / "long.wav")
    mel = MelSpectrogramTransformer(sample_rate=RATE, n_mels=32, fmax=8000, hop_length=256)
    rows = pd.DataFrame(
        {
            "file": path,
            "start_s": [5.0, 29.5, 31.0, 34.0],
            "end_s": [6.0, 30.5, 32.0, 35.0],
            "label": ["a", "b", "c", "d"],
            "confidence": [0.9, 0.8, 0.7, 0.6],
        }
    )
    fig = plot_detections(path, rows, mel=mel, start_s=30.0, duration_s=4.0)
    assert [(r["offset_seconds"], r["duration_seconds"]) for r in reads] == [(30.0, 4.0)]
    ax = fig.axes[0]
    assert ax.get_xlim() == (30.0, 34.0)
    assert ax.get_images()[0].get_array().shape == (32, 4 * RATE // 256 + 1)
    # a and d are outside; b began before the part shown: its label is at its left edge
    assert [(text.get_text(), text.xy[0]) for text in ax.texts] == [
        ("b 0.80", 30.0),
        ("c 0.70", 31.0),
    ]


def test_23_species_get_23_distinct_colours():
    names = [f"species_{index:02d}" for index in range(23)]
    colours = _class_colors(names)
    assert len(set(colours.values())) == 23
    assert _class_colors(list(reversed(names))) == colours  # from the names, not the order
    many = _class_colors([f"bird{index}" for index in range(75)])
    assert len(set(many.values())) == 75


def test_precision_recall_legend_is_beside_the_curves_and_the_title_counts():
    rng = np.random.default_rng(0)
    y_true = (rng.uniform(size=(200, 23)) < 0.3).astype(int)
    y_score = np.clip(0.3 * y_true + rng.uniform(0, 0.7, y_true.shape), 0, 1)
    fig = plot_precision_recall(y_true, y_score, max_classes=10)
    ax = fig.axes[0]
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # right of the axes, not on them
    title = ax.get_title()
    assert "10 of 23 classes drawn: the 10 with the most positives (max_classes=10)" in " ".join(
        title.split()
    )
    colours = {line.get_color() for line in ax.lines[:-1]}
    assert len(colours) == 10


def test_training_curves_map_axis_spans_zero_to_one():
    history = [
        {
            "epoch": epoch,
            "train_loss": 1 / epoch,
            "valid_loss": 1.0,
            "valid_mAP": 0.5 + 0.001 * epoch,
        }
        for epoch in range(1, 6)
    ]
    fig = plot_training_curves(history)
    assert fig.axes[1].get_ylim() == (0.0, 1.0)


# 6. Raven's High Freq stops at the file's Nyquist frequency


def high_freq(raven_table) -> list[float]:
    return pd.read_csv(raven_table, sep="\t")["High Freq (Hz)"]


def test_per_file_raven_high_freq_is_at_most_the_nyquist_frequency(tmp_path):
    soundfile.write(tmp_path / "cd.wav", np.zeros(22050, dtype=np.float32), 22050)
    soundfile.write(tmp_path / "hi.wav", np.zeros(48000, dtype=np.float32), 48000)
    files = [str(tmp_path / "cd.wav"), str(tmp_path / "hi.wav")]
    detections = pd.DataFrame(
        {"file": files, "start_s": 0.0, "end_s": 1.0, "label": "wren", "confidence": 0.9}
    )
    detections.attrs["durations"] = dict.fromkeys(files, 1.0)
    detections.attrs["frequency_range"] = (0.0, 16000.0)
    cd, hi = write_detections_per_file(detections, tmp_path / "tables", format="raven")
    assert high_freq(cd).tolist() == [11025.0]
    assert high_freq(hi).tolist() == [16000.0]
    cd, _ = write_detections_per_file(
        detections, tmp_path / "given", format="raven", high_freq=14000.0
    )
    assert high_freq(cd).tolist() == [14000.0]
    # The combined table too: each row's band is its own file's.
    combined = write_detections(detections, tmp_path / "all.txt", format="raven")
    assert high_freq(combined).tolist() == [11025.0, 16000.0]


# 7. model files get the umask's permissions


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_model_files_are_created_with_the_umask_permissions(workspace, tmp_path):
    _, model = workspace
    previous = os.umask(0o022)
    try:
        path = save_model(load_model(model), tmp_path / "model.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# 8. Ctrl-C and colour codes


def test_ctrl_c_is_one_line_and_exit_130(workspace, tmp_path, capsys, monkeypatch):
    root, model = workspace

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sklearn_birdaudio.detection, "detect", interrupted)
    arguments = ["predict", str(model), str(root / "field"), "--out", str(tmp_path), "-q"]
    assert main(arguments) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.splitlines() == [
        "birdaudio predict: interrupted; tables written so far are kept, --resume continues"
    ]


def test_an_interrupted_train_says_no_model_was_saved(workspace, tmp_path, capsys, monkeypatch):
    root, _ = workspace

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sklearn_birdaudio.AttentionCNNClassifier, "fit", interrupted)
    out = tmp_path / "m.safetensors"
    arguments = ["train", str(root / "train"), "--model", "cnn-defaults", "--out", str(out), *TINY]
    assert main(arguments) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1:] == [
        "birdaudio train: interrupted; no model was saved"
    ]
    assert not out.exists()


@pytest.mark.parametrize("code", [EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL])
def test_the_script_ends_an_interrupted_run_at_once(monkeypatch, code):
    """Threads still inside torch could abort the interpreter's shutdown (exit 134):
    after an interrupt the script exits with os._exit, other codes with sys.exit."""
    import sklearn_birdaudio.cli as cli

    ended = []

    def os_exit(status):  # never returns, as os._exit
        ended.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(cli, "main", lambda: code)
    monkeypatch.setattr(cli.os, "_exit", os_exit)
    with pytest.raises(SystemExit) as exited:
        cli.console_main()
    assert exited.value.code == code
    assert ended == ([130] if code == EXIT_INTERRUPTED else [])


def test_no_colour_codes_when_the_output_is_not_a_terminal(workspace, tmp_path, capsys):
    root, _ = workspace
    # skorch's epoch table colours the best values (green, cyan ...) whatever the output is
    out = tmp_path / "m.safetensors"
    arguments = ["train", str(root / "train"), "--model", "cnn-defaults", "--out", str(out), *TINY]
    assert main(arguments) == EXIT_OK
    captured = capsys.readouterr()
    assert "valid_loss" in captured.out  # the epoch table was printed
    # ... after a line that says what is being trained, printed before the first epoch
    announced = re.search(
        r"^Training ([\d,]+) weights on 30 clips, 20% of them held out for validation: "
        r"up to (\d+) epochs on (cpu|cuda), a row after each\.$",
        captured.out,
        re.M,
    )
    assert announced and captured.out.index("Training") < captured.out.index("valid_loss")
    assert int(announced[1].replace(",", "")) == sum(
        p.numel() for p in load_model(out).named_steps["cnn"].module_.parameters()
    )
    assert "\x1b[" not in captured.out and "\x1b[" not in captured.err


# 9. the epilog


def test_the_epilog_lists_every_exit_code():
    assert (EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL) == (0, 1, 2, 3)
    help_text = " ".join(build_parser().format_help().split())
    assert (
        "Exit codes: 0 success, 1 error, 2 invalid command line, 3 some inputs were skipped "
        "(predict, review, train), 130 interrupted." in help_text
    )
