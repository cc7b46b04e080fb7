"""``birdaudio review``: sample detections per species into a review folder.

The sample (:func:`~sklearn_birdaudio.review.sample_for_review`) and the folder of clips,
spectrograms, ``review.csv`` and ``index.html``
(:func:`~sklearn_birdaudio.review.export_review`) are the library's; this module finds
the tables, checks that their audio files are there and reports what was left out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import EXIT_OK, EXIT_PARTIAL, CommandError


def run(args) -> int:
    """Run ``birdaudio review`` on its parsed command line ``args``.

    Returns the exit code: ``EXIT_OK``, or ``EXIT_PARTIAL`` when the audio of some
    detections could not be read.
    """
    import warnings

    from ..review import SkippedClipsWarning, export_review, sample_for_review

    detections = _review_detections(args.detections)
    sample = sample_for_review(
        detections,
        n_per_species=args.per_species,
        n_bins=args.bins,
        strategy=args.strategy,
        threshold=args.threshold,
        min_confidence=args.min_confidence,
        species=args.species,
        random_state=args.seed,
    )
    if sample.empty:
        raise CommandError(
            f"none of the {len(detections)} detections scores --min-confidence "
            f"{args.min_confidence} or more."
        )
    missing = sorted({file for file in sample["file"] if not os.path.isfile(file)})
    if missing:
        listed = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise CommandError(
            f"{len(missing)} audio file(s) of the sampled detections not found: {listed}. "
            "Tables name their audio files as predict was given them: run review from the "
            f"folder predict ran in (this is {os.getcwd()}). Audacity label tracks do not "
            "name their audio file: review csv or raven tables."
        )
    counts = sample.attrs["n_detections"]
    drawn = sample["label"].astype(str).value_counts()
    how = (
        f"stratified over {args.bins} score bins from {sample.attrs['bin_edges'][0]:g}"
        if args.strategy == "stratified"
        else f"nearest the threshold {args.threshold:g}"
    )
    print(f"Sample: {len(sample)} detections of {len(counts)} species ({how}, seed {args.seed}):")
    for label, count in counts.items():
        print(f"  {label}: {drawn.get(label, 0)} of {count}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedClipsWarning)
            page = export_review(
                sample,
                args.out,
                context_seconds=args.context,
                overwrite=args.overwrite,
                verbose=args.verbose,
            )
    except FileExistsError as error:
        raise CommandError(f"{error} (--overwrite replaces it)") from None
    skipped = None
    for warning in caught:
        if isinstance(warning.message, SkippedClipsWarning):
            skipped = warning.message.skipped
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    n_clips = len(sample) - (0 if skipped is None else len(skipped))
    print(
        f"Review folder {args.out}: {n_clips} clips (clips/), their spectrograms "
        "(spectrograms/), review.csv and index.html"
    )
    print(
        f"Open {page} in a browser ({page.resolve().as_uri()}): j/k move, y/n/u mark yes, "
        "no, unsure; then 'Save review.csv' downloads the table with the verdicts."
    )
    if skipped is None:
        return EXIT_OK
    print(
        f"birdaudio review: {len(skipped)} detection(s) left out, their audio could not be "
        f"read (listed in {Path(args.out) / 'skipped.csv'}):",
        file=sys.stderr,
    )
    for row in skipped.itertuples(index=False):
        print(f"  {row.file} {row.start_s:g}-{row.end_s:g} s: {row.error}", file=sys.stderr)
    return EXIT_PARTIAL


def _review_detections(paths: list[Path]):
    """The detections of the tables given, and of the tables at the top of folders given:
    ``*.csv``, ``*.selections.txt`` and ``*.labels.txt``, not hidden ones."""
    import pandas as pd

    from ..tables import read_detections

    tables = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                file
                for pattern in ("*.csv", "*.selections.txt", "*.labels.txt")
                for file in path.glob(pattern)
                if file.is_file() and not file.name.startswith(".")
            )
            if not found:
                raise CommandError(
                    f"{path}: no detection tables (*.csv, *.selections.txt, *.labels.txt) in "
                    "this folder."
                )
            tables += found
        elif path.is_file():
            tables.append(path)
        else:
            raise CommandError(f"{path}: detection table or folder not found.")
    detections = pd.concat([read_detections(table) for table in tables], ignore_index=True)
    print(f"Detections: {len(detections)} in {len(tables)} table(s)")
    if detections.empty:
        raise CommandError("the tables hold no detections to review.")
    return detections
