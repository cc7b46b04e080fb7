"""The ``birdaudio`` argument parser: one sub-parser per command, each run by its module.

Each sub-parser sets ``run``, the ``run(args)`` of its command's module, which ``main``
calls with the parsed arguments.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from .. import __version__
from ..table_formats import FORMATS
from .calibrate import run as run_calibrate
from .evaluate import run as run_evaluate
from .info import run as run_info
from .plot import run as run_plot
from .predict import run as run_predict
from .review import run as run_review
from .train import run as run_train


def _parse_assignment(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE a Python literal (numbers, None, strings, tuples)."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare word: a string


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
    """The ``birdaudio`` argument parser, with one sub-parser per command.

    Returns
    -------
    argparse.ArgumentParser
        Its parsed arguments hold ``command`` (the sub-command's name) and ``run`` (the
        function that runs it, returning the exit code), with that command's options.
    """
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
        "--model", choices=("recipe", "cnn-defaults", "birdnet", "distilled", "cnn"),
        default=None,
        help="recipe (default): log-mel + AttentionCNN with the small-data recipe "
        "(sklearn_birdaudio.recipes), the package's best own network (macro mAP 0.623 on "
        "xc-puerto-rico's test split); cnn-defaults: the classifier's design defaults (64 "
        "filters, validation split and early stopping; much weaker on small data); birdnet: "
        "BirdNET v2.4 embeddings + logistic regression (the birdnet extra; the BirdNET model "
        "is CC BY-NC-SA 4.0; --set logistic__C=0.3 sets its C, default 1); distilled: "
        "log-mel + AttentionCNN taught by BirdNET on every 3-s window (the birdnet extra to "
        "train, not to run; the student inherits CC BY-NC-SA 4.0; --set soft_weight=1 or "
        "--set student__cnn__module__base_filters=32 change it); cnn: deprecated name of "
        "cnn-defaults",
    )  # fmt: skip
    train.add_argument(
        "--unlabelled", type=Path, metavar="FOLDER",
        help="with --model distilled: recordings without labels (soundscapes, say) that the "
        "teacher labels for the student to learn from too",
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
    train.set_defaults(run=run_train)

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
    predict.set_defaults(run=run_predict)

    evaluate = command(
        "evaluate", "Score a model on labelled recordings (mAP, F1, per class).", loads_model=True
    )
    evaluate.add_argument("model", type=Path, help="a model saved by 'birdaudio train'")
    evaluate.add_argument("data", type=Path, help="a folder of class sub-folders or a manifest")
    _add_split_options(evaluate, "score")
    evaluate.add_argument("--threshold", type=float, help="for F1 (default: the model's)")
    evaluate.add_argument("--pr-curve", type=Path, help="save precision-recall curves (PNG)")
    evaluate.add_argument(
        "--strict", action="store_true",
        help="abort (exit 1) when a recording cannot be read; by default unreadable ones are "
        "listed on stderr, the others are scored and the exit code is 3",
    )  # fmt: skip
    evaluate.set_defaults(run=run_evaluate)

    info = command(
        "info", "Show a model's classes, parameters, training and versions.", loads_model=True
    )
    info.add_argument("model", type=Path, help="a model saved by 'birdaudio train'")
    info.add_argument("--json", action="store_true", help="print the same summary as JSON")
    info.set_defaults(run=run_info)

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
    plot.set_defaults(run=run_plot)

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
    calibrate.set_defaults(run=run_calibrate)

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
    review.set_defaults(run=run_review)
    return parser
