"""``birdaudio train``: fit one of the named models on labelled recordings and save it.

Recordings that cannot be read are left out (listed on stderr, exit code 3) unless
``--strict``; reviewed detections (``--reviewed``) join the training data.
"""

from __future__ import annotations

import sys

from ..composition import deployed_model
from .data import (
    drop_recordings,
    failed_recording,
    load_data,
    print_skipped,
    readable_recordings,
)
from .errors import EXIT_OK, EXIT_PARTIAL, CommandError
from .models import MODELS, build_model, save_trained_model


def _check_options(args) -> None:
    """Refuse out-of-range numbers at once, naming the option, before any work."""
    checks = [
        ("--max-epochs", args.max_epochs, lambda value: value >= 1, "an integer >= 1"),
        ("--batch-size", args.batch_size, lambda value: value >= 1, "an integer >= 1"),
        ("--lr", args.lr, lambda value: value > 0, "a number > 0"),
        ("--val-fraction", args.val_fraction, lambda value: 0 <= value < 1, "in [0, 1)"),
        ("--window-seconds", args.window_seconds, lambda value: value > 0, "a number > 0"),
        ("--sample-rate", args.sample_rate, lambda value: value > 0, "an integer > 0"),
    ]
    for option, value, valid, expected in checks:
        if value is not None and not valid(value):
            raise CommandError(f"{option} {value:g}: expected {expected}.")
    if args.reviewed and args.model in ("birdnet", "distilled"):
        raise CommandError(
            "--reviewed: only the AttentionCNN models (--model recipe or cnn-defaults) train "
            "on reviewed detections (their unknown targets need its masked loss)."
        )
    if args.unlabelled is not None and args.model != "distilled":
        raise CommandError(
            "--unlabelled: only --model distilled learns from unlabelled audio (its teacher "
            "labels it)."
        )
    if args.unlabelled is not None and not args.unlabelled.is_dir():
        raise CommandError(f"--unlabelled {args.unlabelled}: folder not found.")


def run(args) -> int:
    """Run ``birdaudio train`` on its parsed command line ``args``.

    Returns the exit code: ``EXIT_OK``, or ``EXIT_PARTIAL`` when recordings were left out.
    """
    reason = "chosen with --model" if args.model else "the default; --model to choose"
    if args.model == "cnn":  # the name before the recipe became the default
        args.model = "cnn-defaults"
        print(
            "birdaudio train: warning: --model cnn is now called cnn-defaults; the old name "
            "will be removed.",
            file=sys.stderr,
        )
    args.model = args.model or "recipe"
    _check_options(args)
    model, front_end = build_model(args)  # checks the --set keys before any data is read
    print(f"Model: {args.model} ({reason}): {MODELS[args.model]}")
    X, Y, classes = load_data(args.data, split=args.split, split_column=args.split_column)
    split = f" (split {args.split!r})" if args.split is not None else ""
    print(f"Data: {len(X)} recordings of {len(classes)} classes from {args.data}{split}")
    X, Y, skipped = readable_recordings(X, Y, strict=args.strict)
    if args.reviewed:
        X, Y = _add_reviewed(args, X, Y, classes)
    skipped += _fit_and_save(model, front_end, args, X, Y)
    if args.model == "birdnet":
        from ..embeddings import LICENSE

        print(f"Trained a logistic regression on BirdNET embeddings; model saved to {args.out}")
        print(f"Licence: {LICENSE}; the saved model falls under it too.")
    else:
        history = deployed_model(model).named_steps["cnn"].history_
        print(f"Trained {len(history)} epochs; model saved to {args.out}")
    if args.model == "distilled":
        print(
            f"Distilled from {model.lineage_['teacher']} ({model.lineage_['windows']}); "
            "the saved student runs without BirdNET."
        )
        if model.lineage_["licence"]:
            print(
                f"Licence: {model.lineage_['licence']} (inherited from BirdNET); the file says so."
            )
    if not skipped:
        return EXIT_OK
    print_skipped(skipped, "train", "training")
    return EXIT_PARTIAL


def _fit_and_save(model, front_end: str, args, X, Y) -> list[tuple[str, str]]:
    """Fit, drop the front end's cache and progress bar, save to --out.

    A recording that fails once its audio is decoded (past a readable header) is left out
    and the model fitted again without it, unless --strict; returns those left out.
    """
    from ..audio import AudioError

    skipped = []
    fit_params = {}
    if args.unlabelled is not None:
        from ..audio import audio_files

        fit_params["unlabelled"] = audio_files(args.unlabelled)
        print(f"Unlabelled: {len(fit_params['unlabelled'])} recordings from {args.unlabelled}")
    while True:
        try:
            model.fit(X, Y, **fit_params)
            break
        except AudioError as error:
            file = failed_recording(error, X)
            if args.strict or file is None or len(X) == 1:
                raise
            print(f"birdaudio train: left out {file}, fitting again: {error}", file=sys.stderr)
            skipped.append((file, str(error).removeprefix(f"{file}: ")))
            X, Y = drop_recordings(X, Y, {file})
    deployed = deployed_model(model)  # a distilled model's student
    deployed.named_steps[front_end].set_params(memory=None, verbose=0)  # not needed to predict
    save_trained_model(model, args.out)
    return skipped


def _add_reviewed(args, X, Y, classes):
    """The training data with the windows of the ``--reviewed`` tables appended."""
    import pandas as pd

    from ..reviewed import reviewed_training_data

    # Waveforms are taken at the front end's rate (--set mel__sample_rate may change it).
    sample_rate = dict(args.set).get("mel__sample_rate", args.sample_rate)
    X_reviewed, Y_reviewed = reviewed_training_data(
        args.reviewed, classes=classes, sample_rate=sample_rate
    )
    positives = int((Y_reviewed == 1).to_numpy().sum())
    negatives = int((Y_reviewed == 0).to_numpy().sum())
    print(
        f"Reviewed: {positives} positives and {negatives} hard negatives from "
        f"{len(args.reviewed)} review file(s), in {len(X_reviewed)} windows"
    )
    new = [label for label in Y_reviewed.columns if label not in set(classes)]
    if new:
        print(f"New classes from the reviews: {', '.join(new)}")
    return [*X, *X_reviewed], pd.concat([Y, Y_reviewed], ignore_index=True)
