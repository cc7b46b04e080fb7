"""Tests of sklearn_birdaudio.audio: loading, resampling, streaming and bad input."""

import tracemalloc

import numpy as np
import pytest
import soundfile
from conftest import peak_frequency, tone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_birdaudio import sound_file_reads
from sklearn_birdaudio.audio import AudioError, audio_info, load_audio, stream_audio
from sklearn_birdaudio.sound_file_reads import read_frames

# -- files ------------------------------------------------------------------------------


def test_stereo_wav_is_averaged_to_mono_at_its_own_rate(data_dir):
    path = data_dir / "stereo_44k1.wav"
    stereo, rate = soundfile.read(path, dtype="float32")
    waveform = load_audio(path, sample_rate=rate)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    np.testing.assert_allclose(waveform, stereo.mean(axis=1), atol=1e-7)


def test_mono_false_keeps_channels(data_dir):
    waveform = load_audio(data_dir / "stereo_44k1.wav", sample_rate=44100, mono=False)
    assert waveform.shape == (2, 22050)
    assert not np.allclose(waveform[0], waveform[1])


def test_resampling_keeps_pitch_and_duration(write_audio):
    path = write_audio("tone.wav", tone(1000, 2.0, 44100), 44100, subtype="FLOAT")
    waveform = load_audio(path, sample_rate=32000)
    assert len(waveform) == 64000
    assert peak_frequency(waveform, 32000) == pytest.approx(1000, abs=1)
    # soxr's high-quality filter keeps the amplitude of an in-band tone.
    assert np.abs(waveform[1000:-1000]).max() == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize(
    ("name", "rate", "seconds"),
    [("chirp_22k05.flac", 22050, 0.75), ("chirp_48k.ogg", 48000, 0.5)],
)
def test_flac_and_ogg_test_files_load_at_the_target_rate(data_dir, name, rate, seconds):
    info = audio_info(data_dir / name)
    assert (info.sample_rate, info.n_channels) == (rate, 1)
    assert info.duration_seconds == pytest.approx(seconds, abs=1e-3)
    waveform = load_audio(data_dir / name, sample_rate=32000)
    assert len(waveform) == pytest.approx(seconds * 32000, abs=2)
    assert np.isfinite(waveform).all() and 0.3 < np.abs(waveform).max() <= 1.0


@pytest.mark.parametrize("extension", ["wav", "flac", "ogg", "mp3"])
def test_every_format_round_trips_a_tone(write_audio, extension):
    original = tone(2000, 1.0, 32000)
    path = write_audio(f"tone.{extension}", original, 32000)
    waveform = load_audio(path, sample_rate=32000)
    # Lossy codecs add delay and padding: compare pitch and loudness, not samples.
    assert len(waveform) == pytest.approx(32000, abs=1200)
    assert peak_frequency(waveform, 32000) == pytest.approx(2000, abs=2)
    assert np.sqrt(np.mean(waveform**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_offset_and_duration_read_only_that_part(write_audio):
    original = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    path = write_audio("noise.wav", original, 16000, subtype="FLOAT")
    part = load_audio(path, sample_rate=16000, offset_seconds=0.25, duration_seconds=0.5)
    np.testing.assert_array_equal(part, original[4000:12000])
    array_part = load_audio(original, sample_rate=16000, offset_seconds=0.25, duration_seconds=0.5)
    np.testing.assert_array_equal(array_part, part)


def test_real_mp3_from_shared_data(shared_data):
    path = sorted((shared_data / "xc-puerto-rico" / "audio").glob("*.mp3"))[0]
    info = audio_info(path)
    waveform = load_audio(path)
    assert waveform.dtype == np.float32
    assert len(waveform) == pytest.approx(info.duration_seconds * 32000, abs=2)
    assert np.isfinite(waveform).all() and waveform.std() > 1e-4


# -- arrays -----------------------------------------------------------------------------


def test_array_at_another_rate_is_resampled():
    waveform = load_audio(tone(3000, 1.0, 48000), sample_rate=32000, source_rate=48000)
    assert len(waveform) == 32000
    assert peak_frequency(waveform, 32000) == pytest.approx(3000, abs=1)


def test_array_without_source_rate_is_taken_at_the_target_rate():
    original = tone(440, 0.5, 32000)
    np.testing.assert_array_equal(load_audio(original), original)


def test_both_2d_layouts_give_the_same_mono():
    channels = np.stack([tone(500, 0.1, 8000), tone(700, 0.1, 8000)])
    by_channel = load_audio(channels, sample_rate=8000)
    by_sample = load_audio(channels.T, sample_rate=8000)
    np.testing.assert_allclose(by_channel, channels.mean(axis=0), atol=1e-7)
    np.testing.assert_array_equal(by_channel, by_sample)


@pytest.mark.parametrize(
    ("pcm", "expected"),
    [
        (np.array([-32768, 0, 16384], dtype=np.int16), [-1.0, 0.0, 0.5]),
        (np.array([0, 128, 192], dtype=np.uint8), [-1.0, 0.0, 0.5]),
        (np.array([-(2**31), 2**30], dtype=np.int32), [-1.0, 0.5]),
    ],
)
def test_integer_pcm_is_scaled_to_unit_range(pcm, expected):
    np.testing.assert_allclose(load_audio(pcm), expected, atol=1e-7)


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.wav", "file not found"),
        ("empty.wav", "file is empty"),
        ("not_audio.wav", "cannot be decoded as audio"),
        ("truncated.wav", "truncated"),
    ],
)
def test_bad_files_raise_audio_error_naming_the_file(data_dir, name, message):
    path = data_dir / name
    for read in (load_audio, audio_info, lambda p: list(stream_audio(p, block_seconds=1.0))):
        with pytest.raises(AudioError, match=message) as error:
            read(path)
        assert str(path) in str(error.value)


def test_directory_is_rejected(data_dir):
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(data_dir)


@pytest.mark.parametrize("extension", ["flac", "ogg", "mp3"])
def test_truncated_compressed_files_are_rejected(write_audio, tmp_path, extension):
    path = write_audio(f"full.{extension}", tone(1500, 3.0, 16000), 16000)
    truncated = tmp_path / f"truncated.{extension}"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"truncated|decoding failed") as error:
        load_audio(truncated)
    assert str(truncated) in str(error.value)


def test_file_with_nan_samples_is_rejected(write_audio):
    waveform = tone(1000, 0.5, 16000)
    waveform[4000] = np.nan
    path = write_audio("nan.wav", waveform, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite") as error:
        load_audio(path)
    assert str(path) in str(error.value)
    with pytest.raises(AudioError, match=r"0\.250 s"):
        list(stream_audio(path, block_seconds=0.1))


def test_zero_frame_file_is_rejected(write_audio):
    path = write_audio("silent.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([], dtype=np.float32), "no samples"),
        (np.zeros((2, 0), dtype=np.float32), "no samples"),
        (np.array([0.0, np.nan, 0.1]), "NaN or infinite"),
        (np.array([0.0, np.inf]), "NaN or infinite"),
        (np.zeros((2, 3, 100)), "3 dimensions"),
        (np.zeros((4, 4)), "ambiguous"),
        (np.array(["a", "b"]), "dtype"),
        (np.zeros(10, dtype=complex), "dtype"),
        (np.zeros(10, dtype=bool), "dtype"),
    ],
)
def test_bad_arrays_raise_audio_error(array, message):
    with pytest.raises(AudioError, match=message) as error:
        load_audio(array)
    assert "array input" in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": 16000.5}, "sample_rate"),
        ({"sample_rate": "32k"}, "sample_rate"),
        ({"source_rate": -8000}, "source_rate"),
        ({"offset_seconds": -1.0}, "offset_seconds"),
        ({"duration_seconds": 0.0}, "duration_seconds"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        load_audio(np.zeros(100, dtype=np.float32), **kwargs)


def test_source_rate_with_a_path_is_an_error(data_dir):
    with pytest.raises(ValueError, match="source_rate is only for array inputs"):
        load_audio(data_dir / "chirp_48k.ogg", source_rate=48000)


def test_offset_past_the_end_is_an_error(data_dir):
    with pytest.raises(AudioError, match="past the end"):
        load_audio(data_dir / "chirp_48k.ogg", offset_seconds=10.0)


# -- streaming --------------------------------------------------------------------------


def test_stream_blocks_have_exact_length_and_equal_the_whole_file(write_audio):
    original = np.random.default_rng(1).uniform(-0.5, 0.5, 22050 * 7 + 123).astype(np.float32)
    path = write_audio("long.flac", original, 22050, subtype="PCM_24")
    whole = load_audio(path, sample_rate=32000)
    blocks = list(stream_audio(path, block_seconds=2.0, sample_rate=32000))
    assert [len(block) for block in blocks[:-1]] == [64000] * (len(blocks) - 1)
    assert 0 < len(blocks[-1]) <= 64000
    streamed = np.concatenate(blocks)
    assert len(streamed) == len(whole)
    # One-shot and streaming soxr agree except for float rounding.
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_stream_without_resampling_is_exact(data_dir):
    path = data_dir / "stereo_44k1.wav"
    blocks = list(stream_audio(path, block_seconds=0.1, sample_rate=44100, mono=False))
    assert all(block.shape[0] == 2 for block in blocks)
    np.testing.assert_array_equal(
        np.concatenate(blocks, axis=1), load_audio(path, sample_rate=44100, mono=False)
    )


def test_stream_of_an_array_is_sliced():
    blocks = list(stream_audio(np.ones(25, dtype=np.float32), block_seconds=10 / 32000))
    assert [len(block) for block in blocks] == [10, 10, 5]


def test_stream_memory_does_not_grow_with_the_recording(write_audio):
    # 5 minutes at 16 kHz is 19 MB as float32; streaming in 5-s blocks must stay far below.
    waveform = np.tile(tone(1000, 1.0, 16000), 300)
    path = write_audio("five_minutes.wav", waveform, 16000, subtype="PCM_16")
    del waveform
    tracemalloc.start()
    n_samples = sum(
        len(block) for block in stream_audio(path, block_seconds=5.0, sample_rate=32000)
    )
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n_samples == 300 * 32000
    assert peak_bytes < 4_000_000, f"streaming peaked at {peak_bytes / 1e6:.1f} MB"


def test_stream_rejects_bad_block_length():
    with pytest.raises(ValueError, match="block_seconds"):
        next(stream_audio(np.zeros(10, dtype=np.float32), block_seconds=0))


# -- properties -------------------------------------------------------------------------

RATES = [8000, 16000, 22050, 32000, 44100, 48000, 96000]


@st.composite
def waveforms(draw):
    rate = draw(st.sampled_from(RATES))
    n_channels = draw(st.sampled_from([1, 2]))
    # A 2-D array's shorter axis is its channel axis (documented): stereo needs >= 3 samples.
    n_samples = draw(st.integers(1 if n_channels == 1 else 3, 3 * rate))
    kind = draw(st.sampled_from(["noise", "silence", "clipped", "dc"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (n_channels, n_samples) if n_channels > 1 else (n_samples,)
    if kind == "noise":
        waveform = rng.uniform(-1, 1, shape)
    elif kind == "silence":
        waveform = np.zeros(shape)
    elif kind == "clipped":
        waveform = np.clip(rng.normal(0, 10, shape), -1, 1)
    else:
        waveform = np.full(shape, draw(st.floats(-1, 1)))
    return waveform.astype(draw(st.sampled_from([np.float32, np.float64]))), rate


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(waveforms(), st.sampled_from([16000, 32000]))
def test_any_waveform_loads_finite_with_the_expected_length(example, sample_rate):
    waveform, source_rate = example
    expected = waveform.shape[-1] * sample_rate / source_rate
    if expected < 0.5:  # less than one output sample: refused, never an empty waveform
        with pytest.raises(AudioError, match="shorter than one sample"):
            load_audio(waveform, sample_rate=sample_rate, source_rate=source_rate)
        return
    loaded = load_audio(waveform, sample_rate=sample_rate, source_rate=source_rate)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert np.isfinite(loaded).all()
    assert len(loaded) >= 1 and abs(len(loaded) - expected) <= 1


@pytest.fixture(scope="module")
def reservoir_mp3(tmp_path_factory):
    """8 s of a warbling tone in noise as a low-bitrate MP3 (22.05 kHz, MPEG-2 layer III).

    At this bitrate libmpg123 leans on the bit reservoir: frames borrow bits from the
    ones before them, which is what a decoder restarted mid-stream gets wrong.
    """
    rate = 22050
    t = np.arange(rate * 8) / rate
    noise = np.random.default_rng(0).standard_normal(t.size)
    wave = 0.3 * np.sin(2 * np.pi * (2000 + 1500 * np.sin(2 * np.pi * 0.7 * t)) * t)
    path = tmp_path_factory.mktemp("mp3") / "reservoir.mp3"
    soundfile.write(
        path, (wave + 0.2 * noise).astype(np.float32), rate, format="MP3",
        compression_level=0.9, bitrate_mode="CONSTANT",
    )  # fmt: skip
    whole, _ = soundfile.read(path, dtype="float32")
    return path, rate, whole


def test_streaming_an_mp3_gives_the_samples_of_decoding_it_whole(reservoir_mp3, capfd):
    path, rate, whole = reservoir_mp3
    # The canary: soundfile's own block reads seek after each read, and libmpg123 then
    # decodes the frame at each boundary without its reservoir (the bug worked around).
    with soundfile.SoundFile(path) as sound_file:
        blocks = [sound_file.read(5000, dtype="float32") for _ in range(len(whole) // 5000 + 1)]
    assert np.abs(np.concatenate(blocks) - whole).max() > 1e-2
    capfd.readouterr()
    with soundfile.SoundFile(path) as sound_file:  # blocks that end mid-frame
        blocks = [read_frames(sound_file, 5000)[:, 0] for _ in range(len(whole) // 5000 + 1)]
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    streamed = np.concatenate(list(stream_audio(path, block_seconds=0.3, sample_rate=rate)))
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    # libmpg123 writes its complaints straight to file descriptor 2: none here.
    assert "part2_3_length" not in capfd.readouterr().err


@pytest.mark.parametrize("decode_up_to_seconds", [600.0, 0.0], ids=["decoded", "seek"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=st.integers(0, 8 * 22050 - 2000))
def test_an_mp3_read_from_any_offset_gives_the_samples_of_the_whole(
    reservoir_mp3, decode_up_to_seconds, start
):
    """Offsets within MPEG_DECODE_NOT_SEEK_SECONDS are decoded up to; further ones (all of
    them here with 0) are reached by a seek and a preroll."""
    path, rate, whole = reservoir_mp3
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sound_file_reads, "MPEG_DECODE_NOT_SEEK_SECONDS", decode_up_to_seconds)
        part = load_audio(
            path, sample_rate=rate, offset_seconds=start / rate, duration_seconds=0.05
        )
    np.testing.assert_allclose(part, whole[start : start + part.size], atol=1e-6)


def test_an_mp3_read_from_an_offset_prints_nothing(reservoir_mp3, capfd):
    path, rate, whole = reservoir_mp3
    capfd.readouterr()
    for start in (12345, 50000, 123457):
        part = load_audio(path, sample_rate=rate, offset_seconds=start / rate, duration_seconds=1)
        np.testing.assert_allclose(part, whole[start : start + part.size], atol=1e-6)
    assert "part2_3_length" not in capfd.readouterr().err
