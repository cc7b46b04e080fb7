"""Decoding and resampling a file block by block: the engine of ``stream_audio``.

:func:`~sklearn_birdaudio.audio.stream_audio` reads a file :data:`READ_BLOCK_FRAMES` frames
at a time, mixes them down and resamples them with soxr's streaming resampler (so block
boundaries leave no artefacts), and cuts the result into blocks of a fixed length: memory
stays flat however long the recording is, and never depends on the length the header
declares. The mix-down and the resampling quality are shared with
:func:`~sklearn_birdaudio.audio.load_audio`, so that the blocks concatenate to its waveform.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import soundfile
import soxr

from .audio_bounds import (
    AudioError,
    _check_audio_rate,
    _check_finite,
    _check_path,
    _open,
    _too_short,
)
from .sound_file_reads import MPEG_FRAME_SAMPLES, length_slack, read_frames

logger = logging.getLogger(__name__)

# soxr's "high quality" preset: the same quality librosa uses by default ("soxr_hq").
RESAMPLE_QUALITY = "HQ"
# Blocks read from disk while streaming, in source frames: large enough to amortise the
# per-call overhead of libsndfile and soxr, small enough to keep memory flat; whole MPEG
# frames (57 of them), though read_frames decodes MP3 correctly across any boundary.
READ_BLOCK_FRAMES = 57 * MPEG_FRAME_SAMPLES


def _downmix(waveform: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``(n_channels, n_samples)``; one channel as it is.

    Averaging a single channel would be a whole pass over the samples for nothing (10 %
    of streaming a mono MP3, ad hoc).
    """
    return waveform[0] if waveform.shape[0] == 1 else waveform.mean(axis=0, dtype=np.float32)


def _stream_file(source, block_samples: int, sample_rate: int, mono: bool) -> Iterator[np.ndarray]:
    """Yield blocks of ``block_samples`` samples of a file at ``sample_rate``.

    The generator behind :func:`~sklearn_birdaudio.audio.stream_audio` for files.
    """
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
                data = read_frames(sound_file, READ_BLOCK_FRAMES)
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
        if frames_read < declared_frames - length_slack(sound_file):
            raise AudioError(
                f"{path}: truncated: the header declares {declared_frames} frames "
                f"({declared_frames / rate:.3f} s) but the data ends after {frames_read} frames; "
                "expected a complete file."
            )
        if not samples_yielded:  # as load_audio: never an empty recording
            raise _too_short(path, frames_read, rate, sample_rate)
    logger.debug("streamed %s: %d frames at %d Hz", path, frames_read, rate)
