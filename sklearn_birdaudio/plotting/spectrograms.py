"""The spectrogram figure: a recording's log-mel spectrogram with its detections and scores.

Spectrograms are drawn on a mel-scaled frequency axis whose data coordinates are in Hz:
each mel band takes the same height, as in the spectrogram the model sees, and anything
added to the axes (the detection boxes, your own annotations) is placed in Hz.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import clone

from .._deprecation import deprecate_positional
from .._validation import check_integer, check_real
from ..features import MelSpectrogramTransformer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..detection import WindowScores

DETECTION_COLUMNS = ("start_s", "end_s", "label", "confidence")
# Frequency ticks (Hz) of the mel axis: those inside the displayed band are shown.
FREQUENCY_TICKS_HZ = (0, 250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000)
LABEL_LINE_POINTS = 11  # vertical offset between labels of boxes of the same window

MAX_NAMES_IN_NOTE = 5  # names listed in a message or a title before "and N more"


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


def _part(source, file: str | None, mel: MelSpectrogramTransformer, start_s, duration_s):
    """The part of ``source`` shown: read from a file (only that part), cut from an array."""
    if start_s == 0 and duration_s is None:
        return source
    from ..audio import load_audio

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


@deprecate_positional
def plot_detections(
    source,
    detections: pd.DataFrame | None = None,
    scores: WindowScores | None = None,
    *,
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

    check_integer(max_classes, "max_classes", min_val=1)
    start_s = check_real(
        start_s,
        "start_s",
        min_val=0,
        message=f"start_s must be a finite number of seconds >= 0, got {start_s!r}.",
    )
    duration_s = check_real(
        duration_s,
        "duration_s",
        min_val=0,
        include_boundaries="neither",
        allow_none=True,
        message=f"duration_s must be a positive number of seconds, got {duration_s!r}.",
    )
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
