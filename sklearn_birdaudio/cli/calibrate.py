"""``birdaudio calibrate``: per-species thresholds from reviewed detections.

Fits :class:`~sklearn_birdaudio.calibration.ScoreCalibrator` to the verdicts of a review
table, writes the thresholds table ``predict --thresholds`` reads, prints it, and draws
one calibration figure per species.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from .errors import EXIT_OK, CommandError


def run(args) -> int:
    """Run ``birdaudio calibrate`` on its parsed command line ``args``.

    Returns the exit code: ``EXIT_OK``.
    """
    import warnings

    import matplotlib.pyplot as plt

    from ..calibration import ScoreCalibrator, decided_reviews
    from ..plotting import plot_calibration
    from ..review import read_review
    from ..tables import atomic_write_text

    if not args.review.is_file():
        raise CommandError(f"{args.review}: review file not found.")
    reviews = decided_reviews(read_review(args.review))
    if reviews.empty:
        raise CommandError(f"{args.review}: no review has a 'yes' or 'no' verdict yet.")
    weights = reviews["weight"].to_numpy(dtype=float)
    if not (np.isfinite(weights) & (weights >= 0)).all():
        raise CommandError(
            f"{args.review}: the weight of a reviewed row is missing or negative; expected "
            "the inverse inclusion probabilities 'birdaudio review' writes."
        )
    calibrator = ScoreCalibrator(min_reviews=args.min_reviews).fit(reviews, reviews["verdict"])
    print(
        f"Reviews: {len(reviews)} with a yes/no verdict, of {len(calibrator.species_)} "
        f"species, from {args.review}"
    )
    target_name = "precision" if args.precision is not None else "probability"
    target = args.precision if args.precision is not None else args.probability
    options = {target_name: target, "n_bootstrap": args.bootstrap, "random_state": args.seed}
    if args.detections:
        population = _read_detection_tables(args.detections)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            table = calibrator.thresholds(reviews=population, **options)
        print(f"Precision estimated over {len(population)} detections from --detections")
        for warning in caught:
            print(f"birdaudio calibrate: warning: {warning.message}", file=sys.stderr)
    else:
        table = calibrator.thresholds(sample_weight=weights, **options)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from ..text_cells import spreadsheet_safe

    marked = table.assign(species=[spreadsheet_safe(name) for name in table["species"]])
    atomic_write_text(args.out, marked.to_csv(index=False))
    _print_thresholds(table, target_name, target, calibrator)
    print(f"Thresholds: {args.out} (for 'birdaudio predict --thresholds')")
    if args.no_plots:
        return EXIT_OK
    folder = args.plots or args.out.with_name(f"{args.out.stem}_plots")
    folder.mkdir(parents=True, exist_ok=True)
    names = set()
    for row in table.itertuples(index=False):
        name = re.sub(r"[^\w.-]+", "_", row.species).strip("._") or "species"
        while name in names:  # distinct species that read the same as file names
            name += "_"
        names.add(name)
        figure = plot_calibration(
            calibrator, row.species, reviews, threshold_row=row._asdict(), target=target
        )
        figure.savefig(folder / f"{name}.png", dpi=100)
        plt.close(figure)
    print(f"Calibration plots: {folder} ({len(table)} PNG)")
    return EXIT_OK


def _read_detection_tables(paths: list[Path]):
    """The detections of the tables given, and of the ``*.birdaudio.*`` tables of folders."""
    import pandas as pd

    from ..tables import read_detections

    tables = []
    for path in paths:
        if not path.exists():
            raise CommandError(f"{path}: detection table not found.")
        files = sorted(path.glob("*.birdaudio.*")) if path.is_dir() else [path]
        if not files:
            raise CommandError(f"{path}: no detection tables (*.birdaudio.*) in this folder.")
        for file in files:
            table = read_detections(file)
            if table["confidence"].isna().any():
                raise CommandError(f"{file}: a detection has no confidence.")
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _print_thresholds(table, target_name: str, target: float, calibrator) -> None:
    """The thresholds as a table, then which species use the pooled model and why."""
    level = table.attrs["confidence_level"]
    bootstrapped = table["low"].notna().any()
    interval = f", with {level:.0%} bootstrap intervals" if bootstrapped else ""
    print(f"Thresholds for {target_name} {target:g}{interval} (never: no score reaches it):")
    width = max(7, *(len(name) for name in table["species"]))
    print(f"  {'species':<{width}}  {'n':>5}  {'threshold':>9}  {'interval':<16}  model")
    for row in table.itertuples(index=False):
        threshold = "never" if row.threshold >= 1 else f"{row.threshold:.3f}"
        bounds = f"[{row.low:.3f}, {row.high:.3f}]" if bootstrapped else ""
        model = "pooled" if row.pooled else "own"
        print(
            f"  {row.species:<{width}}  {row.n_reviews:>5}  {threshold:>9}  {bounds:<16}  {model}"
        )
    reasons = {name: "not reviewed" for name in table["species"]}
    reasons = {**reasons, **calibrator.pooled_reasons_}
    pooled = [f"{name} ({reasons[name]})" for name in table["species"][table["pooled"]]]
    if pooled:
        print(f"Pooled model (fitted on every species' reviews) used for: {', '.join(pooled)}")
