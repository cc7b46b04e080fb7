"""Matplotlib figures: spectrograms with detections, training curves, precision-recall curves.

Every function builds a new :class:`matplotlib.figure.Figure` with :mod:`matplotlib.pyplot`
and returns it without showing it: save it with ``fig.savefig(path)``, or let a notebook
display it, and release it with ``plt.close(fig)`` when making many. Matplotlib is imported
when a function is first called, so importing the package stays fast.

Spectrograms are drawn on a mel-scaled frequency axis whose data coordinates are in Hz:
each mel band takes the same height, as in the spectrogram the model sees, and anything
added to the axes (the detection boxes, your own annotations) is placed in Hz.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import textwrap
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, precision_recall_curve
from sklearn.utils.validation import check_is_fitted

from .features import MelSpectrogramTransformer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .detection import WindowScores

__all__ = [
    "plot_calibration",
    "plot_detections",
    "plot_precision_recall",
    "plot_training_curves",
]

DETECTION_COLUMNS = ("start_s", "end_s", "label", "confidence")
# Frequency ticks (Hz) of the mel axis: those inside the displayed band are shown.
FREQUENCY_TICKS_HZ = (0, 250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000)
LABEL_LINE_POINTS = 11  # vertical offset between labels of boxes of the same window
MAX_NAMES_IN_NOTE = 5


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _class_colors(classes) -> dict[str, tuple]:
    """A distinct colour per class name, chosen from the name, not from its position.

    Each name starts at the slot of the palette (tab20, tab20b, tab20c: 60 colours) that
    its hash picks, and takes the next free one on a collision (names in sorted order), so
    that a species mostly keeps its colour from one figure to the next and no two species
    of a figure share one. Beyond 60 names, evenly spaced hues keep them distinct.
    """
    import colorsys

    from matplotlib import colormaps

    names = sorted({str(name) for name in classes})
    palette = [color for name in ("tab20", "tab20b", "tab20c") for color in colormaps[name].colors]
    if len(names) > len(palette):
        return {
            name: colorsys.hsv_to_rgb(index / len(names), 0.75, 0.85 - 0.25 * (index % 2))
            for index, name in enumerate(names)
        }
    taken, colors = set(), {}
    for name in names:
        digest = hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=4)
        slot = int.from_bytes(digest.digest(), "little") % len(palette)
        while slot in taken:
            slot = (slot + 1) % len(palette)
        taken.add(slot)
        colors[name] = palette[slot]
    return colors


# -- spectrogram with detections --------------------------------------------------------


def _display_mel(mel) -> MelSpectrogramTransformer:
    if mel is None:
        return MelSpectrogramTransformer(duration=None)
    if not isinstance(mel, MelSpectrogramTransformer):
        raise TypeError(
            f"mel must be a MelSpectrogramTransformer (e.g. a fitted pipeline's mel step) or "
            f"None, got {type(mel).__name__}."
        )
    # The whole part asked for is shown, whatever clip length the model was trained on.
    return clone(mel).set_params(duration=None, verbose=0)


def _detections_of(detections: pd.DataFrame, file: str | None) -> pd.DataFrame:
    """The rows of ``detections`` for ``file`` (all rows when ``file`` is None)."""
    if not isinstance(detections, pd.DataFrame):
        raise TypeError(
            f"detections must be a pandas DataFrame (as detect returns), got "
            f"{type(detections).__name__}."
        )
    required = (*DETECTION_COLUMNS, "file") if file is not None else DETECTION_COLUMNS
    missing = [column for column in required if column not in detections.columns]
    if missing:
        raise ValueError(
            f"detections is missing the columns {missing}; expected the columns "
            f"{list(required)} (as detect returns), got {list(detections.columns)}."
        )
    if file is None:
        return detections
    rows = detections[detections["file"].astype(str) == file]
    if rows.empty and not detections.empty:
        files = list(dict.fromkeys(detections["file"].astype(str)))
        warnings.warn(
            f"detections has no rows for the file {file!r} (its files are "
            f"{files[:MAX_NAMES_IN_NOTE]}{' ...' if len(files) > MAX_NAMES_IN_NOTE else ''}); "
            "no boxes are drawn. The file column must hold the path exactly as given here.",
            UserWarning,
            stacklevel=3,
        )
    return rows


def _check_scores(scores) -> None:
    if not all(hasattr(scores, name) for name in ("start_s", "end_s", "scores", "classes")):
        raise TypeError(
            f"scores must be a WindowScores (as window_scores returns), got "
            f"{type(scores).__name__}."
        )
    matrix, classes = np.asarray(scores.scores), np.asarray(scores.classes)
    expected = (len(scores.start_s), len(classes))
    if matrix.shape != expected or len(scores.end_s) != len(scores.start_s):
        raise ValueError(
            f"scores.scores has shape {matrix.shape}; expected (n_windows, n_classes) = "
            f"{expected} from its {len(scores.start_s)} window starts, {len(scores.end_s)} "
            f"window ends and {len(classes)} classes."
        )


def _mel_frequency_axis(ax, mel: MelSpectrogramTransformer) -> tuple[float, float]:
    """Put a mel scale on the y axis of ``ax``, limited to the mel's band in Hz."""
    import librosa
    from matplotlib.ticker import FixedLocator, NullLocator

    fmin = float(mel.fmin)
    fmax = float(mel.fmax) if mel.fmax is not None else mel.sample_rate / 2
    ax.set_yscale(
        "function",
        functions=(
            lambda hz: librosa.hz_to_mel(np.maximum(hz, 0.0)),
            lambda mels: librosa.mel_to_hz(mels),
        ),
    )
    ax.set_ylim(fmin, fmax)
    ticks = [tick for tick in FREQUENCY_TICKS_HZ if fmin <= tick <= fmax]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylabel("Frequency (Hz)")
    return fmin, fmax


def _draw_spectrogram(
    ax, spectrogram: np.ndarray, mel: MelSpectrogramTransformer, start_s: float = 0.0
) -> None:
    """Draw ``(n_mels, n_frames)`` log-mel dB with frames centred on their times."""
    n_mels, n_frames = spectrogram.shape
    frame_seconds = mel.hop_length / mel.sample_rate
    # librosa's band centres are evenly spaced in mel, one step in from fmin and fmax, so
    # each band is drawn one step high in axes coordinates (linear in mel), centred there.
    half_band = 0.5 / (n_mels + 1)
    ax.imshow(
        spectrogram,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(
            start_s - 0.5 * frame_seconds,
            start_s + (n_frames - 0.5) * frame_seconds,
            half_band,
            1 - half_band,
        ),
        transform=ax.get_xaxis_transform(),  # x in seconds, y in axes coordinates
    )


def _check_window(start_s, duration_s) -> tuple[float, float | None]:
    if not (isinstance(start_s, numbers.Real) and np.isfinite(start_s) and start_s >= 0):
        raise ValueError(f"start_s must be a finite number of seconds >= 0, got {start_s!r}.")
    if duration_s is not None and not (
        isinstance(duration_s, numbers.Real) and np.isfinite(duration_s) and duration_s > 0
    ):
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}.")
    return float(start_s), None if duration_s is None else float(duration_s)


def _part(source, file: str | None, mel: MelSpectrogramTransformer, start_s, duration_s):
    """The part of ``source`` shown: read from a file (only that part), cut from an array."""
    if start_s == 0 and duration_s is None:
        return source
    from .audio import load_audio

    rate = mel.input_sample_rate or mel.sample_rate
    if file is not None:
        return load_audio(
            file, sample_rate=rate, offset_seconds=start_s, duration_seconds=duration_s
        )
    first = int(round(start_s * rate))
    last = None if duration_s is None else first + int(round(duration_s * rate))
    # the longer axis holds the samples (load_audio's rule for multi-channel arrays)
    part = source[..., first:last] if source.shape[-1] >= source.shape[0] else source[first:last]
    if part.size == 0:
        raise ValueError(
            f"start_s={start_s:g} is past the end of the waveform ({source.shape[-1] / rate:g} s "
            f"at {rate} Hz)."
        )
    return part


def _label_lines(rows: pd.DataFrame) -> np.ndarray:
    """The text line of each detection's label below the top of the axes.

    The labels of one window are stacked; overlapping windows are put in different lanes
    (greedy interval colouring), each as many lines high as the most labels of a window,
    so that no two labels are drawn over each other.
    """
    window = rows.groupby(["start_s", "end_s"], sort=True).ngroup().to_numpy()
    level = rows.groupby(["start_s", "end_s"], sort=False).cumcount().to_numpy()
    windows = rows[["start_s", "end_s"]].drop_duplicates().sort_values(["start_s", "end_s"])
    lane_ends: list[float] = []
    window_lane = []
    for start, end in windows.itertuples(index=False, name=None):
        free = [lane for lane, lane_end in enumerate(lane_ends) if lane_end <= start]
        lane = free[0] if free else len(lane_ends)
        lane_ends[lane : lane + 1] = [end]
        window_lane.append(lane)
    return np.asarray(window_lane)[window] * (level.max() + 1) + level


def _draw_detections(
    ax, rows: pd.DataFrame, band: tuple[float, float], colors, top_hz, from_s: float = 0.0
) -> None:
    from matplotlib.patches import Rectangle

    low_hz, high_hz = band
    label_y = min(high_hz, top_hz)  # labels stay inside the axes when the band is wider
    for (start, end, label, confidence), line in zip(
        rows[list(DETECTION_COLUMNS)].itertuples(index=False, name=None),
        _label_lines(rows),
        strict=True,
    ):
        color = colors[str(label)]
        box = Rectangle(
            (start, low_hz), end - start, high_hz - low_hz, fill=False, edgecolor=color, lw=1.5
        )
        ax.add_patch(box)
        ax.annotate(
            f"{label} {confidence:.2f}",
            xy=(max(start, from_s), label_y),  # a box begun before the part shown too
            xytext=(3, -3 - LABEL_LINE_POINTS * line),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize="x-small",
            color="white",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": color, "alpha": 0.75, "lw": 0},
        )


def _draw_scores(ax, scores: WindowScores, max_classes: int, colors) -> None:
    matrix = np.asarray(scores.scores, dtype=float)
    classes = [str(name) for name in scores.classes]
    centres = (np.asarray(scores.start_s) + np.asarray(scores.end_s)) / 2
    highest = np.argsort(-matrix.max(axis=0, initial=0.0), kind="stable")[:max_classes]
    marker = "o" if len(centres) <= 50 else None  # points stay visible on short recordings
    for column in highest:
        name = classes[column]
        ax.plot(centres, matrix[:, column], label=name, color=colors[name], marker=marker, ms=3)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Probability")
    ax.legend(loc="upper right", fontsize="small", ncol=min(len(highest), 5))


def plot_detections(
    source,
    detections: pd.DataFrame | None = None,
    scores: WindowScores | None = None,
    mel: MelSpectrogramTransformer | None = None,
    max_classes: int = 5,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> Figure:
    """Show a recording's log-mel spectrogram with its detections and window scores.

    The top axes show the spectrogram (time in seconds, frequency in Hz on a mel scale)
    with one box per detection, spanning its window in time and the model's frequency
    band, labelled ``"<label> <confidence>"``. When ``scores`` is given, the bottom axes
    show the probability of the ``max_classes`` classes scoring highest, one line per
    class over the window centres.

    Parameters
    ----------
    source : str, path-like or ndarray
        An audio file, or a waveform at ``mel``'s ``input_sample_rate`` (its
        ``sample_rate`` when that is None).
    detections : pandas.DataFrame, optional
        As :func:`~sklearn_birdaudio.detect` returns: columns ``file, start_s, end_s,
        label, confidence``. For a path ``source`` only the rows whose ``file`` is the
        path as given here are drawn; for a waveform every row is (``file`` may then be
        absent). The boxes span ``detections.attrs["frequency_range"]`` when present,
        else ``mel``'s band.
    scores : WindowScores, optional
        :func:`~sklearn_birdaudio.window_scores` of the same recording.
    mel : MelSpectrogramTransformer, optional
        Computes the spectrogram shown; pass a fitted pipeline's mel step to see what
        its model sees. Its ``duration`` is ignored: the whole part asked for is shown. By
        default ``MelSpectrogramTransformer(duration=None)``.
    max_classes : int, default=5
        Most classes drawn in the scores axes.
    title : str, optional
        Figure title; by default the file name of a path ``source``.
    figsize : (float, float), optional
        Figure size in inches; by default ``(12, 6)`` with scores, ``(12, 4)`` without.
    start_s : float, default=0.0
        Where the part shown starts, in seconds into the recording. Detection and score
        times are times in the whole recording; those outside the part are not drawn.
    duration_s : float, optional
        Seconds shown from ``start_s``; by default the rest of the recording. Only that
        part of a file is read and turned into a spectrogram, so a window of a long
        recording is drawn at full resolution without decoding all of it.

    Returns
    -------
    matplotlib.figure.Figure
        With one axes (the spectrogram), or two when ``scores`` is given.

    Raises
    ------
    ValueError
        If ``detections`` lacks a column, ``scores`` is inconsistent, or a detection's
        label is not among ``scores.classes``.
    AudioError
        If the recording cannot be read.

    Warns
    -----
    UserWarning
        If ``detections`` has rows but none for a path ``source``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_birdaudio import MelSpectrogramTransformer
    >>> from sklearn_birdaudio.plotting import plot_detections
    >>> waveform = np.random.default_rng(0).normal(size=32000).astype(np.float32)
    >>> detections = pd.DataFrame(
    ...     {"start_s": [0.0], "end_s": [1.0], "label": ["wren"], "confidence": [0.87]}
    ... )
    >>> mel = MelSpectrogramTransformer(sample_rate=16000, n_mels=32, fmax=8000)
    >>> fig = plot_detections(waveform, detections, mel=mel)
    >>> [text.get_text() for text in fig.axes[0].texts]
    ['wren 0.87']
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    _check_positive_int("max_classes", max_classes)
    start_s, duration_s = _check_window(start_s, duration_s)
    mel = _display_mel(mel)
    if isinstance(source, (str, os.PathLike)):
        file = os.fspath(source)
    else:
        file = None
        source = np.asarray(source)
        if source.ndim not in (1, 2) or source.size == 0:
            raise ValueError(
                f"source must be an audio path or a non-empty 1-D (mono) or 2-D "
                f"(multi-channel) waveform, got an array of shape {source.shape}."
            )
    rows = None if detections is None else _detections_of(detections, file)
    end_s = np.inf if duration_s is None else start_s + duration_s
    if rows is not None:  # boxes that overlap the part shown
        rows = rows[(rows["end_s"] > start_s) & (rows["start_s"] < end_s)]
    if scores is not None:
        _check_scores(scores)
        classes = [str(name) for name in scores.classes]
        if rows is not None:
            unknown = sorted(set(rows["label"].astype(str)) - set(classes))
            if unknown:
                raise ValueError(
                    f"detections has labels {unknown} that are not among scores.classes "
                    f"{classes}; the detections and scores must come from the same model."
                )
    else:
        classes = [] if rows is None else list(dict.fromkeys(rows["label"].astype(str)))
    colors = _class_colors(classes)

    spectrogram = mel.transform([_part(source, file, mel, start_s, duration_s)])[0, 0]
    if scores is None:
        fig, ax = plt.subplots(figsize=figsize or (12, 4), layout="constrained")
        axes = [ax]
    else:
        fig, axes = plt.subplots(
            2, 1, sharex=True, figsize=figsize or (12, 6), height_ratios=(2, 1),
            layout="constrained",
        )  # fmt: skip
    top_hz = _mel_frequency_axis(axes[0], mel)[1]
    _draw_spectrogram(axes[0], spectrogram, mel, start_s)
    shown_end_s = start_s + (spectrogram.shape[-1] - 1) * mel.hop_length / mel.sample_rate
    if rows is not None and not rows.empty:
        band = detections.attrs.get("frequency_range") or axes[0].get_ylim()
        band = tuple(float(hz) for hz in band)
        _draw_detections(axes[0], rows, band, colors, top_hz, from_s=start_s)
        shown_end_s = max(shown_end_s, float(rows["end_s"].max()))
    if scores is not None:
        _draw_scores(axes[1], scores, max_classes, colors)
        shown_end_s = max(shown_end_s, float(np.max(scores.end_s, initial=0.0)))
    axes[0].set_xlim(start_s, min(shown_end_s, end_s))
    axes[-1].set_xlabel("Time (s)")
    if title is None and file is not None:
        title = os.path.basename(file)
    if title:
        fig.suptitle(title)
    return fig


# -- training curves --------------------------------------------------------------------


def _history_rows(history) -> list:
    """The per-epoch records of a History, or of a fitted classifier or pipeline."""
    if isinstance(history, list):  # a skorch History is a list of dicts
        return history
    estimator = history.steps[-1][1] if hasattr(history, "steps") else history
    if not hasattr(estimator, "history_"):
        raise TypeError(
            "history must be a fitted AttentionCNNClassifier, a Pipeline ending in one, or a "
            f"skorch History, got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    return estimator.history_


def _series(rows: list, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of ``key`` over the epochs that recorded it."""
    pairs = [(row.get("epoch", index), row[key]) for index, row in enumerate(rows, 1) if key in row]
    epochs, values = zip(*pairs, strict=True) if pairs else ((), ())
    return np.asarray(epochs, dtype=int), np.asarray(values, dtype=float)


def plot_training_curves(history, figsize: tuple[float, float] | None = None) -> Figure:
    """Plot the loss and validation mAP of each training epoch.

    Parameters
    ----------
    history : AttentionCNNClassifier, Pipeline or skorch History
        A fitted classifier, a fitted pipeline ending in one, or its ``history_``.
    figsize : (float, float), optional
        Figure size in inches; by default ``(8, 6)`` with validation mAP, ``(8, 4)``
        without.

    Returns
    -------
    matplotlib.figure.Figure
        The first axes hold the training loss and, when the model was validated, the
        validation loss and a vertical line at the best epoch (lowest validation loss:
        the weights early stopping restores). When the history records ``valid_mAP``,
        second axes below hold it, with the same vertical line.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the classifier is not fitted.
    ValueError
        If the history is empty or records no ``train_loss``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skorch.history import History
    >>> from sklearn_birdaudio.plotting import plot_training_curves
    >>> history = History(
    ...     [
    ...         {"epoch": 1, "train_loss": 0.9, "valid_loss": 0.8, "valid_mAP": 0.4},
    ...         {"epoch": 2, "train_loss": 0.6, "valid_loss": 0.7, "valid_mAP": 0.6},
    ...         {"epoch": 3, "train_loss": 0.5, "valid_loss": 0.75, "valid_mAP": 0.6},
    ...     ]
    ... )
    >>> fig = plot_training_curves(history)
    >>> len(fig.axes)
    2
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = _history_rows(history)
    if len(rows) == 0:
        raise ValueError("history is empty; expected the records of at least one epoch.")
    train_epochs, train_loss = _series(rows, "train_loss")
    if len(train_epochs) == 0:
        raise ValueError(
            f"history records no train_loss; expected skorch's per-epoch keys, got "
            f"{sorted(rows[-1])}."
        )
    valid_epochs, valid_loss = _series(rows, "valid_loss")
    map_epochs, valid_map = _series(rows, "valid_mAP")

    n_axes = 2 if len(map_epochs) else 1
    fig, axes = plt.subplots(
        n_axes, 1, sharex=True, squeeze=False, figsize=figsize or (8, 2 + 2 * n_axes),
        layout="constrained",
    )  # fmt: skip
    axes = axes[:, 0]
    loss_axes = axes[0]
    loss_axes.plot(train_epochs, train_loss, marker="o", ms=3, label="training loss")
    if len(valid_epochs):
        loss_axes.plot(valid_epochs, valid_loss, marker="o", ms=3, label="validation loss")
    if len(map_epochs):
        axes[1].plot(map_epochs, valid_map, marker="o", ms=3, color="C2", label="validation mAP")
        axes[1].set_ylabel("Validation mAP")
        axes[1].set_ylim(0, 1)  # the whole range: noise between epochs must not look like progress
    if not np.isnan(valid_loss).all():  # all() of no epochs is True: nothing validated
        best_epoch = valid_epochs[np.nanargmin(valid_loss)]
        for ax in axes:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch ({best_epoch})")
    loss_axes.set_ylabel("Loss")
    loss_axes.legend(fontsize="small")
    axes[-1].set_xlabel("Epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


# -- precision-recall curves ------------------------------------------------------------


def _column_names(table) -> list | None:
    return list(table.columns) if isinstance(table, pd.DataFrame) else None


def _indicator_from_labels(labels: np.ndarray, classes) -> np.ndarray:
    known = {str(name) for name in classes}
    unknown = sorted({str(label) for label in labels} - known)
    if unknown:
        raise ValueError(
            f"y_true has labels {unknown[:MAX_NAMES_IN_NOTE]} that are not in classes "
            f"{[str(name) for name in classes]}."
        )
    names = np.asarray([str(name) for name in classes])
    return (labels.astype(str)[:, np.newaxis] == names[np.newaxis, :]).astype(int)


def _targets_and_scores(y_true, y_score, classes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(indicator, scores, class names)``, both matrices ``(n_samples, n_classes)``."""
    true_names, score_names = _column_names(y_true), _column_names(y_score)
    if true_names is not None and score_names is not None:
        if set(map(str, true_names)) != set(map(str, score_names)):
            raise ValueError(
                f"y_true and y_score are DataFrames with different columns: {true_names} and "
                f"{score_names}; expected the same class names."
            )
        y_score = y_score[true_names]  # same order as y_true
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim != 2:
        raise ValueError(
            f"y_score must be a 2-D array (n_samples, n_classes), got shape {scores.shape}."
        )
    labels = np.asarray(y_true)
    if labels.ndim == 1:
        if classes is None:
            classes = score_names if score_names is not None else np.unique(labels)
            if len(classes) != scores.shape[1]:
                raise ValueError(
                    f"y_true holds {len(classes)} distinct labels but y_score has "
                    f"{scores.shape[1]} columns; pass classes (e.g. the model's classes_) to "
                    "say which class each column scores."
                )
        indicator = _indicator_from_labels(labels, classes)
    elif labels.ndim == 2:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(
                "y_true as a 2-D array must be a 0/1 indicator matrix (n_samples, n_classes); "
                "pass 1-D class labels with classes to binarize them."
            )
        indicator = labels.astype(int)
    else:
        raise ValueError(
            f"y_true must be 1-D labels or a 2-D indicator matrix, got shape {labels.shape}."
        )
    if indicator.shape != scores.shape:
        raise ValueError(
            f"y_true has shape {indicator.shape} (as an indicator matrix) but y_score has shape "
            f"{scores.shape}; expected the same (n_samples, n_classes)."
        )
    if classes is None:
        classes = true_names or score_names or range(scores.shape[1])
    names = [str(name) for name in classes]
    if len(names) != scores.shape[1]:
        raise ValueError(
            f"classes has {len(names)} names but y_score has {scores.shape[1]} columns."
        )
    return indicator, scores, names


def _names_note(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_IN_NOTE])
    return shown + (
        f" and {len(names) - MAX_NAMES_IN_NOTE} more" if len(names) > MAX_NAMES_IN_NOTE else ""
    )


def plot_precision_recall(
    y_true,
    y_score,
    classes=None,
    max_classes: int = 10,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot per-class and micro-averaged precision-recall curves.

    Parameters
    ----------
    y_true : array-like or DataFrame
        A 0/1 indicator matrix ``(n_samples, n_classes)`` (a DataFrame's columns name the
        classes), or 1-D class labels, binarized with ``classes``.
    y_score : array-like or DataFrame of shape (n_samples, n_classes)
        Scores of each class, e.g. ``predict_proba``. When both ``y_true`` and
        ``y_score`` are DataFrames their columns are matched by name.
    classes : array-like, optional
        The class of each column of ``y_score`` (e.g. the model's ``classes_``). By
        default the DataFrame columns, else the sorted labels of a 1-D ``y_true``, else
        the column indices.
    max_classes : int, default=10
        Most classes drawn: those with the most positives. Classes without a positive
        have no curve; the title names them.
    figsize : (float, float), optional
        Figure size in inches; by default ``(9, 6)`` (the legend takes the right part).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a curve per class drawn, labelled with its average precision (AP), and
        the micro-averaged curve over every class (thick, black). The legend is to the
        right of the axes; the title says how many of the classes are drawn and why the
        others are not.

    Raises
    ------
    ValueError
        If the shapes of ``y_true`` and ``y_score`` differ, a label is not in
        ``classes``, or ``y_true`` has no positive at all.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sklearn_birdaudio.plotting import plot_precision_recall
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> y_score = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.1, 0.5]])
    >>> fig = plot_precision_recall(y_true, y_score, classes=["wren", "tody"])
    >>> [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    ['wren (AP 1.00)', 'tody (AP 0.83)', 'micro-average (AP 0.95)']
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    _check_positive_int("max_classes", max_classes)
    indicator, scores, names = _targets_and_scores(y_true, y_score, classes)
    positives = indicator.sum(axis=0)
    with_positives = np.flatnonzero(positives > 0)
    if len(with_positives) == 0:
        raise ValueError(
            "y_true has no positive label in any class; precision and recall are undefined."
        )
    most_frequent_first = with_positives[np.argsort(-positives[with_positives], kind="stable")]
    shown = most_frequent_first[:max_classes]

    fig, ax = plt.subplots(figsize=figsize or (9, 6), layout="constrained")
    for column in shown:
        precision, recall, _ = precision_recall_curve(indicator[:, column], scores[:, column])
        average_precision = average_precision_score(indicator[:, column], scores[:, column])
        ax.plot(
            recall,
            precision,
            drawstyle="steps-post",
            label=f"{names[column]} (AP {average_precision:.2f})",
        )
    precision, recall, _ = precision_recall_curve(indicator.ravel(), scores.ravel())
    micro_average_precision = average_precision_score(indicator, scores, average="micro")
    ax.plot(
        recall,
        precision,
        drawstyle="steps-post",
        color="black",
        lw=3,
        label=f"micro-average (AP {micro_average_precision:.2f})",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    # Beside the axes, not on them: with many classes a legend inside hides the curves.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0)

    drawn = f"{len(shown)} of {len(names)} classes drawn"
    if len(shown) < len(with_positives):
        drawn += f": the {len(shown)} with the most positives (max_classes={max_classes})"
    notes = [drawn]
    without = [names[column] for column in np.flatnonzero(positives == 0)]
    if without:
        notes.append(f"no positives, not shown: {_names_note(without)}")
    ax.set_title("\n".join(["Precision-recall", *(textwrap.fill(note, 70) for note in notes)]))
    return fig


# -- calibration curves -----------------------------------------------------------------


def plot_calibration(
    calibrator,
    species: str,
    reviews: pd.DataFrame | None = None,
    threshold_row=None,
    target: float | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Plot a species' calibrated probability of a correct detection against the score.

    Parameters
    ----------
    calibrator : ScoreCalibrator
        A fitted :class:`~sklearn_birdaudio.calibration.ScoreCalibrator`.
    species : str
        The species drawn; one never reviewed is drawn with the pooled model.
    reviews : DataFrame, optional
        Reviewed detections: columns ``label``, ``confidence`` and ``verdict`` (yes/no,
        1/0 or True/False; "unsure" and empty verdicts are left out), and optionally
        ``weight`` (inverse inclusion probabilities). The species' reviews are drawn as
        points at 0 ("no") and 1 ("yes"), jittered vertically, and with them the estimated
        precision of the reviewed detections at or above each score (weighted), the
        quantity a precision threshold is read from.
    threshold_row : mapping, optional
        The species' row of :meth:`ScoreCalibrator.thresholds` (``threshold``, ``low``,
        ``high``): the threshold is drawn as a vertical line, its interval as a band.
    target : float, optional
        The target probability or precision, drawn as a horizontal line.
    figsize : (float, float), optional
        Figure size in inches; by default ``(9, 5)``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, its legend on the right, titled with the species, its number of
        reviews and, when it uses the pooled model, why.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the calibrator is not fitted.
    ValueError
        If ``reviews`` lacks a column or holds an invalid score or verdict.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_birdaudio.calibration import ScoreCalibrator
    >>> reviews = pd.DataFrame({"label": "wren", "confidence": np.linspace(0.1, 0.95, 40),
    ...     "verdict": ["no", "yes"] * 10 + ["yes"] * 20})
    >>> calibrator = ScoreCalibrator().fit(reviews, reviews["verdict"])
    >>> row = calibrator.thresholds(probability=0.8, n_bootstrap=20, random_state=0).iloc[0]
    >>> fig = plot_calibration(calibrator, "wren", reviews, threshold_row=row, target=0.8)
    >>> fig.axes[0].get_title()
    'wren: 40 reviews'
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    from .calibration import _check_table, _precision_above, _verdicts, decided_reviews

    check_is_fitted(calibrator)
    species = str(species)
    fig, ax = plt.subplots(figsize=figsize or (9, 5), layout="constrained")
    grid = np.linspace(0.0, 1.0, 401)
    curve = calibrator.calibrated_probability(pd.DataFrame({"label": species, "confidence": grid}))
    ax.plot(grid, grid, ls=":", color="grey", lw=1, label="score = probability")
    ax.plot(grid, curve, color="C0", lw=2, label="calibrated P(correct | score)")

    if reviews is not None:
        rows = decided_reviews(reviews)
        labels, scores = _check_table(rows, "reviews")
        mine = labels == species
        correct = _verdicts(rows["verdict"].to_numpy()[mine], name="reviews['verdict']")
        scores = scores[mine]
        jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(scores))
        for value, color, name in ((1, "C2", "yes"), (0, "C3", "no")):
            chosen = correct == value
            ax.scatter(
                scores[chosen], value + jitter[chosen], s=14, alpha=0.6, color=color,
                label=f'reviewed "{name}" ({chosen.sum()})',
            )  # fmt: skip
        if len(scores):
            weights = (
                pd.to_numeric(rows["weight"], errors="coerce").to_numpy(dtype=float)[mine]
                if "weight" in rows.columns
                else np.ones(len(scores))
            )
            at = calibrator.calibrated_probability(
                pd.DataFrame({"label": species, "confidence": scores})
            )
            above, precision, valid = _precision_above(scores, weights, at)
            ax.plot(
                above[valid], precision[valid], drawstyle="steps-post", ls="--", color="C1",
                label="estimated precision at or above the score",
            )  # fmt: skip

    if threshold_row is not None:
        threshold = float(threshold_row["threshold"])
        low, high = float(threshold_row["low"]), float(threshold_row["high"])
        name = "never (1.0)" if threshold >= 1.0 else f"{threshold:.3f}"
        ax.axvline(threshold, color="black", lw=1.5, label=f"threshold {name}")
        if np.isfinite(low) and np.isfinite(high):
            ax.axvspan(low, high, color="black", alpha=0.12, lw=0, label="threshold interval")
    if target is not None:
        ax.axhline(target, color="C4", ls="-.", lw=1, label=f"target {target:g}")

    if species in calibrator.species_:
        index = calibrator.species_.index(species)
        title = f"{species}: {calibrator.n_reviews_[index]} reviews"
        if calibrator.pooled_[index]:
            title += f"; pooled model ({calibrator.pooled_reasons_[species]})"
    else:
        title = f"{species}: not reviewed; pooled model"
    ax.set_title(textwrap.fill(title, 70))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlabel("Score (confidence)")
    ax.set_ylabel("P(correct)")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    return fig
