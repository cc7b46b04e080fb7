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

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ._deprecation import deprecate_positional
from ._validation import check_integer, is_real_number
from .audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    _check_audio_rate,
    _check_rate,
    audio_files,
    audio_info,
)
from .composition import deployed_model
from .detections import Detections
from .execution import effective_n_jobs, run_in_threads, should_read_ahead
from .scoring import (
    FileResult,
    FileScorer,
    check_model,
    quiet_model,
    score_windows,
    window_grid,
)
from .spec import AudioSpec, get_audio_spec
from .table_formats import COLUMNS

__all__ = ["WindowScores", "detect", "window_scores"]

logger = logging.getLogger(__name__)

PROGRESS_FORMAT = (  # seconds of audio, rounded
    "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
    "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)
UNKNOWN_TOTAL_FORMAT = "{desc}: {n:.0f} s audio [{elapsed}, {rate_fmt}{postfix}]"
NO_SPEC = AudioSpec(window_seconds=None, clip_seconds=None)  # a model that does not say


def _model_spec(model) -> tuple[AudioSpec, tuple[float, float] | None]:
    """The fitted model's spec and its band (``None`` when the model does not say)."""
    spec = get_audio_spec(model)
    if spec is None:
        return NO_SPEC, None
    return spec, spec.frequency_range


def _check_input_sample_rate(input_sample_rate) -> None:
    if input_sample_rate is not None:
        _check_rate(input_sample_rate, "input_sample_rate")


def _check_batch_size(batch_size) -> int:
    return check_integer(batch_size, "batch_size", min_val=1)


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


@deprecate_positional
def window_scores(
    model,
    source,
    *,
    window_seconds: float | None = None,
    overlap_seconds: float = 0.0,
    batch_size: int = 64,
    input_sample_rate: int | None = None,
    read_ahead: bool | None = None,
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
    read_ahead : bool or None, default=None
        Decode the next batch of windows in a thread while the model scores this one;
        ``None`` does when torch leaves a core free (see :func:`detect`).

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
    model = deployed_model(model)  # a distilled model's student
    classes = check_model(model)
    batch_size = _check_batch_size(batch_size)
    _check_input_sample_rate(input_sample_rate)
    grid = window_grid(_model_spec(model)[0], window_seconds, overlap_seconds)
    starts, ends, scores = score_windows(
        quiet_model(model),
        source,
        grid,
        batch_size,
        input_sample_rate,
        should_read_ahead(read_ahead),
    )
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
    if not (is_real_number(min_confidence) and 0 <= min_confidence <= 1):
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
        if not (is_real_number(value) and 0 <= value <= 1):
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


def _empty_detections(classes: np.ndarray) -> pd.DataFrame:
    dtypes = dict(zip(COLUMNS, [object, float, float, classes.dtype, float], strict=True))
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})


@deprecate_positional
def detect(
    model,
    sources,
    *,
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
    read_ahead: bool | None = None,
) -> Detections:
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
        longest first. The threads share the model (predicting does not change the
        package's estimators; a model of your own must allow it), and torch gets
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
        is listed in ``errors`` like an unreadable file. Exclusive with
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
    read_ahead : bool or None, default=None
        Decode, resample and cut the next batch of windows in a background thread while
        the model scores this one. ``None`` does when torch leaves a core free (on 2
        cores with torch on both, reading ahead measured 0.85x to 1.03x in
        ``benchmarks/speed.py``; with one torch thread, 1.1x to 1.5x); ``True`` and
        ``False`` force it.

    Returns
    -------
    detections : Detections
        A :class:`pandas.DataFrame` with columns ``file, start_s, end_s, label,
        confidence``, one row per (recording, window, class at or above its threshold),
        sorted by recording (input order), window start, then decreasing confidence.
        ``file`` is the path as given, or ``"array i"`` for the i-th source when it is a
        waveform. Its metadata (attributes, also in ``attrs``) survive filtering and
        :func:`pandas.concat` of several runs' results:

        - ``durations``: ``{file: seconds}`` of every recording that was scored, even
          those without detections;
        - ``errors``: a list of ``{"file": ..., "error": ...}`` for recordings that
          could not be read or scored. They are skipped (and logged) without stopping
          the others: unreadable audio, a recording too short to give one sample at the
          model's rate, any other exception while decoding or scoring it (its type and
          message: a ``MemoryError``, an error of the model), and non-finite scores
          (NaN or infinite probabilities: the model file may be corrupt). A file that
          fails part-way on its audio keeps the detections of the part before the
          error. Every source is in ``durations`` or here (or in both when it failed
          part-way);
        - ``frequency_range``: ``(low Hz, high Hz)`` of the model's mel band, used by
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
    model = deployed_model(model)  # a distilled model's student
    classes = check_model(model)
    batch_size = _check_batch_size(batch_size)
    _check_input_sample_rate(input_sample_rate)
    if input_sample_rate is not None:  # for every waveform: refused once, not per file
        _check_audio_rate(int(input_sample_rate), None, "input_sample_rate")
    spec, frequency_range = _model_spec(model)
    grid = window_grid(spec, window_seconds, overlap_seconds)
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
    scorer = FileScorer(grid, per_class, classes, batch_size, input_sample_rate)
    model = quiet_model(model)  # one progress bar: detect's
    assemble = _Assembly(names, classes, frequency_range)
    results = {}
    header_seconds = dict(zip(names, lengths, strict=True))
    unscored = expected  # header seconds of the files to come
    scored = 0.0  # seconds of the files done
    with tqdm(
        total=expected or None,  # no header told a length: a count, not "0/0" and an ETA
        desc="detect",
        unit="s audio",
        bar_format=PROGRESS_FORMAT if expected else UNKNOWN_TOTAL_FORMAT,
        disable=not verbose,
    ) as bar:
        results_as_scored = _run(
            scorer, model, source_list, names, lengths, n_jobs, client, bar, read_ahead
        )
        for result in results_as_scored:
            if result.duration_s is None and result.error is None:  # never dropped silently
                result = FileResult(
                    result.name,
                    None,
                    None,
                    f"{result.name}: no window was scored (no audio at the model's "
                    f"{grid.sample_rate} Hz); expected at least one sample.",
                )
                logger.warning("skipped %s", result.error)
            results[result.name] = result
            if bar.total is not None:  # the file's scored length replaces its header's
                unscored -= header_seconds[result.name]
                scored += result.duration_s or 0.0
                bar.total = max(scored + unscored, bar.n)
            bar.set_postfix(files=f"{len(results)}/{len(names)}")
            if on_file is not None:
                on_file(assemble([result]))

    return assemble([results[name] for name in names], folder_errors)


@dataclass(frozen=True)
class _Assembly:
    """Turns per-file results into detect's table: sorted rows and per-file metadata."""

    names: list[str]
    classes: np.ndarray
    frequency_range: tuple[float, float] | None

    def __call__(self, results: list[FileResult], errors: list[dict] = ()) -> Detections:
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
        return Detections.from_rows(
            detections,
            durations={
                result.name: result.duration_s
                for result in results
                if result.duration_s is not None
            },
            errors=list(errors)
            + [{"file": result.name, "error": result.error} for result in results if result.error],
            frequency_range=self.frequency_range,
        )


def _advance(bar, seconds: float) -> None:
    """Move the bar on by ``seconds``, raising its total first if it would pass it.

    Totals come from headers, and an MP3's length there is libsndfile's estimate: the
    audio scored may pass it before the file's real length replaces it (tqdm's "clamping
    frac" warning and a negative ETA on the soundscapes).
    """
    if bar.total is not None and bar.n + seconds > bar.total:
        bar.total = bar.n + seconds
    bar.update(seconds)


def _run(
    scorer: FileScorer, model, source_list, names, lengths, n_jobs, client, bar, read_ahead
) -> Iterator[FileResult]:
    """Score each source: in this thread, in ``n_jobs`` threads or on a Dask cluster.

    The progress bar advances per batch of windows here and in threads, per file on a
    cluster.
    """
    if client is not None:
        from .distributed import score_on_cluster

        for result in score_on_cluster(client, scorer, model, source_list, names):
            _advance(bar, result.duration_s or 0.0)
            yield result
        return
    n_workers = min(len(source_list), effective_n_jobs(n_jobs))
    if n_workers <= 1:
        ahead = should_read_ahead(read_ahead)
        for source, name in zip(source_list, names, strict=True):
            yield scorer(model, source, name, progress=partial(_advance, bar), read_ahead=ahead)
        return
    lock = threading.Lock()  # the bar is updated from several threads

    def progress(seconds):
        with lock:
            _advance(bar, seconds)

    # Longest first, so that no long file starts last. The threads share the model:
    # predicting does not change it.
    order = sorted(range(len(source_list)), key=lambda index: -lengths[index])
    items = [(source_list[index], names[index], progress) for index in order]
    yield from run_in_threads(scorer, model, items, n_workers, read_ahead=read_ahead)
