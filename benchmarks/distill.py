"""Distillation: the student network taught by the BirdNET ensemble, on the xeno-canto split.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/distill.py [--validation] [--set student__cnn__max_epochs=30]
        [--unlabelled] [--ablation] [--seeds 1,2,3] [--teacher]
        [--save outputs/distilled.safetensors]
        [--docs docs/benchmarks.md]

Fits :class:`~sklearn_birdaudio.DistilledClassifier` (the default teacher,
:func:`~sklearn_birdaudio.distillation.birdnet_teacher`, and student,
:func:`~sklearn_birdaudio.distillation.make_student`, changed by ``--set KEY=VALUE``) on
the 225 ``train`` recordings of ``../shared/data/xc-puerto-rico`` and scores the 71
``test`` recordings once, with the same scores and 95 % bootstrap interval as
``accuracy.py``. The fit's wall time includes the teacher's (BirdNET's embeddings are
cached in ``--cache``; the first run fills it: an empty folder gives a cold fit).

- ``--validation`` tunes without touching ``test``: fit on 80 % of the train recordings,
  score the other 20 % (stratified by primary label, seed 0, as ``accuracy.py``).
- ``--ablation`` (with ``--validation``) fits one row per setting of :data:`ABLATION`.
- ``--cv`` runs a 5-fold cross-validation over all 296 recordings instead (stratified by
  primary label, seed 0, as ``embeddings.py``): the lower-variance figure, mean and
  standard deviation over folds.
- ``--teacher`` adds three rows: the fitted teacher's scores of the student's windows, max
  over them (what a student that matched its teacher on every window would score: the
  ceiling of imitation), the teacher on whole recordings (as ``embeddings.py``), and the
  student on the recordings it was fitted on (against its held-out score: how much it
  loses in generalising, not in learning).
- ``--unlabelled`` also gives the soundscapes of ``../shared/data/soundscapes`` to the
  teacher as unlabelled audio (they are not in the xeno-canto split).
- ``--seeds 1,2,3`` fits the default student once per seed of its network (the teacher
  and its window scores are the same) and adds the soft vote of them all (the mean of
  their probabilities): how far one fit's scores move with the seed alone, and what an
  ensemble of students would add (at that many times the inference cost).
- ``--fractions 0.5,0.75,1`` (with ``--validation``) is a learning curve: the default
  student fitted on nested subsets of the fit part, that share of each species' recordings
  (by primary label, at least 3), once per ``--seeds`` (1, 2, 3 unless given), and scored
  on the same held-out 45. The teacher is fitted on the subset too: the curve says what
  more labelled recordings of these species are worth to the whole method.
- ``--save`` writes the student with :func:`save_model` (what ``speed.py --distilled``
  and the Pareto figure read): one student, so not with ``--ablation`` or several seeds.
- ``--docs`` writes the table between the ``distill`` markers of the given Markdown file
  (``distill-validation`` with ``--validation``; ``-seeds`` appended with ``--seeds``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from _measure import publish
from accuracy import (
    DATA,
    MANIFEST,
    bootstrap_interval,
    parse_assignment,
    scores_of,
    validation_indices,
)

from sklearn_birdaudio import DistilledClassifier, audio_files, load_manifest, save_model
from sklearn_birdaudio.distillation import make_student

#: The ablation rows (``--ablation``): parameters of DistilledClassifier, by name. Each
#: changes one setting of the base it was measured from: 16 filters, 20 epochs, windows
#: every 1.5 s, soft_weight 0.7 (40 epochs won, and became the default).
BASE = {"student__cnn__max_epochs": 20}
ABLATION = {
    "hard labels only (soft_weight=0)": {**BASE, "soft_weight": 0.0},
    "soft + hard labels (soft_weight=0.7)": BASE,
    "soft labels only (soft_weight=1)": {**BASE, "soft_weight": 1.0},
    "student 32 filters": {**BASE, "student__cnn__module__base_filters": 32},
    "student 64 filters": {**BASE, "student__cnn__module__base_filters": 64},
    "windows every 3 s (half the crops)": {**BASE, "hop_seconds": 3.0},
    "40 epochs (the default now)": {"student__cnn__max_epochs": 40},
    "40 epochs, localised labels (localise_labels=True)": {
        "student__cnn__max_epochs": 40,
        "localise_labels": True,
    },
    "40 epochs, temperature 2": {"student__cnn__max_epochs": 40, "temperature": 2.0},
    "40 epochs, classes half balanced (class_balance=0.5)": {
        "student__cnn__max_epochs": 40,
        "class_balance": 0.5,
    },
    "40 epochs, plus embedding regression (embedding_weight=1)": {
        "student__cnn__max_epochs": 40,
        "embedding_weight": 1.0,
    },
}


#: Rows of the teacher (``--teacher``): its scores of the student's windows, max over them
#: (what a student that matched it on every window would score), and of whole recordings.
TEACHER_WINDOWS = "its teacher on the student's windows, max over them"
TEACHER_RECORDINGS = "its teacher on whole recordings"
#: With ``--teacher``, the student scored on the recordings it was fitted on (max over
#: windows): set against its held-out score, how much of the gap is generalisation.
STUDENT_ON_ITS_TRAINING = "the student on its own training recordings, max over windows"
#: ``--seeds``: the parameter each run sets, the student network's seed.
SEED = "student__cnn__random_state"
TOP_1 = "top-1 (primary)"
#: Rows that are not the student on the held-out recordings (no fit time of their own).
DIAGNOSTIC_ROWS = (TEACHER_WINDOWS, TEACHER_RECORDINGS, STUDENT_ON_ITS_TRAINING)


def fit_and_score(
    params: dict, X_fit, Y_fit, X_score, Y_score, primary, cache, unlabelled, teacher_rows=False,
    primary_fit=None,
):  # fmt: skip
    """Fit one DistilledClassifier; its scores with max and with mean over windows (and,
    with ``teacher_rows``, :data:`DIAGNOSTIC_ROWS`: its teacher's, and its own on the
    recordings it was fitted on, whose primary labels are ``primary_fit``)."""
    model = DistilledClassifier(student=make_student(), memory=cache, random_state=0, verbose=1)
    model.set_params(**params)
    start = time.perf_counter()
    model.fit(X_fit, Y_fit, unlabelled=unlabelled)
    fit_seconds = time.perf_counter() - start
    targets = np.asarray(Y_score)
    configured = model.student_.get_params()["cnn__aggregation"]
    results = {}
    for aggregation in ("max", "mean"):  # how windows make a recording's score: no refit
        model.student_.set_params(cnn__aggregation=aggregation)
        probabilities = model.predict_proba(X_score)
        results[aggregation] = (
            scores_of(targets, primary, probabilities),
            bootstrap_interval(targets, probabilities),
        )
    model.student_.set_params(cnn__aggregation=configured)  # as fitted, for --save
    if teacher_rows:  # what the student is taught, and what its teacher does on its own
        for label, probabilities in (
            (TEACHER_WINDOWS, model.teacher_proba(X_score)),
            (TEACHER_RECORDINGS, model.teacher_.predict_proba(X_score)),
        ):
            results[label] = (
                scores_of(targets, primary, probabilities),
                bootstrap_interval(targets, probabilities),
            )
        fitted_on, probabilities = np.asarray(Y_fit), model.predict_proba(X_fit)
        results[STUDENT_ON_ITS_TRAINING] = (
            scores_of(fitted_on, primary_fit, probabilities),
            bootstrap_interval(fitted_on, probabilities),
        )
    return model, results, fit_seconds


def row(name: str, scores: dict, interval, fit_seconds: float | None, windows) -> str:
    """A table row; a teacher's row has no fit time or windows of its own (``None``)."""
    cells = " | ".join(f"{value:.3f}" for value in scores.values())
    fit = "" if fit_seconds is None else f"{fit_seconds / 60:.1f} min"
    return (
        f"| {name} | {cells} | [{interval[0]:.3f}, {interval[1]:.3f}] | {fit} | "
        f"{'' if windows is None else windows} |"
    )


def settings_of(args) -> str:
    """The ``--set`` parameters as a table's caption names them (``"defaults"`` if none)."""
    return ", ".join(f"{key}={value!r}" for key, value in args.set) or "defaults"


def integers(text: str) -> list[int]:
    """Comma-separated integers (``--seeds``, ``--rows``), e.g. ``"1,2,3"``."""
    return [int(item) for item in text.split(",")]


def fractions(text: str) -> list[float]:
    """Comma-separated shares in (0, 1] (``--fractions``), e.g. ``"0.5,0.75,1"``."""
    values = [float(item) for item in text.split(",")]
    if not all(0 < value <= 1 for value in values):
        raise argparse.ArgumentTypeError(f"fractions must lie in (0, 1], got {text!r}")
    return values


def nested_subset(primary: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of ``fraction`` of each primary label's recordings (at least 3, all if fewer).

    Each species' recordings are shuffled once (by ``seed``) and the first ones taken, so a
    smaller fraction's subset lies inside a larger one's: a learning curve adds recordings.
    """
    rng = np.random.default_rng(seed)
    labels = primary.argmax(axis=1)
    chosen = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = max(int(np.ceil(fraction * len(members))), min(3, len(members)))
        chosen.extend(members[:count])
    return np.sort(np.asarray(chosen))


def learning_curve(args, X_fit, Y_fit, primary_fit, X_score, Y_score, primary, unlabelled):
    """The default student per ``args.fractions`` of the fit recordings and per seed."""
    seeds = args.seeds or [1, 2, 3]
    rows = []
    for fraction in args.fractions:
        subset = nested_subset(primary_fit, fraction)
        scores, seconds, windows = [], [], []
        for seed in seeds:
            model, results, fit_seconds = fit_and_score(
                {**dict(args.set), SEED: seed}, [X_fit[i] for i in subset], Y_fit.iloc[subset],
                X_score, Y_score, primary, args.cache, unlabelled,
            )  # fmt: skip
            scores.append(results["max"][0])
            seconds.append(fit_seconds)
            windows.append(model.n_windows_)
            if len(scores) == 1:  # the teacher is the same for every seed of the student
                teacher = scores_of(
                    np.asarray(Y_score), primary, model.teacher_.predict_proba(X_score)
                )
            last = scores[-1]
            print(f"{fraction:g} of the recordings ({len(subset)}), seed {seed}: macro mAP "
                  f"{last['macro mAP']:.3f}, top-1 {last[TOP_1]:.3f}", flush=True)  # fmt: skip
        each = ", ".join(f"{one['macro mAP']:.3f} / {one[TOP_1]:.3f}" for one in scores)
        means = [np.mean([one[name] for one in scores]) for name in ("macro mAP", TOP_1)]
        rows.append(
            f"| {fraction:g} | {len(subset)} | {np.mean(windows):.0f} | {each} | "
            f"{means[0]:.3f} | {means[1]:.3f} | {teacher['macro mAP']:.3f} / "
            f"{teacher[TOP_1]:.3f} | {np.mean(seconds) / 60:.1f} min |"
        )
        print(rows[-1], flush=True)
    settings = settings_of(args)
    text = "\n".join([
        f"{platform.machine()}, {os.cpu_count()} cores. DistilledClassifier ({settings}), fitted "
        f"on nested subsets of the validation split's fit part (each species' share, at least "
        f"3 recordings; the teacher too) and scored on its 45 held-out recordings, max over "
        f"windows; seeds {', '.join(map(str, seeds))} of the student.", "",
        "| share of the recordings | recordings | windows | macro mAP / top-1 per seed | "
        "mean macro mAP | mean top-1 | its teacher on whole recordings | fit per seed |",
        "|---|---|---|---|---|---|---|---|", *rows,
    ])  # fmt: skip
    publish(text + "\n", args.docs, "distill-validation-curve")


def cross_validate(args) -> None:
    """5-fold CV over all recordings: each fold's student scored on its held-out fifth."""
    from sklearn.model_selection import StratifiedKFold

    X_all, Y_all, species = load_manifest(MANIFEST, as_frame=True)
    _, primary_all, _ = load_manifest(MANIFEST, label_columns="primary_label", classes=species)
    X_all, primary_all = list(X_all), np.asarray(primary_all)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    rows, scores, seconds = [], [], []
    for fold, (train, test) in enumerate(folds.split(X_all, primary_all.argmax(axis=1))):
        _, results, fit_seconds = fit_and_score(
            dict(args.set), [X_all[i] for i in train], Y_all.iloc[train],
            [X_all[i] for i in test], Y_all.iloc[test], primary_all[test], args.cache, None,
        )  # fmt: skip
        scores.append(results)
        seconds.append(fit_seconds)
        for name, (result, _) in results.items():
            print(f"fold {fold}, {name}: macro mAP {result['macro mAP']:.3f}, "
                  f"top-1 {result[TOP_1]:.3f}", flush=True)  # fmt: skip
    names = list(scores[0]["max"][0])
    for aggregation in ("max", "mean"):
        values = {name: [fold[aggregation][0][name] for fold in scores] for name in names}
        cells = " | ".join(f"{np.mean(v):.3f}" for v in values.values())
        spread = np.std(values["macro mAP"])
        rows.append(f"| distilled student, {aggregation} over windows | {cells} | "
                    f"{spread:.3f} | {np.mean(seconds) / 60:.1f} min |")  # fmt: skip
        print(rows[-1], flush=True)
    settings = settings_of(args)
    header = "| model | " + " | ".join(names) + " | macro mAP std over folds | fit per fold |"
    text = "\n".join([
        f"{platform.machine()}, {os.cpu_count()} cores. DistilledClassifier ({settings}), 5-fold "
        "cross-validation over all 296 recordings (stratified by primary label, seed 0; mean "
        "over folds).", "", header, "|---|" + "---|" * (len(names) + 2), *rows,
    ])  # fmt: skip
    publish(text + "\n", args.docs, "distill-cv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validation", action="store_true", help="score 20 %% of train")
    parser.add_argument("--ablation", action="store_true", help="one fit per ABLATION row")
    parser.add_argument("--unlabelled", action="store_true", help="the soundscapes, unlabelled")
    parser.add_argument("--cv", action="store_true", help="5-fold CV over all 296 recordings")
    parser.add_argument(
        "--teacher", action="store_true",
        help="also score the teacher (on the student's windows, max, and on whole recordings) "
        "and the student on its own training recordings",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=integers,
        help="one student per seed (comma-separated), and the soft vote of them all",
    )  # fmt: skip
    parser.add_argument(
        "--rows", type=integers,
        help="with --ablation: only these rows of ABLATION (0-based, comma-separated)",
    )  # fmt: skip
    parser.add_argument(
        "--set", type=parse_assignment, action="append", default=[], metavar="KEY=VALUE",
        help="a DistilledClassifier parameter, e.g. --set student__cnn__max_epochs=30",
    )  # fmt: skip
    parser.add_argument(
        "--fractions", type=fractions,
        help="with --validation: a learning curve over these shares of the fit recordings",
    )  # fmt: skip
    parser.add_argument("--cache", type=Path, default=Path("outputs/cache/birdnet"))
    parser.add_argument("--save", type=Path, help="write the fitted student (save_model)")
    parser.add_argument("--docs", type=Path, help="Markdown file with distill markers")
    args = parser.parse_args()

    X_train, Y_train, species = load_manifest(MANIFEST, split="train", as_frame=True)
    X_test, Y_test, _ = load_manifest(MANIFEST, split="test", classes=species, as_frame=True)
    _, primary, _ = load_manifest(
        MANIFEST, label_columns="primary_label", split="test", classes=species
    )
    _, primary_train, _ = load_manifest(
        MANIFEST, label_columns="primary_label", split="train", classes=species
    )
    X_train, X_test = list(X_train), list(X_test)
    if args.cv:
        cross_validate(args)
        return
    if args.validation:
        fit, held_out = validation_indices(primary_train)
        X_test, Y_test = [X_train[i] for i in held_out], Y_train.iloc[held_out]
        primary, primary_train = primary_train[held_out], primary_train[fit]
        X_train, Y_train = [X_train[i] for i in fit], Y_train.iloc[fit]
    unlabelled = audio_files(DATA / "soundscapes") if args.unlabelled else None
    if args.fractions:
        if not args.validation or args.ablation or args.save:
            parser.error("--fractions needs --validation, and not --ablation or --save")
        learning_curve(args, X_train, Y_train, primary_train, X_test, Y_test, primary, unlabelled)
        return
    cold = not args.cache.exists() or not any(args.cache.iterdir())
    if args.ablation and args.seeds:
        parser.error("--seeds and --ablation are exclusive: the seeds vary the default student")
    if args.save and (args.ablation or (args.seeds and len(args.seeds) > 1)):
        parser.error("--save writes one student: not with --ablation or several --seeds")
    runs = ABLATION if args.ablation else {"distilled student": {}}
    if args.seeds:
        runs = {f"distilled student, seed {seed}": {SEED: seed} for seed in args.seeds}
    if args.rows is not None:
        runs = {name: params for i, (name, params) in enumerate(runs.items()) if i in args.rows}
    rows, model, votes, seed_scores = [], None, [], []
    for index, (name, params) in enumerate(runs.items()):
        diagnostics = args.teacher and not (args.seeds and index)  # the seeds share a teacher
        model, results, seconds = fit_and_score(
            {**params, **dict(args.set)}, X_train, Y_train, X_test, Y_test, primary,
            args.cache, unlabelled, teacher_rows=diagnostics, primary_fit=primary_train,
        )  # fmt: skip
        for aggregation, (scores, interval) in results.items():
            teacher = aggregation in DIAGNOSTIC_ROWS
            label = f"{name}: {aggregation}" if teacher else f"{name}, {aggregation} over windows"
            own = (None, None) if teacher else (seconds, model.n_windows_)
            rows.append(row(label, scores, interval, *own))
            print(rows[-1], flush=True)
        if args.seeds:  # the student as fitted: max over windows
            votes.append(model.predict_proba(X_test))
            seed_scores.append(results["max"][0])
    if args.seeds:
        vote = np.mean(votes, axis=0)
        scores = scores_of(np.asarray(Y_test), primary, vote)
        interval = bootstrap_interval(np.asarray(Y_test), vote)
        label = f"soft vote of the {len(votes)} seeds' students, max over windows"
        rows.append(row(label, scores, interval, None, None))
        print(rows[-1], flush=True)
    if args.save:
        save_model(model, args.save)
        print(f"student saved to {args.save}")
    header = "| model | " + " | ".join(scores) + " | macro mAP 95 % bootstrap | fit | windows |"
    rule = "|---|" + "---|" * (len(scores) + 3)
    where = "20 % of train (validation)" if args.validation else "the 71 test recordings"
    settings = settings_of(args)
    over_seeds = ""
    if seed_scores:
        lows = {name: min(each[name] for each in seed_scores) for name in ("macro mAP", TOP_1)}
        highs = {name: max(each[name] for each in seed_scores) for name in ("macro mAP", TOP_1)}
        over_seeds = (
            f" Over the {len(seed_scores)} seeds of the student (max over windows): macro mAP "
            f"{lows['macro mAP']:.3f} to {highs['macro mAP']:.3f}, top-1 {lows[TOP_1]:.3f} to "
            f"{highs[TOP_1]:.3f}."
        )
        print(over_seeds.strip(), flush=True)
    text = "\n".join(
        [
            f"{platform.machine()}, {os.cpu_count()} cores. DistilledClassifier ({settings}"
            f"{', soundscapes as unlabelled audio' if args.unlabelled else ''}), scored on "
            f"{where}; the fit's wall time includes the teacher's: fitting it (BirdNET "
            f"embeddings of every recording) and its scores of every window, "
            f"{'from an empty cache' if cold else 'with the cache of earlier runs'}."
            f"{over_seeds}",
            "",
            header,
            rule,
            *rows,
        ]
    )
    marker = "distill-validation" if args.validation else "distill"
    publish(text + "\n", args.docs, f"{marker}-seeds" if args.seeds else marker)


if __name__ == "__main__":
    main()
