"""Accuracy on real birds: fit on the xeno-canto train split, score the test split once.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/accuracy.py [--quick] [--validation] [--seeds 3] [--design]
        [--set cnn__max_epochs=40 ...] [--save outputs/cnn.joblib] [--docs docs/benchmarks.md]

Fits the pipeline (``MelSpectrogramTransformer(duration=None)`` + ``AttentionCNNClassifier``
with :func:`sklearn_birdaudio.recipes.small_data_recipe`, changed by ``--set KEY=VALUE``)
on the 225 ``train`` recordings of ``../shared/data/xc-puerto-rico`` (23 species; targets:
primary + secondary labels) and scores the 71 ``test`` recordings: macro and micro mAP,
padded cmAP, micro F1 at 0.5, top-1 accuracy of the primary label, subset accuracy,
per-species AP, with a 95 % bootstrap interval over test recordings (1,000 resamples), and
the same scores on the training recordings (the design's training accuracy). In the same
run it fits the classical reference, logistic regression on per-band log-mel mean,
standard deviation and 90th percentile, on the same features.

- ``--seeds N`` trains N networks (seeds 0 to N-1, default 3) as the package's
  ``VotingClassifier`` and reports each member and the ensemble; ``--seeds 1`` trains one.
- ``--quick`` trains the recipe for 6 epochs of 2 crops (a smoke run of a few minutes).
- ``--validation`` tunes without touching ``test``: it fits on 80 % of the train
  recordings and scores the other 20 % (stratified by primary label, seed 0).
- ``--design`` fits the design's defaults instead of the recipe: ``AttentionCNNClassifier()``
  as it comes (64 filters, dropout 0.5, 5-s crops, early stopping on the validation mAP of
  20 % held out), the "default CNN" of the Pareto figure (``pareto.py``); with ``--docs``
  its tables go between the ``accuracy-design`` markers.
- ``--save`` writes the fitted pipeline with joblib (``embeddings.py --cnn`` reads it).
- ``--docs`` writes the tables between the ``accuracy`` markers of the given Markdown file.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from _measure import publish
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    VotingClassifier,
    load_manifest,
    valid_frames,
)
from sklearn_birdaudio.metrics import (
    f1_at_threshold,
    mean_average_precision,
    padded_cmap,
    top1_accuracy,
)
from sklearn_birdaudio.recipes import small_data_recipe

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MANIFEST = DATA / "xc-puerto-rico" / "labels.csv"
QUICK = {"cnn__max_epochs": 6, "cnn__crops_per_recording": 2}  # with --seeds 1: ~1 min
REFERENCES = {  # measured on these machines, same split and targets (from the issue)
    "BirdNET v2.4, zero-shot (max over 3-s windows)": (0.775, 0.690, 0.789),
}


def parse_assignment(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def band_statistics(spectrograms: np.ndarray) -> np.ndarray:
    """Per-band mean, standard deviation and 90th percentile over each recording's audio."""
    rows = []
    for spectrogram, valid in zip(spectrograms, valid_frames(spectrograms), strict=True):
        frames = spectrogram[0][:, valid]
        rows.append(
            np.concatenate(
                [frames.mean(axis=1), frames.std(axis=1), np.percentile(frames, 90, axis=1)]
            )
        )
    return np.asarray(rows)


def scores_of(targets, primary, probabilities) -> dict[str, float]:
    return {
        "macro mAP": mean_average_precision(targets, probabilities),
        "micro mAP": mean_average_precision(targets, probabilities, average="micro"),
        "padded cmAP": padded_cmap(targets, probabilities),
        "micro F1 @ 0.5": f1_at_threshold(targets, probabilities, threshold=0.5),
        "top-1 (primary)": top1_accuracy(primary, probabilities),
        "subset accuracy": float(np.mean(np.all((probabilities >= 0.5) == targets, axis=1))),
    }


def validation_indices(primary_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``--validation``'s split of train: 80 % to fit, 20 % to score (stratified by primary
    label, seed 0), as indices."""
    return train_test_split(
        np.arange(len(primary_train)), test_size=0.2, random_state=0,
        stratify=primary_train.argmax(axis=1),
    )  # fmt: skip


def bootstrap_interval(targets, probabilities, n_resamples=1000, seed=0) -> tuple[float, float]:
    """95 % interval of the macro mAP over resampled test recordings."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        rows = rng.integers(0, len(targets), len(targets))
        if targets[rows].sum(axis=0).max() == 0:
            continue
        values.append(mean_average_precision(targets[rows], probabilities[rows]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small network, a few epochs")
    parser.add_argument(
        "--set", type=parse_assignment, action="append", default=[], metavar="KEY=VALUE",
        help="a pipeline parameter, e.g. --set cnn__max_epochs=40",
    )  # fmt: skip
    parser.add_argument(
        "--validation", action="store_true",
        help="score 20 %% of the train recordings instead of the test split (for tuning)",
    )  # fmt: skip
    parser.add_argument("--cache", type=Path, default=Path("outputs/cache"), help="features")
    parser.add_argument(
        "--design", action="store_true",
        help="the design's defaults (AttentionCNNClassifier() as it comes), not the recipe",
    )  # fmt: skip
    parser.add_argument("--docs", type=Path, help="Markdown file with accuracy markers")
    parser.add_argument("--save", type=Path, help="joblib file for the fitted pipeline")
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="networks (seeds 0, 1, ...) in a VotingClassifier (default 3; 1: one network)",
    )
    args = parser.parse_args()

    X_train, Y_train, species = load_manifest(MANIFEST, split="train", as_frame=True)
    X_test, Y_test, _ = load_manifest(MANIFEST, split="test", classes=species)
    _, primary, _ = load_manifest(
        MANIFEST, label_columns="primary_label", split="test", classes=species
    )
    _, primary_train, _ = load_manifest(
        MANIFEST, label_columns="primary_label", split="train", classes=species
    )
    if args.validation:
        fit, held_out = validation_indices(primary_train)
        X_test, Y_test = [X_train[i] for i in held_out], Y_train.iloc[held_out]
        primary = primary_train[held_out]
        X_train, Y_train = [X_train[i] for i in fit], Y_train.iloc[fit]
        primary_train = primary_train[fit]
    recipe = {f"cnn__{key}": value for key, value in small_data_recipe().items()}
    recipe = {} if args.design else recipe
    settings = {**recipe, **(QUICK if args.quick else {}), **dict(args.set)}
    pipeline = Pipeline(
        [
            ("mel", MelSpectrogramTransformer(duration=None, memory=args.cache)),
            ("cnn", AttentionCNNClassifier(random_state=0, verbose=1)),
        ]
    ).set_params(**settings)

    start = time.perf_counter()
    features_train = pipeline.named_steps["mel"].transform(X_train)
    features_test = pipeline.named_steps["mel"].transform(X_test)
    feature_seconds = time.perf_counter() - start
    network = pipeline.named_steps["cnn"]
    if args.seeds > 1:  # the package's VotingClassifier trains one network per seed
        members = [(f"seed {seed}", clone(network).set_params(random_state=seed))
                   for seed in range(args.seeds)]  # fmt: skip
        pipeline.steps[-1] = ("cnn", VotingClassifier(members))
    start = time.perf_counter()
    model = pipeline.named_steps["cnn"].fit(features_train, Y_train)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    probabilities = model.predict_proba(features_test)
    predict_seconds = time.perf_counter() - start
    first = model.estimators_[0] if args.seeds > 1 else model
    seed_rows = {
        f"one network (random_state={seed})": member.predict_proba(features_test)
        for seed, member in enumerate(model.estimators_ if args.seeds > 1 else [])
    }
    # The same fitted network, its windows aggregated the other way (a prediction setting).
    aggregation = first.aggregation
    other = "mean" if aggregation == "max" else "max"
    seed_rows[f"one network (random_state=0), windows aggregated by {other}"] = first.set_params(
        aggregation=other
    ).predict_proba(features_test)
    first.set_params(aggregation=aggregation)
    training_fit = scores_of(
        np.asarray(Y_train), primary_train, model.predict_proba(features_train)
    )
    if args.save:
        joblib.dump(pipeline, args.save)

    statistics = make_pipeline(
        StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000))
    ).fit(band_statistics(features_train), np.asarray(Y_train))
    classical = statistics.predict_proba(band_statistics(features_test))

    targets = np.asarray(Y_test)
    ours = scores_of(targets, primary, probabilities)
    reference = scores_of(targets, primary, classical)
    low, high = bootstrap_interval(targets, probabilities)
    epochs = len(first.history_)
    scored_on = "20 % of train (validation)" if args.validation else "test"
    name = f"ensemble of {args.seeds} seeds (VotingClassifier)" if args.seeds > 1 else "one network"

    def cells(scores, bold=False):
        return " | ".join(
            f"**{value:.3f}**" if bold else f"{value:.3f}" for value in scores.values()
        )

    lines = [
        f"2-core {platform.processor() or platform.machine()} ({os.cpu_count()} cores), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads. Settings: "
        f"{settings or 'none (the classifier as it comes: the design)'}; "
        f"{epochs} epochs; scored on {scored_on}. Wall time: features {feature_seconds:.0f} s, "
        f"training {train_seconds:.0f} s, prediction {predict_seconds:.0f} s.",
        "",
        "| model | " + " | ".join(ours) + " |",
        "|---|" + "---|" * len(ours),
        f"| **AttentionCNN pipeline, {name}** | {cells(ours, bold=True)} |",
        *(f"| {row} | {cells(scores_of(targets, primary, p))} |" for row, p in seed_rows.items()),
        f"| logistic regression on band statistics (same run) | {cells(reference)} |",
    ]
    for reference_name, (macro, f1, top1) in REFERENCES.items():
        lines.append(
            f"| {reference_name} (reference) | {macro:.3f} | | | {f1:.3f} | {top1:.3f} | |"
        )
    lines += [
        "",
        f"The design's performance table ({name}): accuracy is the top-1 accuracy of the "
        "primary label and the subset accuracy (every species of the recording, and no "
        "other, at 0.5).",
        "",
        f"| | training ({len(X_train)} recordings) | {scored_on} ({len(X_test)} recordings) |",
        "|---|---|---|",
        *(
            f"| {metric} | {training_fit[metric]:.3f} | {ours[metric]:.3f} |"
            for metric in ("top-1 (primary)", "subset accuracy", "micro F1 @ 0.5", "macro mAP")
        ),
    ]
    lines += [
        "",
        f"Macro mAP 95 % percentile bootstrap interval over test recordings: [{low:.3f}, "
        f"{high:.3f}] (a resample lacking a rare species skips it, which biases the interval "
        "towards the common species' AP).",
        "",
        "| species | test recordings | AP |",
        "|---|---|---|",
    ]
    for column, name in enumerate(species):
        positives = int(targets[:, column].sum())
        value = (
            f"{average_precision_score(targets[:, column], probabilities[:, column]):.3f}"
            if positives
            else "n/a"
        )
        lines.append(f"| {name} | {positives} | {value} |")
    text = "\n".join(lines) + "\n"
    publish(text, args.docs, "accuracy-design" if args.design else "accuracy")


if __name__ == "__main__":
    main()
