"""Tests of MelSpectrogramTransformer and the log-mel computation."""

import inspect
import os
import pickle

import joblib
import librosa
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_birdaudio import (
    AudioError,
    MelSpectrogramTransformer,
    features,
    load_audio,
    valid_frames,
)
from sklearn_birdaudio.devices import resolve_device
from sklearn_birdaudio.log_mel import LogMelSpectrogram

SPEC = {"n_fft": 1024, "hop_length": 512, "n_mels": 128, "fmin": 20, "fmax": 16000}


def librosa_log_mel(waveform, sample_rate=32000, top_db=80.0, **params):
    """The reference: librosa's documented usage, one clip at a time."""
    params = {**SPEC, **params}
    power = librosa.feature.melspectrogram(y=waveform, sr=sample_rate, **params)
    return librosa.power_to_db(power, top_db=top_db)


def random_clips(n_clips, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.01, 1.0, size=(n_clips, 1))
    return (scales * rng.standard_normal((n_clips, n_samples))).astype(np.float32)


# -- equivalence with librosa -----------------------------------------------------------


def test_equals_librosa_on_random_clips_within_1e_3_db():
    clips = random_clips(6, 160000)
    clips[1, 80000:] = 0.0  # half silence
    clips[2] = np.clip(clips[2] * 50, -1, 1)  # clipped
    output = MelSpectrogramTransformer().fit_transform(clips)
    assert output.shape == (6, 1, 128, 313) and output.dtype == np.float32
    for clip, spectrogram in zip(clips, output, strict=True):
        np.testing.assert_allclose(spectrogram[0], librosa_log_mel(clip), atol=1e-3, rtol=0)


@pytest.mark.filterwarnings("ignore:n_fft=1024 is too large:UserWarning")  # librosa's
@pytest.mark.parametrize("n_samples", [1, 511, 1024, 30001])
def test_equals_librosa_for_odd_lengths_with_duration_none(n_samples):
    clip = random_clips(1, n_samples, seed=n_samples)[0]
    output = MelSpectrogramTransformer(duration=None).fit_transform([clip])
    reference = librosa_log_mel(clip)
    assert output.shape[-1] == reference.shape[-1]
    np.testing.assert_allclose(output[0, 0], reference, atol=1e-3, rtol=0)


def test_equals_librosa_with_other_parameters():
    clip = random_clips(1, 22050, seed=3)[0]
    params = {"n_fft": 512, "hop_length": 160, "n_mels": 40, "fmin": 0.0, "fmax": None}
    transformer = MelSpectrogramTransformer(sample_rate=22050, duration=1.0, top_db=None, **params)
    output = transformer.fit_transform([clip])
    reference = librosa_log_mel(clip, sample_rate=22050, top_db=None, **params)
    np.testing.assert_allclose(output[0, 0], reference, atol=1e-3, rtol=0)


@pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning")  # librosa's, 256 mels
@pytest.mark.parametrize("n_mels", [1, 31, 33, 100, 256])
def test_grouped_mel_product_equals_librosa_for_any_number_of_mels(n_mels):
    # The mel projection runs in groups of filters over the bins each group covers; a
    # group count that does not divide n_mels, or filters wider than a group, must not
    # change the mel power librosa computes.
    clip = random_clips(1, 16000, seed=n_mels)[0]
    params = {**SPEC, "n_mels": n_mels}
    module = LogMelSpectrogram(sample_rate=32000, **params)
    power = module.mel_power(torch.from_numpy(clip)[None].double())[0].numpy()
    reference = librosa.feature.melspectrogram(y=clip.astype(np.float64), sr=32000, **params)
    np.testing.assert_allclose(power, reference, rtol=1e-4, atol=1e-10)


def test_equals_librosa_on_the_test_files(data_dir):
    paths = [data_dir / "stereo_44k1.wav", data_dir / "chirp_22k05.flac"]
    output = MelSpectrogramTransformer(duration=1.0).fit_transform(paths)
    for path, spectrogram in zip(paths, output, strict=True):
        waveform = librosa.util.fix_length(load_audio(path), size=32000)
        np.testing.assert_allclose(spectrogram[0], librosa_log_mel(waveform), atol=1e-3, rtol=0)


def test_equals_librosa_on_real_recordings(shared_data):
    paths = sorted((shared_data / "xc-puerto-rico" / "audio").glob("*.mp3"))[:4]
    output = MelSpectrogramTransformer().fit_transform(paths)
    for path, spectrogram in zip(paths, output, strict=True):
        waveform = librosa.util.fix_length(load_audio(path, duration_seconds=5.0), size=160000)
        np.testing.assert_allclose(spectrogram[0], librosa_log_mel(waveform), atol=1e-3, rtol=0)


# -- the torch module -------------------------------------------------------------------


def test_chunked_frames_equal_one_pass():
    waveforms = torch.from_numpy(random_clips(3, 50000))
    whole = LogMelSpectrogram()(waveforms)
    chunked = LogMelSpectrogram(max_frames_per_chunk=7)(waveforms)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-4)


def test_padding_frames_are_nan_and_excluded_from_the_db_floor():
    loud_short = np.concatenate([np.ones(4096, np.float32), np.zeros(28000, np.float32)])
    quiet_long = 1e-3 * random_clips(1, 32000, seed=5)[0]
    waveforms = torch.from_numpy(np.stack([np.pad(loud_short[:4096], (0, 27904)), quiet_long]))
    lengths = torch.tensor([4096, 32000])
    output = LogMelSpectrogram()(waveforms, lengths).numpy()
    assert np.isnan(output[0, :, 9:]).all() and not np.isnan(output[0, :, :9]).any()
    assert not np.isnan(output[1]).any()
    np.testing.assert_allclose(output[1], librosa_log_mel(quiet_long), atol=1e-3, rtol=0)


# -- cropping, padding, lengths ---------------------------------------------------------


def test_short_input_is_zero_padded_like_librosa():
    clip = random_clips(1, 10000)[0]
    output = MelSpectrogramTransformer(duration=1.0).fit_transform([clip])
    reference = librosa_log_mel(np.pad(clip, (0, 22000)))
    np.testing.assert_allclose(output[0, 0], reference, atol=1e-3, rtol=0)


@pytest.mark.parametrize(("crop", "loud_second"), [("start", 0), ("center", 1), ("end", 2)])
def test_crop_keeps_the_requested_part(crop, loud_second, write_audio):
    # Three seconds, only one of them loud: the kept second must be the loud one.
    waveform = np.zeros(3 * 16000, dtype=np.float32)
    waveform[loud_second * 16000 : (loud_second + 1) * 16000] = tone(2000, 1.0, 16000)
    path = write_audio("three_seconds.wav", waveform, 16000, subtype="FLOAT")
    transformer = MelSpectrogramTransformer(
        sample_rate=16000, duration=1.0, fmax=8000, crop=crop, top_db=None
    )
    from_file, from_array = transformer.fit_transform([str(path), waveform])
    loudest_band_per_frame = from_file[0].max(axis=0)
    # The tone sounds in every kept frame (silence would be -100 dB).
    assert loudest_band_per_frame.min() > -30
    np.testing.assert_allclose(from_file, from_array, atol=0.05)


def test_duration_none_marks_where_each_recording_ends():
    clips = [random_clips(1, n, seed=n)[0] for n in (32000, 5000, 100000)]
    output = MelSpectrogramTransformer(duration=None).fit_transform(clips)
    frames = [1 + len(clip) // 512 for clip in clips]
    assert output.shape == (3, 1, 128, max(frames))
    mask = valid_frames(output)
    assert mask.sum(axis=1).tolist() == frames
    for clip, spectrogram, n_frames in zip(clips, output, frames, strict=True):
        np.testing.assert_allclose(
            spectrogram[0, :, :n_frames], librosa_log_mel(clip), atol=1e-3, rtol=0
        )


def test_minutes_long_input_is_computed_in_bounded_chunks():
    clip = random_clips(1, 3 * 60 * 8000, seed=9)[0]  # three minutes at 8 kHz
    transformer = MelSpectrogramTransformer(sample_rate=8000, duration=None, fmax=4000)
    output = transformer.fit_transform([clip])
    assert output.shape == (1, 1, 128, 1 + len(clip) // 512)
    assert np.isfinite(output).all()


def test_batch_size_does_not_change_the_result():
    clips = [random_clips(1, n, seed=n)[0] for n in (8000, 16000, 24000, 4000, 12000)]
    small = MelSpectrogramTransformer(duration=None, batch_size=2).fit_transform(clips)
    large = MelSpectrogramTransformer(duration=None, batch_size=64).fit_transform(clips)
    np.testing.assert_allclose(small, large, atol=1e-4, equal_nan=True)


def test_batches_of_long_recordings_are_bounded_by_audio_seconds(monkeypatch):
    """A batch stops at MAX_BATCH_SECONDS of audio; results do not depend on the batches."""
    from sklearn_birdaudio import features

    lengths = (16000, 48000, 8000, 40000, 24000, 32000)  # at 16 kHz: 1 to 3 s
    clips = [random_clips(1, n, seed=n)[0] for n in lengths]
    mel = {"sample_rate": 16000, "duration": None, "fmax": 8000, "batch_size": 64}
    expected = np.concatenate(
        [MelSpectrogramTransformer(**mel).fit_transform([clip]) for clip in clips[:1]]
    )
    whole = MelSpectrogramTransformer(**mel).fit_transform(clips)
    batch_seconds = []
    compute = features.MelSpectrogramTransformer._compute

    def recording_compute(self, module, waveforms, device):
        batch_seconds.append(sum(len(waveform) for waveform in waveforms) / 16000)
        return compute(self, module, waveforms, device)

    monkeypatch.setattr(features, "MAX_BATCH_SECONDS", 3.5)
    monkeypatch.setattr(features.MelSpectrogramTransformer, "_compute", recording_compute)
    bounded = MelSpectrogramTransformer(**mel).fit_transform(clips)
    # Inputs are added until the batch reaches 3.5 s: 1+3, 0.5+2.5+1.5, 2.
    assert batch_seconds == [4.0, 4.5, 2.0]
    np.testing.assert_allclose(bounded, whole, atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(bounded[:1, ..., : expected.shape[-1]], expected, atol=1e-4)
    # The longest (second) input sets the width; the others end in NaN frames.
    assert bounded.shape[-1] == 1 + 48000 // 512
    assert np.isnan(bounded[0, 0, 0, -1]) and not np.isnan(bounded[1, 0, 0, -1])


# -- inputs -----------------------------------------------------------------------------


def test_input_sample_rate_resamples_arrays():
    clip = tone(3000, 1.0, 16000)
    transformer = MelSpectrogramTransformer(duration=1.0, input_sample_rate=16000)
    expected = MelSpectrogramTransformer(duration=1.0).fit_transform(
        [load_audio(clip, source_rate=16000)]
    )
    np.testing.assert_allclose(transformer.fit_transform([clip]), expected, atol=1e-5)


def test_mixed_paths_stereo_arrays_and_frames(data_dir):
    path = data_dir / "stereo_44k1.wav"
    stereo = load_audio(path, mono=False)
    transformer = MelSpectrogramTransformer(duration=0.5)
    from_path, from_stereo, from_mono = transformer.fit_transform(
        [str(path), stereo, stereo.mean(axis=0)]
    )
    # Resampling two channels then averaging vs the reverse differs only by float rounding.
    np.testing.assert_allclose(from_path, from_stereo, atol=1e-3)
    np.testing.assert_allclose(from_path, from_mono, atol=1e-3)
    frame = pd.DataFrame({"path": [str(path), str(path)]})
    np.testing.assert_allclose(transformer.fit_transform(frame)[1], from_path, atol=1e-6)
    np.testing.assert_allclose(transformer.fit_transform(frame["path"])[0], from_path, atol=1e-6)
    three_d = np.stack([stereo, stereo])
    np.testing.assert_allclose(transformer.fit_transform(three_d)[0], from_path, atol=1e-3)


@pytest.mark.parametrize(
    ("X", "error", "message"),
    [
        ("recording.wav", ValueError, "wrap it in a list"),
        (np.zeros(1000), ValueError, "1-D array"),
        ([], ValueError, "no inputs"),
        (np.zeros((2, 2, 2, 2)), ValueError, "4 dimensions"),
        (pd.DataFrame({"a": ["x"], "b": ["y"]}), ValueError, "exactly one column"),
        ([np.zeros(100), "missing.wav"], AudioError, "missing.wav: file not found"),
        ([np.array([0.0, np.nan])], AudioError, "array input"),
        (42, ValueError, "list of audio paths"),
    ],
)
def test_bad_inputs_raise_clear_errors(X, error, message):
    with pytest.raises(error, match=message):
        MelSpectrogramTransformer(duration=0.1).fit_transform(X)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"duration": -1.0}, "duration"),
        ({"n_fft": 0}, "n_fft"),
        ({"hop_length": 2.5}, "hop_length"),
        ({"n_mels": True}, "n_mels"),
        ({"fmin": -5}, "fmin"),
        ({"fmax": 20000}, "fmax"),
        ({"fmin": 9000, "fmax": 8000}, "fmin"),
        ({"top_db": 0}, "top_db"),
        ({"crop": "middle"}, "crop"),
        ({"input_sample_rate": 0}, "input_sample_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "gpu!"}, "device"),
        ({"memory": 3}, "memory"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(params, parameter):
    transformer = MelSpectrogramTransformer(**params)
    with pytest.raises(ValueError, match=parameter):
        transformer.fit([np.zeros(100)])
    with pytest.raises(ValueError, match=parameter):
        transformer.transform([np.zeros(100)])


# -- scikit-learn integration -----------------------------------------------------------


def test_pipeline_clone_and_pickle_keep_the_output(data_dir):
    paths = [str(data_dir / "chirp_48k.ogg"), str(data_dir / "chirp_22k05.flac")]
    pipeline = Pipeline(
        [
            ("mel", MelSpectrogramTransformer(duration=1.0, n_mels=64)),
            ("flatten", FunctionTransformer(lambda S: S.mean(axis=-1).reshape(len(S), -1))),
        ]
    )
    pooled = pipeline.fit_transform(paths)
    assert pooled.shape == (2, 64)
    transformer = MelSpectrogramTransformer(duration=1.0, n_mels=64).fit(paths)
    restored = pickle.loads(pickle.dumps(transformer))
    np.testing.assert_array_equal(restored.transform(paths), transformer.transform(paths))
    assert clone(transformer).get_params() == transformer.get_params()


def test_fit_on_waveform_matrix_records_n_features_in():
    transformer = MelSpectrogramTransformer(duration=0.1).fit(np.zeros((3, 800)))
    assert transformer.n_features_in_ == 800
    # Any other length is still valid input: audio length varies by design.
    assert transformer.transform(np.zeros((2, 1600))).shape[0] == 2


def test_resolve_device_auto_picks_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"


def test_progress_bar_follows_verbose(capsys):
    clips = random_clips(3, 1600)
    MelSpectrogramTransformer(duration=0.05, verbose=0).fit_transform(clips)
    assert "log-mel" not in capsys.readouterr().err
    MelSpectrogramTransformer(duration=0.05, verbose=1).fit_transform(clips)
    assert "log-mel" in capsys.readouterr().err


# -- the on-disk cache (memory) ---------------------------------------------------------

# Small and fast: the cache is under test, not the spectral resolution.
CACHE_SPEC = {"sample_rate": 8000, "n_fft": 256, "hop_length": 128, "n_mels": 16, "fmax": 4000}


@pytest.fixture
def short_files(write_audio):
    """Three short WAVs of different lengths and pitches, as str and Path."""
    tones = [(500, 0.3), (1500, 0.7), (2500, 0.45)]
    paths = [
        write_audio(f"tone_{frequency}.wav", tone(frequency, seconds, 8000), 8000)
        for frequency, seconds in tones
    ]
    return [paths[0], str(paths[1]), paths[2]]


def record_decoded_files(monkeypatch) -> list:
    """Record the files the transformer decodes from now on (arrays still load as usual)."""
    decoded = []

    def recording_load_audio(source, *args, **kwargs):
        if isinstance(source, (str, os.PathLike)):
            decoded.append(source)
        return load_audio(source, *args, **kwargs)

    monkeypatch.setattr(features, "load_audio", recording_load_audio)
    return decoded


@pytest.mark.parametrize("duration", [0.5, None])
def test_cache_gives_the_uncached_result(duration, short_files, tmp_path):
    X = [short_files[0], tone(1000, 0.6, 8000), *short_files[1:]]  # an array among files
    params = {**CACHE_SPEC, "duration": duration, "batch_size": 2}
    expected = MelSpectrogramTransformer(**params).fit_transform(X)
    transformer = MelSpectrogramTransformer(**params, memory=tmp_path / "cache")
    # An empty cache computes the same batches as no cache: bit for bit.
    np.testing.assert_array_equal(transformer.fit_transform(X), expected)
    # Files from the cache: same values, whatever batches they were computed in, in the
    # order of the inputs, and padded as before with duration=None.
    warm = transformer.fit_transform(X)
    np.testing.assert_allclose(warm, expected, atol=1e-5, rtol=0, equal_nan=True)
    reversed_order = transformer.set_params(batch_size=3).fit_transform(X[::-1])
    np.testing.assert_allclose(reversed_order, expected[::-1], atol=1e-5, rtol=0, equal_nan=True)
    # Each file is stored with its own frames, not its batch's: shorter files alone have
    # fewer frames with duration=None.
    shorter = [X[0], X[3]]
    expected_shorter = MelSpectrogramTransformer(**params).fit_transform(shorter)
    np.testing.assert_allclose(
        transformer.fit_transform(shorter), expected_shorter, atol=1e-5, rtol=0, equal_nan=True
    )


@pytest.mark.parametrize("kind", ["str", "path", "joblib.Memory"])
def test_second_transform_reads_the_cache_not_the_files(kind, short_files, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    memory = {"str": str(folder), "path": folder, "joblib.Memory": joblib.Memory(folder)}[kind]
    X = [*short_files, tone(1000, 0.6, 8000)]
    transformer = MelSpectrogramTransformer(**CACHE_SPEC, duration=None, memory=memory)
    first = transformer.fit_transform(X)
    assert len(list(folder.rglob("output.pkl"))) == 3  # one entry per file, none for the array
    decoded = record_decoded_files(monkeypatch)
    second = transformer.fit_transform(X)
    assert decoded == []
    np.testing.assert_allclose(second, first, atol=1e-5, rtol=0, equal_nan=True)


def test_edited_file_is_recomputed(write_audio, tmp_path):
    path = write_audio("song.wav", tone(500, 0.5, 8000), 8000)
    transformer = MelSpectrogramTransformer(**CACHE_SPEC, duration=0.5, memory=tmp_path / "cache")
    before = transformer.fit_transform([path])
    size, mtime_ns = path.stat().st_size, path.stat().st_mtime_ns
    write_audio("song.wav", tone(2500, 0.5, 8000), 8000)  # same size, other content
    os.utime(path, ns=(mtime_ns + 10**9, mtime_ns + 10**9))  # later, even on coarse clocks
    assert path.stat().st_size == size
    after = transformer.fit_transform([path])
    expected = MelSpectrogramTransformer(**CACHE_SPEC, duration=0.5).fit_transform([path])
    np.testing.assert_allclose(after, expected, atol=1e-5, rtol=0)
    assert np.abs(after - before).max() > 20  # the tone moved to other mel bands


@pytest.mark.parametrize("changed", [{"n_mels": 8}, {"top_db": 40.0}, {"duration": 0.25}])
def test_output_parameters_key_the_cache_but_batch_size_and_verbose_do_not(
    changed, short_files, tmp_path, monkeypatch, capsys
):
    params = {**CACHE_SPEC, "duration": 0.5, "memory": tmp_path / "cache"}
    MelSpectrogramTransformer(**params).fit_transform(short_files)
    decoded = record_decoded_files(monkeypatch)
    params.update(changed)
    recomputed = MelSpectrogramTransformer(**params).fit_transform(short_files)
    assert len(decoded) == 3
    expected = MelSpectrogramTransformer(**{**params, "memory": None}).fit_transform(short_files)
    np.testing.assert_array_equal(recomputed, expected)
    decoded.clear()
    again = MelSpectrogramTransformer(**params, batch_size=1, verbose=1).fit_transform(short_files)
    assert decoded == []
    np.testing.assert_array_equal(again, recomputed)
    assert "3/3" in capsys.readouterr().err  # the progress bar counts cached inputs


def test_memory_is_a_parameter_kept_by_clone_and_pickle(short_files, tmp_path, monkeypatch):
    assert list(inspect.signature(MelSpectrogramTransformer).parameters)[-1] == "memory"
    folder = str(tmp_path / "cache")
    transformer = MelSpectrogramTransformer(**CACHE_SPEC, memory=folder)
    assert transformer.get_params()["memory"] == folder
    first = transformer.fit_transform(short_files)
    decoded = record_decoded_files(monkeypatch)
    for copy in (clone(transformer), pickle.loads(pickle.dumps(transformer))):
        assert copy.get_params() == transformer.get_params()
        np.testing.assert_array_equal(copy.fit_transform(short_files), first)
    assert decoded == []


def test_cache_reports_missing_files_as_without_it(tmp_path):
    transformer = MelSpectrogramTransformer(duration=0.1, memory=tmp_path / "cache")
    with pytest.raises(AudioError, match=r"missing\.wav: file not found"):
        transformer.fit_transform([np.zeros(100), "missing.wav"])


# -- properties -------------------------------------------------------------------------


@st.composite
def recordings(draw):
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100, 48000]))
    n_samples = draw(st.integers(rate // 16000 + 2, 2 * rate))  # at least a sample at 16 kHz
    stereo = draw(st.booleans()) and n_samples > 2
    kind = draw(st.sampled_from(["noise", "silence", "clipped", "impulse"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (2, n_samples) if stereo else (n_samples,)
    waveform = {
        "noise": lambda: rng.uniform(-1, 1, shape),
        "silence": lambda: np.zeros(shape),
        "clipped": lambda: np.clip(rng.normal(0, 20, shape), -1, 1),
        "impulse": lambda: np.eye(1, n_samples, n_samples // 2).reshape(-1) * np.ones(shape),
    }[kind]()
    return waveform.astype(np.float32), rate


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(recordings(), min_size=1, max_size=3), st.sampled_from([None, 0.25]))
def test_any_audio_gives_finite_spectrograms_of_the_right_shape(batch, duration):
    clips = [load_audio(waveform, sample_rate=16000, source_rate=rate) for waveform, rate in batch]
    transformer = MelSpectrogramTransformer(
        sample_rate=16000, duration=duration, n_fft=512, hop_length=256, n_mels=32, fmax=8000
    )
    output = transformer.fit_transform(clips)
    lengths = [len(clip) for clip in clips] if duration is None else [4000] * len(clips)
    frames = [1 + length // 256 for length in lengths]
    assert output.shape == (len(clips), 1, 32, max(frames)) and output.dtype == np.float32
    mask = valid_frames(output)
    assert mask.sum(axis=1).tolist() == frames
    real = output[:, 0].transpose(0, 2, 1)[mask]
    assert np.isfinite(real).all()
    # The floor: nothing more than top_db below each clip's own peak.
    for spectrogram, n_frames in zip(output[:, 0], frames, strict=True):
        valid = spectrogram[:, :n_frames]
        assert valid.max() - valid.min() <= 80.0 + 1e-3
