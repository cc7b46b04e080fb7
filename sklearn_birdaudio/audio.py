"""Reading, validating and resampling audio; streaming blocks of long recordings.

Everything that turns a file or an array into a waveform goes through this module, so
that every kind of bad input ends in one exception type, :class:`AudioError`, whose
message names the input, what was wrong and what was expected.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

from ._deprecation import deprecate_positional
from ._validation import check_real

__all__ = [
    "AudioError",
    "AudioInfo",
    "audio_files",
    "audio_info",
    "load_audio",
    "stream_audio",
]

logger = logging.getLogger(__name__)

AudioSource = str | os.PathLike | np.ndarray

ARRAY_INPUT = "array input"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
# Formats that libsndfile decodes and that we test; others it knows (AIFF, ...) also work.
TESTED_FORMATS = "WAV, FLAC, OGG or MP3"
# soxr's "high quality" preset: the same quality librosa uses by default ("soxr_hq").
RESAMPLE_QUALITY = "HQ"
# Blocks read from disk while streaming, in source frames: large enough to amortise the
# per-call overhead of libsndfile and soxr, small enough to keep memory flat.
READ_BLOCK_FRAMES = 1 << 16
# Waveforms are float32: larger samples (finite in float64) would become infinite.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The lowest sample rate accepted for audio (file headers, ``source_rate``): real
# recordings are sampled at 8 kHz or more. Resampling multiplies the samples by
# ``sample_rate / rate``, so a forged 1 Hz header made 128 KB of WAV into 2.7 GB (156 s; the
# figures of the attack that found it, not of a benchmark here);
# from 1 kHz the output is at most ``sample_rate / 1000`` times the input.
MIN_SAMPLE_RATE = 1000
# What load_audio may allocate for one recording (the decoded float32 samples, their mono
# mix and the resampled output), checked against the header's frame count before
# decoding: 4 GiB holds 9.3 h of mono audio at 32 kHz, 3.7 h of mono 48 kHz audio
# resampled to 32 kHz, 1.7 h of stereo 48 kHz. A header may claim up to 2**36 frames
# (256 GiB) in a file of a few KB. Longer recordings are read block by block with
# stream_audio or detect, which never allocate from the declared length.
MAX_LOAD_BYTES = 4 * 2**30
BYTES_PER_SAMPLE = np.dtype(np.float32).itemsize
# libsndfile's parse log line for a WAV/AIFF data chunk larger than the file holds.
_TRUNCATED_DATA_CHUNK = re.compile(r"data\s*:\s*(?P<declared>\d+)\s*\(should be (?P<present>\d+)\)")


class AudioError(ValueError):
    """An audio input (file or array) could not be turned into a valid waveform.

    The message names the file (or ``"array input"``), what was wrong and what was
    expected. It subclasses :class:`ValueError`, so code that already catches
    ``ValueError`` for bad input keeps working.
    """


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says, without decoding it.

    Attributes
    ----------
    path : str
        The file.
    sample_rate : int
        Its sample rate in Hz.
    n_channels : int
        Number of channels.
    n_frames : int
        Number of sample frames (samples per channel).
    format : str
        The container format as libsndfile names it (``"WAV"``, ``"MP3"``, ...).
    """

    path: str
    sample_rate: int
    n_channels: int
    n_frames: int
    format: str

    @property
    def duration_seconds(self) -> float:
        """Length of the recording in seconds."""
        return self.n_frames / self.sample_rate


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


def _check_load_size(
    name: str,
    n_frames: int,
    n_channels: int,
    rate: int,
    sample_rate: int,
    mono: bool,
    declared_frames: int | None = None,
) -> None:
    """Refuse a load of ``n_frames`` frames that would allocate over :data:`MAX_LOAD_BYTES`.

    Counts the float32 arrays: for a file (``declared_frames``, its header's frame count,
    is given) the decoded samples and their mono mix; for any source, the output when it
    is resampled from ``rate`` to ``sample_rate``. An array is already in memory.
    """
    n_samples = 0
    if declared_frames is not None:
        n_samples += n_frames * (n_channels + (1 if mono and n_channels > 1 else 0))
    if rate != sample_rate:
        n_samples += (1 if mono else n_channels) * round(n_frames * sample_rate / rate)
    n_bytes = BYTES_PER_SAMPLE * n_samples
    if n_bytes <= MAX_LOAD_BYTES:
        return
    length = f"{n_channels} channel(s) at {rate} Hz"
    if declared_frames is None:
        length = f"its {n_frames} frames ({n_frames / rate / 3600:.1f} h, {length})"
    else:
        length = (
            f"the header declares {declared_frames} frames ({declared_frames / rate / 3600:.1f}"
            f" h, {length}); loading {n_frames} of them"
        )
    raise AudioError(
        f"{name}: {length} at sample_rate={sample_rate} would allocate "
        f"{n_bytes / 2**30:.3g} GiB, above MAX_LOAD_BYTES = {MAX_LOAD_BYTES / 2**30:.3g} GiB. "
        "Read long recordings block by block with stream_audio() or detect(), or load a "
        "part with offset_seconds and duration_seconds."
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


def audio_files(
    folder: str | os.PathLike, *, extensions: tuple[str, ...] = AUDIO_EXTENSIONS
) -> list[str]:
    """The audio files under ``folder``, searched recursively, in sorted path order.

    Parameters
    ----------
    folder : str or path-like
        The folder to search.
    extensions : tuple of str, default=(".wav", ".flac", ".ogg", ".mp3")
        File extensions counted as audio (case-insensitive); other files are ignored.

    Returns
    -------
    paths : list of str
        May be empty.

    Raises
    ------
    AudioError
        If ``folder`` is not a folder.
    """
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise AudioError(f"{root}: not a folder; expected a folder of audio files.")
    suffixes = {extension.lower() for extension in extensions}
    return sorted(
        os.path.join(directory, name)
        for directory, _, names in os.walk(root)
        for name in names
        if os.path.splitext(name)[1].lower() in suffixes
    )


def audio_info(source: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file.

    Parameters
    ----------
    source : str or path-like
        Path to a WAV, FLAC, OGG or MP3 file.

    Returns
    -------
    AudioInfo
        Sample rate, number of channels and frames, format.

    Raises
    ------
    AudioError
        If the file is missing, empty, a directory, or not decodable audio.

    Examples
    --------
    >>> import numpy as np, soundfile, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> soundfile.write(path, np.zeros(16000), 16000)
    >>> audio_info(path).duration_seconds
    1.0
    """
    path = _check_path(source)
    with _open(path) as sound_file:
        return AudioInfo(
            path=path,
            sample_rate=int(sound_file.samplerate),
            n_channels=int(sound_file.channels),
            n_frames=int(sound_file.frames),
            format=str(sound_file.format),
        )


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


def _downmix(waveform: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``(n_channels, n_samples)``; one channel as it is.

    Averaging a single channel would be a whole pass over the samples for nothing (10 %
    of streaming a mono MP3, ad hoc).
    """
    return waveform[0] if waveform.shape[0] == 1 else waveform.mean(axis=0, dtype=np.float32)


def _mix_and_resample(
    waveform: np.ndarray, source_rate: int, sample_rate: int, mono: bool, name: str
) -> np.ndarray:
    """Average channels (if ``mono``) and resample a (n_channels, n_samples) waveform."""
    if waveform.shape[-1] * sample_rate < source_rate / 2:
        raise _too_short(name, waveform.shape[-1], source_rate, sample_rate)
    if waveform.shape[0] == 1 or mono:
        waveform = _downmix(waveform)
    if source_rate != sample_rate:
        # soxr works on (n_samples, n_channels); mono stays 1-D.
        waveform = soxr.resample(waveform.T, source_rate, sample_rate, quality=RESAMPLE_QUALITY).T
    return np.ascontiguousarray(waveform, dtype=np.float32)


@deprecate_positional
def load_audio(
    source: AudioSource,
    *,
    sample_rate: int = 32000,
    mono: bool = True,
    source_rate: int | None = None,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> np.ndarray:
    """Load a recording (file or array) as a float32 waveform at ``sample_rate``.

    Parameters
    ----------
    source : str, path-like or ndarray
        A path to a WAV, FLAC, OGG or MP3 file (anything libsndfile decodes), or a waveform:
        1-D (mono) or 2-D, in librosa's ``(n_channels, n_samples)`` or soundfile's
        ``(n_samples, n_channels)`` layout: the shorter axis is taken as the channels
        (true of any recording longer than its channel count; a square array is
        rejected as ambiguous). Integer arrays are PCM and are scaled to [-1, 1).
    sample_rate : int, default=32000
        Sample rate of the returned waveform in Hz; the input is resampled with soxr
        (high quality) when its rate differs.
    mono : bool, default=True
        Average the channels into one. With ``mono=False`` a multi-channel input is
        returned as ``(n_channels, n_samples)``.
    source_rate : int, optional
        Sample rate of an array ``source``. ``None`` means it is already at
        ``sample_rate``. Must be ``None`` for files, whose header gives their rate.
    offset_seconds : float, default=0.0
        Start reading this many seconds into the recording.
    duration_seconds : float, optional
        Read at most this many seconds (all the rest when ``None``). Only that part of a
        file is decoded.

    Returns
    -------
    waveform : ndarray of float32, shape (n_samples,) or (n_channels, n_samples)
        The waveform at ``sample_rate``.

    Raises
    ------
    AudioError
        For any input that is not valid audio: missing path, directory, empty or
        non-audio file, a file whose data ends before its header says, zero samples,
        NaN or infinite samples, arrays of the wrong dimension or dtype, an offset
        past the end, or a source rate (header or ``source_rate``) below
        :data:`MIN_SAMPLE_RATE` (1 kHz). Also, before decoding, for a load that would
        allocate more than :data:`MAX_LOAD_BYTES` (4 GiB: 9.3 h of mono 32 kHz audio)
        by the header's frame count: stream long recordings with :func:`stream_audio`.
        The message names the file (or "array input").
    ValueError
        For invalid parameters (``sample_rate``, ``source_rate``, offsets).

    Examples
    --------
    >>> import numpy as np
    >>> stereo = np.zeros((2, 44100), dtype=np.float32)
    >>> load_audio(stereo, sample_rate=32000, source_rate=44100).shape
    (32000,)
    """
    sample_rate = _check_rate(sample_rate, "sample_rate")
    offset_seconds = check_real(offset_seconds, "offset_seconds", min_val=0)
    duration_seconds = check_real(
        duration_seconds,
        "duration_seconds",
        min_val=0,
        include_boundaries="neither",
        allow_none=True,
        message=f"duration_seconds must be a positive number or None, got {duration_seconds!r}.",
    )

    if isinstance(source, (str, os.PathLike)):
        if source_rate is not None:
            raise ValueError(
                f"source_rate is only for array inputs; {os.fspath(source)} has its rate in "
                f"its header, got source_rate={source_rate!r}."
            )
        name = os.fspath(source)
        waveform, rate = _read_file(source, sample_rate, mono, offset_seconds, duration_seconds)
        waveform = _check_finite(waveform, name)
    else:
        name = ARRAY_INPUT
        rate = sample_rate
        if source_rate is not None:
            rate = _check_rate(source_rate, "source_rate")
            _check_audio_rate(rate, name, "source_rate")
        waveform = _to_float_waveform(source, name)
        start = int(round(offset_seconds * rate))
        stop = None if duration_seconds is None else start + int(round(duration_seconds * rate))
        if start >= waveform.shape[1] and start > 0:
            raise AudioError(
                f"{name}: offset_seconds={offset_seconds} is past the end of the "
                f"{waveform.shape[1] / rate:.3f} s waveform."
            )
        waveform = waveform[:, start:stop]
        _check_load_size(name, *waveform.shape[::-1], rate, sample_rate, mono)
    return _mix_and_resample(waveform, rate, sample_rate, mono, name)


def _read_file(
    source, sample_rate: int, mono: bool, offset_seconds: float, duration_seconds: float | None
) -> tuple[np.ndarray, int]:
    """Decode (part of) a file into a float32 (n_channels, n_samples) array and its rate.

    The rate and the size of the load (to be resampled to ``sample_rate``) are checked
    against the header before anything is decoded or allocated.
    """
    path = _check_path(source)
    with _open(path) as sound_file:
        rate = int(sound_file.samplerate)
        _check_audio_rate(rate, path, "the header's sample rate")
        declared_frames = int(sound_file.frames)
        start = int(round(offset_seconds * rate))
        if declared_frames == 0:
            raise AudioError(f"{path}: contains no samples; expected at least one sample.")
        if start >= declared_frames and start > 0:
            raise AudioError(
                f"{path}: offset_seconds={offset_seconds} is past the end of the "
                f"{declared_frames / rate:.3f} s recording."
            )
        wanted = declared_frames - start
        if duration_seconds is not None:
            wanted = min(wanted, int(round(duration_seconds * rate)))
        n_channels = int(sound_file.channels)
        _check_load_size(path, wanted, n_channels, rate, sample_rate, mono, declared_frames)
        try:
            if start:
                sound_file.seek(start)
            data = sound_file.read(wanted, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioError(
                f"{path}: decoding failed ({error}); the file may be truncated or corrupt."
            ) from error
    if data.shape[0] < wanted:
        raise AudioError(
            f"{path}: truncated: the header declares {declared_frames} frames "
            f"({declared_frames / rate:.3f} s) but the data ends after "
            f"{start + data.shape[0]} frames; expected a complete file."
        )
    return data.T, rate


@deprecate_positional
def stream_audio(
    source: AudioSource,
    *,
    block_seconds: float,
    sample_rate: int = 32000,
    mono: bool = True,
    source_rate: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive fixed-length blocks of a recording at ``sample_rate``.

    The file is decoded and resampled incrementally (soxr's streaming resampler, so block
    boundaries leave no artefacts): memory stays flat however long the recording is.
    Concatenating the blocks gives the waveform :func:`load_audio` returns, up to the
    resampler's rounding.

    Parameters
    ----------
    source : str, path-like or ndarray
        A path to an audio file, or a waveform as accepted by :func:`load_audio`.
    block_seconds : float
        Length of each block in seconds; every block but the last has exactly
        ``round(block_seconds * sample_rate)`` samples.
    sample_rate : int, default=32000
        Sample rate of the blocks in Hz.
    mono : bool, default=True
        Average channels into one; otherwise blocks are ``(n_channels, n_samples)``.
    source_rate : int, optional
        Sample rate of an array ``source`` (``None``: already at ``sample_rate``).

    Yields
    ------
    block : ndarray of float32, shape (n_samples,) or (n_channels, n_samples)
        The next block; the last one holds what remains and may be shorter.

    Raises
    ------
    AudioError
        As :func:`load_audio`, raised when the bad part of the file is reached (the
        message then says at which second), and for a recording too short to give one
        sample at ``sample_rate``. A sample rate below :data:`MIN_SAMPLE_RATE` is refused
        before anything is read. Memory does not depend on the length the header
        declares (:data:`MAX_LOAD_BYTES` does not apply): a header that claims more
        frames than the file holds gives the blocks decoded before its data ends, then
        an error.

    Examples
    --------
    >>> import numpy as np
    >>> blocks = list(stream_audio(np.zeros(70000, dtype=np.float32), block_seconds=1.0))
    >>> [len(block) for block in blocks]
    [32000, 32000, 6000]
    """
    sample_rate = _check_rate(sample_rate, "sample_rate")
    block_seconds = check_real(
        block_seconds,
        "block_seconds",
        min_val=0,
        include_boundaries="neither",
        message=f"block_seconds must be a positive number, got {block_seconds!r}.",
    )
    block_samples = max(1, int(round(block_seconds * sample_rate)))

    if not isinstance(source, (str, os.PathLike)):
        waveform = load_audio(source, sample_rate=sample_rate, mono=mono, source_rate=source_rate)
        for start in range(0, waveform.shape[-1], block_samples):
            yield waveform[..., start : start + block_samples]
        return
    if source_rate is not None:
        raise ValueError(f"source_rate is only for array inputs, got source_rate={source_rate!r}.")
    yield from _stream_file(source, block_samples, sample_rate, mono)


def _stream_file(source, block_samples: int, sample_rate: int, mono: bool) -> Iterator[np.ndarray]:
    """Generator behind :func:`stream_audio` for files."""
    path = _check_path(source)
    with _open(path) as sound_file:
        rate = int(sound_file.samplerate)
        _check_audio_rate(rate, path, "the header's sample rate")
        declared_frames = int(sound_file.frames)  # not trusted for allocation: data may end
        n_channels = 1 if mono else int(sound_file.channels)
        if declared_frames == 0:
            raise AudioError(f"{path}: contains no samples; expected at least one sample.")
        resampler = (
            soxr.ResampleStream(
                rate, sample_rate, n_channels, dtype="float32", quality=RESAMPLE_QUALITY
            )
            if rate != sample_rate
            else None
        )
        pending: list[np.ndarray] = []
        frames_read = samples_yielded = 0
        finished = False
        # A read that fails part-way ends the stream: what was read before it is still
        # resampled and yielded, and the error raised after it.
        failure: AudioError | None = None
        while not finished:
            try:
                data = sound_file.read(READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                failure = AudioError(
                    f"{path}: decoding failed after {frames_read / rate:.3f} s of the "
                    f"{declared_frames / rate:.3f} s its header declares ({error}); the file "
                    "may be truncated or corrupt."
                )
                failure.__cause__ = error
                data = np.empty((0, int(sound_file.channels)), dtype=np.float32)
            finished = failure is not None or data.shape[0] < READ_BLOCK_FRAMES
            if data.shape[0]:
                try:
                    _check_finite(data.T, path, start_seconds=frames_read / rate, rate=rate)
                except AudioError as error:
                    failure, finished = error, True
                    data = data[: int(np.argmin(np.isfinite(data).all(axis=1)))]
            frames_read += data.shape[0]
            chunk = _downmix(data.T) if mono else data
            if resampler is not None:
                chunk = resampler.resample_chunk(chunk, last=finished)
            if chunk.shape[0]:
                pending.append(chunk)
            n_pending = sum(part.shape[0] for part in pending)
            if n_pending < block_samples and not (finished and n_pending):
                continue
            buffer = np.concatenate(pending, axis=0) if len(pending) > 1 else pending[0]
            n_full = buffer.shape[0] // block_samples
            for index in range(n_full):
                yield np.ascontiguousarray(
                    buffer[index * block_samples : (index + 1) * block_samples].T
                )
            rest = buffer[n_full * block_samples :]
            pending = [rest] if rest.shape[0] else []
            samples_yielded += n_full * block_samples
            if finished and pending:
                samples_yielded += rest.shape[0]
                yield np.ascontiguousarray(rest.T)
        if failure is not None:
            raise failure
        if frames_read < declared_frames:
            raise AudioError(
                f"{path}: truncated: the header declares {declared_frames} frames "
                f"({declared_frames / rate:.3f} s) but the data ends after {frames_read} frames; "
                "expected a complete file."
            )
        if not samples_yielded:  # as load_audio: never an empty recording
            raise _too_short(path, frames_read, rate, sample_rate)
    logger.debug("streamed %s: %d frames at %d Hz", path, frames_read, rate)
