"""Accuracy on real birds: fit on the xeno-canto train split, score the test split once.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/accuracy.py [--quick] [--set cnn__max_epochs=40 ...]
                                            [--docs docs/benchmarks.md]

Fits the pipeline (``MelSpectrogramTransformer(duration=None)`` + ``AttentionCNNClassifier``
with the package defaults, changed by ``--set KEY=VALUE``) on the 225 ``train`` recordings
of ``../shared/data/xc-puerto-rico`` (23 species; targets: primary + secondary labels)
and scores the 71 ``test`` recordings: macro and micro mAP, padded cmAP, micro F1 at 0.5,
top-1 accuracy of the primary label, subset accuracy, per-species AP, with 95 % bootstrap
intervals over test recordings (1,000 resamples). In the same run it fits the classical
reference, logistic regression on per-band log-mel mean, standard deviation and 90th
percentile, on the same features. ``--quick`` trains a small network briefly (a smoke
run of a few minutes). ``--validation`` tunes without touching ``test``: it fits on 80 %
of the train recordings and scores the other 20 % (stratified by primary label, seed 0).
``--docs`` writes the tables between the ``accuracy`` markers of
the given Markdown file.
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
from _measure import write_between_markers
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    load_manifest,
    valid_frames,
)
from sklearn_birdaudio.metrics import (
    f1_at_threshold,
    mean_average_precision,
    padded_cmap,
    top1_accuracy,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MANIFEST = DATA / "xc-puerto-rico" / "labels.csv"
QUICK = {"cnn__module__base_filters": 16, "cnn__max_epochs": 6}
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
        "micro F1 @ 0.5": f1_at_threshold(targets, probabilities, 0.5),
        "top-1 (primary)": top1_accuracy(primary, probabilities),
        "subset accuracy": float(np.mean(np.all((probabilities >= 0.5) == targets, axis=1))),
    }


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
    parser.add_argument("--docs", type=Path, help="Markdown file with accuracy markers")
    parser.add_argument("--save", type=Path, help="joblib file for the fitted pipeline")
    args = parser.parse_args()

    X_train, Y_train, species = load_manifest(MANIFEST, split="train", as_frame=True)
    X_test, Y_test, _ = load_manifest(MANIFEST, split="test", classes=species)
    _, primary, _ = load_manifest(
        MANIFEST, label_columns="primary_label", split="test", classes=species
    )
    if args.validation:
        _, primary_train, _ = load_manifest(
            MANIFEST, label_columns="primary_label", split="train", classes=species
        )
        fit, held_out = train_test_split(
            np.arange(len(X_train)), test_size=0.2, random_state=0,
            stratify=primary_train.argmax(axis=1),
        )  # fmt: skip
        X_test, Y_test = [X_train[i] for i in held_out], Y_train.iloc[held_out]
        primary = primary_train[held_out]
        X_train, Y_train = [X_train[i] for i in fit], Y_train.iloc[fit]
    settings = {**(QUICK if args.quick else {}), **dict(args.set)}
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
    start = time.perf_counter()
    pipeline.named_steps["cnn"].fit(features_train, Y_train)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    probabilities = pipeline.named_steps["cnn"].predict_proba(features_test)
    predict_seconds = time.perf_counter() - start
    network = pipeline.named_steps["cnn"]
    other = {"max": "mean", "mean": "max"}[network.aggregation]
    # The same fitted network, its windows aggregated the other way (a prediction setting).
    other_probabilities = network.set_params(aggregation=other).predict_proba(features_test)
    network.set_params(aggregation={"max": "mean", "mean": "max"}[other])
    if args.save:
        joblib.dump(pipeline, args.save)

    statistics = make_pipeline(
        StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000))
    ).fit(band_statistics(features_train), np.asarray(Y_train))
    classical = statistics.predict_proba(band_statistics(features_test))

    targets = np.asarray(Y_test)
    ours = scores_of(targets, primary, probabilities)
    reference = scores_of(targets, primary, classical)
    otherwise = scores_of(targets, primary, other_probabilities)
    low, high = bootstrap_interval(targets, probabilities)
    history = pipeline.named_steps["cnn"].history_

    lines = [
        f"2-core {platform.processor() or platform.machine()} ({os.cpu_count()} cores), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads. Settings: "
        f"{settings or 'package defaults'}; {len(history)} epochs; scored on "
        f"{'20 % of train (validation)' if args.validation else 'test'}. Wall time: features "
        f"{feature_seconds:.0f} s, training {train_seconds:.0f} s, prediction "
        f"{predict_seconds:.0f} s.",
        "",
        "| model | " + " | ".join(ours) + " |",
        "|---|" + "---|" * len(ours),
        "| **AttentionCNN pipeline** | "
        + " | ".join(f"**{value:.3f}**" for value in ours.values())
        + " |",
        f"| the same network, windows aggregated by {other} | "
        + " | ".join(f"{value:.3f}" for value in otherwise.values())
        + " |",
        "| logistic regression on band statistics (same run) | "
        + " | ".join(f"{value:.3f}" for value in reference.values())
        + " |",
    ]
    for name, (macro, f1, top1) in REFERENCES.items():
        lines.append(f"| {name} (reference) | {macro:.3f} | | | {f1:.3f} | {top1:.3f} | |")
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
    print(text)
    if args.docs:
        write_between_markers(args.docs, "accuracy", text)
        print(f"Written to {args.docs}")


if __name__ == "__main__":
    main()
