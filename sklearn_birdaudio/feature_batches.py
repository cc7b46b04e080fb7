"""The mel transformer's batches: clips of one length in, one padded array out.

Each waveform is cropped or zero-padded to the clip length (:func:`_crop_or_pad`), and the
spectrograms of each batch are written into the transform's output in place
(:class:`_PaddedRows`), rows shorter than the longest ending in NaN frames, as
:func:`~sklearn_birdaudio.valid_frames` expects.
"""

from __future__ import annotations

import numpy as np


def _crop_or_pad(waveform: np.ndarray, n_samples: int, crop: str) -> np.ndarray:
    """Zero-pad at the end, or keep ``n_samples`` at ``crop`` (start, center or end)."""
    excess = waveform.shape[0] - n_samples
    if excess < 0:
        return np.pad(waveform, (0, -excess))
    start = {"start": 0, "center": excess // 2, "end": excess}[crop]
    return waveform[start : start + n_samples]


class _PaddedRows:
    """The transform's output, filled batch by batch in place (no final concatenation).

    Rows shorter than the longest are NaN-padded; the array is widened when a longer
    batch arrives (with a fixed ``duration`` every batch has the same width).
    """

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.array: np.ndarray | None = None

    def put(self, rows: list[int], spectrograms: np.ndarray) -> None:
        n_frames = spectrograms.shape[-1]
        # Uninitialised, not NaN-filled (a pass over the whole output): every row is put
        # once, and each put writes the NaN tail of its rows itself.
        if self.array is None:
            shape = (self.n_rows, *spectrograms.shape[1:3], n_frames)
            self.array = np.empty(shape, dtype=np.float32)
        elif n_frames > self.array.shape[-1]:
            width = self.array.shape[-1]
            wider = np.empty((*self.array.shape[:3], n_frames), dtype=np.float32)
            wider[..., :width] = self.array
            wider[..., width:] = np.nan
            self.array = wider
        if rows == list(range(rows[0], rows[0] + len(rows))):
            rows = slice(rows[0], rows[0] + len(rows))  # a view, not a fancy-index copy
        self.array[rows, ..., :n_frames] = spectrograms
        if n_frames < self.array.shape[-1]:
            self.array[rows, ..., n_frames:] = np.nan
