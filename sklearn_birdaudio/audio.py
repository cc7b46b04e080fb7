"""Reading and resampling audio; streaming blocks of long recordings.

Everything that turns a file or an array into a waveform goes through this module, so
that every kind of bad input ends in one exception type, :class:`AudioError`, whose
message names the input, what was wrong and what was expected. The checks themselves are
:mod:`sklearn_birdaudio.audio_bounds`' (re-exported here: :class:`AudioError`,
``MIN_SAMPLE_RATE``); the block-by-block decoding behind :func:`stream_audio` is
:mod:`sklearn_birdaudio.audio_stream`'s (``READ_BLOCK_FRAMES``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

from ._deprecation import deprecate_positional
from ._validation import check_real
from .audio_bounds import MIN_SAMPLE_RATE as MIN_SAMPLE_RATE
from .audio_bounds import (
    AudioError,
    _check_audio_rate,
    _check_finite,
    _check_path,
    _check_rate,
    _open,
    _to_float_waveform,
    _too_short,
)
from .audio_stream import READ_BLOCK_FRAMES as READ_BLOCK_FRAMES
from .audio_stream import RESAMPLE_QUALITY, _downmix, _stream_file
from .sound_file_reads import length_slack, read_frames, seek_frame

__all__ = [
    "AudioError",
    "AudioInfo",
    "audio_files",
    "audio_info",
    "load_audio",
    "stream_audio",
]

AudioSource = str | os.PathLike | np.ndarray

ARRAY_INPUT = "array input"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
# What load_audio may allocate for one recording (the decoded float32 samples, their mono
# mix and the resampled output), checked against the header's frame count before
# decoding: 4 GiB holds 9.3 h of mono audio at 32 kHz, 3.7 h of mono 48 kHz audio
# resampled to 32 kHz, 1.7 h of stereo 48 kHz. A header may claim up to 2**36 frames
# (256 GiB) in a file of a few KB. Longer recordings are read block by block with
# stream_audio or detect, which never allocate from the declared length.
MAX_LOAD_BYTES = 4 * 2**30
BYTES_PER_SAMPLE = np.dtype(np.float32).itemsize


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


@deprecate_positional
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
            skip = seek_frame(sound_file, start)
            data = read_frames(sound_file, skip + wanted)[skip:]
            complete = declared_frames - length_slack(sound_file)  # MP3's count: estimated
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioError(
                f"{path}: decoding failed ({error}); the file may be truncated or corrupt."
            ) from error
    if data.shape[0] < wanted and start + data.shape[0] < complete:
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
