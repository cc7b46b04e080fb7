"""Cutting audio into windows: the grid, a stream's windows, and batches of them.

A recording of ``n`` samples is cut into windows of ``window`` samples starting every
``hop = window - overlap`` samples: ``[0, window)``, ``[hop, hop + window)``, ... The last
window ends at the end of the audio (it is shorter) when the previous one did not reach
it; a recording shorter than one window is one short window. This is the grid of
:func:`~sklearn_birdaudio.detect` and of the BirdNET front end.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ._validation import check_integer, check_real
from .audio import AudioError, stream_audio

__all__ = ["WindowGrid", "batches", "cut_windows", "n_samples", "stream_windows"]

MAX_WINDOW_SAMPLES = 2**62  # longer windows than any recording (and than a float can count)
READ_BLOCK_SECONDS = 60.0  # audio decoded per read; bounds memory with the batch


@dataclass(frozen=True)
class WindowGrid:
    """The window grid in samples at ``sample_rate``."""

    sample_rate: int
    window: int
    hop: int

    @classmethod
    def from_seconds(
        cls, *, window_seconds: float, hop_seconds: float, sample_rate: int
    ) -> WindowGrid:
        """The grid of windows of ``window_seconds`` every ``hop_seconds`` (at most a window)."""
        window = n_samples(window_seconds, sample_rate)
        return cls(sample_rate, window, min(n_samples(hop_seconds, sample_rate), window))


def n_samples(seconds: float, rate: int) -> int:
    """Samples in ``seconds`` (at least 1); a window of 1e300 s is one window, not an error."""
    return max(1, int(round(min(seconds * rate, MAX_WINDOW_SAMPLES))))


def cut_windows(blocks: Iterable[np.ndarray], grid: WindowGrid) -> Iterator[tuple[int, np.ndarray]]:
    """``(start sample, window)`` of the grid over a stream of mono blocks.

    Only the samples of the current window (and one block) are held. The last window is
    cut at the end of the audio (shorter than ``grid.window``) when it runs past it.
    Windows are views of the stream's blocks where they can be: copy one to keep it.
    """
    buffer = np.empty(0, dtype=np.float32)
    buffer_start = 0  # sample index of buffer[0]
    next_start = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if buffer.size else block
        while next_start + grid.window <= buffer_start + buffer.shape[0]:
            offset = next_start - buffer_start
            yield next_start, buffer[offset : offset + grid.window]  # a view: no copy
            next_start += grid.hop
        consumed = min(next_start - buffer_start, buffer.shape[0])
        buffer, buffer_start = buffer[consumed:], buffer_start + consumed
    end = buffer_start + buffer.shape[0]
    # A window that ran past the end: only when the previous one did not reach it.
    if next_start < end and (next_start == 0 or next_start - grid.hop + grid.window < end):
        yield next_start, buffer[next_start - buffer_start :].copy()


def stream_windows(
    source,
    *,
    window_seconds: float,
    hop_seconds: float,
    sample_rate: int,
    input_sample_rate: int | None = None,
    block_seconds: float = READ_BLOCK_SECONDS,
) -> Iterator[tuple[int, np.ndarray]]:
    """Read a recording block by block and yield its windows, as librosa's ``stream`` does.

    Memory holds one block and one window, whatever the recording's length.

    Parameters
    ----------
    source : str, path-like or ndarray
        An audio file, or a waveform at ``input_sample_rate`` (1-D, or channels first).
    window_seconds : float
        Length of a window.
    hop_seconds : float
        Seconds between the starts of successive windows (``window_seconds`` minus the
        overlap); at most ``window_seconds``.
    sample_rate : int
        The audio is resampled to this rate; windows and starts are in its samples.
    input_sample_rate : int, optional
        Rate of a waveform ``source``; by default ``sample_rate``. Files use their header.
    block_seconds : float, default=60.0
        Audio decoded per read.

    Yields
    ------
    start : int
        First sample of the window.
    window : ndarray of float32
        Its mono samples; the last window may be shorter (it ends at the end of the audio).

    Raises
    ------
    ValueError
        For a window that is not a positive number of seconds, a hop outside
        ``(0, window_seconds]`` or a sample rate that is not a positive integer.
    AudioError
        If the source cannot be read; windows cut before a decoding error part-way are
        yielded first.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_birdaudio import stream_windows
    >>> waveform = np.zeros(11 * 16000, dtype=np.float32)
    >>> windows = stream_windows(waveform, window_seconds=4.0, hop_seconds=3.0, sample_rate=16000)
    >>> [(start / 16000, len(window) / 16000) for start, window in windows]
    [(0.0, 4.0), (3.0, 4.0), (6.0, 4.0), (9.0, 2.0)]
    """
    window_seconds = check_real(
        window_seconds, "window_seconds", min_val=0, include_boundaries="neither"
    )
    hop_seconds = check_real(
        hop_seconds, "hop_seconds", min_val=0, max_val=window_seconds,
        include_boundaries="right",
    )  # fmt: skip
    sample_rate = check_integer(sample_rate, "sample_rate", min_val=1)
    grid = WindowGrid.from_seconds(
        window_seconds=window_seconds, hop_seconds=hop_seconds, sample_rate=sample_rate
    )
    return cut_windows(read_blocks(source, grid, input_sample_rate, block_seconds), grid)


def read_blocks(source, grid: WindowGrid, input_sample_rate, block_seconds: float):
    """Mono blocks of ``source`` at the grid's rate (the rate of waveforms only is given)."""
    return stream_audio(
        source,
        block_seconds=block_seconds,
        sample_rate=grid.sample_rate,
        # the rate of waveforms only: a file's rate is in its header
        source_rate=None if isinstance(source, (str, os.PathLike)) else input_sample_rate,
    )


def batches(windows, batch_size: int) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """``(starts, windows)`` in batches of ``batch_size`` (the last one may be shorter).

    When reading fails part-way (an :class:`AudioError` from ``windows``), the windows
    already cut are yielded as one last batch before the error is raised, so that they are
    scored rather than lost with the batch they were waiting in.
    """
    starts, batch = [], []
    try:
        for start, window in windows:
            starts.append(start)
            batch.append(window)
            if len(batch) == batch_size:
                yield starts, batch
                starts, batch = [], []
    except AudioError:
        if batch:
            yield starts, batch
        raise
    if batch:
        yield starts, batch
