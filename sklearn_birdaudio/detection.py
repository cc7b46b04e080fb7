"""Detection on long recordings: slide a fitted model's window over audio of any length.

:func:`detect` scores every window of every recording and returns one row per
(file, window, class above its threshold); :func:`window_scores` returns the full
``(n_windows, n_classes)`` score matrix of one recording with its time axis.

Audio is decoded and resampled block by block (:func:`~sklearn_birdaudio.stream_audio`)
and windows are scored in batches, so memory does not grow with a recording's length.

The window grid
---------------
Windows of ``window_seconds`` start every ``hop = window_seconds - overlap_seconds``
seconds, at ``0, hop, 2 hop, ...``, until one reaches the end of the recording: a
recording of ``d`` seconds gets ``1 + max(0, ceil((d - window_seconds) / hop))`` windows.
The last one may extend past the end: it is scored on the audio that is there (the
model's pipeline pads it as it pads short training clips) and reported with its true end,
``end_s = d``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import numbers
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    _check_audio_rate,
    _check_rate,
    audio_files,
    audio_info,
    stream_audio,
)
from .features import MelSpectrogramTransformer
from .tables import COLUMNS

__all__ = ["WindowScores", "detect", "window_scores"]

logger = logging.getLogger(__name__)

PROGRESS_FORMAT = (  # seconds of audio, rounded
    "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
    "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)
UNKNOWN_TOTAL_FORMAT = "{desc}: {n:.0f} s audio [{elapsed}, {rate_fmt}{postfix}]"
READ_BLOCK_SECONDS = 60.0  # audio decoded per read; bounds memory with the batch
# Batches of windows a background thread decodes, resamples and cuts while the model
# scores the current one, and when: None reads ahead only when torch leaves a core free
# (on 2 cores with torch on both, reading ahead measured 0.88x to 1.03x in
# benchmarks/speed.py; with one torch thread, 1.1x to 1.5x, ad hoc), True and False
# force it.
READ_AHEAD_BATCHES = 1
READ_AHEAD: bool | None = None
MAX_WINDOW_SAMPLES = 2**62  # longer windows than any recording (and than a float can count)


# -- what the model expects -------------------------------------------------------------


def _members(model) -> list:
    """The estimators inside ``model``: pipeline steps and ensemble members, recursively."""
    children = []
    if hasattr(model, "steps"):
        children = [step for _, step in model.steps if step not in (None, "passthrough")]
    elif hasattr(model, "estimators_"):
        children = list(model.estimators_)
    return [model, *(member for child in children for member in _members(child))]


def quiet_model(model):
    """``model``, or a copy of it whose members show no progress of their own.

    :func:`detect` calls it on every call; a caller that calls ``detect`` many times
    (once per file) calls it once first, so that the model is copied once.
    """
    if not any(getattr(member, "verbose", 0) for member in _members(model)):
        return model
    model = copy.deepcopy(model)
    for member in _members(model):
        if getattr(member, "verbose", 0):
            member.verbose = 0
    return model


def _pipelines(model) -> list:
    """The leaf pipelines (or lone estimators) whose outputs an ensemble combines."""
    if hasattr(model, "estimators_") and not hasattr(model, "steps"):
        return [leaf for member in model.estimators_ for leaf in _pipelines(member)]
    return [model]


@dataclass(frozen=True)
class _ModelAudio:
    """What a fitted model expects of the audio windows it is given."""

    sample_rate: int  # of the waveforms the model takes
    window_seconds: float | None  # its window; None when it cannot be told
    max_window_seconds: float | None  # longer windows would be cropped by the model
    frequency_range: tuple[float, float] | None


def _model_audio(model) -> _ModelAudio:
    """Read the sample rate, window and band of a fitted model's mel front end(s)."""
    settings = []
    for pipeline in _pipelines(model):
        members = _members(pipeline)
        # Front ends that are not log-mels (BirdNET's) say what they take themselves.
        settings += [m._audio_settings() for m in members if hasattr(m, "_audio_settings")][:1]
        mels = [m for m in members if isinstance(m, MelSpectrogramTransformer)]
        if not mels:
            continue
        mel = mels[0]
        windows = [m.window_seconds for m in members if hasattr(m, "window_seconds")]
        window = mel.duration if mel.duration is not None else (windows[0] if windows else None)
        fmax = mel.fmax if mel.fmax is not None else mel.sample_rate / 2
        settings.append(
            (mel.input_sample_rate or mel.sample_rate, window, mel.duration, (mel.fmin, fmax))
        )
    if not settings:
        return _ModelAudio(32000, None, None, None)
    rates = {rate for rate, *_ in settings}
    if len(rates) > 1:
        raise ValueError(
            f"The model's pipelines take waveforms at different sample rates {sorted(rates)}; "
            "detect needs one rate for all of them."
        )
    windows = {window for _, window, _, _ in settings if window is not None}
    crops = [duration for _, _, duration, _ in settings if duration is not None]
    lows, highs = zip(*(band for *_, band in settings), strict=True)
    return _ModelAudio(
        sample_rate=rates.pop(),
        window_seconds=windows.pop() if len(windows) == 1 else None,
        max_window_seconds=min(crops) if crops else None,
        frequency_range=(float(min(lows)), float(max(highs))),
    )


@dataclass(frozen=True)
class _Grid:
    """The window grid in samples at the model's sample rate."""

    sample_rate: int
    window: int
    hop: int


def _is_number(value) -> bool:
    """A finite real number, not a bool (``True`` is no length or probability)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _make_grid(model_audio: _ModelAudio, window_seconds, overlap_seconds) -> _Grid:
    if window_seconds is None:
        window_seconds = model_audio.window_seconds
        if window_seconds is None:
            raise ValueError(
                "window_seconds could not be read from the model (its pipelines disagree or "
                "have no MelSpectrogramTransformer); pass window_seconds explicitly."
            )
    if not _is_number(window_seconds) or window_seconds <= 0:
        raise ValueError(f"window_seconds must be a positive number, got {window_seconds!r}.")
    limit = model_audio.max_window_seconds
    if limit is not None and window_seconds > limit + 1e-9:
        raise ValueError(
            f"window_seconds={window_seconds} is longer than the model's clips "
            f"(MelSpectrogramTransformer(duration={limit})), which would crop each window and "
            f"ignore part of the audio; expected window_seconds <= {limit}."
        )
    if not (_is_number(overlap_seconds) and 0 <= overlap_seconds < window_seconds):
        raise ValueError(
            f"overlap_seconds must be >= 0 and below window_seconds={window_seconds}, got "
            f"{overlap_seconds!r}."
        )
    rate = model_audio.sample_rate
    window = _n_samples(window_seconds, rate)
    hop = _n_samples(window_seconds - overlap_seconds, rate)
    return _Grid(rate, window, min(hop, window))


def _n_samples(seconds: float, rate: int) -> int:
    """Samples in ``seconds`` (at least 1); a window of 1e300 s is one window, not an error."""
    return max(1, int(round(min(seconds * rate, MAX_WINDOW_SAMPLES))))


# -- windows of a stream ----------------------------------------------------------------


def _windows(blocks: Iterator[np.ndarray], grid: _Grid) -> Iterator[tuple[int, np.ndarray]]:
    """``(start sample, window)`` of the grid over a stream of mono blocks.

    Only the samples of the current window (and one block) are held. The last window is
    cut at the end of the audio (shorter than ``grid.window``) when it runs past it.
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


class _ReadAhead:
    """Iterate ``blocks`` with up to ``depth`` of them produced ahead in a thread.

    Decoding and resampling run in native code that releases the GIL, so the next batch
    of windows is read while the model scores this one. Items and exceptions arrive in
    order: an error part-way through a file is raised where the plain iterator would
    raise it. Closing the iterator (or dropping it) stops the thread.
    """

    _END = object()

    def __init__(self, blocks: Iterator[np.ndarray], depth: int):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(blocks,), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, blocks) -> None:
        try:
            for block in blocks:
                if not self._put((block, None)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put((None, error))
            return
        finally:
            close = getattr(blocks, "close", None)
            if close is not None and self._stop.is_set():
                close()
        self._put((self._END, None))

    def __iter__(self):
        try:
            while True:
                block, error = self._queue.get()
                if error is not None:
                    raise error
                if block is self._END:
                    return
                yield block
        finally:
            self._stop.set()


def _batches(windows, batch_size: int) -> Iterator[tuple[list[int], list[np.ndarray]]]:
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


def _read_ahead(n_workers: int = 1) -> bool:
    """Whether to read ahead: as ``READ_AHEAD`` says, or if torch leaves a core free."""
    if READ_AHEAD is not None:
        return bool(READ_AHEAD)
    return n_workers * torch.get_num_threads() < (os.cpu_count() or 1)


def _score_stream(
    model, source, grid: _Grid, batch_size: int, input_sample_rate, read_ahead: bool = False
):
    """Yield ``(starts, ends, probabilities)`` per batch of windows of one recording.

    Starts and ends are sample indices; the last window's end is the recording's length.
    With ``read_ahead``, the next batch is read in a thread while the model scores. An
    :class:`AudioError` part-way through is raised after every window cut before it has
    been scored and yielded.
    """
    blocks = stream_audio(
        source,
        block_seconds=READ_BLOCK_SECONDS,
        sample_rate=grid.sample_rate,
        # the rate of waveforms only: a file's rate is in its header
        source_rate=None if isinstance(source, (str, os.PathLike)) else input_sample_rate,
    )
    batches = _batches(_windows(blocks, grid), batch_size)
    if read_ahead and READ_AHEAD_BATCHES > 0:
        # Whole batches ahead, not blocks: the model then scores one batch while the
        # next is decoded (a block of 60 s is a fifth of a batch of 64 five-second windows).
        batches = iter(_ReadAhead(batches, READ_AHEAD_BATCHES))
    for starts, batch in batches:
        probabilities = _finite(np.asarray(model.predict_proba(batch), dtype=np.float64))
        ends = [start + window.shape[0] for start, window in zip(starts, batch, strict=True)]
        yield np.asarray(starts), np.asarray(ends), probabilities


def _finite(probabilities: np.ndarray) -> np.ndarray:
    """``probabilities``; ``ValueError`` if any is NaN or infinite.

    A model with NaN weights (a corrupt model file) returns NaN probabilities, which no
    threshold passes: detect would write tables without rows and report success. The
    error makes it the file's error instead.
    """
    finite = np.isfinite(probabilities).reshape(len(probabilities), -1).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"the model returned non-finite scores (NaN or infinite) for "
            f"{int((~finite).sum())} of {len(finite)} windows in a batch; expected "
            "probabilities in [0, 1]: the model file may be corrupt (retrain it or "
            "restore a good copy)."
        )
    return probabilities


def _check_input_sample_rate(input_sample_rate) -> None:
    if input_sample_rate is not None:
        _check_rate(input_sample_rate, "input_sample_rate")


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")


def _check_model(model) -> np.ndarray:
    if not hasattr(model, "predict_proba"):
        raise TypeError(
            f"model must be a fitted classifier with predict_proba (a Pipeline of "
            f"MelSpectrogramTransformer and AttentionCNNClassifier, or an ensemble of them), "
            f"got {type(model).__name__}."
        )
    check_is_fitted(model)
    return np.asarray(model.classes_)


# -- one recording ----------------------------------------------------------------------


@dataclass
class WindowScores:
    """The scores of every window of one recording.

    Attributes
    ----------
    start_s, end_s : ndarray of shape (n_windows,)
        Start and true end of each window in seconds (the last one ends at the end of
        the recording).
    scores : ndarray of shape (n_windows, n_classes)
        The model's probability of each class in each window.
    classes : ndarray of shape (n_classes,)
        The class of each column.
    duration_s : float
        Length of the recording in seconds.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    duration_s: float

    def to_frame(self) -> pd.DataFrame:
        """The scores as a DataFrame: one row per window, one column per class."""
        index = pd.MultiIndex.from_arrays([self.start_s, self.end_s], names=["start_s", "end_s"])
        return pd.DataFrame(self.scores, index=index, columns=list(self.classes))


def window_scores(
    model,
    source,
    window_seconds: float | None = None,
    overlap_seconds: float = 0.0,
    batch_size: int = 64,
    input_sample_rate: int | None = None,
) -> WindowScores:
    """Score every window of one recording: the per-window score matrix and its time axis.

    Parameters
    ----------
    model : fitted classifier
        A fitted :class:`~sklearn.pipeline.Pipeline` of
        :class:`~sklearn_birdaudio.MelSpectrogramTransformer` and a classifier (or an
        ensemble of such pipelines); it is given waveform windows.
    source : str, path-like or ndarray
        An audio file, or a waveform at ``input_sample_rate``.
    window_seconds : float, optional
        Window length; by default the model's (its mel ``duration``, or its classifier's
        ``window_seconds`` when the mel keeps whole recordings).
    overlap_seconds : float, default=0.0
        Overlap of successive windows in seconds.
    batch_size : int, default=64
        Windows scored at once.
    input_sample_rate : int, optional
        Sample rate of an array ``source``; by default the rate the model takes.

    Returns
    -------
    WindowScores
        ``start_s``, ``end_s``, ``scores`` ``(n_windows, n_classes)``, ``classes`` and
        ``duration_s``; see the module docstring for the window grid.

    Raises
    ------
    AudioError
        If the recording cannot be read.
    """
    classes = _check_model(model)
    _check_batch_size(batch_size)
    _check_input_sample_rate(input_sample_rate)
    grid = _make_grid(_model_audio(model), window_seconds, overlap_seconds)
    parts = list(
        _score_stream(
            quiet_model(model), source, grid, batch_size, input_sample_rate, _read_ahead()
        )
    )
    starts, ends, scores = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return WindowScores(
        start_s=starts / grid.sample_rate,
        end_s=ends / grid.sample_rate,
        scores=scores,
        classes=classes,
        duration_s=float(ends[-1]) / grid.sample_rate,
    )


# -- many recordings --------------------------------------------------------------------


def _thresholds(classes: np.ndarray, min_confidence, thresholds) -> np.ndarray:
    """Per-class thresholds: ``min_confidence`` overridden by the ``thresholds`` mapping."""
    if not (_is_number(min_confidence) and 0 <= min_confidence <= 1):
        raise ValueError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}.")
    per_class = np.full(len(classes), float(min_confidence))
    if thresholds is None:
        return per_class
    if not isinstance(thresholds, Mapping):
        raise TypeError(
            f"thresholds must map class names to thresholds, got {type(thresholds).__name__}."
        )
    column = {str(label): index for index, label in enumerate(classes)}
    unknown = [name for name in thresholds if str(name) not in column]
    if unknown:
        raise ValueError(
            f"thresholds name classes the model does not have: {unknown}; its classes are "
            f"{[str(label) for label in classes]}."
        )
    for name, value in thresholds.items():
        if not (_is_number(value) and 0 <= value <= 1):
            raise ValueError(f"thresholds[{name!r}] must be a number in [0, 1], got {value!r}.")
        per_class[column[str(name)]] = float(value)
    return per_class


def _only_species(per_class: np.ndarray, classes: np.ndarray, species) -> np.ndarray:
    """Per-class thresholds that no score reaches outside ``species``."""
    names = [str(label) for label in classes]
    wanted = [str(name) for name in species]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ValueError(
            f"species names classes the model does not have: {unknown}; its classes are {names}."
        )
    return np.where(np.isin(names, wanted), per_class, np.inf)


def _source_name(source, index: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"array {index}"


def _as_source_list(sources) -> list:
    if isinstance(sources, (str, os.PathLike)) or (
        isinstance(sources, np.ndarray) and sources.dtype != object
    ):
        return [sources]  # one recording (an array may be multi-channel)
    if isinstance(sources, pd.Series):
        return sources.tolist()
    try:
        return list(sources)
    except TypeError:
        raise TypeError(
            f"sources must be a path, a waveform or a list of them, got {type(sources).__name__}."
        ) from None


def _expand_folders(sources: list) -> tuple[list, list[dict]]:
    """Replace each folder by its audio files (recursively); an empty one is an error."""
    expanded, errors = [], []
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            found = audio_files(source)
            if not found:
                name = os.fspath(source)
                message = f"{name}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder."
                logger.warning("skipped %s", message)
                errors.append({"file": name, "error": message})
            expanded.extend(found)
        else:
            expanded.append(source)
    return expanded, errors


def _expected_seconds(source, sample_rate: int, input_sample_rate) -> float:
    """Length of a recording from its header (or shape), for the progress bar; 0 if unknown."""
    try:
        if isinstance(source, (str, os.PathLike)):
            return audio_info(source).duration_seconds
        return np.shape(source)[-1] / (input_sample_rate or sample_rate)
    except (AudioError, IndexError):
        return 0.0


@dataclass
class _FileResult:
    """One recording's result: ``duration_s`` is the seconds scored (None: nothing was) and
    ``error`` why reading stopped (None: it reached the end); a file that failed part-way
    has both."""

    name: str
    detections: pd.DataFrame
    duration_s: float | None
    error: str | None


def _detect_one(
    model,
    source,
    name,
    grid,
    per_class,
    classes,
    batch_size,
    input_sample_rate,
    progress=None,
    read_ahead: bool = False,
):
    """Detections of one recording; an unreadable one gives its error instead of raising.

    Detections from the part of a file before a decoding error are kept: every window cut
    before the error is scored, and ``duration_s`` is the end of the last one (the seconds
    scored), so a file that failed part-way has both a duration and an error. ``progress``
    is called with the seconds of audio scored by each batch.
    """
    frames, end, error = [], 0, None
    try:
        for starts, ends, probabilities in _score_stream(
            model, source, grid, batch_size, input_sample_rate, read_ahead
        ):
            window_index, class_index = np.nonzero(probabilities >= per_class)
            frames.append(
                pd.DataFrame(
                    {
                        "file": name,
                        "start_s": starts[window_index] / grid.sample_rate,
                        "end_s": ends[window_index] / grid.sample_rate,
                        "label": classes[class_index],
                        "confidence": probabilities[window_index, class_index],
                    }
                )
            )
            if progress is not None:
                progress((int(ends[-1]) - end) / grid.sample_rate)
            end = int(ends[-1])
    except AudioError as exception:
        error = str(exception)
        if end:
            logger.warning(
                "stopped reading %s after %.1f s: %s", name, end / grid.sample_rate, error
            )
        else:
            logger.warning("skipped %s: %s", name, error)
    detections = pd.concat(frames, ignore_index=True) if frames else None
    duration = end / grid.sample_rate if end else None
    return _FileResult(name, detections, duration, error)


def _empty_detections(classes: np.ndarray) -> pd.DataFrame:
    dtypes = dict(zip(COLUMNS, [object, float, float, classes.dtype, float], strict=True))
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})


def detect(
    model,
    sources,
    window_seconds: float | None = None,
    overlap_seconds: float = 0.0,
    min_confidence: float = 0.1,
    thresholds: Mapping[str, float] | None = None,
    batch_size: int = 64,
    n_jobs: int | None = 1,
    input_sample_rate: int | None = None,
    verbose: int = 1,
    client=None,
    on_file: Callable[[pd.DataFrame], object] | None = None,
    species: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Detect species in recordings of any length, window by window.

    Each recording is read block by block, cut into the window grid (see the module
    docstring) and scored in batches; memory does not grow with its length.

    Parameters
    ----------
    model : fitted classifier
        A fitted :class:`~sklearn.pipeline.Pipeline` of
        :class:`~sklearn_birdaudio.MelSpectrogramTransformer` and a classifier, or an
        ensemble of such pipelines (:class:`~sklearn_birdaudio.VotingClassifier`). Any
        fitted classifier whose ``predict_proba`` takes a list of waveforms works.
    sources : path, waveform, or list of paths and waveforms
        The recordings: audio files (WAV, FLAC, OGG, MP3, ...), folders (their audio
        files, searched recursively) or waveforms at ``input_sample_rate``. A single path
        or array is one recording.
    window_seconds : float, optional
        Window length; by default the model's (its mel ``duration``, or its classifier's
        ``window_seconds`` when the mel keeps whole recordings). It may be shorter than
        the model's clips (windows are then padded as short clips are), not longer.
    overlap_seconds : float, default=0.0
        Overlap of successive windows in seconds, ``0 <= overlap_seconds < window_seconds``.
    min_confidence : float, default=0.1
        A (window, class) is reported when its probability is at least this.
    thresholds : mapping of str to float, optional
        Per-class thresholds that replace ``min_confidence`` for the classes they name,
        e.g. ``{"Turdus plumbeus": 0.6}``; naming a class the model lacks is an error.
    batch_size : int, default=64
        Windows scored at once; with ``window_seconds=5`` at 32 kHz, 64 windows hold
        41 MB of audio.
    n_jobs : int or None, default=1
        Recordings scored at once, in threads of this process (``-1``: one per core),
        longest first. Each thread scores with its own copy of the model, and torch gets
        ``cores / n_jobs`` threads for the duration of the call (restored afterwards).
        With several files, ``n_jobs=-1`` was the fastest setting measured on 2 cores
        (1.34x ``n_jobs=1``, ``benchmarks/speed.py``).
    input_sample_rate : int, optional
        Sample rate of waveform sources; by default the rate the model takes.
    verbose : int, default=1
        Show a progress bar over the audio seconds scored; 0 is silent.
    client : distributed.Client, optional
        Score the recordings on this Dask cluster instead (a ``LocalCluster`` or a real
        one): one task per recording, the model sent to each worker once, each worker's
        torch threads set to its share of its host's cores
        (:mod:`sklearn_birdaudio.distributed`; needs the ``dask`` extra). Paths must be
        readable by the workers. A task that fails on the cluster (e.g. a worker dies)
        is listed in ``attrs["errors"]`` like an unreadable file. Exclusive with
        ``n_jobs``.
    on_file : callable, optional
        Called with each recording's detections as soon as it is scored (in the order
        they finish, in this process): a DataFrame like the one returned, for that
        recording alone, with its ``attrs`` (``durations`` empty and ``errors`` set for
        an unreadable one; both set for one that failed part-way, whose detections are
        those of the windows read before the error). Write tables there so that an
        interrupted run loses nothing already scored, e.g. ``on_file=lambda part:
        write_detections_per_file(part, "tables/")``.

    species : iterable of str, optional
        Report only these classes (their names as in ``classes_``); the model still
        scores every class, and naming a class it lacks is an error.
    Returns
    -------
    detections : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, one row per (recording,
        window, class at or above its threshold), sorted by recording (input order),
        window start, then decreasing confidence. ``file`` is the path as given, or
        ``"array i"`` for the i-th source when it is a waveform. Its ``attrs`` hold:

        - ``"durations"``: ``{file: seconds}`` of every recording that was scored, even
          those without detections;
        - ``"errors"``: a list of ``{"file": ..., "error": ...}`` for recordings that
          could not be read or scored. They are skipped (and logged) without stopping
          the others: unreadable audio, a recording too short to give one sample at the
          model's rate, any other exception while decoding or scoring it (its type and
          message: a ``MemoryError``, an error of the model), and non-finite scores
          (NaN or infinite probabilities: the model file may be corrupt). A file that
          fails part-way on its audio keeps the detections of the part before the
          error. Every source is in ``durations`` or here (or in both when it failed
          part-way);
        - ``"frequency_range"``: ``(low Hz, high Hz)`` of the model's mel band, used by
          the Raven writer of :mod:`sklearn_birdaudio.tables`.

    Raises
    ------
    ValueError
        For invalid parameters, naming them (``input_sample_rate`` below
        :data:`~sklearn_birdaudio.audio.MIN_SAMPLE_RATE` included).
    KeyboardInterrupt, SystemExit
        Are not caught per file: they stop the whole call.

    See Also
    --------
    window_scores : The full score matrix of one recording.
    sklearn_birdaudio.tables.write_detections : Write CSV, Raven and Audacity tables.
    """
    classes = _check_model(model)
    _check_batch_size(batch_size)
    _check_input_sample_rate(input_sample_rate)
    if input_sample_rate is not None:  # for every waveform: refused once, not per file
        _check_audio_rate(int(input_sample_rate), None, "input_sample_rate")
    model_audio = _model_audio(model)
    grid = _make_grid(model_audio, window_seconds, overlap_seconds)
    per_class = _thresholds(classes, min_confidence, thresholds)
    if species is not None:
        per_class = _only_species(per_class, classes, species)
    source_list, folder_errors = _expand_folders(_as_source_list(sources))
    names = [_source_name(source, index) for index, source in enumerate(source_list)]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"sources lists the same file more than once: {repeated}.")

    lengths = [
        _expected_seconds(source, grid.sample_rate, input_sample_rate) for source in source_list
    ]
    expected = sum(lengths)
    if client is not None and n_jobs not in (1, None):
        raise ValueError(
            f"n_jobs={n_jobs!r} and client are exclusive: the cluster's workers score the "
            "files in parallel; leave n_jobs=1."
        )
    if on_file is not None and not callable(on_file):
        raise TypeError(f"on_file must be callable, got {type(on_file).__name__}.")
    arguments = (grid, per_class, classes, batch_size, input_sample_rate)
    model = quiet_model(model)  # one progress bar: detect's
    assemble = _Assembly(names, classes, model_audio.frequency_range)
    results = {}
    expected_by_name = dict(zip(names, lengths, strict=True))
    with tqdm(
        total=expected or None,  # no header told a length: a count, not "0/0" and an ETA
        desc="detect",
        unit="s audio",
        bar_format=PROGRESS_FORMAT if expected else UNKNOWN_TOTAL_FORMAT,
        disable=not verbose,
    ) as bar:
        for result in _run(model, source_list, names, lengths, arguments, n_jobs, client, bar):
            if result.duration_s is None and result.error is None:  # never dropped silently
                result = _FileResult(
                    result.name,
                    None,
                    None,
                    f"{result.name}: no window was scored (no audio at the model's "
                    f"{grid.sample_rate} Hz); expected at least one sample.",
                )
                logger.warning("skipped %s", result.error)
            results[result.name] = result
            if bar.total is not None:  # the file's scored length replaces its header's
                scored = result.duration_s or 0.0
                bar.total = max(bar.total + scored - expected_by_name[result.name], bar.n)
            bar.set_postfix(files=f"{len(results)}/{len(names)}")
            if on_file is not None:
                on_file(assemble([result]))

    return assemble([results[name] for name in names], folder_errors)


@dataclass(frozen=True)
class _Assembly:
    """Turns per-file results into detect's table: sorted rows and ``attrs``."""

    names: list[str]
    classes: np.ndarray
    frequency_range: tuple[float, float] | None

    def __call__(self, results: list[_FileResult], errors: list[dict] = ()) -> pd.DataFrame:
        frames = [result.detections for result in results if result.detections is not None]
        detections = (
            pd.concat(frames, ignore_index=True) if frames else _empty_detections(self.classes)
        )
        order = {name: index for index, name in enumerate(self.names)}
        detections = detections.assign(_order=detections["file"].map(order))
        detections = detections.sort_values(
            ["_order", "start_s", "confidence"], ascending=[True, True, False], kind="stable"
        )
        detections = detections.drop(columns="_order").reset_index(drop=True)
        detections.attrs["durations"] = {
            result.name: result.duration_s for result in results if result.duration_s is not None
        }
        detections.attrs["errors"] = list(errors) + [
            {"file": result.name, "error": result.error} for result in results if result.error
        ]
        detections.attrs["frequency_range"] = self.frequency_range
        return detections


def _run(
    model, source_list, names, lengths, arguments, n_jobs, client, bar
) -> Iterator[_FileResult]:
    """Score each source: in this thread, in ``n_jobs`` threads or on a Dask cluster.

    The progress bar advances per batch of windows here and in threads, per file on a
    cluster.
    """
    if client is not None:
        from .distributed import detect_on_cluster

        for result in detect_on_cluster(client, model, source_list, names, arguments):
            bar.update(result.duration_s or 0.0)
            yield result
        return
    n_workers = min(len(source_list), _effective_n_jobs(n_jobs))
    if n_workers <= 1:
        for source, name in zip(source_list, names, strict=True):
            yield _score_file(model, source, name, arguments, bar.update, _read_ahead())
        return
    yield from _run_in_threads(model, source_list, names, lengths, arguments, n_workers, bar)


def _score_file(model, source, name, arguments, progress, read_ahead: bool) -> _FileResult:
    """:func:`_detect_one`, with any failure of this one file as its error.

    ``_detect_one`` lists unreadable audio itself; any other exception raised while
    decoding or scoring the file (a ``MemoryError``, an error of the model) skips this
    file, not the batch: the others' tables are kept. ``KeyboardInterrupt`` and
    ``SystemExit`` are no ``Exception``: they still stop the call.
    """
    try:
        return _detect_one(
            model, source, name, *arguments, progress=progress, read_ahead=read_ahead
        )
    except Exception as error:
        message = f"{name}: {type(error).__name__}"
        if str(error):
            message += f": {error}"
        logger.error("skipped %s", message)
        logger.debug("traceback of the error of %s", name, exc_info=True)
        return _FileResult(name, None, None, message)


def _run_in_threads(model, source_list, names, lengths, arguments, n_workers, bar):
    """Score the sources in ``n_workers`` threads, longest first, results as they finish.

    The heavy parts (decoding, resampling, FFTs, convolutions) release the GIL, so the
    threads run in parallel without the start-up and pickling costs of processes. A model
    is not safe to share between threads (a skorch net switches its ``device`` attribute
    while predicting), so each thread scores with its own copy.
    """
    copies = threading.local()
    lock = threading.Lock()  # the bar is updated from several threads

    def progress(seconds):
        with lock:
            bar.update(seconds)

    def score(source, name):
        if not hasattr(copies, "model"):
            copies.model = copy.deepcopy(model)
        return _score_file(copies.model, source, name, arguments, progress, read_ahead)

    order = sorted(range(len(source_list)), key=lambda index: -lengths[index])
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    with _torch_threads(threads):
        read_ahead = _read_ahead(n_workers)
        pool = ThreadPoolExecutor(n_workers, thread_name_prefix="detect")
        try:
            futures = [pool.submit(score, source_list[i], names[i]) for i in order]
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _torch_threads(n_threads: int):
    """Set torch's intra-op threads for the duration, then restore them."""
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _effective_n_jobs(n_jobs) -> int:
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}.")
    cores = os.cpu_count() or 1
    return int(n_jobs) if n_jobs > 0 else max(1, cores + 1 + int(n_jobs))
