"""The log-mel computation behind :class:`~sklearn_birdaudio.MelSpectrogramTransformer`.

It reproduces librosa's ``feature.melspectrogram`` followed by
``power_to_db(ref=1.0, amin=1e-10, top_db=80)``: a centred STFT with zero ("constant")
padding, a periodic Hann window, the power spectrum, librosa's Slaney mel filterbank,
decibels, and a floor ``top_db`` below each clip's maximum, on batches of waveforms in
torch, in blocks of frames so that memory is bounded whatever the length of the input.
"""

from __future__ import annotations

import numpy as np
import torch

from ._deprecation import deprecate_positional

__all__ = ["LogMelSpectrogram", "n_frames_for", "silence_floor", "valid_frames"]

AMIN = 1e-10  # librosa.power_to_db's floor on power before the logarithm
FFT_DTYPES = {"float64": torch.float64, "float32": torch.float32}
MEL_GROUP = 32  # mel filters per matrix product (measured fastest of 8 to 64 at 128 mels)


def n_frames_for(n_samples, n_fft: int, hop_length: int):
    """Number of centred STFT frames librosa produces for ``n_samples`` samples."""
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length


def silence_floor(spectrograms: torch.Tensor) -> torch.Tensor:
    """Each spectrogram's lowest dB value over its audio, NaN padding left out.

    What stands for silence where a spectrogram has no audio: SpecAugment's masks,
    the bands a frequency shift vacates, and the network's view of padding.

    Parameters
    ----------
    spectrograms : Tensor of shape (batch, n_channels, n_mels, n_frames)

    Returns
    -------
    floor : Tensor of shape (batch, 1, 1, 1)

    Examples
    --------
    >>> import torch
    >>> batch = torch.tensor([[[[-20.0, -80.0, float("nan")]]]])
    >>> silence_floor(batch).flatten().tolist()
    [-80.0]
    """
    return torch.nan_to_num(spectrograms, nan=torch.inf).amin(dim=(1, 2, 3), keepdim=True)


def valid_frames(spectrograms: np.ndarray) -> np.ndarray:
    """Boolean mask of the frames that hold audio in a batch of spectrograms.

    :class:`MelSpectrogramTransformer` with ``duration=None`` pads shorter recordings with
    NaN frames; this recovers which frames are real.

    Parameters
    ----------
    spectrograms : ndarray of shape (n_samples, n_channels, n_mels, n_frames)

    Returns
    -------
    mask : ndarray of bool, shape (n_samples, n_frames)
        True where the frame is audio, False where it is padding.
    """
    spectrograms = np.asarray(spectrograms)
    if spectrograms.ndim != 4:
        raise ValueError(
            f"spectrograms must have shape (n_samples, n_channels, n_mels, n_frames), got "
            f"shape {spectrograms.shape}."
        )
    return ~np.isnan(spectrograms[:, 0, 0, :])


class LogMelSpectrogram(torch.nn.Module):
    """Batched log-mel spectrogram equal to librosa's, as a torch module.

    Parameters
    ----------
    sample_rate, n_fft, hop_length, n_mels, fmin, fmax, top_db
        As in :class:`MelSpectrogramTransformer`.
    max_frames_per_chunk : int, default=512
        Frames computed at once (several short clips, or part of a long one): bounds
        memory and keeps the working set in cache. Results are identical to one pass
        (each chunk gets its STFT context).
    fft_precision : {"float64", "float32"}, default="float64"
        Precision of the windowed FFT (the rest is float32), as in
        :class:`MelSpectrogramTransformer`.
    """

    @deprecate_positional
    def __init__(
        self,
        *,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 128,
        fmin: float = 20.0,
        fmax: float | None = 16000.0,
        top_db: float | None = 80.0,
        max_frames_per_chunk: int = 512,
        fft_precision: str = "float64",
    ):
        super().__init__()
        import librosa  # deferred: importing librosa takes a second

        self.n_fft = n_fft
        self.hop_length = hop_length
        self.top_db = top_db
        self.max_frames_per_chunk = max_frames_per_chunk
        mel_basis = librosa.filters.mel(
            sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float32
        )
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis), persistent=False)
        # The basis with every column twice: it multiplies the squared real and imaginary
        # parts of the spectrum as they lie in memory, interleaved, so the power
        # |X|^2 = re^2 + im^2 is never formed (a strided pass over the spectrum).
        self.register_buffer(
            "interleaved_mel_basis",
            torch.from_numpy(np.repeat(mel_basis, 2, axis=1)),
            persistent=False,
        )
        # Each mel filter covers a few FFT bins, so groups of MEL_GROUP filters need only
        # the bins their filters cover: a quarter of the dense product's work at 128 mels.
        self.mel_groups = []  # (first filter, end filter, first bin, end bin)
        for low in range(0, n_mels, MEL_GROUP):
            covered = np.flatnonzero(mel_basis[low : low + MEL_GROUP].any(axis=0))
            first, last = (int(covered[0]), int(covered[-1]) + 1) if covered.size else (0, 1)
            self.mel_groups.append((low, min(low + MEL_GROUP, n_mels), first, last))
        fft_dtype = FFT_DTYPES[fft_precision]
        self.register_buffer(
            "window", torch.hann_window(n_fft, periodic=True, dtype=fft_dtype), persistent=False
        )

    def mel_power(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram of a batch of equal-length waveforms.

        Parameters
        ----------
        waveforms : Tensor of shape (batch, n_samples)

        Returns
        -------
        Tensor of shape (batch, n_mels, n_frames)
        """
        n_samples = waveforms.shape[-1]
        n_frames = int(n_frames_for(n_samples, self.n_fft, self.hop_length))
        # Work in blocks of about `max_frames_per_chunk` frames (several short clips, or part
        # of a long one): the windowed frames of a block stay in cache, which makes the
        # float64 FFT ~4x faster than one pass over a batch of 64 five-second clips.
        frames_per_block = min(n_frames, self.max_frames_per_chunk)
        clips_per_block = max(1, self.max_frames_per_chunk // n_frames)
        output = waveforms.new_empty(waveforms.shape[0], n_frames, self.mel_basis.shape[0])
        basis = self.interleaved_mel_basis
        for first in range(0, waveforms.shape[0], clips_per_block):
            clips = slice(first, first + clips_per_block)
            for start in range(0, n_frames, frames_per_block):
                stop = min(n_frames, start + frames_per_block)
                frames = self._windowed_frames(waveforms[clips], start, stop)
                spectrum = torch.fft.rfft(frames, dim=-1)
                # (re, im) pairs, squared in place: (batch, frames, 2 * n_bins)
                squares = torch.view_as_real(spectrum).flatten(-2).square_()
                squares = squares.to(basis.dtype)
                for low, high, first, last in self.mel_groups:
                    output[clips, start:stop, low:high] = torch.matmul(
                        squares[..., 2 * first : 2 * last], basis[low:high, 2 * first : 2 * last].T
                    )
        return output.transpose(1, 2)

    def _windowed_frames(self, clips: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Frames ``start`` to ``stop`` of centred clips, times the window, in FFT precision.

        The clips are centred as librosa centres them, with zeros ("constant";
        ``torch.stft``'s default "reflect" differs at the edges by up to 15 dB). Only the
        frames that reach past an end are built from a zero-padded copy of their samples;
        the others are read from the clips in place, so no padded copy of a clip is made.
        """
        n_fft, hop, pad = self.n_fft, self.hop_length, self.n_fft // 2
        n_samples = clips.shape[-1]
        frames = clips.new_empty((clips.shape[0], stop - start, n_fft), dtype=self.window.dtype)
        # Frames [inner_start, inner_stop) lie inside the samples.
        inner_start = min(max(start, -(-pad // hop)), stop)
        inner_stop = max(min(stop, (n_samples + pad - n_fft) // hop + 1), inner_start)
        for first, last in ((start, inner_start), (inner_start, inner_stop), (inner_stop, stop)):
            if first == last:
                continue
            begin = first * hop - pad
            end = (last - 1) * hop + n_fft - pad
            segment = clips[:, max(begin, 0) : min(end, n_samples)].to(self.window.dtype)
            if begin < 0 or end > n_samples:
                segment = torch.nn.functional.pad(
                    segment, (max(-begin, 0), max(end - n_samples, 0))
                )
            torch.mul(
                segment.unfold(-1, n_fft, hop),
                self.window,
                out=frames[:, first - start : last - start],
            )
        return frames

    def forward(self, waveforms: torch.Tensor, n_samples: torch.Tensor | None = None):
        """Log-mel spectrograms in dB; frames past each input's length are NaN.

        Parameters
        ----------
        waveforms : Tensor of shape (batch, max_samples)
            Waveforms, zero-padded at the end to a common length.
        n_samples : Tensor of int, shape (batch,), optional
            True length of each waveform (all of ``max_samples`` when omitted).

        Returns
        -------
        Tensor of shape (batch, n_mels, n_frames)
        """
        # In place: every new tensor of this size is a fresh mapping of memory to fault in.
        decibels = self.mel_power(waveforms).clamp_(min=AMIN).log10_().mul_(10.0)
        if n_samples is None:
            valid = None
            peak = decibels.amax(dim=(1, 2), keepdim=True)
        else:
            frames = torch.arange(decibels.shape[-1], device=decibels.device)
            lengths = n_frames_for(n_samples.to(decibels.device), self.n_fft, self.hop_length)
            valid = (frames[None, :] < lengths[:, None])[:, None, :]
            peak = decibels.masked_fill(~valid, -torch.inf).amax(dim=(1, 2), keepdim=True)
        if self.top_db is not None:
            decibels = torch.maximum(decibels, peak - self.top_db, out=decibels)
        if valid is not None:
            decibels = decibels.masked_fill(~valid, torch.nan)
        return decibels
