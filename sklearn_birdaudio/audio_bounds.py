"""What audio input is accepted, and :class:`AudioError` for the rest.

The checks every file and array passes before it is decoded or resampled: sample-rate
parameters and the floor :data:`MIN_SAMPLE_RATE` on source rates; paths; headers that
libsndfile cannot parse or that declare more data than the file holds; the layout, dtype,
range and finiteness of arrays. Each raises :class:`AudioError` (a :class:`ValueError`
for a bad parameter) naming the input, what was wrong and what was expected.
:mod:`sklearn_birdaudio.audio` re-exports the public names; the bound on what
:func:`~sklearn_birdaudio.audio.load_audio` may allocate (``MAX_LOAD_BYTES``) is its own.
"""

from __future__ import annotations

import os
import re

import numpy as np
import soundfile

from ._validation import check_real

__all__ = ["MIN_SAMPLE_RATE", "AudioError"]

# Formats that libsndfile decodes and that we test; others it knows (AIFF, ...) also work.
TESTED_FORMATS = "WAV, FLAC, OGG or MP3"
# Waveforms are float32: larger samples (finite in float64) would become infinite.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The lowest sample rate accepted for audio (file headers, ``source_rate``): real
# recordings are sampled at 8 kHz or more. Resampling multiplies the samples by
# ``sample_rate / rate``, so a forged 1 Hz header made 128 KB of WAV into 2.7 GB (156 s; the
# figures of the attack that found it, not of a benchmark here);
# from 1 kHz the output is at most ``sample_rate / 1000`` times the input.
MIN_SAMPLE_RATE = 1000
# libsndfile's parse log line for a WAV/AIFF data chunk larger than the file holds.
_TRUNCATED_DATA_CHUNK = re.compile(r"data\s*:\s*(?P<declared>\d+)\s*\(should be (?P<present>\d+)\)")


class AudioError(ValueError):
    """An audio input (file or array) could not be turned into a valid waveform.

    The message names the file (or ``"array input"``), what was wrong and what was
    expected. It subclasses :class:`ValueError`, so code that already catches
    ``ValueError`` for bad input keeps working.
    """


def _check_rate(value, name: str) -> int:
    """Validate a sample-rate parameter: a positive whole number of Hz, as an int."""
    message = f"{name} must be a positive whole number of Hz, got {value!r}."
    rate = check_real(value, name, min_val=0, include_boundaries="neither", message=message)
    if rate != int(value):
        raise ValueError(message)
    return int(value)


def _check_audio_rate(rate: int, name: str | None, what: str) -> None:
    """Refuse a source sample rate below :data:`MIN_SAMPLE_RATE`, before any resampling.

    ``name`` is the input (``None`` for a parameter that applies to every input) and
    ``what`` where the rate comes from (``"the header's sample rate"``, ``"source_rate"``).
    """
    if rate < MIN_SAMPLE_RATE:
        prefix = f"{name}: " if name else ""
        raise AudioError(
            f"{prefix}{what} is {rate} Hz, below MIN_SAMPLE_RATE = {MIN_SAMPLE_RATE} Hz; "
            f"expected audio sampled at {MIN_SAMPLE_RATE} Hz or more (recordings are "
            "8 kHz and up; a lower rate is a corrupt header or not audio)."
        )


def _too_short(name: str, n_samples: int, rate: int, sample_rate: int) -> AudioError:
    """The error for audio that resamples to no sample at all."""
    return AudioError(
        f"{name}: {n_samples} sample(s) at {rate} Hz is shorter than one sample at "
        f"sample_rate={sample_rate} Hz; expected a longer recording."
    )


def _check_path(source) -> str:
    """Return ``source`` as a string path to an existing, non-empty regular file."""
    path = os.fspath(source)
    if not os.path.exists(path):
        raise AudioError(f"{path}: file not found; expected a path to a {TESTED_FORMATS} file.")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory; expected a path to a {TESTED_FORMATS} file.")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); expected {TESTED_FORMATS} audio.")
    return path


def _truncation(sound_file: soundfile.SoundFile) -> str | None:
    """Describe the truncation libsndfile noticed while parsing the header, if any.

    libsndfile opens a truncated WAV or OGG without error and silently reports only the
    frames present; its parse log (``extra_info``) says what the header declared.
    """
    log = sound_file.extra_info
    chunk = _TRUNCATED_DATA_CHUNK.search(log)
    if chunk and int(chunk.group("declared")) > int(chunk.group("present")):
        return (
            f"the header declares {chunk.group('declared')} bytes of audio data but only "
            f"{chunk.group('present')} are present"
        )
    if "lacks an end-of-stream bit" in log:
        return "the last Ogg page lacks its end-of-stream marker"
    return None


def _open(path: str) -> soundfile.SoundFile:
    """Open ``path`` with libsndfile, translating its errors into :class:`AudioError`."""
    try:
        sound_file = soundfile.SoundFile(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(
            f"{path}: cannot be decoded as audio ({error}); expected a {TESTED_FORMATS} file."
        ) from error
    problem = _truncation(sound_file)
    if problem:
        sound_file.close()
        raise AudioError(f"{path}: truncated: {problem}; expected a complete file.")
    return sound_file


def _to_float_waveform(array, name: str) -> np.ndarray:
    """Validate an array waveform and return it as float32 of shape (n_channels, n_samples).

    1-D arrays are mono. 2-D arrays are accepted in librosa's layout
    ``(n_channels, n_samples)`` or soundfile's ``(n_samples, n_channels)``: the shorter axis
    is taken as the channel axis. Integer PCM is scaled to [-1, 1) as soundfile does.
    """
    try:
        waveform = np.asarray(array)
    except (TypeError, ValueError) as error:  # e.g. a ragged list of lists
        raise AudioError(
            f"{name}: cannot be read as an array ({error}); expected a 1-D mono waveform or "
            "a 2-D (n_channels, n_samples) array."
        ) from error
    if waveform.dtype == object:  # e.g. numbers in a pandas object column
        try:
            waveform = waveform.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise AudioError(
                f"{name}: holds non-numeric values ({error}); expected a real floating-point "
                "or integer PCM waveform."
            ) from error
    if not (
        np.issubdtype(waveform.dtype, np.floating) or np.issubdtype(waveform.dtype, np.integer)
    ):
        raise AudioError(
            f"{name}: has dtype {waveform.dtype}; expected a real floating-point or integer "
            "PCM waveform."
        )
    if waveform.size == 0 and waveform.ndim <= 2:
        raise AudioError(f"{name}: contains no samples; expected at least one sample.")
    if waveform.ndim == 2:
        if waveform.shape[0] == waveform.shape[1]:
            raise AudioError(
                f"{name}: 2-D array of shape {waveform.shape} is ambiguous; expected "
                "(n_channels, n_samples) with fewer channels than samples."
            )
        if waveform.shape[0] > waveform.shape[1]:
            waveform = waveform.T
    elif waveform.ndim == 1:
        waveform = waveform[np.newaxis, :]
    else:
        raise AudioError(
            f"{name}: has {waveform.ndim} dimensions (shape {waveform.shape}); expected a 1-D "
            "mono waveform or a 2-D (n_channels, n_samples) array."
        )
    if np.issubdtype(waveform.dtype, np.integer):
        info = np.iinfo(waveform.dtype)
        scale = float(-int(info.min)) if info.min < 0 else float(info.max + 1) / 2
        offset = 0.0 if info.min < 0 else scale
        return ((waveform.astype(np.float64) - offset) / scale).astype(np.float32)
    # Check before the cast: a finite float64 beyond float32's range would become inf.
    _check_finite(waveform, name)
    peak = float(np.abs(waveform).max()) if waveform.dtype.itemsize > 4 else 0.0
    if peak > FLOAT32_MAX:
        raise AudioError(
            f"{name}: has samples up to {peak:.3g}, beyond the float32 range "
            f"(±{FLOAT32_MAX:.3g}); expected a waveform scaled to about [-1, 1]."
        )
    return waveform.astype(np.float32, copy=False)


def _check_finite(waveform: np.ndarray, name: str, start_seconds: float = 0.0, rate=None):
    """Raise :class:`AudioError` if ``waveform`` holds NaN or infinite samples."""
    finite = np.isfinite(waveform)
    if not finite.all():
        first_bad = int(np.argmax(~finite.reshape(-1, waveform.shape[-1]).all(axis=0)))
        where = f"sample {first_bad}"
        if rate:
            where = f"{start_seconds + first_bad / rate:.3f} s"
        raise AudioError(
            f"{name}: contains {int((~finite).sum())} NaN or infinite sample(s), the first at "
            f"{where}; expected finite samples."
        )
    return waveform
