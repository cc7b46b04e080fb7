"""``birdaudio info``: what a model file holds, as text or JSON.

Its kind and steps, classes, front end, network size and settings, training history,
the parameters not restored from the file, what a distilled student was taught by (its
lineage), the licence and the versions of the packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..composition import estimators_in, final_estimator
from .errors import EXIT_OK
from .models import load_fitted_model, print_dropped, uses_birdnet


def run(args) -> int:
    """Run ``birdaudio info`` on its parsed command line ``args``.

    Returns the exit code: ``EXIT_OK``.
    """
    dropped = {}
    model = load_fitted_model(args.model, allow_pickle=args.allow_pickle, dropped=dropped)
    if dropped:  # on stderr, as every command that loads a model lists them
        print_dropped(dropped)
    summary = _model_summary(model, args.model, dropped)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    return EXIT_OK


def _front_end(model, members: list) -> dict | None:
    """What the model takes, as ``detect`` sees it: its audio spec, and the mel bands.

    A classifier fitted on another framing than its front end's makes the spec an error,
    which is reported in the summary rather than hidden.
    """
    from ..embeddings import BirdNETClassifier, BirdNETEmbedder
    from ..features import MelSpectrogramTransformer
    from ..spec import get_audio_spec

    try:
        spec = get_audio_spec(model)
    except ValueError as error:
        return {"kind": "inconsistent", "error": str(error)}
    if spec is None:
        return None
    fmin, fmax = spec.frequency_range
    mels = [member for member in members if isinstance(member, MelSpectrogramTransformer)]
    if mels:
        return {
            "kind": "log-mel spectrogram",
            "sample_rate": spec.sample_rate,
            "input_sample_rate": spec.input_sample_rate,
            "hop_length": spec.hop_length,
            "n_mels": mels[0].n_mels,
            "fmin": fmin,
            "fmax": fmax,
            "window_seconds": spec.window_seconds,
            "clip_seconds": spec.clip_seconds,
        }
    if any(isinstance(member, (BirdNETEmbedder, BirdNETClassifier)) for member in members):
        return {
            "kind": "BirdNET v2.4 embeddings",
            "sample_rate": spec.waveform_rate,
            "window_seconds": spec.window_seconds,
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

    from .. import __version__
    from ..persistence import model_saved_at

    members = estimators_in(model)
    classifier = final_estimator(model)
    steps = [[name, type(step).__name__] for name, step in getattr(model, "steps", [])]
    summary = {
        "model": str(path),
        "saved_at": model_saved_at(path),
        "kind": type(model).__name__,
        "steps": steps,
        "classes": [str(label) for label in model.classes_],
        "front_end": _front_end(model, members),
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
    if uses_birdnet(model):
        from ..embeddings import LICENSE

        summary["licence"] = LICENSE
    # A distilled student's file records its teacher, and the licence it inherits.
    lineage = model.__dict__.get("lineage_")
    summary["lineage"] = lineage
    if lineage and lineage.get("licence"):
        summary["licence"] = lineage["licence"]
    return summary


def _printable(value) -> str:
    """Text from a model file, safe for a terminal: control characters shown as ``?``."""
    return "".join(char if char.isprintable() else "?" for char in str(value))


def _print_summary(summary: dict) -> None:
    import textwrap

    saved = f" (saved {summary['saved_at'].replace('T', ' ')})" if summary["saved_at"] else ""
    print(f"Model: {summary['model']}{saved}")
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
    if front_end and front_end["kind"] == "inconsistent":
        print(f"Front end: warning: {front_end['error']}")
    elif front_end:
        line = f"Front end: {front_end['kind']} at {front_end['sample_rate']} Hz"
        if front_end.get("input_sample_rate"):
            line += f" (arrays taken at {front_end['input_sample_rate']} Hz)"
        if front_end.get("hop_length"):
            line += f", hop {front_end['hop_length']}"
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
        parts = [f"{training['epochs']} epoch{'s' if training['epochs'] != 1 else ''}"]
        for key, name in (("best_valid_loss", "validation loss"), ("best_valid_mAP", "mAP")):
            if key in training:
                best = training[key]
                parts.append(f"best validation {name.split()[-1]} {best['value']:.4f} "
                             f"(epoch {best['epoch']})")  # fmt: skip
        if "training_examples_per_epoch" in training:
            parts.append(
                f"{training['training_examples_per_epoch']} training examples per epoch "
                "(windows of the recordings not held out for validation)"
            )
        print("Training: " + "; ".join(parts))
    if summary["not_restored"]:
        dropped = [
            f"{name} = {entry['value']} ({entry['reason']})"
            for name, entry in summary["not_restored"].items()
        ]
        print("Not restored from the model file (defaults used): " + "; ".join(dropped))
    lineage = summary["lineage"]
    if lineage:
        details = [
            template.format(_printable(lineage[key]))
            for key, template in (
                ("windows", "{}"),
                ("soft_weight", "soft weight {}"),
                ("date", "on {}"),
            )
            if lineage.get(key) is not None
        ]
        print(f"Distilled from: {_printable(lineage.get('teacher'))}")
        if details:
            print(f"  {'; '.join(details)}")
        if lineage.get("note"):
            print(textwrap.fill(_printable(lineage["note"]), width=88, initial_indent="  ",
                                subsequent_indent="  "))  # fmt: skip
    if summary["licence"]:
        print(
            f"Licence: {_printable(summary['licence'])}; embeddings and models built on them "
            "fall under it."
        )
    print(
        "Versions: " + ", ".join(f"{name} {value}" for name, value in summary["versions"].items())
    )
