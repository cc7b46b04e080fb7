"""The review folder: clips, spectrograms, ``review.csv`` and the page that takes verdicts.

:func:`export_review` writes it for a sample of detections (usually
:func:`~sklearn_birdaudio.review.sample_for_review`'s): one audio clip and one spectrogram
per detection, ``review.csv`` (the columns :data:`REVIEW_COLUMNS`) and ``index.html``, a page
that plays each clip, takes verdicts from the keyboard and saves ``review.csv`` with them
filled in. The page is the bundled ``review_page.html`` with ``review_page.js`` inline and
the rows as JSON data; it needs no server or network. Text cells of ``review.csv`` are
written by :mod:`sklearn_birdaudio.text_cells`, so any label or file name reads back exactly
(:func:`~sklearn_birdaudio.review.read_review`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ._validation import check_real
from .audio import AudioError, audio_info, load_audio
from .table_formats import COLUMNS
from .table_writers import atomic_write_text, check_detections
from .text_cells import CONTROL_CHARACTER, csv_cell, csv_number_cells, delimited_text

__all__ = ["REVIEW_COLUMNS", "SkippedClipsWarning", "check_scored_detections", "export_review"]

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
# Clips keep their file's sample rate up to this; higher rates (bat detectors) are
# resampled to it, which every browser plays and which keeps all of a bird's band.
MAX_CLIP_SAMPLE_RATE = 96000
SPECTROGRAM_FIGSIZE = (6.0, 2.6)
SPECTROGRAM_DPI = 80


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


def check_scored_detections(detections: pd.DataFrame, name: str = "detections") -> pd.DataFrame:
    """Check detections to review: a detection table with scores and times that make sense.

    Parameters
    ----------
    detections : pandas.DataFrame
        Columns ``file, start_s, end_s, label, confidence``; other columns are kept.
    name : str, default="detections"
        What error messages call the table.

    Returns
    -------
    pandas.DataFrame
        The table as :func:`~sklearn_birdaudio.tables.check_detections` gives it (other
        columns kept).

    Raises
    ------
    ValueError
        As :func:`~sklearn_birdaudio.tables.check_detections`, or if a score is outside
        [0, 1] or NaN, or a row does not span ``0 <= start_s < end_s``, both finite.

    Examples
    --------
    >>> check_scored_detections(pd.DataFrame({"file": ["a.wav"], "start_s": [0.0],
    ...     "end_s": [3.0], "label": ["wren"], "confidence": [1.5]}))
    Traceback (most recent call last):
    ...
    ValueError: detections['confidence'] holds 1.5 (row 0); expected scores between 0 and 1 \
(an Audacity label without ';score' reads as NaN).
    """
    rows = check_detections(detections, name, other_columns=True)
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


def _display_text(text: str) -> str:
    """Text for a matplotlib figure: controls shown as escapes, ``$`` never math."""
    shown = CONTROL_CHARACTER.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
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
    columns = {name: [csv_cell(str(value)) for value in review[name]] for name in TEXT_COLUMNS}
    for name in NUMBER_COLUMNS:
        columns[name] = csv_number_cells(review[name])
    columns["stratum"] = ["" if pd.isna(value) else str(int(value)) for value in review["stratum"]]
    return [list(cells) for cells in zip(*(columns[name] for name in REVIEW_COLUMNS), strict=True)]


def _csv_lines(header: str, cells: list[list[str]]) -> str:
    """The text of a CSV table: ``header`` (a line, as it is), then the rows of cells."""
    return delimited_text([header], cells, ",")


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

    For each row of ``sample`` (detections, usually from
    :func:`~sklearn_birdaudio.review.sample_for_review`), the window plus
    ``context_seconds`` on each side (less at the start and end of the recording) is cut
    from its audio file into a clip, and its log-mel spectrogram drawn with the window
    shaded and boxed, the label and score in the title. ``index.html``
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
        when present (as :func:`~sklearn_birdaudio.review.sample_for_review` returns;
        empty cells otherwise). Files are audio paths; relative ones are relative to the
        current folder.
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
    >>> from sklearn_birdaudio.review import read_review
    >>> review = read_review(folder / "review" / "review.csv")
    >>> review.loc[0, "clip"], float(review.loc[0, "clip_start_s"])
    ('clips/0001.wav', 1.0)
    """
    from tqdm.auto import tqdm

    rows = check_scored_detections(sample, "sample")
    for column in ("weight", "stratum"):
        if column not in rows:
            rows[column] = np.nan
    check_real(
        context_seconds, "context_seconds", min_val=0,
        message=f"context_seconds must be a finite number >= 0; got {context_seconds!r}.",
    )  # fmt: skip
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
            skipped.append({**{name: getattr(row, name) for name in COLUMNS},
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
        table = pd.DataFrame(skipped, columns=[*COLUMNS, "error"])
        table_cells = [
            [csv_cell(str(value)) if isinstance(value, str) else str(value) for value in row]
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
