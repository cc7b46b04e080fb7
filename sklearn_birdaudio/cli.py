"""The ``birdaudio`` command: train, predict, evaluate, inspect and plot from a shell.

A thin layer over the public API: each sub-command parses its arguments, calls the
package and prints or writes the result. Run ``birdaudio COMMAND --help`` for each.

Model files
-----------
``birdaudio train --out model.safetensors`` saves with
:func:`~sklearn_birdaudio.save_model`: weights and a JSON description, no pickle, safe
to load from anyone. An ``--out`` ending in ``.joblib``, ``.pkl`` or ``.pickle`` writes a
joblib file instead, with a warning: loading a joblib or pickle file runs any code it
contains, so the other commands load one only when given ``--allow-pickle``.

Exit codes
----------
0
    Success.
1
    The command could not run: unreadable model or data, invalid values.
2
    Invalid command line (unknown option, missing argument), as argparse reports it.
3
    ``predict`` finished, but some inputs could not be read, or only part of them: they
    are listed on stderr; the tables of all the others are written, and a file read
    part-way keeps the windows read before the error (marked partial: ``--resume``
    retries it). ``review`` finished, but the audio of some sampled detections could not
    be read: they are listed (``skipped.csv``) and left out of the review. ``train``
    saved a model, but some recordings could not be read: they are listed on stderr and
    the model is trained without them (``--strict`` exits with 1 instead).
130
    Interrupted (Ctrl-C). ``predict`` keeps the tables written so far; ``--resume``
    continues.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from . import __version__

__all__ = ["build_parser", "main"]

logger = logging.getLogger("sklearn_birdaudio.cli")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
# Terminal control sequences (colours, cursor moves): skorch's epoch table colours the best
# values whatever the output is; they are removed from output that is not a terminal.
ANSI_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
FORMATS = ("csv", "raven", "audacity")
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
LABEL_COLUMN_CANDIDATES = (("primary_label", "secondary_labels"), ("labels",), ("label",))


class CommandError(Exception):
    """A failure to report as one line on stderr with exit code 1."""


# -- shared helpers ---------------------------------------------------------------------


def _parse_assignment(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE a Python literal (numbers, None, strings, tuples)."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare word: a string


MANIFEST_NAMES = ("labels.csv", "manifest.csv")


def _find_manifest(folder: Path) -> Path | None:
    """The manifest of a dataset folder: its labels.csv or manifest.csv, or its one *.csv."""
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = [path for path in folder.glob("*.csv") if path.is_file()]
    return found[0] if len(found) == 1 else None


def _manifest_columns(data: Path) -> list[str]:
    """The header of a CSV manifest, or a one-line error naming the file."""
    import pandas as pd

    try:
        return list(pd.read_csv(data, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise CommandError(
            f"{data}: the file is empty; expected a CSV manifest with a header row naming a "
            "'path' column and label columns."
        ) from None
    except (ValueError, pd.errors.ParserError) as error:  # binary, not UTF-8 ...
        raise CommandError(
            f"{data}: cannot be read as a CSV manifest ({type(error).__name__}: {error})."
        ) from None


def _resolve_data(data: Path, command: str) -> Path:
    """The CSV manifest or class folder ``data`` names, checked before any audio is read.

    A dataset folder holding a manifest (``labels.csv``, ``manifest.csv`` or a single
    ``*.csv``) is read through it, and said so; a folder whose only sub-folder is
    ``audio`` is refused: its recordings would all be one class called "audio".
    """
    if not data.exists():
        raise CommandError(
            f"{data}: not found; expected a folder of class sub-folders or a CSV manifest."
        )
    if not data.is_dir():
        if data.suffix.lower() != ".csv":
            raise CommandError(
                f"{data}: expected a folder of class sub-folders or a CSV manifest (.csv)."
            )
        return data
    manifest = _find_manifest(data)
    if manifest is not None:
        print(f"Data: {data} holds the manifest {manifest.name}; reading the labels from it")
        return manifest
    sub_folders = [path.name for path in data.iterdir() if path.is_dir()]
    if sub_folders == ["audio"]:
        raise CommandError(
            f"{data}: its only class sub-folder is 'audio', so every recording would be one "
            f"class called 'audio'; give a CSV manifest of the recordings and their labels "
            f"instead (birdaudio {command} labels.csv, with a 'path' column and label "
            "columns), or a folder with one sub-folder per class."
        )
    return data


def _split_counts(data: Path, split_column: str) -> Counter:
    import pandas as pd

    values = pd.read_csv(data, usecols=[split_column], dtype=str, keep_default_na=False)
    return Counter(values[split_column])


def _check_split(data: Path, columns: list[str] | None, split, split_column, command) -> None:
    """Refuse a --split the data cannot apply; warn when a split column goes unused."""
    if split is not None:
        if columns is None:
            raise CommandError(
                f"--split {split}: {data} is a folder of class sub-folders, which has no "
                f"{split_column!r} column; --split needs a CSV manifest with one."
            )
        if split_column not in columns:
            raise CommandError(
                f"--split {split}: {data} has no {split_column!r} column (--split-column); "
                f"found {columns}."
            )
        counts = _split_counts(data, split_column)
        if split not in counts:
            raise CommandError(
                f"--split {split}: no rows of {data} have {split_column} == {split!r}; its "
                f"{split_column!r} values are {sorted(counts)}."
            )
        return
    if columns is None or split_column not in columns:
        return
    counts = _split_counts(data, split_column)
    if len(counts) < 2:
        return
    described = ", ".join(f"{name}: {count}" for name, count in counts.most_common())
    wanted = "train" if command == "train" else "test"
    if wanted not in counts:
        ranked = [name for name, _ in counts.most_common()]
        wanted = ranked[0] if command == "train" else ranked[-1]
    others = " and ".join(name or "''" for name in counts if name != wanted)
    verb, purpose = (
        ("training on", f"to hold the {others} rows out")
        if command == "train"
        else ("scoring", f"to score only the {wanted} rows")
    )
    print(
        f"birdaudio {command}: warning: {data.name} has a {split_column!r} column "
        f"({described}); {verb} all {sum(counts.values())} rows — pass --split {wanted} "
        f"{purpose}",
        file=sys.stderr,
    )


def _label_columns(data: Path, columns: list[str]) -> tuple[str, ...]:
    for candidate in LABEL_COLUMN_CANDIDATES:
        present = tuple(column for column in candidate if column in columns)
        if present and candidate[0] in present:
            return present
    raise CommandError(
        f"{data}: no label column; expected 'primary_label' (and optionally "
        f"'secondary_labels'), 'labels' or 'label' next to 'path'; found {columns}."
    )


def _load_data(
    data: Path, classes=None, split=None, split_column: str = "split", command: str = "train"
):
    """Recordings and targets of a folder of class sub-folders or a CSV manifest.

    Everything about the layout (missing or empty files, columns, the split) is checked
    from the file system and the CSV header: no audio is read here.
    """
    from .datasets import load_folder, load_manifest

    data = _resolve_data(data, command)
    if data.is_dir():
        _check_split(data, None, split, split_column, command)
        return load_folder(data, classes=classes, as_frame=True)
    columns = _manifest_columns(data)
    if "path" not in columns:
        raise CommandError(
            f"{data}: no 'path' column (the audio files, relative to the manifest's folder); "
            f"found {columns}."
        )
    label_columns = _label_columns(data, columns)
    _check_split(data, columns, split, split_column, command)
    return load_manifest(
        data,
        label_columns=label_columns,
        split=split,
        split_column=split_column,
        classes=classes,
        as_frame=True,
    )


def _load_model(path: Path, allow_pickle: bool = False, dropped: dict | None = None):
    """A fitted model saved by ``birdaudio train`` (or by ``save_model``).

    joblib/pickle files (``joblib.dump`` of a fitted pipeline) only with ``allow_pickle``:
    loading one runs any code it holds. Parameters that the file sets and that act on the
    machine are not restored (:class:`~sklearn_birdaudio.DroppedParameterWarning`): they
    are listed on stderr, or put in ``dropped`` when it is given (``info`` shows them).
    """
    import warnings

    from sklearn.utils.validation import check_is_fitted

    from .persistence import DroppedParameterWarning, load_model

    if not path.is_file():
        raise CommandError(f"{path}: model file not found.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DroppedParameterWarning)
        try:
            model = load_model(path, allow_pickle=allow_pickle)
        except ValueError as error:
            raise CommandError(str(error)) from None
    for warning in caught:
        if isinstance(warning.message, DroppedParameterWarning) and dropped is not None:
            dropped.update(warning.message.dropped)
        elif isinstance(warning.message, DroppedParameterWarning):
            _print_dropped(warning.message.dropped)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise CommandError(f"{path}: holds a {type(model).__name__}, not a fitted classifier.")
    check_is_fitted(model)
    return model


def _print_dropped(dropped: dict) -> None:
    """The parameters a model file set that were not restored, one line each, on stderr."""
    print(
        "birdaudio: not restored from the model file (they act on this machine; defaults "
        "are used):",
        file=sys.stderr,
    )
    for name, (value, reason) in dropped.items():
        print(f"  {name} = {value!r}  ({reason})", file=sys.stderr)


def _classifier(model):
    """The last step of a pipeline (the classifier), or the model itself."""
    return model.steps[-1][1] if hasattr(model, "steps") else model


def _uses_birdnet(model) -> bool:
    """Whether a BirdNET estimator is anywhere in ``model`` (its licence applies)."""
    from .embeddings import BirdNETClassifier, BirdNETEmbedder

    members = [model]
    while members:
        member = members.pop()
        if isinstance(member, (BirdNETEmbedder, BirdNETClassifier)):
            return True
        members += [step for _, step in getattr(member, "steps", [])]
        members += list(getattr(member, "estimators_", []))
    return False


def _read_thresholds(path: Path) -> dict[str, float]:
    """Per-species thresholds from JSON (``{"species": 0.6}``) or CSV.

    A CSV is either two columns, species and threshold (a first line that is not a number
    is a header), or has a header naming ``species`` and ``threshold`` columns among others,
    as ``birdaudio calibrate`` writes: the other columns are ignored, and a species cell
    loses one leading ``'`` (the mark that keeps spreadsheets from running it as a formula).
    """
    if not path.is_file():
        raise CommandError(f"{path}: thresholds file not found.")
    if path.suffix.lower() == ".json":
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise CommandError(f"{path}: expected a JSON object mapping species to thresholds.")
        return {str(label): float(value) for label, value in values.items()}
    import pandas as pd

    try:
        table = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise CommandError(f"{path}: not a CSV of species and thresholds ({error}).") from None
    header = [str(cell).strip().lower() for cell in table.iloc[0]] if len(table) else []
    if "species" in header and "threshold" in header:
        rows = table.iloc[1:, [header.index("species"), header.index("threshold")]]
        rows = [(label.removeprefix("'"), value) for label, value in rows.itertuples(index=False)]
    elif table.shape[1] == 2:
        rows = list(table.itertuples(index=False))
        try:
            float(rows[0][1])
        except ValueError:  # only the first line may be a (non-numeric) header
            rows = rows[1:]
    else:
        raise CommandError(
            f"{path}: expected two columns, species and threshold, or a header naming "
            f"'species' and 'threshold' columns; got {table.shape[1]} columns."
        )
    thresholds = {}
    for label, value in rows:
        try:
            thresholds[label.strip()] = float(value)
        except ValueError:
            raise CommandError(
                f"{path}: threshold {value!r} of {label!r} is not a number."
            ) from None
    return thresholds


# -- sub-commands -----------------------------------------------------------------------


def _save_model(model, out: Path) -> None:
    """Save in the safe format, or with joblib (and a warning) for a pickle suffix."""
    from .persistence import save_model

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() not in PICKLE_SUFFIXES:
        try:
            save_model(model, out)
        except TypeError as error:
            raise CommandError(
                f"{error} To save it anyway, give --out a .joblib name (trusted use only)."
            ) from error
        return
    import joblib

    joblib.dump(model, out)
    print(
        f"birdaudio train: warning: {out} is a joblib (pickle) file: loading it runs any "
        "code it contains, so load it only from a source you trust (the other commands need "
        "--allow-pickle for it). Give --out a .safetensors name for the safe format.",
        file=sys.stderr,
    )


MODELS = {
    "recipe": "the small-data recipe (sklearn_birdaudio.recipes): the package's best own "
    "network, macro mAP 0.623 on the xc-puerto-rico test split, well above the design "
    "defaults",
    "cnn-defaults": "log-mel + AttentionCNN with the classifier's design defaults (64 "
    "filters, dropout 0.5, validation split and early stopping)",
    "birdnet": "BirdNET v2.4 embeddings + logistic regression",
}


def _check_train_options(args) -> None:
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
    if args.reviewed and args.model == "birdnet":
        raise CommandError(
            "--reviewed: only the AttentionCNN models (--model recipe or cnn-defaults) train "
            "on reviewed detections (their unknown targets need its masked loss)."
        )


def _cnn_options(args) -> dict:
    """The classifier parameters given on the command line (the others: the model's)."""
    options = {
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "sample_rate": args.sample_rate,
        "random_state": args.seed,
        "device": args.device,
        "verbose": args.verbose,
    }
    if args.window_seconds is not None:
        options.update(window_seconds=args.window_seconds, overlap_seconds=args.window_seconds / 2)
    if args.val_fraction is not None:
        options["validation_fraction"] = args.val_fraction or None
    return {name: value for name, value in options.items() if value is not None}


def _build_model(args):
    """The untrained pipeline of ``--model`` with ``--set`` applied, and its front end."""
    from sklearn.pipeline import Pipeline

    if args.model == "birdnet":
        from sklearn.preprocessing import StandardScaler

        from .embeddings import BirdNETEmbedder
        from .linear import EmbeddingLogisticRegression

        model = Pipeline(
            [
                ("birdnet", BirdNETEmbedder(memory=args.cache, verbose=args.verbose)),
                ("scale", StandardScaler()),
                ("logistic", EmbeddingLogisticRegression(C=1.0)),
            ]
        )
        front_end = "birdnet"
    elif args.model == "recipe":
        from .recipes import make_small_data_pipeline

        model = make_small_data_pipeline(memory=args.cache)
        model.set_params(**{f"cnn__{name}": value for name, value in _cnn_options(args).items()})
        model.set_params(mel__sample_rate=args.sample_rate, mel__verbose=args.verbose)
        front_end = "mel"
    else:
        from .classifier import AttentionCNNClassifier
        from .features import MelSpectrogramTransformer

        mel = MelSpectrogramTransformer(
            sample_rate=args.sample_rate, duration=None, memory=args.cache, verbose=args.verbose
        )
        model = Pipeline([("mel", mel), ("cnn", AttentionCNNClassifier(**_cnn_options(args)))])
        front_end = "mel"
    for key, value in args.set:
        try:
            model.set_params(**{key: value})
        except ValueError as error:
            # sklearn's message repeats the whole estimator: keep its first and last parts.
            found = re.match(
                r"Invalid parameter (\S+) for estimator (?:<class '[\w.]*?(\w+)'>|(\w+))",
                str(error),
            )
            valid = str(error).rpartition("Valid parameters are: ")[2]
            if found:
                estimator = found[2] or found[3]
                error = f"no parameter {found[1]} in {estimator}; its parameters are {valid}"
            raise CommandError(f"--set {key}={value!r}: {error}") from None
    return model, front_end


def _train(args) -> int:
    reason = "chosen with --model" if args.model else "the default; --model to choose"
    if args.model == "cnn":  # the name before the recipe became the default
        args.model = "cnn-defaults"
        print(
            "birdaudio train: warning: --model cnn is now called cnn-defaults; the old name "
            "will be removed.",
            file=sys.stderr,
        )
    args.model = args.model or "recipe"
    _check_train_options(args)
    model, front_end = _build_model(args)  # checks the --set keys before any data is read
    print(f"Model: {args.model} ({reason}): {MODELS[args.model]}")
    X, Y, classes = _load_data(args.data, split=args.split, split_column=args.split_column)
    split = f" (split {args.split!r})" if args.split is not None else ""
    print(f"Data: {len(X)} recordings of {len(classes)} classes from {args.data}{split}")
    X, Y, skipped = _readable_recordings(X, Y, args.strict)
    if args.reviewed:
        X, Y = _add_reviewed(args, X, Y, classes)
    skipped += _fit_and_save(model, front_end, args, X, Y)
    if args.model == "birdnet":
        from .embeddings import LICENSE

        print(f"Trained a logistic regression on BirdNET embeddings; model saved to {args.out}")
        print(f"Licence: {LICENSE}; the saved model falls under it too.")
    else:
        history = model.named_steps["cnn"].history_
        print(f"Trained {len(history)} epochs; model saved to {args.out}")
    if not skipped:
        return EXIT_OK
    print(
        f"birdaudio train: {len(skipped)} recording(s) could not be read and were left out "
        "of training (--strict aborts instead):",
        file=sys.stderr,
    )
    for file, error in skipped:
        print(f"  {file}: {error}", file=sys.stderr)
    return EXIT_PARTIAL


def _readable_recordings(X, Y, strict: bool):
    """Drop the recordings whose header cannot be read (cheap: no decoding), or with
    ``strict`` refuse them all in one message."""
    from .audio import AudioError, audio_info

    skipped = []
    for file in X:
        try:
            audio_info(file)
        except AudioError as error:
            skipped.append((file, str(error).removeprefix(f"{file}: ")))
    if not skipped:
        return X, Y, []
    if strict or len(skipped) == len(X):
        listed = "; ".join(f"{file}: {error}" for file, error in skipped)
        why = "--strict" if strict else "none is left to train on"
        raise CommandError(f"{len(skipped)} recording(s) cannot be read ({why}): {listed}")
    return (*_drop(X, Y, {file for file, _ in skipped}), skipped)


def _drop(X, Y, files: set):
    """X and Y without the recordings ``files`` (reviewed windows, arrays, are kept)."""
    keep = [index for index, file in enumerate(X) if not (isinstance(file, str) and file in files)]
    return [X[index] for index in keep], Y.iloc[keep].reset_index(drop=True)


def _fit_and_save(model, front_end: str, args, X, Y) -> list[tuple[str, str]]:
    """Fit, drop the front end's cache and progress bar, save to --out.

    A recording that fails once its audio is decoded (past a readable header) is left out
    and the model fitted again without it, unless --strict; returns those left out.
    """
    from .audio import AudioError

    skipped = []
    while True:
        try:
            model.fit(X, Y)
            break
        except AudioError as error:
            failed = [file for file in X if isinstance(file, str) and str(error).startswith(file)]
            if args.strict or not failed or len(failed) == len(X):
                raise
            file = max(failed, key=len)
            print(f"birdaudio train: left out {file}, fitting again: {error}", file=sys.stderr)
            skipped.append((file, str(error).removeprefix(f"{file}: ")))
            X, Y = _drop(X, Y, {file})
    model.named_steps[front_end].set_params(memory=None, verbose=0)  # not needed to predict
    _save_model(model, args.out)
    return skipped


def _add_reviewed(args, X, Y, classes):
    """The training data with the windows of the ``--reviewed`` tables appended."""
    import pandas as pd

    from .reviewed import reviewed_training_data

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


def _predict(args) -> int:
    from .audio import audio_files
    from .detection import detect, quiet_model
    from .runs import PerFileRun, file_sha256
    from .tables import write_detections

    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:  # before the model is loaded: nothing is scored or written
        raise CommandError(f"input(s) not found: {', '.join(missing)}.")
    model = quiet_model(_load_model(args.model, args.allow_pickle))  # copied once, not per file
    thresholds = _read_thresholds(args.thresholds) if args.thresholds else None
    if args.species:
        _check_species(model, args.species)
    combined = bool(args.out.suffix) and not args.out.is_dir()
    if args.resume and combined:
        raise CommandError("--resume needs a folder --out (one table per file).")
    run_files = [
        file
        for source in map(str, args.inputs)
        for file in (audio_files(source) if os.path.isdir(source) else [source])
    ]
    if not run_files:
        raise CommandError(f"no audio files in {[str(path) for path in args.inputs]}.")
    if not combined:
        _make_tables_folder(args.out)
    options = {
        "overlap_seconds": args.overlap,
        "min_confidence": args.min_confidence,
        "thresholds": thresholds,
        "batch_size": args.batch_size,
        # every core by default; a cluster's workers share the files out themselves
        "n_jobs": args.jobs if args.jobs is not None else (None if args.scheduler else -1),
        "verbose": args.verbose,
        "species": args.species or None,
    }
    if combined:
        with _dask_client(args.scheduler) as client:
            detections = detect(model, run_files, client=client, **options)
        written = [write_detections(detections, args.out, format=args.format)]
    else:
        # Each table is written as its file finishes, then its run record, which says what
        # the table covers: --resume redoes every file whose record does not vouch for it.
        settings = {key: options[key] for key in ("min_confidence", "overlap_seconds")}
        if args.species:  # tables of other species are redone by --resume
            settings["species"] = sorted(set(args.species))
        run = PerFileRun(
            run_files,
            args.out,
            args.format,
            model_sha256=file_sha256(args.model),
            settings={**settings, "thresholds": thresholds},
        )
        run.remove_leftovers()  # temporary files of a killed run
        sources = _files_to_redo(run, args.verbose) if args.resume else run_files
        if not sources:
            return EXIT_OK
        written = []
        with _dask_client(args.scheduler) as client:
            detections = detect(
                model,
                sources,
                client=client,
                on_file=lambda part: written.extend(run.write(part)),
                **options,
            )
    errors = detections.attrs.get("errors", [])
    durations = detections.attrs.get("durations", {})
    print(
        f"{len(detections)} detections in {len(durations)} file(s); {len(written)} table(s) "
        f"written to {args.out}"
    )
    for entry in errors:
        file, error = entry["file"], entry["error"]
        if file in durations:
            print(
                f"birdaudio: incomplete {file}: only its first {durations[file]:g} s were "
                f"scored (kept, marked partial: --resume retries it): {error}",
                file=sys.stderr,
            )
        else:
            print(f"birdaudio: skipped {file}: {error}", file=sys.stderr)
    return EXIT_PARTIAL if errors else EXIT_OK


def _check_species(model, species: list[str]) -> None:
    """A one-line error naming the model's classes when a --species name is not one."""
    classes = [str(label) for label in model.classes_]
    unknown = [name for name in dict.fromkeys(species) if name not in classes]
    if unknown:
        raise CommandError(
            f"--species: {', '.join(unknown)} not among the model's {len(classes)} classes: "
            f"{', '.join(classes)}."
        )


def _make_tables_folder(out: Path) -> None:
    """Create the folder of per-file tables, or say in one line why ``out`` cannot be one."""
    expected = (
        "expected --out to be a folder (one table per audio file) or a file name with an "
        "extension (e.g. detections.csv) for one combined table"
    )
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out}: exists and is not a folder; {expected}.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"{out}: cannot create this folder ({error.strerror}); {expected}."
        raise CommandError(message) from error


def _files_to_redo(run, verbose: int) -> list[str]:
    """The files ``--resume`` scores: one line says how many are skipped and why the others
    are redone; ``-v`` lists each of them with its reason."""
    reasons = run.redo_reasons()
    redo = [file for file, reason in reasons.items() if reason is not None]
    counts = Counter(reasons[file] for file in redo)
    line = f"Resuming: {len(reasons) - len(redo)} of {len(reasons)} file(s) complete, skipped"
    if redo:
        why = ", ".join(f"{count} {reason}" for reason, count in counts.items())
        line += f"; {len(redo)} to score ({why})"
    print(f"{line}.")
    if verbose > 1:
        for file in redo:
            print(f"  redo {file}: {reasons[file]}")
    return redo


@contextlib.contextmanager
def _dask_client(address: str | None):
    """A Dask client connected to the scheduler at ``address``; None when not given."""
    if address is None:
        yield None
        return
    from .distributed import import_extra

    distributed = import_extra("distributed")
    try:
        client = distributed.Client(address, timeout="30s")
    except OSError as error:
        raise CommandError(f"cannot reach the Dask scheduler at {address}: {error}") from error
    with client:
        yield client


def _evaluate(args) -> int:
    from sklearn.metrics import average_precision_score

    from .datasets import load_manifest
    from .metrics import f1_at_threshold, mean_average_precision, padded_cmap, top1_accuracy

    model = _load_model(args.model, args.allow_pickle)
    classes = [str(label) for label in model.classes_]
    data = _resolve_data(args.data, "evaluate")
    X, Y, _ = _load_data(
        data, classes=classes, split=args.split, split_column=args.split_column, command="evaluate"
    )
    split = f" (split {args.split!r})" if args.split is not None else ""
    print(f"Data: {len(X)} recordings from {data}{split}")
    front_end = model.steps[0][1] if hasattr(model, "steps") else None
    if front_end is not None and "verbose" in front_end.get_params(deep=False):
        front_end.set_params(verbose=args.verbose)  # a progress bar while it reads the audio
    scores = np.asarray(model.predict_proba(X))
    targets = np.asarray(Y)
    # Top-1 is against the primary species where the manifest names one.
    primary = targets
    if data.is_file() and {"primary_label", "secondary_labels"} <= set(_manifest_columns(data)):
        _, primary, _ = load_manifest(
            data,
            label_columns="primary_label",
            split=args.split,
            split_column=args.split_column,
            classes=classes,
        )
    labelled = np.asarray(primary).sum(axis=1) > 0
    threshold = args.threshold if args.threshold is not None else _classifier(model).threshold
    rows = [
        ("macro mAP", mean_average_precision(targets, scores, average="macro")),
        ("micro mAP", mean_average_precision(targets, scores, average="micro")),
        ("padded cmAP", padded_cmap(targets, scores)),
        (f"micro F1 @ {threshold:g}", f1_at_threshold(targets, scores, threshold)),
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
        from .plotting import plot_precision_recall

        figure = plot_precision_recall(targets, scores, classes=classes)
        args.pr_curve.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.pr_curve, dpi=100)
        print(f"Precision-recall curves: {args.pr_curve}")
    return EXIT_OK


def _info(args) -> int:
    dropped = {}
    model = _load_model(args.model, args.allow_pickle, dropped=dropped)
    if dropped:  # on stderr, as every command that loads a model lists them
        _print_dropped(dropped)
    summary = _model_summary(model, args.model, dropped)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    return EXIT_OK


def _estimators_in(model) -> list:
    """``model`` and the estimators inside it: pipeline steps and ensemble members."""
    found, members = [], [model]
    while members:
        member = members.pop(0)
        found.append(member)
        steps = [step for _, step in getattr(member, "steps", [])]
        members += [step for step in steps if step not in (None, "passthrough")]
        members += list(getattr(member, "estimators_", []))
    return found


def _front_end(members: list) -> dict | None:
    """What the model takes: a log-mel's settings, or what BirdNET says it takes."""
    from .features import MelSpectrogramTransformer

    windows = [
        member.window_seconds
        for member in members
        if isinstance(getattr(member, "window_seconds", None), (int, float))
    ]
    for member in members:
        if isinstance(member, MelSpectrogramTransformer):
            return {
                "kind": "log-mel spectrogram",
                "sample_rate": member.sample_rate,
                "input_sample_rate": member.input_sample_rate,
                "n_mels": member.n_mels,
                "fmin": member.fmin,
                "fmax": member.fmax if member.fmax is not None else member.sample_rate / 2,
                "window_seconds": windows[0] if windows else None,
                "clip_seconds": member.duration,
            }
        if hasattr(member, "_audio_settings"):
            rate, window, _, (fmin, fmax) = member._audio_settings()
            return {
                "kind": "BirdNET v2.4 embeddings",
                "sample_rate": rate,
                "window_seconds": window,
                "fmin": fmin,
                "fmax": fmax,
            }
    return None


def _network(classifier, members: list) -> dict:
    """The number of weights in the model file, and the network's own settings."""
    n_weights = 0
    for member in members:
        if hasattr(member, "module_"):
            n_weights += sum(parameter.numel() for parameter in member.module_.parameters())
        elif not hasattr(member, "estimators_"):
            n_weights += sum(
                int(np.size(getattr(member, name)))
                for name in ("coef_", "intercept_")
                if hasattr(member, name)
            )
    settings = {
        name.removeprefix("module__"): value
        for name, value in classifier.get_params(deep=False).items()
        if name.startswith("module__")
    }
    module = getattr(classifier, "module_", None)
    return {
        "n_weights": n_weights,
        "module": None if module is None else type(module).__name__,
        "settings": settings,
    }


def _training(classifier) -> dict | None:
    """Epochs, best validation scores and the training examples of a skorch history."""
    history = getattr(classifier, "history_", None)
    if not history:
        return None
    training = {"epochs": len(history)}
    for key, best in (("valid_loss", np.nanargmin), ("valid_mAP", np.nanargmax)):
        if key in history[-1]:
            values = np.asarray(history[:, key], dtype=float)
            if not np.isnan(values).all():
                index = int(best(values))
                training[f"best_{key}"] = {"value": float(values[index]), "epoch": index + 1}
    if "train_loss" in history[-1]:
        training["last_train_loss"] = float(history[-1]["train_loss"])
    # The batches of an epoch hold each training example once (one window of a recording).
    examples = sum(batch.get("train_batch_size", 0) for batch in history[0].get("batches", []))
    if examples:
        training["training_examples_per_epoch"] = int(examples)
    return training


def _model_summary(model, path: Path, dropped: dict) -> dict:
    """What ``info`` shows: kind, classes, front end, network, training, licence, versions."""
    import sklearn
    import skorch
    import torch

    members = _estimators_in(model)
    classifier = _classifier(model)
    steps = [[name, type(step).__name__] for name, step in getattr(model, "steps", [])]
    summary = {
        "model": str(path),
        "kind": type(model).__name__,
        "steps": steps,
        "classes": [str(label) for label in model.classes_],
        "front_end": _front_end(members),
        "network": _network(classifier, members),
        "training": _training(classifier),
        "not_restored": {
            name: {"value": repr(value), "reason": reason}
            for name, (value, reason) in dropped.items()
        },
        "licence": None,
        "versions": {
            "sklearn-birdaudio": __version__,
            "torch": torch.__version__,
            "scikit-learn": sklearn.__version__,
            "skorch": skorch.__version__,
            "numpy": np.__version__,
        },
    }
    if _uses_birdnet(model):
        from .embeddings import LICENSE

        summary["licence"] = LICENSE
    return summary


def _print_summary(summary: dict) -> None:
    import textwrap

    print(f"Model: {summary['model']}")
    steps = " -> ".join(f"{name} ({kind})" for name, kind in summary["steps"])
    print(f"Kind: {summary['kind']}" + (f": {steps}" if steps else ""))
    classes = summary["classes"]
    print(
        textwrap.fill(
            ", ".join(classes),
            width=88,
            initial_indent=f"Classes ({len(classes)}): ",
            subsequent_indent="  ",
            break_on_hyphens=False,
        )
    )
    front_end = summary["front_end"]
    if front_end:
        line = f"Front end: {front_end['kind']} at {front_end['sample_rate']} Hz"
        if front_end.get("input_sample_rate"):
            line += f" (arrays taken at {front_end['input_sample_rate']} Hz)"
        if front_end.get("n_mels"):
            line += f", {front_end['n_mels']} mel bands"
        line += f", {front_end['fmin']:g}-{front_end['fmax']:g} Hz"
        if front_end.get("window_seconds") is not None:
            line += f"; windows of {front_end['window_seconds']:g} s"
        if "clip_seconds" in front_end:
            clip = front_end["clip_seconds"]
            line += "; clips: " + ("whole recordings" if clip is None else f"{clip:g} s")
        print(line)
    network = summary["network"]
    settings = ", ".join(f"{name}={value!r}" for name, value in network["settings"].items())
    module = f"{network['module']}, " if network["module"] else ""
    print(
        f"Network: {module}{network['n_weights']:,} weights in the file"
        + (f" ({settings})" if settings else "")
    )
    training = summary["training"]
    if training:
        parts = [f"{training['epochs']} epochs"]
        for key, name in (("best_valid_loss", "validation loss"), ("best_valid_mAP", "mAP")):
            if key in training:
                best = training[key]
                parts.append(f"best validation {name.split()[-1]} {best['value']:.4f} "
                             f"(epoch {best['epoch']})")  # fmt: skip
        if "training_examples_per_epoch" in training:
            parts.append(f"{training['training_examples_per_epoch']} training examples per epoch")
        print("Training: " + "; ".join(parts))
    if summary["not_restored"]:
        dropped = [
            f"{name} = {entry['value']} ({entry['reason']})"
            for name, entry in summary["not_restored"].items()
        ]
        print("Not restored from the model file (defaults used): " + "; ".join(dropped))
    if summary["licence"]:
        print(f"Licence: {summary['licence']}; embeddings and models built on them fall under it.")
    print(
        "Versions: " + ", ".join(f"{name} {value}" for name, value in summary["versions"].items())
    )


def _plot(args) -> int:
    from .audio import audio_info
    from .features import MelSpectrogramTransformer
    from .plotting import plot_detections

    if not args.audio.is_file():
        raise CommandError(f"{args.audio}: audio file not found.")
    if not (np.isfinite(args.start) and args.start >= 0):
        raise CommandError(f"--start must be a number of seconds >= 0, got {args.start:g}.")
    if not (np.isfinite(args.duration) and args.duration > 0):
        raise CommandError(
            f"--duration must be a positive number of seconds, got {args.duration:g}."
        )
    length_s = audio_info(args.audio).duration_seconds
    if args.start >= length_s:
        raise CommandError(
            f"--start {args.start:g} s is past the end of {args.audio} ({length_s:g} s)."
        )
    duration_s = min(args.duration, length_s - args.start)
    detections = scores = None
    mel = MelSpectrogramTransformer(duration=None)
    if args.model:
        model = _load_model(args.model, args.allow_pickle)
        if hasattr(model, "steps") and isinstance(model.steps[0][1], MelSpectrogramTransformer):
            mel = model.steps[0][1]
        detections, scores = _detect_part(model, args, duration_s)
    figure = plot_detections(
        args.audio,
        detections=detections,
        scores=scores,
        mel=mel,
        start_s=args.start,
        duration_s=duration_s,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    end_s = args.start + duration_s
    rest = "" if end_s >= length_s else f" (of {length_s:g} s: --start and --duration draw others)"
    print(f"Figure: {args.out}, {args.start:g}-{end_s:g} s{rest}")
    return EXIT_OK


def _detect_part(model, args, duration_s: float):
    """detect and window_scores of the part drawn only, at the file's times.

    Scoring starts at the window that holds ``--start`` on the grid predict uses (windows
    from 0 s, no overlap), so the boxes are predict's; only that part of the file is read.
    """
    import dataclasses

    from .audio import audio_info, load_audio
    from .detection import detect, window_scores

    members = _estimators_in(model)
    windows = [
        member.window_seconds
        for member in members
        if isinstance(getattr(member, "window_seconds", None), (int, float))
    ]
    windows += [m._audio_settings()[1] for m in members if hasattr(m, "_audio_settings")]
    window_s = float(windows[0]) if windows and windows[0] else 0.0
    begin_s = np.floor(args.start / window_s) * window_s if window_s else args.start
    rate = audio_info(args.audio).sample_rate
    waveform = load_audio(
        args.audio,
        sample_rate=rate,
        offset_seconds=begin_s,
        duration_seconds=args.start + duration_s - begin_s,
    )
    detections = detect(
        model, [waveform], min_confidence=args.min_confidence, input_sample_rate=rate, verbose=0
    )
    detections = detections.assign(
        file=str(args.audio),
        start_s=detections["start_s"] + begin_s,
        end_s=detections["end_s"] + begin_s,
    )
    scores = window_scores(model, waveform, input_sample_rate=rate)
    scores = dataclasses.replace(
        scores, start_s=scores.start_s + begin_s, end_s=scores.end_s + begin_s
    )
    return detections, scores


def _calibrate(args) -> int:
    import warnings

    import matplotlib.pyplot as plt

    from .calibration import ScoreCalibrator, decided_reviews
    from .plotting import plot_calibration
    from .review import read_review
    from .tables import atomic_write_text

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
    marked = table.assign(species=[_spreadsheet_safe(name) for name in table["species"]])
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

    from .tables import read_detections

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


def _spreadsheet_safe(text: str) -> str:
    """A text cell marked with a leading ``'`` where a spreadsheet could run it."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r", "'")) else text


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


def _review(args) -> int:
    import warnings

    from .review import SkippedClipsWarning, export_review, sample_for_review

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

    from .tables import read_detections

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


# -- the parser -------------------------------------------------------------------------


def _add_split_options(sub: argparse.ArgumentParser, verb: str) -> None:
    sub.add_argument(
        "--split", metavar="NAME",
        help=f"{verb} only the manifest rows whose --split-column is NAME (e.g. train, "
        "test); without it, a manifest with that column is read whole, with a warning",
    )  # fmt: skip
    sub.add_argument(
        "--split-column", default="split", metavar="COLUMN",
        help="the manifest column naming each row's split (default: split)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``birdaudio`` argument parser, with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="birdaudio",
        description="Train bird-sound classifiers and detect birds in recordings.",
        epilog="Exit codes: 0 success, 1 error, 2 invalid command line, 3 some inputs were "
        "skipped (predict, review, train), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, loads_model: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument(
            "-q", "--quiet", dest="verbose", action="store_const", const=0, default=1,
            help="no progress bars or epoch logs",
        )  # fmt: skip
        if loads_model:
            sub.add_argument(
                "--allow-pickle", action="store_true",
                help="also load joblib/pickle model files, which run any code they contain: "
                "only for files from a source you trust",
            )  # fmt: skip
        return sub

    train = command("train", "Train a classifier on labelled recordings and save it.")
    train.add_argument(
        "data", type=Path,
        help="a folder of class sub-folders (root/<species>/<file>) or a CSV manifest with "
        "a 'path' column and 'primary_label'/'secondary_labels', 'labels' or 'label' "
        "columns of ';'-separated labels",
    )  # fmt: skip
    train.add_argument(
        "--out", type=Path, required=True,
        help="where to save the model, e.g. model.safetensors (the safe format: no pickle); "
        "a .joblib, .pkl or .pickle name writes a joblib file, which runs code when loaded",
    )  # fmt: skip
    train.add_argument(
        "--model", choices=("recipe", "cnn-defaults", "birdnet", "cnn"), default=None,
        help="recipe (default): log-mel + AttentionCNN with the small-data recipe "
        "(sklearn_birdaudio.recipes), the package's best own network (macro mAP 0.623 on "
        "xc-puerto-rico's test split); cnn-defaults: the classifier's design defaults (64 "
        "filters, validation split and early stopping; much weaker on small data); birdnet: "
        "BirdNET v2.4 embeddings + logistic regression (the birdnet extra; the BirdNET model "
        "is CC BY-NC-SA 4.0; --set logistic__C=0.3 sets its C, default 1); cnn: deprecated "
        "name of cnn-defaults",
    )  # fmt: skip
    _add_split_options(train, "train on")
    train.add_argument(
        "--strict", action="store_true",
        help="abort (exit 1) when a recording cannot be read; by default unreadable ones are "
        "listed on stderr, the model is trained on the others and saved, and the exit code "
        "is 3",
    )  # fmt: skip
    train.add_argument(
        "--max-epochs", type=int, help="default: the model's (recipe 30, cnn-defaults 50)"
    )
    train.add_argument(
        "--window-seconds", type=float, help="default: the model's (5, overlapping by half)"
    )
    train.add_argument(
        "--val-fraction", type=float,
        help="share held out for validation and early stopping, in [0, 1); 0 trains on all "
        "(default: the model's: recipe 0, cnn-defaults 0.2)",
    )  # fmt: skip
    train.add_argument("--batch-size", type=int, help="default: the model's (32)")
    train.add_argument(
        "--lr", type=float, help="learning rate (default: the model's: recipe 2e-3, else 1e-3)"
    )
    train.add_argument("--sample-rate", type=int, default=32000, help="Hz (default 32000)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    train.add_argument("--cache", type=Path, help="folder to cache spectrograms in")
    train.add_argument(
        "--set", type=_parse_assignment, action="append", default=[], metavar="KEY=VALUE",
        help="any pipeline parameter, e.g. --set cnn__module__base_filters=32 "
        "--set mel__n_mels=64 (repeatable)",
    )  # fmt: skip
    train.add_argument(
        "--reviewed", type=Path, action="append", default=[], metavar="REVIEW_CSV",
        help="a review table written by 'birdaudio review' (repeatable): its windows join "
        "the training data, 'yes' rows as positives of their label and 'no' rows as hard "
        "negatives; 'unsure' and empty rows are skipped, the other classes of a window are "
        "unknown (left out of the loss), a label not among the classes becomes a new class",
    )  # fmt: skip
    train.set_defaults(run=_train)

    predict = command(
        "predict", "Detect species in recordings and write detection tables.", loads_model=True
    )
    predict.add_argument("model", type=Path, help="a model saved by 'birdaudio train'")
    predict.add_argument(
        "inputs", type=Path, nargs="+", help="audio files or folders (searched recursively)"
    )
    predict.add_argument(
        "--out", type=Path, required=True,
        help="a folder (one table per audio file), or a file name with an extension "
        "(e.g. detections.csv, selections.txt) for one combined table",
    )  # fmt: skip
    predict.add_argument("--format", choices=FORMATS, default="csv", help="default: csv")
    predict.add_argument(
        "--min-confidence", type=float, default=0.1, help="report from this score (default 0.1)"
    )
    predict.add_argument(
        "--overlap", type=float, default=0.0, help="window overlap in seconds (default 0)"
    )
    predict.add_argument(
        "--thresholds", type=Path,
        help="per-species thresholds: JSON {\"species\": 0.6} or CSV 'species,threshold' lines",
    )  # fmt: skip
    predict.add_argument(
        "--resume", action="store_true",
        help="score only the files not yet done in the --out folder: a file is skipped when "
        "its table's run record (in --out/.birdaudio-records/) names it, matches its size "
        "and modification time, this model and settings, says complete and hashes the table "
        "as it is; missing, partial, stale, edited or truncated tables are redone",
    )  # fmt: skip
    predict.add_argument(
        "-v", "--verbose", dest="verbose", action="store_const", const=2, default=1,
        help="with --resume, also list each file scored again and why",
    )  # fmt: skip
    predict.add_argument("--batch-size", type=int, default=64, help="windows scored at once")
    predict.add_argument(
        "--jobs", type=int, default=None,
        help="files scored at once, in threads (default -1: one per core, or the cluster's "
        "workers with --scheduler; 1: one at a time)",
    )  # fmt: skip
    predict.add_argument(
        "--species", nargs="+", action="extend", metavar="NAME",
        help="report only these classes of the model (default: all); a name the model "
        "does not have is an error that lists its classes",
    )  # fmt: skip
    predict.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="score the files on a Dask cluster, e.g. tcp://10.0.0.5:8786 (needs the dask "
        "extra; the workers must see the same paths); exclusive with --jobs",
    )  # fmt: skip
    predict.set_defaults(run=_predict)

    evaluate = command(
        "evaluate", "Score a model on labelled recordings (mAP, F1, per class).", loads_model=True
    )
    evaluate.add_argument("model", type=Path, help="a model saved by 'birdaudio train'")
    evaluate.add_argument("data", type=Path, help="a folder of class sub-folders or a manifest")
    _add_split_options(evaluate, "score")
    evaluate.add_argument("--threshold", type=float, help="for F1 (default: the model's)")
    evaluate.add_argument("--pr-curve", type=Path, help="save precision-recall curves (PNG)")
    evaluate.set_defaults(run=_evaluate)

    info = command(
        "info", "Show a model's classes, parameters, training and versions.", loads_model=True
    )
    info.add_argument("model", type=Path, help="a model saved by 'birdaudio train'")
    info.add_argument("--json", action="store_true", help="print the same summary as JSON")
    info.set_defaults(run=_info)

    plot = command(
        "plot",
        "Draw a recording's spectrogram, with detections if a model is given.",
        loads_model=True,
    )
    plot.add_argument("audio", type=Path, help="an audio file")
    plot.add_argument("--model", type=Path, help="a model saved by 'birdaudio train'")
    plot.add_argument("--out", type=Path, required=True, help="the figure (PNG)")
    plot.add_argument(
        "--start", type=float, default=0.0, metavar="SECONDS",
        help="where the part drawn starts, in seconds into the file (default 0)",
    )  # fmt: skip
    plot.add_argument(
        "--duration", type=float, default=60.0, metavar="SECONDS",
        help="seconds drawn from --start (default 60: the first minute); only that part is "
        "read and scored",
    )  # fmt: skip
    plot.add_argument(
        "--min-confidence", type=float, default=0.1,
        help="boxes from this score (default 0.1, as predict)",
    )  # fmt: skip
    plot.set_defaults(run=_plot)

    calibrate = command(
        "calibrate",
        "Fit per-species calibration curves to reviewed detections and write thresholds.",
    )
    calibrate.add_argument(
        "review", type=Path, metavar="REVIEW_CSV",
        help="a review table (review.csv) written by 'birdaudio review', verdicts filled in "
        "('unsure' and empty ones are left out)",
    )  # fmt: skip
    target = calibrate.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--precision", type=float,
        help="target precision: each species' threshold is the lowest score whose "
        "detections at or above it are estimated correct this often (e.g. 0.9)",
    )  # fmt: skip
    target.add_argument(
        "--probability", type=float,
        help="target probability: the score where a species' calibrated probability that a "
        "detection is correct reaches it (e.g. 0.9)",
    )  # fmt: skip
    calibrate.add_argument(
        "--out", type=Path, required=True,
        help="the thresholds table (CSV: species,threshold,low,high,n_reviews,pooled,"
        "estimated_precision) for 'birdaudio predict --thresholds'; a threshold of 1 means "
        "never",
    )  # fmt: skip
    calibrate.add_argument(
        "--min-reviews", type=int, default=20,
        help="fewest yes/no reviews for a species' own curve; species with fewer, or with "
        "only one verdict, use the curve pooled over all species (default 20)",
    )  # fmt: skip
    calibrate.add_argument(
        "--bootstrap", type=int, default=200,
        help="bootstrap resamples of the reviews for the 90%% intervals (default 200; 0: none)",
    )  # fmt: skip
    calibrate.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    calibrate.add_argument(
        "--detections", type=Path, nargs="+", metavar="TABLE",
        help="estimate precision over these detection tables (or folders of "
        "*.birdaudio.* tables): all the detections the reviews were sampled from, instead "
        "of the reviews weighted by their 'weight'; their unreviewed species get the pooled "
        "curve's thresholds",
    )  # fmt: skip
    plots = calibrate.add_mutually_exclusive_group()
    plots.add_argument(
        "--plots", type=Path, metavar="DIR",
        help="folder for one calibration figure (PNG) per species (default: <out "
        "stem>_plots next to --out)",
    )  # fmt: skip
    plots.add_argument("--no-plots", action="store_true", help="draw no figures")
    calibrate.set_defaults(run=_calibrate)

    review = command(
        "review",
        "Sample detections per species and write a review folder: clips, spectrograms, "
        "review.csv and a page (index.html) to mark them yes, no or unsure.",
    )
    review.epilog = (
        "Exit code 3: the audio of some sampled detections could not be read; they are "
        "listed on stderr and in skipped.csv, the others are in the review."
    )
    review.add_argument(
        "detections", type=Path, nargs="+", metavar="DETECTIONS",
        help="detection tables written by 'birdaudio predict' (csv, Raven or Audacity), or "
        "folders of them (their *.csv, *.selections.txt and *.labels.txt; hidden ones and "
        "sub-folders are skipped); the audio paths in them are relative to the folder "
        "predict ran in",
    )  # fmt: skip
    review.add_argument("--out", type=Path, required=True, help="the review folder")
    review.add_argument(
        "--per-species", type=int, default=20, help="detections per species (default 20)"
    )
    review.add_argument(
        "--bins", type=int, default=5,
        help="equal-width score bins from --min-confidence (or the lowest score) to 1 "
        "(default 5)",
    )  # fmt: skip
    review.add_argument(
        "--strategy", choices=("stratified", "margin"), default="stratified",
        help="stratified (default): spread over the score bins, with the weights that "
        "estimate precision; margin: the scores nearest --threshold (to improve a model, "
        "not to estimate precision)",
    )  # fmt: skip
    review.add_argument(
        "--threshold", type=float, default=0.5, help="the score margin samples around (0.5)"
    )
    review.add_argument(
        "--context", type=float, default=2.0,
        help="seconds of audio kept before and after each detection (default 2)",
    )  # fmt: skip
    review.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    review.add_argument(
        "--min-confidence", type=float, help="review only detections from this score"
    )
    review.add_argument(
        "--species", nargs="+", action="extend", metavar="NAME",
        help="review only these species (default: all)",
    )  # fmt: skip
    review.add_argument(
        "--overwrite", action="store_true", help="replace a review already in --out"
    )
    review.set_defaults(run=_review)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``birdaudio`` with ``argv`` (default: the command line); return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="birdaudio: %(message)s")
    from .audio import AudioError

    try:
        with _plain_text_unless_terminal():
            return args.run(args)
    except (CommandError, AudioError, ValueError, ImportError) as error:
        print(f"birdaudio {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        kept = (
            "; tables written so far are kept, --resume continues"
            if args.command == "predict"
            else ""
        )
        print(f"birdaudio {args.command}: interrupted{kept}", file=sys.stderr)
        return EXIT_INTERRUPTED


class _PlainText:
    """A text stream that drops terminal control sequences (colours) written to it."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(ANSI_SEQUENCE.sub("", text))
        return len(text)

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):
        if name == "stream":
            raise AttributeError(name)
        return getattr(self.stream, name)


@contextlib.contextmanager
def _plain_text_unless_terminal():
    """stdout and stderr without colour codes when they are not a terminal (a log file)."""
    with contextlib.ExitStack() as stack:
        for name, redirect in (
            ("stdout", contextlib.redirect_stdout),
            ("stderr", contextlib.redirect_stderr),
        ):
            stream = getattr(sys, name)
            if not _is_terminal(stream):
                stack.enter_context(redirect(_PlainText(stream)))
        yield


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


if __name__ == "__main__":
    sys.exit(main())
