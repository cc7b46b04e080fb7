"""Data sets: a synthetic bird-song generator, and loaders for labelled recordings.

Every function returns ``(X, Y, class_names)``: inputs (waveforms or paths), a 0/1
indicator matrix with one column per class (multi-label), and the class names in column
order, so the three can feed the same pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from sklearn.utils import check_random_state

from ._deprecation import deprecate_positional
from ._validation import check_integer, check_real
from .audio import AUDIO_EXTENSIONS, AudioError, audio_files

__all__ = ["load_folder", "load_manifest", "make_birdsong"]

SONG_PATTERNS = ("upsweep", "downsweep", "trill", "warble")
# Irrational strides spread class parameters evenly for any number of classes, so that
# species k sounds the same whatever n_classes or random_state a data set is drawn with.
_GOLDEN = 0.6180339887
_LOWEST_PITCH_HZ, _HIGHEST_PITCH_HZ = 1200.0, 9000.0
_FIRST_DISTRACTOR = 10_000  # species indices from here on sing but are never labelled


def _species_song(index: int) -> dict:
    """The fixed song of synthetic species ``index``: pitch, pattern and rhythm."""

    def spread(stride):
        return (index * stride + 0.5 * stride) % 1.0

    pitch_position = spread(_GOLDEN)
    return {
        "pattern": SONG_PATTERNS[index % len(SONG_PATTERNS)],
        "pitch_hz": _LOWEST_PITCH_HZ * (_HIGHEST_PITCH_HZ / _LOWEST_PITCH_HZ) ** pitch_position,
        "bandwidth": 0.15 + 0.25 * spread(0.7548776662),
        "syllable_seconds": 0.05 + 0.10 * spread(0.5698402910),
        "gap_seconds": 0.03 + 0.12 * spread(0.4142135624),
        "modulation_hz": 12.0 + 60.0 * spread(0.3247179572),
    }


def _render_bout(song: dict, n_syllables: int, pitch_scale: float, sample_rate: int):
    """Synthesise one bout (a run of syllables) of a species' song, peak amplitude 1."""
    period = song["syllable_seconds"] + song["gap_seconds"]
    time = np.arange(int(n_syllables * period * sample_rate)) / sample_rate
    within = np.mod(time, period)
    position = within / song["syllable_seconds"]  # 0..1 inside a syllable
    voiced = position < 1.0
    pitch = song["pitch_hz"] * pitch_scale
    sweep = song["bandwidth"] * pitch
    pattern = song["pattern"]
    if pattern == "upsweep":
        frequency = pitch - sweep / 2 + sweep * position
    elif pattern == "downsweep":
        frequency = pitch + sweep / 2 - sweep * position
    elif pattern == "warble":
        frequency = pitch + sweep / 2 * np.sin(2 * np.pi * song["modulation_hz"] * time)
    else:  # trill: steady pitch, fast amplitude modulation
        frequency = np.full_like(time, pitch)
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    envelope = np.where(voiced, np.sin(np.pi * np.clip(position, 0, 1)) ** 2, 0.0)
    if pattern == "trill":
        envelope *= 0.5 + 0.5 * np.cos(2 * np.pi * song["modulation_hz"] * 4 * time)
    tone = np.sin(phase)
    if 2 * frequency.max() < sample_rate / 2:
        tone += 0.3 * np.sin(2 * phase)  # a harmonic, as in real song
    return envelope * tone / 1.3


@deprecate_positional
def make_birdsong(
    n_samples: int = 100,
    *,
    n_classes: int = 5,
    duration: float = 5.0,
    sample_rate: int = 32000,
    n_labels: float = 1.5,
    noise: float = 0.1,
    distractors: float = 1.0,
    random_state=None,
    as_frame: bool = False,
):
    """Generate synthetic multi-label bird-song clips.

    Each class is a "species" with a fixed song: a pitch between 1.2 and 9 kHz, a pattern
    (up-sweep, down-sweep, trill or warble) and a rhythm of syllables and gaps. A clip
    holds one or more species, each singing one bout at a random time, loudness and
    slight pitch shift, over pink-ish background noise. Species ``k`` sounds the same in
    every call (only the draws depend on ``random_state``), so training and test sets
    drawn separately share their classes. Unlabelled calls of other species
    (``distractors``) and songs down to -20 dB make it a task to learn, not to read off.

    Parameters
    ----------
    n_samples : int, default=100
        Number of clips.
    n_classes : int, default=5
        Number of species.
    duration : float, default=5.0
        Clip length in seconds.
    sample_rate : int, default=32000
        Sample rate in Hz.
    n_labels : float, default=1.5
        Average number of species per clip (at least 1; 1 gives single-label clips).
    noise : float, default=0.1
        Standard deviation of the background noise; songs peak between 0.1 and 1
        (-20 to 0 dB).
    distractors : float, default=1.0
        Average number of unlabelled calls per clip, from species outside the data set.
    random_state : int, RandomState or None, default=None
        Seed for the draws.
    as_frame : bool, default=False
        Return ``Y`` as a DataFrame whose columns are the class names.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, round(duration * sample_rate))
        The waveforms.
    Y : ndarray of int, shape (n_samples, n_classes), or DataFrame
        ``Y[i, k] == 1`` when species ``k`` sings in clip ``i``.
    class_names : list of str
        ``["species_00", "species_01", ...]``.

    Examples
    --------
    >>> X, Y, names = make_birdsong(n_samples=4, n_classes=3, duration=1.0, random_state=0)
    >>> X.shape, Y.shape, names
    ((4, 32000), (4, 3), ['species_00', 'species_01', 'species_02'])
    """
    n_samples = check_integer(n_samples, "n_samples", min_val=1)
    n_classes = check_integer(n_classes, "n_classes", min_val=1)
    sample_rate = check_integer(
        sample_rate,
        "sample_rate",
        min_val=4000,
        message=f"sample_rate must be an integer >= 4000 Hz, got {sample_rate!r}.",
    )
    duration = check_real(
        duration,
        "duration",
        min_val=1 / sample_rate,
        message=(
            f"duration must be a number of seconds holding at least one sample "
            f"(>= 1/sample_rate = {1 / sample_rate:.3g} s), got {duration!r}."
        ),
    )
    n_labels = check_real(
        n_labels,
        "n_labels",
        min_val=1,
        max_val=n_classes,
        message=f"n_labels must be between 1 and n_classes={n_classes}, got {n_labels!r}.",
    )
    noise, distractors = (
        check_real(value, name, min_val=0, message=f"{name} must be a number >= 0, got {value!r}.")
        for name, value in [("noise", noise), ("distractors", distractors)]
    )

    rng = check_random_state(random_state)
    n_times = int(round(duration * sample_rate))
    songs = [_species_song(index) for index in range(n_classes)]
    # Pink-ish noise: white noise through a one-pole low-pass, rescaled to std `noise`.
    background = lfilter([1.0], [1.0, -0.9], rng.standard_normal((n_samples, n_times)), axis=1)
    background *= noise / max(background.std(), np.finfo(float).tiny)
    X = background
    Y = np.zeros((n_samples, n_classes), dtype=np.int64)
    n_species = np.clip(1 + rng.poisson(n_labels - 1, size=n_samples), 1, n_classes)
    n_distractors = rng.poisson(distractors, size=n_samples)
    for row in range(n_samples):
        singers = rng.choice(n_classes, size=n_species[row], replace=False)
        Y[row, singers] = 1
        # Distractors: unlabelled calls of species outside the data set.
        strangers = _FIRST_DISTRACTOR + rng.randint(0, 1000, size=n_distractors[row])
        for species in [*singers, *strangers]:
            song = songs[species] if species < n_classes else _species_song(species)
            nyquist_room = 0.45 * sample_rate / (song["pitch_hz"] * (1 + song["bandwidth"]))
            bout = _render_bout(
                song,
                n_syllables=int(rng.randint(3, 11)),
                pitch_scale=min(rng.uniform(0.96, 1.04), nyquist_room),
                sample_rate=sample_rate,
            )[:n_times]
            start = int(rng.randint(0, n_times - bout.shape[0] + 1))
            loudness_db = rng.uniform(-20.0, 0.0)
            X[row, start : start + bout.shape[0]] += 10 ** (loudness_db / 20) * bout
    X /= np.maximum(1.0, np.abs(X).max(axis=1, keepdims=True))  # no clipping
    class_names = [f"species_{index:02d}" for index in range(n_classes)]
    return X.astype(np.float32), _targets(Y, class_names, as_frame), class_names


def _targets(Y: np.ndarray, class_names: list[str], as_frame: bool):
    return pd.DataFrame(Y, columns=class_names) if as_frame else Y


def _indicator(label_sets: list[set[str]], classes) -> tuple[np.ndarray, list[str]]:
    """Indicator matrix of ``label_sets`` over ``classes`` (sorted union when None)."""
    observed = set().union(*label_sets) if label_sets else set()
    if classes is None:
        class_names = sorted(observed)
    else:
        class_names = [str(name) for name in classes]
        unknown = sorted(observed - set(class_names))
        if unknown:
            raise ValueError(
                f"labels {unknown[:10]} are not in the given classes; expected labels among "
                f"{class_names[:10]}{' ...' if len(class_names) > 10 else ''}."
            )
    column = {name: index for index, name in enumerate(class_names)}
    Y = np.zeros((len(label_sets), len(class_names)), dtype=np.int64)
    for row, labels in enumerate(label_sets):
        Y[row, [column[label] for label in labels]] = 1
    return Y, class_names


@deprecate_positional
def load_folder(
    root: str | os.PathLike,
    *,
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    classes=None,
    as_frame: bool = False,
):
    """Load a folder with one sub-folder of recordings per class.

    ``root/Turdus migratorius/a.wav`` is a recording of class ``"Turdus migratorius"``.
    Sub-folders are searched recursively; files with other extensions are ignored.

    Parameters
    ----------
    root : str or path-like
        The folder holding the class sub-folders.
    extensions : tuple of str, default=(".wav", ".flac", ".ogg", ".mp3")
        File extensions counted as audio (case-insensitive).
    classes : list of str, optional
        Column order of ``Y``; default: the sorted sub-folder names that hold audio.
    as_frame : bool, default=False
        Return ``Y`` as a DataFrame whose columns are the class names.

    Returns
    -------
    paths : list of str
        The audio files, sorted.
    Y : ndarray of int, shape (n_files, n_classes), or DataFrame
        One-hot rows.
    class_names : list of str

    Raises
    ------
    AudioError
        If ``root`` is not a folder or holds no audio in class sub-folders.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise AudioError(f"{root}: not a folder; expected a folder of class sub-folders.")
    paths, label_sets = [], []
    for class_dir in sorted(path for path in root_path.iterdir() if path.is_dir()):
        for path in audio_files(class_dir, extensions=extensions):
            paths.append(path)
            label_sets.append({class_dir.name})
    if not paths:
        raise AudioError(
            f"{root}: no audio files ({', '.join(sorted(extensions))}) in class sub-folders; "
            "expected root/<class name>/<recording>."
        )
    Y, class_names = _indicator(label_sets, classes)
    return paths, _targets(Y, class_names, as_frame), class_names


@deprecate_positional
def load_manifest(
    csv_path: str | os.PathLike,
    *,
    path_column: str = "path",
    label_columns: str | tuple[str, ...] = ("primary_label", "secondary_labels"),
    separator: str = ";",
    split: str | None = None,
    split_column: str = "split",
    classes=None,
    as_frame: bool = False,
):
    """Load recordings and their labels from a CSV manifest.

    Each row is a recording: a path (relative paths are relative to the CSV's folder)
    and one or more label columns, each holding labels separated by ``separator``. A
    recording's targets are the union of its label columns, so a primary and a
    secondary-labels column give multi-label targets (the format of xeno-canto
    extracts and BirdCLEF). Empty cells mean no label.

    Parameters
    ----------
    csv_path : str or path-like
        The manifest.
    path_column : str, default="path"
        Column of audio paths.
    label_columns : str or tuple of str, default=("primary_label", "secondary_labels")
        Column(s) of labels; a single string names one column.
    separator : str, default=";"
        Separator between labels within a cell.
    split : str, optional
        Keep only rows whose ``split_column`` equals this (e.g. ``"train"``).
    split_column : str, default="split"
        Column holding the split name.
    classes : list of str, optional
        Column order of ``Y`` (pass the training classes when loading a test split);
        default: the sorted labels found.
    as_frame : bool, default=False
        Return ``Y`` as a DataFrame whose columns are the class names.

    Returns
    -------
    paths : list of str
    Y : ndarray of int, shape (n_rows, n_classes), or DataFrame
    class_names : list of str

    Raises
    ------
    AudioError
        If listed audio files do not exist (all of them are named, up to ten).
    ValueError
        If the file is not readable CSV, a named column is missing, or a label is not in
        ``classes``.

    Examples
    --------
    >>> paths, Y, names = load_manifest("labels.csv", split="train")  # doctest: +SKIP
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise AudioError(f"{csv_path}: manifest not found; expected a CSV file.")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:  # empty, binary, not UTF-8 ...
        raise ValueError(
            f"{csv_path}: cannot be read as CSV ({type(error).__name__}: {error}); expected a "
            f"CSV manifest with a header row naming the {path_column!r} and label columns."
        ) from error
    label_columns = (label_columns,) if isinstance(label_columns, str) else tuple(label_columns)
    needed = [path_column, *label_columns] + ([split_column] if split is not None else [])
    missing_columns = [column for column in needed if column not in table.columns]
    if missing_columns:
        raise ValueError(
            f"{csv_path}: missing column(s) {missing_columns}; found {list(table.columns)}."
        )
    if split is not None:
        table = table[table[split_column] == split]
        if table.empty:
            raise ValueError(f"{csv_path}: no rows with {split_column} == {split!r}.")
    paths = [str(csv_path.parent / path) for path in table[path_column]]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise AudioError(
            f"{csv_path}: {len(missing)} listed audio file(s) not found, e.g. {missing[:10]}."
        )
    label_sets = [
        {label.strip() for cell in cells for label in cell.split(separator) if label.strip()}
        for cells in table[list(label_columns)].itertuples(index=False)
    ]
    Y, class_names = _indicator(label_sets, classes)
    return paths, _targets(Y, class_names, as_frame), class_names
