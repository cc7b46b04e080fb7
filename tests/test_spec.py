"""The audio spec: one source of truth for rate, hop, window and clip, from front end to detect."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline
from test_classifier import MEL, SAMPLE_RATE, TINY_CNN, songs, tiny_pipeline
from test_detection import expected_grid

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    AudioSpec,
    Detections,
    MelSpectrogramTransformer,
    Spectrograms,
    VotingClassifier,
    detect,
    get_audio_spec,
    stream_windows,
    write_detections,
)
from sklearn_birdaudio.spec import combine_specs

# -- the spec itself ----------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    duration=st.floats(0.05, 1.5),
    hop_length=st.sampled_from([64, 100, 128, 256, 333, 512]),
    sample_rate=st.sampled_from([8000, 16000, 22050, 32000]),
)
def test_frames_of_the_spec_are_those_the_front_end_makes(duration, hop_length, sample_rate):
    mel = MelSpectrogramTransformer(
        sample_rate=sample_rate, duration=duration, n_fft=256, hop_length=hop_length,
        n_mels=8, fmax=None,
    )  # fmt: skip
    spectrograms = mel.fit_transform(np.zeros((1, sample_rate // 4), dtype=np.float32))
    assert spectrograms.shape[-1] == mel.audio_spec.frames(duration)
    assert spectrograms.audio_spec == mel.audio_spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sample_rate": 0}, "AudioSpec: sample_rate must be a positive integer"),
        ({"hop_length": True}, "AudioSpec: hop_length must be a positive integer"),
        ({"window_seconds": float("nan")}, "AudioSpec: window_seconds must be a positive"),
        ({"clip_seconds": -1.0}, "AudioSpec: clip_seconds must be a positive"),
        ({"frequency_range": (500.0, 100.0)}, "AudioSpec: frequency_range must be"),
    ],
)
def test_a_spec_refuses_values_that_frame_nothing(changes, message):
    with pytest.raises(ValueError, match=message):
        AudioSpec(**changes)


def test_the_spec_is_frozen_and_takes_numpy_numbers():
    spec = AudioSpec(sample_rate=np.int64(16000), hop_length=np.int32(256))
    assert spec.sample_rate == 16000 and type(spec.sample_rate) is int
    with pytest.raises(AttributeError):
        spec.hop_length = 128
    assert spec.replace(hop_length=128).hop_length == 128 and spec.hop_length == 256


# -- spectrograms carry it ----------------------------------------------------------------


def test_spectrograms_keep_their_spec_through_slicing_pickling_and_caches(tmp_path):
    mel = MelSpectrogramTransformer(**{**MEL, "hop_length": 128})
    X, _, _ = songs(4, 0)
    spectrograms = mel.fit_transform(X)
    assert isinstance(spectrograms, Spectrograms)
    for carried in (
        spectrograms[1:3],
        spectrograms[[0, 2]],
        spectrograms.take([3], axis=0),
        pickle.loads(pickle.dumps(spectrograms)),
        joblib.Memory(tmp_path).cache(lambda array: array)(spectrograms),
    ):
        assert carried.audio_spec == mel.audio_spec
    assert type(np.asarray(spectrograms)) is np.ndarray  # what estimators compute on


def test_a_pipeline_cache_keeps_the_spec_the_classifier_learns(tmp_path):
    X, Y, _ = songs(16, 0, as_frame=True)
    pipeline = tiny_pipeline(max_epochs=1).set_params(mel__hop_length=128)
    pipeline.memory = str(tmp_path)
    pipeline.fit(X, Y)
    again = tiny_pipeline(max_epochs=1).set_params(mel__hop_length=128)
    again.memory = str(tmp_path)
    again.fit(X, Y)  # the spectrograms now come from the cache
    for fitted in (pipeline, again):
        assert fitted.named_steps["cnn"].audio_spec_.hop_length == 128


# -- the classifier learns it -------------------------------------------------------------


@pytest.mark.parametrize("hop_length", [128, 256, 512])
def test_the_classifier_frames_its_window_with_the_hop_of_its_data(hop_length):
    X, Y, _ = songs(8, 0, as_frame=True)
    mel = MelSpectrogramTransformer(**{**MEL, "hop_length": hop_length, "duration": None})
    cnn = AttentionCNNClassifier(**{**TINY_CNN, "max_epochs": 1})
    cnn.fit(mel.fit_transform(X), Y)
    assert cnn.audio_spec_.hop_length == hop_length
    # a 1-s window is as many frames as a 1-s clip of this front end has
    one_second = MelSpectrogramTransformer(**{**MEL, "hop_length": hop_length, "duration": 1.0})
    assert cnn._window_frames == one_second.fit_transform(X[:1]).shape[-1]


def test_plain_arrays_take_the_default_spec_unless_wrapped():
    X = np.random.default_rng(0).normal(size=(6, 1, 8, 40)).astype(np.float32)
    y = ["owl", "wren"] * 3
    params = {**TINY_CNN, "max_epochs": 1, "module__n_heads": 2}
    plain = AttentionCNNClassifier(**params).fit(X, y)
    assert plain.audio_spec_.frames_match(AudioSpec())
    spec = AudioSpec(sample_rate=16000, hop_length=400)
    wrapped = AttentionCNNClassifier(**params).fit(Spectrograms(X, spec), y)
    assert wrapped.audio_spec_.frames_match(spec) and wrapped._window_frames == 41


def test_predicting_spectrograms_of_another_framing_is_refused():
    X, Y, _ = songs(8, 0, as_frame=True)
    model = tiny_pipeline(max_epochs=1).fit(X, Y)
    other = MelSpectrogramTransformer(**{**MEL, "hop_length": 128}).fit_transform(X[:2])
    with pytest.raises(ValueError, match="hop_length=128, but AttentionCNNClassifier was fitted"):
        model.named_steps["cnn"].predict_proba(other)
    model.named_steps["cnn"].predict_proba(np.asarray(other)[..., :32])  # plain: trusted


def test_changing_the_front_ends_hop_works_end_to_end_through_detect():
    X, Y, _ = songs(60, 0, as_frame=True)
    model = tiny_pipeline(max_epochs=2).set_params(mel__hop_length=128).fit(X, Y)
    waveform = np.concatenate(list(X[:3]))
    detections = detect(model, waveform, input_sample_rate=SAMPLE_RATE, min_confidence=0.0,
                        verbose=0)  # fmt: skip
    windows = [waveform[k * SAMPLE_RATE : (k + 1) * SAMPLE_RATE] for k in range(3)]
    expected = model.predict_proba(windows)
    scores = detections.pivot_table(index="start_s", columns="label", values="confidence")
    np.testing.assert_allclose(scores[list(model.classes_)].to_numpy(), expected, atol=1e-6)


# -- detect asks the model ----------------------------------------------------------------


def test_an_ensembles_spec_is_its_members_agreement():
    a = AudioSpec(sample_rate=16000, hop_length=256, window_seconds=1.0, clip_seconds=1.0,
                  frequency_range=(20.0, 8000.0))  # fmt: skip
    b = AudioSpec(sample_rate=16000, hop_length=128, window_seconds=1.0, clip_seconds=2.0,
                  frequency_range=(0.0, 6000.0))  # fmt: skip
    combined = combine_specs([a, b])
    assert combined.waveform_rate == 16000 and combined.window_seconds == 1.0
    assert combined.clip_seconds == 1.0 and combined.frequency_range == (0.0, 8000.0)
    assert combined.hop_length is None  # the members frame differently
    with pytest.raises(ValueError, match=r"different sample rates \[16000, 32000\]"):
        combine_specs([a, AudioSpec()])


def test_get_audio_spec_of_pipelines_ensembles_and_front_ends():
    X, Y, _ = songs(16, 0, as_frame=True)
    first = tiny_pipeline(max_epochs=1).fit(X, Y)
    second = tiny_pipeline(max_epochs=1, random_state=1).fit(X, Y)
    assert get_audio_spec(first) == first.named_steps["cnn"].audio_spec_
    ensemble = VotingClassifier([("a", first), ("b", second)]).fit(X, Y)
    assert get_audio_spec(ensemble).window_seconds == 1.0
    unfitted = Pipeline(
        [("mel", MelSpectrogramTransformer(**MEL)), ("cnn", AttentionCNNClassifier())]
    )
    assert get_audio_spec(unfitted) == unfitted.named_steps["mel"].audio_spec
    assert get_audio_spec(object()) is None


# -- windows ------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    n_samples=st.integers(1, 5000),
    window=st.integers(1, 700),
    hop_share=st.floats(0.1, 1.0),
    block_seconds=st.floats(0.001, 0.5),
)
def test_stream_windows_tiles_any_recording_as_documented(
    n_samples, window, hop_share, block_seconds
):
    rate = 1000
    hop = max(1, int(window * hop_share))
    waveform = np.arange(n_samples, dtype=np.float32)
    windows = list(stream_windows(
        waveform, window_seconds=window / rate, hop_seconds=hop / rate, sample_rate=rate,
        block_seconds=block_seconds,
    ))  # fmt: skip
    grid = expected_grid(n_samples, window, hop)  # detect's documented grid
    assert [(start, start + len(samples)) for start, samples in windows] == grid
    for start, samples in windows:
        np.testing.assert_array_equal(samples, waveform[start : start + window])


# -- detections carry their metadata -----------------------------------------------------


def test_two_runs_concatenated_keep_every_files_duration_and_error(tmp_path, write_audio):
    X, Y, _ = songs(60, 0, as_frame=True)
    model = tiny_pipeline(max_epochs=2).fit(X, Y)
    quiet = write_audio("quiet.wav", np.zeros(2 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    songful = write_audio("songs.wav", np.concatenate(list(X[:3])), SAMPLE_RATE)
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    sources = [quiet, songful, broken]
    at_once = detect(model, sources, min_confidence=0.0, verbose=0)
    first = detect(model, sources[:1], min_confidence=0.0, verbose=0)
    second = detect(model, sources[1:], min_confidence=0.0, verbose=0)
    combined = pd.concat([first, second], ignore_index=True)
    assert isinstance(combined, Detections)
    assert combined.durations == at_once.durations == {str(quiet): 2.0, str(songful): 3.0}
    assert combined.errors == at_once.errors and combined.errors[0]["file"] == str(broken)
    assert combined.frequency_range == at_once.frequency_range
    # Without the quiet file's rows (filtered out), its 2 s stay on the Raven timeline.
    for name, table in (("combined", combined), ("at_once", at_once)):
        without_quiet = table[table["file"] != str(quiet)]
        assert without_quiet.durations[str(quiet)] == 2.0
        write_detections(without_quiet, tmp_path / f"{name}.txt", format="raven")
    assert (tmp_path / "combined.txt").read_bytes() == (tmp_path / "at_once.txt").read_bytes()
    rows = pd.read_csv(tmp_path / "combined.txt", sep="\t")
    assert rows["Begin Time (s)"].min() >= 2.0  # songs.wav starts after quiet.wav's 2 s


# -- found in review ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"window_seconds": 0, "hop_seconds": 1}, "window_seconds must be a positive"),
        ({"window_seconds": float("nan"), "hop_seconds": 1}, "window_seconds must be a positive"),
        ({"window_seconds": 0.5, "hop_seconds": 5}, r"hop_seconds must be a finite number in \("),
        ({"window_seconds": 1, "hop_seconds": 0}, "hop_seconds must be"),
    ],
)  # fmt: skip
def test_stream_windows_refuses_a_grid_that_frames_nothing(keywords, message):
    with pytest.raises(ValueError, match=message):
        stream_windows(np.zeros(100, dtype=np.float32), sample_rate=100, **keywords)


def test_the_spec_comes_from_the_front_end_wherever_it_sits_and_as_it_is_now():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer

    mel = MelSpectrogramTransformer(duration=3, input_sample_rate=48000, fmin=100, fmax=8000)
    for model in (
        Pipeline([("f", Pipeline([("mel", mel)])), ("clf", LogisticRegression())]),
        Pipeline([("a", FunctionTransformer()), ("mel", mel), ("clf", LogisticRegression())]),
    ):
        spec = get_audio_spec(model)
        assert (spec.waveform_rate, spec.window_seconds) == (48000, 3.0)
        assert spec.frequency_range == (100.0, 8000.0)
    X, Y, _ = songs(16, 0, as_frame=True)
    fitted = tiny_pipeline(max_epochs=1).fit(X, Y)
    fitted.set_params(mel__input_sample_rate=48000, mel__fmax=6000)  # the front end, live
    assert get_audio_spec(fitted).waveform_rate == 48000
    assert get_audio_spec(fitted).frequency_range[1] == 6000.0
    fitted.set_params(mel__hop_length=128)  # other frames than the classifier learned
    with pytest.raises(ValueError, match="fitted on spectrograms at sample_rate=16000, hop_le"):
        get_audio_spec(fitted)


def test_a_refused_fit_leaves_the_learned_spec_as_it_was():
    X, Y, _ = songs(8, 0, as_frame=True)
    model = tiny_pipeline(max_epochs=1).fit(X, Y)
    cnn = model.named_steps["cnn"]
    before = cnn.audio_spec_
    bad = Spectrograms(np.zeros((2, 16000), dtype=np.float32), AudioSpec(hop_length=160))
    with pytest.raises(ValueError, match="expected log-mel spectrograms"):
        cnn.fit(bad, ["a", "b"])
    assert cnn.audio_spec_ is before


def test_the_classifier_says_where_its_old_framing_parameters_went():
    X = np.zeros((2, 1, 8, 10), dtype=np.float32)
    with pytest.raises(ValueError, match=r"has no hop_length any more: the front end frames"):
        AttentionCNNClassifier(hop_length=256, verbose=0).fit(X, ["a", "b"])


def test_detections_merge_their_metadata_when_pandas_names_the_inputs_objs():
    """pandas 2 hands concat's inputs to __finalize__ as ``objs``, pandas 3 as ``input_objs``."""
    from types import SimpleNamespace

    rows = pd.DataFrame({"file": ["a.wav"], "start_s": [0.0], "end_s": [1.0], "label": ["owl"],
                         "confidence": [0.5]})  # fmt: skip
    first = Detections.from_rows(rows, durations={"a.wav": 1.0})
    second = Detections.from_rows(rows.iloc[:0], durations={"b.wav": 2.0},
                                  errors=[{"file": "c.wav", "error": "broken"}])  # fmt: skip
    for name in ("objs", "input_objs"):
        merged = Detections(rows).__finalize__(
            SimpleNamespace(**{name: [first, second]}), method="concat"
        )
        assert merged.durations == {"a.wav": 1.0, "b.wav": 2.0}
        assert merged.errors == [{"file": "c.wav", "error": "broken"}]


def test_a_model_of_long_clips_saves_and_loads(tmp_path):
    from sklearn_birdaudio import load_model, save_model

    X = np.random.default_rng(0).normal(size=(4, 1, 8, 12)).astype(np.float32)
    spec = AudioSpec(window_seconds=900.0, clip_seconds=900.0)  # a 15-minute front end
    cnn = AttentionCNNClassifier(**{**TINY_CNN, "max_epochs": 1, "module__n_heads": 2})
    cnn.fit(Spectrograms(X, spec), ["a", "b"] * 2)
    assert cnn.audio_spec_.window_seconds == 900.0
    loaded = load_model(save_model(cnn, tmp_path / "long.safetensors"))
    assert loaded.audio_spec_ == cnn.audio_spec_


def test_detect_takes_its_old_positional_window_with_a_warning():
    X, Y, _ = songs(16, 0, as_frame=True)
    model = tiny_pipeline(max_epochs=1).fit(X, Y)
    waveform = np.concatenate(list(X[:2]))
    with pytest.warns(FutureWarning, match="Pass window_seconds=0.5 as keyword args"):
        old = detect(model, waveform, 0.5, input_sample_rate=SAMPLE_RATE, verbose=0)
    new = detect(model, waveform, window_seconds=0.5, input_sample_rate=SAMPLE_RATE, verbose=0)
    pd.testing.assert_frame_equal(old, new)
