"""Log-mel spectrograms as a scikit-learn transformer: :class:`MelSpectrogramTransformer`.

The transformer takes care of inputs (paths, waveforms, arrays, DataFrames), cropping and
padding, batching, progress and the optional on-disk cache of each file's spectrogram; the
computation itself is
:class:`~sklearn_birdaudio.log_mel.LogMelSpectrogram`, which equals librosa's log-mel.
"""

from __future__ import annotations

import logging
import os
import weakref
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import validate_data
from tqdm.auto import tqdm

from ._validation import check_integer, check_memory, check_real
from .audio import AudioError, audio_info, load_audio
from .audio_bounds import _check_audio_rate
from .devices import resolve_device
from .feature_batches import _crop_or_pad, _PaddedRows
from .feature_cache import CACHE_KEY_PARAMS, transform_cached
from .feature_inputs import _as_sources, _input_name, _is_path
from .log_mel import FFT_DTYPES, LogMelSpectrogram, n_frames_for
from .spec import AudioSpec, Spectrograms

if TYPE_CHECKING:
    from joblib import Memory

__all__ = ["MelSpectrogramTransformer"]

logger = logging.getLogger(__name__)

CROP_POSITIONS = ("start", "center", "end")
# The log-mel module of each transformer, kept between transform calls (building the mel
# filterbank was 4 % of transforming a batch of 64 five-second clips, ad hoc), with the
# settings it was built for; outside the estimator so that transform leaves its __dict__
# alone. MODULE_PARAMS are the transformer's parameters that LogMelSpectrogram takes.
_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MODULE_PARAMS = (
    "sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "fft_precision",
)  # fmt: skip
# Audio computed at once, at most: 64 five-second clips. Batches of long recordings are cut
# there, keeping the working set in cache (64 one-minute recordings at once ran 4.4x slower
# than 8 at once, see docs/benchmarks.md).
MAX_BATCH_SECONDS = 320.0


class MelSpectrogramTransformer(TransformerMixin, BaseEstimator):
    """Turn recordings (paths or waveforms) into log-mel spectrograms.

    A stateless scikit-learn transformer: ``fit`` only checks the parameters, so it can
    stand first in a :class:`~sklearn.pipeline.Pipeline` that takes file paths. The output
    equals ``librosa.power_to_db(librosa.feature.melspectrogram(...), top_db=top_db)``
    computed clip by clip with the same parameters (within 1e-3 dB), but is computed in
    batches with torch, on the GPU when one is present.

    Parameters
    ----------
    sample_rate : int, default=32000
        Every input is resampled to this rate (Hz) before the STFT.
    duration : float or None, default=5.0
        Length of each clip in seconds. Shorter inputs are zero-padded at the end;
        longer ones are cropped at ``crop``. ``None`` keeps whole recordings: the output
        has as many frames as the longest one, and frames past the end of a shorter one
        are NaN (see :func:`~sklearn_birdaudio.valid_frames`).
    n_fft : int, default=1024
        FFT window length in samples.
    hop_length : int, default=512
        Samples between successive frames.
    n_mels : int, default=128
        Number of mel bands.
    fmin : float, default=20.0
        Lowest frequency of the mel filterbank (Hz).
    fmax : float or None, default=16000.0
        Highest frequency of the mel filterbank (Hz); ``None`` means ``sample_rate / 2``.
    top_db : float or None, default=80.0
        Floor each clip at this many dB below its maximum; ``None`` disables it.
    crop : {"start", "center", "end"}, default="start"
        Which part of an input longer than ``duration`` is kept. For files only that
        part is decoded.
    input_sample_rate : int or None, default=None
        Sample rate of waveform (array) inputs; ``None`` means they are already at
        ``sample_rate``. Files always use the rate in their header. At least
        :data:`~sklearn_birdaudio.audio.MIN_SAMPLE_RATE` (1 kHz), as for files.
    fft_precision : {"float64", "float32"}, default="float64"
        Precision of the windowed FFT; everything else is float32. ``"float64"`` matches
        librosa (whose numpy FFT computes in double) within 1e-3 dB everywhere.
        ``"float32"`` is about twice as fast but rounds the quietest bins (70-80 dB below
        a clip's peak) by up to ~5e-3 dB, see docs/benchmarks.md.
    batch_size : int, default=64
        Most clips loaded and computed at once. A batch also holds at most 320 s of
        audio (64 five-second clips), so long recordings go in smaller batches: memory
        stays bounded and the working set in cache.
    device : str or torch.device, default="auto"
        Where to compute: ``"auto"`` uses CUDA when available, else the CPU.
    verbose : int, default=0
        Show a progress bar over inputs when > 0.
    memory : str, path, joblib.Memory or None, default=None
        Cache the spectrogram of each file input on disk, as
        :class:`~sklearn.pipeline.Pipeline`'s ``memory``: a folder or a
        :class:`joblib.Memory`; ``None`` caches nothing. An entry is keyed on the file's
        absolute path, size and modification time (an edited file is recomputed), the
        parameters that change the output (all but ``batch_size``, ``device``,
        ``verbose``, ``memory`` and ``input_sample_rate``) and the package version. Cache
        misses are still computed in batches, and each file's spectrogram is stored
        without the padding of its batch, so results do not depend on what is cached
        (they agree to float rounding, ~1e-5 dB). Waveform inputs are never cached. Use
        it to compute features once across cross-validation folds and grid searches;
        clear the cache with ``joblib.Memory(folder).clear()``.

    Attributes
    ----------
    audio_spec : AudioSpec
        What the front end takes and how it frames it (rate, hop, window, clip, band),
        from the parameters above: the one source of these settings, which the
        spectrograms carry to the classifier and :func:`~sklearn_birdaudio.detect` reads.
    n_features_in_ : int
        Number of samples per waveform when fitted on a numeric 2-D array. Not set when
        fitted on paths or ragged waveforms, whose length varies by design.

    See Also
    --------
    sklearn_birdaudio.load_audio : How each input is read and resampled.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_birdaudio import MelSpectrogramTransformer
    >>> waveforms = np.random.default_rng(0).normal(size=(3, 32000)).astype(np.float32)
    >>> MelSpectrogramTransformer(duration=1.0).fit_transform(waveforms).shape
    (3, 1, 128, 63)
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        duration: float | None = 5.0,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 128,
        fmin: float = 20.0,
        fmax: float | None = 16000.0,
        top_db: float | None = 80.0,
        crop: str = "start",
        input_sample_rate: int | None = None,
        fft_precision: str = "float64",
        batch_size: int = 64,
        device: str = "auto",
        verbose: int = 0,
        memory: str | os.PathLike | Memory | None = None,
    ):
        self.sample_rate = sample_rate
        self.duration = duration
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.top_db = top_db
        self.crop = crop
        self.input_sample_rate = input_sample_rate
        self.fft_precision = fft_precision
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.memory = memory

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.string = True  # file paths
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def audio_spec(self) -> AudioSpec:
        """The :class:`~sklearn_birdaudio.AudioSpec` of these parameters."""
        self._check_params()
        fmax = self.fmax if self.fmax is not None else self.sample_rate / 2
        return AudioSpec(
            sample_rate=int(self.sample_rate),
            hop_length=int(self.hop_length),
            window_seconds=None if self.duration is None else float(self.duration),
            clip_seconds=None if self.duration is None else float(self.duration),
            input_sample_rate=None
            if self.input_sample_rate is None
            else int(self.input_sample_rate),
            frequency_range=(float(self.fmin), float(fmax)),
        )

    # -- parameters -------------------------------------------------------------------
    def _check_params(self) -> dict:
        """Validate the hyper-parameters; raise ValueError naming the bad one.

        Returns the numeric ones as Python numbers (a grid's NumPy scalars, converted), so
        that the mel filters are computed in float64 whichever type the values came in.
        """
        positive_or_none = {"min_val": 0, "include_boundaries": "neither", "allow_none": True}
        checked = {
            "sample_rate": check_integer(self.sample_rate, "sample_rate", min_val=1),
            "duration": check_real(self.duration, "duration", **positive_or_none),
            "n_fft": check_integer(self.n_fft, "n_fft", min_val=1),
            "hop_length": check_integer(self.hop_length, "hop_length", min_val=1),
            "n_mels": check_integer(self.n_mels, "n_mels", min_val=1),
            "fmax": check_real(self.fmax, "fmax", **positive_or_none),
            "top_db": check_real(self.top_db, "top_db", **positive_or_none),
            "input_sample_rate": check_integer(
                self.input_sample_rate, "input_sample_rate", min_val=1, allow_none=True
            ),
        }
        if self.input_sample_rate is not None:
            _check_audio_rate(self.input_sample_rate, None, "input_sample_rate")
        checked["batch_size"] = check_integer(self.batch_size, "batch_size", min_val=1)
        checked["fmin"] = check_real(self.fmin, "fmin", min_val=0)
        nyquist = self.sample_rate / 2
        fmax = nyquist if self.fmax is None else self.fmax
        if fmax > nyquist:
            raise ValueError(
                f"fmax={self.fmax!r} is above the Nyquist frequency {nyquist:g} Hz of "
                f"sample_rate={self.sample_rate}; expected fmax <= sample_rate / 2 or None."
            )
        if self.fmin >= fmax:
            raise ValueError(f"fmin={self.fmin!r} must be below fmax={fmax!r}.")
        if self.fft_precision not in FFT_DTYPES:
            raise ValueError(
                f"fft_precision must be one of {tuple(FFT_DTYPES)}, got {self.fft_precision!r}."
            )
        if self.crop not in CROP_POSITIONS:
            raise ValueError(f"crop must be one of {CROP_POSITIONS}, got {self.crop!r}.")
        resolve_device(self.device)
        check_memory(self.memory)
        return checked

    # -- scikit-learn API -------------------------------------------------------------
    def fit(self, X, y=None):
        """Check the parameters (the transform learns nothing from data).

        Parameters
        ----------
        X : list of paths and/or waveforms, or array of shape (n_samples, n_times)
            As for :meth:`transform`.
        y : ignored

        Returns
        -------
        self : MelSpectrogramTransformer
        """
        self._check_params()
        sources = _as_sources(X)  # checks the container; files are only read by transform
        if not sources:
            raise ValueError("X contains no inputs; expected at least one path or waveform.")
        if isinstance(X, np.ndarray) and X.dtype != object and X.ndim == 2:
            validate_data(self, X, dtype=None, ensure_min_features=1)
        return self

    def transform(self, X) -> np.ndarray:
        """Compute log-mel spectrograms.

        Parameters
        ----------
        X : list of paths and/or waveforms, or array of shape (n_samples, n_times)
            Each element is a path to an audio file (WAV, FLAC, OGG, MP3) or a waveform
            (1-D mono, or 2-D multi-channel, averaged to mono) at ``input_sample_rate``.
            A 2-D numeric array is a batch of equal-length mono waveforms, a 3-D one a
            batch of multi-channel ones; a one-column DataFrame or a Series also works.

        Returns
        -------
        spectrograms : Spectrograms of float32, shape (n_samples, 1, n_mels, n_frames)
            Log-mel power in dB. With a fixed ``duration`` every clip has
            ``1 + round(duration * sample_rate) // hop_length`` frames; with
            ``duration=None`` shorter recordings end in NaN frames. An ndarray that
            carries :attr:`audio_spec` (``spectrograms.audio_spec``), from which a
            classifier learns how many frames a second holds.

        Raises
        ------
        AudioError
            If an input cannot be read or is not valid audio; the message names it.
        """
        self._check_params()
        sources = _as_sources(X)
        if not sources:
            raise ValueError("X contains no inputs; expected at least one path or waveform.")
        device = resolve_device(self.device)
        module = self._module(device)
        logger.debug("log-mel of %d inputs on %s", len(sources), device)
        target_samples = None if self.duration is None else self._target_samples()
        output = _PaddedRows(len(sources))
        with tqdm(total=len(sources), desc="log-mel", unit="clip", disable=not self.verbose) as bar:
            if self.memory is None:
                batches = self._iter_batches(sources, module, device, target_samples, bar)
                for rows, spectrograms in batches:
                    output.put(rows, spectrograms)
            else:
                self._transform_cached(sources, output, module, device, target_samples, bar)
        return Spectrograms(output.array, self.audio_spec)

    # -- helpers ----------------------------------------------------------------------
    def _iter_batches(self, sources, module, device, target_samples, bar, positions=None):
        """Yield ``(rows, log-mel)`` of ``sources``, batch by batch, padded to the longest.

        A batch holds at most ``batch_size`` inputs and about MAX_BATCH_SECONDS of audio,
        so that long recordings do not make the working set (and the time) explode.
        ``positions`` are the sources' indices in ``X``, for error messages (default: 0, 1, ...).
        """
        budget = int(MAX_BATCH_SECONDS * self.sample_rate)
        rows, waveforms, names = [], [], []
        for index, source in enumerate(sources):
            rows.append(index)
            names.append(_input_name(source, index if positions is None else positions[index]))
            waveforms.append(self._load(source, target_samples, names[-1]))
            last = index == len(sources) - 1
            full = sum(waveform.shape[0] for waveform in waveforms) >= budget
            if len(rows) == self.batch_size or full or last:
                spectrograms = self._compute(module, waveforms, device)
                self._check_overflow(spectrograms, waveforms, names)
                bar.update(len(rows))
                yield rows, spectrograms
                rows, waveforms, names = [], [], []

    def _transform_cached(self, sources, output, module, device, target_samples, bar) -> None:
        """Like the uncached transform, reading and storing each file's log-mel in ``memory``."""
        transform_cached(
            self.memory,
            {name: getattr(self, name) for name in CACHE_KEY_PARAMS},
            sources,
            output,
            bar,
            compute_one=partial(
                self._compute_one, module=module, device=device, target_samples=target_samples
            ),
            compute_batches=partial(
                self._iter_batches,
                module=module,
                device=device,
                target_samples=target_samples,
                bar=bar,
            ),
        )

    def _compute_one(self, source, index, module, device, target_samples) -> np.ndarray:
        """Log-mel of one input (``X[index]``), shape (1, n_mels, n_frames)."""
        name = _input_name(source, index)
        waveforms = [self._load(source, target_samples, name)]
        spectrograms = self._compute(module, waveforms, device)
        self._check_overflow(spectrograms, waveforms, [name])
        return spectrograms[0]

    def _target_samples(self) -> int:
        return max(1, int(round(self.duration * self.sample_rate)))

    def _module(self, device) -> LogMelSpectrogram:
        """The log-mel module on ``device``, built once per settings and device."""
        settings = (str(device), *(getattr(self, name) for name in MODULE_PARAMS))
        cached = _MODULES.get(self)
        if cached is None or cached[0] != settings:
            cached = _MODULES[self] = (settings, self._make_module().to(device))
        return cached[1]

    def _make_module(self) -> LogMelSpectrogram:
        checked = self._check_params()
        return LogMelSpectrogram(
            **{name: checked.get(name, getattr(self, name)) for name in MODULE_PARAMS}
        )

    def _load(self, source, target_samples: int | None, name: str) -> np.ndarray:
        """Load one input as mono at ``sample_rate``, cropped/padded to ``target_samples``."""
        if not _is_path(source):
            try:
                waveform = load_audio(
                    source, sample_rate=self.sample_rate, source_rate=self.input_sample_rate
                )
            except AudioError as error:  # say which of the waveforms in X it is
                raise AudioError(f"{name}: {error}") from error
        elif self.duration is None:
            waveform = load_audio(source, sample_rate=self.sample_rate)
        else:
            # Decode only the part that is kept (the header gives the length).
            offset_seconds = 0.0
            if self.crop != "start":
                excess = max(0.0, audio_info(source).duration_seconds - self.duration)
                offset_seconds = excess / 2 if self.crop == "center" else excess
            waveform = load_audio(
                source,
                sample_rate=self.sample_rate,
                offset_seconds=offset_seconds,
                duration_seconds=self.duration,
            )
        if target_samples is None:
            return waveform
        return _crop_or_pad(waveform, target_samples, self.crop)

    def _compute(self, module, waveforms: list[np.ndarray], device) -> np.ndarray:
        """Log-mel of a list of mono waveforms, padded to the longest with NaN frames."""
        lengths = np.array([waveform.shape[0] for waveform in waveforms])
        batch = np.empty((len(waveforms), lengths.max()), dtype=np.float32)
        for row, waveform in zip(batch, waveforms, strict=True):
            row[: waveform.shape[0]] = waveform
            row[waveform.shape[0] :] = 0.0
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to(device)
            uniform = bool((lengths == lengths[0]).all())
            n_samples = None if uniform else torch.from_numpy(lengths)
            decibels = module(tensor, n_samples)
        return decibels.cpu().numpy()[:, np.newaxis]

    def _check_overflow(self, spectrograms: np.ndarray, waveforms, names) -> None:
        """Raise :class:`AudioError` naming an input whose power overflowed float32.

        Samples of ~1e16 and more (finite in float32) square past its range: their frames
        would be NaN, indistinguishable from padding.
        """
        lengths = np.array([waveform.shape[0] for waveform in waveforms])
        audio_frames = np.arange(spectrograms.shape[-1]) < n_frames_for(
            lengths[:, np.newaxis], self.n_fft, self.hop_length
        )
        overflow = (~np.isfinite(spectrograms[:, 0]).all(axis=1) & audio_frames).any(axis=1)
        if overflow.any():
            row = int(np.flatnonzero(overflow)[0])
            peak = float(np.abs(waveforms[row]).max())
            raise AudioError(
                f"{names[row]}: its power spectrum overflows float32 (peak amplitude "
                f"{peak:.3g}); expected a waveform scaled to about [-1, 1]."
            )
