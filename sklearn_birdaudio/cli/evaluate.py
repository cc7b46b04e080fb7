"""``birdaudio evaluate``: a model's scores on labelled recordings, overall and per class."""

from __future__ import annotations

import numpy as np

from ..composition import final_estimator
from .data import (
    failed_recording,
    load_data,
    manifest_columns,
    print_skipped,
    readable_recordings,
    resolve_data,
)
from .errors import EXIT_OK, EXIT_PARTIAL
from .models import load_fitted_model


def run(args) -> int:
    """Run ``birdaudio evaluate``: mAP, padded cmAP, F1, top-1 and per-class AP on its parsed
    command line ``args``.

    Returns the exit code: ``EXIT_OK``, or ``EXIT_PARTIAL`` when unreadable recordings
    were left out (``--strict`` aborts instead).
    """
    from sklearn.metrics import average_precision_score

    from ..datasets import load_manifest
    from ..metrics import f1_at_threshold, mean_average_precision, padded_cmap, top1_accuracy

    model = load_fitted_model(args.model, allow_pickle=args.allow_pickle)
    classes = [str(label) for label in model.classes_]
    data = resolve_data(args.data, "evaluate")
    X, Y, _ = load_data(
        data, classes=classes, split=args.split, split_column=args.split_column, command="evaluate"
    )
    split = f" (split {args.split!r})" if args.split is not None else ""
    print(f"Data: {len(X)} recordings from {data}{split}")
    X = list(X)
    _, _, skipped = readable_recordings(X, Y, strict=args.strict, action="evaluate")
    front_end = model.steps[0][1] if hasattr(model, "steps") else None
    if front_end is not None and "verbose" in front_end.get_params(deep=False):
        front_end.set_params(verbose=args.verbose)  # a progress bar while it reads the audio
    scores, skipped = _scores(model, X, skipped, strict=args.strict)
    left_out = {file for file, _ in skipped}
    keep = np.asarray([str(file) not in left_out for file in X])
    Y = Y.iloc[np.flatnonzero(keep)]
    targets = np.asarray(Y)
    # Top-1 is against the primary species where the manifest names one.
    primary = targets
    if data.is_file() and {"primary_label", "secondary_labels"} <= set(manifest_columns(data)):
        _, primary, _ = load_manifest(
            data,
            label_columns="primary_label",
            split=args.split,
            split_column=args.split_column,
            classes=classes,
        )
        primary = np.asarray(primary)[keep]
    labelled = np.asarray(primary).sum(axis=1) > 0
    threshold = args.threshold if args.threshold is not None else final_estimator(model).threshold
    rows = [
        ("macro mAP", mean_average_precision(targets, scores, average="macro")),
        ("micro mAP", mean_average_precision(targets, scores, average="micro")),
        ("padded cmAP", padded_cmap(targets, scores)),
        (f"micro F1 @ {threshold:g}", f1_at_threshold(targets, scores, threshold=threshold)),
    ]
    if labelled.any():
        rows.append(("top-1 accuracy", top1_accuracy(primary[labelled], scores[labelled])))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:.3f}")
    species = "primary species" if primary is not targets else "species (or one of them)"
    print(
        "padded cmAP: BirdCLEF's padded class-wise mAP, the macro mAP after 5 rows that are "
        "positive and scored 1 for every class are appended (every class has positives; it "
        f"reads higher than macro mAP). top-1: share of recordings whose best-scored class is "
        f"their {species}."
    )
    print("\nAverage precision per class (recordings with it):")
    for column, label in enumerate(classes):
        positives = int(targets[:, column].sum())
        if positives:
            precision = average_precision_score(targets[:, column], scores[:, column])
            print(f"  {label:<30} {precision:.3f}  ({positives})")
        else:
            print(f"  {label:<30}   n/a  (0: no recording has it)")
    if args.pr_curve:
        from ..plotting import plot_precision_recall

        figure = plot_precision_recall(targets, scores, classes=classes)
        args.pr_curve.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.pr_curve, dpi=100)
        print(f"Precision-recall curves: {args.pr_curve}")
    if skipped:
        print_skipped(skipped, "evaluate", "the scores")
        return EXIT_PARTIAL
    return EXIT_OK


def _scores(model, X: list, skipped: list, *, strict: bool):
    """The model's scores of the readable recordings of ``X``, and all those left out.

    ``skipped`` lists the recordings whose header could not be read; one that fails once
    its audio is decoded is added to them and the others are scored again, unless
    ``strict``.
    """
    from ..audio import AudioError

    skipped = list(skipped)
    while True:
        left_out = {file for file, _ in skipped}
        readable = [file for file in X if str(file) not in left_out]
        try:
            return np.asarray(model.predict_proba(readable)), skipped
        except AudioError as error:
            file = failed_recording(error, readable)
            if strict or file is None or len(readable) == 1:
                raise
            skipped.append((file, str(error).removeprefix(f"{file}: ")))
