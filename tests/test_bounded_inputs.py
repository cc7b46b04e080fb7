"""Hostile inputs get bounded work: each is refused before the work it would cost, or
fails alone without taking a detect() batch down with it.

The attacks: a file at 1-4 Hz (resampling it to 32 kHz took 2.7 GB and 156 s), a header
declaring 2**36 frames in a file of a few KB (a 256 GiB allocation), one file whose
decoding or scoring raises ``MemoryError`` in a batch, a 1-sample file (silently in
neither ``durations`` nor ``errors``), labels holding ``None`` (a raw ``TypeError``) and
a corrupt model whose scores are NaN (tables without rows and success).
"""

import copy
import logging
import math
import re
import struct
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_classifier import MEL, SAMPLE_RATE, songs, spectrograms, tiny_pipeline
from test_detection import PROBE_RATE, WindowRecorder

from sklearn_birdaudio import (
    MelSpectrogramTransformer,
    audio,
    detect,
    detection,
    scoring,
    window_scores,
    windows,
)
from sklearn_birdaudio.audio import (
    MIN_SAMPLE_RATE,
    AudioError,
    audio_info,
    load_audio,
    stream_audio,
)
from sklearn_birdaudio.classifier import AttentionCNNClassifier

FLAC_MAX_FRAMES = 2**36 - 1  # the largest length FLAC's 36-bit STREAMINFO field declares
SMALL_PEAK = 4 * 2**20  # bytes: far below any allocation of a declared length
WINDOW_S = 0.005  # the probe's window in detect: 160 samples at 32 kHz


def noise(n_samples: int, n_channels: int = 1, seed: int = 0) -> np.ndarray:
    shape = (n_samples, n_channels) if n_channels > 1 else (n_samples,)
    return (0.1 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def forge_flac_length(path: Path, n_frames: int) -> None:
    """Make a FLAC file's STREAMINFO declare ``n_frames`` frames, its audio unchanged."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO is the first block
    # STREAMINFO begins at byte 8: block sizes (4 bytes), frame sizes (6), then 64 bits of
    # sample rate (20), channels - 1 (3), bits per sample - 1 (5) and total samples (36).
    field = int.from_bytes(data[18:26], "big")
    data[18:26] = ((field >> 36 << 36) | n_frames).to_bytes(8, "big")
    path.write_bytes(data)


def forged_flac(path: Path, n_real: int, n_declared: int, sample_rate: int = 16000) -> Path:
    soundfile.write(path, noise(n_real), sample_rate, subtype="PCM_16")
    forge_flac_length(path, n_declared)
    assert audio_info(path).n_frames == n_declared  # what libsndfile believes
    return path


def forged_wav(path: Path, n_real: int, n_declared_bytes: int) -> Path:
    """A PCM_16 WAV whose RIFF and data chunk sizes claim ``n_declared_bytes`` of audio."""
    soundfile.write(path, noise(n_real), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", n_declared_bytes)
    data[4:8] = struct.pack("<I", min(n_declared_bytes + at, 2**32 - 1))
    path.write_bytes(data)
    return path


def peak_while_refused(call, match: str) -> int:
    """Run ``call``, which must raise AudioError matching ``match``; the peak bytes traced."""
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match=match):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def probe() -> WindowRecorder:
    """A model without a mel front end: detect gives it windows at 32 kHz."""
    return WindowRecorder().fit()


def run_detect(model, sources, **kwargs) -> pd.DataFrame:
    kwargs = {"window_seconds": WINDOW_S, "min_confidence": 0.0, "verbose": 0, **kwargs}
    return detect(model, [str(source) for source in sources], **kwargs)


@pytest.fixture(scope="module")
def fitted():
    """A tiny trained pipeline (mel at 16 kHz, 1-s clips)."""
    X, Y, _ = songs(16, 0)
    return tiny_pipeline(max_epochs=1).fit(X, Y)


@pytest.fixture
def three_files(tmp_path) -> list[Path]:
    """Three 0.05-s recordings at the probe's rate (no resampling: samples stay exact)."""
    paths = [tmp_path / f"site{index}.wav" for index in range(3)]
    for index, path in enumerate(paths):
        # Non-negative: the probe's first score is the window's first sample / 1e7.
        soundfile.write(path, np.abs(noise(1600, seed=index)), PROBE_RATE, subtype="FLOAT")
    return paths


# -- sample rates below the floor -------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 4, MIN_SAMPLE_RATE - 1])
def test_files_below_the_rate_floor_are_refused_before_any_resampling(tmp_path, rate):
    path = tmp_path / "low.wav"
    soundfile.write(path, np.zeros(65536, dtype=np.int16), rate)  # 128 KB, as the attack
    match = f"^{re.escape(str(path))}: the header's sample rate is {rate} Hz, below MIN_SAMPLE_RATE"
    started = time.perf_counter()
    assert peak_while_refused(lambda: load_audio(path), match) < SMALL_PEAK
    assert (
        peak_while_refused(lambda: list(stream_audio(path, block_seconds=1.0)), match) < SMALL_PEAK
    )
    # Resampling 65536 samples from 1 Hz to 32 kHz took 156 s; refusing takes none of it.
    assert time.perf_counter() - started < 5.0


def test_the_rate_floor_itself_is_accepted(tmp_path):
    path = tmp_path / "floor.wav"
    soundfile.write(path, noise(MIN_SAMPLE_RATE // 10), MIN_SAMPLE_RATE)
    assert load_audio(path, sample_rate=32000).shape == (3200,)
    assert (
        sum(len(block) for block in stream_audio(path, block_seconds=0.05, sample_rate=32000))
        == 3200
    )
    waveform = noise(100)
    assert load_audio(waveform, source_rate=MIN_SAMPLE_RATE, sample_rate=32000).shape == (3200,)


def test_array_rates_below_the_floor_are_refused(three_files):
    waveform = noise(1000)
    match = "source_rate is 999 Hz, below MIN_SAMPLE_RATE = 1000 Hz"
    with pytest.raises(AudioError, match=f"^array input: {match}"):
        load_audio(waveform, source_rate=999)
    with pytest.raises(AudioError, match=f"^array input: {match}"):
        next(stream_audio(waveform, block_seconds=1.0, source_rate=999))
    # Parameters for every waveform are refused once, naming the parameter.
    parameter = "^input_sample_rate is 999 Hz, below MIN_SAMPLE_RATE = 1000 Hz"
    with pytest.raises(ValueError, match=parameter):
        MelSpectrogramTransformer(**MEL, input_sample_rate=999).fit([waveform])
    with pytest.raises(ValueError, match=parameter):
        run_detect(probe(), three_files, input_sample_rate=999)


def test_a_low_rate_file_in_a_batch_is_listed_and_the_others_are_scored(three_files):
    low = three_files[1].with_name("low.wav")
    soundfile.write(low, np.zeros(65536, dtype=np.int16), 4)
    sources = [three_files[0], low, three_files[2]]
    detections = run_detect(probe(), sources)
    [error] = detections.attrs["errors"]
    assert error["file"] == str(low) and "4 Hz, below MIN_SAMPLE_RATE" in error["error"]
    assert list(detections.attrs["durations"]) == [str(three_files[0]), str(three_files[2])]
    alone = run_detect(probe(), [three_files[0], three_files[2]])
    pd.testing.assert_frame_equal(detections, alone)


# -- lengths declared by the header -----------------------------------------------------


def test_a_flac_declaring_2_to_the_36_frames_is_refused_before_allocating(tmp_path):
    path = forged_flac(tmp_path / "forged.flac", 4000, FLAC_MAX_FRAMES)
    assert path.stat().st_size < 20_000
    match = (
        f"^{re.escape(str(path))}: the header declares {FLAC_MAX_FRAMES} frames .*"
        r"would allocate 256 GiB, above MAX_LOAD_BYTES = 4 GiB\. Read long recordings "
        r"block by block with stream_audio\(\) or detect\(\)"
    )
    assert peak_while_refused(lambda: load_audio(path, sample_rate=16000), match) < SMALL_PEAK
    # `birdaudio evaluate` computes the mel of whole recordings (duration=None).
    mel = MelSpectrogramTransformer(**{**MEL, "duration": None}).fit([noise(16000)])
    mel.transform([noise(16000)])  # builds its log-mel module first
    assert peak_while_refused(lambda: mel.transform([path]), match) < SMALL_PEAK


def test_the_budget_is_checked_before_the_allocation_it_bounds(tmp_path, monkeypatch):
    """A declared length that could be allocated (16 MiB) is not: the budget comes first."""
    monkeypatch.setattr(audio, "MAX_LOAD_BYTES", 2**20)
    path = forged_flac(tmp_path / "forged.flac", 4000, 2**22)
    assert peak_while_refused(lambda: load_audio(path, sample_rate=16000), "MAX_LOAD_BYTES") < (
        2**20
    )


def test_a_wav_declaring_more_data_than_it_holds_is_refused_as_truncated(tmp_path):
    path = forged_wav(tmp_path / "forged.wav", 4000, 2**32 - 16)
    match = f"^{re.escape(str(path))}: truncated: the header declares 4294967280 bytes"
    assert peak_while_refused(lambda: load_audio(path), match) < SMALL_PEAK
    assert (
        peak_while_refused(lambda: list(stream_audio(path, block_seconds=1.0)), match) < SMALL_PEAK
    )


def expected_load_bytes(n_frames, n_channels, rate, sample_rate, mono) -> int:
    """The documented budget: decoded float32 samples, their mono mix, resampled output."""
    samples = n_frames * n_channels + (n_frames if mono and n_channels > 1 else 0)
    if rate != sample_rate:
        samples += (1 if mono else n_channels) * round(n_frames * sample_rate / rate)
    return 4 * samples


@pytest.mark.parametrize(
    ("rate", "n_channels", "sample_rate", "mono"),
    [(16000, 1, 16000, True), (48000, 1, 32000, True), (44100, 2, 32000, True),
     (8000, 2, 32000, False), (32000, 3, 32000, True)],
)  # fmt: skip
def test_the_budget_counts_decoded_mixed_and_resampled_samples(
    tmp_path, monkeypatch, rate, n_channels, sample_rate, mono
):
    path = tmp_path / "clip.wav"
    soundfile.write(path, noise(rate // 10, n_channels), rate)
    n_bytes = expected_load_bytes(rate // 10, n_channels, rate, sample_rate, mono)
    monkeypatch.setattr(audio, "MAX_LOAD_BYTES", n_bytes)
    load_audio(path, sample_rate=sample_rate, mono=mono)  # exactly at the budget
    monkeypatch.setattr(audio, "MAX_LOAD_BYTES", n_bytes - 1)
    with pytest.raises(AudioError, match=r"would allocate .* above MAX_LOAD_BYTES"):
        load_audio(path, sample_rate=sample_rate, mono=mono)
    # Only the part that is read counts.
    half = load_audio(path, sample_rate=sample_rate, mono=mono, duration_seconds=0.05)
    assert half.shape[-1] == round(0.05 * sample_rate)


def test_the_budget_counts_what_an_array_adds(monkeypatch):
    waveform = noise(1000)
    monkeypatch.setattr(audio, "MAX_LOAD_BYTES", 0)
    load_audio(waveform, sample_rate=16000)  # already in memory, not resampled
    monkeypatch.setattr(audio, "MAX_LOAD_BYTES", 4 * 32000 - 1)
    with pytest.raises(AudioError, match=r"^array input: its 1000 frames .*MAX_LOAD_BYTES"):
        load_audio(waveform, sample_rate=32000, source_rate=1000)


def test_streaming_a_forged_length_gives_what_is_there_then_an_error(tmp_path):
    path = tmp_path / "forged.flac"
    soundfile.write(path, noise(150_000), 16000, subtype="PCM_16")
    original = soundfile.read(path, dtype="float32")[0]
    forge_flac_length(path, FLAC_MAX_FRAMES)
    blocks = []
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match=r"declares 68719476735 frames .* ends after 150000"):
            for block in stream_audio(path, block_seconds=1.0, sample_rate=16000):
                blocks.append(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < SMALL_PEAK
    # All of it, the read that crosses the end of the data included: 9 whole 1-s blocks
    # and the rest. (soundfile's own read lost that last read's 18,928 frames: it seeks
    # after reading, and the seek past the data failed.)
    np.testing.assert_array_equal(np.concatenate(blocks), original)


def test_detect_lists_a_forged_length_and_scores_the_others(three_files, tmp_path):
    forged = forged_flac(tmp_path / "forged.flac", 4000, FLAC_MAX_FRAMES, PROBE_RATE)
    detections = run_detect(probe(), [three_files[0], forged, three_files[2]])
    [error] = detections.attrs["errors"]
    assert error["file"] == str(forged) and "header declares" in error["error"]
    # Its real 4,000 frames are scored, as any file that stops part-way.
    assert detections.attrs["durations"][str(forged)] == pytest.approx(4000 / PROBE_RATE)
    scored = {str(three_files[0]), str(forged), str(three_files[2])}
    assert set(detections.attrs["durations"]) == scored


# -- one file failing in a batch --------------------------------------------------------


class FailsOnMarker(WindowRecorder):
    """Scores as WindowRecorder, but raises ``error`` on a window starting with MARKER."""

    MARKER = 0.75

    def __init__(self, error=None):
        self.error = error

    def predict_proba(self, X):
        if any(window[0] == self.MARKER for window in X):
            raise self.error
        return super().predict_proba(X)


def failing_stream(bad: str, error: BaseException):
    """The stream_audio detection reads with, raising ``error`` for the file ``bad``."""
    stream = windows.stream_audio

    def fails(source, **kwargs):
        if str(source) == bad:
            raise error
        return stream(source, **kwargs)

    return fails


MEMORY_ERROR = MemoryError("Unable to allocate 2.70 GiB for an array with shape (724000000,)")


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("where", ["decoding", "scoring"])
def test_a_memory_error_skips_that_file_and_keeps_the_others(
    three_files, monkeypatch, caplog, n_jobs, where
):
    bad = str(three_files[1])
    model = FailsOnMarker(MEMORY_ERROR).fit()
    if where == "decoding":
        monkeypatch.setattr(windows, "stream_audio", failing_stream(bad, MEMORY_ERROR))
    else:
        soundfile.write(bad, np.full(1600, FailsOnMarker.MARKER), PROBE_RATE, subtype="FLOAT")
    with caplog.at_level(logging.ERROR, "sklearn_birdaudio.detection"):
        detections = run_detect(model, three_files, n_jobs=n_jobs)
    assert detections.attrs["errors"] == [
        {"file": bad, "error": f"{bad}: MemoryError: {MEMORY_ERROR}"}
    ]
    assert f"skipped {bad}: MemoryError" in caplog.text
    good = [three_files[0], three_files[2]]
    assert list(detections.attrs["durations"]) == [str(path) for path in good]
    assert detections.attrs["durations"][str(good[0])] == pytest.approx(0.05)
    pd.testing.assert_frame_equal(detections, run_detect(model, good))
    assert len(detections) == 2 * 10 * 2  # two files, ten windows, two classes


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_an_interruption_still_stops_the_batch(three_files, monkeypatch, n_jobs, interruption):
    failing = failing_stream(str(three_files[1]), interruption())
    monkeypatch.setattr(windows, "stream_audio", failing)
    with pytest.raises(interruption):
        run_detect(probe(), three_files, n_jobs=n_jobs)


def test_a_file_neither_scored_nor_failed_is_listed(three_files, monkeypatch):
    """Whatever goes wrong inside, no source leaves detect unaccounted for."""
    monkeypatch.setattr(
        scoring.FileScorer, "_detect", lambda self, model, source, name, *args, **kwargs: (
            scoring.FileResult(name, None, None, None)
        )
    )  # fmt: skip
    detections = run_detect(probe(), three_files[:1])
    assert detections.attrs["durations"] == {}
    [error] = detections.attrs["errors"]
    assert error["error"] == (
        f"{three_files[0]}: no window was scored (no audio at the model's 32000 Hz); expected "
        "at least one sample."
    )


# -- non-finite scores ------------------------------------------------------------------


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_model_with_nan_weights_gives_an_error_per_file(fitted, tmp_path, n_jobs):
    X, _, _ = songs(2, 1)
    paths = [tmp_path / f"song{index}.wav" for index in range(2)]
    for path, waveform in zip(paths, X, strict=True):
        soundfile.write(path, waveform, SAMPLE_RATE)
    corrupt = copy.deepcopy(fitted)
    with torch.no_grad():
        next(corrupt.named_steps["cnn"].module_.parameters()).fill_(float("nan"))
    assert np.isnan(corrupt.predict_proba(list(X))).all()
    detections = detect(corrupt, [str(path) for path in paths], n_jobs=n_jobs, verbose=0)
    assert len(detections) == 0 and detections.attrs["durations"] == {}
    assert [error["file"] for error in detections.attrs["errors"]] == [str(p) for p in paths]
    for error in detections.attrs["errors"]:
        assert error["error"] == (
            f"{error['file']}: ValueError: the model returned non-finite scores (NaN or "
            "infinite) for 1 of 1 windows in a batch; expected probabilities in [0, 1]: the "
            "model file may be corrupt (retrain it or restore a good copy)."
        )
    # The model itself is unchanged: detect scores through a wrapper.
    healthy = detect(fitted, [str(path) for path in paths], verbose=0)
    assert healthy.attrs["errors"] == [] and len(healthy.attrs["durations"]) == 2


class InfiniteOnMarker(FailsOnMarker):
    def predict_proba(self, X):
        scores = WindowRecorder.predict_proba(self, X)
        scores[[window[0] == self.MARKER for window in X], 1] = np.inf
        return scores


def test_only_the_file_with_non_finite_scores_is_an_error(three_files):
    bad = str(three_files[1])
    soundfile.write(bad, np.full(1600, FailsOnMarker.MARKER), PROBE_RATE, subtype="FLOAT")
    model = InfiniteOnMarker().fit()
    detections = run_detect(model, three_files, batch_size=4)
    [error] = detections.attrs["errors"]
    assert error["file"] == bad and "non-finite scores" in error["error"]
    assert "for 4 of 4 windows" in error["error"]
    good = [three_files[0], three_files[2]]
    pd.testing.assert_frame_equal(detections, run_detect(model, good, batch_size=4))


# -- recordings too short for a window, or for one sample -------------------------------


@pytest.mark.parametrize(
    ("rate", "scored"),
    [(SAMPLE_RATE, True), (22050, True), (44100, False)],  # 1, 0.73 and 0.36 model samples
)
def test_a_one_sample_file_is_scored_or_refused_never_dropped(fitted, tmp_path, rate, scored):
    path = tmp_path / "click.wav"
    soundfile.write(path, np.array([0.5], dtype=np.float32), rate)
    detections = detect(fitted, [str(path)], verbose=0)
    if scored:  # as one window, zero-padded by the mel as short clips are
        assert detections.attrs["errors"] == []
        assert detections.attrs["durations"] == {str(path): 1 / SAMPLE_RATE}
        scores = window_scores(fitted, path)
        assert scores.scores.shape == (1, 4) and np.isfinite(scores.scores).all()
    else:
        assert detections.attrs["durations"] == {}
        assert detections.attrs["errors"] == [
            {
                "file": str(path),
                "error": f"{path}: 1 sample(s) at 44100 Hz is shorter than one sample at "
                "sample_rate=16000 Hz; expected a longer recording.",
            }
        ]


@st.composite
def short_recordings(draw):
    """(n_samples, sample rate, channels): from 1 sample to three probe windows."""
    rate = draw(st.integers(MIN_SAMPLE_RATE, 96000))
    n_samples = draw(st.integers(1, math.ceil(3 * WINDOW_S * rate)))
    return n_samples, rate, draw(st.sampled_from([1, 2]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(short_recordings(), min_size=1, max_size=3))
def test_every_short_file_is_in_durations_or_errors_exactly_once(recordings):
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, (n_samples, rate, n_channels) in enumerate(recordings):
            paths.append(Path(folder) / f"r{index}.wav")
            waveform = noise(n_samples, n_channels, seed=index)
            soundfile.write(paths[-1], waveform, rate, subtype="FLOAT")
        detections = run_detect(probe(), paths)
    durations = detections.attrs["durations"]
    errors = {error["file"]: error["error"] for error in detections.attrs["errors"]}
    for path, (n_samples, rate, _) in zip(paths, recordings, strict=True):
        name = str(path)
        assert (name in durations) != (name in errors), (name, durations, errors)
        # soxr gives round(n * 32000 / rate) samples, halves up: none below half a sample.
        n_model_samples = math.floor(n_samples * PROBE_RATE / rate + 0.5)
        if n_model_samples:
            assert durations[name] == pytest.approx(n_model_samples / PROBE_RATE)
            assert abs(durations[name] - n_samples / rate) <= 0.5 / PROBE_RATE + 1e-12
        else:
            assert "is shorter than one sample at sample_rate=32000 Hz" in errors[name]


@settings(max_examples=40, deadline=None)
@given(
    n_samples=st.integers(1, 8),
    rate=st.integers(MIN_SAMPLE_RATE, 96000),
    sample_rate=st.sampled_from([16000, 32000]),
)
def test_streaming_and_loading_agree_on_the_shortest_recordings(n_samples, rate, sample_rate):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "short.wav"
        soundfile.write(path, noise(n_samples), rate, subtype="FLOAT")
        try:
            loaded = load_audio(path, sample_rate=sample_rate)
        except AudioError as error:
            assert "shorter than one sample" in str(error)
            with pytest.raises(AudioError, match=re.escape(str(error))):
                list(stream_audio(path, block_seconds=1.0, sample_rate=sample_rate))
            return
        streamed = np.concatenate(
            list(stream_audio(path, block_seconds=1.0, sample_rate=sample_rate))
        )
    assert len(loaded) >= 1
    np.testing.assert_allclose(streamed, loaded, atol=1e-6)


# -- labels -----------------------------------------------------------------------------

LABELS = ["wren", "robin", "wren", "robin", "wren", "robin"]


def with_none(labels, positions):
    return [None if index in positions else label for index, label in enumerate(labels)]


@pytest.fixture(scope="module")
def spectrogram_batch():
    return spectrograms(6, 0)[0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    positions=st.sets(st.integers(0, 5), min_size=1, max_size=5),
    container=st.sampled_from(["list", "series", "object array"]),
    missing=st.sampled_from([None, np.nan, pd.NA]),
)
def test_labels_with_missing_values_are_a_value_error_naming_y(
    spectrogram_batch, positions, container, missing
):
    labels = [missing if index in positions else label for index, label in enumerate(LABELS)]
    y = {
        "list": labels,
        "series": pd.Series(labels, dtype=object),
        "object array": np.array(labels, dtype=object),
    }[container]
    classifier = AttentionCNNClassifier(verbose=0)
    with pytest.raises(ValueError, match=rf"^y contains {len(positions)} missing label\(s\)"):
        classifier.fit(spectrogram_batch, y)


def test_missing_labels_through_a_pipeline_and_in_indicator_rows(spectrogram_batch):
    X, _, _ = songs(6, 0)
    with pytest.raises(ValueError, match=r"^y contains 1 missing label\(s\) \(None or NaN\); "):
        tiny_pipeline().fit(list(X), with_none(LABELS, {2}))
    indicators = np.array([[1, 0], [0, None], [1, 1], [0, 1], [1, 0], [0, 1]], dtype=object)
    with pytest.raises(ValueError, match=r"^y contains 1 missing label"):
        AttentionCNNClassifier(verbose=0).fit(spectrogram_batch, indicators)


def test_labels_of_types_that_do_not_compare_are_a_value_error(spectrogram_batch):
    y = np.array(["wren", 1, "wren", 1, "wren", 1], dtype=object)
    with pytest.raises(ValueError, match=r"^y holds labels of types that cannot be compared"):
        AttentionCNNClassifier(verbose=0).fit(spectrogram_batch, y)


@pytest.mark.parametrize("estimator", ["linear", "voting"])
def test_every_estimator_taking_y_names_missing_and_mixed_labels(estimator):
    from sklearn_birdaudio import EmbeddingLogisticRegression, VotingClassifier

    model = EmbeddingLogisticRegression()
    if estimator == "voting":
        model = VotingClassifier([("a", model), ("b", EmbeddingLogisticRegression(C=0.5))])
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match=r"^y contains 1 missing label\(s\) \(None or NaN\)"):
        model.fit(X, with_none(LABELS, {3}))
    mixed = np.array(["wren", 1, "wren", 1, "wren", 1], dtype=object)
    with pytest.raises(ValueError, match=r"^y holds labels of types that cannot be compared"):
        model.fit(X, mixed)


def test_the_progress_bar_ends_at_the_audio_scored_without_clamping(three_files, tmp_path):
    """A header that claims 2^36 frames made the total huge, and one that cannot be read
    made it 0 ("0/0 s audio", a negative ETA, tqdm's "clamping frac" warning): the total
    now follows what each file really gave, and an unknown total is a plain count."""
    import io
    import warnings as warnings_module

    from tqdm import TqdmWarning

    forged = forged_flac(tmp_path / "forged.flac", 4000, FLAC_MAX_FRAMES, PROBE_RATE)
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    for sources, total_known in (([three_files[0], forged], True), ([broken], False)):
        stream = io.StringIO()
        with warnings_module.catch_warnings(record=True) as caught:
            warnings_module.simplefilter("always")
            bars = []
            original = detection.tqdm

            def recording_tqdm(*args, _original=original, _stream=stream, _bars=bars, **kwargs):
                bar = _original(*args, **{**kwargs, "file": _stream})
                _bars.append(bar)
                return bar

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(detection, "tqdm", recording_tqdm)
                run_detect(probe(), sources, verbose=1)
        assert not [w for w in caught if issubclass(w.category, TqdmWarning)]
        [bar] = bars
        text = stream.getvalue()
        if total_known:  # the forged file's 2^36 frames are gone from the total
            assert bar.total == pytest.approx(bar.n)
            assert bar.n == pytest.approx(0.05 + 4000 / PROBE_RATE)  # the forged file's real audio
        else:
            assert bar.total is None and "0/0" not in text and "detect: 0 s audio [" in text


def test_the_progress_bar_never_passes_its_total_when_headers_understate_lengths(
    three_files, monkeypatch
):
    """An MP3's length in its header is an estimate: the audio scored may pass it before
    the file's real length is known. The total grows instead of tqdm clamping the bar."""
    import io
    import warnings as warnings_module

    from tqdm import TqdmWarning

    real = detection._expected_seconds
    monkeypatch.setattr(
        detection, "_expected_seconds", lambda *args: real(*args) / 3
    )  # headers that claim a third of the audio
    stream, bars, original = io.StringIO(), [], detection.tqdm

    def recording_tqdm(*args, **kwargs):  # redrawn at every update: any clamping shows
        bars.append(original(*args, **{**kwargs, "file": stream, "mininterval": 0}))
        return bars[-1]

    monkeypatch.setattr(detection, "tqdm", recording_tqdm)
    with warnings_module.catch_warnings(record=True) as caught:
        warnings_module.simplefilter("always")
        run_detect(probe(), three_files, verbose=1, window_seconds=0.01)
    assert not [w for w in caught if issubclass(w.category, TqdmWarning)]
    [bar] = bars
    assert bar.n == pytest.approx(0.15) and bar.total == pytest.approx(0.15)
    assert "<-" not in stream.getvalue()  # no negative ETA
