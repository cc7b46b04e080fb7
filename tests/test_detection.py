"""Tests of detection on long recordings: window grid, thresholds, errors, streaming."""

import math
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from test_classifier import SAMPLE_RATE, songs, tiny_pipeline

from sklearn_birdaudio import detection, execution, scoring, windows
from sklearn_birdaudio.detection import detect, window_scores
from sklearn_birdaudio.ensemble import VotingClassifier

PROBE_RATE = 32000  # the rate detect uses for a model without a mel front end


class WindowRecorder(ClassifierMixin, BaseEstimator):
    """Records the windows it is asked to score; class "first" scores each window's first
    sample (a ramp's value is its sample index), class "length" its length / 1e6."""

    def fit(self, X=None, y=None):
        self.classes_ = np.array(["first", "length"])
        self.windows_ = []
        return self

    def predict_proba(self, X):
        self.windows_.extend(np.asarray(window) for window in X)
        return np.array([[window[0] / 1e7, len(window) / 1e6] for window in X])


def expected_grid(n_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """The documented grid: starts every hop until a window reaches the end."""
    n_windows = 1 + max(0, math.ceil((n_samples - window) / hop))
    return [(k * hop, min(k * hop + window, n_samples)) for k in range(n_windows)]


def ramp(n_samples: int) -> np.ndarray:
    return np.arange(n_samples, dtype=np.float32)


# -- the window grid --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "window_s", "overlap_s", "expected_starts", "expected_ends"),
    [
        (10.0, 5.0, 0.0, [0, 5], [5, 10]),  # exact fit
        (12.0, 5.0, 0.0, [0, 5, 10], [5, 10, 12]),  # partial last window
        (10.0, 5.0, 2.5, [0, 2.5, 5], [5, 7.5, 10]),  # overlap, exact
        (11.0, 5.0, 2.5, [0, 2.5, 5, 7.5], [5, 7.5, 10, 11]),  # overlap, partial
        (3.0, 5.0, 0.0, [0], [3]),  # shorter than one window
        (6.0, 3.0, 2.0, [0, 1, 2, 3], [3, 4, 5, 6]),
    ],
)
def test_window_grid_is_exact(seconds, window_s, overlap_s, expected_starts, expected_ends):
    probe = WindowRecorder().fit()
    n_samples = int(seconds * PROBE_RATE)
    scores = window_scores(
        probe, ramp(n_samples), window_seconds=window_s, overlap_seconds=overlap_s
    )
    np.testing.assert_allclose(scores.start_s, expected_starts)
    np.testing.assert_allclose(scores.end_s, expected_ends)
    assert scores.duration_s == seconds
    # Each window holds exactly the audio between its start and its true end.
    for window, start, end in zip(probe.windows_, scores.start_s, scores.end_s, strict=True):
        np.testing.assert_array_equal(
            window, np.arange(round(start * PROBE_RATE), round(end * PROBE_RATE))
        )


@settings(max_examples=40, deadline=None)
@given(
    n_samples=st.integers(1, 5000),
    window=st.integers(1, 700),
    overlap_share=st.floats(0, 0.95),
    block=st.integers(1, 900),
    batch_size=st.integers(1, 9),
)
def test_window_grid_property(n_samples, window, overlap_share, block, batch_size):
    """Any length, window, overlap, read-block size and batch size give the same exact grid."""
    hop = max(1, int(window * (1 - overlap_share)))
    probe = WindowRecorder().fit()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows, "READ_BLOCK_SECONDS", block / PROBE_RATE)
        scores = window_scores(
            probe,
            ramp(n_samples),
            window_seconds=window / PROBE_RATE,
            overlap_seconds=(window - hop) / PROBE_RATE,
            batch_size=batch_size,
        )
    grid = expected_grid(n_samples, window, hop)
    assert [(len(w), int(w[0])) for w in probe.windows_] == [(e - s, s) for s, e in grid]
    np.testing.assert_allclose(scores.start_s * PROBE_RATE, [s for s, _ in grid], atol=1e-6)
    np.testing.assert_allclose(scores.end_s * PROBE_RATE, [e for _, e in grid], atol=1e-6)
    assert scores.end_s[-1] * PROBE_RATE == pytest.approx(n_samples)
    # The scores are the model's, row by row.
    np.testing.assert_allclose(scores.scores[:, 0], [s / 1e7 for s, _ in grid], rtol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window_seconds": 0}, "window_seconds must be a positive"),
        ({"window_seconds": 1.0, "overlap_seconds": 1.0}, "overlap_seconds must be"),
        ({"window_seconds": 1.0, "overlap_seconds": -0.5}, "overlap_seconds must be"),
        ({"window_seconds": 1.0, "batch_size": 0}, "batch_size must be"),
        ({"window_seconds": 1.0, "min_confidence": 1.5}, "min_confidence must be"),
        ({"window_seconds": 1.0, "thresholds": {"first": -1}}, r"thresholds\['first'\]"),
        ({"window_seconds": 1.0, "thresholds": {"wren": 0.5}}, "does not have: \\['wren'\\]"),
        ({"window_seconds": 1.0, "n_jobs": 0}, "n_jobs must be"),
        ({}, "pass window_seconds explicitly"),
    ],
)
def test_bad_parameters_name_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        detect(WindowRecorder().fit(), ramp(100), verbose=0, **params)


def test_unfitted_or_non_classifier_models_are_rejected():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        detect(WindowRecorder(), ramp(100), window_seconds=1.0, verbose=0)
    with pytest.raises(TypeError, match="predict_proba"):
        detect(object(), ramp(100), window_seconds=1.0, verbose=0)


# -- with a trained model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    X, Y, names = songs(120, 0, as_frame=True)
    return tiny_pipeline().fit(X, Y), names


@pytest.fixture(scope="module")
def recording():
    """Eight 1-s songs back to back and 0.3 s more: 8.3 s at 16 kHz, with its labels."""
    X, Y, _ = songs(9, 1)
    waveform = np.concatenate([*X[:8], X[8][: int(0.3 * SAMPLE_RATE)]])
    return waveform, Y


def test_detect_uses_the_pipeline_window_and_finds_the_songs(trained, recording):
    model, names = trained
    waveform, Y = recording
    scores = window_scores(model, waveform)
    np.testing.assert_allclose(scores.start_s, np.arange(9.0))
    np.testing.assert_allclose(scores.end_s, [*np.arange(1.0, 9.0), 8.3])
    assert list(scores.classes) == names
    # Each full window is one song: its species score higher than the absent ones.
    full = slice(0, 8)
    from sklearn.metrics import average_precision_score

    assert average_precision_score(Y[full], scores.scores[full], average="micro") > 0.8


def test_window_scores_equal_the_model_on_the_cut_windows(trained, recording):
    model, _ = trained
    waveform, _ = recording
    scores = window_scores(model, waveform, overlap_seconds=0.5, batch_size=3)
    expected = model.predict_proba(
        [
            waveform[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            for start, end in zip(scores.start_s, scores.end_s, strict=True)
        ]
    )
    np.testing.assert_allclose(scores.scores, expected, atol=1e-6)
    frame = scores.to_frame()
    assert frame.shape == (len(scores.start_s), 4)
    assert frame.index.names == ["start_s", "end_s"]


def test_species_keeps_only_the_rows_of_those_classes(trained, recording):
    model, names = trained
    waveform, _ = recording
    everything = detect(model, waveform, min_confidence=0.0, verbose=0)
    chosen = detect(model, waveform, min_confidence=0.0, species=names[1:3], verbose=0)
    expected = everything[everything["label"].isin(names[1:3])].reset_index(drop=True)
    pd.testing.assert_frame_equal(chosen, expected)
    with pytest.raises(
        ValueError, match=r"species names classes the model does not have: \['wren'\]"
    ):
        detect(model, waveform, species=["wren"], verbose=0)


def test_detections_are_the_scores_above_per_class_thresholds(trained, recording):
    model, names = trained
    waveform, _ = recording
    scores = window_scores(model, waveform)
    thresholds = {names[0]: 0.9, names[2]: 0.05}
    detections = detect(model, waveform, min_confidence=0.3, thresholds=thresholds, verbose=0)
    per_class = np.array([0.9, 0.3, 0.05, 0.3])
    window, column = np.nonzero(scores.scores >= per_class)
    expected = pd.DataFrame(
        {
            "file": "array 0",
            "start_s": scores.start_s[window],
            "end_s": scores.end_s[window],
            "label": np.asarray(names)[column],
            "confidence": scores.scores[window, column],
        }
    ).sort_values(["start_s", "confidence"], ascending=[True, False], kind="stable")
    pd.testing.assert_frame_equal(detections, expected.reset_index(drop=True), check_dtype=False)
    assert list(detections.columns) == ["file", "start_s", "end_s", "label", "confidence"]
    assert detections.attrs["durations"] == {"array 0": pytest.approx(8.3)}
    assert detections.attrs["errors"] == []
    assert detections.attrs["frequency_range"] == (20.0, 8000.0)


def test_files_and_arrays_give_the_same_detections(trained, recording, write_audio):
    model, _ = trained
    waveform, _ = recording
    path = write_audio("song.wav", waveform, SAMPLE_RATE, subtype="FLOAT")
    from_file = detect(model, [path], verbose=0)
    from_array = detect(model, [waveform], verbose=0)
    assert set(from_file["file"]) == {str(path)}
    pd.testing.assert_frame_equal(
        from_file.drop(columns="file"), from_array.drop(columns="file"), atol=1e-5
    )


def test_a_bad_file_is_listed_and_the_others_are_intact(trained, recording, write_audio, data_dir):
    model, _ = trained
    waveform, _ = recording
    first = write_audio("first.wav", waveform, SAMPLE_RATE)
    second = write_audio("second.wav", waveform[::-1].copy(), SAMPLE_RATE)
    broken = [data_dir / "truncated.wav", data_dir / "not_audio.wav", data_dir / "missing.wav"]
    together = detect(model, [first, *broken, second], verbose=0)
    alone = pd.concat([detect(model, [path], verbose=0) for path in (first, second)])
    # The truncated file's readable part is scored; the others' rows are untouched.
    good = together[together["file"].isin([str(first), str(second)])]
    pd.testing.assert_frame_equal(good.reset_index(drop=True), alone.reset_index(drop=True))
    errors = {entry["file"]: entry["error"] for entry in together.attrs["errors"]}
    assert set(errors) == {str(path) for path in broken}
    assert "truncated" in errors[str(broken[0])]
    assert "not found" in errors[str(broken[2])]
    assert set(together.attrs["durations"]) >= {str(first), str(second)}
    assert str(broken[1]) not in together.attrs["durations"]


def test_folders_are_searched_for_audio(trained, recording, write_audio, tmp_path):
    model, _ = trained
    waveform, _ = recording
    nested = tmp_path / "site" / "day2"
    nested.mkdir(parents=True)
    first = write_audio("site/a.wav", waveform, SAMPLE_RATE)
    second = write_audio("site/day2/b.flac", waveform[: SAMPLE_RATE * 2], SAMPLE_RATE)
    (tmp_path / "site" / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    detections = detect(model, [tmp_path / "site", tmp_path / "empty"], verbose=0)
    assert list(detections.attrs["durations"]) == [str(first), str(second)]
    assert detections.attrs["durations"][str(second)] == pytest.approx(2.0)
    [error] = detections.attrs["errors"]
    assert error["file"] == str(tmp_path / "empty") and "no audio files" in error["error"]


def test_input_sample_rate_resamples_arrays(trained, recording):
    model, _ = trained
    waveform, _ = recording
    import soxr

    at_8k = soxr.resample(waveform, SAMPLE_RATE, 8000)
    scores = window_scores(model, at_8k, input_sample_rate=8000)
    assert scores.duration_s == pytest.approx(8.3, abs=1e-3)
    assert len(scores.start_s) == 9


def test_window_longer_than_the_model_clips_is_refused(trained, recording):
    model, _ = trained
    with pytest.raises(ValueError, match="longer than the model's clips"):
        detect(model, recording[0], window_seconds=2.0, verbose=0)
    # Shorter windows are padded as short clips are.
    short = window_scores(model, recording[0], window_seconds=0.5)
    assert len(short.start_s) == 17


def test_ensemble_of_pipelines_detects_with_the_mean_of_members(recording):
    waveform, _ = recording
    X, Y, _ = songs(60, 0)
    vote = VotingClassifier(
        [("a", tiny_pipeline(max_epochs=2)), ("b", tiny_pipeline(max_epochs=2, random_state=1))]
    ).fit(X, Y)
    # The last batch holds only the 0.3-s partial window.
    scores = window_scores(vote, waveform, batch_size=4)
    members = [window_scores(member, waveform).scores for member in vote.estimators_]
    np.testing.assert_allclose(scores.scores, np.mean(members, axis=0), atol=1e-6)


def test_parallel_detection_equals_sequential(trained, recording, write_audio):
    model, _ = trained
    waveform, _ = recording
    paths = [write_audio(f"r{i}.wav", np.roll(waveform, 4000 * i), SAMPLE_RATE) for i in range(3)]
    sequential = detect(model, paths, verbose=0)

    def devices():
        return {name: value for name, value in model.get_params().items() if "device" in name}

    threads_before, devices_before = torch.get_num_threads(), devices()
    state_before = {id(step): dict(vars(step)) for _, step in model.steps}
    parallel = detect(model, paths, n_jobs=2, verbose=0)
    pd.testing.assert_frame_equal(parallel, sequential, atol=1e-6)
    assert parallel.attrs == sequential.attrs
    # The threads share the model, which predicting leaves as it was, and torch's thread
    # count is restored.
    assert torch.get_num_threads() == threads_before and devices() == devices_before
    for _, step in model.steps:
        assert vars(step).keys() == state_before[id(step)].keys()
        assert all(vars(step)[key] is value for key, value in state_before[id(step)].items())


def test_parallel_detection_scores_files_concurrently_and_reports_each(
    trained, recording, write_audio, monkeypatch
):
    model, _ = trained
    waveform, _ = recording
    paths = [str(write_audio(f"c{i}.wav", waveform, SAMPLE_RATE)) for i in range(4)]
    bad = write_audio("bad.wav", waveform, SAMPLE_RATE).with_suffix(".mp3")
    bad.write_text("not audio")
    paths.insert(2, str(bad))
    running, peak, lock = [0], [0], threading.Lock()
    score = scoring.FileScorer._detect

    def counting(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.2)  # long enough for the other thread to start its file
            return score(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(scoring.FileScorer, "_detect", counting)
    seen = []
    detections = detect(model, paths, n_jobs=2, verbose=0, on_file=seen.append)
    assert peak[0] == 2
    assert sorted(part.attrs["errors"][0]["file"] for part in seen if part.attrs["errors"]) == [
        paths[2]
    ]
    assert len(seen) == len(paths) and set(detections["file"]) == set(paths) - {paths[2]}


def test_progress_bar_shows_seconds_and_verbose_zero_is_silent(trained, recording, capsys):
    model, _ = trained
    detect(model, recording[0], verbose=0)
    assert capsys.readouterr().err == ""
    detect(model, recording[0], verbose=1)
    err = capsys.readouterr().err
    assert "s audio" in err and "files=1/1" in err


def test_members_progress_bars_are_silenced_without_changing_the_model(trained, recording, capsys):
    model, _ = trained
    model.set_params(mel__verbose=1)
    try:
        detect(model, recording[0], verbose=0)
        assert capsys.readouterr().err == ""
        assert model.named_steps["mel"].verbose == 1
    finally:
        model.set_params(mel__verbose=0)


@pytest.mark.parametrize("format", ["csv", "raven", "audacity"])
def test_detections_round_trip_through_per_file_tables(
    trained, recording, write_audio, tmp_path, format
):
    from sklearn_birdaudio import read_detections, write_detections_per_file

    model, _ = trained
    waveform, _ = recording
    paths = [write_audio(f"site{i}.wav", np.roll(waveform, 7000 * i), SAMPLE_RATE) for i in (1, 2)]
    detections = detect(model, paths, min_confidence=0.2, verbose=0)
    tables = write_detections_per_file(detections, tmp_path / "tables", format=format)
    assert [table.name.split(".")[0] for table in tables] == ["site1", "site2"]
    back = pd.concat(
        [read_detections(table, file=str(path)) for table, path in zip(tables, paths, strict=True)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(back, pd.DataFrame(detections), check_dtype=False, atol=1e-6)


def test_repeated_sources_are_refused(trained, recording, write_audio):
    model, _ = trained
    path = write_audio("a.wav", recording[0], SAMPLE_RATE)
    with pytest.raises(ValueError, match="more than once"):
        detect(model, [path, str(path)], verbose=0)


# -- memory -----------------------------------------------------------------------------

STREAMING_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import soundfile
    sys.path.insert(0, {tests!r})
    from test_classifier import songs, tiny_pipeline
    from sklearn_birdaudio import detect

    X, Y, _ = songs(16, 0)
    model = tiny_pipeline(max_epochs=1).fit(X, Y)
    path = {path!r}
    rate = 16000
    with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16") as sink:
        rng = np.random.default_rng(0)
        for _ in range(60):  # one hour, a minute at a time
            sink.write((0.1 * rng.standard_normal(60 * rate)).astype(np.float32))

    def peak_rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024

    detect(model, [X[0]], verbose=0)  # warm up
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets the peak RSS
    before = peak_rss_mb()
    detections = detect(model, [path], min_confidence=0.0, batch_size=64, verbose=0)
    print(before, peak_rss_mb(), detections.attrs["durations"][path], len(detections))
    """
)


def test_streaming_memory_does_not_grow_with_the_recording(tmp_path):
    """An hour of audio (230 MB as float32 at 16 kHz) is scored with far less memory."""
    script = STREAMING_SCRIPT.format(
        tests=str(__import__("pathlib").Path(__file__).parent), path=str(tmp_path / "hour.wav")
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    before, after, duration, n_rows = (
        float(output[0]),
        float(output[1]),
        float(output[2]),
        int(output[3]),
    )
    assert duration == pytest.approx(3600.0)
    assert n_rows == 3600 * 4  # every window and class, min_confidence=0
    waveform_mb = 3600 * SAMPLE_RATE * 4 / 2**20
    assert after - before < waveform_mb / 4, (before, after, waveform_mb)


# -- reading ahead ----------------------------------------------------------------------


def test_read_ahead_gives_the_blocks_in_order_then_the_error_where_it_happened():
    def blocks():
        yield from (np.full(3, index, dtype=np.float32) for index in range(5))
        raise detection.AudioError("truncated at block 5")

    received = []
    with pytest.raises(detection.AudioError, match="block 5"):
        for block in execution.ReadAhead(blocks(), depth=2):
            received.append(int(block[0]))
    assert received == [0, 1, 2, 3, 4]


def test_read_ahead_stops_its_thread_when_the_consumer_stops():
    closed = []

    def endless():
        try:
            while True:
                yield np.zeros(4, dtype=np.float32)
        finally:
            closed.append(True)

    reader = execution.ReadAhead(endless(), depth=1)
    for count, _ in enumerate(reader):
        if count == 3:
            break
    reader._thread.join(timeout=5)
    assert not reader._thread.is_alive() and closed == [True]


def test_detections_with_and_without_read_ahead_are_identical(
    trained, recording, write_audio, monkeypatch
):
    model, _ = trained
    waveform, _ = recording
    path = write_audio("song.wav", waveform, SAMPLE_RATE, subtype="FLOAT")
    monkeypatch.setattr(windows, "READ_BLOCK_SECONDS", 1.0)  # several blocks per file
    readers, original = [], scoring.ReadAhead
    monkeypatch.setattr(scoring, "ReadAhead", lambda *args: readers.append(args) or original(*args))
    ahead = detect(model, [path], verbose=0, min_confidence=0.0, batch_size=2, read_ahead=True)
    assert readers  # the thread read ahead
    plain = detect(model, [path], verbose=0, min_confidence=0.0, batch_size=2, read_ahead=False)
    assert len(readers) == 1 and len(plain) > 0
    pd.testing.assert_frame_equal(ahead, plain)


@pytest.mark.parametrize(
    ("setting", "torch_threads", "n_workers", "cores", "expected"),
    [
        (None, 1, 1, 2, True),  # one core is free for the reader
        (None, 2, 1, 2, False),  # torch has both
        (None, 2, 1, 8, True),
        (None, 1, 2, 2, False),  # two workers of one thread each fill two cores
        (None, 1, 2, 8, True),
        (True, 64, 1, 2, True),  # forced
        (False, 1, 1, 8, False),
    ],
)
def test_reading_ahead_needs_a_free_core_unless_forced(
    monkeypatch, setting, torch_threads, n_workers, cores, expected
):
    monkeypatch.setattr(execution.torch, "get_num_threads", lambda: torch_threads)
    monkeypatch.setattr(execution.os, "cpu_count", lambda: cores)
    assert execution.should_read_ahead(setting, n_workers) is expected
