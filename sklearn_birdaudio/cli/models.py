"""The models of the command: the named models ``train`` builds, and model files.

``train`` builds one of :data:`MODELS` and saves it (:func:`save_trained_model`); the
other commands load it (:func:`load_fitted_model`) and look inside it with
:mod:`sklearn_birdaudio.composition`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..composition import estimators_in
from .errors import CommandError

MODELS = {
    "recipe": "the small-data recipe (sklearn_birdaudio.recipes): our network trained on "
    "your labels alone, macro mAP 0.623 on the xc-puerto-rico test split, well above the "
    "design defaults; no extra, no inherited licence ('distilled' scores 0.778 but needs "
    "the birdnet extra and inherits BirdNET's non-commercial licence)",
    "cnn-defaults": "log-mel + AttentionCNN with the classifier's design defaults (64 "
    "filters, dropout 0.5, validation split and early stopping)",
    "birdnet": "BirdNET v2.4 embeddings + logistic regression",
    "distilled": "log-mel + AttentionCNN taught by BirdNET (embeddings + logistic regression "
    "and zero-shot scores) on every 3-s window (sklearn_birdaudio.distillation): the "
    "recipe's fast network at macro mAP 0.778 instead of 0.623 on the xc-puerto-rico test "
    "split, trained with the birdnet extra and run without it; it inherits BirdNET's "
    "CC BY-NC-SA 4.0 licence",
}
# The classifier's own sample_rate and hop_length before it learned them from the
# spectrograms it is given (its audio spec), and the front end's parameter that sets each.
LEARNED_FROM_FRONT_END = {
    "cnn__sample_rate": "mel__sample_rate",
    "cnn__hop_length": "mel__hop_length",
}


def load_fitted_model(path: Path, *, allow_pickle: bool = False, dropped: dict | None = None):
    """A fitted model saved by ``birdaudio train`` (or by ``save_model``).

    Parameters that the file sets and that act on the machine are not restored
    (:class:`~sklearn_birdaudio.DroppedParameterWarning`).

    Parameters
    ----------
    path : Path
        The model file.
    allow_pickle : bool, default=False
        Also load joblib/pickle files (``joblib.dump`` of a fitted pipeline): loading one
        runs any code it holds.
    dropped : dict, optional
        Where to put the parameters not restored (``info`` shows them); without it they
        are listed on stderr.

    Returns
    -------
    estimator
        A fitted classifier: it has ``predict_proba`` and ``classes_``.

    Raises
    ------
    CommandError
        When the file is missing, cannot be loaded, or holds no fitted classifier.
    """
    import warnings

    from sklearn.utils.validation import check_is_fitted

    from ..persistence import DroppedParameterWarning, load_model

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
            print_dropped(warning.message.dropped)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise CommandError(f"{path}: holds a {type(model).__name__}, not a fitted classifier.")
    check_is_fitted(model)
    return model


def print_dropped(dropped: dict) -> None:
    """The parameters a model file set that were not restored, one line each, on stderr.

    Parameters
    ----------
    dropped : dict
        ``{name: (value, reason)}``, as :class:`~sklearn_birdaudio.DroppedParameterWarning`
        gives them.
    """
    print(
        "birdaudio: not restored from the model file (they act on this machine; defaults "
        "are used):",
        file=sys.stderr,
    )
    for name, (value, reason) in dropped.items():
        print(f"  {name} = {value!r}  ({reason})", file=sys.stderr)


def uses_birdnet(model) -> bool:
    """Whether a BirdNET estimator is anywhere in ``model`` (its licence applies).

    Parameters
    ----------
    model : estimator
        A pipeline, an ensemble or an estimator.

    Returns
    -------
    bool
    """
    from ..embeddings import BirdNETClassifier, BirdNETEmbedder

    return any(
        isinstance(member, (BirdNETEmbedder, BirdNETClassifier)) for member in estimators_in(model)
    )


def save_trained_model(model, out: Path) -> None:
    """Save in the safe format, or with joblib (and a warning) for a pickle suffix.

    Parameters
    ----------
    model : estimator
        The fitted model.
    out : Path
        The file; its folder is created. A ``.joblib``, ``.pkl`` or ``.pickle`` name
        writes a joblib file.

    Raises
    ------
    CommandError
        When the safe format cannot hold the model.
    """
    from ..persistence import PICKLE_SUFFIXES, save_model

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


def _cnn_options(args) -> dict:
    """The classifier parameters given on the command line (the others: the model's).

    ``--sample-rate`` is the front end's: the classifier learns it from the audio spec its
    spectrograms carry.
    """
    options = {
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "random_state": args.seed,
        "device": args.device,
        "verbose": args.verbose,
    }
    if args.window_seconds is not None:
        options.update(window_seconds=args.window_seconds, overlap_seconds=args.window_seconds / 2)
    if args.val_fraction is not None:
        options["validation_fraction"] = args.val_fraction or None
    return {name: value for name, value in options.items() if value is not None}


def build_model(args):
    """The untrained pipeline of ``--model`` with ``--set`` applied, and its front end.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``birdaudio train``; ``args.model`` is one of :data:`MODELS`.

    Returns
    -------
    model : sklearn.pipeline.Pipeline or DistilledClassifier
        The untrained model.
    front_end : str
        The name of the first step of the pipeline that predicts (``"mel"`` or
        ``"birdnet"``; a distilled model's student's).

    Raises
    ------
    CommandError
        When a ``--set`` key is not a parameter of the pipeline.
    """
    from sklearn.pipeline import Pipeline

    if args.model == "birdnet":
        from sklearn.preprocessing import StandardScaler

        from ..embeddings import BirdNETEmbedder
        from ..linear import EmbeddingLogisticRegression

        model = Pipeline(
            [
                ("birdnet", BirdNETEmbedder(memory=args.cache, verbose=args.verbose)),
                ("scale", StandardScaler()),
                ("logistic", EmbeddingLogisticRegression(C=1.0)),
            ]
        )
        front_end = "birdnet"
    elif args.model == "distilled":
        from ..distillation import DistilledClassifier, make_student

        student = make_student()
        student.set_params(**{f"cnn__{name}": value for name, value in _cnn_options(args).items()})
        student.set_params(mel__sample_rate=args.sample_rate, mel__verbose=args.verbose)
        model = DistilledClassifier(
            student=student, memory=args.cache, random_state=args.seed, verbose=args.verbose
        )
        front_end = "mel"
    elif args.model == "recipe":
        from ..recipes import make_small_data_pipeline

        model = make_small_data_pipeline(memory=args.cache)
        model.set_params(**{f"cnn__{name}": value for name, value in _cnn_options(args).items()})
        model.set_params(mel__sample_rate=args.sample_rate, mel__verbose=args.verbose)
        front_end = "mel"
    else:
        from ..classifier import AttentionCNNClassifier
        from ..features import MelSpectrogramTransformer

        mel = MelSpectrogramTransformer(
            sample_rate=args.sample_rate, duration=None, memory=args.cache, verbose=args.verbose
        )
        model = Pipeline([("mel", mel), ("cnn", AttentionCNNClassifier(**_cnn_options(args)))])
        front_end = "mel"
    learned = []
    for key, value in args.set:
        if front_end == "mel" and key in LEARNED_FROM_FRONT_END and args.model != "distilled":
            learned.append((key, value))  # checked once the front end's are all set
            continue
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
    _check_learned(model, learned)
    return model, front_end


def _check_learned(model, learned: list[tuple[str, object]]) -> None:
    """Accept ``--set cnn__sample_rate`` or ``cnn__hop_length`` of command lines written
    when the classifier had them, when the value is the front end's (which the
    classifier learns); refuse a different one, which would no longer do anything."""
    params = model.get_params()
    for key, value in learned:
        source = LEARNED_FROM_FRONT_END[key]
        if value != params[source]:
            raise CommandError(
                f"--set {key}={value!r}: the classifier has no {key.split('__')[1]} of its "
                f"own any more: it learns it from the front end's spectrograms, here "
                f"{source}={params[source]!r}. Set {source} instead."
            )
