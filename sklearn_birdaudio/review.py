"""Reviewing detections: draw a sample to check, export it as clips and a page, read verdicts.

A detection table says where a model heard each species, not how often it is right. To
know, a person listens to a sample of the detections and says yes, no or unsure; the
precision of each species (at any score) is then estimated from the verdicts. The sample
has to be drawn so that the estimate is valid, and the review has to be quick.

:func:`sample_for_review`
    Draws the sample, per species. ``"stratified"`` spreads it over the whole score range,
    as Wood & Kahl (2024, "Guidelines for appropriate use of BirdNET scores and other
    detector outputs", J. Ornithol.) advise, and gives each row the weight a
    Horvitz-Thompson estimate needs. ``"margin"`` takes the detections nearest a threshold
    (uncertainty sampling, as agile modelling with Perch-Hoplite does), to improve a model
    or place a threshold, not to estimate precision.
:func:`export_review`
    Writes a review folder: one audio clip and one spectrogram per sampled detection,
    ``review.csv`` and ``index.html``, a page that plays each clip and takes verdicts from
    the keyboard, then saves ``review.csv`` with them filled in. It needs no server or
    network: open it from the folder (``file://``).
:func:`read_review`
    Reads a ``review.csv`` back, verdicts normalised to ``"yes"``, ``"no"``, ``"unsure"`` or
    ``""`` (not reviewed).

``review.csv`` has the columns :data:`REVIEW_COLUMNS` and follows the CSV conventions of
:mod:`sklearn_birdaudio.tables`: a text cell that a spreadsheet could run as a formula
(or that starts with ``'``) gets one ``'`` in front, and a cell holding a comma, a double
quote or a control character is quoted, so that any label or file name reads back exactly.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import numbers
import os
import re
import secrets
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import tables
from .audio import AudioError, audio_info, load_audio
from .tables import (
    _CANONICAL_INTEGER,
    COLUMNS,
    _csv_cell,
    _csv_cell_text,
    _csv_numbers,
    _read_delimited,
    atomic_write_text,
)

__all__ = [
    "REVIEW_COLUMNS",
    "SkippedClipsWarning",
    "export_review",
    "read_review",
    "sample_for_review",
]

DETECTION_COLUMNS = COLUMNS  # a detection table's, as tables.py defines them
#: The columns of ``review.csv``, in order.
REVIEW_COLUMNS = (
    "review_id",
    "file",
    "start_s",
    "end_s",
    "label",
    "confidence",
    "weight",
    "stratum",
    "clip",
    "clip_start_s",
    "clip_end_s",
    "spectrogram",
    "verdict",
)
TEXT_COLUMNS = ("review_id", "file", "label", "clip", "spectrogram", "verdict")
NUMBER_COLUMNS = ("start_s", "end_s", "confidence", "weight", "clip_start_s", "clip_end_s")
STRATEGIES = ("stratified", "margin")
# What a reviewer may have typed in the verdict column, case-insensitively.
VERDICTS = {
    **dict.fromkeys(("yes", "y", "1", "true"), "yes"),
    **dict.fromkeys(("no", "n", "0", "false"), "no"),
    **dict.fromkeys(("unsure", "u"), "unsure"),
    "": "",
}
# Clips keep their file's sample rate up to this; higher rates (bat detectors) are
# resampled to it, which every browser plays and which keeps all of a bird's band.
MAX_CLIP_SAMPLE_RATE = 96000
# Scores are clipped this far inside (0, 1) before the logit, which is infinite at 0 and 1.
LOGIT_EPSILON = 1e-12
SPECTROGRAM_FIGSIZE = (6.0, 2.6)
SPECTROGRAM_DPI = 80
_DISPLAY_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class SkippedClipsWarning(UserWarning):
    """:func:`export_review` could not cut the clip of some detections; they were left out.

    Attributes
    ----------
    skipped : pandas.DataFrame
        The detections left out (``file, start_s, end_s, label, confidence``) and why
        (``error``), as written to ``skipped.csv`` in the review folder.
    """

    def __init__(self, message: str, skipped: pd.DataFrame):
        super().__init__(message)
        self.skipped = skipped


# -- sampling ---------------------------------------------------------------------------


def _checked_detections(detections, name: str = "detections") -> pd.DataFrame:
    """The detection table as the tables module checks it (other columns kept), with
    scores in [0, 1] and finite, ordered times."""
    rows = tables._checked_detections(detections, name, other_columns=True)
    confidence = rows["confidence"].to_numpy()
    bad = np.flatnonzero(~((confidence >= 0) & (confidence <= 1)))
    if bad.size:
        raise ValueError(
            f"{name}['confidence'] holds {float(confidence[bad[0]])!r} (row {bad[0]}); expected "
            "scores between 0 and 1 (an Audacity label without ';score' reads as NaN)."
        )
    start_s, end_s = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()
    bad = np.flatnonzero(~((start_s >= 0) & (end_s > start_s) & np.isfinite(end_s)))
    if bad.size:
        raise ValueError(
            f"{name} row {bad[0]} spans start_s={float(start_s[bad[0]])!r} to end_s="
            f"{float(end_s[bad[0]])!r}; expected 0 <= start_s < end_s, both finite."
        )
    return rows


def _label_texts(labels: pd.Series) -> np.ndarray:
    """Labels as text; a missing one (None, NaN) is empty text, as the tables write it."""
    return np.array(tables._texts(labels), dtype=object)


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _equal_allocation(counts: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """How many rows to draw from each bin: as equal as the bins' sizes allow.

    Every bin gets the same share, a bin with fewer rows gives all it has and the rest is
    shared by the others; what cannot be shared equally goes one row each to bins drawn at
    random. ``n`` is at most ``counts.sum()``.
    """
    allocation = np.zeros_like(counts)
    remaining = n
    while remaining > 0:
        open_bins = np.flatnonzero(allocation < counts)
        share, extra = divmod(remaining, len(open_bins))
        if share == 0:
            allocation[rng.choice(open_bins, size=extra, replace=False)] += 1
            break
        added = np.minimum(counts[open_bins] - allocation[open_bins], share)
        allocation[open_bins] += added
        remaining -= int(added.sum())
    return allocation


def _stratified(strata: np.ndarray, n: int, n_bins: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Positions drawn (into ``strata``) and their weights, for one species."""
    counts = np.bincount(strata, minlength=n_bins)
    filled = np.flatnonzero(counts)
    if n < len(filled):
        # Too few rows to visit every bin: n bins drawn at random, one row from each. A row
        # of bin b is then drawn with probability (n / n_filled) / counts[b].
        bins = rng.choice(filled, size=n, replace=False)
        allocation = np.zeros_like(counts)
        allocation[bins] = 1
        bin_weights = counts * len(filled) / n
    else:
        allocation = _equal_allocation(counts, n, rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            bin_weights = counts / allocation
    positions, weights = [], []
    for stratum in np.flatnonzero(allocation):
        members = np.flatnonzero(strata == stratum)
        positions.append(rng.choice(members, size=allocation[stratum], replace=False))
        weights.append(np.full(allocation[stratum], bin_weights[stratum], dtype=float))
    return np.concatenate(positions), np.concatenate(weights)


def _margin(confidence: np.ndarray, n: int, threshold: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` positions whose score is nearest ``threshold`` in logit space."""
    clipped = np.clip(confidence, LOGIT_EPSILON, 1 - LOGIT_EPSILON)
    distance = np.abs(np.log(clipped / (1 - clipped)) - np.log(threshold / (1 - threshold)))
    order = np.lexsort((rng.random_sample(len(distance)), distance))  # ties: at random
    return order[:n], np.ones(n)


def sample_for_review(
    detections: pd.DataFrame,
    *,
    n_per_species: int = 20,
    n_bins: int = 5,
    strategy: str = "stratified",
    threshold: float = 0.5,
    min_confidence: float | None = None,
    species=None,
    random_state=None,
) -> pd.DataFrame:
    """Draw, per species, the detections a person should check.

    The score range ``[min_confidence, 1]`` is cut into ``n_bins`` bins of equal width (the
    strata; a bin holds scores from its lower edge up to, not including, its upper edge,
    and the last one includes 1). Equal-width bins rather than quantiles: they cover the
    whole score range (the high scores, which hold few detections, included) and they are
    the same for every species, so precision per bin compares across species.

    Parameters
    ----------
    detections : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, as
        :func:`~sklearn_birdaudio.detect` or :func:`~sklearn_birdaudio.read_detections`
        returns; other columns are dropped.
    n_per_species : int, default=20
        Detections drawn per species (label); all of them when a species has fewer.
    n_bins : int, default=5
        Number of score bins.
    strategy : {"stratified", "margin"}, default="stratified"
        ``"stratified"``: each species' sample is spread over the bins, as equal a number
        per bin as the bins hold (a bin with fewer detections gives all it has, the others
        share the rest; what cannot be shared equally goes one each to bins drawn at
        random), drawn at random within each bin. Each row's ``weight`` is the inverse of
        its probability of being drawn, given how many were drawn from its bin: the
        bin's number of detections divided by the number drawn from it. The weights of a
        species sum to its number of detections, and a weighted mean of verdicts (yes =
        1, no = 0) estimates its precision without bias (Horvitz-Thompson). With fewer
        rows than non-empty bins, ``n_per_species`` bins are drawn at random and one
        detection from each; the weight is then ``count of the bin * non-empty bins /
        n_per_species``, and the weights sum to the number of detections on average only.
        ``"margin"``: the detections whose score is nearest ``threshold`` in logit space
        (uncertainty sampling; ties broken at random), each with weight 1. These rows
        show where the model hesitates, to improve it or place a threshold; they do not
        represent the detections, so no precision can be estimated from them.
    threshold : float, default=0.5
        The score the ``"margin"`` strategy samples around, in (0, 1).
    min_confidence : float, optional
        Only detections scoring at least this are drawn, and the bins start there. By
        default every detection is eligible and the bins start at the lowest score of
        the table (the ``--min-confidence`` of ``birdaudio predict``, more or less).
    species : iterable of str, optional
        Only these species (labels compared as text).
    random_state : int, RandomState instance or None, default=None
        Seeds the draw: the same seed and table give the same sample.

    Returns
    -------
    pandas.DataFrame
        The sampled rows: ``file, start_s, end_s, label, confidence``, plus ``weight``
        (float) and ``stratum`` (the score bin, 0 to ``n_bins - 1``, for both strategies),
        ordered by species, then by falling score. ``attrs`` holds ``"strategy"``,
        ``"bin_edges"`` (``n_bins + 1`` scores), ``"threshold"`` and ``"n_detections"``
        (the eligible detections of each species).

    Raises
    ------
    ValueError
        If a column is missing, a score is outside [0, 1] or NaN, a time is invalid, a
        parameter is out of range, or ``species`` names a species without detections.

    Examples
    --------
    >>> detections = pd.DataFrame({"file": "a.wav", "start_s": np.arange(10.0),
    ...     "end_s": np.arange(1.0, 11.0), "label": "wren",
    ...     "confidence": np.linspace(0.1, 1.0, 10)})
    >>> sample = sample_for_review(detections, n_per_species=5, n_bins=5, random_state=0)
    >>> sample["stratum"].tolist(), float(sample["weight"].sum())
    ([4, 3, 2, 1, 0], 10.0)
    """
    rows = _checked_detections(detections).loc[:, list(DETECTION_COLUMNS)]
    n_per_species = _check_count("n_per_species", n_per_species)
    n_bins = _check_count("n_bins", n_bins)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}; got {strategy!r}.")
    if not (isinstance(threshold, numbers.Real) and 0 < threshold < 1):
        raise ValueError(f"threshold must be a number strictly between 0 and 1; got {threshold!r}.")
    if min_confidence is not None:
        if not (isinstance(min_confidence, numbers.Real) and 0 <= min_confidence < 1):
            raise ValueError(
                f"min_confidence must be a number in [0, 1) or None; got {min_confidence!r}."
            )
        rows = rows[rows["confidence"] >= min_confidence].reset_index(drop=True)
    labels = _label_texts(rows["label"])
    if species is not None:
        wanted = [str(name) for name in ([species] if isinstance(species, str) else species)]
        present = set(labels)
        unknown = [name for name in wanted if name not in present]
        if unknown:
            known = sorted(present)
            raise ValueError(
                f"species {unknown} have no detections to review; the table's species are "
                f"{known[:20]}{' ...' if len(known) > 20 else ''}."
            )
        keep = np.isin(labels, wanted)
        rows, labels = rows[keep].reset_index(drop=True), labels[keep]

    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    confidence = rows["confidence"].to_numpy()
    lowest = float(min_confidence if min_confidence is not None else confidence.min(initial=1.0))
    edges = np.linspace(lowest, 1.0, n_bins + 1)
    strata = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    chosen, weights, counts = [], [], {}
    for label in sorted(set(labels)):
        members = np.flatnonzero(labels == label)
        counts[label] = len(members)
        n = min(n_per_species, len(members))
        if strategy == "stratified":
            positions, member_weights = _stratified(strata[members], n, n_bins, rng)
        else:
            positions, member_weights = _margin(confidence[members], n, threshold, rng)
        chosen.append(members[positions])
        weights.append(member_weights)
    chosen = np.concatenate(chosen) if chosen else np.zeros(0, dtype=int)
    sample = rows.iloc[chosen].assign(
        weight=np.concatenate(weights) if weights else np.zeros(0),
        stratum=strata[chosen],
        _label=labels[chosen],
    )
    sample = sample.sort_values(["_label", "confidence"], ascending=[True, False], kind="stable")
    sample = sample.drop(columns="_label").reset_index(drop=True)
    sample.attrs = {
        "strategy": strategy,
        "bin_edges": edges.tolist(),
        "threshold": float(threshold),
        "n_detections": counts,
    }
    return sample


# -- the review folder ------------------------------------------------------------------


def _display_text(text: str) -> str:
    """Text for a matplotlib figure: controls shown as escapes, ``$`` never math."""
    shown = _DISPLAY_CONTROLS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    return shown.replace("$", r"\$")


def _cut_clip(file: str, start_s: float, end_s: float, context_seconds: float):
    """The detection's window with context, mono, as float32; its rate and start time."""
    info = audio_info(file)
    duration_s = info.n_frames / info.sample_rate
    if start_s >= duration_s:
        raise AudioError(
            f"{file}: the detection starts at {start_s:g} s, after the end of the "
            f"{duration_s:.3f} s recording; expected the table of this recording."
        )
    first = max(0, int(round((start_s - context_seconds) * info.sample_rate)))
    stop = min(info.n_frames, int(round((end_s + context_seconds) * info.sample_rate)))
    sample_rate = min(info.sample_rate, MAX_CLIP_SAMPLE_RATE)
    clip = load_audio(
        file,
        sample_rate=sample_rate,
        offset_seconds=first / info.sample_rate,
        duration_seconds=max(stop - first, 1) / info.sample_rate,
    )
    return clip, sample_rate, first / info.sample_rate


def _write_wav(path: Path, clip: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM, which every browser plays; a 16-bit source is copied sample for sample."""
    import soundfile

    pcm = np.clip(np.round(clip.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
    soundfile.write(path, pcm, sample_rate, subtype="PCM_16")


def _write_spectrogram(
    path: Path, clip: np.ndarray, sample_rate: int, window: tuple[float, float], label, score
) -> None:
    """A small log-mel spectrogram of the clip, the detection window boxed and shaded."""
    import matplotlib.pyplot as plt

    from .features import MelSpectrogramTransformer
    from .plotting import plot_detections

    mel = MelSpectrogramTransformer(
        sample_rate=sample_rate,
        duration=None,
        n_mels=64,
        fmax=min(16000.0, sample_rate / 2),
        device="cpu",
    )
    shown = _display_text(label)
    boxes = pd.DataFrame(
        {"start_s": [window[0]], "end_s": [window[1]], "label": [shown], "confidence": [score]}
    )
    figure = plot_detections(
        clip, boxes, mel=mel, title=f"{shown}   score {score:.3f}", figsize=SPECTROGRAM_FIGSIZE
    )
    try:
        figure.axes[0].axvspan(*window, color="white", alpha=0.2, lw=0)
        figure.savefig(path, dpi=SPECTROGRAM_DPI)
    finally:
        plt.close(figure)


def _review_cells(review: pd.DataFrame) -> list[list[str]]:
    """The cells of ``review.csv`` rows, as written: text escaped, numbers exact."""
    columns = {name: [_csv_cell(str(value)) for value in review[name]] for name in TEXT_COLUMNS}
    for name in NUMBER_COLUMNS:
        columns[name] = _csv_numbers(review[name])
    columns["stratum"] = ["" if pd.isna(value) else str(int(value)) for value in review["stratum"]]
    return [list(cells) for cells in zip(*(columns[name] for name in REVIEW_COLUMNS), strict=True)]


def _csv_lines(header: str, cells: list[list[str]]) -> str:
    return "".join(line + "\n" for line in [header, *(",".join(row) for row in cells)])


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _page_html(review: pd.DataFrame, cells: list[list[str]]) -> str:
    """``index.html``: the rows as JSON in a data block, the page script inline."""
    package = resources.files(__package__)
    template = package.joinpath("review_page.html").read_text(encoding="utf-8")
    script = package.joinpath("review_page.js").read_text(encoding="utf-8")
    rows = [
        {
            "review_id": row.review_id,
            "file": row.file,
            "label": row.label,
            "confidence": row.confidence,
            "start_s": row.start_s,
            "end_s": row.end_s,
            "clip": row.clip,
            "clip_start_s": row.clip_start_s,
            "clip_end_s": row.clip_end_s,
            "spectrogram": row.spectrogram,
            "verdict": row.verdict,
            "cells": row_cells[:-1],  # all but the verdict, which the page fills in
        }
        for row, row_cells in zip(review.itertuples(index=False), cells, strict=True)
    ]
    payload = {"token": secrets.token_hex(8), "header": ",".join(REVIEW_COLUMNS), "rows": rows}
    # No "<", ">" or "&" in the data block: no text in it can end the <script> element.
    data = json.dumps(payload, ensure_ascii=True, allow_nan=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # Only the page's own script runs (its hash), nothing is fetched from the network.
    policy = (
        f"default-src 'none'; script-src '{_script_hash(script)}'; style-src 'unsafe-inline'; "
        "img-src 'self' file: data:; media-src 'self' file: blob:"
    )
    values = {"CONTENT_SECURITY_POLICY": policy, "REVIEW_DATA": data, "REVIEW_SCRIPT": script}
    # One pass: text inserted for one placeholder is never searched for another.
    return re.sub(
        r"__(CONTENT_SECURITY_POLICY|REVIEW_DATA|REVIEW_SCRIPT)__",
        lambda match: values[match.group(1)],
        template,
    )


def export_review(
    sample: pd.DataFrame,
    out: str | os.PathLike,
    *,
    context_seconds: float = 2.0,
    overwrite: bool = False,
    verbose: int = 1,
) -> Path:
    """Write a review folder: clips, spectrograms, ``review.csv`` and a page to review on.

    For each row of ``sample`` (detections, usually from :func:`sample_for_review`), the
    window plus ``context_seconds`` on each side (less at the start and end of the
    recording) is cut from its audio file into a clip, and its log-mel spectrogram drawn
    with the window shaded and boxed, the label and score in the title. ``index.html``
    shows one card per clip (spectrogram, player, label, score, file and times) and takes
    verdicts from the keyboard: ``j``/``k`` (or the arrow keys) move between cards, ``y``,
    ``n`` and ``u`` mark the current card yes, no or unsure and move on, ``x`` clears,
    space plays. Verdicts are kept in the browser's storage until "Save review.csv"
    downloads ``review.csv`` with them filled in (the same file, byte for byte, but for
    the verdict column). The page is self-contained: no server, no network.

    Parameters
    ----------
    sample : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``, and ``weight`` and ``stratum``
        when present (as :func:`sample_for_review` returns; empty cells otherwise). Files
        are audio paths; relative ones are relative to the current folder.
    out : str or path-like
        The review folder; created if missing.
    context_seconds : float, default=2.0
        Audio kept before and after each detection window.
    overwrite : bool, default=False
        Replace an existing review in ``out``; by default an existing ``review.csv`` (which
        may hold verdicts) is an error.
    verbose : int, default=1
        Show a progress bar over clips when > 0.

    Returns
    -------
    pathlib.Path
        ``out/index.html``, the page to open in a browser. The folder holds:

        - ``clips/<review_id>.wav``: mono 16-bit WAV at the recording's sample rate (at
          most 96 kHz; higher rates are resampled to it).
        - ``spectrograms/<review_id>.png``.
        - ``review.csv``: columns :data:`REVIEW_COLUMNS`, one row per clip, in the order
          of ``sample``. ``review_id`` numbers the rows of ``sample`` from ``0001``;
          ``clip`` and ``spectrogram`` are paths relative to ``out``; ``clip_start_s``
          and ``clip_end_s`` are the window's position within the clip; ``verdict`` is
          empty.
        - ``index.html``.
        - ``skipped.csv``, only if some rows were skipped: their detection columns and
          the ``error``.

    Raises
    ------
    ValueError
        If a column is missing, or a time or score is invalid.
    FileExistsError
        If ``out/review.csv`` exists and ``overwrite`` is False.

    Warns
    -----
    SkippedClipsWarning
        When the audio of some rows cannot be read (missing, unreadable, shorter than the
        table says): they are left out of the review, listed in the warning and in
        ``skipped.csv``, and the others are exported. The weights of the rows kept are
        unchanged: a skipped row's share of its stratum is then unreviewed, as an
        unanswered one would be.

    Examples
    --------
    >>> import tempfile, soundfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> soundfile.write(folder / "dawn.wav", np.zeros(16000 * 6, dtype=np.float32), 16000)
    >>> sample = pd.DataFrame({"file": [str(folder / "dawn.wav")], "start_s": [1.0],
    ...     "end_s": [4.0], "label": ["wren"], "confidence": [0.8]})
    >>> page = export_review(sample, folder / "review", verbose=0)
    >>> review = read_review(folder / "review" / "review.csv")
    >>> review.loc[0, "clip"], float(review.loc[0, "clip_start_s"])
    ('clips/0001.wav', 1.0)
    """
    from tqdm.auto import tqdm

    rows = _checked_detections(sample, "sample")
    for column in ("weight", "stratum"):
        if column not in rows:
            rows[column] = np.nan
    if not (isinstance(context_seconds, numbers.Real) and 0 <= context_seconds < np.inf):
        raise ValueError(f"context_seconds must be a finite number >= 0; got {context_seconds!r}.")
    out = Path(out)
    review_path = out / "review.csv"
    if review_path.exists() and not overwrite:
        raise FileExistsError(
            f"{review_path}: a review exists there (it may hold verdicts); choose another "
            "folder, or pass overwrite=True to replace it."
        )
    for folder in ("clips", "spectrograms"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(rows))))
    records, skipped = [], []
    progress = tqdm(
        rows.itertuples(index=False),
        total=len(rows),
        desc="review clips",
        unit="clip",
        disable=not verbose,
    )
    for position, row in enumerate(progress):
        review_id = f"{position + 1:0{width}d}"
        label = "" if pd.isna(row.label) else str(row.label)
        try:
            clip, sample_rate, clip_offset_s = _cut_clip(
                row.file, row.start_s, row.end_s, float(context_seconds)
            )
        except (AudioError, OSError) as error:
            skipped.append({**{name: getattr(row, name) for name in DETECTION_COLUMNS},
                            "error": str(error)})  # fmt: skip
            continue
        clip_duration_s = len(clip) / sample_rate
        clip_start_s = min(max(row.start_s - clip_offset_s, 0.0), clip_duration_s)
        clip_end_s = min(max(row.end_s - clip_offset_s, clip_start_s), clip_duration_s)
        clip_name, image_name = f"clips/{review_id}.wav", f"spectrograms/{review_id}.png"
        _write_wav(out / clip_name, clip, sample_rate)
        _write_spectrogram(
            out / image_name, clip, sample_rate, (clip_start_s, clip_end_s), label, row.confidence
        )
        records.append(
            {
                "review_id": review_id,
                "file": row.file,
                "start_s": row.start_s,
                "end_s": row.end_s,
                "label": label,
                "confidence": row.confidence,
                "weight": row.weight,
                "stratum": row.stratum,
                "clip": clip_name,
                "clip_start_s": clip_start_s,
                "clip_end_s": clip_end_s,
                "spectrogram": image_name,
                "verdict": "",
            }
        )
    review = pd.DataFrame(records, columns=list(REVIEW_COLUMNS))
    cells = _review_cells(review)
    atomic_write_text(review_path, _csv_lines(",".join(REVIEW_COLUMNS), cells))
    skipped_path = out / "skipped.csv"
    skipped_path.unlink(missing_ok=True)  # from an earlier export
    if skipped:
        table = pd.DataFrame(skipped, columns=[*DETECTION_COLUMNS, "error"])
        table_cells = [
            [_csv_cell(str(value)) if isinstance(value, str) else str(value) for value in row]
            for row in table.itertuples(index=False)
        ]
        atomic_write_text(skipped_path, _csv_lines(",".join(table.columns), table_cells))
        listed = "; ".join(
            f"{entry['file']} {entry['start_s']:g}-{entry['end_s']:g} s: {entry['error']}"
            for entry in skipped[:5]
        )
        warnings.warn(
            SkippedClipsWarning(
                f"{len(skipped)} of {len(rows)} detection(s) left out of the review, their "
                f"audio could not be read (listed in {skipped_path}): {listed}"
                f"{' ...' if len(skipped) > 5 else ''}",
                table,
            ),
            stacklevel=2,
        )
    page = out / "index.html"
    atomic_write_text(page, _page_html(review, cells))
    return page


# -- reading verdicts back --------------------------------------------------------------


def _number_column(values: pd.Series, column: str, path: Path, review_ids) -> np.ndarray:
    numbers_ = np.full(len(values), np.nan)
    for row, text in enumerate(values):
        text = text.strip()
        if not text:
            continue
        try:
            numbers_[row] = float(text)
        except ValueError:
            raise ValueError(
                f"{path}: data row {row + 1} (review_id {review_ids[row]!r}): {column} is "
                f"{text!r}; expected a number."
            ) from None
    return numbers_


def read_review(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``review.csv`` written by :func:`export_review`, its verdicts filled in or not.

    Parameters
    ----------
    path : str or path-like
        The file: the one :func:`export_review` wrote, the one the review page saves, or
        either edited in a spreadsheet (extra columns are kept).

    Returns
    -------
    pandas.DataFrame
        The columns :data:`REVIEW_COLUMNS` first, then any others (as text). Text cells
        lose the ``'`` that marks them (see :mod:`sklearn_birdaudio.tables`); labels are
        ``int`` when all are plain integers, as :func:`~sklearn_birdaudio.read_detections`
        reads them. ``stratum`` is ``int`` when no cell is empty. ``verdict`` is ``"yes"``,
        ``"no"``, ``"unsure"`` or ``""`` (not reviewed); ``y``, ``n``, ``u``, ``1``, ``0``,
        ``true`` and ``false`` are accepted in any case, with spaces around.

    Raises
    ------
    ValueError
        If the file is not UTF-8 text, a column is missing, a number is malformed, or a
        verdict is none of the above: the message names the file, the data row (counted
        from 1 after the header), its ``review_id`` and the value.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "review.csv"
    >>> _ = path.write_text(",".join(REVIEW_COLUMNS) + "\\n"
    ...     "0001,a.wav,1.0,4.0,wren,0.8,2.5,3,clips/0001.wav,1.0,4.0,spectrograms/0001.png,Y\\n")
    >>> row = read_review(path).iloc[0]
    >>> row["label"], float(row["weight"]), int(row["stratum"]), row["verdict"]
    ('wren', 2.5, 3, 'yes')
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: is not UTF-8 text ({error}).") from error
    table = _read_delimited(text, path, ",", REVIEW_COLUMNS)
    for column in table.columns:
        table[column] = table[column].map(_csv_cell_text)
    review_ids = table["review_id"].tolist()
    for column in NUMBER_COLUMNS:
        table[column] = _number_column(table[column], column, path, review_ids)
    stratum = _number_column(table["stratum"], "stratum", path, review_ids)
    whole = np.isfinite(stratum).all() and (stratum == np.round(stratum)).all()
    table["stratum"] = stratum.astype(np.int64) if whole else stratum
    labels = table["label"]
    if len(labels) and labels.str.fullmatch(_CANONICAL_INTEGER).all():
        with contextlib.suppress(OverflowError):  # integers beyond 64 bits stay text
            table["label"] = labels.astype("int64")
    verdicts = []
    for row, value in enumerate(table["verdict"]):
        verdict = VERDICTS.get(value.strip().lower())
        if verdict is None:
            raise ValueError(
                f"{path}: data row {row + 1} (review_id {review_ids[row]!r}): verdict "
                f"{value!r} is not one of yes, no, unsure (or y/n/u, 1/0, true/false, any "
                "case), or empty for not reviewed."
            )
        verdicts.append(verdict)
    table["verdict"] = verdicts
    others = [column for column in table.columns if column not in REVIEW_COLUMNS]
    return table.loc[:, [*REVIEW_COLUMNS, *others]].reset_index(drop=True)
