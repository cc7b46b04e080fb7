"""Scoring one recording with a fitted model: the unit of work every backend runs.

:class:`FileScorer` holds everything that is the same for every file of a
:func:`~sklearn_birdaudio.detect` call (the window grid, the thresholds, the classes);
called with a model and one source, it returns that file's :class:`FileResult`. Threads
(:mod:`sklearn_birdaudio.execution`) and Dask workers
(:mod:`sklearn_birdaudio.distributed`) are handed a scorer and run it; they know nothing
else of detection.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from . import windows
from ._validation import is_real_number
from .audio import AudioError
from .composition import estimators_in
from .execution import ReadAhead
from .spec import AudioSpec
from .windows import WindowGrid, batches, cut_windows, read_blocks

logger = logging.getLogger(__name__)

# Batches of windows a background thread decodes, resamples and cuts ahead of the model
# when reading ahead: one, so the model scores one batch while the next is decoded.
READ_AHEAD_BATCHES = 1


def quiet_model(model):
    """``model``, or a copy of it whose members show no progress of their own.

    :func:`~sklearn_birdaudio.detect` calls it on every call; a caller that calls
    ``detect`` many times (once per file) calls it once first, so that the model is
    copied once.
    """
    if not any(getattr(member, "verbose", 0) for member in estimators_in(model)):
        return model
    model = copy.deepcopy(model)
    for member in estimators_in(model):
        if getattr(member, "verbose", 0):
            member.verbose = 0
    return model


def check_model(model) -> np.ndarray:
    """The classes of a fitted classifier with ``predict_proba``; an error otherwise."""
    if not hasattr(model, "predict_proba"):
        raise TypeError(
            f"model must be a fitted classifier with predict_proba (a Pipeline of "
            f"MelSpectrogramTransformer and AttentionCNNClassifier, or an ensemble of them), "
            f"got {type(model).__name__}."
        )
    check_is_fitted(model)
    return np.asarray(model.classes_)


def window_grid(spec: AudioSpec, window_seconds, overlap_seconds) -> WindowGrid:
    """The grid of ``window_seconds`` (default: the spec's) overlapping by ``overlap_seconds``."""
    if window_seconds is None:
        window_seconds = spec.window_seconds
        if window_seconds is None:
            raise ValueError(
                "window_seconds could not be read from the model (its pipelines disagree or "
                "have no MelSpectrogramTransformer); pass window_seconds explicitly."
            )
    if not is_real_number(window_seconds) or window_seconds <= 0:
        raise ValueError(f"window_seconds must be a positive number, got {window_seconds!r}.")
    limit = spec.clip_seconds
    if limit is not None and window_seconds > limit + 1e-9:
        raise ValueError(
            f"window_seconds={window_seconds} is longer than the model's clips "
            f"(MelSpectrogramTransformer(duration={limit})), which would crop each window and "
            f"ignore part of the audio; expected window_seconds <= {limit}."
        )
    if not (is_real_number(overlap_seconds) and 0 <= overlap_seconds < window_seconds):
        raise ValueError(
            f"overlap_seconds must be >= 0 and below window_seconds={window_seconds}, got "
            f"{overlap_seconds!r}."
        )
    return WindowGrid.from_seconds(
        window_seconds=window_seconds,
        hop_seconds=window_seconds - overlap_seconds,
        sample_rate=spec.waveform_rate,
    )


def score_stream(
    model,
    source,
    grid: WindowGrid,
    batch_size: int,
    input_sample_rate,
    *,
    read_ahead: bool = False,
):
    """Yield ``(starts, ends, probabilities)`` per batch of windows of one recording.

    Starts and ends are sample indices; the last window's end is the recording's length.
    With ``read_ahead``, the next batch is read in a thread while the model scores. An
    :class:`AudioError` part-way through is raised after every window cut before it has
    been scored and yielded. Audio is decoded
    :data:`~sklearn_birdaudio.windows.READ_BLOCK_SECONDS` at a time.
    """
    blocks = read_blocks(source, grid, input_sample_rate, windows.READ_BLOCK_SECONDS)
    window_batches = batches(cut_windows(blocks, grid), batch_size)
    if read_ahead and READ_AHEAD_BATCHES > 0:
        # Whole batches ahead, not blocks: the model then scores one batch while the
        # next is decoded (a block of 60 s is a fifth of a batch of 64 five-second windows).
        window_batches = iter(ReadAhead(window_batches, READ_AHEAD_BATCHES))
    for starts, batch in window_batches:
        probabilities = finite(np.asarray(model.predict_proba(batch), dtype=np.float64))
        ends = [start + window.shape[0] for start, window in zip(starts, batch, strict=True)]
        yield np.asarray(starts), np.asarray(ends), probabilities


def finite(probabilities: np.ndarray) -> np.ndarray:
    """``probabilities``; ``ValueError`` if any is NaN or infinite.

    A model with NaN weights (a corrupt model file) returns NaN probabilities, which no
    threshold passes: detect would write tables without rows and report success. The
    error makes it the file's error instead.
    """
    ok = np.isfinite(probabilities).reshape(len(probabilities), -1).all(axis=1)
    if not ok.all():
        raise ValueError(
            f"the model returned non-finite scores (NaN or infinite) for "
            f"{int((~ok).sum())} of {len(ok)} windows in a batch; expected "
            "probabilities in [0, 1]: the model file may be corrupt (retrain it or "
            "restore a good copy)."
        )
    return probabilities


@dataclass
class FileResult:
    """One recording's result: ``duration_s`` is the seconds scored (None: nothing was) and
    ``error`` why reading stopped (None: it reached the end); a file that failed part-way
    has both."""

    name: str
    detections: pd.DataFrame | None
    duration_s: float | None
    error: str | None


@dataclass(frozen=True)
class FileScorer:
    """Detections of one recording at per-class thresholds, as a picklable callable.

    Parameters
    ----------
    grid : WindowGrid
        The windows.
    per_class : ndarray
        The threshold of each class (``inf``: never reported).
    classes : ndarray
        The model's classes, one per column of its probabilities.
    batch_size : int
        Windows scored at once.
    input_sample_rate : int or None
        Rate of waveform sources.
    """

    grid: WindowGrid
    per_class: np.ndarray
    classes: np.ndarray
    batch_size: int
    input_sample_rate: int | None

    def __call__(
        self,
        model,
        source,
        name: str,
        progress: Callable[[float], object] | None = None,
        read_ahead: bool = False,
    ) -> FileResult:
        """Score ``source``; any failure of this one file becomes its error.

        Unreadable audio is logged as the file's error; so is any other exception raised
        while decoding or scoring it (a ``MemoryError``, an error of the model): the
        other files' tables are kept. ``KeyboardInterrupt`` and ``SystemExit`` are no
        ``Exception``: they still stop the call. ``progress`` is called with the seconds
        of audio scored by each batch.
        """
        try:
            return self._detect(model, source, name, progress, read_ahead)
        except Exception as error:
            message = f"{name}: {type(error).__name__}"
            if str(error):
                message += f": {error}"
            logger.error("skipped %s", message)
            logger.debug("traceback of the error of %s", name, exc_info=True)
            return self.failed(name, message)

    @staticmethod
    def failed(name: str, message: str) -> FileResult:
        """The result of a file that gave nothing but the error ``message``."""
        return FileResult(name, None, None, message)

    def _detect(self, model, source, name, progress, read_ahead) -> FileResult:
        """Detections of one recording; unreadable audio gives its error instead of raising.

        Detections from the part of a file before a decoding error are kept: every window
        cut before the error is scored, and ``duration_s`` is the end of the last one (the
        seconds scored), so a file that failed part-way has both a duration and an error.
        """
        rate = self.grid.sample_rate
        frames, end, error = [], 0, None
        stream = score_stream(
            model,
            source,
            self.grid,
            self.batch_size,
            self.input_sample_rate,
            read_ahead=read_ahead,
        )
        try:
            for starts, ends, probabilities in stream:
                frames.append(self._rows(name, starts, ends, probabilities))
                if progress is not None:
                    progress((int(ends[-1]) - end) / rate)
                end = int(ends[-1])
        except AudioError as exception:
            error = str(exception)
            if end:
                logger.warning("stopped reading %s after %.1f s: %s", name, end / rate, error)
            else:
                logger.warning("skipped %s: %s", name, error)
        detections = pd.concat(frames, ignore_index=True) if frames else None
        return FileResult(name, detections, end / rate if end else None, error)

    def _rows(self, name, starts, ends, probabilities) -> pd.DataFrame:
        window_index, class_index = np.nonzero(probabilities >= self.per_class)
        return pd.DataFrame(
            {
                "file": name,
                "start_s": starts[window_index] / self.grid.sample_rate,
                "end_s": ends[window_index] / self.grid.sample_rate,
                "label": self.classes[class_index],
                "confidence": probabilities[window_index, class_index],
            }
        )


def score_windows(model, source, grid: WindowGrid, batch_size, input_sample_rate, read_ahead):
    """Every window's scores of one recording: ``(starts, ends, scores)`` in samples."""
    parts = list(
        score_stream(model, source, grid, batch_size, input_sample_rate, read_ahead=read_ahead)
    )
    starts, ends, scores = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return starts, ends, scores
